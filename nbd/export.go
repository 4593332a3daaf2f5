package nbd

import (
	"context"
	"errors"
	"io/fs"
	"syscall"
)

// Export is one open block device.
//
// The server calls an Export's methods from several goroutines at once, one
// per in-flight request of a pipelining client, so implementations must be
// safe for concurrent use. Offsets and lengths are always within [0, Size()]:
// the server checks bounds before calling. Errors wrapping syscall.EPERM or
// syscall.EROFS reach the client as NBD_EPERM, syscall.ENOSPC, EDQUOT or EFBIG
// as NBD_ENOSPC, syscall.EINVAL as NBD_EINVAL; anything else is NBD_EIO.
type Export interface {
	Size() int64
	ReadAt(ctx context.Context, p []byte, off int64) error
	WriteAt(ctx context.Context, p []byte, off int64) error
	Flush(ctx context.Context) error // data acknowledged before Flush returns nil is durable
	Trim(ctx context.Context, off, length int64) error
	WriteZeroes(ctx context.Context, off, length int64) error
	// Extents calls fn for consecutive runs covering [off, off+length) in order, telling whether each run
	// reads as zeros without being allocated (a hole). fn returning an error stops the walk.
	Extents(ctx context.Context, off, length int64, fn func(off, length int64, hole bool) error) error
	Close() error
}

// ReadOnlyExport may be implemented by an Export that must refuse writes, such
// as a snapshot's data. The server then advertises NBD_FLAG_READ_ONLY and
// answers WRITE, TRIM and WRITE_ZEROES with NBD_EPERM without calling the
// Export.
type ReadOnlyExport interface {
	ReadOnly() bool
}

// Exports resolves export names.
type Exports interface {
	Open(ctx context.Context, name string) (Export, error) // unknown name: error wrapping ErrUnknownExport
	List(ctx context.Context) ([]string, error)
}

// ErrUnknownExport is wrapped by Exports.Open when no export has the name; the
// client then gets NBD_REP_ERR_UNKNOWN (or, for NBD_OPT_EXPORT_NAME, which
// cannot carry an error, a closed connection).
var ErrUnknownExport = errors.New("nbd: unknown export")

// ErrExportBusy is returned (wrapped) by Exports.Open when the export
// exists but is served elsewhere for now; the client is refused with the
// error's text, so it should say where and why.
var ErrExportBusy = errors.New("export is busy")

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("nbd: server closed")

// errnoOf maps an Export error to the NBD error value sent to the client.
// Only the values proto.md defines are used; the cause stays in the log.
func errnoOf(err error) uint32 {
	if err == nil {
		return 0
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return errShutdown
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		switch en {
		case syscall.EPERM, syscall.EROFS, syscall.EACCES:
			return errPerm
		case syscall.ENOSPC, syscall.EDQUOT, syscall.EFBIG:
			return errNoSpc
		case syscall.EINVAL:
			return errInval
		case syscall.ENOMEM:
			return errNoMem
		case syscall.ENOTSUP:
			return errNotSup
		case syscall.EOVERFLOW:
			return errOverflow
		case syscall.ESHUTDOWN:
			return errShutdown
		}
		return errIO
	}
	if errors.Is(err, fs.ErrPermission) {
		return errPerm
	}
	return errIO
}

// errText is the short human-readable message sent with an error chunk. It
// never carries the cause, which may name internal paths.
func errText(errno uint32) string {
	switch errno {
	case errPerm:
		return "operation not permitted"
	case errNoSpc:
		return "no space left on device"
	case errInval:
		return "invalid argument"
	case errNoMem:
		return "out of memory"
	case errNotSup:
		return "operation not supported"
	case errOverflow:
		return "value too large"
	case errShutdown:
		return "server is shutting down"
	}
	return "input/output error"
}
