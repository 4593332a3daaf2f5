package s3x_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/omiproject/omi/oos"
	"github.com/omiproject/omi/s3x"
)

const region = "eu-west-2"

const (
	keyA, secretA = "AKAAAAAAAAAAAAAAAAAA", "secretAAsecretAAsecretAAsecretAAsecretAA"
	keyB, secretB = "AKBBBBBBBBBBBBBBBBBB", "secretBBsecretBBsecretBBsecretBBsecretBB"
)

var endpoint string

// TestMain runs the built-in endpoint for the whole package: it is the real
// S3 server these helpers are meant for.
func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "s3x-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	creds := map[string][2]string{keyA: {secretA, "111111111111"}, keyB: {secretB, "222222222222"}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv, err := oos.New(oos.Config{Dir: dir, Region: region,
		Credentials: func(_ context.Context, id string) (string, string, error) {
			v, ok := creds[id]
			if !ok {
				return "", "", oos.ErrUnknownKey
			}
			return v[0], v[1], nil
		}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	endpoint = "http://" + l.Addr().String()
	go srv.Serve(l)
	code := m.Run()
	// Short: a spare connection of the client's pool would otherwise be
	// waited for (Shutdown closes it when ctx ends).
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return code
}

func clientA() *s3x.Client { return s3x.NewClient(endpoint, region, keyA, secretA) }

func bucket(t testing.TB, c *s3x.Client, name string) {
	t.Helper()
	if err := c.CreateBucket(context.Background(), name); err != nil {
		t.Fatal(err)
	}
}

// stream is a non-seekable source of n pseudo-random bytes, fed through a
// pipe in odd-sized writes the way a compressor would.
func stream(seed uint64, n int64) (io.Reader, func() [32]byte) {
	pr, pw := io.Pipe()
	h := sha256.New()
	done := make(chan struct{})
	go func() {
		defer close(done)
		rng := rand.New(rand.NewPCG(seed, seed))
		buf := make([]byte, 100_003)
		for left := n; left > 0; {
			k := min(int64(len(buf)), left)
			for i := range buf[:k] {
				buf[i] = byte(rng.Uint32())
			}
			h.Write(buf[:k])
			if _, err := pw.Write(buf[:k]); err != nil {
				return
			}
			left -= k
		}
		pw.Close()
	}()
	return pr, func() [32]byte {
		<-done
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		return sum
	}
}

func download(t testing.TB, c *s3x.Client, bucket, key string) ([32]byte, int64) {
	t.Helper()
	body, size, err := c.Open(context.Background(), bucket, key)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	h := sha256.New()
	n, err := io.Copy(h, body)
	if err != nil {
		t.Fatal(err)
	}
	if n != size {
		t.Fatalf("read %d bytes, Content-Length said %d", n, size)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum, n
}

func TestUploadStream50MiB(t *testing.T) {
	c := clientA()
	bucket(t, c, "upload")
	const size = 50 << 20
	r, sum := stream(1, size)
	etag, err := c.Upload(context.Background(), "upload", "exp/snap-1.qcow2.gz", r, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 16 MiB parts: 16+16+16+2.
	if !strings.HasSuffix(etag, `-4"`) {
		t.Errorf("ETag %s: want a 4-part multipart upload", etag)
	}
	got, n := download(t, c, "upload", "exp/snap-1.qcow2.gz")
	if n != size || got != sum() {
		t.Fatalf("downloaded %d bytes with another digest", n)
	}
}

func TestUploadSizes(t *testing.T) {
	c := clientA()
	bucket(t, c, "sizes")
	opts := &s3x.UploadOptions{PartSize: 5 << 20, Concurrency: 2}
	for _, size := range []int64{0, 1, 5<<20 - 1, 5 << 20, 5<<20 + 1, 15 << 20} {
		key := fmt.Sprintf("obj-%d", size)
		r, sum := stream(uint64(size), size)
		etag, err := c.Upload(context.Background(), "sizes", key, r, opts)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		multipart := strings.Contains(etag, "-")
		if multipart != (size >= 5<<20) {
			t.Errorf("size %d: ETag %s (multipart=%v)", size, etag, multipart)
		}
		got, n := download(t, c, "sizes", key)
		if n != size || got != sum() {
			t.Errorf("size %d: downloaded %d bytes with another digest", size, n)
		}
	}
	if _, err := c.Upload(context.Background(), "sizes", "x", strings.NewReader("x"), &s3x.UploadOptions{PartSize: 1 << 20}); err == nil {
		t.Error("a part size below 5 MiB was accepted")
	}
}

// failingReader yields n bytes, then an error.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("compressor died")
	}
	k := min(len(p), f.n)
	clear(p[:k])
	f.n -= k
	return k, nil
}

func TestUploadFailureAborts(t *testing.T) {
	c := clientA()
	bucket(t, c, "aborts")
	ctx := context.Background()
	opts := &s3x.UploadOptions{PartSize: 5 << 20}

	_, err := c.Upload(ctx, "aborts", "broken", &failingReader{n: 12 << 20}, opts)
	if err == nil || !strings.Contains(err.Error(), "compressor died") {
		t.Fatalf("upload from a failing reader: %v", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	r, _ := stream(7, 40<<20)
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, err := c.Upload(cctx, "aborts", "cancelled", r, opts); err == nil {
		t.Fatal("cancelled upload succeeded")
	}

	ups, err := c.S3().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("aborts")})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("%d multipart uploads left open after failures", len(ups.Uploads))
	}
	list, err := c.S3().ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("aborts")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 0 {
		t.Errorf("failed uploads left %d objects", len(list.Contents))
	}
}

