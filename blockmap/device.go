package blockmap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/omiproject/omi/blockstore"
)

// Device is a volume open for block I/O, the backend of an NBD export. All
// methods are safe for concurrent use. Several Devices of the same id share
// one state; each must be closed.
//
// Writes go to a write-back buffer of whole blocks (partial writes read the
// rest of the block first). When the buffer exceeds its limit, and on Flush
// and Close, buffered blocks are hashed, compressed and stored in parallel,
// all-zero ones becoming holes; Flush then saves the map. Reads of holes
// never touch the block store.
type Device struct {
	s      *devState
	closed atomic.Bool
}

// devState is the state shared by the Devices of one id.
type devState struct {
	m  *Manager
	id string

	refs int // guarded by m.mu

	// wbMu serialises writebacks, saves and growth, the only changes of mp,
	// so a writeback's results are applied in order.
	wbMu sync.Mutex

	mu         sync.Mutex
	mp         *Map              // blocks stored so far
	dirty      map[int64]*dblock // written since the last writeback
	inflight   map[int64]*dblock // being written back
	dirtyBytes int64             // bytes of dirty data
	changed    bool              // mp differs from the saved map
	pinned     []blockstore.Hash // Put since the last save
	closed     bool

	lastRead atomic.Int64 // last block whose end was read, for read-ahead

	// The write log (wal.go). Writers hold logMu shared from logging a
	// change to applying it; Flush holds it exclusively to rotate.
	logMu          sync.RWMutex
	logFileMu      sync.Mutex // guards logF, logSeq, oldLogsPending
	logF           *os.File   // current log, nil until the next change
	logSeq         uint64
	oldLogsPending []string // closed after a failed append
	oldLogs        []string // closed logs not yet covered by a saved map; guarded by wbMu
}

// readAhead is how many blocks a sequential reader prefetches.
const readAhead = 2

// dblock is a buffered block; nil data means all zeros (trimmed).
type dblock struct {
	data []byte
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, blockstore.BlockSize); return &b }}

// zeros is a read-only block of zeros.
var zeros = make([]byte, blockstore.BlockSize)

func getBuf(n int) []byte {
	b := *bufPool.Get().(*[]byte)
	return b[:n]
}

func putBuf(b []byte) {
	if cap(b) == blockstore.BlockSize {
		b = b[:cap(b)]
		bufPool.Put(&b)
	}
}

func newDevState(m *Manager, id string, mp *Map) *devState {
	return &devState{
		m:     m,
		id:    id,
		refs:  1,
		mp:    mp,
		dirty: make(map[int64]*dblock),
	}
}

// Size returns the volume size in bytes.
func (d *Device) Size() int64 { return d.s.size() }

// ReadAt fills p with the bytes at off. Reading beyond the size fails with
// ErrOutOfRange.
func (d *Device) ReadAt(ctx context.Context, p []byte, off int64) error {
	if d.closed.Load() {
		return ErrClosed
	}
	return d.s.readAt(ctx, p, off)
}

// WriteAt writes p at off. The write is visible to reads at once and
// durable after the next successful Flush.
func (d *Device) WriteAt(ctx context.Context, p []byte, off int64) error {
	if d.closed.Load() {
		return ErrClosed
	}
	return d.s.writeAt(ctx, p, off, false)
}

// WriteZeroes makes [off, off+length) read as zeros; whole blocks become
// holes.
func (d *Device) WriteZeroes(ctx context.Context, off, length int64) error {
	if d.closed.Load() {
		return ErrClosed
	}
	return d.s.zeroRange(ctx, off, length)
}

// Trim discards [off, off+length). Discarded bytes read as zeros (NBD allows
// any content; zeros keep reads deterministic) and whole blocks become holes.
func (d *Device) Trim(ctx context.Context, off, length int64) error {
	if d.closed.Load() {
		return ErrClosed
	}
	return d.s.zeroRange(ctx, off, length)
}

// Flush makes every write acknowledged before the call durable: buffered
// blocks are stored and the map saved.
func (d *Device) Flush(ctx context.Context) error {
	if d.closed.Load() {
		return ErrClosed
	}
	return d.s.flush(ctx)
}

// Extents calls fn for consecutive runs covering [off, off+length) in
// order, with hole true for runs that read as zeros without being stored.
// A run reported as data may still read as zeros. An error from fn stops
// the walk and is returned.
func (d *Device) Extents(ctx context.Context, off, length int64, fn func(off, length int64, hole bool) error) error {
	if d.closed.Load() {
		return ErrClosed
	}
	return d.s.extents(ctx, off, length, fn)
}

