package blockmap

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ErrNotFound is returned (wrapped) when no map is saved under an id.
var ErrNotFound = errors.New("blockmap: map not found")

// RootStore persists the root of each map by id (volume ids "vol-…",
// snapshot ids "snap-…"): its size and chunk hashes, a few bytes whatever
// the volume size; the chunks themselves are blocks of the block store.
// This is the contract a storage backend implements: [DirStore] on a single
// node, a PostgreSQL table for multi-node deployments. Every implementation
// runs maptest.RunRoots.
//
// Implementations must be safe for concurrent use by one process; the
// [Manager] serialises writers of one id, so a RootStore needs no locking of
// its own beyond keeping each call atomic. WalkRoots is what garbage
// collection marks from, so it must report every saved root and fail,
// rather than skip, on a root it cannot read: a skipped root would have its
// blocks freed.
type RootStore interface {
	// LoadRoot returns the root saved under id, or an error wrapping
	// ErrNotFound.
	LoadRoot(ctx context.Context, id string) (*Root, error)
	// SaveRoot atomically and durably replaces the root saved under id:
	// after a crash, LoadRoot returns either the old or the new root, and
	// once SaveRoot returns nil, the new one. The Manager calls it only
	// after every chunk block the root names is durable.
	SaveRoot(ctx context.Context, id string, r *Root) error
	// Delete removes the root saved under id. Deleting a missing id is not
	// an error.
	Delete(ctx context.Context, id string) error
	// WalkRoots calls fn for every saved root, one at a time, in no
	// particular order. Roots saved or deleted during the walk may or may
	// not be reported. An error from fn stops the walk and is returned.
	WalkRoots(ctx context.Context, fn func(id string, r *Root) error) error
}

// MapStore persists whole maps by id. It is the view of the maps that tools
// and tests use; [DirStore] provides it once a Manager owns it, by reading
// and writing chunk blocks through that Manager. Package maptest.Run is its
// conformance suite.
type MapStore interface {
	// Load returns the map saved under id, or an error wrapping
	// ErrNotFound.
	Load(ctx context.Context, id string) (*Map, error)
	// Save atomically and durably replaces the map saved under id: after a
	// crash, Load returns either the old or the new map, and once Save
	// returns nil, the new one.
	Save(ctx context.Context, id string, m *Map) error
	// Delete removes the map saved under id. Deleting a missing id is not
	// an error.
	Delete(ctx context.Context, id string) error
	// Walk calls fn for every saved map, one at a time, in no particular
	// order. Maps saved or deleted during the walk may or may not be
	// reported. An error from fn stops the walk and is returned.
	Walk(ctx context.Context, fn func(id string, m *Map) error) error
}

// DirStore is the single-node RootStore: one file per map,
// <dir>/<id>.map, holding the encoding of [Root.MarshalBinary]. Files of the
// older whole-map format are read as old-format roots.
//
// NewManager binds a DirStore to the Manager's block store; from then on the
// DirStore is also a MapStore whose Load, Save and Walk read and write whole
// maps as chunk blocks plus root, through that Manager (its pins and write
// barrier), for tools and tests. Unbound, those three methods fail.
type DirStore struct {
	dir string

	mu  sync.Mutex
	mgr *Manager
}

var (
	_ RootStore = (*DirStore)(nil)
	_ MapStore  = (*DirStore)(nil)
)

// errUnbound is returned by the MapStore methods of a DirStore no Manager
// owns: its files hold roots, whose chunks only a block store can supply.
var errUnbound = errors.New("blockmap: DirStore holds chunked maps: give it to NewManager to read or write whole maps")

const (
	mapExt     = ".map"
	tempPrefix = ".tmp-"
)

// NewDirStore opens (creating if needed) a map directory.
func NewDirStore(dir string) (*DirStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("blockmap: open map directory: %w", err)
	}
	return &DirStore{dir: dir}, nil
}

