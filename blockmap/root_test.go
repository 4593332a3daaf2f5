package blockmap

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/omiproject/omi/blockstore"
)

func TestCloneCopyOnWrite(t *testing.T) {
	m, _ := New(600 * blockstore.BlockSize)
	a, b := blockstore.Sum([]byte("a")), blockstore.Sum([]byte("b"))
	m.SetEntry(1, a)
	m.SetEntry(300, a)
	c := m.Clone()
	if c.chunks[0] != m.chunks[0] {
		t.Fatal("Clone copied a chunk instead of sharing it")
	}
	m.SetEntry(1, b)
	c.SetEntry(300, b)
	if m.Entry(1) != b || c.Entry(1) != a || m.Entry(300) != a || c.Entry(300) != b {
		t.Fatal("a change through one map shows in the other")
	}
	if c.chunks[0] == m.chunks[0] || c.chunks[1] == m.chunks[1] {
		t.Fatal("changed chunk still shared")
	}
	d := c.Clone()
	d.SetEntry(300, blockstore.Hash{})
	if d.chunks[1] != nil || c.Entry(300) != b {
		t.Fatal("clearing a shared chunk changed its other holder or kept a hole chunk")
	}
}

func TestRootEncoding(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	hs := make([]blockstore.Hash, 40)
	for i := range hs {
		if r.IntN(3) > 0 {
			hs[i] = blockstore.Sum([]byte{byte(i)})
		}
	}
	root, err := NewRoot(40*chunkEntries*blockstore.BlockSize-5, hs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewRoot(blockstore.BlockSize, hs); err == nil {
		t.Fatal("NewRoot accepted a wrong chunk count")
	}
	good, _ := root.MarshalBinary()
	back, err := DecodeRoot(good)
	if err != nil || !back.Equal(root) {
		t.Fatalf("round trip: %v", err)
	}
	for k := 0; k < len(good); k++ {
		bad := bytes.Clone(good)
		bad[k] ^= 0x10
		if _, err := DecodeRoot(bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("bit flip at %d: %v", k, err)
		}
	}
	v3 := bytes.Clone(good[:len(good)-4])
	v3[4] = 3
	if _, err := DecodeRoot(appendCRC(v3)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("version 3: %v", err)
	}
	// A version 1 file decodes as an old-format root and re-encodes as is.
	m := randomMap(t, r, 20*blockstore.BlockSize, 0.5)
	v1, _ := m.MarshalBinary()
	old, err := DecodeRoot(v1)
	if err != nil || old.legacy == nil || !old.legacy.Equal(m) || old.Size() != m.Size() {
		t.Fatalf("version 1: %v", err)
	}
	if again, _ := old.MarshalBinary(); !bytes.Equal(again, v1) {
		t.Fatal("old-format root not re-encoded as version 1")
	}
}

func TestChunkEncoding(t *testing.T) {
	c := new(chunk)
	c.e[7] = blockstore.Sum([]byte("x"))
	data := encodeChunk(c)
	if !IsChunkBlock(data) || len(data) != chunkBlockSize {
		t.Fatal("encoded chunk not recognised")
	}
	back, err := decodeChunk(data)
	if err != nil || back.e != c.e {
		t.Fatalf("round trip: %v", err)
	}
	if IsChunkBlock(encodeChunk(new(chunk))) || IsChunkBlock(data[:100]) || IsChunkBlock(make([]byte, chunkBlockSize)) {
		t.Fatal("not a chunk block, but recognised")
	}
}
