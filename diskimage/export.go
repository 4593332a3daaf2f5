package diskimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
)

// Format is a disk image container format.
type Format string

// Formats known to this package.
const (
	FormatRaw   Format = "raw"
	FormatQcow2 Format = "qcow2"
)

// ExportOptions selects the format and tunes compression of Export.
type ExportOptions struct {
	// Format is FormatQcow2 or FormatRaw; empty means FormatQcow2.
	Format Format
	Qcow2  Qcow2Options
	// Gzip tunes compression; its hash fields are ignored (Export sets them).
	Gzip GzipOptions
}

// ExportResult describes a finished export; the manifest needs both digests.
type ExportResult struct {
	// ImageSize and ImageSHA256 describe the uncompressed image file
	// (raw or qcow2 bytes), as a user would get after gunzip.
	ImageSize   int64
	ImageSHA256 string
	// ObjectSize and ObjectSHA256 describe the gzip stream written to w.
	ObjectSize   int64
	ObjectSHA256 string
}

// Export writes src to w as a gzip-compressed image of the chosen format, in
// one forward pass, compressing in parallel, and hashes the uncompressed and
// compressed streams on the way. Digests are lowercase hex SHA-256.
func Export(ctx context.Context, w io.Writer, src Source, opts ExportOptions) (ExportResult, error) {
	var res ExportResult
	gopts := opts.Gzip
	ih, oh := sha256.New(), sha256.New()
	gopts.UncompressedHash, gopts.CompressedHash = ih, oh
	zw, err := NewGzipWriter(w, gopts)
	if err != nil {
		return res, err
	}
	switch opts.Format {
	case FormatQcow2, "":
		_, err = WriteQcow2(ctx, zw, src, opts.Qcow2)
	case FormatRaw:
		_, err = WriteRaw(ctx, zw, src)
	default:
		err = fmt.Errorf("diskimage: unknown export format %q", opts.Format)
	}
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, err
	}
	res.ImageSize, res.ObjectSize = zw.Written()
	res.ImageSHA256 = hex.EncodeToString(ih.Sum(nil))
	res.ObjectSHA256 = hex.EncodeToString(oh.Sum(nil))
	return res, nil
}
