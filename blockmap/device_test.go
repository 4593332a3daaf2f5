package blockmap_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockstore"
)

// checkExtents verifies that the extents of d over [off, off+length) are
// consecutive, merged, cover the range, and that holes read as zeros in
// model. It returns the number of hole bytes.
func checkExtents(t *testing.T, d *blockmap.Device, model []byte, off, length int64) int64 {
	t.Helper()
	next, holes := off, int64(0)
	last := -1
	err := d.Extents(context.Background(), off, length, func(o, l int64, hole bool) error {
		if o != next || l <= 0 {
			return fmt.Errorf("extent [%d,+%d) after %d", o, l, next)
		}
		h := 0
		if hole {
			h = 1
			holes += l
			if !blockstore.IsZero(model[o : o+l]) {
				return fmt.Errorf("hole [%d,+%d) holds data in the model", o, l)
			}
		}
		if h == last {
			return fmt.Errorf("extent [%d,+%d) not merged with its neighbour", o, l)
		}
		last = h
		next = o + l
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if next != off+length {
		t.Fatalf("extents end at %d, want %d", next, off+length)
	}
	return holes
}

// TestDeviceModel runs random operations at unaligned offsets against a
// Device and a plain []byte, with a tiny write-back buffer so that
// writebacks happen in the middle of everything.
func TestDeviceModel(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { testDeviceModel(t, seed) })
	}
}

