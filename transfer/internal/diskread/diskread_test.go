package diskread

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"compress/gzip"

	"github.com/omiproject/omi/diskimage"
)

// memSource is a diskimage.Source over a byte slice; 64 KiB all-zero
// ranges are reported as zero extents.
type memSource []byte

func (m memSource) Size() int64 { return int64(len(m)) }
func (m memSource) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m)) {
		return 0, io.EOF
	}
	n := copy(p, m[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
func (m memSource) Extents(fn func(off, length int64, zero bool) error) error {
	const step = 64 << 10
	for off := int64(0); off < int64(len(m)); off += step {
		end := min(off+step, int64(len(m)))
		if err := fn(off, end-off, isZero(m[off:end])); err != nil {
			return err
		}
	}
	return nil
}

func content(size int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, size)
	for off := 0; off < size; off += 32 << 10 {
		end := min(off+32<<10, size)
		switch rng.IntN(3) {
		case 0:
		case 1:
			for i := off; i < end; i++ {
				b[i] = byte('a' + i%26)
			}
		default:
			for i := off; i < end; i++ {
				b[i] = byte(rng.Uint32())
			}
		}
	}
	return b
}

// decodeAll decodes data into a buffer, checking the write contract.
func decodeAll(t testing.TB, data []byte, declared int64) ([]byte, Info, error) {
	var out []byte
	var info Info
	written := map[int64]bool{}
	_, err := Decode(context.Background(), bytes.NewReader(data), Options{DeclaredSize: declared, BufferLimit: 1 << 20}, Observer{},
		func(in Info) error {
			if in.Size > 64<<20 {
				return errors.New("too large for the test")
			}
			info, out = in, make([]byte, in.Size)
			return nil
		},
		func(off int64, p []byte) error {
			if off < 0 || off+int64(len(p)) > int64(len(out)) {
				t.Fatalf("write [%d,+%d) outside the %d-byte disk", off, len(p), len(out))
			}
			if written[off] {
				t.Fatalf("offset %d written twice", off)
			}
			written[off] = true
			copy(out[off:], p)
			return nil
		})
	return out, info, err
}

func exportBytes(t testing.TB, disk []byte, format diskimage.Format, gz bool) []byte {
	var b bytes.Buffer
	var err error
	switch {
	case gz:
		_, err = diskimage.Export(context.Background(), &b, memSource(disk), diskimage.ExportOptions{Format: format, Gzip: diskimage.GzipOptions{BlockSize: 64 << 10}})
	case format == diskimage.FormatQcow2:
		_, err = diskimage.WriteQcow2(context.Background(), &b, memSource(disk), diskimage.Qcow2Options{})
	default:
		_, err = diskimage.WriteRaw(context.Background(), &b, memSource(disk))
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodeOurExports(t *testing.T) {
	disk := content(3<<20+4096, 1)
	for _, c := range []struct {
		format diskimage.Format
		gz     bool
	}{{diskimage.FormatQcow2, false}, {diskimage.FormatQcow2, true}, {diskimage.FormatRaw, false}, {diskimage.FormatRaw, true}} {
		data := exportBytes(t, disk, c.format, c.gz)
		got, info, err := decodeAll(t, data, int64(len(disk)))
		if err != nil {
			t.Fatalf("%s gz=%v: %v", c.format, c.gz, err)
		}
		if info.Format != c.format || info.Gzip != c.gz || !bytes.Equal(got, disk) {
			t.Fatalf("%s gz=%v: info %+v, equal %v", c.format, c.gz, info, bytes.Equal(got, disk))
		}
	}
}

// TestGzipMixedMembers: our members followed by a foreign member decode
// as one stream; garbage after the last member is an error.
func TestGzipMixedMembers(t *testing.T) {
	disk := content(1<<20, 2)
	ours := exportBytes(t, disk[:512<<10], diskimage.FormatRaw, true)
	var foreign bytes.Buffer
	zw := newStdGzip(&foreign)
	zw.Write(disk[512<<10:])
	zw.Close()
	got, _, err := decodeAll(t, append(bytes.Clone(ours), foreign.Bytes()...), int64(len(disk)))
	if err != nil || !bytes.Equal(got, disk) {
		t.Fatalf("mixed members: %v", err)
	}
	_, _, err = decodeAll(t, append(bytes.Clone(ours), "this is not gzip data at all"...), int64(len(disk)))
	if !errors.Is(err, diskimage.ErrCorruptGzip) {
		t.Fatalf("trailing garbage: %v", err)
	}
}

// FuzzDecode feeds mutated images: the decoder must return an error or a
// disk, never panic, hang or write outside the disk.
func FuzzDecode(f *testing.F) {
	// Small inputs: the fuzzing engine slows to a crawl on large ones.
	disk := content(24<<10, 3)
	var q bytes.Buffer
	if _, err := diskimage.WriteQcow2(context.Background(), &q, memSource(disk), diskimage.Qcow2Options{ClusterSize: 512}); err != nil {
		f.Fatal(err)
	}
	f.Add(q.Bytes())
	var qz bytes.Buffer
	zw := newStdGzip(&qz)
	zw.Write(q.Bytes())
	zw.Close()
	f.Add(qz.Bytes())
	f.Add(exportBytes(f, disk[:8<<10], diskimage.FormatRaw, true))
	if _, err := exec.LookPath("qemu-img"); err == nil {
		dir := f.TempDir()
		src := filepath.Join(dir, "src.raw")
		os.WriteFile(src, disk, 0o600)
		for _, args := range [][]string{{"-c", "-o", "cluster_size=512"}, {"-o", "compat=0.10,cluster_size=512"}, {"-c", "-o", "cluster_size=512,compression_type=zstd"}} {
			out := filepath.Join(dir, "out.qcow2")
			cmd := append(append([]string{"convert", "-f", "raw", "-O", "qcow2"}, args...), src, out)
			if err := exec.Command("qemu-img", cmd...).Run(); err == nil {
				b, _ := os.ReadFile(out)
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				os.WriteFile(filepath.Join(os.TempDir(), "diskread-hang.txt"), append(buf[:n:n], data...), 0o600)
				os.Exit(3)
			}
		}()
		decodeAll(t, data, 1<<20)
		// The random-access path too, for qcow2.
		DecodeAt(context.Background(), bytes.NewReader(data), int64(len(data)), Options{DeclaredSize: 1 << 20}, Observer{},
			func(in Info) error {
				if in.Size > 1<<20 {
					t.Fatalf("size %d above the declared size", in.Size)
				}
				return nil
			},
			func(off int64, p []byte) error {
				if off < 0 || off+int64(len(p)) > 1<<20 {
					t.Fatalf("write [%d,+%d) outside the disk", off, len(p))
				}
				return nil
			})
	})
}

func newStdGzip(w io.Writer) *gzip.Writer { return gzip.NewWriter(w) }

// TestTruncatedForeignGzipRaw: a raw image in a foreign gzip stream cut
// anywhere is refused, never imported shorter.
func TestTruncatedForeignGzipRaw(t *testing.T) {
	disk := content(3<<20, 5)
	var gz bytes.Buffer
	zw := newStdGzip(&gz)
	zw.Write(disk)
	zw.Close()
	for _, cut := range []int{gz.Len() - 1, gz.Len() - 8, gz.Len() / 2, 20} {
		_, _, err := decodeAll(t, gz.Bytes()[:cut], int64(len(disk)))
		if !errors.Is(err, diskimage.ErrTruncated) && !errors.Is(err, diskimage.ErrCorruptGzip) {
			t.Fatalf("cut at %d of %d: %v", cut, gz.Len(), err)
		}
	}
	ours := exportBytes(t, disk, diskimage.FormatRaw, true)
	for _, cut := range []int{len(ours) - 1, len(ours) / 2} {
		_, _, err := decodeAll(t, ours[:cut], int64(len(disk)))
		if !errors.Is(err, diskimage.ErrTruncated) && !errors.Is(err, diskimage.ErrCorruptGzip) {
			t.Fatalf("ours cut at %d of %d: %v", cut, len(ours), err)
		}
	}
}

// TestImageObserverSeesEveryByte: for gzip input the image observer is fed
// from the gzip reader's hasher goroutine; when Decode returns it has seen
// exactly the gunzipped image, for our parallel members, a foreign stream,
// and ours followed by a foreign member.
func TestImageObserverSeesEveryByte(t *testing.T) {
	disk := content(2<<20, 3)
	image := exportBytes(t, disk, diskimage.FormatRaw, false)
	var foreign bytes.Buffer
	zw := newStdGzip(&foreign)
	zw.Write(image)
	zw.Close()
	ours := exportBytes(t, disk, diskimage.FormatRaw, true)
	var tail bytes.Buffer
	zw = newStdGzip(&tail)
	zw.Write(disk[:100000])
	zw.Close()
	for name, c := range map[string]struct {
		data, want []byte
	}{
		"ours":         {ours, image},
		"foreign":      {foreign.Bytes(), image},
		"ours+foreign": {append(bytes.Clone(ours), tail.Bytes()...), append(bytes.Clone(image), disk[:100000]...)},
	} {
		var seen bytes.Buffer
		st, err := Decode(context.Background(), bytes.NewReader(c.data), Options{DeclaredSize: int64(len(c.want))}, Observer{Image: &seen},
			func(Info) error { return nil }, func(int64, []byte) error { return nil })
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(seen.Bytes(), c.want) || st.ImageBytes != int64(len(c.want)) {
			t.Fatalf("%s: observer saw %d bytes (image %d, stats %d), equal %v", name, seen.Len(), len(c.want), st.ImageBytes, bytes.Equal(seen.Bytes(), c.want))
		}
	}
}
