package diskread

import (
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/omiproject/omi/diskimage"
)

// item is a host range the decoder wants, in the order of the file.
type item struct {
	host, length int64
	kind         int   // kindL1, kindL2, kindData, kindComp
	guest        int64 // data: guest offset; L2: index in L1
}

const (
	kindL1 = iota
	kindL2
	kindData
	kindComp
)

type itemHeap []item

func (h itemHeap) Len() int { return len(h) }
func (h itemHeap) Less(i, j int) bool {
	if h[i].host != h[j].host {
		return h[i].host < h[j].host
	}
	return h[i].kind < h[j].kind // metadata first
}
func (h itemHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *itemHeap) Push(x any)   { *h = append(*h, x.(item)) }
func (h *itemHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// segment is a range of the file kept after the reader passed it.
type segment struct {
	off  int64
	data []byte
}

// hostStream reads a qcow2 file forward, keeping passed bytes while
// metadata that may point at them is still unread.
type hostStream struct {
	r      io.Reader
	pos    int64
	keep   bool // keep skipped bytes
	lossy  bool // some skipped bytes were not kept (limit reached)
	segs   []segment
	kept   int64
	limit  int64
	reread int64 // bytes served again from kept segments
}

// maxPending bounds the wanted ranges a decode tracks (40 bytes each).
const maxPending = 1 << 22

// skipTo advances to off, keeping the skipped bytes if asked.
func (s *hostStream) skipTo(off int64) error {
	for s.pos < off {
		k := min(off-s.pos, chunkSize)
		if s.keep && !s.lossy && s.kept+k <= s.limit {
			b := make([]byte, k)
			if _, err := io.ReadFull(s.r, b); err != nil {
				return truncated(err, s.pos)
			}
			s.addSeg(s.pos, b)
			s.pos += k
			continue
		}
		if s.keep {
			s.lossy = true
		}
		n, err := io.CopyN(io.Discard, s.r, k)
		s.pos += n
		if err != nil {
			return truncated(err, s.pos)
		}
	}
	return nil
}

func (s *hostStream) addSeg(off int64, b []byte) {
	if n := len(s.segs); n > 0 {
		last := &s.segs[n-1]
		if last.off+int64(len(last.data)) == off && len(last.data)+len(b) <= 4*chunkSize && cap(last.data) >= len(last.data)+len(b) {
			last.data = append(last.data, b...)
			s.kept += int64(len(b))
			return
		}
	}
	s.segs = append(s.segs, segment{off, b})
	s.kept += int64(len(b))
}

func (s *hostStream) dropKept() {
	s.segs, s.kept, s.keep = nil, 0, false
}

// read returns the n bytes at host offset off into dst (reused when large
// enough). Bytes before the current position come from kept segments.
// With short true, a read cut by the end of the file returns what exists
// (compressed clusters may end in sector padding past the end).
func (s *hostStream) read(dst []byte, off, n int64, keepThis, short bool) ([]byte, error) {
	if int64(cap(dst)) < n {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	done := int64(0)
	for done < n && off+done < s.pos {
		at := off + done
		i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].off+int64(len(s.segs[i].data)) > at })
		if i == len(s.segs) || s.segs[i].off > at {
			return nil, fmt.Errorf("%w: qcow2 data at %#x is referenced after it was passed", diskimage.ErrBufferLimit, at)
		}
		sg := s.segs[i]
		k := int64(copy(dst[done:min(n, s.pos-off)], sg.data[at-sg.off:]))
		done += k
		s.reread += k
	}
	if done == n {
		return dst, nil
	}
	if err := s.skipTo(off + done); err != nil {
		return nil, err
	}
	m, err := io.ReadFull(s.r, dst[done:])
	s.pos += int64(m)
	if keepThis && m > 0 && s.kept+int64(m) <= s.limit {
		s.addSeg(off+done, append([]byte(nil), dst[done:done+int64(m)]...))
	}
	if err != nil {
		if short && (err == io.ErrUnexpectedEOF || err == io.EOF) && done+int64(m) > 0 {
			return dst[:done+int64(m)], nil
		}
		return nil, truncated(err, s.pos)
	}
	return dst, nil
}

func truncated(err error, at int64) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: qcow2 image ends at %d bytes", diskimage.ErrTruncated, at)
	}
	return err
}

