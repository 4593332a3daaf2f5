package oos_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/omiproject/omi/oos"
)

const region = "eu-west-2"

// Two accounts, the first with two keys. Key ids and secrets have the
// shapes omi uses (20 and 40 characters).
const (
	acctA, acctB       = "111111111111", "222222222222"
	keyA1, secretA1    = "AKA1AAAAAAAAAAAAAAAA", "secretA1secretA1secretA1secretA1secretA1"
	keyA2, secretA2    = "AKA2AAAAAAAAAAAAAAAA", "secretA2secretA2secretA2secretA2secretA2"
	keyB, secretB      = "AKBBBBBBBBBBBBBBBBBB", "secretBBsecretBBsecretBBsecretBBsecretBB"
	keyGone, secretGon = "AKGONEGONEGONEGONEGO", "secretGNsecretGNsecretGNsecretGNsecretGN"
)

// keyTable is a mutable key store, standing in for omi's accounts service:
// keys can be (de)activated while the server runs.
type keyTable struct {
	mu   sync.Mutex
	keys map[string][2]string // id -> secret, account
}

func (k *keyTable) lookup(_ context.Context, id string) (string, string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.keys[id]
	if !ok {
		return "", "", fmt.Errorf("key %s: %w", id, oos.ErrUnknownKey)
	}
	return v[0], v[1], nil
}

func (k *keyTable) set(id, secret, account string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if secret == "" {
		delete(k.keys, id)
		return
	}
	k.keys[id] = [2]string{secret, account}
}

var (
	srv      *oos.Server
	endpoint string
	keys     = &keyTable{keys: map[string][2]string{}}
	storeDir string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "oos-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	storeDir = dir
	keys.set(keyA1, secretA1, acctA)
	keys.set(keyA2, secretA2, acctA)
	keys.set(keyB, secretB, acctB)
	keys.set(keyGone, secretGon, acctB)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv, err = oos.New(oos.Config{Dir: dir, Region: region, Credentials: keys.lookup})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	endpoint = "http://" + l.Addr().String()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	code := m.Run()
	if got := srv.Endpoint(); got != endpoint {
		fmt.Fprintf(os.Stderr, "Endpoint() = %q, want %q\n", got, endpoint)
		code = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "shutdown:", err)
		return 1
	}
	if err := <-errc; err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		return 1
	}
	return code
}

func client(ak, sk string) *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(endpoint),
		Region:       region,
		UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: ak, SecretAccessKey: sk}, nil
		}),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		RetryMaxAttempts:           1,
	})
}

// status returns the HTTP status and S3 error code of a failed call.
func status(err error) (int, string) {
	var re *awshttp.ResponseError
	var ae smithy.APIError
	code, st := "", 0
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	if errors.As(err, &re) {
		st = re.HTTPStatusCode()
	}
	return st, code
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func mustBucket(t *testing.T, c *s3.Client, name string) {
	t.Helper()
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("CreateBucket %s: %v", name, err)
	}
}

func mustPut(t *testing.T, c *s3.Client, bucket, key string, data []byte) {
	t.Helper()
	_, err := c.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data),
	})
	if err != nil {
		t.Fatalf("PutObject %s/%s: %v", bucket, key, err)
	}
}

