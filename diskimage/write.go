package diskimage

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
)

// copyChunk is the unit in which writers read the source and write output.
const copyChunk = 1 << 20

// zeroChunk is shared read-only zeros for writing zero ranges.
var zeroChunk = make([]byte, copyChunk)

// WriteRaw writes src as a raw image to w in one forward pass. Zero extents
// are written as zeros without reading the source. It returns the number of
// bytes written.
func WriteRaw(ctx context.Context, w io.Writer, src Source) (int64, error) {
	exts, err := collectExtents(src)
	if err != nil {
		return 0, err
	}
	cw := &countWriter{w: w}
	buf := make([]byte, copyChunk)
	for _, e := range exts {
		if e.zero {
			if err := writeZeros(ctx, cw, e.length); err != nil {
				return cw.n, err
			}
			continue
		}
		if err := copySource(ctx, cw, src, buf, e.off, e.length, e.length); err != nil {
			return cw.n, err
		}
	}
	return cw.n, nil
}

// writeZeros writes n zero bytes.
func writeZeros(ctx context.Context, w io.Writer, n int64) error {
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(n, int64(len(zeroChunk)))
		if _, err := w.Write(zeroChunk[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// copySource writes total bytes starting at disk offset off: the first avail
// bytes come from src, the rest (the tail of a partial last cluster) are
// zeros.
func copySource(ctx context.Context, w io.Writer, src Source, buf []byte, off, avail, total int64) error {
	for total > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(total, int64(len(buf)))
		r := min(k, max(avail, 0))
		if r > 0 {
			n, err := src.ReadAt(buf[:r], off)
			if int64(n) < r {
				if err == nil || err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return fmt.Errorf("%w: read %d bytes at %d: %w", ErrBadSource, r, off, err)
			}
		}
		clear(buf[r:k])
		if _, err := w.Write(buf[:k]); err != nil {
			return err
		}
		off += k
		avail -= k
		total -= k
	}
	return nil
}

// countWriter counts bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Qcow2Options tunes WriteQcow2.
type Qcow2Options struct {
	// ClusterSize is a power of two between 512 B and 2 MiB; 0 means 64 KiB,
	// QEMU's default.
	ClusterSize int
}

// clusterRun is a run of allocated guest clusters [start, start+count).
type clusterRun struct{ start, count int64 }

// qcow2Layout is the complete placement of a qcow2 file, computed before
// writing so that the file can be produced front to back.
type qcow2Layout struct {
	hdr         qcow2Header
	cs          int64 // cluster size
	runs        []clusterRun
	dataCount   int64   // allocated data clusters
	l2Index     []int64 // L1 indices that have an L2 table, ascending
	l1Clusters  int64
	rtClusters  int64 // refcount table
	rbClusters  int64 // refcount blocks
	total       int64 // clusters in the file
	l2Start     int64 // first L2 table cluster
	dataStart   int64 // first data cluster
	refcountOff int64
}

// planQcow2 computes the layout for a disk of the given size and extents.
func planQcow2(size int64, exts []extent, clusterSize int) (*qcow2Layout, error) {
	if clusterSize == 0 {
		clusterSize = 64 << 10
	}
	bits := uint32(0)
	for int64(1)<<bits < int64(clusterSize) {
		bits++
	}
	if 1<<bits != clusterSize || bits < minClusterBits || bits > maxClusterBits {
		return nil, fmt.Errorf("diskimage: qcow2 cluster size %d is not a power of two in [512, 2 MiB]", clusterSize)
	}
	L := &qcow2Layout{cs: int64(clusterSize)}
	L.hdr.clusterBits = bits
	L.hdr.size = uint64(size)
	L.hdr.refcountOrder = 4
	cs := L.cs
	for _, e := range exts {
		if e.zero {
			continue
		}
		a, b := e.off/cs, (e.off+e.length+cs-1)/cs
		if n := len(L.runs); n > 0 && L.runs[n-1].start+L.runs[n-1].count >= a {
			last := &L.runs[n-1]
			if end := last.start + last.count; b > end {
				last.count = b - last.start
			}
			continue
		}
		L.runs = append(L.runs, clusterRun{a, b - a})
	}
	epl := cs / 8 // entries per L2 table
	for _, r := range L.runs {
		L.dataCount += r.count
		for i := r.start / epl; i <= (r.start+r.count-1)/epl; i++ {
			if n := len(L.l2Index); n == 0 || L.l2Index[n-1] < i {
				L.l2Index = append(L.l2Index, i)
			}
		}
	}
	cov := cs * epl
	l1n := (size + cov - 1) / cov
	if l1n*8 > maxL1Bytes {
		return nil, fmt.Errorf("diskimage: disk of %d bytes needs a larger cluster size", size)
	}
	L.hdr.l1Size = uint32(l1n)
	L.l1Clusters = max(1, (l1n*8+cs-1)/cs)
	fixed := 1 + L.l1Clusters + int64(len(L.l2Index)) + L.dataCount
	perBlock := cs / 2 // 16-bit refcounts
	L.rbClusters, L.rtClusters = 1, 1
	for {
		total := fixed + L.rbClusters + L.rtClusters
		rb := (total + perBlock - 1) / perBlock
		rt := max(1, (rb*8+cs-1)/cs)
		if rb == L.rbClusters && rt == L.rtClusters {
			L.total = total
			break
		}
		L.rbClusters, L.rtClusters = rb, rt
	}
	L.hdr.l1Offset = uint64(cs)
	L.refcountOff = (1 + L.l1Clusters) * cs
	L.hdr.refcountOffset = uint64(L.refcountOff)
	L.hdr.refcountClusters = uint32(L.rtClusters)
	L.l2Start = 1 + L.l1Clusters + L.rtClusters + L.rbClusters
	L.dataStart = L.l2Start + int64(len(L.l2Index))
	return L, nil
}

// FileSize is the size in bytes of the qcow2 file the layout describes.
func (L *qcow2Layout) fileSize() int64 { return L.total * L.cs }

// WriteQcow2 writes src as a qcow2 v3 (compat 1.1) image to w in one forward
// pass. Only clusters overlapping data extents are allocated. The layout is
// header, L1, refcount table, refcount blocks, L2 tables, data in guest order.
// It returns the number of bytes written.
func WriteQcow2(ctx context.Context, w io.Writer, src Source, opts Qcow2Options) (int64, error) {
	exts, err := collectExtents(src)
	if err != nil {
		return 0, err
	}
	size := src.Size()
	if size%512 != 0 {
		return 0, fmt.Errorf("%w: qcow2 needs a size multiple of 512, got %d", ErrBadSource, size)
	}
	L, err := planQcow2(size, exts, opts.ClusterSize)
	if err != nil {
		return 0, err
	}
	cw := &countWriter{w: w}
	cs := L.cs
	be := binary.BigEndian
	cl := make([]byte, cs)

	// Header cluster; the zero bytes after the header end the extension list.
	L.hdr.marshal(cl)
	if _, err := cw.Write(cl); err != nil {
		return cw.n, err
	}

	// L1 table.
	tab := make([]byte, L.l1Clusters*cs)
	for k, i := range L.l2Index {
		be.PutUint64(tab[i*8:], uint64((L.l2Start+int64(k))*cs)|entryCopied)
	}
	if _, err := cw.Write(tab); err != nil {
		return cw.n, err
	}

	// Refcount table.
	tab = make([]byte, L.rtClusters*cs)
	for j := int64(0); j < L.rbClusters; j++ {
		be.PutUint64(tab[j*8:], uint64((1+L.l1Clusters+L.rtClusters+j)*cs))
	}
	if _, err := cw.Write(tab); err != nil {
		return cw.n, err
	}

	// Refcount blocks: every cluster of the file is used exactly once.
	perBlock := cs / 2
	for j := int64(0); j < L.rbClusters; j++ {
		clear(cl)
		for k := int64(0); k < perBlock; k++ {
			if j*perBlock+k < L.total {
				be.PutUint16(cl[k*2:], 1)
			}
		}
		if _, err := cw.Write(cl); err != nil {
			return cw.n, err
		}
	}

	// L2 tables, mapping data clusters in guest order.
	epl := cs / 8
	host := L.dataStart
	ri := 0
	for _, i := range L.l2Index {
		if err := ctx.Err(); err != nil {
			return cw.n, err
		}
		clear(cl)
		lo, hi := i*epl, (i+1)*epl
		for ri < len(L.runs) {
			r := L.runs[ri]
			a, b := max(r.start, lo), min(r.start+r.count, hi)
			for g := a; g < b; g++ {
				be.PutUint64(cl[(g-lo)*8:], uint64(host*cs)|entryCopied)
				host++
			}
			if r.start+r.count > hi {
				break // the run continues in the next table
			}
			ri++
		}
		if _, err := cw.Write(cl); err != nil {
			return cw.n, err
		}
	}

	// Data clusters.
	buf := make([]byte, max(copyChunk, cs))
	for _, r := range L.runs {
		off := r.start * cs
		total := r.count * cs
		if err := copySource(ctx, cw, src, buf, off, size-off, total); err != nil {
			return cw.n, err
		}
	}
	return cw.n, nil
}
