// Package s3x is omi's thin layer over the aws-sdk-go-v2 S3 client: the few
// operations export and import need (streaming multipart upload of a
// compressor's output, pre-signed GET URLs for manifests, removal of a
// cancelled export's objects), against the built-in endpoint (package oos)
// or any external S3 service.
//
// Clients use path-style addressing (self-hosted endpoints rarely have
// wildcard DNS) and only send checksums when an operation requires one: the
// SDK's newer default CRC trailers are not understood by every S3
// implementation (OUTSCALE's SDK makes the same choice).
package s3x

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// MaxPresignTTL is the longest validity SigV4 allows a pre-signed URL.
const MaxPresignTTL = 7 * 24 * time.Hour

// Client talks to one S3 endpoint with one set of credentials.
type Client struct {
	s3      *s3.Client
	presign *s3.PresignClient
	// unsignedBody: uploads send UNSIGNED-PAYLOAD instead of the body's
	// SHA-256 (see bodyOptions).
	unsignedBody bool
}

// NewClient makes a path-style client. endpoint is a base URL such as
// "http://127.0.0.1:3001" (empty means AWS itself); region is the SigV4
// signing region.
func NewClient(endpoint, region, accessKey, secretKey string) *Client {
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		// Enough idle connections for the parallel part uploads.
		t.MaxIdleConnsPerHost = 32
	})
	opts := s3.Options{
		Region:       region,
		UsePathStyle: true,
		HTTPClient:   httpClient,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey, Source: "s3x"}, nil
		}),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if endpoint != "" {
		opts.BaseEndpoint = aws.String(strings.TrimRight(endpoint, "/"))
	}
	c := s3.New(opts)
	return &Client{s3: c, presign: s3.NewPresignClient(c), unsignedBody: bodyProtected(endpoint)}
}

// bodyProtected reports whether something other than SigV4's payload hash
// already protects request bodies sent to endpoint: TLS (https, and AWS
// itself when endpoint is empty) or a loopback address, where nothing
// stands between client and server.
func bodyProtected(endpoint string) bool {
	if endpoint == "" {
		return true
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	if u.Scheme == "https" {
		return true
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// bodyOptions are the per-operation options of the calls that send object
// data (PutObject, UploadPart). Where the body is otherwise protected (see
// bodyProtected) they sign it as UNSIGNED-PAYLOAD, a value SigV4 defines
// for S3: the client then does not hash every uploaded byte with SHA-256,
// nor does the server to check it. S3 requires that hash only when the
// client sends one. What is uploaded is checked end to end anyway: an
// export's manifest carries the object's and the image's SHA-256, which
// an import verifies. Over plain HTTP to another host the hash stays: it is
// then the only thing that ties the body to the signature.
func (c *Client) bodyOptions() []func(*s3.Options) {
	if !c.unsignedBody {
		return nil
	}
	return []func(*s3.Options){s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)}
}

// S3 is the underlying SDK client, for operations this package does not wrap.
func (c *Client) S3() *s3.Client { return c.s3 }

// HeadBucket checks that the bucket exists and the credentials may use it.
// Test the result with IsNotFound and IsAccessDenied.
func (c *Client) HeadBucket(ctx context.Context, bucket string) error {
	if _, err := c.s3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("s3x: head bucket %s: %w", bucket, err)
	}
	return nil
}

// CreateBucket creates a bucket; an existing bucket of the same owner is not
// an error.
func (c *Client) CreateBucket(ctx context.Context, bucket string) error {
	_, err := c.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("s3x: create bucket %s: %w", bucket, err)
	}
	return nil
}

// Presign returns a URL that lets anyone holding it GET the object until ttl
// has passed (at most MaxPresignTTL: manifests use the full 7 days).
func (c *Client) Presign(ctx context.Context, bucket, key string, ttl time.Duration) (string, error) {
	if ttl <= 0 || ttl > MaxPresignTTL {
		return "", fmt.Errorf("s3x: pre-signed URL validity %v outside (0, %v]", ttl, MaxPresignTTL)
	}
	req, err := c.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)},
		s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("s3x: presign %s/%s: %w", bucket, key, err)
	}
	return req.URL, nil
}

// Open starts a GET of the object and returns its body and size.
func (c *Client) Open(ctx context.Context, bucket, key string) (io.ReadCloser, int64, error) {
	out, err := c.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return nil, 0, fmt.Errorf("s3x: get %s/%s: %w", bucket, key, err)
	}
	return out.Body, aws.ToInt64(out.ContentLength), nil
}

// Delete removes every object whose key starts with prefix, and aborts the
// multipart uploads still open under it (a cancelled export leaves one
// behind), so nothing of a cancelled export stays billed or visible. It
// returns the number of objects removed. An empty prefix is refused: it
// would empty the whole bucket.
func (c *Client) Delete(ctx context.Context, bucket, prefix string) (int, error) {
	if prefix == "" {
		return 0, errors.New("s3x: refusing to delete with an empty prefix")
	}
	if err := c.abortUploads(ctx, bucket, prefix, false); err != nil {
		return 0, err
	}
	removed := 0
	p := s3.NewListObjectsV2Paginator(c.s3, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return removed, fmt.Errorf("s3x: list %s/%s: %w", bucket, prefix, err)
		}
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]types.ObjectIdentifier, 0, len(page.Contents))
		for _, o := range page.Contents {
			ids = append(ids, types.ObjectIdentifier{Key: o.Key})
		}
		out, err := c.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return removed, fmt.Errorf("s3x: delete under %s/%s: %w", bucket, prefix, err)
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return removed, fmt.Errorf("s3x: delete %s/%s: %s: %s (and %d more)", bucket,
				aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message), len(out.Errors)-1)
		}
		removed += len(ids)
	}
	return removed, nil
}

// abortUploads aborts the multipart uploads open under prefix, or, with
// exact, those of the key prefix only.
func (c *Client) abortUploads(ctx context.Context, bucket, prefix string, exact bool) error {
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket), Prefix: aws.String(prefix)}
	for {
		out, err := c.s3.ListMultipartUploads(ctx, in)
		if err != nil {
			return fmt.Errorf("s3x: list uploads under %s/%s: %w", bucket, prefix, err)
		}
		for _, u := range out.Uploads {
			if exact && aws.ToString(u.Key) != prefix {
				continue
			}
			_, err := c.s3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
				Bucket: aws.String(bucket), Key: u.Key, UploadId: u.UploadId,
			})
			var gone *types.NoSuchUpload
			if err != nil && !errors.As(err, &gone) {
				return fmt.Errorf("s3x: abort upload of %s/%s: %w", bucket, aws.ToString(u.Key), err)
			}
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// IsNotFound reports whether err says the bucket or object does not exist.
func IsNotFound(err error) bool {
	if httpStatus(err) == http.StatusNotFound {
		return true
	}
	switch apiCode(err) {
	case "NoSuchBucket", "NoSuchKey", "NotFound", "NoSuchUpload":
		return true
	}
	return false
}

// IsAccessDenied reports whether err is a refusal of the credentials
// (unknown key, bad signature, another account's bucket).
func IsAccessDenied(err error) bool {
	return httpStatus(err) == http.StatusForbidden
}

func httpStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}