func get(c *s3.Client, bucket, key, rng string) ([]byte, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if rng != "" {
		in.Range = aws.String(rng)
	}
	out, err := c.GetObject(context.Background(), in)
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

func TestMultipartRangeList(t *testing.T) {
	ctx := context.Background()
	c := client(keyA1, secretA1)
	mustBucket(t, c, "mp-bucket")

	// Three parts: two of the 5 MiB S3 minimum and a short last one.
	const partSize = 5 << 20
	data := randomBytes(t, 2*partSize+1234)
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String("mp-bucket"), Key: aws.String("dir/disk.qcow2.gz"),
	})
	if err != nil {
		t.Fatal(err)
	}
	var parts []types.CompletedPart
	for i := 0; i*partSize < len(data); i++ {
		chunk := data[i*partSize : min((i+1)*partSize, len(data))]
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: aws.String("mp-bucket"), Key: aws.String("dir/disk.qcow2.gz"),
			UploadId: up.UploadId, PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(chunk),
		})
		if err != nil {
			t.Fatalf("UploadPart %d: %v", i+1, err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1))})
	}
	if len(parts) != 3 {
		t.Fatalf("uploaded %d parts, want 3", len(parts))
	}
	// Parts are on disk while the upload is open, not in memory.
	if n := countFiles(t, storeDir); n < 3 {
		t.Errorf("found %d files under the storage directory during the upload, want the parts on disk", n)
	}
	done, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String("mp-bucket"), Key: aws.String("dir/disk.qcow2.gz"), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(aws.ToString(done.ETag), `-3"`) {
		t.Errorf("multipart ETag %s, want a -3 suffix", aws.ToString(done.ETag))
	}

	got, err := get(c, "mp-bucket", "dir/disk.qcow2.gz", "")
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("downloaded %d bytes that differ from the %d uploaded", len(got), len(data))
	}
	// A range across the first part boundary.
	got, err = get(c, "mp-bucket", "dir/disk.qcow2.gz", fmt.Sprintf("bytes=%d-%d", partSize-10, partSize+9))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data[partSize-10:partSize+10]) {
		t.Fatalf("ranged GET returned %d wrong bytes", len(got))
	}
	// A suffix range.
	got, err = get(c, "mp-bucket", "dir/disk.qcow2.gz", "bytes=-100")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data[len(data)-100:]) {
		t.Fatal("suffix range returned wrong bytes")
	}

	// The account's other key sees the same object (ownership is per account).
	c2 := client(keyA2, secretA2)
	mustPut(t, c2, "mp-bucket", "dir/manifest.json", []byte(`{"Version":1}`))
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("mp-bucket"), Prefix: aws.String("dir/")})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range list.Contents {
		names = append(names, aws.ToString(o.Key))
		if aws.ToString(o.Key) == "dir/disk.qcow2.gz" && aws.ToInt64(o.Size) != int64(len(data)) {
			t.Errorf("listed size %d, want %d", aws.ToInt64(o.Size), len(data))
		}
	}
	if strings.Join(names, ",") != "dir/disk.qcow2.gz,dir/manifest.json" {
		t.Errorf("listed %v", names)
	}
}

func countFiles(t *testing.T, dir string) int {
	n := 0
	err := walk(dir, func(os.FileInfo) { n++ })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func walk(dir string, fn func(os.FileInfo)) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := walk(dir+"/"+e.Name(), fn); err != nil {
				return err
			}
			continue
		}
		fi, err := e.Info()
		if err == nil && fi.Size() > 0 {
			fn(fi)
		}
	}
	return nil
}

func TestOtherAccountDenied(t *testing.T) {
	ctx := context.Background()
	a, b := client(keyA1, secretA1), client(keyB, secretB)
	mustBucket(t, a, "private-a")
	mustPut(t, a, "private-a", "secret.txt", []byte("only for A"))

	checks := map[string]error{}
	_, checks["HeadBucket"] = b.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("private-a")})
	_, checks["ListObjectsV2"] = b.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("private-a")})
	_, checks["GetObject"] = get(b, "private-a", "secret.txt", "")
	_, checks["HeadObject"] = b.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("private-a"), Key: aws.String("secret.txt")})
	_, checks["PutObject"] = b.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("private-a"), Key: aws.String("x"), Body: strings.NewReader("x")})
	_, checks["DeleteObject"] = b.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("private-a"), Key: aws.String("secret.txt")})
	_, checks["DeleteBucket"] = b.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("private-a")})
	_, checks["CreateMultipartUpload"] = b.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("private-a"), Key: aws.String("y")})
	for op, err := range checks {
		if st, code := status(err); st != http.StatusForbidden {
			t.Errorf("%s by another account: status %d code %q (err %v), want 403", op, st, code, err)
		}
	}
	// And A's object is intact.
	if got, err := get(a, "private-a", "secret.txt", ""); err != nil || string(got) != "only for A" {
		t.Fatalf("owner read after the attempts: %q, %v", got, err)
	}
	// B's bucket listing does not show A's buckets.
	out, err := b.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, bk := range out.Buckets {
		if aws.ToString(bk.Name) == "private-a" {
			t.Error("another account's bucket is listed")
		}
	}
	// Bucket names are one namespace: B cannot take A's name either.
	_, err = b.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("private-a")})
	if st, _ := status(err); st != http.StatusConflict && st != http.StatusForbidden {
		t.Errorf("CreateBucket of a taken name: %v", err)
	}
}

