package blockmap_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/gc"
)

// fillBlock writes a block of value v at block i.
func fillBlock(t testing.TB, d *blockmap.Device, i int64, v uint32) {
	t.Helper()
	p := make([]byte, bs)
	for k := 0; k < bs; k += 4096 {
		binary.LittleEndian.PutUint32(p[k:], v)
	}
	if err := d.WriteAt(context.Background(), p, i*bs); err != nil {
		t.Error(err)
	}
}

func blockValue(p []byte) uint32 { return binary.LittleEndian.Uint32(p) }

// TestCloneConsistentInstant clones a volume while one writer keeps
// rewriting its blocks in rounds (round k writes value k to blocks 0..n-1 in
// order). A consistent clone holds value k+1 on a prefix and k on the rest,
// and includes every round finished before Clone was called.
func TestCloneConsistentInstant(t *testing.T) {
	ctx := context.Background()
	e := mustEnv(t, "", blockmap.WithDirtyLimit(3*bs))
	const n = 6
	mustCreate(t, e, "vol-1", n*bs)
	d := mustOpen(t, e, "vol-1")
	defer d.Close()
	var done atomic.Uint32 // last finished round
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := uint32(1); ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			for i := int64(0); i < n; i++ {
				fillBlock(t, d, i, k)
			}
			done.Store(k)
		}
	}()
	for c := 0; c < 8; c++ {
		time.Sleep(20 * time.Millisecond)
		before := done.Load()
		id := fmt.Sprintf("snap-%d", c)
		if err := e.m.Clone(ctx, "vol-1", id); err != nil {
			t.Fatal(err)
		}
		data := readAll(t, e, id)
		vals := make([]uint32, n)
		for i := range vals {
			vals[i] = blockValue(data[i*bs:])
		}
		for i := 1; i < n; i++ {
			if vals[i] > vals[i-1] || vals[0]-vals[i] > 1 {
				t.Fatalf("clone %d is not an instant: block values %v", c, vals)
			}
		}
		if vals[n-1] < before {
			t.Fatalf("clone %d misses round %d acknowledged before Clone: %v", c, before, vals)
		}
	}
	close(stop)
	wg.Wait()
}

