// Package blocktest is the conformance suite every [blockstore.Store]
// backend runs from its own tests, so that the local directory backend and
// an S3 backend provably honour the same contract (hash verification, the
// written-time refresh the garbage collector depends on, concurrency).
//
// A backend test calls:
//
//	func TestConformance(t *testing.T) {
//		blocktest.Run(t, func(t *testing.T) blockstore.Store { ... })
//	}
//
// If the returned store also implements [Corrupter], the corruption subtests
// run too.
package blocktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/omiproject/omi/blockstore"
)

// Corrupter is implemented by test wrappers of a backend that can damage a
// stored block behind the store's back (flip a byte of the stored object), so
// the suite can check that Get detects it.
type Corrupter interface {
	Corrupt(t *testing.T, h blockstore.Hash)
}

// Run runs the conformance suite. newStore must return a new, empty store
// for each call and arrange for it to be closed (t.Cleanup); Run never closes
// it.
func Run(t *testing.T, newStore func(t *testing.T) blockstore.Store) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newStore(t)) })
	t.Run("GetIntoBuffer", func(t *testing.T) { testGetIntoBuffer(t, newStore(t)) })
	t.Run("IdempotentPut", func(t *testing.T) { testIdempotentPut(t, newStore(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, newStore(t)) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, newStore(t)) })
	t.Run("DeleteIfWrittenBefore", func(t *testing.T) { testDeleteIfWrittenBefore(t, newStore(t)) })
	t.Run("Walk", func(t *testing.T) { testWalk(t, newStore(t)) })
	t.Run("WalkWhileDeleting", func(t *testing.T) { testWalkWhileDeleting(t, newStore(t)) })
	t.Run("ConcurrentPuts", func(t *testing.T) { testConcurrentPuts(t, newStore(t)) })
	t.Run("RePutRefreshesWrittenTime", func(t *testing.T) { testRefresh(t, newStore(t)) })
	t.Run("CancelledContext", func(t *testing.T) { testCancelled(t, newStore(t)) })
	t.Run("Corruption", func(t *testing.T) {
		s := newStore(t)
		c, ok := s.(Corrupter)
		if !ok {
			t.Skip("store does not implement blocktest.Corrupter")
		}
		testCorruption(t, s, c)
	})
}

// Data kinds used by the suite and by benchmarks.
const (
	KindText   = iota // text-like bytes: compresses about 3:1
	KindRandom        // incompressible
	KindMixed         // text, zero runs and random runs, like an OS disk
)

// Data returns n deterministic bytes of the given kind for seed. Different
// seeds give different content, so blocks do not collide unintentionally.
func Data(kind int, seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(kind)+0x9e3779b97f4a7c15))
	b := make([]byte, n)
	switch kind {
	case KindRandom:
		var key [32]byte
		for i := range key {
			key[i] = byte(r.Uint32())
		}
		rand.NewChaCha8(key).Read(b)
	case KindText:
		fillText(r, b)
	default:
		for off := 0; off < n; {
			run := min(n-off, 512+r.IntN(16<<10))
			switch r.IntN(10) {
			case 0, 1, 2: // zeros
			case 3, 4: // random (compressed files, binaries)
				for i := off; i < off+run; i++ {
					b[i] = byte(r.Uint32())
				}
			default:
				fillText(r, b[off:off+run])
			}
			off += run
		}
	}
	return b
}

var words = []string{"the", "omi", "kernel", "volume", "snapshot", "image", "usr", "lib", "x86_64",
	"config", "return", "error", "func", "data", "block", "/etc/", "0x7f", "libc.so.6", "\n", "\t", " ", ": ", "ELF"}

func fillText(r *rand.Rand, b []byte) {
	for i := 0; i < len(b); {
		w := words[r.IntN(len(words))]
		if r.IntN(8) == 0 {
			w = fmt.Sprintf("%d", r.Uint32()%100000)
		}
		i += copy(b[i:], w)
		if i < len(b) {
			b[i] = ' '
			i++
		}
	}
}

func put(t *testing.T, s blockstore.Store, data []byte) blockstore.Hash {
	t.Helper()
	h, err := s.Put(context.Background(), data)
	if err != nil {
		t.Fatalf("Put(%d bytes): %v", len(data), err)
	}
	if h != blockstore.Sum(data) {
		t.Fatalf("Put returned %s, want SHA-256 %s", h, blockstore.Sum(data))
	}
	return h
}

func mustGet(t *testing.T, s blockstore.Store, h blockstore.Hash, want []byte) {
	t.Helper()
	got, err := s.Get(context.Background(), h, nil)
	if err != nil {
		t.Fatalf("Get(%s): %v", h, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%s): %d bytes differ from the %d put", h, len(got), len(want))
	}
}

