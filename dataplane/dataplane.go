// Package dataplane connects the API service to the bytes of volumes and
// snapshots: it implements service.DataPlane over a blockmap.Manager (so a
// snapshot, a volume made from a snapshot and a copy cost metadata only)
// and resolves NBD export names to the devices of live volumes.
package dataplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/gc"
	"github.com/omiproject/omi/inspect"
	"github.com/omiproject/omi/nbd"
)

// Plane is the data plane of one omi process.
type Plane struct {
	maps   *blockmap.Manager
	blocks blockstore.Store
	store  omi.Store

	// orphanGrace is how long a map must stay without a record before
	// ReapOrphans deletes it; suspects dates when each was first seen so.
	orphanGrace time.Duration
	suspectMu   sync.Mutex
	suspects    map[string]time.Time
}

// DefaultOrphanGrace leaves a map without a record alone for this long:
// far longer than the window in which a map exists before its record
// (an official OMI's build, a snapshot map saved just before its record).
const DefaultOrphanGrace = 5 * time.Minute

// SetOrphanGrace changes DefaultOrphanGrace for this plane (tests).
func (p *Plane) SetOrphanGrace(d time.Duration) { p.orphanGrace = d }

// New returns the data plane over a block map manager, its block store and
// the metadata store (consulted to decide which volumes NBD may open).
func New(maps *blockmap.Manager, blocks blockstore.Store, store omi.Store) *Plane {
	return &Plane{maps: maps, blocks: blocks, store: store, orphanGrace: DefaultOrphanGrace, suspects: map[string]time.Time{}}
}

// Maps returns the block map manager (export and import stream through it).
func (p *Plane) Maps() *blockmap.Manager { return p.maps }

// CreateVolume implements service.DataPlane. It is idempotent so that a
// reconciler retrying after a crash between the data step and the state
// change succeeds: an existing map of the right origin is kept.
func (p *Plane) CreateVolume(ctx context.Context, volumeID string, size int64, fromSnapshot string) error {
	var err error
	if fromSnapshot == "" {
		err = p.maps.Create(ctx, volumeID, size)
	} else {
		err = p.maps.Clone(ctx, fromSnapshot, volumeID)
	}
	if errors.Is(err, blockmap.ErrExists) {
		err = nil
	}
	if err != nil {
		return err
	}
	cur, err := p.maps.Size(ctx, volumeID)
	if err != nil {
		return err
	}
	if cur < size {
		return p.maps.Resize(ctx, volumeID, size)
	}
	return nil
}

// ResizeVolume implements service.DataPlane.
func (p *Plane) ResizeVolume(ctx context.Context, volumeID string, size int64) error {
	cur, err := p.maps.Size(ctx, volumeID)
	if err != nil {
		return err
	}
	if cur >= size {
		return nil
	}
	return p.maps.Resize(ctx, volumeID, size)
}

// Snapshot implements service.DataPlane: the snapshot's map is the volume's
// at this instant, including writes acknowledged over NBD.
func (p *Plane) Snapshot(ctx context.Context, volumeID, snapshotID string) error {
	err := p.maps.Clone(ctx, volumeID, snapshotID)
	if errors.Is(err, blockmap.ErrExists) {
		return nil
	}
	return err
}

// CopySnapshot implements service.DataPlane.
func (p *Plane) CopySnapshot(ctx context.Context, src, dst string) error {
	err := p.maps.Clone(ctx, src, dst)
	if errors.Is(err, blockmap.ErrExists) {
		return nil
	}
	return err
}

