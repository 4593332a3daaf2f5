// Package maptest holds the conformance suites of the map stores:
// [RunRoots] for [blockmap.RootStore], the contract a storage backend (the
// local DirStore, a PostgreSQL one) implements, and [Run] for
// [blockmap.MapStore], the whole-map view. Every implementation runs them
// from its own tests, so that the garbage collector can rely on the same
// contract from all of them.
//
//	func TestConformance(t *testing.T) {
//		maptest.RunRoots(t, func(t *testing.T) blockmap.RootStore { ... })
//	}
package maptest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockstore"
)

// Run runs the suite. newStore must return a new, empty store for each call
// and arrange for its cleanup.
func Run(t *testing.T, newStore func(t *testing.T) blockmap.MapStore) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newStore(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, newStore(t)) })
	t.Run("Replace", func(t *testing.T) { testReplace(t, newStore(t)) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, newStore(t)) })
	t.Run("Walk", func(t *testing.T) { testWalk(t, newStore(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newStore(t)) })
	t.Run("CancelledContext", func(t *testing.T) { testCancelled(t, newStore(t)) })
}

// mapOf returns a map of size bytes whose every step-th block is allocated
// with a hash derived from seed.
func mapOf(t *testing.T, size int64, step, seed int64) *blockmap.Map {
	t.Helper()
	m, err := blockmap.New(size)
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); i < m.Blocks(); i += step {
		var h blockstore.Hash
		binary.LittleEndian.PutUint64(h[:], uint64(i+1))
		binary.LittleEndian.PutUint64(h[8:], uint64(seed))
		if err := m.SetEntry(i, h); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func mustLoad(t *testing.T, s blockmap.MapStore, id string) *blockmap.Map {
	t.Helper()
	m, err := s.Load(context.Background(), id)
	if err != nil {
		t.Fatalf("Load %s: %v", id, err)
	}
	return m
}

func mustSave(t *testing.T, s blockmap.MapStore, id string, m *blockmap.Map) {
	t.Helper()
	if err := s.Save(context.Background(), id, m); err != nil {
		t.Fatalf("Save %s: %v", id, err)
	}
}

func testRoundTrip(t *testing.T, s blockmap.MapStore) {
	for k, m := range []*blockmap.Map{
		mapOf(t, 0, 1, 1),
		mapOf(t, 12345, 1, 2),
		mapOf(t, 10<<30, 7, 3), // 10 GiB, one block in seven
		mapOf(t, blockmap.MaxSize, 1<<20, 4),
	} {
		id := fmt.Sprintf("vol-%d", k)
		mustSave(t, s, id, m)
		if got := mustLoad(t, s, id); !got.Equal(m) {
			t.Fatalf("%s: loaded map differs from the saved one", id)
		}
	}
}

func testNotFound(t *testing.T, s blockmap.MapStore) {
	if _, err := s.Load(context.Background(), "vol-missing"); !errors.Is(err, blockmap.ErrNotFound) {
		t.Fatalf("Load of a missing id: %v, want ErrNotFound", err)
	}
}

func testReplace(t *testing.T, s blockmap.MapStore) {
	a, b := mapOf(t, 100<<20, 1, 1), mapOf(t, 200<<20, 3, 2)
	mustSave(t, s, "vol-1", a)
	mustSave(t, s, "vol-1", b)
	if got := mustLoad(t, s, "vol-1"); !got.Equal(b) {
		t.Fatal("Save did not replace the map")
	}
	// Save must not retain the map: changing it afterwards changes nothing.
	b.SetEntry(0, blockstore.Hash{})
	if got := mustLoad(t, s, "vol-1"); got.Equal(b) {
		t.Fatal("the store kept a reference to the saved map")
	}
}

func testDelete(t *testing.T, s blockmap.MapStore) {
	ctx := context.Background()
	mustSave(t, s, "snap-1", mapOf(t, 1<<20, 1, 1))
	mustSave(t, s, "snap-2", mapOf(t, 1<<20, 1, 2))
	if err := s.Delete(ctx, "snap-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "snap-1"); !errors.Is(err, blockmap.ErrNotFound) {
		t.Fatalf("Load after Delete: %v", err)
	}
	if err := s.Delete(ctx, "snap-1"); err != nil {
		t.Fatalf("Delete of a missing id: %v", err)
	}
	mustLoad(t, s, "snap-2")
}

func testWalk(t *testing.T, s blockmap.MapStore) {
	ctx := context.Background()
	want := map[string]*blockmap.Map{}
	for k := 0; k < 20; k++ {
		id := fmt.Sprintf("snap-%02d", k)
		want[id] = mapOf(t, int64(k+1)<<20, 1, int64(k))
		mustSave(t, s, id, want[id])
	}
	s.Delete(ctx, "snap-03")
	delete(want, "snap-03")
	got := map[string]bool{}
	err := s.Walk(ctx, func(id string, m *blockmap.Map) error {
		if got[id] {
			return fmt.Errorf("%s reported twice", id)
		}
		got[id] = true
		if w := want[id]; w == nil || !w.Equal(m) {
			return fmt.Errorf("%s: unexpected map", id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Walk reported %d maps, want %d", len(got), len(want))
	}
	stop := errors.New("stop")
	n := 0
	if err := s.Walk(ctx, func(string, *blockmap.Map) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Walk did not stop on error: %v after %d calls", err, n)
	}
}

func testConcurrent(t *testing.T, s blockmap.MapStore) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 10; k++ {
				id := fmt.Sprintf("vol-%d", k%3) // shared ids: last Save wins, whole
				m := mapOf(t, 8<<20, 1, int64(g*100+k))
				if err := s.Save(ctx, id, m); err != nil {
					errs <- err
					return
				}
				got, err := s.Load(ctx, id)
				if err != nil {
					errs <- err
					return
				}
				if got.Size() != 8<<20 || got.Allocated() != 16 {
					errs <- fmt.Errorf("%s: torn map", id)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var ids []string
	s.Walk(ctx, func(id string, _ *blockmap.Map) error { ids = append(ids, id); return nil })
	sort.Strings(ids)
	if fmt.Sprint(ids) != "[vol-0 vol-1 vol-2]" {
		t.Fatalf("ids %v", ids)
	}
}

func testCancelled(t *testing.T, s blockmap.MapStore) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Save(ctx, "vol-1", mapOf(t, 1<<20, 1, 1)); err == nil {
		t.Fatal("Save with a cancelled context succeeded")
	}
	if _, err := s.Load(context.Background(), "vol-1"); !errors.Is(err, blockmap.ErrNotFound) {
		t.Fatalf("a cancelled Save left a map: %v", err)
	}
}

// RunRoots runs the RootStore suite. newStore must return a new, empty store
// for each call and arrange for its cleanup.
func RunRoots(t *testing.T, newStore func(t *testing.T) blockmap.RootStore) {
	t.Run("RoundTrip", func(t *testing.T) { testRootRoundTrip(t, newStore(t)) })
	t.Run("Replace", func(t *testing.T) { testRootReplace(t, newStore(t)) })
	t.Run("DeleteAndWalk", func(t *testing.T) { testRootDeleteWalk(t, newStore(t)) })
	t.Run("Concurrent", func(t *testing.T) { testRootConcurrent(t, newStore(t)) })
	t.Run("CancelledContext", func(t *testing.T) { testRootCancelled(t, newStore(t)) })
}

// rootOf returns a root of size bytes whose every step-th chunk has a hash
// derived from seed.
func rootOf(t *testing.T, size int64, step, seed int64) *blockmap.Root {
	t.Helper()
	blocks := (size + blockstore.BlockSize - 1) / blockstore.BlockSize
	n := (blocks + 255) / 256
	hs := make([]blockstore.Hash, n)
	for i := int64(0); i < n; i += step {
		binary.LittleEndian.PutUint64(hs[i][:], uint64(i+1))
		binary.LittleEndian.PutUint64(hs[i][8:], uint64(seed))
	}
	r, err := blockmap.NewRoot(size, hs)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustSaveRoot(t *testing.T, s blockmap.RootStore, id string, r *blockmap.Root) {
	t.Helper()
	if err := s.SaveRoot(context.Background(), id, r); err != nil {
		t.Fatalf("SaveRoot %s: %v", id, err)
	}
}

func mustLoadRoot(t *testing.T, s blockmap.RootStore, id string) *blockmap.Root {
	t.Helper()
	r, err := s.LoadRoot(context.Background(), id)
	if err != nil {
		t.Fatalf("LoadRoot %s: %v", id, err)
	}
	return r
}

func testRootRoundTrip(t *testing.T, s blockmap.RootStore) {
	for k, r := range []*blockmap.Root{
		rootOf(t, 0, 1, 1),
		rootOf(t, 12345, 1, 2),
		rootOf(t, 10<<30, 3, 3),
		rootOf(t, blockmap.MaxSize, 1000, 4),
	} {
		id := fmt.Sprintf("vol-%d", k)
		mustSaveRoot(t, s, id, r)
		if got := mustLoadRoot(t, s, id); !got.Equal(r) {
			t.Fatalf("%s: loaded root differs from the saved one", id)
		}
	}
	if _, err := s.LoadRoot(context.Background(), "vol-missing"); !errors.Is(err, blockmap.ErrNotFound) {
		t.Fatalf("LoadRoot of a missing id: %v, want ErrNotFound", err)
	}
}

func testRootReplace(t *testing.T, s blockmap.RootStore) {
	a, b := rootOf(t, 1<<30, 1, 1), rootOf(t, 2<<30, 2, 2)
	mustSaveRoot(t, s, "vol-1", a)
	mustSaveRoot(t, s, "vol-1", b)
	if got := mustLoadRoot(t, s, "vol-1"); !got.Equal(b) {
		t.Fatal("SaveRoot did not replace the root")
	}
}

func testRootDeleteWalk(t *testing.T, s blockmap.RootStore) {
	ctx := context.Background()
	want := map[string]*blockmap.Root{}
	for k := 0; k < 12; k++ {
		id := fmt.Sprintf("snap-%02d", k)
		want[id] = rootOf(t, int64(k+1)<<28, 1, int64(k))
		mustSaveRoot(t, s, id, want[id])
	}
	for _, id := range []string{"snap-03", "snap-03", "snap-missing"} {
		if err := s.Delete(ctx, id); err != nil {
			t.Fatalf("Delete %s: %v", id, err)
		}
	}
	delete(want, "snap-03")
	if _, err := s.LoadRoot(ctx, "snap-03"); !errors.Is(err, blockmap.ErrNotFound) {
		t.Fatalf("LoadRoot after Delete: %v", err)
	}
	got := map[string]bool{}
	err := s.WalkRoots(ctx, func(id string, r *blockmap.Root) error {
		if got[id] {
			return fmt.Errorf("%s reported twice", id)
		}
		got[id] = true
		if w := want[id]; w == nil || !w.Equal(r) {
			return fmt.Errorf("%s: unexpected root", id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("WalkRoots reported %d roots, want %d", len(got), len(want))
	}
	stop := errors.New("stop")
	n := 0
	if err := s.WalkRoots(ctx, func(string, *blockmap.Root) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("WalkRoots did not stop on error: %v after %d calls", err, n)
	}
}

func testRootConcurrent(t *testing.T, s blockmap.RootStore) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 10; k++ {
				id := fmt.Sprintf("vol-%d", k%3)
				r := rootOf(t, 4<<30, 1, int64(g*100+k))
				if err := s.SaveRoot(ctx, id, r); err != nil {
					errs <- err
					return
				}
				got, err := s.LoadRoot(ctx, id)
				if err != nil {
					errs <- err
					return
				}
				if got.Size() != 4<<30 || len(got.Chunks()) != 32 {
					errs <- fmt.Errorf("%s: torn root", id)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func testRootCancelled(t *testing.T, s blockmap.RootStore) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.SaveRoot(ctx, "vol-1", rootOf(t, 1<<20, 1, 1)); err == nil {
		t.Fatal("SaveRoot with a cancelled context succeeded")
	}
	if _, err := s.LoadRoot(context.Background(), "vol-1"); !errors.Is(err, blockmap.ErrNotFound) {
		t.Fatalf("a cancelled SaveRoot left a root: %v", err)
	}
}