func walkAll(t *testing.T, s blockstore.Store) map[blockstore.Hash]time.Time {
	t.Helper()
	m := map[blockstore.Hash]time.Time{}
	err := s.Walk(context.Background(), func(h blockstore.Hash, w time.Time) error {
		if _, dup := m[h]; dup {
			return fmt.Errorf("Walk reported %s twice", h)
		}
		m[h] = w
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return m
}

func testRoundTrip(t *testing.T, s blockstore.Store) {
	ctx := context.Background()
	sizes := []int{1, 100, 4096, 300000, blockstore.BlockSize - 1, blockstore.BlockSize}
	for _, kind := range []int{KindText, KindRandom, KindMixed} {
		for i, n := range sizes {
			data := Data(kind, uint64(i), n)
			h := put(t, s, data)
			if ok, err := s.Has(ctx, h); err != nil || !ok {
				t.Fatalf("Has after Put = %v, %v", ok, err)
			}
			mustGet(t, s, h, data)
		}
	}
	// A block with a single non-zero byte and a nearly empty one.
	sparse := make([]byte, blockstore.BlockSize)
	sparse[blockstore.BlockSize-1] = 1
	mustGet(t, s, put(t, s, sparse), sparse)
}

func testGetIntoBuffer(t *testing.T, s blockstore.Store) {
	ctx := context.Background()
	data := Data(KindMixed, 7, blockstore.BlockSize)
	h := put(t, s, data)
	big := make([]byte, 10, 2*blockstore.BlockSize)
	got, err := s.Get(ctx, h, big)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get into large buffer: %v", err)
	}
	if &got[0] != &big[:1][0] {
		t.Error("Get did not reuse a buffer with enough capacity")
	}
	small := make([]byte, 0, 10)
	got, err = s.Get(ctx, h, small)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get into small buffer: %v", err)
	}
}

func testIdempotentPut(t *testing.T, s blockstore.Store) {
	data := Data(KindText, 1, 200000)
	h1 := put(t, s, data)
	h2 := put(t, s, bytes.Clone(data))
	if h1 != h2 {
		t.Fatalf("same data, different hashes %s %s", h1, h2)
	}
	if n := len(walkAll(t, s)); n != 1 {
		t.Fatalf("Walk lists %d blocks after putting one block twice", n)
	}
	mustGet(t, s, h1, data)
}

func testNotFound(t *testing.T, s blockstore.Store) {
	ctx := context.Background()
	h := blockstore.Sum([]byte("never stored"))
	if _, err := s.Get(ctx, h, nil); !errors.Is(err, blockstore.ErrNotFound) {
		t.Fatalf("Get of missing block = %v, want ErrNotFound", err)
	}
	if ok, err := s.Has(ctx, h); err != nil || ok {
		t.Fatalf("Has of missing block = %v, %v", ok, err)
	}
	if err := s.Delete(ctx, h); err != nil {
		t.Fatalf("Delete of missing block: %v", err)
	}
	if ok, err := s.DeleteIfWrittenBefore(ctx, h, time.Now().Add(time.Hour)); err != nil || ok {
		t.Fatalf("DeleteIfWrittenBefore of missing block = %v, %v", ok, err)
	}
}

func testDelete(t *testing.T, s blockstore.Store) {
	ctx := context.Background()
	a, b := Data(KindMixed, 1, 5000), Data(KindMixed, 2, 5000)
	ha, hb := put(t, s, a), put(t, s, b)
	if err := s.Delete(ctx, ha); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Has(ctx, ha); ok {
		t.Fatal("Has after Delete")
	}
	if _, err := s.Get(ctx, ha, nil); !errors.Is(err, blockstore.ErrNotFound) {
		t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
	}
	mustGet(t, s, hb, b)
	put(t, s, a)
	mustGet(t, s, ha, a)
}

func testDeleteIfWrittenBefore(t *testing.T, s blockstore.Store) {
	ctx := context.Background()
	data := Data(KindText, 3, 10000)
	h := put(t, s, data)
	w, ok := walkAll(t, s)[h]
	if !ok {
		t.Fatal("Walk does not list the block")
	}
	for _, cut := range []time.Time{w, w.Add(-time.Second)} {
		if del, err := s.DeleteIfWrittenBefore(ctx, h, cut); err != nil || del {
			t.Fatalf("DeleteIfWrittenBefore(written%+v) = %v, %v; want kept", cut.Sub(w), del, err)
		}
	}
	mustGet(t, s, h, data)
	if del, err := s.DeleteIfWrittenBefore(ctx, h, w.Add(time.Second)); err != nil || !del {
		t.Fatalf("DeleteIfWrittenBefore(written+1s) = %v, %v; want deleted", del, err)
	}
	if ok, _ := s.Has(ctx, h); ok {
		t.Fatal("block still stored")
	}
}

