// Package s3store is a [blockstore.Store] that keeps blocks as objects in a
// bucket of any S3 service (the built-in endpoint of package oos, OUTSCALE
// OOS, AWS, Ceph, MinIO...): the backend that lets several omi nodes share
// one block store.
//
// # Layout
//
// Block h is the object <prefix>/<first two hex digits of h>/<hex of h>. The
// two-digit level spreads keys over 256 key ranges, which is how S3 services
// partition their index, so listing and heavy writes do not all hit one
// partition. Objects whose keys do not have that shape are ignored by Walk,
// so the prefix may share a bucket with other data.
//
// # Object format
//
// The body is the block in the format of package blockcodec, as package
// local writes it: a 12-byte header ("OMIB", version, codec flags, length)
// and a zstd payload at the fastest level, or the raw bytes when compression
// saves less than 1/16th. This store writes zstd rather than local's S2:
// objects cross the network and are billed by the byte, where zstd's 18%
// smaller objects are worth its CPU. It reads every form. Get
// verifies the SHA-256 of the decoded content, so a damaged or foreign object
// reads as [blockstore.ErrCorrupt], never as data.
//
// # Written time
//
// The written time of a block is the object's LastModified. S3 has no
// "touch", so Put of a block that is already stored must write the object
// again for its LastModified to move; see [Refresh] for the two ways and why
// rewriting is the default. LastModified has a precision of one second on
// most services (the HTTP Last-Modified header has no fraction, and listings
// round to it too), so the store reports the end of that second: the time a
// block is said to be written is never earlier than the real one, which is
// the safe direction for the garbage collector (a block is at worst kept one
// more collection). LastModified comes from the S3 server's clock while the
// collector's cutoff comes from a node's: [Options.ClockSkew] is added to
// every written time so that a server clock running behind cannot make a
// fresh block look older than the cutoff.
//
// # Conditional delete
//
// DeleteIfWrittenBefore is HeadObject, a comparison, then DeleteObject. Within
// one Store it is atomic with respect to Put of the same block: both take a
// per-hash lock (striped over 4096 read-write mutexes; Puts share it, the
// conditional delete holds it alone). Across processes nothing here
// serialises them: with several nodes on one bucket, the garbage collector's
// lease (kept in the metadata store) must ensure no node Puts a block the
// sweep may delete, as it does for Pins.
package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/blockstore/blockcodec"
	"github.com/omiproject/omi/s3x"
)

// MaxBlockSize is the largest block Put accepts, as in package local: far
// above [blockstore.BlockSize], it bounds what a corrupt or hostile object can
// make Get allocate.
const MaxBlockSize = 16 << 20

// maxObjectSize bounds the encoded size Get reads: header plus a raw payload.
const maxObjectSize = blockcodec.HeaderSize + MaxBlockSize

// DefaultConcurrency is the default bound on requests in flight per Store.
const DefaultConcurrency = 32

// numLocks is the number of lock stripes (a power of two).
const numLocks = 4096

// Refresh selects how Put of a block that is already stored moves the
// object's LastModified.
type Refresh int

const (
	// RefreshRewrite PUTs the encoded block again. It works on every S3
	// service, needs no prior HEAD (Put is always one request), and costs
	// the upload of the compressed block. It is the default.
	RefreshRewrite Refresh = iota
	// RefreshCopy copies the object onto itself with a replaced metadata
	// field (x-amz-meta-omi-refreshed), falling back to a PUT when the
	// object does not exist. It uploads nothing for a stored block, but a
	// new block costs two requests. Services that refuse in-place copies
	// (the built-in endpoint does: its copy size limit is 0) get a PUT
	// instead, and after the first such refusal the Store stops trying. Use
	// it only on services known to move LastModified on an in-place copy
	// (AWS S3 does); one that accepted the copy without moving it would let
	// the garbage collector sweep a block just re-Put.
	RefreshCopy
)