// checkID refuses ids that could escape the directory or collide with
// temporary files. Real ids look like "vol-0123abcd".
func checkID(id string) error {
	if id == "" || len(id) > 128 || id[0] == '.' {
		return fmt.Errorf("blockmap: invalid map id %q", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("blockmap: invalid map id %q", id)
		}
	}
	return nil
}

func (s *DirStore) path(id string) string { return filepath.Join(s.dir, id+mapExt) }

// LoadRoot implements [RootStore.LoadRoot].
func (s *DirStore) LoadRoot(ctx context.Context, id string) (*Root, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkID(id); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blockmap: load %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blockmap: load %s: %w", id, err)
	}
	r, err := DecodeRoot(data)
	if err != nil {
		return nil, fmt.Errorf("blockmap: load %s: %w", id, err)
	}
	return r, nil
}

func (s *DirStore) bind(m *Manager) {
	s.mu.Lock()
	s.mgr = m
	s.mu.Unlock()
}

func (s *DirStore) manager() (*Manager, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mgr == nil {
		return nil, errUnbound
	}
	return s.mgr, nil
}

// Load implements [MapStore.Load]: the root and its chunk blocks, read
// through the owning Manager.
func (s *DirStore) Load(ctx context.Context, id string) (*Map, error) {
	m, err := s.manager()
	if err != nil {
		return nil, err
	}
	return m.loadMap(ctx, id)
}

// Save implements [MapStore.Save]: the owning Manager stores the chunk
// blocks of mp, then the root. It bypasses the Manager's open devices: use
// it only for ids no Device has open.
//
// Every chunk is Put again, even one mp was loaded with: the root that named
// it may have been replaced since and the chunk collected.
func (s *DirStore) Save(ctx context.Context, id string, mp *Map) error {
	m, err := s.manager()
	if err != nil {
		return err
	}
	mp = mp.Clone()
	clear(mp.sums)
	_, err = m.saveMap(ctx, id, mp)
	return err
}

// Walk implements [MapStore.Walk], resolving each root through the owning
// Manager.
func (s *DirStore) Walk(ctx context.Context, fn func(id string, m *Map) error) error {
	m, err := s.manager()
	if err != nil {
		return err
	}
	return s.WalkRoots(ctx, func(id string, r *Root) error {
		mp, err := m.resolve(ctx, r)
		if err != nil {
			return fmt.Errorf("blockmap: walk %s: %w", id, err)
		}
		return fn(id, mp)
	})
}

// SaveRoot implements [RootStore.SaveRoot]: temporary file, fsync, rename,
// fsync of the directory.
func (s *DirStore) SaveRoot(ctx context.Context, id string, r *Root) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkID(id); err != nil {
		return err
	}
	data, _ := r.MarshalBinary()
	f, err := os.CreateTemp(s.dir, tempPrefix)
	if err != nil {
		return fmt.Errorf("blockmap: save %s: %w", id, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("blockmap: save %s: %w", id, err)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, s.path(id)); err != nil {
		return err
	}
	return syncDir(s.dir)
}

// Delete implements [RootStore.Delete] and [MapStore.Delete]. The removal is made durable so that
// a deleted map does not come back after a crash and keep its blocks alive.
func (s *DirStore) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkID(id); err != nil {
		return err
	}
	err := os.Remove(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		return fmt.Errorf("blockmap: delete %s: %w", id, err)
	}
	return nil
}

// WalkRoots implements [RootStore.WalkRoots]. It also removes temporary
// files older than an hour, left behind by a save that crashed; no healthy
// save takes anywhere near that long.
func (s *DirStore) WalkRoots(ctx context.Context, fn func(id string, r *Root) error) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("blockmap: walk %s: %w", s.dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, tempPrefix) {
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
				os.Remove(filepath.Join(s.dir, name))
			}
			continue
		}
		if !strings.HasSuffix(name, mapExt) || strings.HasPrefix(name, tempPrefix) || !e.Type().IsRegular() {
			continue
		}
		id := strings.TrimSuffix(name, mapExt)
		if checkID(id) != nil {
			continue
		}
		r, err := s.LoadRoot(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since ReadDir
		}
		if err != nil {
			return err
		}
		if err := fn(id, r); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
