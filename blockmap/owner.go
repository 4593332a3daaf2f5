package blockmap

import (
	"context"
	"fmt"
	"time"

	"github.com/omiproject/omi/blockstore"
)

// Owner arbitrates write access to maps between the processes (omi nodes)
// that share one RootStore and one block store. A Manager claims a map
// before it opens it for writing, creates, replaces or deletes it, and
// unclaims it when done; the RootStore of such a deployment refuses to
// save a root whose map the saving process does not hold, so a process
// that lost its claim (declared dead while paused) cannot overwrite the
// work of the one that took over.
//
// Readers (View, the source of Clone) never claim: a map open in another
// process is read as last saved, which is what that process's last flush
// made durable.
type Owner interface {
	// Claim takes map id for this process, or confirms it already holds
	// it. It fails with an error wrapping ErrBusy, naming the holder,
	// when another live process holds it.
	Claim(ctx context.Context, id string) error
	// Unclaim gives id up. Unclaiming a map not held is not an error.
	Unclaim(ctx context.Context, id string) error
}

// WithOwner makes the Manager claim maps through o (see [Owner]); without
// it a Manager assumes it is alone on its RootStore.
func WithOwner(o Owner) Option { return func(c *config) { c.owner = o } }

func (m *Manager) claim(ctx context.Context, id string) error {
	if m.cfg.owner == nil {
		return nil
	}
	return m.cfg.owner.Claim(ctx, id)
}

func (m *Manager) unclaim(id string) {
	if m.cfg.owner == nil {
		return
	}
	// Unclaiming must happen even when the caller's context is done, or
	// the map stays held until this process dies.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m.cfg.owner.Unclaim(ctx, id)
}

// hold records that an operation may reference, from now until done is
// called, blocks that no saved root names at some instant of its run (it
// read a root that may be replaced, or Put a block it has not pinned yet).
// The returned time dates the hold; pins taken under it use that date.
func (m *Manager) hold() (time.Time, func()) {
	now := time.Now()
	m.holdMu.Lock()
	m.holdSeq++
	seq := m.holdSeq
	if m.holds == nil {
		m.holds = make(map[uint64]time.Time)
	}
	m.holds[seq] = now
	m.holdMu.Unlock()
	return now, func() {
		m.holdMu.Lock()
		delete(m.holds, seq)
		m.holdMu.Unlock()
	}
}

// LowWater returns a time no later than the written time of any block
// this Manager has Put but not yet named in a saved root, and no later
// than the moment it read any root it still uses (open Views, Clones in
// progress). A garbage collector running in another process, which cannot
// see this Manager's pins, may sweep only blocks written before the
// LowWater of every live process and not named by a root it walked, nor by
// a root replaced or deleted since that time. Successive calls never go
// back in time.
func (m *Manager) LowWater() time.Time {
	low := time.Now()
	if t, ok := m.pins.Oldest(); ok && t.Before(low) {
		low = t
	}
	m.holdMu.Lock()
	for _, t := range m.holds {
		if t.Before(low) {
			low = t
		}
	}
	m.holdMu.Unlock()
	return low
}

// MarkRoots calls fn with every hash the roots reported by walk name:
// their chunk blocks and the data blocks those chunks list, each shared
// chunk read once. It is the marking of a collector that walks roots
// itself (several processes sharing one RootStore), while LiveHashes is
// that of a collector alone with this Manager.
func (m *Manager) MarkRoots(ctx context.Context, walk func(fn func(id string, r *Root) error) error, fn func(blockstore.Hash) error) error {
	seen := make(map[blockstore.Hash]struct{})
	err := walk(func(id string, r *Root) error {
		if err := m.markRoot(ctx, r, seen, fn); err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("blockmap: mark roots: %w", err)
	}
	return nil
}
