package blockcodec

import (
	"bytes"
	"crypto/rand"
	"testing"
)

func TestRoundTripAndCorruption(t *testing.T) {
	c, err := New(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	random := make([]byte, 64<<10)
	rand.Read(random)
	text := bytes.Repeat([]byte("omi block "), 6000)
	for name, data := range map[string][]byte{"empty": {}, "random": random, "text": text} {
		obj := c.Encode(data, nil)
		if name == "text" && obj[5] != flagZstd {
			t.Errorf("text was not compressed")
		}
		if name == "random" && obj[5] != 0 {
			t.Errorf("random data was stored compressed")
		}
		got, err := c.Decode(obj, nil)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: round trip: %v", name, err)
		}
		if len(obj) > HeaderSize {
			bad := append([]byte{}, obj...)
			bad[len(bad)-1] ^= 0xff
			if got, err := c.Decode(bad, nil); err == nil && bytes.Equal(got, data) {
				t.Errorf("%s: a flipped payload byte decoded to the original", name)
			}
		}
	}
	for name, obj := range map[string][]byte{
		"short":       []byte("OMIB"),
		"magic":       append([]byte("XXXX\x01\x00\x00\x00\x00\x00\x00\x00"), 0),
		"version":     []byte("OMIB\x09\x00\x00\x00\x00\x00\x00\x00"),
		"flags":       []byte("OMIB\x01\x04\x00\x00\x00\x00\x00\x00"),
		"too long":    []byte("OMIB\x01\x00\x00\x00\x00\x00\x00\x10"),
		"length lies": []byte("OMIB\x01\x00\x00\x00\x05\x00\x00\x00abc"),
	} {
		if _, err := c.Decode(obj, nil); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}
