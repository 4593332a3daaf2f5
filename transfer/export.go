package transfer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"sync"

	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/diskimage"
)

// Result describes a disk that went through an export or an import.
type Result struct {
	// Size is the virtual disk size in bytes: the snapshot's size.
	Size int64
	// DiskSHA256 is the lowercase hex SHA-256 of the uncompressed image
	// file (the qcow2 or raw bytes, what gunzip yields), the digest the
	// manifest carries and an import verifies.
	DiskSHA256 string
	// ObjectSHA256 and ObjectSize describe the object as stored (the
	// gzip stream), or as read on import.
	ObjectSHA256 string
	ObjectSize   int64
	// Format is the image format written or detected; Gzip tells whether
	// the imported object was gzip-compressed (always true on export).
	Format diskimage.Format
	Gzip   bool
}

// ObjectName is the object name of an exported snapshot,
// "<snap-id>-<8 hex>.<format>.gz" as OUTSCALE names them
// (snap-11111111-aaaaaaaa.qcow2.gz). The random part keeps two exports of
// one snapshot into the same prefix from overwriting each other.
func ObjectName(snapshotID string, format diskimage.Format) string {
	if format == "" {
		format = diskimage.FormatQcow2
	}
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s-%s.%s.gz", snapshotID, hex.EncodeToString(b[:]), format)
}

// ExportSnapshot writes the disk of snapshotID to w as a gzip-compressed
// image of format (qcow2 or raw), in one forward pass suitable for a
// streaming multipart upload. It reads a frozen view of the map, so the
// snapshot may be deleted meanwhile; holes are never read. progress, if not
// nil, is called with the disk bytes done and the disk size, from the
// calling goroutine, at most about once per 1% and at the end.
func ExportSnapshot(ctx context.Context, maps *blockmap.Manager, snapshotID string, format diskimage.Format,
	w io.Writer, progress func(done, total int64)) (Result, error) {
	if format == "" {
		format = diskimage.FormatQcow2
	}
	if format != diskimage.FormatQcow2 && format != diskimage.FormatRaw {
		return Result{}, fmt.Errorf("transfer: export %s: unknown format %q", snapshotID, format)
	}
	v, err := maps.View(ctx, snapshotID)
	if err != nil {
		return Result{}, fmt.Errorf("transfer: export %s: %w", snapshotID, err)
	}
	defer v.Close()
	src := newViewSource(ctx, v, progress)
	defer src.stop()
	res, err := diskimage.Export(ctx, w, src, diskimage.ExportOptions{Format: format})
	if err != nil {
		return Result{}, fmt.Errorf("transfer: export %s: %w", snapshotID, err)
	}
	if progress != nil {
		progress(v.Size(), v.Size())
	}
	return Result{
		Size:         v.Size(),
		DiskSHA256:   res.ImageSHA256,
		ObjectSHA256: res.ObjectSHA256,
		ObjectSize:   res.ObjectSize,
		Format:       format,
		Gzip:         true,
	}, nil
}

// viewSource adapts a blockmap.View to diskimage.Source and reads ahead:
// the image writers read the disk in increasing order, a block at a time,
// while a block read is a file read, a decompression and a hash check, so
// fetching the next allocated blocks in parallel keeps the compressors fed.
// Holes are never fetched (the writers skip them using Extents).
type viewSource struct {
	v        *blockmap.View
	mp       *blockmap.Map
	ctx      context.Context
	cancel   context.CancelFunc
	progress func(done, total int64)
	step     int64
	reported int64

	ahead int
	mu    sync.Mutex
	next  int64 // next block index to schedule
	slots map[int64]*fetched
	sem   chan struct{}
}

type fetched struct {
	done chan struct{}
	data []byte
	err  error
}

func newViewSource(ctx context.Context, v *blockmap.View, progress func(done, total int64)) *viewSource {
	ctx, cancel := context.WithCancel(ctx)
	const ahead = 16 // 8 MiB of blocks in flight
	return &viewSource{
		v: v, mp: v.Map(), ctx: ctx, cancel: cancel,
		progress: progress, step: max(v.Size()/100, 1),
		ahead: ahead, slots: map[int64]*fetched{}, sem: make(chan struct{}, 4),
	}
}

func (s *viewSource) stop() { s.cancel() }

// Size implements diskimage.Source.
func (s *viewSource) Size() int64 { return s.v.Size() }

// Extents implements diskimage.Source.
func (s *viewSource) Extents(fn func(off, length int64, zero bool) error) error {
	return s.v.Extents(fn)
}

// ReadAt implements diskimage.Source from read-ahead blocks.
func (s *viewSource) ReadAt(p []byte, off int64) (int, error) {
	size := s.v.Size()
	if off < 0 || off >= size {
		return 0, io.EOF
	}
	var eof error
	if int64(len(p)) > size-off {
		p, eof = p[:size-off], io.EOF
	}
	n := 0
	for n < len(p) {
		i, boff := off/blockstore.BlockSize, int(off%blockstore.BlockSize)
		k := min(len(p)-n, blockstore.BlockSize-boff)
		data, err := s.block(i)
		if err != nil {
			return n, err
		}
		if data == nil {
			clear(p[n : n+k])
		} else {
			copy(p[n:n+k], data[boff:])
		}
		n += k
		off += int64(k)
	}
	if s.progress != nil && off-s.reported >= s.step {
		s.reported = off
		s.progress(off, size)
	}
	return n, eof
}

// block returns the content of block i (nil for a hole) and schedules the
// allocated blocks after it.
func (s *viewSource) block(i int64) ([]byte, error) {
	if s.mp.Entry(i).IsZero() {
		return nil, nil
	}
	s.mu.Lock()
	if i < s.next-int64(s.ahead) || i >= s.next {
		// Not a sequential reader (or first read): restart the window.
		for j := range s.slots {
			if j != i {
				delete(s.slots, j)
			}
		}
		s.next = i
	}
	for s.next < i+int64(s.ahead) && s.next < s.mp.Blocks() {
		j := s.next
		s.next++
		if s.mp.Entry(j).IsZero() {
			continue
		}
		if _, ok := s.slots[j]; ok {
			continue
		}
		f := &fetched{done: make(chan struct{})}
		s.slots[j] = f
		go s.fetch(j, f)
	}
	f := s.slots[i]
	delete(s.slots, i)
	s.mu.Unlock()
	if f == nil { // rescheduled window raced; read directly
		f = &fetched{done: make(chan struct{})}
		s.fetch(i, f)
	}
	select {
	case <-f.done:
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
	return f.data, f.err
}

func (s *viewSource) fetch(i int64, f *fetched) {
	defer close(f.done)
	select {
	case s.sem <- struct{}{}:
	case <-s.ctx.Done():
		f.err = s.ctx.Err()
		return
	}
	defer func() { <-s.sem }()
	buf := make([]byte, s.mp.BlockLen(i))
	n, err := s.v.ReadAt(buf, i*blockstore.BlockSize)
	if n == len(buf) {
		err = nil
	}
	f.data, f.err = buf[:n], err
	if err != nil {
		f.err = fmt.Errorf("transfer: read block %d: %w", i, err)
	}
}

var _ diskimage.Source = (*viewSource)(nil)