func TestBadCredentials(t *testing.T) {
	ctx := context.Background()
	a := client(keyA1, secretA1)
	mustBucket(t, a, "creds-bucket")
	cases := map[string]*s3.Client{
		"unknown key":  client("AKNOSUCHKEYNOSUCHKEY", secretA1),
		"wrong secret": client(keyA1, secretB),
	}
	for name, c := range cases {
		_, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("creds-bucket")})
		if st, code := status(err); st != http.StatusForbidden {
			t.Errorf("%s: status %d %q, want 403", name, st, code)
		}
	}

	// A key deactivated while the server runs stops working at once.
	g := client(keyGone, secretGon)
	if _, err := g.ListBuckets(ctx, &s3.ListBucketsInput{}); err != nil {
		t.Fatalf("active key refused: %v", err)
	}
	keys.set(keyGone, "", "")
	_, err := g.ListBuckets(ctx, &s3.ListBucketsInput{})
	if st, code := status(err); st != http.StatusForbidden || code != "InvalidAccessKeyId" {
		t.Errorf("deactivated key: status %d %q, want 403 InvalidAccessKeyId", st, code)
	}
	keys.set(keyGone, secretGon, acctB) // and works again once reactivated
	if _, err := g.ListBuckets(ctx, &s3.ListBucketsInput{}); err != nil {
		t.Errorf("reactivated key refused: %v", err)
	}

	// Signed for another region.
	other := s3.New(s3.Options{
		BaseEndpoint: aws.String(endpoint), Region: "us-east-2", UsePathStyle: true,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: keyA1, SecretAccessKey: secretA1}, nil
		}),
		RetryMaxAttempts: 1,
	})
	_, err = other.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("creds-bucket")})
	if st, _ := status(err); st < 400 || st > 499 {
		t.Errorf("request signed for another region: %v", err)
	}

	// Anonymous.
	resp, err := http.Get(endpoint + "/creds-bucket/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("anonymous listing: %d, want 403", resp.StatusCode)
	}
}

func TestPresignedGet(t *testing.T) {
	ctx := context.Background()
	a := client(keyA1, secretA1)
	mustBucket(t, a, "presign-bucket")
	data := randomBytes(t, 300_000)
	mustPut(t, a, "presign-bucket", "exports/snap-1.qcow2.gz", data)

	ps := s3.NewPresignClient(a)
	req, err := ps.PresignGetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String("presign-bucket"), Key: aws.String("exports/snap-1.qcow2.gz"),
	}, s3.WithPresignExpires(7*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// Plain net/http, no credentials: the URL is the grant.
	body, st := httpGet(t, req.URL, "")
	if st != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("pre-signed GET: status %d, %d bytes", st, len(body))
	}
	body, st = httpGet(t, req.URL, "bytes=1000-1999")
	if st != http.StatusPartialContent || !bytes.Equal(body, data[1000:2000]) {
		t.Fatalf("pre-signed ranged GET: status %d, %d bytes", st, len(body))
	}

	u, err := url.Parse(req.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	sig := q.Get("X-Amz-Signature")
	flipped := []byte(sig)
	if flipped[5] == 'a' {
		flipped[5] = 'b'
	} else {
		flipped[5] = 'a'
	}
	tampered := map[string]func(url.Values){
		"signature": func(v url.Values) { v.Set("X-Amz-Signature", string(flipped)) },
		"expiry":    func(v url.Values) { v.Set("X-Amz-Expires", "604799") },
		"date":      func(v url.Values) { v.Set("X-Amz-Date", time.Now().UTC().Add(time.Hour).Format("20060102T150405Z")) },
		"no sig":    func(v url.Values) { v.Del("X-Amz-Signature") },
	}
	for name, edit := range tampered {
		v := u.Query()
		edit(v)
		t2 := *u
		t2.RawQuery = v.Encode()
		if _, st := httpGet(t, t2.String(), ""); st != http.StatusForbidden && st != http.StatusBadRequest {
			t.Errorf("pre-signed URL with tampered %s: status %d, want 403", name, st)
		}
	}
	// Another key or object under the same signature.
	other := strings.Replace(req.URL, "snap-1.qcow2.gz", "snap-2.qcow2.gz", 1)
	if _, st := httpGet(t, other, ""); st != http.StatusForbidden {
		t.Errorf("pre-signed URL moved to another object: status %d, want 403", st)
	}

	// Expired: signed an hour ago, valid for a minute.
	expired := presignAt(t, endpoint+"/presign-bucket/exports/snap-1.qcow2.gz", keyA1, secretA1,
		time.Now().Add(-time.Hour), 60)
	if _, st := httpGet(t, expired, ""); st != http.StatusForbidden {
		t.Errorf("expired pre-signed URL: status %d, want 403", st)
	}
	// The same hand-made signer, fresh: proves the expired case failed for
	// its age and not for a signing mistake.
	fresh := presignAt(t, endpoint+"/presign-bucket/exports/snap-1.qcow2.gz", keyA1, secretA1, time.Now(), 60)
	if body, st := httpGet(t, fresh, ""); st != http.StatusOK || !bytes.Equal(body, data) {
		t.Errorf("fresh hand-signed URL: status %d", st)
	}
	// Longer than the 7-day SigV4 maximum.
	long := presignAt(t, endpoint+"/presign-bucket/exports/snap-1.qcow2.gz", keyA1, secretA1, time.Now(), 8*24*3600)
	if _, st := httpGet(t, long, ""); st < 400 || st > 499 {
		t.Errorf("8-day pre-signed URL: status %d, want 4xx", st)
	}
	// A URL signed by a deactivated key stops working.
	keys.set(keyA2, "", "")
	byA2 := presignAt(t, endpoint+"/presign-bucket/exports/snap-1.qcow2.gz", keyA2, secretA2, time.Now(), 60)
	_, st = httpGet(t, byA2, "")
	keys.set(keyA2, secretA2, acctA)
	if st != http.StatusForbidden {
		t.Errorf("pre-signed URL of a deactivated key: status %d, want 403", st)
	}
	// Another account's pre-signed URL for A's object grants nothing.
	byB := presignAt(t, endpoint+"/presign-bucket/exports/snap-1.qcow2.gz", keyB, secretB, time.Now(), 60)
	if _, st := httpGet(t, byB, ""); st != http.StatusForbidden {
		t.Errorf("pre-signed URL by another account: status %d, want 403", st)
	}
}

