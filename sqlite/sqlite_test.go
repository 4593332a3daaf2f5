package sqlite

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/storetest"
)

var bg = context.Background()

// openT opens a store in a fresh temporary directory, closed at cleanup.
func openT(t testing.TB) *Store {
	t.Helper()
	s, err := Open(bg, filepath.Join(t.TempDir(), "omi.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) omi.Store { return openT(t) })
}

func image(id, owner string) omi.Record {
	return omi.Record{Kind: omi.KindImage, ID: id, Owner: owner, Name: "n-" + id,
		Doc: []byte(`{"ImageId":"` + id + `"}`)}
}

type migrationRow struct {
	version   int
	name, at  string
	tableRows int
}

func migrations(t *testing.T, s *Store) []migrationRow {
	t.Helper()
	rows, err := s.r.QueryContext(bg, "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []migrationRow
	for rows.Next() {
		var m migrationRow
		if err := rows.Scan(&m.version, &m.name, &m.at); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestReopenKeepsDataAndSkipsMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "omi.db")
	s, err := Open(bg, path)
	if err != nil {
		t.Fatal(err)
	}
	rec := image("ami-1", "o")
	rec.SharedWith = []string{"x", "y"}
	if err := s.Update(bg, func(tx omi.Tx) error { return tx.Insert(rec) }); err != nil {
		t.Fatal(err)
	}
	before := migrations(t, s)
	if len(before) == 0 || before[0].version != 1 {
		t.Fatalf("schema_migrations after first open = %+v", before)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// 0001 creates its tables without IF NOT EXISTS: running it again
	// would fail the open.
	for range 2 {
		s, err = Open(bg, path)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		if after := migrations(t, s); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("migrations changed on reopen: %+v, was %+v", after, before)
		}
		var got omi.Record
		if err := s.View(bg, func(tx omi.Tx) error {
			var err error
			got, err = tx.Get(omi.KindImage, "ami-1")
			return err
		}); err != nil {
			t.Fatalf("record lost on reopen: %v", err)
		}
		if got.Owner != "o" || strings.Join(got.SharedWith, ",") != "x,y" || string(got.Doc) != string(rec.Doc) {
			t.Fatalf("record after reopen = %+v", got)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMigrations(t *testing.T) {
	fsys := fstest.MapFS{
		"migrations/0001_a.sql": {Data: []byte("CREATE TABLE a (x INTEGER);")},
		"migrations/0002_b.sql": {Data: []byte("CREATE TABLE b (x INTEGER); INSERT INTO b VALUES (1);")},
	}
	path := filepath.Join(t.TempDir(), "m.db")
	db := openWriterT(t, path)
	if err := migrate(bg, db, fsys); err != nil {
		t.Fatal(err)
	}
	if err := migrate(bg, db, fsys); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM b").Scan(&n); err != nil || n != 1 {
		t.Fatalf("migration 2 ran %d times (%v)", n, err)
	}

	// A failing migration leaves nothing of itself, nor of earlier ones in
	// the same run.
	bad := fstest.MapFS{
		"migrations/0001_a.sql": fsys["migrations/0001_a.sql"],
		"migrations/0002_b.sql": fsys["migrations/0002_b.sql"],
		"migrations/0003_c.sql": {Data: []byte("CREATE TABLE c (x INTEGER);")},
		"migrations/0004_d.sql": {Data: []byte("CREATE TABLE d (x INTEGER); INSERT INTO nowhere VALUES (1);")},
	}
	if err := migrate(bg, db, bad); err == nil || !strings.Contains(err.Error(), "0004_d.sql") {
		t.Fatalf("failing migration: %v", err)
	}
	if err := db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name IN ('c', 'd')").Scan(&n); err != nil || n != 0 {
		t.Fatalf("failed migration run left %d tables (%v)", n, err)
	}
	if err := db.QueryRow("SELECT max(version) FROM schema_migrations").Scan(&n); err != nil || n != 2 {
		t.Fatalf("version after failed run = %d (%v)", n, err)
	}

	// A database newer than the program is refused.
	old := fstest.MapFS{"migrations/0001_a.sql": fsys["migrations/0001_a.sql"]}
	if err := migrate(bg, db, old); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("older program on newer database: %v", err)
	}

	for name, f := range map[string]fstest.MapFS{
		"bad name":  {"migrations/one.sql": {Data: []byte("SELECT 1;")}},
		"duplicate": {"migrations/0001_a.sql": {}, "migrations/001_b.sql": {}},
	} {
		if err := migrate(bg, db, f); err == nil {
			t.Fatalf("%s: no error", name)
		}
	}
}

// openWriterT opens a bare writer pool on path, without migrations.
func openWriterT(t *testing.T, path string) *sql.DB {
	t.Helper()
	if err := registerFunctions(); err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(connector{dsn(path, false)})
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "omi.db")
	s, err := Open(bg, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.w.Exec("INSERT INTO schema_migrations VALUES (9999, '9999_future.sql', 'x')"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(bg, path); err == nil {
		s.Close()
		t.Fatal("Open of a database from a newer program: no error")
	}
}

func TestOpenPaths(t *testing.T) {
	for _, p := range []string{"", ":memory:"} {
		if s, err := Open(bg, p); err == nil {
			s.Close()
			t.Fatalf("Open(%q): no error", p)
		}
	}
	if _, err := Open(bg, filepath.Join(t.TempDir(), "missing", "dir", "omi.db")); err == nil {
		t.Fatal("Open in a missing directory: no error")
	}
	// Characters that mean something in a URI stay part of the file name.
	dir := filepath.Join(t.TempDir(), "a dir?x=1#frag%20")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "my db?.sqlite")
	s, err := Open(bg, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(bg, func(tx omi.Tx) error { return tx.Insert(image("ami-1", "o")) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at the given path: %v", err)
	}
	if s.Path() != path {
		t.Fatalf("Path() = %q, want %q", s.Path(), path)
	}
}

func TestPragmas(t *testing.T) {
	s := openT(t)
	for _, tc := range []struct {
		pragma string
		want   string
		reader string // expected on read connections, if different
	}{
		{"journal_mode", "wal", ""},
		{"synchronous", "2", "2"}, // FULL (readers never write)
		{"foreign_keys", "1", ""},
		{"busy_timeout", strconv.Itoa(busyTimeoutMS), ""},
		{"query_only", "0", "1"},
	} {
		var got string
		if err := s.w.QueryRow("PRAGMA " + tc.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("writer: PRAGMA %s = %s, want %s", tc.pragma, got, tc.want)
		}
		want := tc.want
		if tc.reader != "" {
			want = tc.reader
		}
		if err := s.r.QueryRow("PRAGMA " + tc.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("reader: PRAGMA %s = %s, want %s", tc.pragma, got, want)
		}
	}
}

func TestValidation(t *testing.T) {
	s := openT(t)
	for name, r := range map[string]omi.Record{
		"no kind":           {ID: "x", Doc: []byte(`{}`)},
		"no id":             {Kind: omi.KindImage, Doc: []byte(`{}`)},
		"invalid JSON":      {Kind: omi.KindImage, ID: "x", Doc: []byte(`{"a":`)},
		"nil doc":           {Kind: omi.KindImage, ID: "x"},
		"invalid UTF-8 id":  {Kind: omi.KindImage, ID: "x\xff", Doc: []byte(`{}`)},
		"invalid UTF-8 acl": {Kind: omi.KindImage, ID: "x", SharedWith: []string{"\xc3"}, Doc: []byte(`{}`)},
	} {
		for op, fn := range map[string]func(omi.Tx) error{
			"Put":    func(tx omi.Tx) error { return tx.Put(r) },
			"Insert": func(tx omi.Tx) error { return tx.Insert(r) },
		} {
			if err := s.Update(bg, fn); err == nil {
				t.Errorf("%s of record with %s: no error", op, name)
			}
		}
	}
	err := s.View(bg, func(tx omi.Tx) error {
		if err := tx.Scan(omi.Query{}, func(omi.Record) (bool, error) { return true, nil }); err == nil {
			t.Error("Scan without kind: no error")
		}
		if err := tx.Scan(omi.Query{Kind: omi.KindImage, Limit: -1}, func(omi.Record) (bool, error) { return true, nil }); err == nil {
			t.Error("Scan with negative limit: no error")
		}
		ids := make([]string, 40000)
		for i := range ids {
			ids[i] = fmt.Sprintf("ami-%08d", i)
		}
		if err := tx.Scan(omi.Query{Kind: omi.KindImage, IDs: ids}, func(omi.Record) (bool, error) { return true, nil }); err == nil {
			t.Error("Scan with 40,000 ids: no error")
		}
		// Within the limit, a long list works.
		return tx.Scan(omi.Query{Kind: omi.KindImage, IDs: ids[:5000]}, func(omi.Record) (bool, error) { return true, nil })
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestQueryPlans checks with EXPLAIN QUERY PLAN that every listing reads an
// index in id order: no full scan of records, and no sort of the candidates
// (which would make a page cost O(matching records) instead of O(limit)).
func TestQueryPlans(t *testing.T) {
	s := openT(t)
	// Some data and statistics, as a long-running database would have.
	err := s.Update(bg, func(tx omi.Tx) error {
		for i := range 2000 {
			r := image(fmt.Sprintf("ami-%05d", i), fmt.Sprintf("o%d", i%50))
			r.Public = i%10 == 0
			if i%20 == 0 {
				r.SharedWith = []string{"o1", "o2"}
			}
			if err := tx.Put(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, analyze := range []bool{false, true} {
		if analyze {
			if _, err := s.w.Exec("ANALYZE"); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			q    omi.Query
			want []string // substrings the plan must contain
		}{
			{omi.Query{Kind: "image"}, []string{"USING INDEX sqlite_autoindex_records_1 (kind=?"}},
			{omi.Query{Kind: "image", Owners: []string{"o1"}}, []string{"records_by_owner (kind=? AND owner=?"}},
			{omi.Query{Kind: "image", Names: []string{"n"}}, []string{"records_by_name (kind=? AND name=?"}},
			{omi.Query{Kind: "image", IDs: []string{"a", "b"}}, []string{"(kind=? AND id=?)"}},
			{omi.Query{Kind: "image", VisibleTo: "o1"}, []string{"COVERING INDEX records_by_owner", "COVERING INDEX records_public", "COVERING INDEX shares_by_account"}},
			{omi.Query{Kind: "image", VisibleTo: "o1", NamePatterns: []string{"n*"}, Owners: []string{"o2"}}, []string{"COVERING INDEX records_by_owner", "COVERING INDEX records_public", "COVERING INDEX shares_by_account"}},
			{omi.Query{Kind: "image", VisibleTo: "o1", IDs: []string{"a", "b"}}, []string{"(kind=? AND id=?)", "shares_by_account (account=? AND kind=? AND id=?)"}},
		} {
			for _, hasAfter := range []bool{false, true} {
				query, args := plan(tc.q).sql(hasAfter, "ami-00100", 50)
				p := explain(t, s, query, args)
				for _, w := range tc.want {
					if !strings.Contains(p, w) {
						t.Errorf("analyze=%v after=%v %+v: plan lacks %q:\n%s", analyze, hasAfter, tc.q, w, p)
					}
				}
				for _, bad := range []string{"SCAN r", "SCAN records", "TEMP B-TREE FOR ORDER BY", "TEMP B-TREE FOR LAST TERM"} {
					if strings.Contains(p, bad) && !(len(tc.q.IDs) > 0 || len(tc.q.Names) > 0) {
						t.Errorf("analyze=%v after=%v %+v: plan has %q:\n%s", analyze, hasAfter, tc.q, bad, p)
					}
				}
				if hasAfter && len(tc.q.IDs) == 0 && !strings.Contains(p, "id>?") {
					t.Errorf("%+v: AfterID not used by an index:\n%s", tc.q, p)
				}
			}
		}
	}
}

func explain(t *testing.T, s *Store, query string, args []any) string {
	t.Helper()
	rows, err := s.r.Query("EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%d %d %s\n", id, parent, detail)
	}
	return b.String()
}

// TestViewIsReadOnlyInSQL checks the second line of defence: a read
// connection refuses writes even if tx's own check were bypassed.
func TestViewIsReadOnlyInSQL(t *testing.T) {
	s := openT(t)
	err := s.View(bg, func(x omi.Tx) error {
		_, err := x.(*tx).tx.Exec(qInsert, "image", "ami-1", "o", "n", false, []byte(`{}`))
		return err
	})
	if err == nil {
		t.Fatal("insert through a read connection: no error")
	}
}

// TestCrash kills a process that commits Updates in a loop, then checks
// that every Update it reported committed is in the database, that each
// Update was applied whole, and that the file is intact.
func TestCrash(t *testing.T) {
	if path := os.Getenv("OMI_SQLITE_CRASH_CHILD"); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "omi.db")
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrash$", "-test.count=1")
		cmd.Env = append(os.Environ(), "OMI_SQLITE_CRASH_CHILD="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Let it commit a varying number of Updates, then kill it in the
		// middle of whatever it is doing.
		sc := bufio.NewScanner(out)
		last := -1
		for sc.Scan() {
			n, err := strconv.Atoi(sc.Text())
			if err != nil {
				t.Fatalf("child: %q", sc.Text())
			}
			last = n
			if n >= 40*(round+1)+round*7 {
				break
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if last < 0 {
			t.Fatal("child committed nothing")
		}

		s, err := Open(bg, path)
		if err != nil {
			t.Fatalf("reopen after kill: %v", err)
		}
		var counter, images int
		err = s.View(bg, func(tx omi.Tx) error {
			r, err := tx.Get(omi.KindTask, "counter")
			if err != nil {
				return err
			}
			if counter, err = strconv.Atoi(string(r.Doc)); err != nil {
				return err
			}
			return tx.Scan(omi.Query{Kind: omi.KindImage}, func(omi.Record) (bool, error) { images++; return true, nil })
		})
		if err != nil {
			t.Fatal(err)
		}
		if counter < last {
			t.Fatalf("round %d: counter %d after kill, but Update %d had returned", round, counter, last)
		}
		if images != 3*counter {
			t.Fatalf("round %d: %d images for counter %d: an Update was applied in part", round, images, counter)
		}
		var ok string
		if err := s.r.QueryRow("PRAGMA integrity_check").Scan(&ok); err != nil || ok != "ok" {
			t.Fatalf("integrity_check = %q, %v", ok, err)
		}
		if err := s.r.QueryRow("PRAGMA foreign_key_check").Err(); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}

// crashChild increments a counter and inserts three images per Update,
// printing the counter after each Update returns.
func crashChild(path string) {
	s, err := Open(bg, path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for {
		var n int
		err := s.Update(bg, func(tx omi.Tx) error {
			r, err := tx.Get(omi.KindTask, "counter")
			switch {
			case errors.Is(err, omi.ErrNotFound):
				r = omi.Record{Kind: omi.KindTask, ID: "counter", Doc: []byte("0")}
			case err != nil:
				return err
			}
			if n, err = strconv.Atoi(string(r.Doc)); err != nil {
				return err
			}
			n++
			for i := range 3 {
				img := image(fmt.Sprintf("ami-%06d-%d", n, i), "o")
				img.SharedWith = []string{"a", "b"}
				img.Doc = []byte(`{"Pad":"` + strings.Repeat("x", 3000) + `"}`)
				if err := tx.Insert(img); err != nil {
					return err
				}
			}
			r.Doc = []byte(strconv.Itoa(n))
			return tx.Put(r)
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(n)
		time.Sleep(time.Duration(n%3) * time.Millisecond)
	}
}
