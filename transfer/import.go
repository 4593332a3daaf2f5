package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync/atomic"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/diskimage"
	"github.com/omiproject/omi/transfer/internal/diskread"
)

// ImportOptions bound and check an import.
type ImportOptions struct {
	// DeclaredSize is the disk size the manifest (Size) or the request
	// (SnapshotSize) announced, in bytes. A qcow2 image with a larger
	// virtual size, or raw data longer than it, is refused. A raw import
	// needs it: the snapshot gets this size.
	DeclaredSize int64
	// ExpectedSHA256, if not empty, is the hex SHA-256 of the uncompressed
	// image file (the manifest's OmiDiskSha256); a mismatch fails the
	// import.
	ExpectedSHA256 string
	// ExpectedObjectSHA256, if not empty, is the hex SHA-256 of the object
	// as read (the manifest's OmiObjectSha256).
	ExpectedObjectSHA256 string
	// MaxSize is the largest disk this server accepts; 0 means
	// MaxDiskSize.
	MaxSize int64
	// BufferLimit bounds what a forward-only qcow2 decode keeps in memory
	// for images whose metadata points backwards; 0 means 128 MiB.
	BufferLimit int64
	// ObjectSize, if known (Content-Length, the manifest's
	// CompressedSize), makes progress count object bytes read.
	ObjectSize int64
	// Digests makes the import hash the image file and the object for
	// Result.DiskSHA256 and ObjectSHA256 even when no digest is expected.
	// Without it, each is computed only to check ExpectedSHA256 or
	// ExpectedObjectSHA256 (and left empty otherwise): SHA-256 of every
	// byte of the image and of the object was a tenth of an import's CPU,
	// spent for digests nobody read. The blocks themselves are always
	// hashed: they are named by their SHA-256.
	Digests bool
	// Progress, if set, is called with the bytes done and the total, about
	// every 1% and at the end: object bytes read out of ObjectSize (or the
	// size given to ImportReaderAt), else image bytes decoded out of
	// DeclaredSize (then it may jump at the end for sparse qcow2 images).
	Progress func(done, total int64)
}

// ImportError is an import refused because of the image itself (corrupt,
// truncated, unsupported feature, too large, digest mismatch), as opposed to
// an internal failure. Its message is safe to show to the user as the
// snapshot's or image's state comment. It wraps the cause, so errors.Is
// against the diskimage.Err* values and ErrDigestMismatch works.
type ImportError struct {
	SnapshotID string
	Err        error
}

func (e *ImportError) Error() string {
	msg := e.Err.Error()
	msg = strings.TrimPrefix(msg, "diskimage: ")
	return "import of " + e.SnapshotID + " refused: " + msg
}

func (e *ImportError) Unwrap() error { return e.Err }

// ErrDigestMismatch reports an image whose SHA-256 differs from the one the
// manifest announced.
var ErrDigestMismatch = errors.New("SHA-256 does not match the one announced")

// OUTSCALE codes given to a refused image when an ImportError becomes an
// API error (both InvalidParameterValue): 4203 InvalidSnapshotSize for a
// disk larger than declared or allowed, 4047 invalid-parameter-value for
// everything else wrong with the image.
const (
	CodeInvalidImport       = omi.CodeInvalidValue
	CodeInvalidSnapshotSize = "4203"
)

// AsAPIError turns an import error into an *omi.Error: 4203 or 4047
// InvalidParameterValue for an ImportError (bad image), an internal error
// otherwise.
func AsAPIError(err error) *omi.Error {
	var ie *ImportError
	if errors.As(err, &ie) {
		code := CodeInvalidImport
		if errors.Is(err, diskimage.ErrTooLarge) || errors.Is(err, diskimage.ErrTooLong) || errors.Is(err, errTooBig) {
			code = CodeInvalidSnapshotSize
		}
		return &omi.Error{Code: code, Type: omi.TypeInvalidParameter, Details: ie.Error(), Err: err}
	}
	return omi.AsError(err)
}

// userErrors are the decode failures caused by the image, not by us.
var userErrors = []error{
	diskimage.ErrBackingFile, diskimage.ErrExternalDataFile, diskimage.ErrEncrypted,
	diskimage.ErrUnsupported, diskimage.ErrCorrupt, diskimage.ErrCorruptGzip,
	diskimage.ErrTruncated, diskimage.ErrTooLarge, diskimage.ErrTooLong,
	diskimage.ErrBufferLimit, ErrDigestMismatch, errTooBig, diskread.ErrNoDeclaredSize,
}

var errTooBig = errors.New("disk is larger than this server accepts")

