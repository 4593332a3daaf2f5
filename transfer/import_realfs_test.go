package transfer_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/omiproject/omi/diskimage"
	"github.com/omiproject/omi/transfer"
)

// realFSImage builds a small ext4 disk by mkfs.ext4 -d from a tree of real
// files (Go tool binaries and text), the kind of content the parallel
// inflater meets in practice, unlike the synthetic patterns of testDisk.
func realFSImage(t *testing.T, dir string) string {
	t.Helper()
	stage := filepath.Join(dir, "stage")
	budget := int64(12 << 20)
	for _, src := range []string{"/usr/local/go/pkg/tool", "/usr/share/doc", "/usr/local/go/src/net"} {
		filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
			if err != nil || budget <= 0 || !info.Mode().IsRegular() || info.Size() > 4<<20 {
				return nil
			}
			dst := filepath.Join(stage, path)
			if os.MkdirAll(filepath.Dir(dst), 0o755) != nil || copyFile(path, dst) != nil {
				return nil
			}
			budget -= info.Size()
			return nil
		})
	}
	if budget > 6<<20 {
		t.Skip("not enough files to build a real filesystem from")
	}
	raw := filepath.Join(dir, "disk.raw")
	run(t, "mkfs.ext4", "-q", "-F", "-d", stage, raw, "48M")
	return raw
}

