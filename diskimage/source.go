package diskimage

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Source is a virtual disk to export. Extents lets writers skip zero ranges
// without reading them and lets the qcow2 writer compute its whole layout
// before writing the first byte.
type Source interface {
	// Size is the virtual disk size in bytes.
	Size() int64
	// ReadAt reads disk bytes; it follows io.ReaderAt semantics.
	ReadAt(p []byte, off int64) (int, error)
	// Extents calls fn for consecutive ranges covering [0,Size) in order,
	// telling whether each range is all zero (and then need not be read).
	// A range reported as data may still contain zeros.
	Extents(fn func(off, length int64, zero bool) error) error
}

// extent is one range of a Source's extent map.
type extent struct {
	off, length int64
	zero        bool
}

// collectExtents reads a Source's extent map, checks that it covers
// [0,Size) consecutively and merges neighbours of the same kind.
func collectExtents(src Source) ([]extent, error) {
	size := src.Size()
	if size < 0 {
		return nil, fmt.Errorf("%w: negative size %d", ErrBadSource, size)
	}
	var out []extent
	var next int64
	err := src.Extents(func(off, length int64, zero bool) error {
		if off != next || length < 0 || off+length > size {
			return fmt.Errorf("%w: extent [%d,+%d) does not follow %d within size %d", ErrBadSource, off, length, next, size)
		}
		next = off + length
		if length == 0 {
			return nil
		}
		if n := len(out); n > 0 && out[n-1].zero == zero {
			out[n-1].length += length
			return nil
		}
		out = append(out, extent{off, length, zero})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if next != size {
		return nil, fmt.Errorf("%w: extents end at %d, size is %d", ErrBadSource, next, size)
	}
	return out, nil
}

// FileSource is a Source over a raw disk image file. Its extent map comes from
// the file system's holes (SEEK_DATA/SEEK_HOLE), so sparse files export as
// sparse images without reading the holes.
type FileSource struct {
	f    *os.File
	size int64
}

// NewFileSource returns a Source reading the raw image in f. The file must not
// change while the Source is in use.
func NewFileSource(f *os.File) (*FileSource, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("diskimage: stat source: %w", err)
	}
	return &FileSource{f: f, size: st.Size()}, nil
}

// Size returns the file size.
func (s *FileSource) Size() int64 { return s.size }

// ReadAt reads from the file.
func (s *FileSource) ReadAt(p []byte, off int64) (int, error) { return s.f.ReadAt(p, off) }

// lseek whence values for holes; Linux, FreeBSD and Solaris share them.
const (
	seekData = 3
	seekHole = 4
)

// Extents reports the file's data and hole ranges. When the platform or file
// system cannot report holes, the whole file is reported as data.
func (s *FileSource) Extents(fn func(off, length int64, zero bool) error) error {
	var off int64
	for off < s.size {
		data, err := s.f.Seek(off, seekData)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) && isENXIO(pe.Err) {
				// No data after off: the rest is a hole.
				return fn(off, s.size-off, true)
			}
			if off == 0 {
				return fn(0, s.size, false)
			}
			return fmt.Errorf("diskimage: seek data: %w", err)
		}
		if data > s.size {
			data = s.size
		}
		if data > off {
			if err := fn(off, data-off, true); err != nil {
				return err
			}
		}
		hole, err := s.f.Seek(data, seekHole)
		if err != nil {
			return fmt.Errorf("diskimage: seek hole: %w", err)
		}
		if hole > s.size {
			hole = s.size
		}
		if hole > data {
			if err := fn(data, hole-data, false); err != nil {
				return err
			}
		}
		off = hole
	}
	return nil
}

var _ Source = (*FileSource)(nil)
var _ io.ReaderAt = (*FileSource)(nil)
