package transfer

import (
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/blockstore/local"
	"github.com/omiproject/omi/diskimage"
)

// countingSource counts the bytes the image writers read.
type countingSource struct {
	diskimage.Source
	read int64
}

func (c *countingSource) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.Source.ReadAt(p, off)
	c.read += int64(n)
	return n, err
}

// TestViewSourceReadsOnlyData: exporting a 1 GiB map with two allocated
// blocks reads two blocks' worth of bytes, in both formats, and the
// read-ahead returns the right bytes.
func TestViewSourceReadsOnlyData(t *testing.T) {
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
	ctx := context.Background()
	const size = 1 << 30
	if err := m.Create(ctx, "s", size); err != nil {
		t.Fatal(err)
	}
	d, err := m.Open(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	blk := make([]byte, blockstore.BlockSize)
	for i := range blk {
		blk[i] = byte(i * 7)
	}
	offs := []int64{3 * blockstore.BlockSize, 700 << 20}
	for _, off := range offs {
		if err := d.WriteAt(ctx, blk, off); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	v, err := m.View(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for _, format := range []diskimage.Format{diskimage.FormatQcow2, diskimage.FormatRaw} {
		vs := newViewSource(ctx, v, nil)
		src := &countingSource{Source: vs}
		if _, err := diskimage.Export(ctx, io.Discard, src, diskimage.ExportOptions{Format: format}); err != nil {
			t.Fatal(err)
		}
		vs.stop()
		if src.read != 2*blockstore.BlockSize {
			t.Fatalf("%s: read %d bytes, want %d", format, src.read, 2*blockstore.BlockSize)
		}
	}
	// Random reads through the read-ahead window give the map's bytes.
	vs := newViewSource(ctx, v, nil)
	defer vs.stop()
	for _, off := range []int64{offs[1] + 100, 0, offs[0] + 5, offs[1] + 100, offs[0] - 10} {
		got := make([]byte, 64)
		want := make([]byte, 64)
		if _, err := vs.ReadAt(got, off); err != nil {
			t.Fatal(err)
		}
		if _, err := v.ReadAt(want, off); err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("read at %d differs", off)
		}
	}
}