// decodeQcow2Stream decodes a qcow2 image from a forward-only reader.
func decodeQcow2Stream(ctx context.Context, r io.Reader, opts Options, gz bool, start func(Info) error, write WriteFunc) error {
	first := make([]byte, qcowV3Len+8)
	n, err := io.ReadFull(r, first)
	if err != nil && err != io.ErrUnexpectedEOF {
		return truncated(err, int64(n))
	}
	h, err := parseHeader(first[:n])
	if err != nil {
		return err
	}
	if opts.DeclaredSize > 0 && h.size > opts.DeclaredSize {
		return fmt.Errorf("%w: virtual size %d, declared %d", diskimage.ErrTooLarge, h.size, opts.DeclaredSize)
	}
	if err := start(Info{Format: diskimage.FormatQcow2, Gzip: gz, Size: h.size}); err != nil {
		return err
	}
	s := &hostStream{r: r, pos: int64(n), keep: true, limit: opts.BufferLimit}
	s.addSeg(0, first[:n])
	d := &streamDecoder{h: h, s: s, write: write, inf: &inflater{h: h}}
	defer d.inf.close()
	if h.l1Size == 0 {
		return nil
	}
	heap.Push(&d.q, item{host: h.l1Offset, length: h.l1Size * 8, kind: kindL1})
	for d.q.Len() > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		it := heap.Pop(&d.q).(item)
		// Keep this range if another wanted range overlaps it (clusters
		// shared by several guest offsets).
		keepThis := d.q.Len() > 0 && d.q[0].host < it.host+it.length
		if err := d.do(it, keepThis); err != nil {
			return err
		}
		if d.q.Len() > maxPending || s.reread > 4*s.limit {
			// Legitimate layouts keep at most about one L2 table's
			// clusters pending and re-read little; hostile metadata
			// sharing tables and clusters would not stop.
			return fmt.Errorf("%w: too many qcow2 clusters pending or shared", diskimage.ErrBufferLimit)
		}
		// Once every L2 table is read and nothing wanted lies behind,
		// no metadata can point back: stop keeping bytes.
		if d.l1Done && d.l2Pending == 0 && s.keep && (d.q.Len() == 0 || d.q[0].host >= s.pos) {
			s.dropKept()
		}
	}
	return nil
}

type streamDecoder struct {
	h         *header
	s         *hostStream
	q         itemHeap
	write     WriteFunc
	inf       *inflater
	l1Done    bool
	l2Pending int
	buf, out  []byte
}

func (d *streamDecoder) do(it item, keepThis bool) error {
	h, s := d.h, d.s
	switch it.kind {
	case kindL1:
		l1, err := s.read(nil, it.host, it.length, keepThis, false)
		if err != nil {
			return err
		}
		for i := int64(0); i < h.l1Size; i++ {
			off, err := h.l1Entry(binary.BigEndian.Uint64(l1[i*8:]))
			if err != nil {
				return err
			}
			if off != 0 {
				heap.Push(&d.q, item{host: off, length: h.cs(), kind: kindL2, guest: i})
				d.l2Pending++
			}
		}
		d.l1Done = true
	case kindL2:
		l2, err := s.read(d.buf, it.host, it.length, keepThis, false)
		if err != nil {
			return err
		}
		d.buf = l2
		base := it.guest * h.l2Entries() * h.cs()
		var run *item
		for j := int64(0); j < h.l2Entries(); j++ {
			g := base + j*h.cs()
			if g >= h.size {
				break
			}
			c, ok, err := h.l2Entry(binary.BigEndian.Uint64(l2[j*8:]))
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if c.comp {
				heap.Push(&d.q, item{host: c.host, length: c.length, kind: kindComp, guest: g})
				continue
			}
			length := min(h.cs(), h.size-g)
			if run != nil && run.host+run.length == c.host && run.guest+run.length == g && run.length%h.cs() == 0 {
				run.length += length
				continue
			}
			if run != nil {
				heap.Push(&d.q, *run)
			}
			run = &item{host: c.host, length: length, kind: kindData, guest: g}
		}
		if run != nil {
			heap.Push(&d.q, *run)
		}
		d.l2Pending--
	case kindData:
		for done := int64(0); done < it.length; {
			k := min(it.length-done, chunkSize)
			b, err := s.read(d.out, it.host+done, k, keepThis, false)
			if err != nil {
				return err
			}
			d.out = b
			if !isZero(b) {
				if err := d.write(it.guest+done, b); err != nil {
					return err
				}
			}
			done += k
		}
	case kindComp:
		comp, err := s.read(d.buf, it.host, it.length, keepThis, true)
		if err != nil {
			return err
		}
		d.buf = comp
		cl := make([]byte, h.cs())
		if err := d.inf.inflate(comp, cl); err != nil {
			return err
		}
		cl = cl[:min(h.cs(), h.size-it.guest)]
		if !isZero(cl) {
			if err := d.write(it.guest, cl); err != nil {
				return err
			}
		}
	default:
		return errors.New("diskread: bad item")
	}
	return nil
}
