package blockmap

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/omiproject/omi/blockstore"
)

func randomMap(t testing.TB, r *rand.Rand, size int64, density float64) *Map {
	t.Helper()
	m, err := New(size)
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < m.Blocks(); i++ {
		if r.Float64() < density {
			var h blockstore.Hash
			for k := range h {
				h[k] = byte(r.UintN(256))
			}
			h[0] |= 1
			if err := m.SetEntry(i, h); err != nil {
				t.Fatal(err)
			}
		}
	}
	return m
}

func TestMapRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		size    int64
		density float64
	}{
		{0, 0}, {1, 1}, {blockstore.BlockSize, 1}, {blockstore.BlockSize + 1, 0.5},
		{10 << 30, 0}, {10 << 30, 0.01}, {300 * blockstore.BlockSize, 0.5}, {300 * blockstore.BlockSize, 1},
		{MaxSize, 0},
	} {
		m := randomMap(t, r, tc.size, tc.density)
		data, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(data)
		if err != nil {
			t.Fatalf("size %d: %v", tc.size, err)
		}
		if !got.Equal(m) || got.Size() != tc.size || got.Allocated() != m.Allocated() {
			t.Fatalf("size %d: round trip differs", tc.size)
		}
		if again, _ := got.MarshalBinary(); !bytes.Equal(again, data) {
			t.Fatalf("size %d: re-encoding differs", tc.size)
		}
		if want := 16 + 4 + 32*m.Allocated(); int64(len(data)) > want+3*(m.Blocks()/2+1)+8 {
			t.Fatalf("size %d: %d bytes for %d allocated blocks, not compact", tc.size, len(data), m.Allocated())
		}
	}
}

func TestMapEntries(t *testing.T) {
	m, err := New(3*blockstore.BlockSize + 100)
	if err != nil {
		t.Fatal(err)
	}
	if m.Blocks() != 4 || m.BlockLen(3) != 100 || m.BlockLen(0) != blockstore.BlockSize || m.BlockLen(4) != 0 {
		t.Fatalf("Blocks=%d BlockLen(3)=%d", m.Blocks(), m.BlockLen(3))
	}
	h := blockstore.Sum([]byte("x"))
	if err := m.SetEntry(4, h); err == nil {
		t.Fatal("SetEntry out of range succeeded")
	}
	if err := m.SetEntry(-1, h); err == nil {
		t.Fatal("SetEntry(-1) succeeded")
	}
	m.SetEntry(2, h)
	c := m.Clone()
	m.SetEntry(2, blockstore.Hash{})
	if c.Entry(2) != h || m.Entry(2) != (blockstore.Hash{}) || m.chunks[0] != nil {
		t.Fatal("Clone shares entries, or a hole chunk was kept")
	}
	if err := m.Grow(m.Size() - 1); err == nil {
		t.Fatal("shrink accepted")
	}
	if err := m.Grow(1 << 40); err != nil || m.Blocks() != 1<<21 {
		t.Fatalf("Grow: %v, %d blocks", err, m.Blocks())
	}
	if _, err := New(-1); err == nil {
		t.Fatal("New(-1) succeeded")
	}
	if _, err := New(MaxSize + 1); err == nil {
		t.Fatal("New(MaxSize+1) succeeded")
	}
}

func TestDecodeRejects(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	m := randomMap(t, r, 20*blockstore.BlockSize, 0.5)
	good, _ := m.MarshalBinary()
	reject := func(name string, data []byte) {
		t.Helper()
		if _, err := Decode(data); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
	reject("empty", nil)
	reject("short", good[:10])
	for n := 0; n < len(good); n += 7 {
		reject("truncated", good[:n])
	}
	for k := 0; k < len(good); k++ {
		bad := bytes.Clone(good)
		bad[k] ^= 0x40
		reject("bit flip", bad)
	}
	// Valid checksums over invalid content.
	seal := func(body []byte) []byte { return appendCRC(bytes.Clone(body)) }
	body := good[:len(good)-4]
	v2 := bytes.Clone(body)
	v2[4] = 2
	reject("version", seal(v2))
	huge := bytes.Clone(body)
	huge[15] = 0xff
	reject("size", seal(huge))
	extra := append(bytes.Clone(body), 2)
	reject("trailing run", seal(extra))
	hdr := bytes.Clone(body[:16])
	reject("no runs", seal(hdr))
	reject("zero-length run", seal(append(bytes.Clone(hdr), 0, 40)))
	reject("two hole runs", seal(append(bytes.Clone(hdr), 20, 20)))
	zeroHash := append(append(bytes.Clone(hdr), 40<<1|1), make([]byte, 32*40)...)
	reject("zero hash in data run", seal(zeroHash))
}

func FuzzDecode(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, size := range []int64{0, 1, 5 * blockstore.BlockSize, 1000 * blockstore.BlockSize} {
		m := randomMap(f, r, size, 0.3)
		data, _ := m.MarshalBinary()
		f.Add(data)
	}
	f.Add([]byte("OMIM\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, _ := m.MarshalBinary()
		if !bytes.Equal(again, data) {
			t.Fatal("decoded map re-encodes differently: encoding not canonical")
		}
	})
}
