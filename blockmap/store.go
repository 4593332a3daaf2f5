package blockmap

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrNotFound is returned (wrapped) when no map is saved under an id.
var ErrNotFound = errors.New("blockmap: map not found")

// MapStore persists maps by id (volume ids "vol-…", snapshot ids "snap-…").
// Implementations must be safe for concurrent use by one process; the
// [Manager] serialises writers of one id, so a MapStore needs no locking of
// its own beyond keeping each call atomic.
//
// The local implementation is [DirStore]; a PostgreSQL one serves multi-node
// deployments. Walk is what garbage collection marks from, so it must report
// every saved map and fail, rather than skip, on a map it cannot read: a
// skipped map would have its blocks freed.
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

// DirStore is a MapStore keeping one file per map, <dir>/<id>.map, in the
// encoding of [Map.MarshalBinary].
type DirStore struct {
	dir string
}

var _ MapStore = (*DirStore)(nil)

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

// Load implements [MapStore.Load].
func (s *DirStore) Load(ctx context.Context, id string) (*Map, error) {
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
	m, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("blockmap: load %s: %w", id, err)
	}
	return m, nil
}

// Save implements [MapStore.Save]: temporary file, fsync, rename, fsync of
// the directory.
func (s *DirStore) Save(ctx context.Context, id string, m *Map) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkID(id); err != nil {
		return err
	}
	data, _ := m.MarshalBinary()
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

// Delete implements [MapStore.Delete]. The removal is made durable so that
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

// Walk implements [MapStore.Walk]. It also removes temporary files older
// than an hour, left behind by a Save that crashed; no healthy Save takes
// anywhere near that long.
func (s *DirStore) Walk(ctx context.Context, fn func(id string, m *Map) error) error {
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
		m, err := s.Load(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since ReadDir
		}
		if err != nil {
			return err
		}
		if err := fn(id, m); err != nil {
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