// presignAt signs a GET URL as of signedAt, valid for expires seconds.
func presignAt(t *testing.T, rawURL, ak, sk string, signedAt time.Time, expires int) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	q := req.URL.Query()
	q.Set("X-Amz-Expires", fmt.Sprint(expires))
	req.URL.RawQuery = q.Encode()
	signed, _, err := v4.NewSigner().PresignHTTP(context.Background(),
		aws.Credentials{AccessKeyID: ak, SecretAccessKey: sk}, req, "UNSIGNED-PAYLOAD", "s3", region, signedAt.UTC())
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func httpGet(t *testing.T, u, rng string) ([]byte, int) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b, resp.StatusCode
}

func TestSecondInstanceRefused(t *testing.T) {
	_, err := oos.New(oos.Config{Dir: t.TempDir(), Region: region, Credentials: keys.lookup})
	if err == nil {
		t.Fatal("a second server in the same process was accepted")
	}
}

func TestConfigRequired(t *testing.T) {
	if _, err := oos.New(oos.Config{Region: region, Credentials: keys.lookup}); err == nil {
		t.Error("missing Dir accepted")
	}
	if _, err := oos.New(oos.Config{Dir: t.TempDir(), Region: region}); err == nil {
		t.Error("missing Credentials accepted")
	}
}

