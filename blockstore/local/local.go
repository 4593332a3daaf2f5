// Package local is a [blockstore.Store] that keeps blocks as files in a
// directory on the local filesystem: the default backend of a single-node omi.
//
// # Layout
//
// Block h lives in <dir>/<first two hex digits of h>/<hex of h>, so no
// directory holds more than 1/256th of the blocks. The 256 shard directories
// are created by [Open]. Temporary files (".tmp-*") live in the shard
// directory of their block so the final rename never crosses directories.
//
// # Object format
//
// Each file holds one block in the encoding of package blockcodec, shared with
// the other backends: a 12-byte header followed by the payload:
//
//	offset 0  magic "OMIB"
//	offset 4  format version (1)
//	offset 5  flags: bit 0 set = payload is a zstd frame, clear = raw bytes
//	offset 6  two reserved bytes, zero
//	offset 8  uncompressed length, uint32 little endian
//
// The payload is compressed with zstd at its fastest level; when that does not
// save at least 1/16th of the size (random or already-compressed data) the
// block is stored raw, which costs nothing to decode. The version byte and
// flags let the format evolve (other codecs, encryption) without renaming
// blocks; readers reject versions and flags they do not know as corrupt.
//
// # Durability and written time
//
// Put writes a temporary file, sets its modification time, fsyncs it, renames
// it into place and fsyncs the shard directory, so a block is either absent or
// complete after a crash. The file modification time is the block's written
// time; Put of an existing block only refreshes it (see
// [blockstore.Store.Put]). Times are set explicitly from the Go clock rather
// than left to the kernel, whose file timestamps are coarse and may lag the
// garbage collector's start time by a few milliseconds.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/blockstore/blockcodec"
)

// MaxBlockSize is the largest block Put accepts. It is far above
// [blockstore.BlockSize] and exists to bound the memory a (corrupt or hostile)
// header can make Get allocate.
const MaxBlockSize = 16 << 20

const (
	headerSize = blockcodec.HeaderSize
	tempPrefix = ".tmp-"
	// staleTemp is the age after which Walk removes temporary files left by
	// a crashed writer; no healthy Put takes anywhere near this long.
	staleTemp = time.Hour
)

// Store is a directory of zstd-compressed, SHA-256-named blocks. It is safe
// for concurrent use. Several Stores must not share a directory: the atomicity
// of DeleteIfWrittenBefore against Put holds within one Store only.
type Store struct {
	dir   string
	codec *blockcodec.Codec
	// locks serialise a re-Put's refresh of the written time with a
	// conditional delete of the same block (striped by the hash's first byte).
	locks [256]sync.Mutex
	// bufs holds *[]byte scratch buffers for encoded objects.
	bufs sync.Pool
}

var _ blockstore.Store = (*Store)(nil)

// Open opens (creating if needed) the block directory dir.
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
	codec, err := blockcodec.New(MaxBlockSize)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	return &Store{dir: dir, codec: codec}, nil
}

// Dir returns the directory the store keeps its blocks in.
func (s *Store) Dir() string { return s.dir }

// Path returns the file that holds block h. Tests use it to damage blocks;
// nothing else should touch the files directly.
func (s *Store) Path(h blockstore.Hash) string {
	name := h.String()
	return filepath.Join(s.dir, name[:2], name)
}

func (s *Store) lock(h blockstore.Hash) *sync.Mutex { return &s.locks[h[0]] }

// Put implements [blockstore.Store.Put].
func (s *Store) Put(ctx context.Context, data []byte) (blockstore.Hash, error) {
	if err := ctx.Err(); err != nil {
		return blockstore.Hash{}, err
	}
	if len(data) > MaxBlockSize {
		return blockstore.Hash{}, fmt.Errorf("local: put: block of %d bytes exceeds %d", len(data), MaxBlockSize)
	}
	h := blockstore.Sum(data)
	path := s.Path(h)

	// Already stored: refresh the written time under the stripe lock so a
	// concurrent conditional delete either ran before (and the file is
	// gone, so we write it again) or sees the new time.
	mu := s.lock(h)
	mu.Lock()
	now := time.Now()
	err := os.Chtimes(path, now, now)
	mu.Unlock()
	if err == nil {
		return h, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return h, fmt.Errorf("local: put %s: %w", h, err)
	}

	bp := s.getBuf()
	defer s.bufs.Put(bp)
	obj := s.codec.Encode(data, (*bp)[:0])
	*bp = obj[:0]
	if err := s.writeFile(path, obj); err != nil {
		return h, fmt.Errorf("local: put %s: %w", h, err)
	}
	return h, nil
}

func (s *Store) getBuf() *[]byte {
	if bp, ok := s.bufs.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, headerSize+blockstore.BlockSize+blockstore.BlockSize/8)
	return &b
}

// writeFile durably creates path with content obj: temp file, mtime, fsync,
// rename, fsync of the directory.
func (s *Store) writeFile(path string, obj []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPrefix)
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(obj); err != nil {
		return err
	}
	now := time.Now()
	if err = os.Chtimes(tmp, now, now); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
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

// Get implements [blockstore.Store.Get].
func (s *Store) Get(ctx context.Context, h blockstore.Hash, dst []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	bp := s.getBuf()
	defer s.bufs.Put(bp)
	obj, err := readFile(s.Path(h), (*bp)[:0])
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("local: get %s: %w", h, blockstore.ErrNotFound)
		}
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

// readFile reads the whole file into buf (growing it if needed).
func readFile(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
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
	mu := s.lock(h)
	mu.Lock()
	defer mu.Unlock()
	if err := os.Remove(s.Path(h)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("local: delete %s: %w", h, err)
	}
	return nil
}

// DeleteIfWrittenBefore implements [blockstore.Store.DeleteIfWrittenBefore].
func (s *Store) DeleteIfWrittenBefore(ctx context.Context, h blockstore.Hash, t time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	path := s.Path(h)
	mu := s.lock(h)
	mu.Lock()
	defer mu.Unlock()
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

// Walk implements [blockstore.Store.Walk]. It also removes temporary files
// older than an hour, left behind by writers that crashed mid-Put, and skips
// files whose names are not block hashes.
func (s *Store) Walk(ctx context.Context, fn func(h blockstore.Hash, written time.Time) error) error {
	for i := 0; i < 256; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		shard := fmt.Sprintf("%02x", i)
		sd := filepath.Join(s.dir, shard)
		entries, err := os.ReadDir(sd)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
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
	}
	return nil
}

// Close releases the compressor and decompressor state.
func (s *Store) Close() error {
	s.codec.Close()
	return nil
}
