// Package sqlite is the embedded metadata store: an [omi.Store] kept in one
// SQLite database file, through the pure-Go modernc.org/sqlite driver so the
// omi binary stays static and cgo-free.
//
// Layout: one writer connection, on which every Update runs as a BEGIN
// IMMEDIATE transaction (so Updates are serialised by SQLite's write lock and
// never fail with SQLITE_BUSY half-way through), and a pool of read-only
// connections for Views, which in WAL mode read a consistent snapshot without
// blocking the writer or being blocked by it.
//
// The schema lives in numbered migrations embedded in the binary
// (migrations/NNNN_name.sql), applied by Open in one transaction and recorded
// in the schema_migrations table.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"sync"

	"modernc.org/sqlite"

	"github.com/omiproject/omi"
)

// busyTimeoutMS is how long a connection waits for a lock held by another
// connection (another process opening the same file, a checkpoint) before
// failing with SQLITE_BUSY. Within one process Updates queue on the single
// writer connection instead, so this is rarely reached.
const busyTimeoutMS = 10000

// Store is the SQLite metadata store. It is safe for concurrent use.
type Store struct {
	path string
	w    *sql.DB // exactly one connection: the writer
	r    *sql.DB // read-only connections for Views
	// slots bounds the Views running at once to one less than the read
	// connections, so a View can always prepare a statement on the spare.
	slots     chan struct{}
	wc, rc    *stmtCache
	closeOnce sync.Once
	closeErr  error
}

var _ omi.Store = (*Store)(nil)

// drv is this package's own driver instance, so the SQL functions it
// registers (omi_match) cannot clash with other users of modernc.org/sqlite
// in the same binary.
var (
	drv     = &sqlite.Driver{}
	drvOnce sync.Once
	drvErr  error
)

func registerFunctions() error {
	drvOnce.Do(func() {
		drvErr = drv.RegisterFunction("omi_match", &sqlite.FunctionImpl{
			NArgs:         2,
			Deterministic: true,
			Scalar:        sqlMatch,
			// sqlMatch does not keep its arguments past the call.
			VolatileArgs: true,
		})
	})
	return drvErr
}

// connector opens connections of drv to one DSN, for sql.OpenDB.
type connector struct{ dsn string }

func (c connector) Connect(context.Context) (driver.Conn, error) { return drv.Open(c.dsn) }
func (c connector) Driver() driver.Driver                        { return drv }

// dsn builds the URI of the database at path with per-connection settings.
//
// synchronous=FULL: every API write is one Update, and the API answers
// success only once it returns, so a committed Update must survive power
// loss, not only a process crash. With WAL, FULL costs one fsync of the WAL
// per commit; NORMAL would skip it and could lose the last commits on power
// loss (though never on kill -9, and never corrupt the file). Metadata
// writes are small and few next to the block data they describe, so the
// fsync is affordable.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	q.Add("_pragma", "foreign_keys(1)")
	// Reading through a memory map skips a read syscall per page, which
	// the pure-Go driver makes comparatively costly (Get: ~65 µs of CPU
	// with, ~80-100 µs without, on the benchmark population). The mapped
	// pages are the kernel's page cache, shared by all connections and
	// reclaimable, unlike a larger per-connection cache_size.
	q.Add("_pragma", "mmap_size(268435456)")
	if readOnly {
		// A View that writes fails at the SQL level too, not only in tx.
		q.Add("_pragma", "query_only(1)")
	} else {
		// WAL is a property of the file; setting it on the writer, which
		// is opened first, converts the database once.
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Set("_txlock", "immediate")
	}
	// A file: URI keeps '?', '#' and '%' in the path from being read as
	// URI syntax; SQLite decodes the escapes.
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	return u.String()
}

// Open opens the database file at path, creating it if missing, and brings
// its schema up to date. It refuses a database written by a newer omi (one
// with migrations this binary does not know).
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || path == ":memory:" {
		return nil, fmt.Errorf("sqlite: open %q: a database file path is required", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := registerFunctions(); err != nil {
		return nil, fmt.Errorf("sqlite: register functions: %w", err)
	}
	s := &Store{path: abs}
	s.w = sql.OpenDB(connector{dsn(abs, false)})
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)
	if err := migrate(ctx, s.w, migrationFS); err != nil {
		s.w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", abs, err)
	}
	s.wc = newStmtCache(s.w, false)
	for _, q := range writerStmts {
		if err := s.wc.prepare(ctx, q); err != nil {
			s.Close()
			return nil, fmt.Errorf("sqlite: open %s: prepare: %w", abs, err)
		}
	}
	// Reads are CPU-bound on a warm cache: one connection per core is
	// enough, with a floor so a few slow Views do not starve the rest.
	n := max(4, runtime.GOMAXPROCS(0))
	s.slots = make(chan struct{}, n)
	s.r = sql.OpenDB(connector{dsn(abs, true)})
	s.r.SetMaxOpenConns(n + 1)
	s.r.SetMaxIdleConns(n + 1)
	s.r.SetConnMaxLifetime(0)
	s.r.SetConnMaxIdleTime(0)
	s.rc = newStmtCache(s.r, true)
	if err := s.rc.prepare(ctx, qGet); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open %s: readers: %w", abs, err)
	}
	return s, nil
}

// Path is the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// View runs fn in a read-only transaction on a snapshot of the database.
func (s *Store) View(ctx context.Context, fn func(omi.Tx) error) error {
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("sqlite: begin view: %w", ctx.Err())
	}
	defer func() { <-s.slots }()
	stx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("sqlite: begin view: %w", err)
	}
	t := &tx{ctx: ctx, tx: stx, cache: s.rc}
	defer func() {
		t.done.Store(true)
		stx.Rollback() // read-only: nothing to keep; error irrelevant
	}()
	return fn(t)
}

// Update runs fn in a write transaction, committed if fn returns nil. Updates
// run one at a time (so fn must not call Update itself: it would wait for
// its own end). When Update returns nil the commit is on disk
// (synchronous=FULL); when fn fails or panics nothing it wrote remains.
func (s *Store) Update(ctx context.Context, fn func(omi.Tx) error) (err error) {
	stx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin update: %w", err)
	}
	t := &tx{ctx: ctx, tx: stx, write: true, cache: s.wc}
	committed := false
	defer func() {
		t.done.Store(true)
		if !committed {
			stx.Rollback() // also on panic, so the writer is released
		}
	}()
	if err := fn(t); err != nil {
		return err
	}
	t.done.Store(true)
	committed = true
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// Ping checks that the database file answers a query on a read connection.
func (s *Store) Ping(ctx context.Context) error {
	var v int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations").Scan(&v); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close closes every connection. Updates and Views that are running hold
// their connection until they return. Calling Close again returns the first
// result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.rc != nil {
			s.rc.close()
		}
		if s.wc != nil {
			s.wc.close()
		}
		if s.r != nil {
			errs = append(errs, s.r.Close())
		}
		// Closing the last connection checkpoints the WAL into the main
		// file.
		errs = append(errs, s.w.Close())
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("sqlite: close %s: %w", s.path, err)
		}
	})
	return s.closeErr
}
