package nbd

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// memBlock is the allocation unit of the in-memory test disk.
const memBlock = 64 << 10

// memDisk is a sparse in-memory disk: blocks never written (or trimmed) are
// holes. It is shared by every connection that opens its name.
type memDisk struct {
	mu     sync.RWMutex
	size   int64
	blocks map[int64][]byte
	ro     bool

	flushes   atomic.Int64
	bytesRead atomic.Int64
	opens     atomic.Int64
	closes    atomic.Int64
}

func newMemDisk(size int64) *memDisk {
	return &memDisk{size: size, blocks: make(map[int64][]byte)}
}

// fill writes p at off directly (test setup).
func (d *memDisk) fill(p []byte, off int64) {
	if err := d.writeAt(p, off); err != nil {
		panic(err)
	}
}

// bytes returns a copy of the whole disk.
func (d *memDisk) bytes() []byte {
	out := make([]byte, d.size)
	d.readAt(out, 0)
	return out
}

// allocated reports whether the block containing off holds data.
func (d *memDisk) allocated(off int64) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	_, ok := d.blocks[off/memBlock]
	return ok
}

func (d *memDisk) allocatedBytes() int64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return int64(len(d.blocks)) * memBlock
}

func (d *memDisk) check(off, n int64) error {
	if off < 0 || n < 0 || off > d.size || n > d.size-off {
		return fmt.Errorf("memdisk: range %d+%d outside %d", off, n, d.size)
	}
	return nil
}

func (d *memDisk) readAt(p []byte, off int64) error {
	if err := d.check(off, int64(len(p))); err != nil {
		return err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	for done := 0; done < len(p); {
		pos := off + int64(done)
		bi, bo := pos/memBlock, pos%memBlock
		n := min(len(p)-done, int(memBlock-bo))
		if b, ok := d.blocks[bi]; ok {
			copy(p[done:done+n], b[bo:])
		} else {
			clear(p[done : done+n])
		}
		done += n
	}
	return nil
}

func (d *memDisk) writeAt(p []byte, off int64) error {
	if err := d.check(off, int64(len(p))); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for done := 0; done < len(p); {
		pos := off + int64(done)
		bi, bo := pos/memBlock, pos%memBlock
		n := min(len(p)-done, int(memBlock-bo))
		b, ok := d.blocks[bi]
		if !ok {
			b = make([]byte, memBlock)
			d.blocks[bi] = b
		}
		copy(b[bo:], p[done:done+n])
		done += n
	}
	return nil
}

// zero deallocates whole blocks in range and zeroes partial ones.
func (d *memDisk) zero(off, n int64) error {
	if err := d.check(off, n); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for pos, end := off, off+n; pos < end; {
		bi, bo := pos/memBlock, pos%memBlock
		k := min(end-pos, memBlock-bo)
		if bo == 0 && k == memBlock {
			delete(d.blocks, bi)
		} else if b, ok := d.blocks[bi]; ok {
			clear(b[bo : bo+k])
		}
		pos += k
	}
	return nil
}

// memExport is one open handle on a memDisk.
type memExport struct {
	d      *memDisk
	closed atomic.Bool
}

var _ Export = (*memExport)(nil)
var _ ReadOnlyExport = (*memExport)(nil)

func (e *memExport) Size() int64    { return e.d.size }
func (e *memExport) ReadOnly() bool { return e.d.ro }
func (e *memExport) ReadAt(_ context.Context, p []byte, off int64) error {
	e.d.bytesRead.Add(int64(len(p)))
	return e.d.readAt(p, off)
}
func (e *memExport) WriteAt(_ context.Context, p []byte, off int64) error {
	return e.d.writeAt(p, off)
}
func (e *memExport) Flush(context.Context) error {
	e.d.flushes.Add(1)
	return nil
}
func (e *memExport) Trim(_ context.Context, off, n int64) error        { return e.d.zero(off, n) }
func (e *memExport) WriteZeroes(_ context.Context, off, n int64) error { return e.d.zero(off, n) }
func (e *memExport) Extents(_ context.Context, off, n int64, fn func(off, length int64, hole bool) error) error {
	if err := e.d.check(off, n); err != nil {
		return err
	}
	for pos, end := off, off+n; pos < end; {
		k := min(end-pos, memBlock-pos%memBlock)
		hole := !e.d.allocated(pos)
		if err := fn(pos, k, hole); err != nil {
			return err
		}
		pos += k
	}
	return nil
}
func (e *memExport) Close() error {
	if e.closed.Swap(true) {
		return fmt.Errorf("memexport: closed twice")
	}
	e.d.closes.Add(1)
	return nil
}

// memExports maps names to memDisks.
type memExports struct {
	mu    sync.Mutex
	disks map[string]*memDisk
	names []string
}

func newMemExports() *memExports { return &memExports{disks: make(map[string]*memDisk)} }

func (m *memExports) add(name string, d *memDisk) *memDisk {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.disks[name] = d
	m.names = append(m.names, name)
	return d
}

func (m *memExports) Open(_ context.Context, name string) (Export, error) {
	m.mu.Lock()
	d, ok := m.disks[name]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("open %q: %w", name, ErrUnknownExport)
	}
	d.opens.Add(1)
	return &memExport{d: d}, nil
}

func (m *memExports) List(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.names...), nil
}
