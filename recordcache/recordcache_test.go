package recordcache_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/recordcache"
	"github.com/omiproject/omi/sqlite"
	"github.com/omiproject/omi/storetest"
)

var bg = context.Background()

func openSQLite(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(bg, filepath.Join(t.TempDir(), "omi.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// The wrapper is a store like any other: the conformance suite passes
// through it.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) omi.Store {
		s := recordcache.Wrap(openSQLite(t), 0)
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func image(id, owner, doc string, public bool, shared ...string) omi.Record {
	return omi.Record{Kind: omi.KindImage, ID: id, Owner: owner, Public: public, SharedWith: shared,
		Doc: []byte(`{"v":"` + doc + `"}`)}
}

func put(t *testing.T, s omi.Store, recs ...omi.Record) {
	t.Helper()
	if err := s.Update(bg, func(tx omi.Tx) error {
		for _, r := range recs {
			if err := tx.Put(r); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// docs returns "id=doc" for each record GetIDs finds, sorted.
func docs(t *testing.T, s omi.IDReader, ids ...string) []string {
	t.Helper()
	recs, err := s.GetIDs(bg, omi.KindImage, ids)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, fmt.Sprintf("%s=%s/%s/%v/%v", r.ID, r.Doc, r.Owner, r.Public, r.SharedWith))
	}
	slices.Sort(out)
	return out
}

// A write made through the wrapper is seen by the next read, whatever was
// cached: a change of document, of visibility, of shares, a delete.
func TestReadAfterWrite(t *testing.T) {
	s := recordcache.Wrap(openSQLite(t), 0)
	put(t, s, image("ami-1", "a", "one", false), image("ami-2", "a", "two", false))
	want := []string{`ami-1={"v":"one"}/a/false/[]`, `ami-2={"v":"two"}/a/false/[]`}
	for range 2 { // the second read is served from memory
		if got := docs(t, s, "ami-1", "ami-2", "ami-1"); !slices.Equal(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if hits, _ := s.Stats(); hits == 0 {
		t.Fatal("the second read was not served from the cache")
	}
	put(t, s, image("ami-1", "a", "uno", true, "b", "c"))
	want = []string{`ami-1={"v":"uno"}/a/true/[b c]`, `ami-2={"v":"two"}/a/false/[]`}
	if got := docs(t, s, "ami-1", "ami-2"); !slices.Equal(got, want) {
		t.Fatalf("after Put: got %q, want %q", got, want)
	}
	if err := s.Update(bg, func(tx omi.Tx) error { return tx.Delete(omi.KindImage, "ami-2") }); err != nil {
		t.Fatal(err)
	}
	want = want[:1]
	if got := docs(t, s, "ami-1", "ami-2"); !slices.Equal(got, want) {
		t.Fatalf("after Delete: got %q, want %q", got, want)
	}
	if err := s.Update(bg, func(tx omi.Tx) error { return tx.Insert(image("ami-2", "b", "deux", false)) }); err != nil {
		t.Fatal(err)
	}
	want = append(want, `ami-2={"v":"deux"}/b/false/[]`)
	if got := docs(t, s, "ami-1", "ami-2"); !slices.Equal(got, want) {
		t.Fatalf("after Insert: got %q, want %q", got, want)
	}
	// A rolled back write changes nothing, and leaves nothing pending.
	err := s.Update(bg, func(tx omi.Tx) error {
		if err := tx.Put(image("ami-1", "a", "never", false)); err != nil {
			return err
		}
		return errors.New("roll back")
	})
	if err == nil {
		t.Fatal("Update did not fail")
	}
	for range 2 {
		if got := docs(t, s, "ami-1", "ami-2"); !slices.Equal(got, want) {
			t.Fatalf("after a rollback: got %q, want %q", got, want)
		}
	}
}

// A read that runs while an Update has written a record but not committed
// it reads the old value from the store (as it should), and must not leave
// it in the cache for reads after the commit.
func TestReadDuringUncommittedWrite(t *testing.T) {
	s := recordcache.Wrap(openSQLite(t), 0)
	put(t, s, image("ami-1", "a", "old", false))
	docs(t, s, "ami-1") // cached
	err := s.Update(bg, func(tx omi.Tx) error {
		if err := tx.Put(image("ami-1", "a", "new", false)); err != nil {
			return err
		}
		// Another goroutine reads while this write is not committed.
		var wg sync.WaitGroup
		var got []string
		wg.Go(func() { got = docs(t, s, "ami-1") })
		wg.Wait()
		if want := []string{`ami-1={"v":"old"}/a/false/[]`}; !slices.Equal(got, want) {
			return fmt.Errorf("during the write: got %q, want %q", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`ami-1={"v":"new"}/a/false/[]`}
	for range 2 {
		if got := docs(t, s, "ami-1"); !slices.Equal(got, want) {
			t.Fatalf("after the commit: got %q, want %q", got, want)
		}
	}
}

// Concurrent readers and a writer: once a write's Update has returned, no
// reader ever sees an older value.
func TestNoStaleReadsUnderConcurrency(t *testing.T) {
	s := recordcache.Wrap(openSQLite(t), 0)
	put(t, s, image("ami-1", "a", "0", false))
	var mu sync.Mutex
	committed := 0 // highest value whose Update returned
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				floor := committed
				mu.Unlock()
				recs, err := s.GetIDs(bg, omi.KindImage, []string{"ami-1"})
				if err != nil || len(recs) != 1 {
					errs <- fmt.Errorf("read: %v %v", recs, err)
					return
				}
				var v int
				fmt.Sscanf(string(recs[0].Doc), `{"v":"%d"}`, &v)
				if v < floor {
					errs <- fmt.Errorf("read %d after %d was committed", v, floor)
					return
				}
			}
		})
	}
	for i := 1; i <= 200; i++ {
		put(t, s, image("ami-1", "a", fmt.Sprint(i), false))
		mu.Lock()
		committed = i
		mu.Unlock()
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// Records that do not exist, or of another kind, are not found.
func TestMissingAndKinds(t *testing.T) {
	s := recordcache.Wrap(openSQLite(t), 0)
	put(t, s, image("ami-1", "a", "one", false))
	for range 2 {
		recs, err := s.GetIDs(bg, omi.KindSnapshot, []string{"ami-1"})
		if err != nil || len(recs) != 0 {
			t.Fatalf("snapshot ami-1: %v %v", recs, err)
		}
		if got := docs(t, s, "ami-9", "ami-1"); len(got) != 1 {
			t.Fatalf("got %q", got)
		}
	}
}

// The cache stays within its budget.
func TestBudget(t *testing.T) {
	s := recordcache.Wrap(openSQLite(t), 4096)
	var recs []omi.Record
	var ids []string
	for i := range 64 {
		id := fmt.Sprintf("ami-%02d", i)
		recs = append(recs, image(id, "a", fmt.Sprintf("%0200d", i), false))
		ids = append(ids, id)
	}
	put(t, s, recs...)
	for _, id := range ids {
		if got := docs(t, s, id); len(got) != 1 {
			t.Fatalf("%s: got %q", id, got)
		}
	}
	if n, b := s.Size(); b > 4096 {
		t.Fatalf("cache holds %d entries, %d bytes, over its 4096-byte budget", n, b)
	}
}

// Writes of other records do not keep a record from being cached: the
// invalidations are per record.
func TestOtherWritesDoNotBlockCaching(t *testing.T) {
	s := recordcache.Wrap(openSQLite(t), 0)
	put(t, s, image("ami-1", "a", "one", false), image("ami-2", "a", "two", false))
	err := s.Update(bg, func(tx omi.Tx) error {
		if err := tx.Put(image("ami-2", "a", "deux", false)); err != nil {
			return err
		}
		var wg sync.WaitGroup
		wg.Go(func() { docs(t, s, "ami-1") }) // a miss, cached
		wg.Wait()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h0, _ := s.Stats()
	docs(t, s, "ami-1")
	if h1, _ := s.Stats(); h1 != h0+1 {
		t.Fatalf("ami-1, read while ami-2 was being written, was not cached (hits %d then %d)", h0, h1)
	}
}