func TestPresign(t *testing.T) {
	c := clientA()
	bucket(t, c, "presign")
	ctx := context.Background()
	if _, err := c.Upload(ctx, "presign", "m/manifest.json", strings.NewReader(`{"Version":1}`), nil); err != nil {
		t.Fatal(err)
	}
	u, err := c.Presign(ctx, "presign", "m/manifest.json", s3x.MaxPresignTTL)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(u, "X-Amz-Expires=604800") || !strings.HasPrefix(u, endpoint+"/presign/m/manifest.json?") {
		t.Errorf("URL %s: want path-style on the endpoint, valid 7 days", u)
	}
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != `{"Version":1}` {
		t.Fatalf("GET pre-signed URL: %d %q", resp.StatusCode, body)
	}
	// The same URL with its path changed is refused.
	resp, err = http.Get(strings.Replace(u, "manifest.json", "manifest.jso", 1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("altered pre-signed URL: %d, want 403", resp.StatusCode)
	}
	for _, ttl := range []time.Duration{0, s3x.MaxPresignTTL + time.Second} {
		if _, err := c.Presign(ctx, "presign", "m/manifest.json", ttl); err == nil {
			t.Errorf("validity %v accepted", ttl)
		}
	}
}

func TestDeletePrefix(t *testing.T) {
	c := clientA()
	bucket(t, c, "cleanup")
	ctx := context.Background()
	for _, k := range []string{"exp/img-1/a.gz", "exp/img-1/b.gz", "exp/img-1/sub/c", "exp/img-10/keep", "other/keep"} {
		if _, err := c.Upload(ctx, "cleanup", k, strings.NewReader(k), nil); err != nil {
			t.Fatal(err)
		}
	}
	// An export interrupted mid-upload leaves an open multipart upload.
	if _, err := c.S3().CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String("cleanup"), Key: aws.String("exp/img-1/d.gz"),
	}); err != nil {
		t.Fatal(err)
	}
	n, err := c.Delete(ctx, "cleanup", "exp/img-1/")
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("removed %d objects, want 3", n)
	}
	list, err := c.S3().ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("cleanup")})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, o := range list.Contents {
		left = append(left, aws.ToString(o.Key))
	}
	if strings.Join(left, ",") != "exp/img-10/keep,other/keep" {
		t.Errorf("left %v", left)
	}
	ups, err := c.S3().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("cleanup")})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("%d open uploads left under the prefix", len(ups.Uploads))
	}
	if _, err := c.Delete(ctx, "cleanup", ""); err == nil {
		t.Error("an empty prefix was accepted")
	}
	// Nothing left to delete is not an error.
	if n, err := c.Delete(ctx, "cleanup", "exp/img-1/"); err != nil || n != 0 {
		t.Errorf("second delete: %d, %v", n, err)
	}
}

func TestHeadBucketErrors(t *testing.T) {
	a, b := clientA(), s3x.NewClient(endpoint, region, keyB, secretB)
	bucket(t, a, "heads")
	ctx := context.Background()
	if err := a.HeadBucket(ctx, "heads"); err != nil {
		t.Fatalf("own bucket: %v", err)
	}
	if err := a.HeadBucket(ctx, "no-such-bucket"); !s3x.IsNotFound(err) {
		t.Errorf("missing bucket: %v, want IsNotFound", err)
	}
	if err := b.HeadBucket(ctx, "heads"); !s3x.IsAccessDenied(err) || s3x.IsNotFound(err) {
		t.Errorf("another account's bucket: %v, want IsAccessDenied", err)
	}
	bad := s3x.NewClient(endpoint, region, keyA, secretB)
	if err := bad.HeadBucket(ctx, "heads"); !s3x.IsAccessDenied(err) {
		t.Errorf("wrong secret: %v, want IsAccessDenied", err)
	}
	// CreateBucket of one's own existing bucket is fine; of another's is not.
	if err := a.CreateBucket(ctx, "heads"); err != nil {
		t.Errorf("re-create own bucket: %v", err)
	}
	if err := b.CreateBucket(ctx, "heads"); err == nil {
		t.Error("another account re-created the bucket")
	}
	if _, err := b.Upload(ctx, "heads", "x", bytes.NewReader([]byte("x")), nil); !s3x.IsAccessDenied(err) {
		t.Errorf("upload into another account's bucket: %v", err)
	}
}

// TestBodyProtected: uploads skip the payload's SHA-256 only where TLS or
// loopback protects the body.
func TestBodyProtected(t *testing.T) {
	for endpoint, want := range map[string]bool{
		"":                          true, // AWS: https
		"https://oos.example.com":   true,
		"http://127.0.0.1:3001":     true,
		"http://[::1]:3001":         true,
		"http://localhost:3001":     true,
		"http://10.0.0.5:3001":      false,
		"http://oos.example.com":    false,
		"http://127.0.0.1.nip.io:1": false,
	} {
		if got := s3x.BodyProtectedForTest(endpoint); got != want {
			t.Errorf("%q: %v, want %v", endpoint, got, want)
		}
	}
}
