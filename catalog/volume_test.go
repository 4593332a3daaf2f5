package catalog_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockstore/local"
	"github.com/omiproject/omi/catalog"
	"github.com/omiproject/omi/inspect"
)

// TestBuildDisk_Volume writes a preset straight into a blockmap volume, as
// omi does when it seeds the catalogue, and inspects it through a View.
func TestBuildDisk_Volume(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	blocks, err := local.Open(filepath.Join(dir, "blocks"))
	if err != nil {
		t.Fatal(err)
	}
	defer blocks.Close()
	maps, err := blockmap.NewDirStore(filepath.Join(dir, "maps"))
	if err != nil {
		t.Fatal(err)
	}
	m := blockmap.NewManager(blocks, maps)
	preset, err := catalog.LookupPreset("Ubuntu-24.04")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Create(ctx, "vol-1", catalog.DefaultSize); err != nil {
		t.Fatal(err)
	}
	dev, err := m.Open(ctx, "vol-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := catalog.BuildDisk(ctx, catalog.WriterAt(ctx, dev), preset.Spec); err != nil {
		t.Fatal(err)
	}
	if err := dev.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	v, err := m.View(ctx, "vol-1")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	rep, err := inspect.Inspect(ctx, v, v.Size(), inspect.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Clean() || rep.OS == nil || rep.OS.ID != "ubuntu" || rep.OS.VersionID != "24.04" {
		t.Fatalf("report %+v", rep)
	}
	// Only the blocks holding data were written.
	var data int64
	if err := v.Extents(func(off, length int64, zero bool) error {
		if !zero {
			data += length
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if data > 8<<20 {
		t.Errorf("volume holds %d bytes of data, want a few blocks", data)
	}
	t.Logf("volume of %d MiB holds %d KiB of data", v.Size()>>20, data>>10)
}
