package diskimage

import (
	"bytes"
	"context"
	"encoding/binary"
	"testing"
)

// FuzzParseQcow2Header feeds headers to the qcow2 header parser: it never
// panics, and a header it accepts is written back by marshal (as the
// exporter writes its own) into one that parses to the same layout.
// Seeds: testdata/fuzz/FuzzParseQcow2Header and the f.Add below; they run
// in every go test.
func FuzzParseQcow2Header(f *testing.F) {
	var q bytes.Buffer
	src := make([]byte, 64<<10)
	for i := range src {
		src[i] = byte(i * 7)
	}
	if _, err := WriteQcow2(context.Background(), &q, memSourceFuzz(src), Qcow2Options{ClusterSize: 512}); err != nil {
		f.Fatal(err)
	}
	f.Add(q.Bytes()[:512])
	v2 := bytes.Clone(q.Bytes()[:512])
	binary.BigEndian.PutUint32(v2[4:], 2)
	f.Add(v2)
	f.Add(q.Bytes()[:100])
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseQcow2Header(b)
		if err != nil {
			return
		}
		out := make([]byte, qcow2HeaderLenOut)
		h.marshal(out)
		again, err := parseQcow2Header(out)
		if err != nil {
			t.Fatalf("accepted header, written back, is refused: %v", err)
		}
		if again.clusterBits != h.clusterBits || again.size != h.size || again.l1Size != h.l1Size || again.l1Offset != h.l1Offset ||
			again.refcountOffset != h.refcountOffset || again.refcountClusters != h.refcountClusters || again.refcountOrder != h.refcountOrder {
			t.Fatalf("round trip changed the layout: %+v -> %+v", h, again)
		}
	})
}

// memSourceFuzz is a Source over a byte slice with no zero extents.
type memSourceFuzz []byte

func (m memSourceFuzz) Size() int64 { return int64(len(m)) }
func (m memSourceFuzz) ReadAt(p []byte, off int64) (int, error) {
	return copy(p, m[off:]), nil
}
func (m memSourceFuzz) Extents(fn func(off, length int64, zero bool) error) error {
	return fn(0, int64(len(m)), false)
}
