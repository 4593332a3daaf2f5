package s3x

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Upload defaults. 16 MiB parts and 3 buffers besides the first bound an
// upload's memory to 4 part buffers (64 MiB) whatever the object size.
const (
	DefaultPartSize    = 16 << 20
	DefaultConcurrency = 3
	minPartSize        = 5 << 20 // S3's minimum for every part but the last
	maxParts           = 10000
)

// UploadOptions tunes Upload; the zero value (or nil) means defaults.
type UploadOptions struct {
	// PartSize is the size of each part (default 16 MiB, at least 5 MiB).
	// It doubles every 2,500 parts, up to 8x, so that an upload of unknown
	// length is not stopped by S3's 10,000-part limit below ~600 GiB.
	PartSize int64
	// Concurrency is how many parts are sent at once (default 3).
	Concurrency int
	// ContentType is stored with the object (default
	// application/octet-stream).
	ContentType string
}

// Upload streams r to bucket/key and returns the object's ETag. r is read
// once, front to back, and never needs to be seekable or of known length: a
// pipe from a compressor is the intended source. Memory stays within
// (Concurrency+1) part buffers. An object that fits in one part is sent
// with a single PUT; anything larger goes as a multipart upload, which is
// aborted (its parts removed) if reading r, any part, or ctx fails.
func (c *Client) Upload(ctx context.Context, bucket, key string, r io.Reader, opts *UploadOptions) (string, error) {
	o := UploadOptions{}
	if opts != nil {
		o = *opts
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.PartSize < minPartSize {
		return "", fmt.Errorf("s3x: part size %d below the S3 minimum of %d", o.PartSize, minPartSize)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.ContentType == "" {
		o.ContentType = "application/octet-stream"
	}

	first := make([]byte, o.PartSize)
	n, err := io.ReadFull(r, first)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("s3x: upload %s/%s: read: %w", bucket, key, err)
	}
	if err != nil { // the whole object fits in one part
		out, err := c.s3.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(bucket), Key: aws.String(key),
			Body: bytes.NewReader(first[:n]), ContentLength: aws.Int64(int64(n)),
			ContentType: aws.String(o.ContentType),
		}, c.bodyOptions()...)
		if err != nil {
			return "", fmt.Errorf("s3x: put %s/%s: %w", bucket, key, err)
		}
		return aws.ToString(out.ETag), nil
	}

	up, err := c.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(bucket), Key: aws.String(key), ContentType: aws.String(o.ContentType),
	})
	if err != nil {
		if ctx.Err() != nil {
			// Cancelled while the request was on its way: the server may
			// have opened the upload all the same, and nothing else
			// would ever abort it (an export cancelled at its start
			// left one in the bucket).
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if aerr := c.abortUploads(actx, bucket, key, true); aerr != nil {
				err = fmt.Errorf("%w (and abort failed: %v)", err, aerr)
			}
		}
		return "", fmt.Errorf("s3x: start upload %s/%s: %w", bucket, key, err)
	}
	mu := &multipart{c: c, bucket: bucket, key: key, id: up.UploadId}
	etag, err := mu.run(ctx, r, first, o)
	if err != nil {
		// Abort even when ctx is what failed: the parts must not stay.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if aerr := c.abort(actx, bucket, key, up.UploadId); aerr != nil {
			err = fmt.Errorf("%w (and abort failed: %v)", err, aerr)
		}
		return "", err
	}
	return etag, nil
}

// abort removes a multipart upload and its parts. A part still being
// written by the server when the abort arrives can outlive it (the S3
// documentation says an abort may have to be repeated), so the upload is
// looked up again until it is gone.
func (c *Client) abort(ctx context.Context, bucket, key string, id *string) error {
	for attempt := 1; ; attempt++ {
		_, err := c.s3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(bucket), Key: aws.String(key), UploadId: id,
		})
		if err != nil && !IsNotFound(err) {
			return fmt.Errorf("s3x: abort upload of %s/%s: %w", bucket, key, err)
		}
		_, err = c.s3.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: id})
		if IsNotFound(err) {
			return nil
		}
		if attempt == 5 {
			return fmt.Errorf("s3x: upload of %s/%s still present after %d aborts (%v)", bucket, key, attempt, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("s3x: abort upload of %s/%s: %w", bucket, key, ctx.Err())
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
}

type multipart struct {
	c           *Client
	bucket, key string
	id          *string

	mu    sync.Mutex
	parts []types.CompletedPart
	err   error
}

// partSize is the size of part number n (1-based): doubled every 2,500 parts.
func partSize(base int64, n int) int64 {
	return base << min((n-1)/2500, 3)
}

func (m *multipart) run(ctx context.Context, r io.Reader, first []byte, o UploadOptions) (string, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	// Buffers circulate: one is being filled while up to Concurrency are
	// being sent.
	free := make(chan []byte, o.Concurrency+1)
	for i := 0; i < o.Concurrency; i++ {
		free <- nil // allocated on first use: a 2-part upload needs only 2
	}
	// With the first part's buffer that makes Concurrency+1 buffers in all.
	var wg sync.WaitGroup
	fail := func(err error) {
		m.mu.Lock()
		if m.err == nil {
			m.err = err
		}
		m.mu.Unlock()
		cancel(err)
	}

	data, last := first, false
loop:
	for num := 1; ; num++ {
		if num > maxParts {
			fail(fmt.Errorf("s3x: upload %s/%s: more than %d parts", m.bucket, m.key, maxParts))
			break
		}
		wg.Add(1)
		go func(num int, data []byte) {
			defer wg.Done()
			if err := m.sendPart(ctx, num, data); err != nil {
				fail(err)
			}
			free <- data[:cap(data)]
		}(num, data)
		if last {
			break
		}

		// Fill the next buffer while parts are in flight.
		var next []byte
		select {
		case next = <-free:
		case <-ctx.Done():
			break loop
		}
		if size := partSize(o.PartSize, num+1); int64(cap(next)) < size {
			next = make([]byte, size)
		} else {
			next = next[:size]
		}
		n, err := io.ReadFull(r, next)
		switch {
		case errors.Is(err, io.EOF): // nothing more: the part just sent was the last
			break loop
		case errors.Is(err, io.ErrUnexpectedEOF): // short: this one is the last
			last = true
		case err != nil:
			fail(fmt.Errorf("s3x: upload %s/%s: read: %w", m.bucket, m.key, err))
			break loop
		}
		data = next[:n]
	}
	wg.Wait()
	if m.err != nil {
		return "", m.err
	}
	if err := context.Cause(ctx); err != nil {
		return "", fmt.Errorf("s3x: upload %s/%s: %w", m.bucket, m.key, err)
	}

	sort.Slice(m.parts, func(i, j int) bool { return *m.parts[i].PartNumber < *m.parts[j].PartNumber })
	out, err := m.c.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(m.bucket), Key: aws.String(m.key), UploadId: m.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: m.parts},
	})
	if err != nil {
		return "", fmt.Errorf("s3x: complete upload %s/%s: %w", m.bucket, m.key, err)
	}
	return aws.ToString(out.ETag), nil
}

func (m *multipart) sendPart(ctx context.Context, num int, data []byte) error {
	out, err := m.c.s3.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: aws.String(m.bucket), Key: aws.String(m.key), UploadId: m.id,
		PartNumber: aws.Int32(int32(num)), Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
	}, m.c.bodyOptions()...)
	if err != nil {
		return fmt.Errorf("s3x: upload %s/%s part %d: %w", m.bucket, m.key, num, err)
	}
	m.mu.Lock()
	m.parts = append(m.parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(num))})
	m.mu.Unlock()
	return nil
}
