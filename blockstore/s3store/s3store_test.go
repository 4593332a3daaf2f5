package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/blockstore/blockcodec"
	"github.com/omiproject/omi/blockstore/blocktest"
	"github.com/omiproject/omi/oos"
	"github.com/omiproject/omi/s3x"
)

const (
	region              = "eu-west-2"
	testKey, testSecret = "AKSTORESTORESTORESTO", "secretSTsecretSTsecretSTsecretSTsecretST"
	testBucket          = "blocks"
)

// endpoint is the built-in S3 endpoint the whole package runs against: only
// one oos server may exist per process, so TestMain starts it once and each
// store gets its own prefix.
var endpoint string

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "s3store-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	srv, err := oos.Start(oos.Config{Dir: dir, Region: region,
		Credentials: func(_ context.Context, id string) (string, string, error) {
			if id != testKey {
				return "", "", oos.ErrUnknownKey
			}
			return testSecret, "111111111111", nil
		}}, "127.0.0.1:0", nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	endpoint = srv.Endpoint()
	code := 1
	if err := client().CreateBucket(context.Background(), testBucket); err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	// Short: a spare pooled connection would otherwise be waited for.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return code
}

func client() *s3x.Client { return s3x.NewClient(endpoint, region, testKey, testSecret) }

var prefixes atomic.Int64

// openT opens a store on a fresh prefix, so it starts empty.
func openT(t testing.TB, o Options) *Store {
	t.Helper()
	o.Endpoint, o.Region, o.AccessKey, o.SecretKey = endpoint, region, testKey, testSecret
	o.Bucket = testBucket
	if o.Prefix == "" {
		o.Prefix = fmt.Sprintf("t/%d", prefixes.Add(1))
	}
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// corruptible lets the conformance suite damage objects behind the store.
type corruptible struct{ *Store }

// Corrupt flips one byte in the middle of the stored object of h.
func (c corruptible) Corrupt(t *testing.T, h blockstore.Hash) {
	t.Helper()
	obj := getObject(t, c.Store, h)
	obj[blockcodec.HeaderSize+(len(obj)-blockcodec.HeaderSize)/2] ^= 0x40
	putObject(t, c.Store, h, obj)
}

func getObject(t *testing.T, s *Store, h blockstore.Hash) []byte {
	t.Helper()
	out, err := s.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.Key(h))})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(out.Body); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func putObject(t *testing.T, s *Store, h blockstore.Hash, obj []byte) {
	t.Helper()
	_, err := client().S3().PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(s.Key(h)), Body: bytes.NewReader(obj)})
	if err != nil {
		t.Fatal(err)
	}
}

func TestConformance(t *testing.T) {
	blocktest.Run(t, func(t *testing.T) blockstore.Store { return corruptible{openT(t, Options{})} })
}

func TestLayoutAndFormat(t *testing.T) {
	ctx := context.Background()
	s := openT(t, Options{Prefix: "/layout/x/"})
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog\n"), 12000)[:blockstore.BlockSize]
	h, err := s.Put(ctx, text)
	if err != nil {
		t.Fatal(err)
	}
	name := h.String()
	if want := "layout/x/" + name[:2] + "/" + name; s.Key(h) != want {
		t.Fatalf("Key = %s, want %s", s.Key(h), want)
	}
	obj := getObject(t, s, h)
	if string(obj[:4]) != "OMIB" || obj[4] != 1 || obj[5] != 1 {
		t.Fatalf("bad header % x", obj[:blockcodec.HeaderSize])
	}
	if len(obj) > len(text)/4 {
		t.Fatalf("%d bytes stored for %d of repetitive text", len(obj), len(text))
	}
}

// Garbage written over an object (not a block at all, a truncated one, one
// of an unknown version) reads as ErrCorrupt and never as data.
func TestGarbageIsCorrupt(t *testing.T) {
	ctx := context.Background()
	s := openT(t, Options{})
	data := blocktest.Data(blocktest.KindMixed, 1, blockstore.BlockSize)
	h, err := s.Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	good := getObject(t, s, h)
	version := bytes.Clone(good)
	version[4] = 9
	for name, obj := range map[string][]byte{
		"garbage":   []byte("this is not a block"),
		"empty":     {},
		"truncated": good[:len(good)/2],
		"version":   version,
		"other":     getObjectOf(t, s, blocktest.Data(blocktest.KindText, 2, 1000)),
	} {
		putObject(t, s, h, obj)
		got, err := s.Get(ctx, h, nil)
		if !errors.Is(err, blockstore.ErrCorrupt) || got != nil {
			t.Fatalf("%s: Get = %d bytes, %v; want ErrCorrupt", name, len(got), err)
		}
	}
	// Putting the block again repairs it.
	if _, err := s.Put(ctx, data); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, h, nil); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after repair: %v", err)
	}
}