func classify(snapshotID string, err error) error {
	for _, u := range userErrors {
		if errors.Is(err, u) {
			return &ImportError{SnapshotID: snapshotID, Err: err}
		}
	}
	return fmt.Errorf("transfer: import %s: %w", snapshotID, err)
}

// ImportDisk reads a disk image from r (raw or qcow2 v2/v3, optionally
// gzip-compressed, detected from content), checks it against opts and
// writes it into a new block map snapshotID, which must not exist. Zero and
// unallocated ranges stay holes. Nothing is kept on local disk but the
// blocks themselves, and memory stays bounded.
//
// On any failure, including a digest mismatch found at the end and a
// cancelled ctx, the partial map is deleted (its blocks are garbage for the
// next collection), so there is either a complete snapshot or none. Errors
// caused by the image are *ImportError.
func ImportDisk(ctx context.Context, r io.Reader, maps *blockmap.Manager, snapshotID string, opts ImportOptions) (Result, error) {
	return runImport(ctx, maps, snapshotID, opts, -1, func(obs diskread.Observer, dopts diskread.Options, start func(diskread.Info) error, write diskread.WriteFunc) (diskread.Stats, error) {
		return diskread.Decode(ctx, r, dopts, obs, start, write)
	})
}

// ImportReaderAt is ImportDisk for a source with random access (ranged
// GETs of an object, a file) of size bytes. An uncompressed qcow2 image is
// then read by following its metadata wherever it lies, so layouts that
// the forward-only reader refuses with diskimage.ErrBufferLimit import
// too. When a digest is expected, the whole object is also read forward to
// hash it, concurrently.
func ImportReaderAt(ctx context.Context, ra io.ReaderAt, size int64, maps *blockmap.Manager, snapshotID string, opts ImportOptions) (Result, error) {
	return runImport(ctx, maps, snapshotID, opts, size, func(obs diskread.Observer, dopts diskread.Options, start func(diskread.Info) error, write diskread.WriteFunc) (diskread.Stats, error) {
		var magic [4]byte
		n, _ := ra.ReadAt(magic[:], 0)
		if n < 4 || string(magic[:]) != "QFI\xfb" {
			// gzip or raw: read forward like a stream.
			return diskread.Decode(ctx, io.NewSectionReader(ra, 0, size), dopts, obs, start, write)
		}
		// Uncompressed qcow2: the object is the image file. Hash it in
		// the background while decoding by metadata, if anyone wants it.
		var w io.Writer
		for _, o := range []io.Writer{obs.Input, obs.Image} {
			if o != nil {
				w = joinWriters(w, o)
			}
		}
		if w == nil {
			return diskread.DecodeAt(ctx, ra, size, dopts, diskread.Observer{}, start, write)
		}
		hctx, stop := context.WithCancel(ctx)
		defer stop()
		hashed := make(chan error, 1)
		go func() {
			_, err := io.Copy(w, &ctxReader{ctx: hctx, r: io.NewSectionReader(ra, 0, size)})
			hashed <- err
		}()
		st, err := diskread.DecodeAt(ctx, ra, size, dopts, diskread.Observer{}, start, write)
		if err != nil {
			stop() // no digest needed any more
		}
		if herr := <-hashed; err == nil && herr != nil {
			err = fmt.Errorf("hash object: %w", herr)
		}
		return st, err
	})
}

type decodeFunc func(obs diskread.Observer, opts diskread.Options, start func(diskread.Info) error, write diskread.WriteFunc) (diskread.Stats, error)

