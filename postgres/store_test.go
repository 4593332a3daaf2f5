package postgres

import (
	"errors"
	"fmt"
	"github.com/omiproject/omi/internal/migration"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/postgres/pgtest"
)

func image(id, owner, name string) omi.Record {
	return omi.Record{Kind: omi.KindImage, ID: id, Owner: owner, Name: name,
		Doc: []byte(`{"ImageId":"` + id + `"}`)}
}

// versions lists the recorded migrations.
func versions(t *testing.T, s *Store) []int {
	t.Helper()
	rows, err := s.pool.Query(bg, "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func allVersions(t *testing.T) []int {
	ms, err := migration.Load(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, m := range ms {
		out = append(out, m.Version)
	}
	return out
}

// TestConcurrentOpen opens one new schema from several goroutines at once,
// as omi nodes started together do: the advisory lock makes every Open
// succeed and each migration apply once.
func TestConcurrentOpen(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 6
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(bg, dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	if got, want := versions(t, stores[0]), allVersions(t); !slices.Equal(got, want) {
		t.Fatalf("schema_migrations = %v, want %v", got, want)
	}
	// They are one store.
	if err := stores[1].Update(bg, func(tx omi.Tx) error { return tx.Insert(image("ami-1", "o", "n")) }); err != nil {
		t.Fatal(err)
	}
	if err := stores[n-1].View(bg, func(tx omi.Tx) error { _, err := tx.Get(omi.KindImage, "ami-1"); return err }); err != nil {
		t.Fatal(err)
	}
}

func TestReopenKeepsDataAndRefusesNewerSchema(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, err := Open(bg, dsn)
	if err != nil {
		t.Fatal(err)
	}
	rec := image("ami-1", "o", "n")
	rec.SharedWith = []string{"x", "y"}
	if err := s.Update(bg, func(tx omi.Tx) error { return tx.Insert(rec) }); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(bg, dsn)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if got, want := versions(t, s), allVersions(t); !slices.Equal(got, want) {
		t.Fatalf("schema_migrations after reopen = %v, want %v", got, want)
	}
	var got omi.Record
	if err := s.View(bg, func(tx omi.Tx) error { got, err = tx.Get(omi.KindImage, "ami-1"); return err }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.SharedWith, rec.SharedWith) || string(got.Doc) != string(rec.Doc) {
		t.Fatalf("after reopen: %+v, want %+v", got, rec)
	}
	// A newer omi migrated this schema: this one must not touch it.
	if _, err := s.pool.Exec(bg, "INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future.sql')"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(bg, dsn); err == nil {
		s.Close()
		t.Fatal("Open of a schema newer than the program succeeded")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dsn := pgtest.DSN(t)
	missing, err := pgtest.WithSearchPath(dsn, "no_such_schema")
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Open(bg, missing); err == nil {
		s.Close()
		t.Fatal("Open with a search_path naming no schema succeeded")
	} else if !strings.Contains(err.Error(), "schema") {
		t.Fatalf("Open with a missing schema: %v", err)
	}
	for _, bad := range []string{"postgres://[::1", "host=/nonexistent/socket/dir port=1 connect_timeout=2"} {
		if s, err := Open(bg, bad); err == nil {
			s.Close()
			t.Fatalf("Open(%q) succeeded", bad)
		}
	}
}

// TestUnstorableText checks strings PostgreSQL text cannot hold (NUL bytes,
// invalid UTF-8): records with them are refused, and lookups with them find
// nothing instead of failing, as no stored record can hold them.
func TestUnstorableText(t *testing.T) {
	s := openT(t)
	pub := image("ami-2", "b", "n")
	pub.Public = true
	if err := s.Update(bg, func(tx omi.Tx) error {
		if err := tx.Insert(image("ami-1", "a", "n")); err != nil {
			return err
		}
		return tx.Insert(pub)
	}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []omi.Record{image("ami-\x00", "a", "n"), image("ami-3", "a\xff", "n"), image("ami-3", "a", "n\x00")} {
		err := s.Update(bg, func(tx omi.Tx) error { return tx.Put(bad) })
		if err == nil {
			t.Fatalf("Put of %q %q %q succeeded", bad.ID, bad.Owner, bad.Name)
		}
	}
	shared := image("ami-3", "a", "n")
	shared.SharedWith = []string{"ok", "x\x00"}
	if err := s.Update(bg, func(tx omi.Tx) error { return tx.Insert(shared) }); err == nil {
		t.Fatal("Insert with a NUL in SharedWith succeeded")
	}
	err := s.View(bg, func(tx omi.Tx) error {
		for _, id := range []string{"ami-1\x00", "ami-\xff"} {
			if _, err := tx.Get(omi.KindImage, id); !errors.Is(err, omi.ErrNotFound) {
				return fmt.Errorf("Get %q: %v, want ErrNotFound", id, err)
			}
		}
		for _, tc := range []struct {
			q    omi.Query
			want []string
		}{
			{omi.Query{IDs: []string{"ami-1\x00"}}, nil},
			{omi.Query{IDs: []string{"ami-1\x00", "ami-1"}}, []string{"ami-1"}},
			{omi.Query{Owners: []string{"a\xff"}}, nil},
			{omi.Query{Names: []string{"n\x00"}}, nil},
			{omi.Query{NamePatterns: []string{"n\x00"}}, nil},
			{omi.Query{NamePatterns: []string{"n?\x00"}}, nil},
			{omi.Query{VisibleTo: "a\x00"}, []string{"ami-2"}},
			{omi.Query{AfterID: "ami-1\x00x"}, []string{"ami-2"}},
			{omi.Query{AfterID: "\x00"}, []string{"ami-1", "ami-2"}},
		} {
			tc.q.Kind = omi.KindImage
			var got []string
			if err := tx.Scan(tc.q, func(r omi.Record) (bool, error) { got = append(got, r.ID); return true, nil }); err != nil {
				return fmt.Errorf("Scan %+v: %w", tc.q, err)
			}
			if !slices.Equal(got, tc.want) {
				return fmt.Errorf("Scan %+v = %q, want %q", tc.q, got, tc.want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestUpdateRetriesConflicts interleaves two Updates by hand so that the
// first one's commit must fail with a serialisation failure: Update runs its
// fn again on fresh data instead of failing or losing the other's write.
func TestUpdateRetriesConflicts(t *testing.T) {
	s := openT(t)
	if err := s.Update(bg, func(tx omi.Tx) error { return tx.Put(image("ami-1", "o", "0")) }); err != nil {
		t.Fatal(err)
	}
	bump := func(tx omi.Tx) error {
		r, err := tx.Get(omi.KindImage, "ami-1")
		if err != nil {
			return err
		}
		r.Name += "+"
		return tx.Put(r)
	}
	read := make(chan struct{})
	other := make(chan error)
	go func() {
		<-read
		other <- s.Update(bg, bump)
	}()
	var attempts atomic.Int32
	err := s.Update(bg, func(tx omi.Tx) error {
		if attempts.Add(1) == 1 {
			if _, err := tx.Get(omi.KindImage, "ami-1"); err != nil {
				return err
			}
			close(read)
			// The other Update commits after this one took its snapshot.
			if err := <-other; err != nil {
				return err
			}
		}
		return bump(tx)
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := attempts.Load(); n != 2 {
		t.Fatalf("fn ran %d times, want 2 (one conflict, one retry)", n)
	}
	var got omi.Record
	if err := s.View(bg, func(tx omi.Tx) error { got, err = tx.Get(omi.KindImage, "ami-1"); return err }); err != nil {
		t.Fatal(err)
	}
	if got.Name != "0++" {
		t.Fatalf("name = %q after two bumps, want 0++", got.Name)
	}
}

// TestOpenURL opens the same schema through a postgres:// URL with
// search_path and pool settings in its query, and through the keyword/value
// DSN: both reach one store.
func TestOpenURL(t *testing.T) {
	dsn := pgtest.DSN(t)
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{}
	q.Set("host", cfg.Host)
	q.Set("port", fmt.Sprint(cfg.Port))
	q.Set("search_path", cfg.RuntimeParams["search_path"])
	q.Set("pool_max_conns", "2")
	u := url.URL{Scheme: "postgres", User: url.User(cfg.User), Path: "/" + cfg.Database, RawQuery: q.Encode()}
	a, err := Open(bg, u.String())
	if err != nil {
		t.Fatalf("Open(%s): %v", u.String(), err)
	}
	defer a.Close()
	if got := a.pool.Config().MaxConns; got != 2 {
		t.Fatalf("pool_max_conns=2 gave a pool of %d", got)
	}
	if err := a.Update(bg, func(tx omi.Tx) error { return tx.Insert(image("ami-1", "o", "n")) }); err != nil {
		t.Fatal(err)
	}
	b := openDSN(t, dsn)
	if err := b.View(bg, func(tx omi.Tx) error { _, err := tx.Get(omi.KindImage, "ami-1"); return err }); err != nil {
		t.Fatal(err)
	}
}

func openDSN(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(bg, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