// TestImportRealFilesystem imports a real ext4 disk exported by omi
// (parallel-gzip members, inflated in parallel) and the same disk as a
// foreign qcow2.gz (qemu-img convert then gzip: one member, inflated
// sequentially); both give disks that qemu-img compare finds identical to
// the source.
func TestImportRealFilesystem(t *testing.T) {
	needTool(t, "mkfs.ext4", "qemu-img", "gzip")
	ctx := context.Background()
	e := newEnv(t)
	dir := t.TempDir()
	raw := realFSImage(t, dir)
	disk := readFile(t, raw)
	size := int64(len(disk))
	e.put(t, "snap-src", disk)

	ours := filepath.Join(dir, "omi.qcow2.gz")
	f, err := os.Create(ours)
	if err != nil {
		t.Fatal(err)
	}
	exp, err := transfer.ExportSnapshot(ctx, e.m, "snap-src", diskimage.FormatQcow2, f, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	foreign := filepath.Join(dir, "foreign.qcow2")
	run(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, foreign)
	shell(t, "gzip -1 -c '"+foreign+"' > '"+foreign+".gz'")

	for _, c := range []struct {
		name, path string
		opts       transfer.ImportOptions
	}{
		// The manifest's digest, as an API import of an export gets it.
		{"omi export", ours, transfer.ImportOptions{DeclaredSize: size, ExpectedSHA256: exp.DiskSHA256, ExpectedObjectSHA256: exp.ObjectSHA256}},
		{"qemu-img + gzip", foreign + ".gz", transfer.ImportOptions{DeclaredSize: size, Digests: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in, err := os.Open(c.path)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			id := "snap-in-" + filepath.Base(c.path)[:3]
			res, err := transfer.ImportDisk(ctx, in, e.m, id, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Gzip || res.Format != diskimage.FormatQcow2 || res.Size != size {
				t.Errorf("result %+v", res)
			}
			if c.opts.Digests && res.DiskSHA256 != sha(readFile(t, foreign)) {
				t.Errorf("disk digest %s, want that of the qcow2 file", res.DiskSHA256)
			}
			back := filepath.Join(dir, id+".raw")
			writeFile(t, back, e.read(t, id))
			if out, err := commandOutput("qemu-img", "compare", "-f", "raw", "-F", "raw", raw, back); err != nil {
				t.Fatalf("qemu-img compare: %v\n%s", err, out)
			}
		})
	}
}

// TestImportDigestsOnlyWhenWanted: without Digests or an expected value the
// import does not hash the image and the object, and says so with empty
// digests; asking gives them.
func TestImportDigestsOnlyWhenWanted(t *testing.T) {
	e := newEnv(t)
	disk := testDisk()
	e.put(t, "snap-src", disk)
	var obj bytes.Buffer
	exp, err := transfer.ExportSnapshot(context.Background(), e.m, "snap-src", diskimage.FormatQcow2, &obj, nil)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(disk))
	for _, c := range []struct {
		opts             transfer.ImportOptions
		wantDisk, wantOb string
	}{
		{transfer.ImportOptions{DeclaredSize: size}, "", ""},
		{transfer.ImportOptions{DeclaredSize: size, ExpectedSHA256: exp.DiskSHA256}, exp.DiskSHA256, ""},
		{transfer.ImportOptions{DeclaredSize: size, Digests: true}, exp.DiskSHA256, exp.ObjectSHA256},
	} {
		res, err := transfer.ImportDisk(context.Background(), bytes.NewReader(obj.Bytes()), e.m, "snap-d", c.opts)
		if err != nil {
			t.Fatal(err)
		}
		if res.DiskSHA256 != c.wantDisk || res.ObjectSHA256 != c.wantOb {
			t.Errorf("%+v: digests %q %q, want %q %q", c.opts, res.DiskSHA256, res.ObjectSHA256, c.wantDisk, c.wantOb)
		}
		if !bytes.Equal(e.read(t, "snap-d"), disk) {
			t.Fatal("imported disk differs")
		}
		if err := e.m.Delete(context.Background(), "snap-d"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestImportCorruptMembers damages omi's parallel gzip in the ways a member
// can be wrong: its deflate data, its CRC, its size fields. Each import
// fails with ErrCorruptGzip (or ErrTruncated) and leaves no map and no
// block.
func TestImportCorruptMembers(t *testing.T) {
	e := newEnv(t)
	disk := testDisk()
	e.put(t, "snap-src", disk)
	var b bytes.Buffer
	if _, err := transfer.ExportSnapshot(context.Background(), e.m, "snap-src", diskimage.FormatQcow2, &b, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Delete(context.Background(), "snap-src"); err != nil {
		t.Fatal(err)
	}
	obj := b.Bytes()
	// The members: "OM" field at 12, total size at 16, data size at 20.
	var starts []int
	for off := 0; off+24 <= len(obj); {
		if obj[off] != 0x1f || obj[off+12] != 'O' {
			t.Fatalf("no member at %d", off)
		}
		starts = append(starts, off)
		off += int(binary.LittleEndian.Uint32(obj[off+16:]))
	}
	if len(starts) < 4 {
		t.Fatalf("only %d members", len(starts))
	}
	m := starts[len(starts)/2] // a member in the middle
	mEnd := starts[len(starts)/2+1]
	damage := func(f func(p []byte)) []byte {
		p := bytes.Clone(obj)
		f(p)
		return p
	}
	size := int64(len(disk))
	for _, c := range []struct {
		name string
		data []byte
		want error
	}{
		{"deflate data", damage(func(p []byte) { p[m+24+(mEnd-m)/2] ^= 0x5a }), diskimage.ErrCorruptGzip},
		{"CRC", damage(func(p []byte) { p[mEnd-8] ^= 1 }), diskimage.ErrCorruptGzip},
		{"data size field", damage(func(p []byte) { p[m+20]++ }), diskimage.ErrCorruptGzip},
		{"ISIZE", damage(func(p []byte) { p[mEnd-4]++ }), diskimage.ErrCorruptGzip},
		{"total size field too large", damage(func(p []byte) { binary.LittleEndian.PutUint32(p[m+16:], 1<<30) }), diskimage.ErrCorruptGzip},
		{"member cut short", append(bytes.Clone(obj[:mEnd-100]), obj[mEnd:]...), nil},
		{"last member cut", obj[:len(obj)-3], diskimage.ErrTruncated},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := transfer.ImportDisk(context.Background(), bytes.NewReader(c.data), e.m, "snap-bad", transfer.ImportOptions{DeclaredSize: size})
			var ie *transfer.ImportError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v (%T), want an *ImportError", err, err)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("error %v, want %v", err, c.want)
			}
			if !errors.Is(err, diskimage.ErrCorruptGzip) && !errors.Is(err, diskimage.ErrTruncated) && !errors.Is(err, diskimage.ErrCorrupt) {
				t.Fatalf("error %v is not a gzip or image corruption", err)
			}
			if ids := e.mapIDs(t); len(ids) != 0 {
				t.Fatalf("maps left: %v", ids)
			}
			if n := e.collectAndCount(t); n != 0 {
				t.Fatalf("%d blocks left after collection", n)
			}
		})
	}
}