// Options configure a Store.
type Options struct {
	// Endpoint is the S3 base URL, e.g. "http://127.0.0.1:3001"; empty
	// means AWS itself. Region is the SigV4 signing region (required).
	Endpoint, Region string
	// AccessKey and SecretKey are the credentials.
	AccessKey, SecretKey string
	// Client, when set, is used instead of a client built from Endpoint,
	// Region and the keys (tests and callers sharing one connection pool).
	Client *s3x.Client
	// Bucket holds the blocks; it must exist (required).
	Bucket string
	// Prefix is the key prefix under which blocks live, without leading or
	// trailing slash ("" = bucket root). Letters, digits, '-', '_', '.' and
	// '/' only, so keys never need escaping.
	Prefix string
	// Concurrency bounds the S3 requests in flight through this Store
	// (default DefaultConcurrency). Callers may run more Puts and Gets;
	// the excess waits here rather than opening more connections.
	Concurrency int
	// Refresh selects how a re-Put moves the written time.
	Refresh Refresh
	// ClockSkew is the most the S3 server's clock may run behind the omi
	// nodes' clocks; it is added to every written time the store reports.
	// Zero suits the built-in endpoint (same host, same clock); for an
	// external service a minute or more costs nothing but keeping garbage
	// written within that window for one more collection. Negative values
	// are refused.
	ClockSkew time.Duration
}

// Store keeps blocks in an S3 bucket. It is safe for concurrent use.
type Store struct {
	s3      *s3.Client
	bucket  string
	prefix  string // "" or ending in "/"
	refresh Refresh
	skew    time.Duration
	// noCopy is set once the service refused an in-place copy (RefreshCopy
	// then degrades to rewriting).
	noCopy atomic.Bool
	codec  *blockcodec.Codec
	sem    chan struct{}
	locks  [numLocks]sync.RWMutex
	bufs   sync.Pool // *[]byte scratch for encoded objects
}

var _ blockstore.Store = (*Store)(nil)

// Open checks that the bucket is reachable with the credentials and returns
// a Store over it.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Bucket == "" {
		return nil, errors.New("s3store: bucket is required")
	}
	prefix := strings.Trim(o.Prefix, "/")
	for _, r := range prefix {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./", r)) {
			return nil, fmt.Errorf("s3store: prefix %q: only letters, digits and -_./ are allowed", o.Prefix)
		}
	}
	if prefix != "" {
		prefix += "/"
	}
	if o.ClockSkew < 0 {
		return nil, fmt.Errorf("s3store: negative clock skew %v", o.ClockSkew)
	}
	if o.Refresh != RefreshRewrite && o.Refresh != RefreshCopy {
		return nil, fmt.Errorf("s3store: unknown refresh mode %d", o.Refresh)
	}
	c := o.Client
	if c == nil {
		if o.Region == "" {
			return nil, errors.New("s3store: region is required")
		}
		c = s3x.NewClient(o.Endpoint, o.Region, o.AccessKey, o.SecretKey)
	}
	if err := c.HeadBucket(ctx, o.Bucket); err != nil {
		return nil, fmt.Errorf("s3store: open: %w", err)
	}
	n := o.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	cd, err := blockcodec.New(MaxBlockSize, blockcodec.Zstd)
	if err != nil {
		return nil, err
	}
	return &Store{s3: c.S3(), bucket: o.Bucket, prefix: prefix, refresh: o.Refresh,
		skew: o.ClockSkew, codec: cd, sem: make(chan struct{}, n)}, nil
}

// Key returns the object key of block h. Tests use it to damage blocks;
// nothing else should write the objects directly.
func (s *Store) Key(h blockstore.Hash) string {
	name := h.String()
	return s.prefix + name[:2] + "/" + name
}

// Bucket returns the bucket the store keeps its blocks in.
func (s *Store) Bucket() string { return s.bucket }

func (s *Store) lock(h blockstore.Hash) *sync.RWMutex {
	return &s.locks[(int(h[0])<<8|int(h[1]))%numLocks]
}

// acquire takes one of the request slots, or fails when ctx ends first.
func (s *Store) acquire(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) release() { <-s.sem }

func (s *Store) getBuf() *[]byte {
	if bp, ok := s.bufs.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, blockcodec.MaxEncodedLen(blockstore.BlockSize))
	return &b
}