// TestCollectExact checks that a collection frees exactly the blocks no
// saved map references, and nothing else.
func TestCollectExact(t *testing.T) {
	ctx := context.Background()
	e := mustEnv(t, "")
	mustCreate(t, e, "vol-1", 8*bs)
	d := mustOpen(t, e, "vol-1")
	for i := int64(0); i < 8; i++ {
		fillBlock(t, d, i, uint32(100+i))
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Clone(ctx, "vol-1", "snap-1"); err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < 4; i++ { // blocks 0-3 now differ from snap-1
		fillBlock(t, d, i, uint32(200+i))
	}
	d.Close()
	mustCreate(t, e, "vol-2", 4*bs)
	d2 := mustOpen(t, e, "vol-2")
	for i := int64(0); i < 4; i++ {
		fillBlock(t, d2, i, uint32(300+i))
	}
	d2.Close()
	// Orphans written directly, and blocks only vol-2 references.
	for k := 0; k < 3; k++ {
		if _, err := e.blocks.Put(ctx, []byte(fmt.Sprintf("orphan %d", k))); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.m.Delete(ctx, "vol-2"); err != nil {
		t.Fatal(err)
	}
	before := storedBlocks(t, e.blocks)
	live := referenced(t, e.maps)
	// Chunk blocks: A (vol-1's first flush, shared by snap-1), B (vol-1
	// after the rewrite), C (vol-2, deleted).
	if len(before) != 8+4+4+3+3 || len(live) != 12+2 {
		t.Fatalf("%d stored, %d referenced; want 22, 14", len(before), len(live))
	}
	st, err := gc.Collect(ctx, e.blocks, e.m.LiveHashes)
	if err != nil {
		t.Fatal(err)
	}
	after := storedBlocks(t, e.blocks)
	if st.Freed != 8 || st.Scanned != 22 || st.Live != 14 || len(after) != 14 {
		t.Fatalf("stats %+v, %d blocks left; want 8 freed of 22, 14 left", st, len(after))
	}
	for h := range live {
		if !after[h] {
			t.Fatalf("referenced block %s freed", h)
		}
	}
	// Everything still reads back.
	data := readAll(t, e, "snap-1")
	for i := 0; i < 8; i++ {
		if v := blockValue(data[i*bs:]); v != uint32(100+i) {
			t.Fatalf("snap-1 block %d = %d", i, v)
		}
	}
	// A failing marking deletes nothing.
	e.m.Delete(ctx, "snap-1")
	boom := errors.New("boom")
	_, err = gc.Collect(ctx, e.blocks, func(ctx context.Context, fn func(blockstore.Hash) error) error { return boom })
	if !errors.Is(err, boom) || len(storedBlocks(t, e.blocks)) != 14 {
		t.Fatalf("failed marking: err %v, %d blocks left", err, len(storedBlocks(t, e.blocks)))
	}
}

// TestCollectConcurrent runs writers, snapshots, volumes from snapshots,
// deletes, exports and collections at the same time, then checks that no
// referenced block was freed and that the volumes hold what was written.
func TestCollectConcurrent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := mustEnv(t, "", blockmap.WithDirtyLimit(2*bs), blockmap.WithCacheBlocks(4))
	const vols, nblocks = 2, 6
	size := int64(nblocks*bs - 777)
	models := make([][]byte, vols)
	for v := range vols {
		mustCreate(t, e, fmt.Sprintf("vol-%d", v), size)
		models[v] = make([]byte, size)
	}
	var wg sync.WaitGroup
	errc := make(chan error, 100)
	report := func(err error) {
		if err != nil && ctx.Err() == nil {
			select {
			case errc <- err:
			default:
			}
			cancel()
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	running := func() bool { return ctx.Err() == nil && time.Now().Before(deadline) }

	// Writers: random writes, trims, flushes; a fresh Device now and then.
	for v := range vols {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(v), 1))
			id := fmt.Sprintf("vol-%d", v)
			d, err := e.m.Open(ctx, id)
			if err != nil {
				report(err)
				return
			}
			for step := 0; running(); step++ {
				off := r.Int64N(size)
				l := 1 + r.Int64N(min(bs, size-off))
				switch r.IntN(8) {
				case 0:
					err = d.Trim(ctx, off, l)
					clear(models[v][off : off+l])
				case 1:
					err = d.Flush(ctx)
				case 2:
					if err = d.Close(); err == nil {
						d, err = e.m.Open(ctx, id)
					}
				default:
					p := make([]byte, l)
					for i := range p {
						p[i] = byte(r.UintN(4)) // compressible, often repeated
					}
					err = d.WriteAt(ctx, p, off)
					copy(models[v][off:], p)
				}
				if err != nil {
					report(fmt.Errorf("%s step %d: %w", id, step, err))
					return
				}
			}
			report(d.Close())
		}()
	}
	// Snapshots, volumes from snapshots and deletes.
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(9, 9))
		var snaps []string
		for k := 0; running(); k++ {
			src := fmt.Sprintf("vol-%d", r.IntN(vols))
			if len(snaps) > 0 && r.IntN(3) == 0 {
				src = snaps[r.IntN(len(snaps))]
			}
			id := fmt.Sprintf("snap-%d", k)
			if err := e.m.Clone(ctx, src, id); err != nil {
				report(err)
				return
			}
			snaps = append(snaps, id)
			if len(snaps) > 4 {
				j := r.IntN(len(snaps))
				err := e.m.Delete(ctx, snaps[j])
				if err != nil && !errors.Is(err, blockmap.ErrBusy) {
					report(err)
					return
				}
				if err == nil {
					snaps = append(snaps[:j], snaps[j+1:]...)
				}
			}
		}
	}()
	// Exports of whatever exists.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for running() {
			err := e.maps.Walk(ctx, func(id string, _ *blockmap.Map) error {
				_, err := e.m.ReadTo(ctx, id, io.Discard)
				if errors.Is(err, blockmap.ErrNotFound) {
					return nil
				}
				return err
			})
			report(err)
		}
	}()
	// Collections.
	var collections, freed atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for running() {
			st, err := gc.Collect(ctx, e.blocks, e.m.LiveHashes)
			report(err)
			collections.Add(1)
			freed.Add(st.Freed)
		}
	}()
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	cancel()
	t.Logf("%d collections freed %d blocks", collections.Load(), freed.Load())
	if collections.Load() == 0 || freed.Load() == 0 {
		t.Fatal("the collector never ran or never freed anything: the test proves nothing")
	}
	// One more collection, then every referenced block must be stored.
	if _, err := gc.Collect(context.Background(), e.blocks, e.m.LiveHashes); err != nil {
		t.Fatal(err)
	}
	stored := storedBlocks(t, e.blocks)
	for h := range referenced(t, e.maps) {
		if !stored[h] {
			t.Fatalf("referenced block %s was freed", h)
		}
	}
	for v := range vols {
		if got := readAll(t, e, fmt.Sprintf("vol-%d", v)); !bytes.Equal(got, models[v]) {
			t.Fatalf("vol-%d differs from its model", v)
		}
	}
}

