package fetch

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// RemoteFile reads an allowed URL at random offsets with HTTP Range
// requests, so a format reader (qcow2) can seek through a remote image
// without downloading it first. Every request goes through the Fetcher's
// checks. Each ReadAt is one request: callers should read in large blocks.
type RemoteFile struct {
	f    *Fetcher
	ctx  context.Context
	url  string
	size int64
}

// OpenRange probes rawURL with a one-byte range request and returns a
// RemoteFile of the object's full size. It fails with ErrNoRange when the
// server ignores ranges, and ErrTooLarge past Options.MaxSize.
func (f *Fetcher) OpenRange(ctx context.Context, rawURL string) (*RemoteFile, error) {
	resp, body, err := f.do(ctx, rawURL, "bytes=0-0", http.StatusPartialContent)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	_, _ = io.Copy(io.Discard, body)
	size, err := totalFromContentRange(resp.Header.Get("Content-Range"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoRange, err)
	}
	if size > f.opts.MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, f.opts.MaxSize)
	}
	return &RemoteFile{f: f, ctx: ctx, url: rawURL, size: size}, nil
}

// Size is the object's length in bytes.
func (r *RemoteFile) Size() int64 { return r.size }

// ReadAt implements io.ReaderAt.
func (r *RemoteFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("fetch: negative offset %d", off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), r.size-off)
	if want == 0 {
		return 0, nil
	}
	resp, body, err := r.f.do(r.ctx, r.url, fmt.Sprintf("bytes=%d-%d", off, off+want-1), http.StatusPartialContent)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	if start, err := startFromContentRange(resp.Header.Get("Content-Range")); err != nil || start != off {
		return 0, fmt.Errorf("%w: asked for offset %d, got Content-Range %q", ErrNoRange, off, resp.Header.Get("Content-Range"))
	}
	n, err := io.ReadFull(body, p[:want])
	if err != nil {
		return n, err
	}
	if want < int64(len(p)) {
		return n, io.EOF
	}
	return n, nil
}

// totalFromContentRange parses the total of "bytes 0-0/12345".
func totalFromContentRange(h string) (int64, error) {
	i := strings.LastIndexByte(h, '/')
	if !strings.HasPrefix(h, "bytes ") || i < 0 {
		return 0, fmt.Errorf("bad Content-Range %q", h)
	}
	n, err := strconv.ParseInt(h[i+1:], 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("Content-Range %q has no total size", h)
	}
	return n, nil
}

func startFromContentRange(h string) (int64, error) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, fmt.Errorf("bad Content-Range %q", h)
	}
	start, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, fmt.Errorf("bad Content-Range %q", h)
	}
	return strconv.ParseInt(start, 10, 64)
}