func testDeviceModel(t *testing.T, seed uint64) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, 99))
	fill := rand.NewChaCha8([32]byte{byte(seed)})
	e := mustEnv(t, "", blockmap.WithDirtyLimit(2*bs), blockmap.WithCacheBlocks(2))
	size := int64(5*bs + 12345)
	mustCreate(t, e, "vol-1", size)
	model := make([]byte, size)
	d := mustOpen(t, e, "vol-1")
	d2 := mustOpen(t, e, "vol-1") // a second open shares the state
	defer func() { d2.Close() }()

	randRange := func(maxLen int64) (int64, int64) {
		off := r.Int64N(size)
		l := 1 + r.Int64N(min(maxLen, size-off))
		if r.IntN(4) == 0 { // block-aligned
			off = off / bs * bs
			l = min(bs*(1+r.Int64N(2)), size-off)
		}
		return off, l
	}
	for op := 0; op < 250; op++ {
		switch k := r.IntN(20); {
		case k < 7:
			off, l := randRange(3 * bs)
			p := make([]byte, l)
			switch r.IntN(3) {
			case 0:
				fill.Read(p)
			case 1:
				for i := range p {
					p[i] = byte(i / 1000)
				}
			} // case 2: zeros
			if err := d.WriteAt(ctx, p, off); err != nil {
				t.Fatal(err)
			}
			copy(model[off:], p)
		case k < 12:
			off, l := randRange(2 * bs)
			p := make([]byte, l)
			dev := d
			if k == 11 {
				dev = d2
			}
			if err := dev.ReadAt(ctx, p, off); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(p, model[off:off+l]) {
				t.Fatalf("op %d: read [%d,+%d) differs from the model", op, off, l)
			}
		case k < 14:
			off, l := randRange(3 * bs)
			var err error
			if k == 12 {
				err = d.Trim(ctx, off, l)
			} else {
				err = d.WriteZeroes(ctx, off, l)
			}
			if err != nil {
				t.Fatal(err)
			}
			clear(model[off : off+l])
		case k < 16:
			off, l := randRange(size)
			checkExtents(t, d, model, off, l)
		case k < 17:
			if err := d.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		case k < 18:
			if size < 9*bs {
				grow := 1 + r.Int64N(bs+bs/2)
				if err := e.m.Resize(ctx, "vol-1", size+grow); err != nil {
					t.Fatal(err)
				}
				size += grow
				model = append(model, make([]byte, grow)...)
				if d.Size() != size || d2.Size() != size {
					t.Fatalf("Size = %d, want %d", d.Size(), size)
				}
			}
		default:
			// Out of range is an error, never a panic or a short read.
			p := make([]byte, 10)
			if err := d.ReadAt(ctx, p, size-5); !errors.Is(err, blockmap.ErrOutOfRange) {
				t.Fatalf("ReadAt past the end: %v", err)
			}
			if err := d.WriteAt(ctx, p, -1); !errors.Is(err, blockmap.ErrOutOfRange) {
				t.Fatalf("WriteAt(-1): %v", err)
			}
			if err := d.Trim(ctx, 0, size+1); !errors.Is(err, blockmap.ErrOutOfRange) {
				t.Fatalf("Trim past the end: %v", err)
			}
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); !errors.Is(err, blockmap.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if err := d.ReadAt(ctx, make([]byte, 1), 0); !errors.Is(err, blockmap.ErrClosed) {
		t.Fatalf("ReadAt after Close: %v", err)
	}
	if err := d2.Close(); err != nil {
		t.Fatal(err)
	}

	// What was saved: same bytes, through a fresh Manager.
	e2 := mustEnv(t, e.dir)
	if got := readAll(t, e2, "vol-1"); !bytes.Equal(got, model) {
		t.Fatal("content after reopen differs from the model")
	}
	// Holes are exactly the all-zero blocks and are not stored; every
	// stored block is referenced... or garbage from overwritten blocks.
	v, err := e2.m.View(ctx, "vol-1")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	mp := v.Map()
	stored := storedBlocks(t, e.blocks)
	for i := int64(0); i < mp.Blocks(); i++ {
		blk := model[i*bs : min(size, (i+1)*bs)]
		h := mp.Entry(i)
		if blockstore.IsZero(blk) != h.IsZero() {
			t.Fatalf("block %d: zero content = %v but hole = %v", i, blockstore.IsZero(blk), h.IsZero())
		}
		if !h.IsZero() && (h != blockstore.Sum(blk) || !stored[h]) {
			t.Fatalf("block %d: entry %s not the stored hash of its content", i, h)
		}
	}
	if stored[blockstore.Sum(make([]byte, bs))] {
		t.Fatal("an all-zero block was stored")
	}
}

func TestHolesNotStored(t *testing.T) {
	ctx := context.Background()
	e := mustEnv(t, "")
	mustCreate(t, e, "vol-1", 64*bs)
	d := mustOpen(t, e, "vol-1")
	if err := d.WriteAt(ctx, make([]byte, 8*bs), 3*bs+7); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteAt(ctx, []byte("x"), 40*bs+1); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(storedBlocks(t, e.blocks)); n != 2 {
		t.Fatalf("%d blocks stored, want 2 (one data block, one chunk block)", n)
	}
	d = mustOpen(t, e, "vol-1")
	defer d.Close()
	var runs []string
	d.Extents(ctx, 0, 64*bs, func(off, l int64, hole bool) error {
		runs = append(runs, fmt.Sprintf("%d+%d:%v", off/bs, l/bs, hole))
		return nil
	})
	if got, want := fmt.Sprint(runs), "[0+40:true 40+1:false 41+23:true]"; got != want {
		t.Fatalf("extents %s, want %s", got, want)
	}
}

func TestManagerErrors(t *testing.T) {
	ctx := context.Background()
	e := mustEnv(t, "")
	mustCreate(t, e, "vol-1", 10*bs)
	if err := e.m.Create(ctx, "vol-1", bs); !errors.Is(err, blockmap.ErrExists) {
		t.Fatalf("Create twice: %v", err)
	}
	if err := e.m.Create(ctx, "vol-2", -1); !errors.Is(err, blockmap.ErrOutOfRange) {
		t.Fatalf("Create(-1): %v", err)
	}
	if err := e.m.Create(ctx, "../x", bs); err == nil {
		t.Fatal("Create with a path id succeeded")
	}
	if _, err := e.m.Open(ctx, "vol-missing"); !errors.Is(err, blockmap.ErrNotFound) {
		t.Fatalf("Open missing: %v", err)
	}
	if err := e.m.Clone(ctx, "vol-missing", "snap-1"); !errors.Is(err, blockmap.ErrNotFound) {
		t.Fatalf("Clone missing: %v", err)
	}
	if err := e.m.Resize(ctx, "vol-1", bs); !errors.Is(err, blockmap.ErrOutOfRange) {
		t.Fatalf("shrink: %v", err)
	}
	mustCreate(t, e, "snap-1", bs)
	if err := e.m.Clone(ctx, "vol-1", "snap-1"); !errors.Is(err, blockmap.ErrExists) {
		t.Fatalf("Clone onto existing: %v", err)
	}
	d := mustOpen(t, e, "vol-1")
	if err := e.m.Delete(ctx, "vol-1"); !errors.Is(err, blockmap.ErrBusy) {
		t.Fatalf("Delete while open: %v", err)
	}
	d.Close()
	if err := e.m.Delete(ctx, "vol-1"); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Delete(ctx, "vol-1"); err != nil {
		t.Fatalf("Delete twice: %v", err)
	}
	if _, err := e.m.Size(ctx, "vol-1"); !errors.Is(err, blockmap.ErrNotFound) {
		t.Fatalf("Size after Delete: %v", err)
	}
}

func TestStreaming(t *testing.T) {
	ctx := context.Background()
	e := mustEnv(t, "", blockmap.WithDirtyLimit(bs))
	size := int64(6*bs + 999)
	mustCreate(t, e, "vol-1", size)
	data := make([]byte, size-1000) // shorter input: the tail stays zero
	r := rand.New(rand.NewPCG(7, 7))
	for i := range data {
		if i/bs != 2 && i/bs != 3 { // blocks 2 and 3 zero
			data[i] = byte(r.UintN(256))
		}
	}
	n, err := e.m.WriteFrom(ctx, "vol-1", bytes.NewReader(data))
	if err != nil || n != int64(len(data)) {
		t.Fatalf("WriteFrom = %d, %v", n, err)
	}
	want := append(bytes.Clone(data), make([]byte, 1000)...)
	if got := readAll(t, e, "vol-1"); !bytes.Equal(got, want) {
		t.Fatal("ReadTo differs from what WriteFrom wrote")
	}
	v, err := e.m.View(ctx, "vol-1")
	if err != nil {
		t.Fatal(err)
	}
	var runs []string
	v.Extents(func(off, l int64, zero bool) error {
		runs = append(runs, fmt.Sprintf("%d+%d:%v", off, l, zero))
		return nil
	})
	if got, want := fmt.Sprint(runs), fmt.Sprintf("[0+%d:false %d+%d:true %d+%d:false %d+999:true]", 2*bs, 2*bs, 2*bs, 4*bs, 2*bs, 6*bs); got != want {
		t.Fatalf("View extents %s, want %s", got, want)
	}
	p := make([]byte, 3000)
	if n, err := v.ReadAt(p, size-1500); n != 1500 || err == nil {
		t.Fatalf("ReadAt at the end = %d, %v; want 1500, EOF", n, err)
	}
	if !bytes.Equal(p[:1500], want[size-1500:]) {
		t.Fatal("View.ReadAt differs")
	}
	v.Close()
	big := bytes.NewReader(make([]byte, size+1))
	if _, err := e.m.WriteFrom(ctx, "vol-1", big); !errors.Is(err, blockmap.ErrOutOfRange) {
		t.Fatalf("WriteFrom longer than the volume: %v", err)
	}
}

// TestReopenAfterFlush simulates kill -9: the first Manager is abandoned
// without Close, and a new one on the same directories must see every
// write acknowledged before the last Flush.
func TestReopenAfterFlush(t *testing.T) {
	ctx := context.Background()
	e := mustEnv(t, "")
	mustCreate(t, e, "vol-1", 8*bs)
	d := mustOpen(t, e, "vol-1")
	model := make([]byte, 8*bs)
	r := rand.New(rand.NewPCG(1, 1))
	for k := 0; k < 20; k++ {
		p := make([]byte, 1+r.IntN(bs))
		off := r.Int64N(int64(len(model) - len(p)))
		for i := range p {
			p[i] = byte(r.UintN(256))
		}
		if err := d.WriteAt(ctx, p, off); err != nil {
			t.Fatal(err)
		}
		copy(model[off:], p)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Unflushed writes after the Flush may or may not survive.
	if err := d.WriteAt(ctx, []byte("unflushed"), 0); err != nil {
		t.Fatal(err)
	}
	// A second volume flushed by FlushAll (graceful shutdown) survives too.
	mustCreate(t, e, "vol-2", bs)
	d3 := mustOpen(t, e, "vol-2")
	if err := d3.WriteAt(ctx, []byte("kept"), 10); err != nil {
		t.Fatal(err)
	}
	if err := e.m.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}

	e2 := mustEnv(t, e.dir)
	d2 := mustOpen(t, e2, "vol-1")
	defer d2.Close()
	got := make([]byte, len(model))
	if err := d2.ReadAt(ctx, got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[bs:], model[bs:]) {
		t.Fatal("flushed data lost after simulated crash")
	}
	if got := readAll(t, e2, "vol-2"); string(got[10:14]) != "kept" {
		t.Fatal("data flushed by FlushAll lost after simulated crash")
	}
}