// getObjectOf returns the stored object of another block (valid format, wrong
// content for h).
func getObjectOf(t *testing.T, s *Store, data []byte) []byte {
	h, err := s.Put(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	return getObject(t, s, h)
}

// Re-Put moves LastModified, and a sweep whose cutoff lies between the two
// Puts keeps the block. LastModified has one-second precision on the
// built-in endpoint as on AWS, hence the wait of more than a second.
func TestRePutRefreshesLastModified(t *testing.T) {
	ctx := context.Background()
	s := openT(t, Options{})
	data := blocktest.Data(blocktest.KindText, 3, 4096)
	h, err := s.Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	lm1 := lastModified(t, s, h)
	time.Sleep(1100 * time.Millisecond)
	between := time.Now()
	time.Sleep(1100 * time.Millisecond)
	if _, err := s.Put(ctx, data); err != nil {
		t.Fatal(err)
	}
	lm2 := lastModified(t, s, h)
	if !lm2.After(lm1) {
		t.Fatalf("LastModified did not advance: %v then %v", lm1, lm2)
	}
	if del, err := s.DeleteIfWrittenBefore(ctx, h, between); err != nil || del {
		t.Fatalf("DeleteIfWrittenBefore(between the Puts) = %v, %v; want kept", del, err)
	}
	if del, err := s.DeleteIfWrittenBefore(ctx, h, time.Now().Add(2*time.Second)); err != nil || !del {
		t.Fatalf("DeleteIfWrittenBefore(after) = %v, %v; want deleted", del, err)
	}
}

func lastModified(t *testing.T, s *Store, h blockstore.Hash) time.Time {
	t.Helper()
	out, err := client().S3().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.Key(h))})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToTime(out.LastModified)
}

