package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockstore"
)

// Cluster is the coordination state of the omi nodes sharing the store's
// database: the node registry, leases, retired block map roots and the
// garbage collector's condemned blocks (migration 0003). Package cluster
// runs the protocols; Cluster only keeps their state, each method one
// short transaction. It shares the Store's pool.
type Cluster struct{ s *Store }

// Cluster returns the coordination state of s.
func (s *Store) Cluster() *Cluster { return &Cluster{s: s} }

// ErrNodeExpired is returned by Heartbeat when the node's registration
// expired: other nodes may already have taken over its leases, so the node
// must stop (fail-stop) rather than go on.
var ErrNodeExpired = errors.New("postgres: node registration expired")

// qMembership serialises the transactions that register nodes and decide
// whether a node may cache (Join, Heartbeat): each sees every registration
// committed before it. It is a lock of the two-key space (apart from the
// store's one-key locks), per schema.
const qMembership = `SELECT pg_advisory_xact_lock(hashtext(current_schema()), 1852796005)`

// Join registers node id (unique per process start) with its display name
// and address, alive for ttl. It returns the current garbage collection
// epoch and the blocks condemned in it, read in the same snapshot as the
// registration: the node must guard its Puts with them from now on. It
// also returns how many other nodes are live: when none is, the node is
// registered as caching (see Heartbeat).
func (c *Cluster) Join(ctx context.Context, id, name, addr string, ttl time.Duration) (int64, []blockstore.Hash, int, error) {
	var epoch int64
	var condemned []blockstore.Hash
	var others int
	// Read committed: each statement sees what committed before it, so the
	// count of live nodes, taken under the lock, sees every registration
	// and caching flag decided before.
	err := pgx.BeginFunc(ctx, c.s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, qMembership); err != nil {
			return err
		}
		// One statement, so one snapshot: the epoch and its condemned set.
		rows, err := tx.Query(ctx, `SELECT g.epoch, c.hash FROM gc_state g LEFT JOIN gc_condemned c ON true`)
		if err != nil {
			return err
		}
		condemned = condemned[:0]
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&epoch, &b); err != nil {
				rows.Close()
				return err
			}
			if b == nil {
				continue
			}
			var h blockstore.Hash
			if len(b) != len(h) {
				rows.Close()
				return fmt.Errorf("condemned hash of %d bytes", len(b))
			}
			copy(h[:], b)
			condemned = append(condemned, h)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM nodes WHERE expires_at > now()`).Scan(&others); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO nodes (id, name, addr, expires_at, low_water, gc_epoch, caching)
			VALUES ($1, $2, $3, now() + $4::interval, $5, $6, $7)`, id, name, addr, ttl, time.Now(), epoch, others == 0)
		return err
	})
	if err != nil {
		return 0, nil, 0, fmt.Errorf("postgres: join node %s: %w", name, err)
	}
	return epoch, condemned, others, nil
}

func readCondemned(ctx context.Context, tx pgx.Tx) ([]blockstore.Hash, error) {
	rows, err := tx.Query(ctx, `SELECT hash FROM gc_condemned`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (blockstore.Hash, error) {
		var b []byte
		var h blockstore.Hash
		if err := r.Scan(&b); err != nil {
			return h, err
		}
		if len(b) != len(h) {
			return h, fmt.Errorf("condemned hash of %d bytes", len(b))
		}
		copy(h[:], b)
		return h, nil
	})
}

// Beat is what a Heartbeat learnt.
type Beat struct {
	// Epoch is the current garbage collection epoch.
	Epoch int64
	// Others is the number of other live nodes.
	Others int
	// Caching is the node's caching flag after the heartbeat: set when it
	// found itself alone, kept otherwise (the node clears it with
	// StopCaching once its cache is off).
	Caching bool
}