// Close flushes and releases this Device. Closing twice returns ErrClosed.
func (d *Device) Close() error {
	if !d.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	return d.s.m.release(context.Background(), d.s)
}

func (s *devState) size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mp.Size()
}

func (s *devState) checkRange(off, length int64) error {
	size := s.size()
	if off < 0 || length < 0 || off > size || length > size-off {
		return fmt.Errorf("%w: [%d, +%d) of a %d-byte volume", ErrOutOfRange, off, length, size)
	}
	return nil
}

// shut marks the state closed once the last reference is gone and drops
// what it still holds (after a failed final flush).
func (s *devState) shut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, h := range s.pinned {
		s.m.pins.Unpin(h)
	}
	s.pinned = nil
	for i, b := range s.dirty {
		putBuf(b.data)
		delete(s.dirty, i)
	}
	s.dirtyBytes = 0
}

// block returns the buffered state of block i, if any. s.mu is held.
func (s *devState) buffered(i int64) *dblock {
	if b := s.dirty[i]; b != nil {
		return b
	}
	return s.inflight[i]
}

func (s *devState) readAt(ctx context.Context, p []byte, off int64) error {
	if err := s.checkRange(off, int64(len(p))); err != nil {
		return err
	}
	for len(p) > 0 {
		i, boff := off/blockstore.BlockSize, int(off%blockstore.BlockSize)
		n := min(len(p), blockstore.BlockSize-boff)
		if err := s.readBlock(ctx, i, boff, p[:n]); err != nil {
			return err
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// copyFrom copies src[boff:] into dst, zero-filling what src lacks.
func copyFrom(dst, src []byte, boff int) {
	n := 0
	if boff < len(src) {
		n = copy(dst, src[boff:])
	}
	clear(dst[n:])
}

func (s *devState) readBlock(ctx context.Context, i int64, boff int, dst []byte) error {
	for attempt := 0; ; attempt++ {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return ErrClosed
		}
		if b := s.buffered(i); b != nil {
			copyFrom(dst, b.data, boff)
			s.mu.Unlock()
			return nil
		}
		h := s.mp.Entry(i)
		var ahead []blockstore.Hash
		if boff+len(dst) == blockstore.BlockSize && s.lastRead.Swap(i) == i-1 {
			// Sequential reader finishing a block: read the next ones
			// ahead.
			for j := i + 1; j <= i+readAhead; j++ {
				if s.buffered(j) == nil {
					if a := s.mp.Entry(j); !a.IsZero() {
						ahead = append(ahead, a)
					}
				}
			}
		}
		s.mu.Unlock()
		for _, a := range ahead {
			s.m.prefetch(a)
		}
		if h.IsZero() {
			clear(dst)
			return nil
		}
		data, err := s.m.getBlock(ctx, h)
		if err == nil {
			copyFrom(dst, data, boff)
			return nil
		}
		if attempt < 3 && errors.Is(err, blockstore.ErrNotFound) && s.entryChanged(i, h) {
			continue // overwritten and collected meanwhile: read the new content
		}
		return fmt.Errorf("blockmap: read %s block %d: %w", s.id, i, err)
	}
}

func (s *devState) entryChanged(i int64, h blockstore.Hash) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buffered(i) != nil || s.mp.Entry(i) != h
}

func (s *devState) writeAt(ctx context.Context, p []byte, off int64, zero bool) error {
	if err := s.checkRange(off, int64(len(p))); err != nil {
		return err
	}
	s.logMu.RLock()
	err := s.appendLog(recWrite, off, int64(len(p)), p)
	if err == nil {
		err = s.applyWrite(ctx, p, off, zero)
	}
	s.logMu.RUnlock()
	if err != nil {
		return err
	}
	return s.maybeWriteback(ctx)
}

// applyWrite buffers p at off without logging it.
func (s *devState) applyWrite(ctx context.Context, p []byte, off int64, zero bool) error {
	if err := s.checkRange(off, int64(len(p))); err != nil {
		return err
	}
	for len(p) > 0 {
		i, boff := off/blockstore.BlockSize, int(off%blockstore.BlockSize)
		n := min(len(p), blockstore.BlockSize-boff)
		if err := s.writeBlock(ctx, i, boff, p[:n], zero); err != nil {
			return err
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

func (s *devState) zeroRange(ctx context.Context, off, length int64) error {
	if err := s.checkRange(off, length); err != nil {
		return err
	}
	s.logMu.RLock()
	err := s.appendLog(recZero, off, length, nil)
	if err == nil {
		err = s.applyZero(ctx, off, length)
	}
	s.logMu.RUnlock()
	if err != nil {
		return err
	}
	return s.maybeWriteback(ctx)
}

// applyZero buffers zeros over [off, off+length) without logging it.
func (s *devState) applyZero(ctx context.Context, off, length int64) error {
	if err := s.checkRange(off, length); err != nil {
		return err
	}
	for length > 0 {
		i, boff := off/blockstore.BlockSize, int(off%blockstore.BlockSize)
		n := min(length, int64(blockstore.BlockSize-boff))
		if err := s.writeBlock(ctx, i, boff, zeros[:n], true); err != nil {
			return err
		}
		length, off = length-n, off+n
	}
	return nil
}

// setDirty replaces the buffered content of block i. s.mu is held.
func (s *devState) setDirty(i int64, data []byte) {
	if old := s.dirty[i]; old != nil {
		s.dirtyBytes -= int64(len(old.data))
		putBuf(old.data)
	}
	s.dirty[i] = &dblock{data: data}
	s.dirtyBytes += int64(len(data))
}

// writeBlock writes src at boff of block i. zero tells that src is all
// zeros, which spares checking it.
func (s *devState) writeBlock(ctx context.Context, i int64, boff int, src []byte, zero bool) error {
	if !zero {
		zero = blockstore.IsZero(src)
	}
	var fetched []byte // content of fetchedHash, read without the lock
	var fetchedHash blockstore.Hash
	for attempt := 0; ; attempt++ {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return ErrClosed
		}
		blen := s.mp.BlockLen(i)
		full := boff == 0 && len(src) == blen
		if b := s.dirty[i]; b != nil {
			switch {
			case zero && (full || b.data == nil):
				s.setDirty(i, nil)
			case full:
				buf := getBuf(blen)
				copy(buf, src)
				s.setDirty(i, buf)
			default:
				if b.data == nil {
					b.data = getBuf(blen)
					clear(b.data)
					s.dirtyBytes += int64(blen)
				}
				copy(b.data[boff:], src)
			}
			s.mu.Unlock()
			return nil
		}
		infl := s.inflight[i]
		h := s.mp.Entry(i)
		if zero && (infl == nil && h.IsZero() || infl != nil && infl.data == nil) {
			s.mu.Unlock() // zeros onto zeros
			return nil
		}
		if full {
			if zero {
				s.setDirty(i, nil)
			} else {
				buf := getBuf(blen)
				copy(buf, src)
				s.setDirty(i, buf)
			}
			s.mu.Unlock()
			return nil
		}
		// Partial write: start from the current content of the block.
		var base []byte
		switch {
		case infl != nil:
			base = infl.data
		case h.IsZero():
		case fetched != nil && fetchedHash == h:
			base = fetched
		default:
			if c := s.m.cache.get(h); c != nil {
				base = c
				break
			}
			s.mu.Unlock()
			data, err := s.m.getBlock(ctx, h)
			if err != nil {
				if attempt < 3 && errors.Is(err, blockstore.ErrNotFound) && s.entryChanged(i, h) {
					continue
				}
				return fmt.Errorf("blockmap: write %s block %d: read: %w", s.id, i, err)
			}
			fetched, fetchedHash = data, h
			continue // re-check the block under the lock
		}
		buf := getBuf(blen)
		copyFrom(buf, base, 0)
		copy(buf[boff:], src)
		s.setDirty(i, buf)
		s.mu.Unlock()
		return nil
	}
}

func (s *devState) maybeWriteback(ctx context.Context) error {
	s.mu.Lock()
	over := s.dirtyBytes > s.m.cfg.dirtyLimit
	s.mu.Unlock()
	if !over {
		return nil
	}
	s.wbMu.Lock()
	defer s.wbMu.Unlock()
	s.mu.Lock()
	over = s.dirtyBytes > s.m.cfg.dirtyLimit
	s.mu.Unlock()
	if !over {
		return nil // another writer wrote back meanwhile
	}
	if s.m.cfg.logDir != "" {
		// Save the map too, so that the write log never holds more
		// than about the buffer limit: a long stream of writes without
		// a flush (an image copied in) would otherwise grow it until
		// the kernel writes it to disk.
		return s.flushLocked(ctx)
	}
	return s.writebackLocked(ctx)
}

type wbJob struct {
	i int64
	b *dblock
	h blockstore.Hash
}

// writebackLocked stores every buffered block and applies the new hashes to
// the map in one step, so the map always reflects the device at one
// instant. s.wbMu is held.
func (s *devState) writebackLocked(ctx context.Context) error {
	s.mu.Lock()
	if len(s.dirty) == 0 {
		s.mu.Unlock()
		return nil
	}
	take := s.dirty
	s.dirty = make(map[int64]*dblock)
	s.inflight = take
	s.dirtyBytes = 0
	s.mu.Unlock()

	jobs := make([]wbJob, 0, len(take))
	for i, b := range take {
		jobs = append(jobs, wbJob{i: i, b: b})
	}
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	for w := 0; w < min(s.m.cfg.workers, len(jobs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= len(jobs) {
					return
				}
				j := &jobs[k]
				if j.b.data == nil || blockstore.IsZero(j.b.data) {
					continue
				}
				h, err := s.m.putPinned(ctx, j.b.data)
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					next.Store(int64(len(jobs))) // stop the others
					return
				}
				j.h = h
			}
		}()
	}
	wg.Wait()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight = nil
	if firstErr != nil {
		// Keep the blocks buffered, unless rewritten meanwhile, so that a
		// later flush retries them.
		for _, j := range jobs {
			if !j.h.IsZero() {
				s.m.pins.Unpin(j.h)
			}
			if s.dirty[j.i] == nil {
				s.dirty[j.i] = j.b
				s.dirtyBytes += int64(len(j.b.data))
			} else {
				putBuf(j.b.data)
			}
		}
		return fmt.Errorf("blockmap: write back %s: %w", s.id, firstErr)
	}
	for _, j := range jobs {
		if s.mp.Entry(j.i) != j.h {
			s.mp.SetEntry(j.i, j.h)
			s.changed = true
		}
		if !j.h.IsZero() {
			s.pinned = append(s.pinned, j.h)
		}
		putBuf(j.b.data)
	}
	return nil
}

// flush writes back the buffer and saves the map if it changed: the chunk
// blocks that changed since the last save, then the root.
func (s *devState) flush(ctx context.Context) error {
	s.wbMu.Lock()
	defer s.wbMu.Unlock()
	return s.flushLocked(ctx)
}

// flushLocked is flush with s.wbMu held.
func (s *devState) flushLocked(ctx context.Context) error {
	// Every change logged so far is buffered now or written back already:
	// once the map is saved, the closed logs are no longer needed.
	s.logMu.Lock()
	s.rotateLog()
	covered := s.oldLogs[:len(s.oldLogs):len(s.oldLogs)]
	s.logMu.Unlock()
	if err := s.writebackLocked(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	if !s.changed {
		// Blocks re-Put with the hash they already had: the saved map
		// names them, the pins are not needed.
		pins := s.pinned
		s.pinned = nil
		s.mu.Unlock()
		for _, h := range pins {
			s.m.pins.Unpin(h)
		}
		s.dropLogs(covered)
		return nil
	}
	pins := s.pinned
	s.pinned = nil
	s.changed = false
	s.mu.Unlock()
	// s.mp only changes under wbMu, which we hold: saveMap may read it
	// without s.mu, and the chunk hashes it returns are those of s.mp.
	sums, err := s.m.saveMap(ctx, s.id, s.mp)
	if err != nil {
		s.mu.Lock()
		s.pinned = append(s.pinned, pins...)
		s.changed = true
		s.mu.Unlock()
		return err
	}
	s.mu.Lock()
	s.mp.setSums(sums)
	s.mu.Unlock()
	for _, h := range pins {
		s.m.pins.Unpin(h)
	}
	s.dropLogs(covered)
	return nil
}

// snapshot returns a copy of the map as of the last writeback.
func (s *devState) snapshot() *Map {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mp.Clone()
}

// grow extends the volume. A short last block gets longer, so its content
// is buffered at the new length and rewritten under a new hash.
func (s *devState) grow(ctx context.Context, size int64, logIt bool) error {
	s.wbMu.Lock()
	defer s.wbMu.Unlock()
	if logIt {
		s.logMu.RLock()
		err := s.appendLog(recGrow, size, 0, nil)
		s.logMu.RUnlock()
		if err != nil {
			return err
		}
	}
	if err := s.writebackLocked(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.mp.Size()
	if size == old {
		return nil
	}
	if size < old || size > MaxSize {
		return fmt.Errorf("%w: cannot resize from %d to %d bytes (grow only, max %d)", ErrOutOfRange, old, size, int64(MaxSize))
	}
	if old%blockstore.BlockSize != 0 {
		last := old / blockstore.BlockSize
		newLen := int(min(size-last*blockstore.BlockSize, blockstore.BlockSize))
		var content []byte
		if b := s.dirty[last]; b != nil {
			content = b.data
		} else if h := s.mp.Entry(last); !h.IsZero() {
			// mp cannot change while wbMu is held, so fetching without
			// s.mu is safe; dirty[last] may appear meanwhile.
			s.mu.Unlock()
			data, err := s.m.getBlock(ctx, h)
			s.mu.Lock()
			if err != nil {
				return fmt.Errorf("blockmap: grow %s: read last block: %w", s.id, err)
			}
			content = data
			if b := s.dirty[last]; b != nil {
				content = b.data
			}
		}
		if content != nil {
			buf := getBuf(newLen)
			copyFrom(buf, content, 0)
			s.setDirty(last, buf)
		}
	}
	if err := s.mp.Grow(size); err != nil {
		return err
	}
	s.changed = true
	return nil
}

// extents reports holes and data over [off, off+length), a window of blocks
// at a time so that fn never runs under the lock.
func (s *devState) extents(ctx context.Context, off, length int64, fn func(off, length int64, hole bool) error) error {
	if err := s.checkRange(off, length); err != nil {
		return err
	}
	const window = 4096
	type run struct {
		off, length int64
		hole        bool
	}
	var pending *run
	end := off + length
	for off < end {
		if err := ctx.Err(); err != nil {
			return err
		}
		var runs []run
		s.mu.Lock()
		for k := 0; k < window && off < end; k++ {
			i := off / blockstore.BlockSize
			n := min(end, (i+1)*blockstore.BlockSize) - off
			var hole bool
			if b := s.buffered(i); b != nil {
				hole = b.data == nil
			} else {
				hole = s.mp.Entry(i).IsZero()
				if hole && len(s.dirty) == 0 && len(s.inflight) == 0 {
					// Nothing buffered: jump over the map's hole run.
					n = min(end, s.mp.nextAllocated(i+1)*blockstore.BlockSize) - off
				}
			}
			if l := len(runs); l > 0 && runs[l-1].hole == hole {
				runs[l-1].length += n
			} else {
				runs = append(runs, run{off, n, hole})
			}
			off += n
		}
		s.mu.Unlock()
		for _, r := range runs {
			if pending != nil && pending.hole == r.hole {
				pending.length += r.length
				continue
			}
			if pending != nil {
				if err := fn(pending.off, pending.length, pending.hole); err != nil {
					return err
				}
			}
			r := r
			pending = &r
		}
	}
	if pending != nil {
		return fn(pending.off, pending.length, pending.hole)
	}
	return nil
}

// readFrom copies r into the volume from offset 0 (see Manager.WriteFrom).
func (s *devState) readFrom(ctx context.Context, r io.Reader) (int64, error) {
	size := s.size()
	buf := getBuf(blockstore.BlockSize)
	defer putBuf(buf)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return off, err
		}
		want := int(min(int64(blockstore.BlockSize), size-off))
		if want == 0 {
			// Volume full: any further byte is an error.
			var one [1]byte
			n, err := io.ReadFull(r, one[:])
			if n > 0 {
				return off, fmt.Errorf("%w: input longer than the %d-byte volume", ErrOutOfRange, size)
			}
			if err == io.EOF {
				return off, nil
			}
			return off, err
		}
		n, err := io.ReadFull(r, buf[:want])
		if n > 0 {
			// Not logged: WriteFrom acknowledges nothing before its
			// flush, and an import would be written twice.
			werr := s.applyWrite(ctx, buf[:n], off, false)
			if werr == nil {
				werr = s.maybeWriteback(ctx)
			}
			if werr != nil {
				return off, werr
			}
			off += int64(n)
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return off, nil
		case err != nil:
			return off, err
		}
	}
}
