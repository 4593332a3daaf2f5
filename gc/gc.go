// Package gc frees the blocks of a [blockstore.Store] that no block map
// references, by mark and sweep.
//
// Blocks are shared between volumes, snapshots and images and are never
// reference-counted, so the only way to know a block is garbage is to look at
// every map. Collect does so concurrently with writers, with two guards:
//
//   - the live function (blockmap.Manager.LiveHashes) reports every hash
//     referenced when the marking started, even if the reference is dropped
//     meanwhile, plus hashes Put but not yet committed (blockstore.Pins).
//     Block maps are themselves stored as chunk blocks named by small roots,
//     so the live hashes are those chunk blocks and the data blocks they
//     name; an unreferenced chunk block is garbage like any other block;
//   - the sweep removes a block only if its written time is before the start
//     of the collection ([blockstore.Store.DeleteIfWrittenBefore]), so a block
//     Put or re-Put while the collection runs survives it even though the
//     marking did not see it.
//
// The live set is kept in memory: 32 bytes plus map overhead per distinct
// live block, about 80 MiB per million blocks (0.5 TiB of distinct data).
package gc

import (
	"context"
	"fmt"
	"time"

	"github.com/omiproject/omi/blockstore"
)

// Stats describes one collection.
type Stats struct {
	// Live is the number of distinct hashes the live function reported.
	Live int64
	// Scanned is the number of blocks the store walk reported.
	Scanned int64
	// Freed is the number of blocks deleted.
	Freed int64
	// Young is the number of unreferenced blocks kept because they were
	// written after the collection started (in-flight writes); the next
	// collection frees them if they are still unreferenced.
	Young int64
	// FreedBytes is the stored size of the freed blocks, or -1 when the
	// store cannot tell it (the Store interface has no size query).
	FreedBytes int64
	// Mark and Sweep are the durations of the two phases.
	Mark, Sweep time.Duration
}

// LiveFunc calls fn with every hash that must survive a collection started
// before the call. It may report a hash several times. An error aborts the
// collection before anything is deleted.
type LiveFunc func(ctx context.Context, fn func(blockstore.Hash) error) error

// Collect deletes every block of blocks that live does not report and that
// was written before Collect started. An error from live aborts without
// deleting anything; an error during the sweep stops it, leaving the
// remaining garbage for the next collection.
func Collect(ctx context.Context, blocks blockstore.Store, live LiveFunc) (Stats, error) {
	st := Stats{FreedBytes: -1}
	// The start time is noted before marking, so every block the marking
	// could miss (Put after it began) has a written time not before start.
	start := time.Now()
	set := make(map[blockstore.Hash]struct{})
	err := live(ctx, func(h blockstore.Hash) error {
		if !h.IsZero() {
			set[h] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("gc: mark: %w", err)
	}
	st.Live = int64(len(set))
	marked := time.Now()
	st.Mark = marked.Sub(start)

	err = blocks.Walk(ctx, func(h blockstore.Hash, written time.Time) error {
		st.Scanned++
		if _, ok := set[h]; ok {
			return nil
		}
		if !written.Before(start) {
			st.Young++
			return nil
		}
		deleted, err := blocks.DeleteIfWrittenBefore(ctx, h, start)
		if err != nil {
			return err
		}
		if deleted {
			st.Freed++
		} else {
			st.Young++ // re-Put since the walk saw it
		}
		return nil
	})
	st.Sweep = time.Since(marked)
	if err != nil {
		return st, fmt.Errorf("gc: sweep: %w", err)
	}
	return st, nil
}