// Heartbeat keeps node id alive for ttl more, records its low water and
// the garbage collection epoch it has loaded, and returns the current
// epoch and the other live nodes. It fails with ErrNodeExpired when the
// registration had already expired.
func (c *Cluster) Heartbeat(ctx context.Context, id string, ttl time.Duration, lowWater time.Time, loaded int64) (Beat, error) {
	var b Beat
	err := pgx.BeginFunc(ctx, c.s.beat, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, qMembership); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `WITH o AS (SELECT count(*) AS k FROM nodes WHERE id <> $1 AND expires_at > now())
			UPDATE nodes SET expires_at = now() + $2::interval,
				low_water = GREATEST(low_water, $3), gc_epoch = $4,
				caching = caching OR (SELECT k FROM o) = 0
			WHERE id = $1 AND expires_at > now()
			RETURNING (SELECT epoch FROM gc_state), (SELECT k FROM o), caching`, id, ttl, lowWater, loaded).Scan(&b.Epoch, &b.Others, &b.Caching)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Beat{}, fmt.Errorf("postgres: heartbeat of node %s: %w", id, ErrNodeExpired)
	}
	if err != nil {
		return Beat{}, fmt.Errorf("postgres: heartbeat of node %s: %w", id, err)
	}
	return b, nil
}

// StopCaching clears node id's caching flag: its cache is empty and off.
func (c *Cluster) StopCaching(ctx context.Context, id string) error {
	if _, err := c.s.beat.Exec(ctx, `UPDATE nodes SET caching = false WHERE id = $1`, id); err != nil {
		return fmt.Errorf("postgres: node %s stops caching: %w", id, err)
	}
	return nil
}

// Caching returns how many live nodes other than id may be caching.
func (c *Cluster) Caching(ctx context.Context, id string) (int, error) {
	var n int
	if err := c.s.pool.QueryRow(ctx, `SELECT count(*) FROM nodes WHERE id <> $1 AND expires_at > now() AND caching`, id).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: nodes caching: %w", err)
	}
	return n, nil
}

// Condemned returns the current epoch and its condemned blocks.
func (c *Cluster) Condemned(ctx context.Context) (int64, []blockstore.Hash, error) {
	var epoch int64
	var hs []blockstore.Hash
	err := pgx.BeginTxFunc(ctx, c.s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT epoch FROM gc_state`).Scan(&epoch); err != nil {
			return err
		}
		var err error
		hs, err = readCondemned(ctx, tx)
		return err
	})
	if err != nil {
		return 0, nil, fmt.Errorf("postgres: read condemned blocks: %w", err)
	}
	return epoch, hs, nil
}

// Leave unregisters node id and frees its leases, for a graceful
// shutdown: its work is taken over at once instead of after the ttl.
func (c *Cluster) Leave(ctx context.Context, id string) error {
	err := pgx.BeginFunc(ctx, c.s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM leases WHERE node = $1`, id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM nodes WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: leave node %s: %w", id, err)
	}
	return nil
}

// Acquire takes lease name for node id, or confirms id holds it. When
// another live node holds it, it returns false and that node's name.
func (c *Cluster) Acquire(ctx context.Context, name, id string) (bool, string, error) {
	var got string
	err := c.s.pool.QueryRow(ctx, `INSERT INTO leases AS l (name, node) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET node = excluded.node, since = now()
		WHERE l.node = excluded.node
		   OR NOT EXISTS (SELECT 1 FROM nodes n WHERE n.id = l.node AND n.expires_at > now())
		RETURNING node`, name, id).Scan(&got)
	if err == nil {
		return true, "", nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return false, "", fmt.Errorf("postgres: acquire %s: %w", name, err)
	}
	var holder string
	err = c.s.pool.QueryRow(ctx, `SELECT coalesce(n.name, l.node) FROM leases l
		LEFT JOIN nodes n ON n.id = l.node WHERE l.name = $1`, name).Scan(&holder)
	if errors.Is(err, pgx.ErrNoRows) {
		return c.Acquire(ctx, name, id) // released meanwhile
	}
	if err != nil {
		return false, "", fmt.Errorf("postgres: acquire %s: %w", name, err)
	}
	return false, holder, nil
}