// Delete implements service.DataPlane. A volume still open over NBD is
// retried for a while: the client is being told to go away.
func (p *Plane) Delete(ctx context.Context, id string) error {
	for i := 0; ; i++ {
		err := p.maps.Delete(ctx, id)
		if !errors.Is(err, blockmap.ErrBusy) || i == 50 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ReapOrphans deletes the maps of volumes and snapshots that have had no
// record for the orphan grace and returns how many it deleted. The service
// frees a map when its resource is deleted, but gives up while the map is
// busy (a volume served over NBD by another node, say), and a crash can
// fall between a map's creation and its record's; such a map would keep
// its blocks forever. Ids are never reused, so a map that stays without a
// record is garbage. A map still busy is left for a later call.
func (p *Plane) ReapOrphans(ctx context.Context) (int, error) {
	var ids []string
	if err := p.maps.IDs(ctx, func(id string) error { ids = append(ids, id); return nil }); err != nil {
		return 0, err
	}
	var orphans []string
	err := p.store.View(ctx, func(tx omi.Tx) error {
		for _, id := range ids {
			kind := omi.KindVolume
			if omi.ValidID(id, omi.PrefixSnapshot) {
				kind = omi.KindSnapshot
			} else if !omi.ValidID(id, omi.PrefixVolume) {
				continue // not a resource's map: not ours to judge
			}
			if _, err := tx.Get(kind, id); errors.Is(err, omi.ErrNotFound) {
				orphans = append(orphans, id)
			} else if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	now := time.Now()
	p.suspectMu.Lock()
	seen := p.suspects
	p.suspects = make(map[string]time.Time, len(orphans))
	ripe := orphans[:0]
	for _, id := range orphans {
		first, ok := seen[id]
		if !ok {
			first = now
		}
		if now.Sub(first) >= p.orphanGrace {
			ripe = append(ripe, id)
		} else {
			p.suspects[id] = first
		}
	}
	p.suspectMu.Unlock()
	n := 0
	for _, id := range ripe {
		switch err := p.maps.Delete(ctx, id); {
		case err == nil:
			n++
		case errors.Is(err, blockmap.ErrBusy):
		default:
			return n, err
		}
	}
	return n, nil
}

// Collect runs one garbage collection of unreferenced blocks.
func (p *Plane) Collect(ctx context.Context) (gc.Stats, error) {
	return gc.Collect(ctx, p.blocks, p.maps.LiveHashes)
}

// exportable reports whether a volume may be served over NBD.
func exportable(v *omi.Volume) bool {
	return v.State == omi.VolumeAvailable || v.State == omi.VolumeInUse
}

// Open implements nbd.Exports: the export name is a volume id.
func (p *Plane) Open(ctx context.Context, name string) (nbd.Export, error) {
	if !omi.ValidID(name, omi.PrefixVolume) {
		return nil, fmt.Errorf("%w: %q is not a volume id", nbd.ErrUnknownExport, name)
	}
	var v *omi.Volume
	err := p.store.View(ctx, func(tx omi.Tx) (err error) {
		v, err = omi.Get[omi.Volume](tx, name)
		return err
	})
	if errors.Is(err, omi.ErrNotFound) {
		return nil, fmt.Errorf("%w: no volume %s", nbd.ErrUnknownExport, name)
	}
	if err != nil {
		return nil, err
	}
	if !exportable(v) {
		return nil, fmt.Errorf("%w: volume %s is %s", nbd.ErrUnknownExport, name, v.State)
	}
	dev, err := p.maps.Open(ctx, name)
	if errors.Is(err, blockmap.ErrBusy) {
		// Another node of the cluster serves it (the error names it).
		return nil, fmt.Errorf("%w: volume %s is served by another omi node until it is disconnected there: %v", nbd.ErrExportBusy, name, err)
	}
	if err != nil {
		return nil, err
	}
	return dev, nil
}

// List implements nbd.Exports: every volume that can be opened.
func (p *Plane) List(ctx context.Context) ([]string, error) {
	var out []string
	err := p.store.View(ctx, func(tx omi.Tx) error {
		return omi.Scan(tx, omi.Query{}, func(v *omi.Volume) (bool, error) {
			if exportable(v) {
				out = append(out, v.VolumeId)
			}
			return true, nil
		})
	})
	return out, err
}

// InspectSnapshot implements service.Inspector: it reads only the blocks
// of the snapshot's disk that the inspection needs.
func (p *Plane) InspectSnapshot(ctx context.Context, snapshotID string) (json.RawMessage, bool, error) {
	view, err := p.maps.View(ctx, snapshotID)
	if err != nil {
		return nil, false, err
	}
	defer view.Close()
	report, err := inspect.Inspect(ctx, view, view.Size(), inspect.Options{})
	if err != nil {
		return nil, false, err
	}
	doc, err := json.Marshal(report)
	if err != nil {
		return nil, false, err
	}
	return doc, report.Clean(), nil
}
