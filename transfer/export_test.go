package transfer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/diskimage"
	"github.com/omiproject/omi/transfer"
)

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestObjectName(t *testing.T) {
	re := regexp.MustCompile(`^snap-12345678-[0-9a-f]{8}\.(qcow2|raw)\.gz$`)
	a := transfer.ObjectName("snap-12345678", diskimage.FormatQcow2)
	b := transfer.ObjectName("snap-12345678", diskimage.FormatRaw)
	if !re.MatchString(a) || !re.MatchString(b) {
		t.Fatalf("names %q %q", a, b)
	}
	if a[:22] == transfer.ObjectName("snap-12345678", diskimage.FormatQcow2)[:22] {
		t.Fatalf("two names share their random part: %q", a)
	}
}

// exportTo exports map id into a file and returns its path and result.
func exportTo(t *testing.T, e *env, id string, format diskimage.Format) (string, transfer.Result) {
	t.Helper()
	path := filepath.Join(t.TempDir(), transfer.ObjectName(id, format))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var calls int
	var last int64
	res, err := transfer.ExportSnapshot(context.Background(), e.m, id, format, f, func(done, total int64) {
		calls++
		if done < last || done > total {
			t.Errorf("progress %d/%d after %d", done, total, last)
		}
		last = done
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("export %s: %v", format, err)
	}
	if calls < 2 || last != res.Size {
		t.Errorf("progress called %d times, last %d of %d", calls, last, res.Size)
	}
	obj := readFile(t, path)
	if got := sha(obj); got != res.ObjectSHA256 || int64(len(obj)) != res.ObjectSize {
		t.Errorf("object digest/size %s/%d, result says %s/%d", got, len(obj), res.ObjectSHA256, res.ObjectSize)
	}
	return path, res
}

// TestExportQemu exports a volume to qcow2.gz and raw.gz, checks both with
// gzip and qemu-img against the source, and imports them back byte-exact.
func TestExportQemu(t *testing.T) {
	needTool(t, "qemu-img", "gzip")
	e := newEnv(t)
	disk := testDisk()
	e.put(t, "snap-00000001", disk)
	dir := t.TempDir()
	src := filepath.Join(dir, "source.raw")
	writeFile(t, src, disk)

	for _, format := range []diskimage.Format{diskimage.FormatQcow2, diskimage.FormatRaw} {
		t.Run(string(format), func(t *testing.T) {
			gz, res := exportTo(t, e, "snap-00000001", format)
			if res.Size != int64(len(disk)) {
				t.Fatalf("Size %d, want %d", res.Size, len(disk))
			}
			img := filepath.Join(dir, "out."+string(format))
			shell(t, "gzip -t '"+gz+"' && gzip -dc '"+gz+"' > '"+img+"'")
			if got := sha(readFile(t, img)); got != res.DiskSHA256 {
				t.Fatalf("gunzipped image SHA-256 %s, result says %s", got, res.DiskSHA256)
			}
			if format == diskimage.FormatQcow2 {
				run(t, "qemu-img", "check", "-f", "qcow2", img)
			}
			run(t, "qemu-img", "compare", "-f", string(format), "-F", "raw", img, src)

			// Back in, from the gzip object, byte-exact.
			f, err := os.Open(gz)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			id := "snap-1mp0rt" + string(format)
			got, err := transfer.ImportDisk(context.Background(), f, e.m, id, transfer.ImportOptions{
				DeclaredSize: int64(len(disk)), ExpectedSHA256: res.DiskSHA256, ExpectedObjectSHA256: res.ObjectSHA256,
			})
			if err != nil {
				t.Fatalf("import: %v", err)
			}
			if got.Format != format || !got.Gzip || got.Size != int64(len(disk)) || got.DiskSHA256 != res.DiskSHA256 || got.ObjectSize != res.ObjectSize {
				t.Errorf("import result %+v, export %+v", got, res)
			}
			if !bytes.Equal(e.read(t, id), disk) {
				t.Fatal("imported disk differs from the source")
			}

			// Through a manifest: what the export wrote is what the
			// import checks.
			ms := res.ManifestSnapshot("/dev/sda1", filepath.Base(gz), "https://oos.example/b/"+filepath.Base(gz), "gp2", nil, true)
			data, err := (&transfer.Manifest{Image: transfer.ManifestImage{Snapshots: []transfer.ManifestSnapshot{ms}}}).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			m, err := transfer.ParseManifest(data)
			if err != nil {
				t.Fatal(err)
			}
			f.Seek(0, 0)
			if _, err := transfer.ImportDisk(context.Background(), f, e.m, id+"-m", m.Root().ImportOptions()); err != nil {
				t.Fatalf("import by manifest: %v", err)
			}
		})
	}
}

func TestExportMissingSnapshot(t *testing.T) {
	e := newEnv(t)
	var b bytes.Buffer
	if _, err := transfer.ExportSnapshot(context.Background(), e.m, "snap-404", diskimage.FormatQcow2, &b, nil); err == nil {
		t.Fatal("export of a missing snapshot succeeded")
	}
	e.put(t, "snap-1", make([]byte, 1<<20))
	if _, err := transfer.ExportSnapshot(context.Background(), e.m, "snap-1", "vmdk", &b, nil); err == nil {
		t.Fatal("export to vmdk succeeded")
	}
}

// countingStore counts block reads.
type countingStore struct {
	blockstore.Store
	gets atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, h blockstore.Hash, dst []byte) ([]byte, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, h, dst)
}