// pausingStore is a RootStore whose WalkRoots lists the ids first, calls
// pause, then loads each root: it widens the window in which maps change
// during a marking to the whole pause.
type pausingStore struct {
	blockmap.RootStore
	pause func()
}

func (s pausingStore) WalkRoots(ctx context.Context, fn func(string, *blockmap.Root) error) error {
	var ids []string
	if err := s.RootStore.WalkRoots(ctx, func(id string, _ *blockmap.Root) error { ids = append(ids, id); return nil }); err != nil {
		return err
	}
	if s.pause != nil {
		s.pause()
	}
	for _, id := range ids {
		r, err := s.RootStore.LoadRoot(ctx, id)
		if errors.Is(err, blockmap.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if err := fn(id, r); err != nil {
			return err
		}
	}
	return nil
}

// TestWriteBarrier moves a block's only reference from a map the marking
// has not read yet to one it will not read (a clone made during the
// marking, then the source overwritten): the write barrier must keep it.
func TestWriteBarrier(t *testing.T) {
	ctx := context.Background()
	e := mustEnv(t, "")
	paused, resume := make(chan struct{}), make(chan struct{})
	ps := pausingStore{RootStore: e.maps, pause: func() { close(paused); <-resume }}
	m := blockmap.NewManager(e.blocks, ps)
	if err := m.Create(ctx, "vol-1", 2*bs); err != nil {
		t.Fatal(err)
	}
	d, err := m.Open(ctx, "vol-1")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fillBlock(t, d, 0, 1)
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	type result struct {
		st  gc.Stats
		err error
	}
	done := make(chan result)
	go func() {
		st, err := gc.Collect(ctx, e.blocks, m.LiveHashes)
		done <- result{st, err}
	}()
	<-paused
	if err := m.Clone(ctx, "vol-1", "snap-1"); err != nil {
		t.Fatal(err)
	}
	fillBlock(t, d, 0, 2)
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	close(resume)
	if r := <-done; r.err != nil {
		t.Fatal(r.err)
	}
	data := readAll(t, mustEnv(t, e.dir), "snap-1")
	if v := blockValue(data); v != 1 {
		t.Fatalf("snap-1 block 0 = %d, want 1", v)
	}
}

// TestPinnedWriteback collects while a device holds blocks it wrote back but
// has not saved in its map yet: the pins must keep them.
func TestPinnedWriteback(t *testing.T) {
	ctx := context.Background()
	e := mustEnv(t, "", blockmap.WithDirtyLimit(bs))
	mustCreate(t, e, "vol-1", 4*bs)
	d := mustOpen(t, e, "vol-1")
	defer d.Close()
	for i := int64(0); i < 4; i++ {
		fillBlock(t, d, i, 7) // the second block crosses the limit: write-back
	}
	if n := len(storedBlocks(t, e.blocks)); n == 0 {
		t.Fatal("nothing written back: the test proves nothing")
	}
	time.Sleep(2 * time.Millisecond)
	if _, err := gc.Collect(ctx, e.blocks, e.m.LiveHashes); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	data := readAll(t, mustEnv(t, e.dir), "vol-1")
	for i := 0; i < 4; i++ {
		if v := blockValue(data[i*bs:]); v != 7 {
			t.Fatalf("block %d = %d, want 7", i, v)
		}
	}
}
