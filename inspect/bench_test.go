package inspect_test

import (
	"context"
	"os"
	"testing"

	"github.com/omiproject/omi/catalog"
	"github.com/omiproject/omi/inspect"
)

const tenGiB = 10 << 30

// bigDirtyDisk builds a 10 GiB sparse disk (ext4 over the whole partition)
// holding the dirty files.
func bigDirtyDisk(tb testing.TB) *os.File {
	tb.Helper()
	files, _, _, _ := dirtyFiles(tb)
	p := buildDisk(tb, catalog.DiskSpec{SizeBytes: tenGiB, OSRelease: "ID=debian\nVERSION_ID=\"12\"\n", Files: files})
	f, err := os.Open(p)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return f
}

// Inspecting a 10 GiB disk reads only what it needs: partition table,
// superblock, group descriptors, a few inodes, directories and files.
func TestInspect_ReadsFewBlocks(t *testing.T) {
	f := bigDirtyDisk(t)
	c := &countingReader{r: f}
	rep, err := inspect.Inspect(context.Background(), c, tenGiB, inspect.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Inspected || len(rep.Findings) != 6 {
		t.Fatalf("report %+v", rep)
	}
	t.Logf("read %d bytes in %d calls", c.bytes.Load(), c.calls.Load())
	if c.bytes.Load() > 4<<20 {
		t.Errorf("read %d bytes of a 10 GiB disk, want at most 4 MiB", c.bytes.Load())
	}
}

func BenchmarkInspect10GiB(b *testing.B) {
	f := bigDirtyDisk(b)
	var read, calls int64
	for b.Loop() {
		c := &countingReader{r: f}
		if _, err := inspect.Inspect(context.Background(), c, tenGiB, inspect.Options{}); err != nil {
			b.Fatal(err)
		}
		read, calls = c.bytes.Load(), c.calls.Load()
	}
	b.ReportMetric(float64(read), "bytes-read/op")
	b.ReportMetric(float64(calls), "reads/op")
}

func BenchmarkInspectOfficial(b *testing.B) {
	p, _ := catalog.LookupPreset("Debian-12")
	f, err := os.Open(buildDisk(b, p.Spec))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for b.Loop() {
		if _, err := inspect.Inspect(context.Background(), f, catalog.DefaultSize, inspect.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
