package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/blockstore/blockcodec"
)

// MaxBlockSize is the largest block Put accepts. It is far above
// [blockstore.BlockSize] and exists to bound the memory a (corrupt or hostile)
// header can make Get allocate.
const MaxBlockSize = 16 << 20

const (
	headerSize = blockcodec.HeaderSize
	pendingDir = "pending"
	// tempPrefix names the temporary files of earlier versions, which
	// wrote blocks next to their final path; Walk removes stale ones.
	tempPrefix = ".tmp-"
	// staleTemp is the age after which Walk removes such temporary files.
	staleTemp = time.Hour
)

// Store is a directory of compressed (S2), SHA-256-named blocks. It is safe
// for concurrent use. Several Stores must not share a directory (see the
// package documentation).
type Store struct {
	dir     string
	pending string // <dir>/pending
	codec   *blockcodec.Codec
	// stripes hold the pending blocks and serialise, per block, Put's
	// written-time refresh, conditional deletes and Sync's renames. Stripe i
	// holds the blocks whose hash starts with byte i, which are also those
	// of shard directory i.
	stripes [256]stripe
	// bufs holds *[]byte scratch buffers for encoded objects.
	bufs sync.Pool
	// seq numbers the pending files.
	seq atomic.Uint64

	syncState
}

// stripe is one lock and the pending blocks it guards.
type stripe struct {
	mu      sync.Mutex
	pending map[blockstore.Hash]*pendingBlock
	// installs counts the blocks of this stripe renamed to their final
	// path, the only way a final file appears.
	installs uint64
}

// pendingBlock is a block whose Put returned but which is not durable yet.
type pendingBlock struct {
	file    string    // the encoded object, in the pending directory
	size    int64     // bytes of file
	written time.Time // written time; refreshed by re-Puts
}

var (
	_ blockstore.Store  = (*Store)(nil)
	_ blockstore.Syncer = (*Store)(nil)
)

// Open opens (creating if needed) the block directory dir. Blocks left
// pending by an earlier Store on dir (one that crashed before syncing them)
// are dropped.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("local: open %s: %w", dir, err)
	}
	created := false
	for i := 0; i < 256; i++ {
		sd := filepath.Join(dir, fmt.Sprintf("%02x", i))
		err := os.Mkdir(sd, 0o755)
		switch {
		case err == nil:
			created = true
		case errors.Is(err, fs.ErrExist):
		default:
			return nil, fmt.Errorf("local: open %s: %w", dir, err)
		}
	}
	if created {
		if err := syncDir(dir); err != nil {
			return nil, fmt.Errorf("local: open %s: %w", dir, err)
		}
	}
	pd := filepath.Join(dir, pendingDir)
	if err := os.RemoveAll(pd); err != nil {
		return nil, fmt.Errorf("local: open %s: drop unsynced blocks: %w", dir, err)
	}
	if err := os.Mkdir(pd, 0o755); err != nil {
		return nil, fmt.Errorf("local: open %s: %w", dir, err)
	}
	codec, err := blockcodec.New(MaxBlockSize, blockcodec.S2)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	s := &Store{dir: dir, pending: pd, codec: codec}
	for i := range s.stripes {
		s.stripes[i].pending = make(map[blockstore.Hash]*pendingBlock)
	}
	s.syncState.init()
	return s, nil
}

// Dir returns the directory the store keeps its blocks in.
func (s *Store) Dir() string { return s.dir }

// Path returns the final file of block h, which exists once h is synced.
// Tests use it to damage blocks; nothing else should touch the files
// directly.
func (s *Store) Path(h blockstore.Hash) string {
	name := h.String()
	return filepath.Join(s.dir, name[:2], name)
}

func (s *Store) stripe(h blockstore.Hash) *stripe { return &s.stripes[h[0]] }

// now is the clock of written times, without its monotonic reading so that
// a pending block's time compares exactly like the file time it becomes.
func now() time.Time { return time.Now().Round(0) }

