// Package diskread decodes a disk image being imported: gzip or not, qcow2
// (v2 and v3, compressed clusters included) or raw, detected from content,
// never from a name. It hands the importer the disk's data as (guest offset,
// bytes) pieces, skipping what the image says is zero or unallocated.
//
// It is the import half that package diskimage documents but does not hold
// yet; it reuses diskimage's Format and error values so that callers can
// test errors with errors.Is against diskimage.Err*, and so the code can move
// there unchanged.
//
// Decode works on a forward-only stream (an HTTP body) with bounded memory:
// pieces are produced in the order their bytes appear in the image file, not
// in guest order (the importer writes them at their offset), so the usual
// qcow2 layouts (qemu-img convert, our exports) need no buffering at all.
// Bytes skipped before all qcow2 metadata is known are kept, up to
// Options.BufferLimit, in case an L2 table read later points back at them;
// a layout that needs more fails with diskimage.ErrBufferLimit, and
// DecodeAt (random access, e.g. ranged GETs) handles it.
package diskread

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/omiproject/omi/diskimage"
)

// Options bound what Decode accepts.
type Options struct {
	// DeclaredSize is the disk size the caller was told. A qcow2 image
	// whose virtual size is larger fails with diskimage.ErrTooLarge; raw
	// data longer than it fails with diskimage.ErrTooLong. A raw image
	// needs it (its size is its length, unknown before the end); 0 means
	// no declared size, accepted for qcow2 only.
	DeclaredSize int64
	// BufferLimit bounds the bytes a forward-only qcow2 decode keeps;
	// 0 means 128 MiB.
	BufferLimit int64
	// GzipConcurrency is the number of goroutines inflating the members
	// of our own parallel gzip; 0 means GOMAXPROCS.
	GzipConcurrency int
}

// Info describes the image, known before any data is produced.
type Info struct {
	Format diskimage.Format
	Gzip   bool
	// Size is the virtual disk size: the qcow2 header's, or for raw the
	// declared size (the data may be shorter; the rest reads as zeros).
	Size int64
}

// WriteFunc receives disk data at a guest offset. p is only valid during
// the call. Calls never overlap each other's ranges and stay below
// Info.Size; ranges not written are zero.
type WriteFunc func(off int64, p []byte) error

// Stats describes the bytes a decode went through.
type Stats struct {
	// ImageBytes is the length of the uncompressed image file (after
	// gunzip), InputBytes the length of the input as read.
	ImageBytes, InputBytes int64
}

// Observer, when set in DecodeWith, sees the input and image bytes in
// order; the importer hashes them.
type Observer struct {
	Input io.Writer // every byte read from the source
	Image io.Writer // every byte of the uncompressed image file
}

// ErrNoDeclaredSize: a raw image's size is its length, known only at the
// end, so the caller must declare it.
var ErrNoDeclaredSize = errors.New("a raw image needs a declared size")

const (
	defaultBufferLimit = 128 << 20
	chunkSize          = 1 << 20
)

// Decode reads an image from r, calls start once with its Info, then write
// for its data. It returns when the image ends: trailing bytes after a qcow2
// image's last referenced cluster are read (so digests cover the whole
// file) but ignored; raw data is the whole stream.
func Decode(ctx context.Context, r io.Reader, opts Options, obs Observer, start func(Info) error, write WriteFunc) (Stats, error) {
	if opts.BufferLimit <= 0 {
		opts.BufferLimit = defaultBufferLimit
	}
	in := &countReader{r: r, w: obs.Input}
	br := bufio.NewReaderSize(in, 64<<10)
	head, err := br.Peek(4)
	if err != nil && len(head) == 0 {
		if errors.Is(err, io.EOF) {
			return Stats{}, fmt.Errorf("%w: empty input", diskimage.ErrTruncated)
		}
		return Stats{}, err
	}
	var img io.Reader = br
	gz := false
	imageObs := obs.Image
	if len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b {
		gz = true
		// The gzip reader feeds the image observer from a goroutine of
		// its own; Close waits for it, before Decode returns.
		zr := newGzipReader(ctx, br, opts.GzipConcurrency, obs.Image)
		defer zr.Close()
		img = zr
		imageObs = nil
	}
	ic := &countReader{r: img, w: imageObs}
	ib := bufio.NewReaderSize(ic, 64<<10)
	magic, err := ib.Peek(4)
	if err != nil && len(magic) == 0 {
		if errors.Is(err, io.EOF) {
			return Stats{}, fmt.Errorf("%w: empty image", diskimage.ErrTruncated)
		}
		return Stats{}, err
	}
	st := func() Stats { return Stats{ImageBytes: ic.n, InputBytes: in.n} }
	if len(magic) == 4 && bytes.Equal(magic, []byte{'Q', 'F', 'I', 0xfb}) {
		err = decodeQcow2Stream(ctx, ib, opts, gz, start, write)
	} else {
		err = decodeRaw(ctx, ib, opts, gz, start, write)
	}
	if err == nil {
		// Drain: digests cover the whole file, and a truncated or
		// corrupt gzip tail must not pass unnoticed.
		_, err = io.Copy(io.Discard, ib)
	}
	if err == nil && gz {
		// The gzip reader has seen its end; anything after it is an
		// error the reader reports. Make sure the raw input is consumed.
		_, err = io.Copy(io.Discard, br)
	}
	return st(), err
}

// decodeRaw streams raw data, skipping all-zero chunks.
func decodeRaw(ctx context.Context, r io.Reader, opts Options, gz bool, start func(Info) error, write WriteFunc) error {
	if opts.DeclaredSize <= 0 {
		return ErrNoDeclaredSize
	}
	if err := start(Info{Format: diskimage.FormatRaw, Gzip: gz, Size: opts.DeclaredSize}); err != nil {
		return err
	}
	buf := make([]byte, chunkSize)
	var off int64
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if off+int64(n) > opts.DeclaredSize {
				return fmt.Errorf("%w: more than %d bytes", diskimage.ErrTooLong, opts.DeclaredSize)
			}
			if !isZero(buf[:n]) {
				if werr := write(off, buf[:n]); werr != nil {
					return werr
				}
			}
			off += int64(n)
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return nil
		case err != nil:
			return err
		}
	}
}

// countReader counts and optionally copies what is read through it.
type countReader struct {
	r io.Reader
	w io.Writer
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n += int64(n)
		if c.w != nil {
			c.w.Write(p[:n])
		}
	}
	return n, err
}

var zero64k = make([]byte, 64<<10)

// isZero reports whether b is all zero bytes.
func isZero(b []byte) bool {
	for len(b) > 0 {
		k := min(len(b), len(zero64k))
		if !bytes.Equal(b[:k], zero64k[:k]) {
			return false
		}
		b = b[k:]
	}
	return true
}
