package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/omiproject/omi/blockmap"
)

// RootStore keeps the roots of block maps (blockmap.RootStore) in the
// block_roots table of the store's schema, so that every omi node using the
// database sees the same volumes and snapshots. It shares the Store's
// connection pool and is closed with it. It is safe for concurrent use.
//
// Each call is one statement in its own transaction: SaveRoot and Delete are
// atomic, and durable even on a server configured with synchronous_commit =
// off (see qSaveRoot). WalkRoots reads in pages, so no transaction or
// connection is held while its callback runs.
type RootStore struct {
	s *Store
	// node, when set, fences writes: SaveRoot and Delete succeed only
	// while that node is alive and holds the lease "map/<id>".
	node string
	// pageSize is how many roots one WalkRoots statement reads.
	pageSize int
}

var _ blockmap.RootStore = (*RootStore)(nil)

// walkPage bounds the memory of a WalkRoots page: a root holds 32 bytes per
// 128 MiB of volume, so 64 roots of 1 TiB volumes are 16 MiB.
const walkPage = 64

// Roots returns the RootStore of s, for blockmap.NewManager on nodes whose
// metadata lives in PostgreSQL.
func (s *Store) Roots() *RootStore { return &RootStore{s: s, pageSize: walkPage} }

// NodeRoots returns the RootStore of s for cluster node node (a
// Cluster.Join id): its SaveRoot and Delete fail with an error wrapping
// blockmap.ErrBusy unless node is alive and holds the map's lease, so a
// node declared dead cannot overwrite the map another node took over.
func (s *Store) NodeRoots(node string) *RootStore {
	return &RootStore{s: s, pageSize: walkPage, node: node}
}

// Statements of RootStore.
const (
	qLoadRoot = `SELECT root FROM block_roots WHERE id = $1`
	// durableCTE makes the statement's commit durable whatever the
	// server's synchronous_commit: a root that vanished after a crash
	// would bring back the root it replaced, whose blocks garbage
	// collection may have freed. Only "off" is raised (to "local"); any
	// stronger setting, such as waiting for standbys, is kept. The setting
	// is transaction-local, and the commit of this one-statement
	// transaction reads it before it is reset. MATERIALIZED and the
	// reference from the statement guarantee it is evaluated.
	durableCTE = `WITH durable AS MATERIALIZED (
		SELECT CASE WHEN current_setting('synchronous_commit') = 'off'
			THEN set_config('synchronous_commit', 'local', true) END AS v) `
	// fenceCTE yields a row when the write may go ahead: no node fences
	// it ($3 = ''), or node $3 is alive and holds the lease of map $1.
	fenceCTE = `, fence AS MATERIALIZED (
		SELECT 1 AS ok WHERE $3 = '' OR EXISTS (
			SELECT 1 FROM leases l JOIN nodes n ON n.id = l.node
			WHERE l.name = 'map/' || $1 AND l.node = $3 AND n.expires_at > now()))`
	// retireCTE keeps the root being replaced or deleted, dated $4, for
	// readers on other nodes (see block_roots_retired).
	retireCTE = `, retired AS (
		INSERT INTO block_roots_retired (id, root, retired_at)
		SELECT b.id, b.root, $4 FROM block_roots b, fence WHERE b.id = $1)`
	qSaveRoot = durableCTE + fenceCTE + retireCTE + ` INSERT INTO block_roots (id, root, updated_at)
		SELECT $1, $2, now() FROM durable, fence
		ON CONFLICT (id) DO UPDATE SET root = excluded.root, updated_at = excluded.updated_at`
	// The join with durable only yields a row, and so only deletes, after
	// durable was evaluated. $2 is unused but keeps the parameter numbers
	// of the CTEs shared with qSaveRoot.
	qDeleteRoot = durableCTE + fenceCTE + retireCTE + ` DELETE FROM block_roots b USING durable, fence
		WHERE b.id = $1 AND $2::bytea IS NULL`
	qHolds = `SELECT EXISTS (SELECT 1 FROM leases l JOIN nodes n ON n.id = l.node
		WHERE l.name = 'map/' || $1 AND l.node = $2 AND n.expires_at > now())`
	qWalkRoots = `SELECT id, root FROM block_roots WHERE id > $1 ORDER BY id LIMIT $2`
)

// checkRootID refuses ids the other RootStores could not hold either, so
// that maps can move between backends: the rules of blockmap.DirStore, ids
// such as "vol-0123abcd".
func checkRootID(id string) error {
	if id == "" || len(id) > 128 || id[0] == '.' {
		return fmt.Errorf("postgres: invalid map id %q", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("postgres: invalid map id %q", id)
		}
	}
	return nil
}

