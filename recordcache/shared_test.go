package recordcache_test

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/postgres"
	"github.com/omiproject/omi/postgres/pgtest"
	"github.com/omiproject/omi/recordcache"
	"github.com/omiproject/omi/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// twoNodes opens two stores on one PostgreSQL schema, as two omi nodes do,
// each behind its own cache.
func twoNodes(t *testing.T) (a, b *recordcache.Store, dsn string) {
	t.Helper()
	dsn = pgtest.DSN(t)
	open := func() *recordcache.Store {
		st, err := postgres.Open(bg, dsn)
		if err != nil {
			t.Fatal(err)
		}
		s := recordcache.Wrap(st, 0)
		t.Cleanup(func() { s.Close() })
		// Each cache acts as if its node were alone (as package cluster
		// grants): this tests the invalidations, which still cover the
		// moments when nodes come and go.
		s.Exclusive(time.Now().Add(time.Hour))
		return s
	}
	a, b = open(), open()
	awaitLive(t, a)
	awaitLive(t, b)
	return a, b, dsn
}

// awaitLive waits until s caches what it reads (its change feed listens).
func awaitLive(t *testing.T, s *recordcache.Store) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !s.Live(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the change feed did not connect within 10 s")
		}
	}
}

// awaitDocs reads ids on s until it returns want; another node's write
// reaches this node's cache through a notification, so it may take a few
// milliseconds. Failing after 10 s means it never came.
func awaitDocs(t *testing.T, s *recordcache.Store, want []string, ids ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := docs(t, s, ids...)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: got %q, want %q", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConformancePostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) omi.Store {
		st, err := postgres.Open(bg, pgtest.DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		s := recordcache.Wrap(st, 0)
		t.Cleanup(func() { s.Close() })
		s.Exclusive(time.Now().Add(time.Hour))
		return s
	})
}

// A record cached on node b and then written on node a is seen changed on
// b: its entry is dropped when a's NOTIFY arrives.
func TestOtherNodesWrites(t *testing.T) {
	a, b, _ := twoNodes(t)
	put(t, a, image("ami-1", "x", "one", false))
	want := []string{`ami-1={"v":"one"}/x/false/[]`}
	// A read that overlaps the arrival of the notification of a's write
	// is not cached; once it has arrived, reads are.
	for deadline := time.Now().Add(10 * time.Second); ; {
		awaitDocs(t, b, want, "ami-1")
		if hits, _ := b.Stats(); hits > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("b served nothing from memory")
		}
	}
	put(t, a, image("ami-1", "x", "two", true, "y"))
	awaitDocs(t, b, []string{`ami-1={"v":"two"}/x/true/[y]`}, "ami-1")
	if err := a.Update(bg, func(tx omi.Tx) error { return tx.Delete(omi.KindImage, "ami-1") }); err != nil {
		t.Fatal(err)
	}
	awaitDocs(t, b, nil, "ami-1")
}

// When b's listening connection is cut, b forgets what it cached (the
// notifications sent meanwhile are lost), caches nothing until it listens
// again, and then follows a's writes as before.
func TestListenerLost(t *testing.T) {
	a, b, dsn := twoNodes(t)
	put(t, a, image("ami-1", "x", "one", false))
	awaitDocs(t, b, []string{`ami-1={"v":"one"}/x/false/[]`}, "ami-1")
	conn, err := pgx.Connect(bg, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(bg)
	ctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query LIKE 'LISTEN %' AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no listening connection found")
	}
	// Both nodes' listeners were cut: each empties its cache, reconnects.
	for deadline := time.Now().Add(10 * time.Second); b.Live(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("b did not notice its listener was cut")
		}
	}
	if recs, _ := b.Size(); recs != 0 {
		t.Fatalf("b still caches %d records after losing its listener", recs)
	}
	awaitLive(t, b)
	awaitLive(t, a)
	put(t, a, image("ami-1", "x", "two", false))
	awaitDocs(t, b, []string{`ami-1={"v":"two"}/x/false/[]`}, "ami-1")
	put(t, a, image("ami-1", "x", "three", false))
	awaitDocs(t, b, []string{`ami-1={"v":"three"}/x/false/[]`}, "ami-1")
}

// A shared store is cached only while granted: nothing before Exclusive,
// and a withdrawal empties the cache and stops it at once.
func TestExclusiveGrant(t *testing.T) {
	st, err := postgres.Open(bg, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	s := recordcache.Wrap(st, 0)
	t.Cleanup(func() { s.Close() })
	awaitLive(t, s)
	put(t, s, image("ami-1", "x", "one", false))
	for range 3 {
		docs(t, s, "ami-1")
	}
	if hits, _ := s.Stats(); hits != 0 {
		t.Fatalf("%d reads served from memory without a grant", hits)
	}
	s.Exclusive(time.Now().Add(time.Hour))
	docs(t, s, "ami-1")
	docs(t, s, "ami-1")
	if hits, _ := s.Stats(); hits != 1 {
		t.Fatalf("granted: %d hits, want 1", hits)
	}
	s.Exclusive(time.Time{})
	if recs, _ := s.Size(); recs != 0 {
		t.Fatalf("%d records cached after the withdrawal", recs)
	}
	docs(t, s, "ami-1")
	if hits, _ := s.Stats(); hits != 1 {
		t.Fatalf("withdrawn: %d hits, want still 1", hits)
	}
	// A grant already past is none.
	s.Exclusive(time.Now().Add(-time.Second))
	docs(t, s, "ami-1")
	docs(t, s, "ami-1")
	if hits, _ := s.Stats(); hits != 1 {
		t.Fatalf("expired grant: %d hits, want still 1", hits)
	}
}
