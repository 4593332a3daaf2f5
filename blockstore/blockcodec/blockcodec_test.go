package blockcodec

import (
	"bytes"
	"crypto/rand"
	"testing"
)

func TestRoundTripAndCorruption(t *testing.T) {
	random := make([]byte, 64<<10)
	rand.Read(random)
	text := bytes.Repeat([]byte("omi block "), 6000)
	for _, m := range []struct {
		name   string
		method Method
		flag   byte
	}{{"zstd", Zstd, flagZstd}, {"s2", S2, flagS2}} {
		t.Run(m.name, func(t *testing.T) {
			c, err := New(1<<20, m.method)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for name, data := range map[string][]byte{"empty": {}, "random": random, "text": text} {
				obj := c.Encode(data, nil)
				if len(obj) > MaxEncodedLen(len(data)) {
					t.Errorf("%s: object of %d bytes, MaxEncodedLen says %d", name, len(obj), MaxEncodedLen(len(data)))
				}
				if name == "text" && obj[5] != m.flag {
					t.Errorf("text was not compressed (flags %#x)", obj[5])
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
					// A length that disagrees with the payload.
					bad = append([]byte{}, obj...)
					bad[8]--
					if _, err := c.Decode(bad, nil); err == nil {
						t.Errorf("%s: a wrong length decoded", name)
					}
				}
			}
			for name, obj := range map[string][]byte{
				"short":       []byte("OMIB"),
				"magic":       append([]byte("XXXX\x01\x00\x00\x00\x00\x00\x00\x00"), 0),
				"version":     []byte("OMIB\x09\x00\x00\x00\x00\x00\x00\x00"),
				"flags":       []byte("OMIB\x01\x04\x00\x00\x00\x00\x00\x00"),
				"both codecs": []byte("OMIB\x01\x03\x00\x00\x03\x00\x00\x00abc"),
				"too long":    []byte("OMIB\x01\x00\x00\x00\x00\x00\x00\x10"),
				"length lies": []byte("OMIB\x01\x00\x00\x00\x05\x00\x00\x00abc"),
				"s2 garbage":  []byte("OMIB\x01\x02\x00\x00\x05\x00\x00\x00\x05\xff\xff\xff"),
			} {
				if _, err := c.Decode(obj, nil); err == nil {
					t.Errorf("%s: decoded", name)
				}
			}
		})
	}
}

// TestReadsEveryMethod: a store that changes the method it writes with still
// reads the blocks written before.
func TestReadsEveryMethod(t *testing.T) {
	text := bytes.Repeat([]byte("a block written by one codec, read by the other "), 4000)
	zc, err := New(1<<20, Zstd)
	if err != nil {
		t.Fatal(err)
	}
	defer zc.Close()
	sc, err := New(1<<20, S2)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	for _, pair := range [][2]*Codec{{zc, sc}, {sc, zc}} {
		obj := pair[0].Encode(text, nil)
		got, err := pair[1].Decode(obj, make([]byte, 0, 10)) // too small: grown
		if err != nil || !bytes.Equal(got, text) {
			t.Fatalf("cross-method decode: %v", err)
		}
	}
	if _, err := New(1<<20, Method(7)); err == nil {
		t.Error("unknown method accepted")
	}
}