// Put implements [blockstore.Store.Put].
func (s *Store) Put(ctx context.Context, data []byte) (blockstore.Hash, error) {
	if err := ctx.Err(); err != nil {
		return blockstore.Hash{}, err
	}
	if len(data) > MaxBlockSize {
		return blockstore.Hash{}, fmt.Errorf("s3store: put: block of %d bytes exceeds %d", len(data), MaxBlockSize)
	}
	h := blockstore.Sum(data)
	key := s.Key(h)

	// Puts share the stripe; a conditional delete of a block in the stripe
	// excludes them, so it either ran before this write (and the object is
	// written again) or sees the refreshed LastModified.
	mu := s.lock(h)
	mu.RLock()
	defer mu.RUnlock()

	if s.refresh == RefreshCopy && !s.noCopy.Load() {
		done, err := s.copyInPlace(ctx, key)
		if err != nil {
			return h, fmt.Errorf("s3store: put %s: %w", h, err)
		}
		if done {
			return h, nil
		}
	}

	bp := s.getBuf()
	defer s.bufs.Put(bp)
	obj := s.codec.Encode(data, (*bp)[:0])
	*bp = obj[:0]
	if err := s.acquire(ctx); err != nil {
		return h, err
	}
	defer s.release()
	_, err := s.s3.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(obj),
		ContentLength: aws.Int64(int64(len(obj))),
		ContentType:   aws.String("application/octet-stream"),
	})
	if err != nil {
		return h, fmt.Errorf("s3store: put %s: %w", h, err)
	}
	return h, nil
}

// copyInPlace refreshes the LastModified of an existing object by copying
// it onto itself. It reports false when the caller must PUT the block: the
// object does not exist, or the service refused the copy (a client error
// other than 404, which also turns copying off for this Store).
func (s *Store) copyInPlace(ctx context.Context, key string) (bool, error) {
	if err := s.acquire(ctx); err != nil {
		return false, err
	}
	defer s.release()
	_, err := s.s3.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:            aws.String(s.bucket),
		Key:               aws.String(key),
		CopySource:        aws.String(s.bucket + "/" + key),
		MetadataDirective: types.MetadataDirectiveReplace,
		// S3 refuses a copy onto itself that changes nothing.
		Metadata:    map[string]string{"omi-refreshed": time.Now().UTC().Format(time.RFC3339Nano)},
		ContentType: aws.String("application/octet-stream"),
	})
	if err == nil {
		return true, nil
	}
	if s3x.IsNotFound(err) {
		return false, nil
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 400 && re.HTTPStatusCode() < 500 {
		s.noCopy.Store(true)
		return false, nil
	}
	return false, fmt.Errorf("refresh by copy: %w", err)
}

// Get implements [blockstore.Store.Get].
func (s *Store) Get(ctx context.Context, h blockstore.Hash, dst []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	bp := s.getBuf()
	defer s.bufs.Put(bp)
	obj, err := s.read(ctx, s.Key(h), (*bp)[:0])
	if err != nil {
		if s3x.IsNotFound(err) {
			return nil, fmt.Errorf("s3store: get %s: %w", h, blockstore.ErrNotFound)
		}
		return nil, fmt.Errorf("s3store: get %s: %w", h, err)
	}
	*bp = obj[:0]
	out, err := s.codec.Decode(obj, dst)
	if err != nil {
		return nil, fmt.Errorf("s3store: get %s: %w: %w", h, blockstore.ErrCorrupt, err)
	}
	if blockstore.Sum(out) != h {
		return nil, fmt.Errorf("s3store: get %s: %w: content hash mismatch", h, blockstore.ErrCorrupt)
	}
	return out, nil
}

// read fetches the whole object into buf (growing it if needed). An object
// too large to be a block is corrupt; a body cut short is a transport error,
// not corruption, and is reported as such.
func (s *Store) read(ctx context.Context, key string, buf []byte) ([]byte, error) {
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.release()
	out, err := s.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	if n := aws.ToInt64(out.ContentLength); n > maxObjectSize {
		return nil, fmt.Errorf("%w: object of %d bytes is too large", blockstore.ErrCorrupt, n)
	} else if n > 0 && int64(cap(buf)) < n {
		buf = make([]byte, 0, n)
	}
	b := bytes.NewBuffer(buf[:0])
	if _, err := b.ReadFrom(io.LimitReader(out.Body, maxObjectSize+1)); err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if b.Len() > maxObjectSize {
		return nil, fmt.Errorf("%w: object is larger than %d bytes", blockstore.ErrCorrupt, maxObjectSize)
	}
	if n := out.ContentLength; n != nil && int64(b.Len()) != *n {
		return nil, fmt.Errorf("read body: got %d of %d bytes", b.Len(), *n)
	}
	return b.Bytes(), nil
}

