package blockmap_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockmap/maptest"
	"github.com/omiproject/omi/blockstore"
)

func TestDirStoreRootConformance(t *testing.T) {
	maptest.RunRoots(t, func(t *testing.T) blockmap.RootStore {
		s, err := blockmap.NewDirStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestDirStoreConformance runs the whole-map suite against a DirStore bound
// to a Manager: maps go to chunk blocks plus a root and come back equal.
func TestDirStoreConformance(t *testing.T) {
	maptest.Run(t, func(t *testing.T) blockmap.MapStore {
		return mustEnv(t, "").maps
	})
}

func TestDirStoreUnbound(t *testing.T) {
	s, err := blockmap.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, _ := blockmap.New(1 << 20)
	if err := s.Save(context.Background(), "vol-1", m); err == nil {
		t.Fatal("an unbound DirStore saved a whole map")
	}
	if _, err := s.Load(context.Background(), "vol-1"); err == nil {
		t.Fatal("an unbound DirStore loaded a whole map")
	}
}

// TestDirStoreDamage checks that a damaged map file is an error for
// LoadRoot and stops WalkRoots and Walk (a collector must never proceed
// without a map), and that leftovers of a crashed save are ignored.
func TestDirStoreDamage(t *testing.T) {
	ctx := context.Background()
	e := mustEnv(t, "")
	s, dir := e.maps, filepath.Join(e.dir, "maps")
	m, _ := blockmap.New(1 << 20)
	if err := s.Save(ctx, "vol-1", m); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("half a map"), 0o644)
	n := 0
	if err := s.WalkRoots(ctx, func(string, *blockmap.Root) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("WalkRoots with a temp file: %d maps, %v", n, err)
	}
	os.WriteFile(filepath.Join(dir, "vol-2.map"), []byte("OMIM garbage"), 0o644)
	if _, err := s.LoadRoot(ctx, "vol-2"); !errors.Is(err, blockmap.ErrCorrupt) {
		t.Fatalf("LoadRoot of a damaged map: %v", err)
	}
	if err := s.WalkRoots(ctx, func(string, *blockmap.Root) error { return nil }); !errors.Is(err, blockmap.ErrCorrupt) {
		t.Fatalf("WalkRoots over a damaged map: %v", err)
	}
	if err := s.Walk(ctx, func(string, *blockmap.Map) error { return nil }); !errors.Is(err, blockmap.ErrCorrupt) {
		t.Fatalf("Walk over a damaged map: %v", err)
	}
	r, _ := blockmap.NewRoot(1<<20, make([]blockstore.Hash, 1))
	for _, id := range []string{"", "../etc", ".hidden", "a/b"} {
		if err := s.SaveRoot(ctx, id, r); err == nil {
			t.Fatalf("SaveRoot accepted id %q", id)
		}
	}
}
