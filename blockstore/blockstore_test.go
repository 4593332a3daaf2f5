package blockstore

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestHashStringParse(t *testing.T) {
	h := Sum([]byte("hello"))
	want := sha256.Sum256([]byte("hello"))
	if h != Hash(want) {
		t.Fatalf("Sum mismatch")
	}
	s := h.String()
	if s != "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Fatalf("String = %s", s)
	}
	p, err := ParseHash(strings.ToUpper(s))
	if err != nil || p != h {
		t.Fatalf("ParseHash = %v, %v", p, err)
	}
	for _, bad := range []string{"", "00", s + "0", strings.Repeat("zz", 32)} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) succeeded", bad)
		}
	}
	b, err := json.Marshal(map[string]Hash{"h": h})
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]Hash
	if err := json.Unmarshal(b, &back); err != nil || back["h"] != h {
		t.Fatalf("JSON round trip: %s %v %v", b, back, err)
	}
	if !(Hash{}).IsZero() || h.IsZero() {
		t.Fatal("Hash.IsZero wrong")
	}
}

func TestIsZero(t *testing.T) {
	if !IsZero(nil) || !IsZero([]byte{}) || !IsZero([]byte{0}) {
		t.Fatal("empty or single zero not zero")
	}
	buf := make([]byte, BlockSize)
	if !IsZero(buf) {
		t.Fatal("zero block not zero")
	}
	for _, i := range []int{0, 1, 7, 8, 4095, BlockSize / 2, BlockSize - 1} {
		buf[i] = 1
		if IsZero(buf) {
			t.Fatalf("byte %d set but IsZero", i)
		}
		buf[i] = 0
	}
	// All bytes equal but non-zero must not count as zero.
	for i := range buf {
		buf[i] = 0xff
	}
	if IsZero(buf) {
		t.Fatal("0xff block reported zero")
	}
}

func TestPins(t *testing.T) {
	var p Pins
	a, b := Sum([]byte("a")), Sum([]byte("b"))
	p.Pin(a)
	p.Pin(a)
	p.Pin(b)
	p.Unpin(a)
	if !p.Pinned(a) || !p.Pinned(b) || p.Len() != 2 {
		t.Fatal("pins lost")
	}
	p.Unpin(a)
	p.Unpin(b)
	if p.Pinned(a) || p.Pinned(b) || p.Len() != 0 {
		t.Fatal("pins not released")
	}
	p.Pin(a)
	set := map[Hash]struct{}{}
	p.AddTo(set)
	if _, ok := set[a]; !ok || len(set) != 1 {
		t.Fatalf("AddTo = %v", set)
	}
	var nilPins *Pins
	nilPins.Pin(a)
	nilPins.Unpin(a)
	if nilPins.Pinned(a) || nilPins.Len() != 0 {
		t.Fatal("nil pins not empty")
	}
}

func TestSentinelsDistinct(t *testing.T) {
	if errors.Is(ErrNotFound, ErrCorrupt) {
		t.Fatal("sentinels alias")
	}
}

func BenchmarkIsZero(b *testing.B) {
	buf := make([]byte, BlockSize)
	b.SetBytes(BlockSize)
	for b.Loop() {
		if !IsZero(buf) {
			b.Fatal("not zero")
		}
	}
}