// Put implements [blockstore.Store.Put]. The block is durable after the next
// [Store.Sync].
func (s *Store) Put(ctx context.Context, data []byte) (blockstore.Hash, error) {
	if err := ctx.Err(); err != nil {
		return blockstore.Hash{}, err
	}
	if len(data) > MaxBlockSize {
		return blockstore.Hash{}, fmt.Errorf("local: put: block of %d bytes exceeds %d", len(data), MaxBlockSize)
	}
	h := blockstore.Sum(data)
	st := s.stripe(h)

	// Already stored: refresh the written time under the stripe lock so a
	// concurrent conditional delete either ran before (and the block is
	// gone, so we write it again) or sees the new time.
	st.mu.Lock()
	hit, err := s.refreshLocked(st, h)
	installs := st.installs
	st.mu.Unlock()
	if hit || err != nil {
		return h, err
	}

	bp := s.getBuf()
	obj := s.codec.Encode(data, (*bp)[:0])
	*bp = obj[:0]
	file, err := s.writePending(h, obj)
	s.bufs.Put(bp)
	if err != nil {
		return h, fmt.Errorf("local: put %s: %w", h, err)
	}

	// Another Put of the same block may have won while we wrote: it is
	// pending now, or a Sync installed it meanwhile. Without an install in
	// this stripe since the check above, no final file can have appeared
	// (only installs create them), which spares a lookup on disk.
	st.mu.Lock()
	if st.installs == installs {
		hit = st.pending[h] != nil
		if hit {
			st.pending[h].written = now()
		}
	} else {
		hit, err = s.refreshLocked(st, h)
	}
	if !hit && err == nil {
		st.pending[h] = &pendingBlock{file: file, size: int64(len(obj)), written: now()}
	}
	st.mu.Unlock()
	if hit || err != nil {
		os.Remove(file)
		return h, err
	}
	if err := s.added(ctx, int64(len(obj))); err != nil {
		return h, fmt.Errorf("local: put %s: %w", h, err)
	}
	return h, nil
}

// refreshLocked refreshes the written time of h and reports true if h is
// stored (pending or final). st.mu is held.
func (s *Store) refreshLocked(st *stripe, h blockstore.Hash) (bool, error) {
	t := now()
	if p := st.pending[h]; p != nil {
		p.written = t
		return true, nil
	}
	err := os.Chtimes(s.Path(h), t, t)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("local: put %s: %w", h, err)
	}
}

// writePending writes obj to a new file in the pending directory, without
// fsync, and returns its path.
//
// It goes to the system calls directly: an *os.File costs, per block, four
// fcntl calls and a failing epoll registration on top of open, write and
// close, which the import of a disk pays hundreds of times a second (each
// a trap to the hypervisor on a virtual machine). The name is the hash and
// a counter of this Store, which alone writes the directory (O_EXCL makes
// a clash an error instead of a silent overwrite, and the next number is
// tried). Mode 0600 as os.CreateTemp gave: blocks hold users' disks.
func (s *Store) writePending(h blockstore.Hash, obj []byte) (string, error) {
	base := filepath.Join(s.pending, h.String()) + "-"
	for range 10 {
		name := base + strconv.FormatUint(s.seq.Add(1), 36)
		fd, err := unix.Open(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return "", &fs.PathError{Op: "open", Path: name, Err: err}
		}
		err = writeAll(fd, obj)
		if cerr := unix.Close(fd); err == nil && cerr != nil {
			err = &fs.PathError{Op: "close", Path: name, Err: cerr}
		}
		if err != nil {
			unix.Unlink(name)
			return "", err
		}
		return name, nil
	}
	return "", fmt.Errorf("create a pending file for %s: names taken", h)
}

// writeAll writes p to fd, retrying short writes and EINTR.
func writeAll(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("write: %w", io.ErrShortWrite)
		}
		p = p[n:]
	}
	return nil
}

func (s *Store) getBuf() *[]byte {
	if bp, ok := s.bufs.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, blockcodec.MaxEncodedLen(blockstore.BlockSize))
	return &b
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// open opens the file holding block h: its pending file or its final one.
// The pending file is opened under the stripe lock, so a concurrent Sync
// cannot rename it away in between; once open, a rename does not matter.
func (s *Store) open(h blockstore.Hash) (*os.File, error) {
	st := s.stripe(h)
	st.mu.Lock()
	if p := st.pending[h]; p != nil {
		f, err := os.Open(p.file)
		st.mu.Unlock()
		return f, err
	}
	st.mu.Unlock()
	return os.Open(s.Path(h))
}

// Get implements [blockstore.Store.Get].
func (s *Store) Get(ctx context.Context, h blockstore.Hash, dst []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := s.open(h)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("local: get %s: %w", h, blockstore.ErrNotFound)
		}
		return nil, fmt.Errorf("local: get %s: %w", h, err)
	}
	bp := s.getBuf()
	defer s.bufs.Put(bp)
	obj, err := readObject(f, (*bp)[:0])
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("local: get %s: %w", h, err)
	}
	*bp = obj[:0]
	out, err := s.codec.Decode(obj, dst)
	if err != nil {
		return nil, fmt.Errorf("local: get %s: %w: %w", h, blockstore.ErrCorrupt, err)
	}
	if blockstore.Sum(out) != h {
		return nil, fmt.Errorf("local: get %s: %w: content hash mismatch", h, blockstore.ErrCorrupt)
	}
	return out, nil
}

// readObject reads the whole of f into buf (growing it if needed).
func readObject(f *os.File, buf []byte) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if size > headerSize+MaxBlockSize+MaxBlockSize/8 {
		return nil, fmt.Errorf("%w: object of %d bytes is too large", blockstore.ErrCorrupt, size)
	}
	if int64(cap(buf)) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := io.ReadFull(f, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: object shrank while reading", blockstore.ErrCorrupt)
		}
		return nil, err
	}
	return buf, nil
}

