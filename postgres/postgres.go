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
	"hash/fnv"
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
// the same records. Backing off spreads the contenders out, but optimism
// alone starves some of them on a hot record (one Update of eight was
// measured failing 28 times in a row), so Updates also share a
// readers-writer advisory lock, Store.lockKey, common to all omi nodes using
// the store:
//
//   - every attempt before exclusiveFrom holds it shared, taken in the same
//     round trip as BEGIN and released by COMMIT: optimistic Updates run
//     concurrently, at the cost of one extra statement;
//   - from attempt exclusiveFrom on, an Update takes it exclusively, before
//     BEGIN so that its snapshot follows it. It waits for the running
//     Updates to end, new ones queue behind it (PostgreSQL grants a lock in
//     queue order), and it runs alone: those waiting have read nothing yet,
//     so a serialisation failure can only abort them, never it, and it
//     commits unless fn fails.
//
// maxAttempts is only a safety net.
const (
	maxAttempts   = 10
	exclusiveFrom = 4
	backoffBase   = 500 * time.Microsecond
	backoffLimit  = 20 * time.Millisecond
)

// updateLockKey returns the key of the advisory lock of the Updates of the
// store in schema (see exclusiveFrom): advisory locks are per database, and
// stores in other schemas of the same database need not wait for each
// other.
func updateLockKey(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("omi update lock\x00" + schema))
	return int64(h.Sum64() | 1) // never 0, which tx.shareLock reads as none
}

var errClosed = errors.New("postgres: store is closed")

// Store is the PostgreSQL metadata store. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	// beat is a pool of one connection for the cluster's heartbeats, so
	// that a renewal never queues behind API transactions for a pooled
	// connection (a late renewal makes the node expire).
	beat      *pgxpool.Pool
	lockKey   int64 // updateLockKey of the schema
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
	schema, err := migrate(ctx, pool, migrationFS)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	bcfg := cfg.Copy()
	bcfg.MaxConns, bcfg.MinConns = 1, 0
	beat, err := pgxpool.NewWithConfig(ctx, bcfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	return &Store{pool: pool, beat: beat, lockKey: updateLockKey(schema)}, nil
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
	t := &tx{ctx: ctx, conn: s.pool, opts: viewOpts}
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
		err, retry := s.updateOnce(ctx, fn, attempt >= exclusiveFrom)
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

// updateOnce runs one attempt of Update, holding s.lockKey exclusively if so,
// and reports whether its failure is a conflict with another transaction,
// worth another attempt.
func (s *Store) updateOnce(ctx context.Context, fn func(omi.Tx) error, exclusive bool) (err error, retry bool) {
	if s.closed.Load() {
		return errClosed, false
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("postgres: begin update: %w", err), false
	}
	t := &tx{ctx: ctx, conn: s.pool, opts: updateOpts, write: true, channel: changesChannel(s.lockKey)}
	if !exclusive {
		t.shareLock = s.lockKey
	} else {
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("postgres: begin update: %w", err), false
		}
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", s.lockKey); err != nil {
			conn.Release()
			return fmt.Errorf("postgres: begin update: lock: %w", err), false
		}
		// Deferred before the rollback below, so it runs after it.
		defer unlock(ctx, conn, s.lockKey)
		t.conn = conn
	}
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

// unlock releases the advisory lock key and the connection that holds it.
// Should the unlock fail, the connection is closed, which releases the lock
// too: a pooled connection must never keep it.
func unlock(ctx context.Context, conn *pgxpool.Conn, key int64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", key); err != nil {
		conn.Conn().Close(ctx)
	}
	conn.Release()
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
		s.beat.Close()
	})
	return nil
}
