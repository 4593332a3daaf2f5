package blockmap_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockmap/maptest"
)

func TestDirStoreConformance(t *testing.T) {
	maptest.Run(t, func(t *testing.T) blockmap.MapStore {
		s, err := blockmap.NewDirStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestDirStoreDamage checks that a damaged map file is an error for Load and
// stops Walk (a collector must never proceed without a map), and that
// leftovers of a crashed Save are ignored.
func TestDirStoreDamage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := blockmap.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := blockmap.New(1 << 20)
	if err := s.Save(ctx, "vol-1", m); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("half a map"), 0o644)
	n := 0
	if err := s.Walk(ctx, func(string, *blockmap.Map) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("Walk with a temp file: %d maps, %v", n, err)
	}
	os.WriteFile(filepath.Join(dir, "vol-2.map"), []byte("OMIM garbage"), 0o644)
	if _, err := s.Load(ctx, "vol-2"); !errors.Is(err, blockmap.ErrCorrupt) {
		t.Fatalf("Load of a damaged map: %v", err)
	}
	if err := s.Walk(ctx, func(string, *blockmap.Map) error { return nil }); !errors.Is(err, blockmap.ErrCorrupt) {
		t.Fatalf("Walk over a damaged map: %v", err)
	}
	for _, id := range []string{"", "../etc", ".hidden", "a/b"} {
		if err := s.Save(ctx, id, m); err == nil {
			t.Fatalf("Save accepted id %q", id)
		}
	}
}
