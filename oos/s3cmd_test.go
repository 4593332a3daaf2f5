package oos_test

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// needTool skips without the tool, but fails under CI, which must have it.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (Debian package s3cmd)", name)
		}
		t.Skipf("%s is not installed (apt-get install -y s3cmd)", name)
	}
	return p
}

// s3cmdConfig writes a configuration for one key: path-style on the test
// endpoint, plain http, SigV4 in our region.
func s3cmdConfig(t *testing.T, ak, sk string, sigV2 bool) string {
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`[default]
access_key = %s
secret_key = %s
host_base = %s
host_bucket = %s
use_https = False
bucket_location = %s
signature_v2 = %v
multipart_chunk_size_mb = 5
check_ssl_certificate = False
`, ak, sk, u.Host, u.Host, region, map[bool]string{true: "True", false: "False"}[sigV2])
	p := filepath.Join(t.TempDir(), "s3cfg")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runS3cmd(t *testing.T, bin, cfg string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-c", cfg, "--no-progress"}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestS3cmd drives the endpoint with a client written by others: s3cmd from
// Debian, with its own SigV4 signer and multipart code.
func TestS3cmd(t *testing.T) {
	bin := needTool(t, "s3cmd")
	cfgA := s3cmdConfig(t, keyA1, secretA1, false)
	cfgB := s3cmdConfig(t, keyB, secretB, false)
	dir := t.TempDir()
	src := filepath.Join(dir, "disk.raw")
	data := randomBytes(t, 12<<20+333) // 3 parts of 5 MiB
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}

	mustRun := func(cfg string, args ...string) string {
		t.Helper()
		start := time.Now()
		out, err := runS3cmd(t, bin, cfg, args...)
		t.Logf("s3cmd %s: %v", args[0], time.Since(start))
		if err != nil {
			t.Fatalf("s3cmd %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	mustRun(cfgA, "mb", "s3://s3cmd-bucket")
	mustRun(cfgA, "put", src, "s3://s3cmd-bucket/images/disk.raw")
	head, err := client(keyA1, secretA1).HeadObject(context.Background(), &s3.HeadObjectInput{
		Bucket: aws.String("s3cmd-bucket"), Key: aws.String("images/disk.raw"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if etag := aws.ToString(head.ETag); !strings.HasSuffix(etag, `-3"`) {
		t.Errorf("s3cmd put made ETag %s, want a 3-part multipart upload", etag)
	}
	out := mustRun(cfgA, "ls", "s3://s3cmd-bucket/images/")
	if !strings.Contains(out, "s3://s3cmd-bucket/images/disk.raw") || !strings.Contains(out, fmt.Sprint(len(data))) {
		t.Errorf("s3cmd ls:\n%s", out)
	}
	dst := filepath.Join(dir, "back.raw")
	mustRun(cfgA, "get", "s3://s3cmd-bucket/images/disk.raw", dst)
	got, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("s3cmd get returned %d bytes that differ from the %d put", len(got), len(data))
	}

	// Another account: refused on the bucket and its object.
	for _, args := range [][]string{
		{"ls", "s3://s3cmd-bucket/"},
		{"get", "s3://s3cmd-bucket/images/disk.raw", filepath.Join(dir, "stolen")},
		{"del", "s3://s3cmd-bucket/images/disk.raw"},
	} {
		start := time.Now()
		out, err := runS3cmd(t, bin, cfgB, args...)
		t.Logf("s3cmd %s by another account: %v", args[0], time.Since(start))
		if err == nil {
			t.Errorf("another account's s3cmd %s succeeded:\n%s", args[0], out)
		} else if !strings.Contains(out, "403") && !strings.Contains(out, "AccessDenied") {
			t.Errorf("another account's s3cmd %s failed without a 403:\n%s", args[0], out)
		}
	}
	// SigV2 is refused even with the right key.
	if out, err := runS3cmd(t, bin, s3cmdConfig(t, keyA1, secretA1, true), "ls", "s3://s3cmd-bucket/"); err == nil {
		t.Errorf("SigV2 listing succeeded:\n%s", out)
	}
	mustRun(cfgA, "del", "s3://s3cmd-bucket/images/disk.raw")
}
