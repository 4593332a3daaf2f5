package transfer_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/omiproject/omi/diskimage"
	"github.com/omiproject/omi/transfer"
)

// qemuImages builds, from one raw source, the images a user might upload:
// qemu-img convert outputs (plain, compressed clusters, v2), each also
// gzip'd by gzip(1), and the raw file itself.
func qemuImages(t *testing.T, src string) map[string]string {
	t.Helper()
	dir := filepath.Dir(src)
	imgs := map[string]string{"raw": src}
	for name, args := range map[string][]string{
		"qcow2":               {"-O", "qcow2"},
		"qcow2-compressed":    {"-O", "qcow2", "-c"},
		"qcow2-v2":            {"-O", "qcow2", "-o", "compat=0.10"},
		"qcow2-v2-compress":   {"-O", "qcow2", "-c", "-o", "compat=0.10"},
		"qcow2-cluster-4k":    {"-O", "qcow2", "-o", "cluster_size=4096"},
		"qcow2-cluster-2m":    {"-O", "qcow2", "-o", "cluster_size=2097152"},
		"qcow2-prealloc-meta": {"-O", "qcow2", "-o", "preallocation=metadata"},
	} {
		out := filepath.Join(dir, name)
		run(t, "qemu-img", append(append([]string{"convert", "-f", "raw"}, args...), src, out)...)
		imgs[name] = out
	}
	for name, path := range imgs {
		gz := path + ".gz"
		shell(t, "gzip -1 -c '"+path+"' > '"+gz+"'")
		imgs[name+".gz"] = gz
	}
	return imgs
}

func TestImportQemuImages(t *testing.T) {
	needTool(t, "qemu-img", "gzip")
	e := newEnv(t)
	disk := testDisk()
	src := filepath.Join(t.TempDir(), "source.raw")
	writeFile(t, src, disk)
	imgs := qemuImages(t, src)
	for name, path := range imgs {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			id := "snap-" + name
			res, err := transfer.ImportDisk(context.Background(), f, e.m, id, transfer.ImportOptions{DeclaredSize: int64(len(disk)), Digests: true})
			if err != nil {
				t.Fatalf("import: %v", err)
			}
			if res.Size != int64(len(disk)) {
				t.Errorf("Size %d, want %d", res.Size, len(disk))
			}
			if !bytes.Equal(e.read(t, id), disk) {
				t.Fatal("imported disk differs from the source")
			}
			if !res.Gzip {
				// The disk digest is that of the file as given.
				if got := sha(readFile(t, path)); got != res.DiskSHA256 || got != res.ObjectSHA256 {
					t.Errorf("digests %s %s, file %s", res.DiskSHA256, res.ObjectSHA256, got)
				}
			}

			if res.Gzip {
				return // ImportReaderAt reads gzip forward, as above
			}
			// The random-access path gives the same disk.
			st, _ := f.Stat()
			id2 := id + "-at"
			if _, err := transfer.ImportReaderAt(context.Background(), f, st.Size(), e.m, id2, transfer.ImportOptions{
				DeclaredSize: int64(len(disk)), ExpectedSHA256: res.DiskSHA256,
			}); err != nil {
				t.Fatalf("ImportReaderAt: %v", err)
			}
			if !bytes.Equal(e.read(t, id2), disk) {
				t.Fatal("disk imported by ReaderAt differs from the source")
			}
		})
	}
}

