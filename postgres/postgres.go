// Package postgres is the metadata store for scaled-out deployments: an
// [omi.Store] in a PostgreSQL database shared by several omi nodes, through
// github.com/jackc/pgx/v5 and its connection pool.
//
// Every Update runs as a SERIALIZABLE transaction, so concurrent Updates
// from any number of nodes behave as if run one after the other; those
// PostgreSQL aborts with a serialisation failure (SQLSTATE 40001) or a
// deadlock (40P01) are run again, with jittered exponential backoff, a
// bounded number of times. Every View runs as a REPEATABLE READ READ ONLY
// transaction: it sees one snapshot, and never blocks nor aborts Updates.
//
// The schema lives in numbered migrations embedded in the binary
// (migrations/NNNN_name.sql), applied by Open in one transaction under an
// advisory lock and recorded in the schema_migrations table. Tables are
// created in the first schema of the connection's search_path, which the
// DSN may set (postgres://host/db?search_path=omi): one database can hold
// several independent stores.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/omiproject/omi"
)

// Retry policy of Update. Serialisation failures come from Updates touching
// the same records; backing off spreads the contenders out so that each
// round lets at least one commit. With these values a contended Update gives
// up after about three seconds of retries.
const (
	maxAttempts  = 40
	backoffBase  = 500 * time.Microsecond
	backoffLimit = 100 * time.Millisecond
)

var errClosed = errors.New("postgres: store is closed")

// Store is the PostgreSQL metadata store. It is safe for concurrent use.
type Store struct {
	pool      *pgxpool.Pool
	closed    atomic.Bool
	closeOnce sync.Once
}

var _ omi.Store = (*Store)(nil)

// Open connects to the database named by dsn (a postgres:// URL or a
// keyword/value string, as libpq accepts; pgxpool settings such as
// pool_max_conns may be added), checks that it can hold omi's records and
// brings the schema up to date. It refuses a schema written by a newer omi
// (one with migrations this binary does not know).
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn redacts any password in the DSN it quotes.
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if err := checkServer(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	if err := migrate(ctx, pool, migrationFS); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &Store{pool: pool}, nil
}

// checkServer verifies the server answers and stores text as UTF-8: names
// are matched byte-wise on their UTF-8 encoding (see Scan), and Go strings
// are UTF-8.
func checkServer(ctx context.Context, pool *pgxpool.Pool) error {
	var enc string
	if err := pool.QueryRow(ctx, "SHOW server_encoding").Scan(&enc); err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	if enc != "UTF8" {
		return fmt.Errorf("postgres: database encoding is %s, omi needs UTF8 (CREATE DATABASE ... ENCODING 'UTF8')", enc)
	}
	return nil
}

// View runs fn in a read-only transaction on one snapshot of the database.
func (s *Store) View(ctx context.Context, fn func(omi.Tx) error) error {
	if s.closed.Load() {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("postgres: begin view: %w", err)
	}
	t := &tx{ctx: ctx, pool: s.pool, opts: viewOpts}
	defer func() {
		t.done.Store(true)
		// Read-only: nothing to keep. This also runs on panic, so the
		// connection goes back to the pool.
		t.rollback()
	}()
	return fn(t)
}

var (
	viewOpts   = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
	updateOpts = pgx.TxOptions{IsoLevel: pgx.Serializable, AccessMode: pgx.ReadWrite}
)

// Update runs fn in a serialisable read-write transaction, committed if fn
// returns nil. fn may run several times: when PostgreSQL aborts an attempt
// to keep Updates serialisable, the attempt is rolled back and fn runs
// again on fresh data, so fn must not keep effects of an attempt outside the
// Tx. When fn fails or panics nothing it wrote remains.
func (s *Store) Update(ctx context.Context, fn func(omi.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err, retry := s.updateOnce(ctx, fn)
		if !retry {
			return err
		}
		if attempt == maxAttempts {
			return fmt.Errorf("postgres: update: still conflicting after %d attempts: %w", attempt, err)
		}
		// Full jitter on an exponential ceiling.
		ceil := min(backoffLimit, backoffBase<<min(attempt-1, 16))
		timer := time.NewTimer(rand.N(ceil) + time.Microsecond)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("postgres: update: %w (retrying after %v)", ctx.Err(), err)
		}
	}
}

// updateOnce runs one attempt of Update and reports whether its failure is a
// conflict with another transaction, worth another attempt.
func (s *Store) updateOnce(ctx context.Context, fn func(omi.Tx) error) (err error, retry bool) {
	if s.closed.Load() {
		return errClosed, false
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("postgres: begin update: %w", err), false
	}
	t := &tx{ctx: ctx, pool: s.pool, opts: updateOpts, write: true}
	committed := false
	defer func() {
		t.done.Store(true)
		if !committed {
			t.rollback() // also on panic
		}
	}()
	err = fn(t)
	t.done.Store(true)
	// Once a statement failed with a conflict the transaction is aborted,
	// whatever fn made of the error: run fn again.
	if c := t.conflict; c != nil {
		return c, true
	}
	if err != nil {
		return err, false
	}
	// pgx would not send COMMIT on a cancelled context either, but say
	// so plainly: a cancelled Update never commits.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("postgres: update: %w", err), false
	}
	committed = true
	if t.ptx == nil {
		return nil, false // fn ran no statement: nothing to commit
	}
	if err := t.ptx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", err), isConflict(err)
	}
	return nil, false
}

// isConflict reports whether err is PostgreSQL aborting a transaction
// because of concurrent ones: a serialisation failure or a deadlock.
func isConflict(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// Ping checks that the database answers and holds omi's schema.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	var v int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&v); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close closes every connection, after waiting for the Updates and Views
// that are running to return theirs. Calling it again does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.pool.Close()
	})
	return nil
}
