package blockmap

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/omiproject/omi/blockstore"
)

// View is a read-only, frozen copy of a map, for exports: it implements
// io.ReaderAt, io.WriterTo and the Size/ReadAt/Extents method set that
// diskimage.Source expects. Its blocks are pinned until Close, so deleting
// the snapshot or overwriting the volume meanwhile cannot make a collection
// free them under the reader. It is safe for concurrent use.
type View struct {
	m   *Manager
	ctx context.Context
	mp  *Map

	mu     sync.Mutex
	closed bool
}

// View returns a frozen view of id. For an open volume it is the content at
// one instant after flushing the writes acknowledged before the call. The
// view reads with ctx; Close it to release its pins.
func (m *Manager) View(ctx context.Context, id string) (*View, error) {
	// The hold dates the pins no later than the read of the map, for
	// collectors in other processes (see LowWater).
	at, done := m.hold()
	defer done()
	s, mp, err := m.openOrLoad(ctx, id, at)
	if err != nil {
		return nil, fmt.Errorf("blockmap: view %s: %w", id, err)
	}
	if s == nil {
		return &View{m: m, ctx: ctx, mp: mp}, nil // pinned by openOrLoad
	}
	err = s.flush(ctx)
	if err == nil {
		// Pin while the hashes are still referenced by s, and while no
		// marking can start or end.
		m.gate.RLock()
		mp = s.snapshot()
		mp.Walk(func(_ int64, h blockstore.Hash) error { m.pins.PinAt(h, at); return nil })
		m.gate.RUnlock()
	}
	if rerr := m.release(ctx, s); err == nil && rerr != nil {
		err = rerr
		m.unpinAll(mp)
	}
	if err != nil {
		return nil, fmt.Errorf("blockmap: view %s: %w", id, err)
	}
	return &View{m: m, ctx: ctx, mp: mp}, nil
}

func (m *Manager) unpinAll(mp *Map) {
	mp.Walk(func(_ int64, h blockstore.Hash) error { m.pins.Unpin(h); return nil })
}

// Size returns the size in bytes.
func (v *View) Size() int64 { return v.mp.Size() }

// Map returns a copy of the frozen map.
func (v *View) Map() *Map { return v.mp.Clone() }

// Close releases the view's pins. Closing twice is harmless.
func (v *View) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.closed {
		v.closed = true
		v.m.unpinAll(v.mp)
	}
	return nil
}

func (v *View) isClosed() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.closed
}

// ReadAt implements io.ReaderAt: it returns io.EOF when p reaches past the
// end.
func (v *View) ReadAt(p []byte, off int64) (int, error) {
	if v.isClosed() {
		return 0, ErrClosed
	}
	size := v.mp.Size()
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrOutOfRange, off)
	}
	if off >= size {
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
		dst := p[n : n+k]
		if h := v.mp.Entry(i); h.IsZero() {
			clear(dst)
		} else {
			data, err := v.m.getBlock(v.ctx, h)
			if err != nil {
				return n, fmt.Errorf("blockmap: read block %d: %w", i, err)
			}
			copyFrom(dst, data, boff)
		}
		n += k
		off += int64(k)
	}
	return n, eof
}

// Extents calls fn for consecutive runs covering [0, Size) in order, zero
// true for holes.
func (v *View) Extents(fn func(off, length int64, zero bool) error) error {
	size, n := v.mp.Size(), v.mp.Blocks()
	for i := int64(0); i < n; {
		j := v.mp.nextAllocated(i)
		if j > i {
			if err := fn(i*blockstore.BlockSize, min(size, j*blockstore.BlockSize)-i*blockstore.BlockSize, true); err != nil {
				return err
			}
			i = j
			continue
		}
		for j < n && !v.mp.Entry(j).IsZero() {
			j++
		}
		if err := fn(i*blockstore.BlockSize, min(size, j*blockstore.BlockSize)-i*blockstore.BlockSize, false); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// WriteTo writes the whole content to w, holes as zeros, fetching up to the
// Manager's worker count of blocks ahead in parallel.
func (v *View) WriteTo(w io.Writer) (int64, error) {
	if v.isClosed() {
		return 0, ErrClosed
	}
	ctx, cancel := context.WithCancel(v.ctx)
	defer cancel()
	type result struct {
		data []byte
		err  error
	}
	n := v.mp.Blocks()
	ahead := v.m.cfg.workers * 2
	slots := make(chan chan result, ahead)
	go func() {
		defer close(slots)
		for i := int64(0); i < n; i++ {
			ch := make(chan result, 1)
			select {
			case slots <- ch:
			case <-ctx.Done():
				return
			}
			h := v.mp.Entry(i)
			if h.IsZero() {
				ch <- result{}
				continue
			}
			go func() {
				data, err := v.m.getBlock(ctx, h)
				ch <- result{data, err}
			}()
		}
	}()
	var written int64
	var i int64
	for ch := range slots {
		r := <-ch
		if r.err != nil {
			return written, fmt.Errorf("blockmap: read block %d: %w", i, r.err)
		}
		blen := v.mp.BlockLen(i)
		data := r.data
		if data == nil {
			data = zeros[:blen]
		}
		if len(data) != blen {
			return written, fmt.Errorf("blockmap: block %d is %d bytes, want %d: %w", i, len(data), blen, blockstore.ErrCorrupt)
		}
		k, err := w.Write(data)
		written += int64(k)
		if err != nil {
			return written, err
		}
		i++
	}
	return written, ctx.Err()
}
