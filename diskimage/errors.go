package diskimage

import "errors"

// Errors returned by the readers, exported so the import task can map a bad
// user-supplied image to a clear API error instead of an internal failure.
// They are wrapped with details; test them with errors.Is.
var (
	// ErrBackingFile: the qcow2 image depends on a backing file that an
	// import cannot fetch.
	ErrBackingFile = errors.New("diskimage: qcow2 backing files are not supported")
	// ErrExternalDataFile: the qcow2 image keeps its data in another file.
	ErrExternalDataFile = errors.New("diskimage: qcow2 external data files are not supported")
	// ErrEncrypted: the qcow2 image is encrypted (AES or LUKS).
	ErrEncrypted = errors.New("diskimage: encrypted qcow2 images are not supported")
	// ErrUnsupported: a valid image uses a feature this package does not read.
	ErrUnsupported = errors.New("diskimage: unsupported image feature")
	// ErrCorrupt: the qcow2 header or metadata is inconsistent.
	ErrCorrupt = errors.New("diskimage: corrupt qcow2 image")
	// ErrCorruptGzip: the gzip stream is malformed or fails its checksum.
	ErrCorruptGzip = errors.New("diskimage: corrupt gzip stream")
	// ErrTruncated: the stream ended before the image did (including a gzip
	// stream cut before its trailer).
	ErrTruncated = errors.New("diskimage: image stream is truncated")
	// ErrTooLarge: the image's virtual size exceeds the declared size.
	ErrTooLarge = errors.New("diskimage: virtual size is larger than the declared size")
	// ErrTooLong: raw image data continues past the declared size.
	ErrTooLong = errors.New("diskimage: raw image data is longer than the declared size")
	// ErrBufferLimit: a forward-only qcow2 stream orders its metadata so that
	// reading it would need more memory than OpenOptions.BufferLimit.
	ErrBufferLimit = errors.New("diskimage: qcow2 layout needs more buffering than allowed; provide random access (uncompressed object) or raise the limit")
	// ErrBadSource: a Source broke its contract (extents not covering the
	// disk, short reads).
	ErrBadSource = errors.New("diskimage: invalid source")
)