// Release frees lease name if node id holds it.
func (c *Cluster) Release(ctx context.Context, name, id string) error {
	if _, err := c.s.pool.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND node = $2`, name, id); err != nil {
		return fmt.Errorf("postgres: release %s: %w", name, err)
	}
	return nil
}

// LowWater returns the smallest low water of the live nodes (see the
// nodes table), or false when no node is alive.
func (c *Cluster) LowWater(ctx context.Context) (time.Time, bool, error) {
	var t *time.Time
	if err := c.s.pool.QueryRow(ctx, `SELECT min(low_water) FROM nodes WHERE expires_at > now()`).Scan(&t); err != nil {
		return time.Time{}, false, fmt.Errorf("postgres: low water: %w", err)
	}
	if t == nil {
		return time.Time{}, false, nil
	}
	return *t, true, nil
}

// RootSnapshot returns, as of one instant, every saved block map root and
// every root retired at or after since, and deletes the retired roots
// older than since, which no node reads any more.
func (c *Cluster) RootSnapshot(ctx context.Context, since time.Time) ([]*blockmap.Root, error) {
	var roots []*blockmap.Root
	err := pgx.BeginTxFunc(ctx, c.s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, root FROM block_roots
			UNION ALL SELECT id, root FROM block_roots_retired WHERE retired_at >= $1`, since)
		if err != nil {
			return err
		}
		roots, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*blockmap.Root, error) {
			var id string
			var data []byte
			if err := r.Scan(&id, &data); err != nil {
				return nil, err
			}
			root, err := blockmap.DecodeRoot(data)
			if err != nil {
				return nil, fmt.Errorf("root of %s: %w", id, err)
			}
			return root, nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: root snapshot: %w", err)
	}
	if _, err := c.s.pool.Exec(ctx, `DELETE FROM block_roots_retired WHERE retired_at < $1`, since); err != nil {
		return nil, fmt.Errorf("postgres: prune retired roots: %w", err)
	}
	return roots, nil
}

// Condemn replaces the condemned set with hs and starts a new epoch,
// which it returns.
func (c *Cluster) Condemn(ctx context.Context, hs []blockstore.Hash) (int64, error) {
	var epoch int64
	err := pgx.BeginFunc(ctx, c.s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `UPDATE gc_state SET epoch = epoch + 1 RETURNING epoch`).Scan(&epoch); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM gc_condemned`); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"gc_condemned"}, []string{"hash"},
			pgx.CopyFromSlice(len(hs), func(i int) ([]any, error) { return []any{hs[i][:]}, nil }))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: condemn %d blocks: %w", len(hs), err)
	}
	return epoch, nil
}

// Lagging returns how many live nodes have not loaded epoch yet.
func (c *Cluster) Lagging(ctx context.Context, epoch int64) (int, error) {
	var n int
	if err := c.s.pool.QueryRow(ctx, `SELECT count(*) FROM nodes WHERE expires_at > now() AND gc_epoch < $1`, epoch).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: nodes lagging epoch %d: %w", epoch, err)
	}
	return n, nil
}

// Reap runs del for each block of hs still condemned, inside one
// transaction that holds their rows, and removes them from the set: a
// Rescue of one of them waits for the transaction, then finds it gone.
// An error from del rolls the batch back (its blocks stay condemned).
func (c *Cluster) Reap(ctx context.Context, hs []blockstore.Hash, del func(blockstore.Hash) error) error {
	keys := make([][]byte, len(hs))
	for i := range hs {
		keys[i] = hs[i][:]
	}
	err := pgx.BeginFunc(ctx, c.s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `DELETE FROM gc_condemned WHERE hash = ANY($1) RETURNING hash`, keys)
		if err != nil {
			return err
		}
		held, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
		if err != nil {
			return err
		}
		for _, b := range held {
			var h blockstore.Hash
			copy(h[:], b)
			if err := del(h); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: reap %d blocks: %w", len(hs), err)
	}
	return nil
}

// Rescue takes h out of the condemned set, and reports whether it was
// still there (so the block was not deleted and will not be). When it
// returns false after h was condemned, the block is gone: the caller
// stores it again.
func (c *Cluster) Rescue(ctx context.Context, h blockstore.Hash) (bool, error) {
	tag, err := c.s.pool.Exec(ctx, `DELETE FROM gc_condemned WHERE hash = $1`, h[:])
	if err != nil {
		return false, fmt.Errorf("postgres: rescue %s: %w", h, err)
	}
	return tag.RowsAffected() > 0, nil
}