// TestImportZstdClusters covers qcow2 v3 with zstd-compressed clusters.
func TestImportZstdClusters(t *testing.T) {
	needTool(t, "qemu-img")
	e := newEnv(t)
	disk := testDisk()
	dir := t.TempDir()
	src := filepath.Join(dir, "source.raw")
	writeFile(t, src, disk)
	img := filepath.Join(dir, "zstd.qcow2")
	out, err := execOutput("qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-c", "-o", "compression_type=zstd", src, img)
	if err != nil {
		t.Skipf("qemu-img without zstd: %s", out)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := transfer.ImportDisk(context.Background(), f, e.m, "snap-zstd", transfer.ImportOptions{DeclaredSize: int64(len(disk))}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.read(t, "snap-zstd"), disk) {
		t.Fatal("imported disk differs from the source")
	}
}

// TestImportOutOfOrder imports a qcow2 whose L1 table was moved to the end
// by a resize: the stream reader must keep what it skips (or refuse with
// ErrBufferLimit when the limit is too small), the ReaderAt path follows
// the metadata.
func TestImportOutOfOrder(t *testing.T) {
	needTool(t, "qemu-img", "qemu-io")
	e := newEnv(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "grown.qcow2")
	// A 2 MiB-per-L2 layout (4 KiB clusters) makes the L1 table grow and
	// move to the end when the disk is resized.
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", img, "1M")
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x61 0 256k", "-c", "write -P 0x62 700k 64k", img)
	run(t, "qemu-img", "resize", "-q", "-f", "qcow2", img, "64M")
	run(t, "qemu-io", "-f", "qcow2", "-c", "write -P 0x63 40M 128k", img)
	raw := filepath.Join(dir, "grown.raw")
	run(t, "qemu-img", "convert", "-f", "qcow2", "-O", "raw", img, raw)
	want := readFile(t, raw)

	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := transfer.ImportDisk(context.Background(), f, e.m, "snap-stream", transfer.ImportOptions{DeclaredSize: 64 << 20}); err != nil {
		t.Fatalf("stream import: %v", err)
	}
	if !bytes.Equal(e.read(t, "snap-stream"), want) {
		t.Fatal("stream import differs")
	}
	f.Seek(0, io.SeekStart)
	_, err = transfer.ImportDisk(context.Background(), f, e.m, "snap-small", transfer.ImportOptions{DeclaredSize: 64 << 20, BufferLimit: 4096})
	if !errors.Is(err, diskimage.ErrBufferLimit) {
		t.Fatalf("stream import with a 4 KiB buffer: %v, want ErrBufferLimit", err)
	}
	st, _ := f.Stat()
	if _, err := transfer.ImportReaderAt(context.Background(), f, st.Size(), e.m, "snap-at", transfer.ImportOptions{DeclaredSize: 64 << 20, BufferLimit: 4096}); err != nil {
		t.Fatalf("ReaderAt import: %v", err)
	}
	if !bytes.Equal(e.read(t, "snap-at"), want) {
		t.Fatal("ReaderAt import differs")
	}
}

func execOutput(name string, args ...string) (string, error) {
	out, err := commandOutput(name, args...)
	return string(out), err
}

// TestImportRefusals feeds bad images; each must fail with a clear
// ImportError and leave neither a map nor a block behind.
func TestImportRefusals(t *testing.T) {
	needTool(t, "qemu-img", "gzip")
	e := newEnv(t)
	disk := testDisk()
	size := int64(len(disk))
	dir := t.TempDir()
	src := filepath.Join(dir, "source.raw")
	writeFile(t, src, disk)
	good := filepath.Join(dir, "good.qcow2")
	run(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", src, good)
	shell(t, "gzip -1 -c '"+good+"' > '"+good+".gz'")

	backing := filepath.Join(dir, "backing.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", good, "-F", "qcow2", backing)
	datafile := filepath.Join(dir, "datafile.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file="+filepath.Join(dir, "data.raw"), datafile, strconv.FormatInt(size, 10))

	gzBytes := readFile(t, good+".gz")
	truncGz := gzBytes[:len(gzBytes)*2/3]
	corruptGz := bytes.Clone(gzBytes)
	corruptGz[len(corruptGz)/2] ^= 0xff
	goodQ := readFile(t, good)
	badHeader := bytes.Clone(goodQ)
	badHeader[20] = 40 // cluster_bits
	badL1 := bytes.Clone(goodQ)
	copy(badL1[40:48], []byte{0, 0, 0, 0, 0, 0, 0x12, 0x34}) // unaligned L1 offset
	truncQ := goodQ[:len(goodQ)/2]

	ourGz, exp := func() ([]byte, transfer.Result) {
		e.put(t, "snap-src", disk)
		var b bytes.Buffer
		res, err := transfer.ExportSnapshot(context.Background(), e.m, "snap-src", diskimage.FormatQcow2, &b, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.m.Delete(context.Background(), "snap-src"); err != nil {
			t.Fatal(err)
		}
		return b.Bytes(), res
	}()
	truncOurs := ourGz[:len(ourGz)-100]

	for _, c := range []struct {
		name string
		data []byte
		opts transfer.ImportOptions
		want error
	}{
		{"backing file", readFile(t, backing), transfer.ImportOptions{DeclaredSize: size}, diskimage.ErrBackingFile},
		{"external data file", readFile(t, datafile), transfer.ImportOptions{DeclaredSize: size}, diskimage.ErrExternalDataFile},
		{"truncated gzip", truncGz, transfer.ImportOptions{DeclaredSize: size}, diskimage.ErrTruncated},
		{"truncated parallel gzip", truncOurs, transfer.ImportOptions{DeclaredSize: size}, diskimage.ErrTruncated},
		{"corrupt gzip", corruptGz, transfer.ImportOptions{DeclaredSize: size}, diskimage.ErrCorruptGzip},
		{"corrupt qcow2 header", badHeader, transfer.ImportOptions{DeclaredSize: size}, diskimage.ErrCorrupt},
		{"corrupt L1 offset", badL1, transfer.ImportOptions{DeclaredSize: size}, diskimage.ErrCorrupt},
		{"truncated qcow2", truncQ, transfer.ImportOptions{DeclaredSize: size}, diskimage.ErrTruncated},
		{"qcow2 larger than declared", goodQ, transfer.ImportOptions{DeclaredSize: size - 512}, diskimage.ErrTooLarge},
		{"raw longer than declared", disk, transfer.ImportOptions{DeclaredSize: size - 512}, diskimage.ErrTooLong},
		{"raw without declared size", disk, transfer.ImportOptions{}, nil},
		{"declared size over the limit", goodQ, transfer.ImportOptions{DeclaredSize: 1 << 40, MaxSize: 1 << 30}, nil},
		{"wrong disk digest", ourGz, transfer.ImportOptions{DeclaredSize: size, ExpectedSHA256: sha([]byte("x"))}, transfer.ErrDigestMismatch},
		{"wrong object digest", ourGz, transfer.ImportOptions{DeclaredSize: size, ExpectedSHA256: exp.DiskSHA256, ExpectedObjectSHA256: sha([]byte("x"))}, transfer.ErrDigestMismatch},
		{"empty", nil, transfer.ImportOptions{DeclaredSize: size}, diskimage.ErrTruncated},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := transfer.ImportDisk(context.Background(), bytes.NewReader(c.data), e.m, "snap-bad", c.opts)
			var ie *transfer.ImportError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v (%T), want an *ImportError", err, err)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			wantCode := transfer.CodeInvalidImport
			if errors.Is(err, diskimage.ErrTooLarge) || errors.Is(err, diskimage.ErrTooLong) || strings.Contains(c.name, "limit") {
				wantCode = transfer.CodeInvalidSnapshotSize
			}
			if ae := transfer.AsAPIError(err); ae.Code != wantCode || ae.Type != "InvalidParameterValue" {
				t.Errorf("API error %v, want code %s", ae, wantCode)
			}
			t.Logf("%v", err)
			if ids := e.mapIDs(t); len(ids) != 0 {
				t.Fatalf("maps left: %v", ids)
			}
			if n := e.collectAndCount(t); n != 0 {
				t.Fatalf("%d blocks left after collection", n)
			}
		})
	}
	// The good images import (so the refusals are not the reader's fault).
	for _, data := range [][]byte{goodQ, gzBytes, ourGz} {
		if _, err := transfer.ImportDisk(context.Background(), bytes.NewReader(data), e.m, "snap-ok", transfer.ImportOptions{DeclaredSize: size, ExpectedSHA256: sha(goodQ)}); err != nil && !errors.Is(err, transfer.ErrDigestMismatch) {
			t.Fatal(err)
		}
		e.m.Delete(context.Background(), "snap-ok")
	}
}

// TestImportExistingMap refuses to import over an existing map and leaves
// it untouched.
func TestImportExistingMap(t *testing.T) {
	e := newEnv(t)
	disk := testDisk()
	e.put(t, "snap-1", disk)
	_, err := transfer.ImportDisk(context.Background(), bytes.NewReader(disk), e.m, "snap-1", transfer.ImportOptions{DeclaredSize: int64(len(disk))})
	if err == nil {
		t.Fatal("import over an existing map succeeded")
	}
	if !bytes.Equal(e.read(t, "snap-1"), disk) {
		t.Fatal("existing map changed")
	}
}

// TestImportCancel cancels an import midway: no map stays.
func TestImportCancel(t *testing.T) {
	e := newEnv(t)
	disk := testDisk()
	ctx, cancel := context.WithCancel(context.Background())
	r := &cancelAfter{r: bytes.NewReader(disk), n: 3 << 20, cancel: cancel}
	_, err := transfer.ImportDisk(ctx, r, e.m, "snap-c", transfer.ImportOptions{DeclaredSize: int64(len(disk))})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if ids := e.mapIDs(t); len(ids) != 0 {
		t.Fatalf("maps left: %v", ids)
	}
	if n := e.collectAndCount(t); n != 0 {
		t.Fatalf("%d blocks left", n)
	}
}

// cancelAfter cancels a context once n bytes were read.
type cancelAfter struct {
	r      io.Reader
	n      int64
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n -= int64(n); c.n <= 0 {
		c.cancel()
	}
	return n, err
}

// TestImportProgress: progress moves, never goes back, and ends at 100%.
func TestImportProgress(t *testing.T) {
	e := newEnv(t)
	disk := testDisk()
	e.put(t, "snap-src", disk)
	var obj bytes.Buffer
	res, err := transfer.ExportSnapshot(context.Background(), e.m, "snap-src", diskimage.FormatRaw, &obj, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, objSize := range []int64{0, res.ObjectSize} {
		var calls []int64
		var total int64
		_, err := transfer.ImportDisk(context.Background(), bytes.NewReader(obj.Bytes()), e.m, "snap-p"+strconv.FormatInt(objSize, 10), transfer.ImportOptions{
			DeclaredSize: int64(len(disk)), ObjectSize: objSize,
			Progress: func(done, tot int64) { calls = append(calls, done); total = tot },
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(calls) < 3 || calls[len(calls)-1] != total {
			t.Fatalf("progress calls %v of %d", calls, total)
		}
		for i := 1; i < len(calls); i++ {
			if calls[i] < calls[i-1] {
				t.Fatalf("progress went back: %v", calls)
			}
		}
	}
}

// TestImportReaderAtRefusal: the random-access path cleans up too.
func TestImportReaderAtRefusal(t *testing.T) {
	needTool(t, "qemu-img")
	e := newEnv(t)
	disk := testDisk()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	writeFile(t, src, disk)
	img := filepath.Join(dir, "d.qcow2")
	run(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", src, img)
	data := readFile(t, img)
	for name, c := range map[string]struct {
		data []byte
		opts transfer.ImportOptions
		want error
	}{
		"truncated":    {data[:len(data)-70000], transfer.ImportOptions{DeclaredSize: int64(len(disk))}, diskimage.ErrTruncated},
		"wrong digest": {data, transfer.ImportOptions{DeclaredSize: int64(len(disk)), ExpectedSHA256: sha(nil)}, transfer.ErrDigestMismatch},
		"too large":    {data, transfer.ImportOptions{DeclaredSize: 4096}, diskimage.ErrTooLarge},
	} {
		_, err := transfer.ImportReaderAt(context.Background(), bytes.NewReader(c.data), int64(len(c.data)), e.m, "snap-x", c.opts)
		if !errors.Is(err, c.want) {
			t.Fatalf("%s: %v, want %v", name, err, c.want)
		}
		if ids := e.mapIDs(t); len(ids) != 0 {
			t.Fatalf("%s: maps left: %v", name, ids)
		}
	}
	if n := e.collectAndCount(t); n != 0 {
		t.Fatalf("%d blocks left", n)
	}
}