// TestRestart shuts the package's server down and brings a new one up on the
// same directory: objects survive, the working directory is restored, a
// server that never served shuts down cleanly, and Start works.
func TestRestart(t *testing.T) {
	a := client(keyA1, secretA1)
	mustBucket(t, a, "restart")
	mustPut(t, a, "restart", "kept", []byte("still here"))

	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	// A connection that never sends a request (an HTTP client's spare dial)
	// does not hold Shutdown past its context.
	spare, err := net.Dial("tcp", strings.TrimPrefix(endpoint, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer spare.Close()
	start := time.Now()
	if err := shutdownSoon(srv); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Shutdown took %v with an idle connection open", d)
	}
	spare.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := spare.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("spare connection still open after Shutdown: %v", err)
	}
	if !strings.HasPrefix(wd, storeDir) {
		t.Errorf("working directory %s while serving, want the bucket root (versitygw's posix backend)", wd)
	}
	if got, _ := os.Getwd(); strings.HasPrefix(got, storeDir) {
		t.Errorf("working directory still inside the store after Shutdown: %s", got)
	}

	idle, err := oos.New(oos.Config{Dir: storeDir, Region: region, Credentials: keys.lookup})
	if err != nil {
		t.Fatal(err)
	}
	if err := shutdownSoon(idle); err != nil {
		t.Fatalf("shutdown of a server that never served: %v", err)
	}

	errc := make(chan error, 1)
	srv, err = oos.Start(oos.Config{Dir: storeDir, Region: region, Credentials: keys.lookup}, "127.0.0.1:0", errc)
	if err != nil {
		t.Fatal(err)
	}
	endpoint = srv.Endpoint()
	if !strings.HasPrefix(endpoint, "http://127.0.0.1:") {
		t.Fatalf("Endpoint() = %q", endpoint)
	}
	got, err := get(client(keyA1, secretA1), "restart", "kept", "")
	if err != nil || string(got) != "still here" {
		t.Fatalf("object after restart: %q, %v", got, err)
	}
	select {
	case err := <-errc:
		t.Fatalf("serve: %v", err)
	default:
	}
}

// TestKeysStayInsideTheStore: object keys that look like paths cannot
// reach outside their bucket's directory.
func TestKeysStayInsideTheStore(t *testing.T) {
	a := client(keyA1, secretA1)
	mustBucket(t, a, "paths")
	mustBucket(t, a, "paths-victim")
	mustPut(t, a, "paths-victim", "target", []byte("original"))
	for _, key := range []string{"../paths-victim/target", "a/../../paths-victim/target", "../../../escaped", "/abs", "a//b"} {
		_, err := a.PutObject(context.Background(), &s3.PutObjectInput{
			Bucket: aws.String("paths"), Key: aws.String(key), Body: strings.NewReader("overwritten"),
		})
		st, _ := status(err)
		if strings.Contains(key, "..") && (st < 400 || st > 499) {
			t.Errorf("PUT %q: %v, want a 4xx refusal", key, err)
		}
	}
	if got, err := get(a, "paths-victim", "target", ""); err != nil || string(got) != "original" {
		t.Errorf("object in another bucket after path-like keys: %q, %v", got, err)
	}
	parent := storeDir + "/.."
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "escaped" {
			t.Errorf("a key escaped the store: %s/escaped", parent)
		}
	}
	if _, err := os.Stat(storeDir + "/escaped"); err == nil {
		t.Error("a key escaped the bucket root")
	}
}

// shutdownSoon shuts s down, cutting connections left after 2 s (a spare
// connection of a client's pool never sends a request).
func shutdownSoon(s *oos.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}

// restartOn replaces the package's server with one storing in dir.
func restartOn(t *testing.T, dir string) {
	t.Helper()
	if err := shutdownSoon(srv); err != nil {
		t.Fatal(err)
	}
	var err error
	srv, err = oos.Start(oos.Config{Dir: dir, Region: region, Credentials: keys.lookup}, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	endpoint = srv.Endpoint()
}

// TestSidecarMetadata runs on a store whose metadata lives in files beside
// the buckets (the mode for filesystems without user xattrs, kept once
// chosen): ETags, content types and ownership survive a restart.
func TestSidecarMetadata(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(dir+"/meta", 0o750); err != nil {
		t.Fatal(err)
	}
	restartOn(t, dir)
	defer restartOn(t, storeDir)

	ctx := context.Background()
	a, b := client(keyA1, secretA1), client(keyB, secretB)
	mustBucket(t, a, "sidecar")
	put, err := a.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("sidecar"), Key: aws.String("m.json"),
		Body: strings.NewReader(`{"Version":1}`), ContentType: aws.String("application/json"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := countFiles(t, dir+"/meta"); n == 0 {
		t.Fatal("no metadata files in the sidecar directory")
	}
	restartOn(t, dir)
	a, b = client(keyA1, secretA1), client(keyB, secretB) // new port
	head, err := a.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("sidecar"), Key: aws.String("m.json")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(head.ETag) != aws.ToString(put.ETag) || aws.ToString(head.ContentType) != "application/json" {
		t.Errorf("after restart: ETag %s content type %s; want %s application/json",
			aws.ToString(head.ETag), aws.ToString(head.ContentType), aws.ToString(put.ETag))
	}
	if _, err := get(b, "sidecar", "m.json", ""); err == nil {
		t.Error("another account read the object after restart")
	}
}
