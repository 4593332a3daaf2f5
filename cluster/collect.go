package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/gc"
)

// reapBatch is how many condemned blocks one Reap transaction deletes: its
// row locks make a rescuing node wait for at most that many deletions.
const reapBatch = 64

// CollectOptions tunes Collect.
type CollectOptions struct {
	// Margin is subtracted from the cutoff to absorb clock differences
	// between the nodes and the block store (default 0: one machine, or
	// clocks kept by NTP well within the block store's own skew margin).
	Margin time.Duration
	// AckTimeout bounds the wait for every live node to load the
	// condemned set (default 3 x the node's ttl, after which a silent
	// node has expired anyway).
	AckTimeout time.Duration
}

// Collect runs one garbage collection of blocks for the whole cluster
// (see the package documentation). The caller holds the "gc" lease. m is
// this node's block map manager, used to read map chunks; blocks is the
// shared block store.
func (n *Node) Collect(ctx context.Context, m *blockmap.Manager, blocks blockstore.Store, opt CollectOptions) (gc.Stats, error) {
	st := gc.Stats{FreedBytes: -1}
	if opt.AckTimeout <= 0 {
		opt.AckTimeout = 3 * n.cfg.TTL
	}
	start := time.Now()
	cutoff := start
	if lw, ok, err := n.b.LowWater(ctx); err != nil {
		return st, fmt.Errorf("cluster: collect: %w", err)
	} else if ok && lw.Before(cutoff) {
		cutoff = lw
	}
	cutoff = cutoff.Add(-opt.Margin)

	roots, err := n.b.RootSnapshot(ctx, cutoff)
	if err != nil {
		return st, fmt.Errorf("cluster: collect: %w", err)
	}
	live := make(map[blockstore.Hash]struct{})
	err = m.MarkRoots(ctx, func(fn func(string, *blockmap.Root) error) error {
		for _, r := range roots {
			if err := fn("", r); err != nil {
				return err
			}
		}
		return nil
	}, func(h blockstore.Hash) error {
		if !h.IsZero() {
			live[h] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("cluster: collect: %w", err)
	}
	st.Live = int64(len(live))
	marked := time.Now()
	st.Mark = marked.Sub(start)

	var doomed []blockstore.Hash
	err = blocks.Walk(ctx, func(h blockstore.Hash, written time.Time) error {
		st.Scanned++
		if _, ok := live[h]; ok {
			return nil
		}
		if !written.Before(cutoff) {
			st.Young++
			return nil
		}
		doomed = append(doomed, h)
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("cluster: collect: walk: %w", err)
	}
	if len(doomed) == 0 {
		st.Sweep = time.Since(marked)
		return st, nil
	}
	epoch, err := n.b.Condemn(ctx, doomed)
	if err != nil {
		return st, fmt.Errorf("cluster: collect: %w", err)
	}
	n.Refresh()
	if err := n.waitLoaded(ctx, epoch, opt.AckTimeout); err != nil {
		return st, fmt.Errorf("cluster: collect: %w", err)
	}
	for i := 0; i < len(doomed); i += reapBatch {
		batch := doomed[i:min(i+reapBatch, len(doomed))]
		err := n.b.Reap(ctx, batch, func(h blockstore.Hash) error {
			deleted, err := blocks.DeleteIfWrittenBefore(ctx, h, cutoff)
			if deleted {
				st.Freed++
			} else if err == nil {
				st.Young++ // stored again since the walk
			}
			return err
		})
		if err != nil {
			st.Sweep = time.Since(marked)
			return st, fmt.Errorf("cluster: collect: %w", err)
		}
	}
	st.Sweep = time.Since(marked)
	return st, nil
}

// waitLoaded waits until every live node has loaded the condemned set of
// epoch. A node that stops renewing expires within its ttl and stops
// counting; one that renews without ever loading it is broken, and the
// collection gives up after timeout.
func (n *Node) waitLoaded(ctx context.Context, epoch int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		lag, err := n.b.Lagging(ctx, epoch)
		if err != nil {
			return err
		}
		if lag == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d live nodes did not load the condemned blocks of epoch %d within %s", lag, epoch, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