// begin checks what every call checks first.
func (r *RootStore) begin(ctx context.Context, id string) error {
	if r.s.closed.Load() {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return checkRootID(id)
}

// LoadRoot implements [blockmap.RootStore.LoadRoot].
func (r *RootStore) LoadRoot(ctx context.Context, id string) (*blockmap.Root, error) {
	if err := r.begin(ctx, id); err != nil {
		return nil, fmt.Errorf("postgres: load root %s: %w", id, err)
	}
	var data []byte
	err := r.s.pool.QueryRow(ctx, qLoadRoot, id).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: load root %s: %w", id, blockmap.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: load root %s: %w", id, err)
	}
	root, err := blockmap.DecodeRoot(data)
	if err != nil {
		return nil, fmt.Errorf("postgres: load root %s: %w", id, err)
	}
	return root, nil
}

// SaveRoot implements [blockmap.RootStore.SaveRoot] with one upsert.
func (r *RootStore) SaveRoot(ctx context.Context, id string, root *blockmap.Root) error {
	if err := r.begin(ctx, id); err != nil {
		return fmt.Errorf("postgres: save root %s: %w", id, err)
	}
	data, err := root.MarshalBinary()
	if err != nil {
		return fmt.Errorf("postgres: save root %s: %w", id, err)
	}
	tag, err := r.s.pool.Exec(ctx, qSaveRoot, id, data, r.node, time.Now())
	if err != nil {
		return fmt.Errorf("postgres: save root %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: save root %s: %w: node %s does not hold it", id, blockmap.ErrBusy, r.node)
	}
	return nil
}

// Delete implements [blockmap.RootStore.Delete]. Like SaveRoot it is
// durable: a deleted root that came back after a crash could name blocks
// garbage collection freed meanwhile.
func (r *RootStore) Delete(ctx context.Context, id string) error {
	if err := r.begin(ctx, id); err != nil {
		return fmt.Errorf("postgres: delete root %s: %w", id, err)
	}
	if r.node != "" {
		// A fenced delete of nothing and a refused one both affect no
		// row; tell them apart with the fence alone.
		var held bool
		if err := r.s.pool.QueryRow(ctx, qHolds, id, r.node).Scan(&held); err != nil {
			return fmt.Errorf("postgres: delete root %s: %w", id, err)
		}
		if !held {
			return fmt.Errorf("postgres: delete root %s: %w: node %s does not hold it", id, blockmap.ErrBusy, r.node)
		}
	}
	if _, err := r.s.pool.Exec(ctx, qDeleteRoot, id, nil, r.node, time.Now()); err != nil {
		return fmt.Errorf("postgres: delete root %s: %w", id, err)
	}
	return nil
}

// WalkRoots implements [blockmap.RootStore.WalkRoots], in id order, one
// page of roots per statement. Each page is read completely, and its
// connection returned to the pool, before fn sees it: fn may use the store
// (or anything else sharing the pool) without deadlocking on a pool of one
// connection, and a slow fn holds no snapshot open on the server. A root
// saved before the walk and neither replaced nor deleted during it is
// reported, because ids are visited in order.
//
// A root that does not decode stops the walk with an error: garbage
// collection marks from the walk, and skipping the root would free its
// blocks.
func (r *RootStore) WalkRoots(ctx context.Context, fn func(id string, root *blockmap.Root) error) error {
	type row struct {
		id   string
		data []byte
	}
	after := "" // stored ids are never empty
	for {
		if r.s.closed.Load() {
			return fmt.Errorf("postgres: walk roots: %w", errClosed)
		}
		rows, err := r.s.pool.Query(ctx, qWalkRoots, after, r.pageSize)
		if err != nil {
			return fmt.Errorf("postgres: walk roots: %w", err)
		}
		page, err := pgx.CollectRows(rows, func(rw pgx.CollectableRow) (row, error) {
			var x row
			err := rw.Scan(&x.id, &x.data)
			return x, err
		})
		if err != nil {
			return fmt.Errorf("postgres: walk roots after %q: %w", after, err)
		}
		for _, x := range page {
			root, err := blockmap.DecodeRoot(x.data)
			if err != nil {
				return fmt.Errorf("postgres: walk roots: %s: %w", x.id, err)
			}
			if err := fn(x.id, root); err != nil {
				return err
			}
		}
		if len(page) < r.pageSize {
			return nil
		}
		after = page[len(page)-1].id
	}
}
