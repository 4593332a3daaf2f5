package diskread

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"io"
	"testing"

	"github.com/omiproject/omi/diskimage"
)

// FuzzGzipReader compares the parallel gzip reader with the standard
// library's on any input: it must never panic or hang, and whenever the
// standard multistream reader decodes the input without error, ours must
// produce the same bytes. Seeds: testdata/fuzz/FuzzGzipReader and the f.Add
// below (our own parallel members, a foreign member, both mixed, a
// truncated one); they run in every go test.
func FuzzGzipReader(f *testing.F) {
	disk := content(96<<10, 7)
	ours := exportBytes(f, disk[:40<<10], diskimage.FormatRaw, true)
	f.Add(ours)
	var std bytes.Buffer
	zw := gzip.NewWriter(&std)
	zw.Write(disk[:5000])
	zw.Close()
	f.Add(std.Bytes())
	f.Add(append(bytes.Clone(ours), std.Bytes()...))
	f.Add(ours[:len(ours)/2])
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, data []byte) {
		want, stdErr := io.ReadAll(stdGunzip(data))
		z := newGzipReader(context.Background(), bufio.NewReader(bytes.NewReader(data)), 2, nil)
		got, err := io.ReadAll(z)
		z.Close()
		if stdErr == nil && err != nil {
			t.Fatalf("the standard reader decodes %d bytes, ours fails: %v", len(want), err)
		}
		if stdErr == nil && !bytes.Equal(got, want) {
			t.Fatalf("ours decodes %d bytes, the standard reader %d, and they differ", len(got), len(want))
		}
	})
}

// stdGunzip is the standard library's multistream reader over data, or a
// reader failing at once when the header is bad.
func stdGunzip(data []byte) io.Reader {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return errReader{err}
	}
	return zr
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// FuzzQcow2Header feeds qcow2 headers to the import's parser: it never
// panics, and a header it accepts describes a table layout the decoder can
// follow without overflow (cluster size in range, L1 table aligned, large
// enough for the virtual size and bounded).
func FuzzQcow2Header(f *testing.F) {
	var q bytes.Buffer
	if _, err := diskimage.WriteQcow2(context.Background(), &q, memSource(content(64<<10, 2)), diskimage.Qcow2Options{ClusterSize: 512}); err != nil {
		f.Fatal(err)
	}
	f.Add(q.Bytes()[:512])
	v2 := bytes.Clone(q.Bytes()[:512])
	binary.BigEndian.PutUint32(v2[4:], 2)
	f.Add(v2)
	f.Add(q.Bytes()[:80])
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHeader(b)
		if err != nil {
			return
		}
		if h.clusterBits < minBits || h.clusterBits > maxBits {
			t.Fatalf("accepted cluster_bits %d", h.clusterBits)
		}
		if h.size < 0 || h.size > maxHostOffset || h.l1Size < 0 || h.l1Size*8 > maxL1Bytes {
			t.Fatalf("accepted size %d with l1_size %d", h.size, h.l1Size)
		}
		if cov := h.cs() * h.l2Entries(); h.l1Size*cov < h.size {
			t.Fatalf("L1 of %d entries covers %d bytes, less than the virtual size %d", h.l1Size, h.l1Size*cov, h.size)
		}
		if h.l1Size > 0 && (h.l1Offset <= 0 || h.l1Offset%h.cs() != 0) {
			t.Fatalf("accepted l1_table_offset %#x", h.l1Offset)
		}
	})
}