// Has implements [blockstore.Store.Has].
func (s *Store) Has(ctx context.Context, h blockstore.Hash) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	_, err := s.head(ctx, h)
	switch {
	case err == nil:
		return true, nil
	case s3x.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("s3store: has %s: %w", h, err)
	}
}

// head returns the written time of block h.
func (s *Store) head(ctx context.Context, h blockstore.Hash) (time.Time, error) {
	if err := s.acquire(ctx); err != nil {
		return time.Time{}, err
	}
	defer s.release()
	out, err := s.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.Key(h))})
	if err != nil {
		return time.Time{}, err
	}
	return s.writtenTime(out.LastModified), nil
}

// writtenTime turns a LastModified into the written time the store reports:
// the end of its second plus the allowed clock skew (see the package
// documentation). Listings and HEAD responses may differ in precision; both
// map to the same value.
func (s *Store) writtenTime(lm *time.Time) time.Time {
	if lm == nil {
		return time.Time{}
	}
	return lm.Truncate(time.Second).Add(time.Second + s.skew)
}

func (s *Store) deleteObject(ctx context.Context, h blockstore.Hash) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	_, err := s.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.Key(h))})
	if err != nil && !s3x.IsNotFound(err) {
		return err
	}
	return nil
}

// Delete implements [blockstore.Store.Delete].
func (s *Store) Delete(ctx context.Context, h blockstore.Hash) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	mu := s.lock(h)
	mu.Lock()
	defer mu.Unlock()
	if err := s.deleteObject(ctx, h); err != nil {
		return fmt.Errorf("s3store: delete %s: %w", h, err)
	}
	return nil
}

// DeleteIfWrittenBefore implements [blockstore.Store.DeleteIfWrittenBefore].
// See the package documentation for what is atomic and what is not.
func (s *Store) DeleteIfWrittenBefore(ctx context.Context, h blockstore.Hash, t time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	mu := s.lock(h)
	mu.Lock()
	defer mu.Unlock()
	written, err := s.head(ctx, h)
	if s3x.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("s3store: delete %s: %w", h, err)
	}
	if !written.Before(t) {
		return false, nil
	}
	if err := s.deleteObject(ctx, h); err != nil {
		return false, fmt.Errorf("s3store: delete %s: %w", h, err)
	}
	return true, nil
}

// Walk implements [blockstore.Store.Walk] with ListObjectsV2 over the prefix
// (1000 keys a request). Keys that are not blocks of this layout are skipped.
func (s *Store) Walk(ctx context.Context, fn func(h blockstore.Hash, written time.Time) error) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket)}
	if s.prefix != "" {
		in.Prefix = aws.String(s.prefix)
	}
	p := s3.NewListObjectsV2Paginator(s.s3, in)
	for p.HasMorePages() {
		if err := ctx.Err(); err != nil {
			return err
		}
		page, err := s.listPage(ctx, p)
		if err != nil {
			return fmt.Errorf("s3store: walk %s/%s: %w", s.bucket, s.prefix, err)
		}
		for _, o := range page.Contents {
			h, ok := s.parseKey(aws.ToString(o.Key))
			if !ok {
				continue
			}
			if err := fn(h, s.writtenTime(o.LastModified)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) listPage(ctx context.Context, p *s3.ListObjectsV2Paginator) (*s3.ListObjectsV2Output, error) {
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	defer s.release()
	return p.NextPage(ctx)
}

// parseKey is the inverse of Key.
func (s *Store) parseKey(key string) (blockstore.Hash, bool) {
	rest, ok := strings.CutPrefix(key, s.prefix)
	if !ok || len(rest) != 3+2*blockstore.HashSize || rest[2] != '/' || rest[:2] != rest[3:5] {
		return blockstore.Hash{}, false
	}
	h, err := blockstore.ParseHash(rest[3:])
	if err != nil || h.String() != rest[3:] { // lower case only: Key's form
		return blockstore.Hash{}, false
	}
	return h, true
}

// Close releases the compressor and decompressor state. The HTTP client's
// idle connections close on their own timeout.
func (s *Store) Close() error {
	s.codec.Close()
	return nil
}