// Has implements [blockstore.Store.Has].
func (s *Store) Has(ctx context.Context, h blockstore.Hash) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	st := s.stripe(h)
	st.mu.Lock()
	_, pending := st.pending[h]
	st.mu.Unlock()
	if pending {
		return true, nil
	}
	// Not pending: a Sync that renamed it did so before dropping the
	// record, so the final file is there if the block is stored.
	_, err := os.Stat(s.Path(h))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("local: has %s: %w", h, err)
	}
}

// Delete implements [blockstore.Store.Delete]. The removal is not fsynced: a
// block resurrected by a crash is garbage the next collection removes again.
func (s *Store) Delete(ctx context.Context, h blockstore.Hash) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	st := s.stripe(h)
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := s.dropPendingLocked(st, h); err != nil {
		return fmt.Errorf("local: delete %s: %w", h, err)
	}
	if err := os.Remove(s.Path(h)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("local: delete %s: %w", h, err)
	}
	return nil
}

// dropPendingLocked forgets pending block h, if it is one, and removes its
// file. A Sync that already took it skips it. st.mu is held.
func (s *Store) dropPendingLocked(st *stripe, h blockstore.Hash) error {
	p := st.pending[h]
	if p == nil {
		return nil
	}
	if err := os.Remove(p.file); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	delete(st.pending, h)
	s.removed(p.size)
	return nil
}

// DeleteIfWrittenBefore implements [blockstore.Store.DeleteIfWrittenBefore].
func (s *Store) DeleteIfWrittenBefore(ctx context.Context, h blockstore.Hash, t time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	st := s.stripe(h)
	st.mu.Lock()
	defer st.mu.Unlock()
	if p := st.pending[h]; p != nil {
		if !p.written.Before(t) {
			return false, nil
		}
		if err := s.dropPendingLocked(st, h); err != nil {
			return false, fmt.Errorf("local: delete %s: %w", h, err)
		}
		return true, nil
	}
	path := s.Path(h)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("local: delete %s: %w", h, err)
	}
	if !fi.ModTime().Before(t) {
		return false, nil
	}
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("local: delete %s: %w", h, err)
	}
	return true, nil
}

// Walk implements [blockstore.Store.Walk], pending blocks included. It also
// removes temporary files older than an hour left in shard directories by
// earlier versions, and skips files whose names are not block hashes.
func (s *Store) Walk(ctx context.Context, fn func(h blockstore.Hash, written time.Time) error) error {
	for i := 0; i < 256; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		// The pending blocks of this shard, taken before its listing: one
		// renamed in between shows in both and is reported once.
		st := &s.stripes[i]
		st.mu.Lock()
		pend := make(map[blockstore.Hash]time.Time, len(st.pending))
		for h, p := range st.pending {
			pend[h] = p.written
		}
		st.mu.Unlock()

		shard := fmt.Sprintf("%02x", i)
		sd := filepath.Join(s.dir, shard)
		entries, err := os.ReadDir(sd)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("local: walk %s: %w", sd, err)
		}
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, tempPrefix) {
				if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
					os.Remove(filepath.Join(sd, name))
				}
				continue
			}
			if !strings.HasPrefix(name, shard) || !e.Type().IsRegular() {
				continue
			}
			h, err := blockstore.ParseHash(name)
			if err != nil {
				continue
			}
			if _, ok := pend[h]; ok {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted since ReadDir
			}
			if err != nil {
				return fmt.Errorf("local: walk %s: %w", name, err)
			}
			if err := fn(h, fi.ModTime()); err != nil {
				return err
			}
		}
		for h := range pend {
			// fn may have deleted it meanwhile.
			w, ok, err := s.writtenTime(h)
			if err != nil {
				return fmt.Errorf("local: walk %s: %w", h, err)
			}
			if !ok {
				continue
			}
			if err := fn(h, w); err != nil {
				return err
			}
		}
	}
	return nil
}

// writtenTime returns the written time of h and whether h is stored.
func (s *Store) writtenTime(h blockstore.Hash) (time.Time, bool, error) {
	st := s.stripe(h)
	st.mu.Lock()
	if p := st.pending[h]; p != nil {
		w := p.written
		st.mu.Unlock()
		return w, true, nil
	}
	st.mu.Unlock()
	fi, err := os.Stat(s.Path(h))
	switch {
	case err == nil:
		return fi.ModTime(), true, nil
	case errors.Is(err, fs.ErrNotExist):
		return time.Time{}, false, nil
	default:
		return time.Time{}, false, err
	}
}

// Close makes the pending blocks durable (see [Store.Sync]) and releases the
// compressor and decompressor state. It returns the error of that Sync.
func (s *Store) Close() error {
	s.flushes.Wait()
	err := s.Sync(context.Background())
	s.codec.Close()
	return err
}
