package gc_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/blockstore/local"
	"github.com/omiproject/omi/gc"
)

func openStore(tb testing.TB) *local.Store {
	tb.Helper()
	s, err := local.Open(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func put(tb testing.TB, s blockstore.Store, n int, prefix string) []blockstore.Hash {
	tb.Helper()
	var hs []blockstore.Hash
	for i := 0; i < n; i++ {
		h, err := s.Put(context.Background(), []byte(fmt.Sprintf("%s block %d", prefix, i)))
		if err != nil {
			tb.Fatal(err)
		}
		hs = append(hs, h)
	}
	return hs
}

func liveOf(hs []blockstore.Hash) gc.LiveFunc {
	return func(ctx context.Context, fn func(blockstore.Hash) error) error {
		for _, h := range hs {
			if err := fn(h); err != nil {
				return err
			}
		}
		return fn(blockstore.Hash{}) // zero hashes are ignored
	}
}

func TestCollect(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	live := put(t, s, 5, "live")
	dead := put(t, s, 7, "dead")
	time.Sleep(time.Millisecond)
	st, err := gc.Collect(ctx, s, liveOf(append(live, live[0])))
	if err != nil {
		t.Fatal(err)
	}
	if st.Live != 5 || st.Scanned != 12 || st.Freed != 7 || st.Young != 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, h := range live {
		if ok, _ := s.Has(ctx, h); !ok {
			t.Fatalf("live block %s freed", h)
		}
	}
	for _, h := range dead {
		if ok, _ := s.Has(ctx, h); ok {
			t.Fatalf("dead block %s kept", h)
		}
	}
}

// TestCollectKeepsRecentPuts re-Puts an unreferenced block and Puts a new
// one while the marking runs: neither may be freed by this collection.
func TestCollectKeepsRecentPuts(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	old := put(t, s, 3, "old")
	time.Sleep(time.Millisecond)
	var fresh []blockstore.Hash
	st, err := gc.Collect(ctx, s, func(ctx context.Context, fn func(blockstore.Hash) error) error {
		fresh = put(t, s, 2, "fresh")
		_, err := s.Put(ctx, []byte("old block 0"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Freed != 2 || st.Young != 3 {
		t.Fatalf("stats %+v; want 2 freed, 3 young", st)
	}
	for _, h := range append(fresh, old[0]) {
		if ok, _ := s.Has(ctx, h); !ok {
			t.Fatalf("block %s Put during the collection was freed", h)
		}
	}
	// The next collection frees them.
	time.Sleep(time.Millisecond)
	if st, err := gc.Collect(ctx, s, liveOf(nil)); err != nil || st.Freed != 3 {
		t.Fatalf("second collection: %+v, %v", st, err)
	}
}

func TestCollectMarkError(t *testing.T) {
	s := openStore(t)
	put(t, s, 3, "x")
	boom := errors.New("boom")
	_, err := gc.Collect(context.Background(), s, func(context.Context, func(blockstore.Hash) error) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	n := 0
	s.Walk(context.Background(), func(blockstore.Hash, time.Time) error { n++; return nil })
	if n != 3 {
		t.Fatalf("%d blocks left after a failed marking, want 3", n)
	}
}