// The written time is never earlier than the real write: it is the end of
// LastModified's second.
func TestWrittenTimeIsNotEarly(t *testing.T) {
	ctx := context.Background()
	s := openT(t, Options{})
	before := time.Now()
	h, err := s.Put(ctx, []byte("written time"))
	if err != nil {
		t.Fatal(err)
	}
	var w time.Time
	if err := s.Walk(ctx, func(got blockstore.Hash, written time.Time) error {
		if got == h {
			w = written
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Same clock here (the endpoint runs in this process).
	if w.Before(before) {
		t.Fatalf("written time %v is before the Put started (%v)", w, before)
	}
	if del, err := s.DeleteIfWrittenBefore(ctx, h, before); err != nil || del {
		t.Fatalf("DeleteIfWrittenBefore(start of Put) = %v, %v; want kept", del, err)
	}
}

// RefreshCopy on the built-in endpoint: it refuses in-place copies, so the
// store falls back to rewriting, stops trying to copy, and re-Put still
// moves LastModified. If the refusal ever goes away, this test says so
// (RefreshCopy's documentation and the benchmarks should then be revisited).
func TestRefreshCopyFallsBackToRewrite(t *testing.T) {
	ctx := context.Background()
	s := openT(t, Options{Refresh: RefreshCopy})
	data := blocktest.Data(blocktest.KindText, 4, 4096)
	h, err := s.Put(ctx, data) // not stored: the copy fails with 404, then a PUT
	if err != nil {
		t.Fatal(err)
	}
	if s.noCopy.Load() {
		t.Fatal("a missing object turned copying off")
	}
	lm1 := lastModified(t, s, h)
	time.Sleep(1100 * time.Millisecond)
	if _, err := s.Put(ctx, data); err != nil {
		t.Fatal(err)
	}
	if !s.noCopy.Load() {
		t.Fatal("the built-in endpoint accepted an in-place copy: revisit RefreshCopy's documentation")
	}
	if got, err := s.Get(ctx, h, nil); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get after refresh: %v", err)
	}
	if lm2 := lastModified(t, s, h); !lm2.After(lm1) {
		t.Fatalf("re-Put did not move LastModified (%v -> %v)", lm1, lm2)
	}
}

// ClockSkew makes blocks look younger by that much, in Walk and in the
// conditional delete alike.
func TestClockSkew(t *testing.T) {
	ctx := context.Background()
	s := openT(t, Options{ClockSkew: time.Minute})
	h, err := s.Put(ctx, []byte("skewed"))
	if err != nil {
		t.Fatal(err)
	}
	lm := lastModified(t, s, h)
	var w time.Time
	if err := s.Walk(ctx, func(_ blockstore.Hash, written time.Time) error { w = written; return nil }); err != nil {
		t.Fatal(err)
	}
	if want := lm.Truncate(time.Second).Add(time.Minute + time.Second); !w.Equal(want) {
		t.Fatalf("written time %v, want %v (LastModified %v + 1 s + skew)", w, want, lm)
	}
	if del, err := s.DeleteIfWrittenBefore(ctx, h, time.Now().Add(30*time.Second)); err != nil || del {
		t.Fatalf("DeleteIfWrittenBefore(now+30s) = %v, %v; want kept", del, err)
	}
	if del, err := s.DeleteIfWrittenBefore(ctx, h, w.Add(time.Nanosecond)); err != nil || !del {
		t.Fatalf("DeleteIfWrittenBefore(written+1ns) = %v, %v; want deleted", del, err)
	}
}

// Walk ignores keys that are not blocks of this layout and blocks of other
// prefixes.
func TestWalkSkipsForeignKeys(t *testing.T) {
	ctx := context.Background()
	s := openT(t, Options{Prefix: "walk/a"})
	other := openT(t, Options{Prefix: "walk/ab"})
	h, err := s.Put(ctx, []byte("mine"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Put(ctx, []byte("theirs")); err != nil {
		t.Fatal(err)
	}
	name := h.String()
	for _, key := range []string{
		"walk/a/README",
		"walk/a/" + name,                       // no shard level
		"walk/a/00/" + name,                    // wrong shard
		"walk/a/" + name[:2] + "/" + name[:63], // short
		"walk/a/" + name[:2] + "/" + bytesUpper(name),
	} {
		_, err := client().S3().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key), Body: bytes.NewReader([]byte("x"))})
		if err != nil {
			t.Fatal(err)
		}
	}
	var got []blockstore.Hash
	if err := s.Walk(ctx, func(h blockstore.Hash, _ time.Time) error { got = append(got, h); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != h {
		t.Fatalf("Walk = %v, want only %s", got, h)
	}
}

func bytesUpper(s string) string { return string(bytes.ToUpper([]byte(s))) }

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	for name, o := range map[string]Options{
		"no bucket":      {Endpoint: endpoint, Region: region, AccessKey: testKey, SecretKey: testSecret},
		"missing bucket": {Endpoint: endpoint, Region: region, AccessKey: testKey, SecretKey: testSecret, Bucket: "nope"},
		"bad key":        {Endpoint: endpoint, Region: region, AccessKey: "AKNOPENOPENOPENOPENO", SecretKey: testSecret, Bucket: testBucket},
		"bad prefix":     {Endpoint: endpoint, Region: region, AccessKey: testKey, SecretKey: testSecret, Bucket: testBucket, Prefix: "a b"},
		"no region":      {Endpoint: endpoint, AccessKey: testKey, SecretKey: testSecret, Bucket: testBucket},
		"negative skew":  {Endpoint: endpoint, Region: region, AccessKey: testKey, SecretKey: testSecret, Bucket: testBucket, ClockSkew: -time.Second},
		"bad refresh":    {Endpoint: endpoint, Region: region, AccessKey: testKey, SecretKey: testSecret, Bucket: testBucket, Refresh: 7},
	} {
		if s, err := Open(ctx, o); err == nil {
			s.Close()
			t.Errorf("%s: Open succeeded", name)
		}
	}
	// An unreachable endpoint fails at Open, not at first use.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if s, err := Open(ctx, Options{Endpoint: dead, Region: region, Bucket: testBucket}); err == nil {
		s.Close()
		t.Error("Open of an unreachable endpoint succeeded")
	}
}

func TestOversizedPut(t *testing.T) {
	s := openT(t, Options{})
	if _, err := s.Put(context.Background(), make([]byte, MaxBlockSize+1)); err == nil {
		t.Fatal("oversized Put accepted")
	}
}

// A re-Put racing the sweep's conditional delete of the same block must
// leave the block stored, whichever runs first: the per-hash lock keeps the
// delete's HEAD and DELETE together. Without it, HEAD (old time), PUT,
// DELETE loses a block whose Put succeeded.
func TestRePutRacesConditionalDelete(t *testing.T) {
	ctx := context.Background()
	s := openT(t, Options{})
	const n = 64
	blocks := make([][]byte, n)
	for i := range blocks {
		blocks[i] = blocktest.Data(blocktest.KindText, uint64(100+i), 20000)
		if _, err := s.Put(ctx, blocks[i]); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1100 * time.Millisecond) // the first writes are now older than cutoff
	cutoff := time.Now()
	errs := make(chan error, 2*n)
	for _, d := range blocks {
		h := blockstore.Sum(d)
		go func() {
			_, err := s.DeleteIfWrittenBefore(ctx, h, cutoff)
			errs <- err
		}()
		go func() {
			_, err := s.Put(ctx, d)
			errs <- err
		}()
	}
	for range 2 * n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	lost := 0
	for _, d := range blocks {
		if ok, err := s.Has(ctx, blockstore.Sum(d)); err != nil {
			t.Fatal(err)
		} else if !ok {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d blocks lost although their re-Put succeeded", lost, n)
	}
}
