package blockmap_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/blockstore/local"
)

const bs = blockstore.BlockSize

type env struct {
	dir    string
	blocks *local.Store
	maps   *blockmap.DirStore
	m      *blockmap.Manager
}

// mustEnv opens a Manager over a real local block store and a DirStore in
// dir (a new temp dir when empty).
func mustEnv(tb testing.TB, dir string, opts ...blockmap.Option) *env {
	tb.Helper()
	if dir == "" {
		dir = tb.TempDir()
	}
	blocks, err := local.Open(filepath.Join(dir, "blocks"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { blocks.Close() })
	maps, err := blockmap.NewDirStore(filepath.Join(dir, "maps"))
	if err != nil {
		tb.Fatal(err)
	}
	return &env{dir: dir, blocks: blocks, maps: maps, m: blockmap.NewManager(blocks, maps, opts...)}
}

func mustCreate(tb testing.TB, e *env, id string, size int64) {
	tb.Helper()
	if err := e.m.Create(context.Background(), id, size); err != nil {
		tb.Fatal(err)
	}
}

func mustOpen(tb testing.TB, e *env, id string) *blockmap.Device {
	tb.Helper()
	d, err := e.m.Open(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// storedBlocks returns the set of hashes in the block store.
func storedBlocks(tb testing.TB, s blockstore.Store) map[blockstore.Hash]bool {
	tb.Helper()
	set := map[blockstore.Hash]bool{}
	if err := s.Walk(context.Background(), func(h blockstore.Hash, _ time.Time) error {
		set[h] = true
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return set
}

// referenced returns the union of the hashes of every saved map: the data
// blocks of its entries and the chunk blocks of its root.
func referenced(tb testing.TB, maps *blockmap.DirStore) map[blockstore.Hash]bool {
	tb.Helper()
	set := map[blockstore.Hash]bool{}
	err := maps.Walk(context.Background(), func(id string, m *blockmap.Map) error {
		return m.Walk(func(_ int64, h blockstore.Hash) error { set[h] = true; return nil })
	})
	if err != nil {
		tb.Fatal(err)
	}
	err = maps.WalkRoots(context.Background(), func(id string, r *blockmap.Root) error {
		for _, h := range r.Chunks() {
			if !h.IsZero() {
				set[h] = true
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return set
}

func readAll(tb testing.TB, e *env, id string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if _, err := e.m.ReadTo(context.Background(), id, &buf); err != nil {
		tb.Fatalf("ReadTo %s: %v", id, err)
	}
	return buf.Bytes()
}
