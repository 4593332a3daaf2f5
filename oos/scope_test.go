package oos_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/omiproject/omi/sigv4"
)

// TestOnlyS3ScopedSignatures: the object storage accepts signatures whose
// credential scope names the s3 service and its region, and refuses those
// made for the OUTSCALE API (api, oapi, osc), so that a signature cannot
// be replayed from one service to the other.
func TestOnlyS3ScopedSignatures(t *testing.T) {
	const emptySHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	send := func(signer func(*http.Request) error) int {
		req, err := http.NewRequest(http.MethodGet, endpoint+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Amz-Content-Sha256", emptySHA)
		if err := signer(req); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	aws4 := func(service, reg string) func(*http.Request) error {
		return func(req *http.Request) error {
			return v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: keyA1, SecretAccessKey: secretA1},
				req, emptySHA, service, reg, time.Now())
		}
	}
	if st := send(aws4("s3", region)); st != http.StatusOK {
		t.Fatalf("ListBuckets signed for s3: %d", st)
	}
	for _, svc := range []string{"api", "oapi", "osc"} {
		if st := send(aws4(svc, region)); st < 400 || st > 499 {
			t.Errorf("ListBuckets signed for service %s: %d, want a 4xx", svc, st)
		}
	}
	// The API's own signer (OSC4 family) is not S3's either.
	osc4 := func(req *http.Request) error {
		s := sigv4.Signer{Algorithm: sigv4.AlgorithmOSC4, AccessKey: keyA1, SecretKey: secretA1, Region: region, Service: "s3"}
		return s.Sign(req, nil, time.Now())
	}
	if st := send(osc4); st < 400 || st > 499 {
		t.Errorf("ListBuckets signed with OSC4: %d, want a 4xx", st)
	}
}
