package catalog

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/diskfs/go-diskfs/backend"
)

// chunkSize is the granularity of the in-memory image. go-diskfs writes
// metadata in scattered small pieces; 64 KiB chunks keep the map small while
// letting untouched regions stay holes that are never written out.
const chunkSize = 64 << 10

// memDisk is a sparse in-memory disk that go-diskfs can format. Building the
// image in memory first, then copying only the chunks that hold data, lets
// BuildDisk target a plain io.WriterAt (a file, a volume device) without
// needing to read back from it, and keeps the output sparse.
type memDisk struct {
	size   int64
	pos    int64
	chunks map[int64][]byte
}

var _ backend.Storage = (*memDisk)(nil)
var _ backend.WritableFile = (*memDisk)(nil)

func newMemDisk(size int64) *memDisk {
	return &memDisk{size: size, chunks: make(map[int64][]byte)}
}

func (m *memDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= m.size {
		return 0, io.EOF
	}
	n := len(p)
	var err error
	if rem := m.size - off; int64(n) > rem {
		n, err = int(rem), io.EOF
	}
	for done := 0; done < n; {
		ci, co := (off+int64(done))/chunkSize, int((off+int64(done))%chunkSize)
		k := min(n-done, chunkSize-co)
		if c, ok := m.chunks[ci]; ok {
			copy(p[done:done+k], c[co:co+k])
		} else {
			clear(p[done : done+k])
		}
		done += k
	}
	return n, err
}

func (m *memDisk) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > m.size {
		return 0, fmt.Errorf("write of %d bytes at %d outside disk of %d bytes", len(p), off, m.size)
	}
	for done := 0; done < len(p); {
		ci, co := (off+int64(done))/chunkSize, int((off+int64(done))%chunkSize)
		k := min(len(p)-done, chunkSize-co)
		c, ok := m.chunks[ci]
		if !ok {
			if allZero(p[done : done+k]) {
				done += k
				continue
			}
			c = make([]byte, chunkSize)
			m.chunks[ci] = c
		}
		copy(c[co:co+k], p[done:done+k])
		done += k
	}
	return len(p), nil
}

func (m *memDisk) Read(p []byte) (int, error) {
	n, err := m.ReadAt(p, m.pos)
	m.pos += int64(n)
	return n, err
}

func (m *memDisk) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += m.pos
	case io.SeekEnd:
		offset += m.size
	default:
		return 0, errors.New("invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("negative position")
	}
	m.pos = offset
	return offset, nil
}

func (m *memDisk) Stat() (fs.FileInfo, error)              { return memInfo{m.size}, nil }
func (m *memDisk) Close() error                            { return nil }
func (m *memDisk) Sys() (*os.File, error)                  { return nil, backend.ErrNotSuitable }
func (m *memDisk) Writable() (backend.WritableFile, error) { return m, nil }
func (m *memDisk) Path() string                            { return "" }

// writeTo copies every chunk holding data to w in ascending offset order.
func (m *memDisk) writeTo(w io.WriterAt) (written int64, err error) {
	keys := make([]int64, 0, len(m.chunks))
	for k := range m.chunks {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		c := m.chunks[k]
		if allZero(c) {
			continue
		}
		off := k * chunkSize
		n := int64(len(c))
		if off+n > m.size {
			n = m.size - off
		}
		if _, err := w.WriteAt(c[:n], off); err != nil {
			return written, fmt.Errorf("write %d bytes at %d: %w", n, off, err)
		}
		written += n
	}
	return written, nil
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

type memInfo struct{ size int64 }

func (i memInfo) Name() string       { return "memdisk" }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return 0o600 }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return false }
func (i memInfo) Sys() any           { return nil }