func testWalk(t *testing.T, s blockstore.Store) {
	ctx := context.Background()
	if n := len(walkAll(t, s)); n != 0 {
		t.Fatalf("new store lists %d blocks", n)
	}
	before := time.Now()
	want := map[blockstore.Hash]bool{}
	for i := range 64 {
		want[put(t, s, Data(KindMixed, uint64(i), 1000+i))] = true
	}
	got := walkAll(t, s)
	if len(got) != len(want) {
		t.Fatalf("Walk lists %d blocks, %d stored", len(got), len(want))
	}
	for h, w := range got {
		if !want[h] {
			t.Fatalf("Walk lists unknown block %s", h)
		}
		// Clocks of remote stores may differ a little from ours.
		if w.Before(before.Add(-5*time.Minute)) || w.After(time.Now().Add(5*time.Minute)) {
			t.Fatalf("written time %v is not around now (%v)", w, before)
		}
	}
	stop := errors.New("stop")
	n := 0
	err := s.Walk(ctx, func(blockstore.Hash, time.Time) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Walk with failing fn = %v after %d calls", err, n)
	}
}

func testWalkWhileDeleting(t *testing.T, s blockstore.Store) {
	ctx := context.Background()
	for i := range 40 {
		put(t, s, Data(KindText, uint64(i), 300))
	}
	deleted := map[blockstore.Hash]bool{}
	i := 0
	err := s.Walk(ctx, func(h blockstore.Hash, _ time.Time) error {
		i++
		if i%2 == 0 {
			deleted[h] = true
			return s.Delete(ctx, h)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if i != 40 {
		t.Fatalf("Walk visited %d of 40 blocks while deleting", i)
	}
	left := walkAll(t, s)
	if len(left) != 40-len(deleted) {
		t.Fatalf("%d blocks left, want %d", len(left), 40-len(deleted))
	}
	for h := range left {
		if deleted[h] {
			t.Fatalf("deleted block %s still listed", h)
		}
	}
}

func testConcurrentPuts(t *testing.T, s blockstore.Store) {
	const workers, shared, own = 16, 8, 4
	sharedData := make([][]byte, shared)
	for i := range sharedData {
		sharedData[i] = Data(KindMixed, uint64(1000+i), 64<<10)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			ctx := context.Background()
			for i := range shared + own {
				var data []byte
				if i < shared {
					data = sharedData[(i+w)%shared] // different orders per worker
				} else {
					data = Data(KindText, uint64(w*100+i), 20000+w)
				}
				h, err := s.Put(ctx, data)
				if err != nil {
					errs <- err
					return
				}
				got, err := s.Get(ctx, h, nil)
				if err != nil {
					errs <- fmt.Errorf("Get right after Put: %w", err)
					return
				}
				if !bytes.Equal(got, data) {
					errs <- errors.New("Get right after Put returned other data")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n, want := len(walkAll(t, s)), shared+workers*own; n != want {
		t.Fatalf("Walk lists %d blocks, want %d", n, want)
	}
	for _, d := range sharedData {
		mustGet(t, s, blockstore.Sum(d), d)
	}
}

func testRefresh(t *testing.T, s blockstore.Store) {
	ctx := context.Background()
	data := Data(KindText, 5, 4096)
	h := put(t, s, data)
	w1 := walkAll(t, s)[h]
	// Re-Put until the store's clock, whatever its resolution, has moved
	// past w1. A store that never refreshes fails after the deadline.
	deadline := time.Now().Add(5 * time.Second)
	var w2 time.Time
	for {
		time.Sleep(2 * time.Millisecond)
		put(t, s, data)
		w2 = walkAll(t, s)[h]
		if w2.After(w1) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("re-Put did not refresh the written time (still %v)", w2)
		}
	}
	// A sweep whose cutoff lies between the two Puts must keep the block.
	if del, err := s.DeleteIfWrittenBefore(ctx, h, w2); err != nil || del {
		t.Fatalf("DeleteIfWrittenBefore(refreshed time) = %v, %v; want kept", del, err)
	}
	mustGet(t, s, h, data)
}

func testCancelled(t *testing.T, s blockstore.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	data := Data(KindText, 9, 1000)
	if _, err := s.Put(ctx, data); err == nil {
		t.Error("Put with a cancelled context succeeded")
	}
	h := put(t, s, data)
	if _, err := s.Get(ctx, h, nil); err == nil {
		t.Error("Get with a cancelled context succeeded")
	}
}

func testCorruption(t *testing.T, s blockstore.Store, c Corrupter) {
	ctx := context.Background()
	for _, kind := range []int{KindText, KindRandom} {
		data := Data(kind, 11, blockstore.BlockSize)
		h := put(t, s, data)
		c.Corrupt(t, h)
		got, err := s.Get(ctx, h, nil)
		if !errors.Is(err, blockstore.ErrCorrupt) {
			t.Fatalf("kind %d: Get of corrupted block = %v, want ErrCorrupt", kind, err)
		}
		if got != nil {
			t.Fatalf("kind %d: Get of corrupted block returned %d bytes", kind, len(got))
		}
	}
}