// runImport creates the map when the decoder knows the size, writes the
// data into it, verifies digests and deletes the map on any failure.
func runImport(ctx context.Context, maps *blockmap.Manager, snapshotID string, opts ImportOptions, objSize int64, decode decodeFunc) (res Result, err error) {
	maxSize := opts.MaxSize
	if maxSize <= 0 {
		maxSize = MaxDiskSize
	}
	if opts.DeclaredSize < 0 || opts.DeclaredSize > maxSize {
		return Result{}, classify(snapshotID, fmt.Errorf("%w: declared size %d, limit %d", errTooBig, opts.DeclaredSize, maxSize))
	}
	for _, d := range []string{opts.ExpectedSHA256, opts.ExpectedObjectSHA256} {
		if d != "" && !validSHA256(d) {
			return Result{}, fmt.Errorf("transfer: import %s: expected digest %q is not hex SHA-256", snapshotID, d)
		}
	}
	var ih, oh hash.Hash // nil: not needed
	if opts.Digests || opts.ExpectedSHA256 != "" {
		ih = sha256.New()
	}
	if opts.Digests || opts.ExpectedObjectSHA256 != "" {
		oh = sha256.New()
	}
	var dev *blockmap.Device
	created := false
	defer func() {
		if dev != nil {
			if cerr := dev.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("transfer: import %s: close: %w", snapshotID, cerr)
			}
		}
		if err != nil && created {
			// Nothing half-made: the map goes, its blocks become garbage.
			// Use a fresh context: ctx may be the reason we fail.
			if derr := maps.Delete(context.WithoutCancel(ctx), snapshotID); derr != nil {
				err = errors.Join(err, fmt.Errorf("transfer: import %s: delete partial map: %w", snapshotID, derr))
			}
			res = Result{}
		}
	}()

	var info diskread.Info
	if objSize <= 0 {
		objSize = opts.ObjectSize
	}
	total := opts.DeclaredSize
	if objSize > 0 {
		total = objSize
	}
	prog := &progressWriter{fn: opts.Progress, total: total}
	var obs diskread.Observer
	if ih != nil {
		obs.Image = ih
	}
	if oh != nil {
		obs.Input = oh
	}
	if opts.Progress != nil {
		if objSize > 0 {
			obs.Input = joinWriters(obs.Input, prog)
		} else {
			obs.Image = joinWriters(obs.Image, prog)
		}
	}
	start := func(in diskread.Info) error {
		if in.Size > maxSize {
			return fmt.Errorf("%w: virtual size %d, limit %d", errTooBig, in.Size, maxSize)
		}
		info = in
		if err := maps.Create(ctx, snapshotID, in.Size); err != nil {
			return err
		}
		created = true
		d, err := maps.Open(ctx, snapshotID)
		if err != nil {
			return err
		}
		dev = d
		return nil
	}
	// Writes go straight to the device, which copies them into its block
	// buffers and, when those fill, hashes, compresses and stores them on
	// every core before returning. Decoding meanwhile goes on in the gzip
	// reader's goroutines, up to their read-ahead. (A writer goroutine
	// behind a queue of copied chunks used to take the writes: the copy
	// cost more CPU than the overlap won once inflating was parallel.)
	write := func(off int64, p []byte) error { return dev.WriteAt(ctx, p, off) }
	dopts := diskread.Options{DeclaredSize: opts.DeclaredSize, BufferLimit: opts.BufferLimit}
	st, err := decode(obs, dopts, start, write)
	if err != nil {
		return Result{}, classify(snapshotID, err)
	}
	if dev == nil {
		return Result{}, classify(snapshotID, fmt.Errorf("%w: no image", diskimage.ErrTruncated))
	}
	if err := dev.Flush(ctx); err != nil {
		return Result{}, classify(snapshotID, err)
	}
	res = Result{
		Size:         info.Size,
		DiskSHA256:   hexSum(ih),
		ObjectSHA256: hexSum(oh),
		ObjectSize:   st.InputBytes,
		Format:       info.Format,
		Gzip:         info.Gzip,
	}
	if e := strings.ToLower(opts.ExpectedSHA256); e != "" && e != res.DiskSHA256 {
		return Result{}, classify(snapshotID, fmt.Errorf("%w: image SHA-256 is %s, expected %s", ErrDigestMismatch, res.DiskSHA256, e))
	}
	if e := strings.ToLower(opts.ExpectedObjectSHA256); e != "" && e != res.ObjectSHA256 {
		return Result{}, classify(snapshotID, fmt.Errorf("%w: object SHA-256 is %s, expected %s", ErrDigestMismatch, res.ObjectSHA256, e))
	}
	if opts.Progress != nil {
		opts.Progress(total, total)
	}
	return res, nil
}

// hexSum is the hex digest of h, or "" when h was not computed.
func hexSum(h hash.Hash) string {
	if h == nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// joinWriters is io.MultiWriter of the non-nil writers among w and extra.
func joinWriters(w, extra io.Writer) io.Writer {
	if w == nil {
		return extra
	}
	return io.MultiWriter(w, extra)
}

// progressWriter reports image bytes decoded, throttled to about 1%.
type progressWriter struct {
	fn          func(done, total int64)
	total, done int64
	last        atomic.Int64
}

func (p *progressWriter) Write(b []byte) (int, error) {
	if p.fn == nil {
		return len(b), nil
	}
	p.done += int64(len(b))
	step := max(p.total/100, 1<<20)
	if p.done-p.last.Load() >= step {
		p.last.Store(p.done)
		p.fn(min(p.done, p.total), p.total)
	}
	return len(b), nil
}

// ctxReader stops reading when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