// TestExportSparseSkipsHoles exports a 16 GiB snapshot holding three
// blocks: only those are read, and the qcow2 is small and valid.
func TestExportSparseSkipsHoles(t *testing.T) {
	needTool(t, "qemu-img", "gzip")
	e := newEnv(t)
	cs := &countingStore{Store: e.blocks}
	maps, err := blockmap.NewDirStore(filepath.Join(t.TempDir(), "maps"))
	if err != nil {
		t.Fatal(err)
	}
	m := blockmap.NewManager(cs, maps, blockmap.WithCacheBlocks(1))
	ctx := context.Background()
	const size = 16 << 30
	if err := m.Create(ctx, "snap-sparse", size); err != nil {
		t.Fatal(err)
	}
	d, err := m.Open(ctx, "snap-sparse")
	if err != nil {
		t.Fatal(err)
	}
	data := realistic(3*blockstore.BlockSize, 9)
	for i, off := range []int64{0, 5 << 30, size - blockstore.BlockSize} {
		blk := data[i*blockstore.BlockSize : (i+1)*blockstore.BlockSize]
		blk[0] = 1 // not a hole
		if err := d.WriteAt(ctx, blk, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	cs.gets.Store(0)
	path := filepath.Join(t.TempDir(), "sparse.qcow2.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := transfer.ExportSnapshot(ctx, m, "snap-sparse", diskimage.FormatQcow2, f, nil)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if n := cs.gets.Load(); n > 3 {
		t.Fatalf("%d block reads for 3 allocated blocks", n)
	}
	if res.ObjectSize > 4<<20 {
		t.Errorf("object of %d bytes for 1.5 MiB of data", res.ObjectSize)
	}
	img := filepath.Join(t.TempDir(), "sparse.qcow2")
	shell(t, "gzip -dc '"+path+"' > '"+img+"'")
	run(t, "qemu-img", "check", "-f", "qcow2", img)
	info := run(t, "qemu-img", "info", "--output=json", "-f", "qcow2", img)
	if !strings.Contains(info, `"virtual-size": 17179869184`) {
		t.Fatalf("qemu-img info: %s", info)
	}
	// Import it back: still three blocks, same bytes where written.
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if _, err := transfer.ImportDisk(ctx, in, m, "snap-back", transfer.ImportOptions{DeclaredSize: size, ExpectedSHA256: res.DiskSHA256}); err != nil {
		t.Fatal(err)
	}
	v, err := m.View(ctx, "snap-back")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if n := v.Map().Allocated(); n != 3 {
		t.Fatalf("imported map has %d blocks, want 3", n)
	}
}

// cancelWriter cancels its context after n bytes, like DeleteExportTask
// during an upload.
type cancelWriter struct {
	n      int
	cancel func()
}

func (c *cancelWriter) Write(p []byte) (int, error) {
	if c.n -= len(p); c.n <= 0 {
		c.cancel()
	}
	return len(p), nil
}

func TestExportCancel(t *testing.T) {
	e := newEnv(t)
	e.put(t, "snap-1", realistic(16<<20, 5))
	for _, format := range []diskimage.Format{diskimage.FormatQcow2, diskimage.FormatRaw} {
		ctx, cancel := context.WithCancel(context.Background())
		_, err := transfer.ExportSnapshot(ctx, e.m, "snap-1", format, &cancelWriter{n: 1 << 20, cancel: cancel}, nil)
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("%s: export after cancel: %v", format, err)
		}
	}
	// The snapshot is intact and can be deleted (the view was released).
	if err := e.m.Delete(context.Background(), "snap-1"); err != nil {
		t.Fatal(err)
	}
}
