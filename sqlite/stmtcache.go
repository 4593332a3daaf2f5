package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// maxCachedStmts bounds the prepared statements kept per pool. Scan builds
// its SQL from the shape of the query (which fields are set, list lengths
// rounded up to powers of two), so real traffic uses a few dozen shapes;
// past the bound, statements run unprepared.
const maxCachedStmts = 256

// stmtCache keeps statements prepared once per pool: SQLite spends more time
// compiling a small query than running it on a warm cache.
//
// database/sql prepares a pool statement on one connection and re-prepares
// it lazily on each other connection it runs on. Preparing needs a free
// connection, so lazy preparation is only allowed on the read pool, which
// keeps one connection more than the Views that may run at once (see
// Store.slots). The writer has a single connection, held by the running
// Update, so its statements are all prepared up front by Open.
type stmtCache struct {
	db   *sql.DB
	lazy bool

	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

func newStmtCache(db *sql.DB, lazy bool) *stmtCache {
	return &stmtCache{db: db, lazy: lazy, stmts: map[string]*sql.Stmt{}}
}

// prepare adds query to the cache now.
func (c *stmtCache) prepare(ctx context.Context, query string) error {
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.stmts[query]; old != nil {
		st.Close()
		return nil
	}
	c.stmts[query] = st
	return nil
}

// get returns the prepared statement for query, or nil when it should run
// unprepared (not cached on the writer, cache full, or preparation failed:
// running it unprepared then reports the error in context).
func (c *stmtCache) get(ctx context.Context, query string) *sql.Stmt {
	c.mu.Lock()
	st := c.stmts[query]
	full := len(c.stmts) >= maxCachedStmts
	c.mu.Unlock()
	if st != nil || !c.lazy || full {
		return st
	}
	if c.prepare(ctx, query) != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stmts[query]
}

// close closes every cached statement.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.stmts {
		st.Close()
		delete(c.stmts, q)
	}
}
