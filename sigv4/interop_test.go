package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	osc "github.com/outscale/osc-sdk-go/v2"
)

// The osc-ricochet-2 sample account, used by OUTSCALE clients' test scripts.
const (
	joeAK = "11112211111110000000"
	joeSK = "0000001111112222223333334444445555555666"
)

// seen is what the verifying server recorded about one request.
type seen struct {
	auth *Authorization
	err  error
}

// verifyingServer is an API endpoint on 127.0.0.1 that checks every request
// with ParseAuthorization and Verify, answers an empty ReadImages response or
// a 401, and records the outcome.
type verifyingServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seen
}

func newVerifyingServer(t *testing.T) *verifyingServer {
	s := &verifyingServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(s.Close)
	return s
}

func (s *verifyingServer) handle(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var auth *Authorization
	if err == nil {
		auth, err = ParseAuthorization(r.Header.Get("Authorization"))
	}
	if err == nil {
		secret := map[string]string{joeAK: joeSK}[auth.AccessKey]
		err = Verify(r, CleanPath(r.URL.EscapedPath()), body, auth, secret, time.Now())
	}
	s.mu.Lock()
	s.seen = append(s.seen, seen{auth, err})
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"Errors":[{"Code":"1","Type":"AccessDenied","Details":""}],"ResponseContext":{"RequestId":"x"}}`)
		return
	}
	io.WriteString(w, `{"ResponseContext":{"RequestId":"x"},"Images":[]}`)
}

// last returns the outcome of the latest request, failing if there was none.
func (s *verifyingServer) last(t *testing.T) seen {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.seen) == 0 {
		t.Fatal("server saw no request")
	}
	return s.seen[len(s.seen)-1]
}

func TestAWSSDKv2Signer(t *testing.T) {
	srv := newVerifyingServer(t)
	cases := []struct {
		name, service, path, secret string
		unsigned                    bool
		wantErr                     error
	}{
		{name: "oapi", service: "oapi", path: "/api/v1/ReadImages", secret: joeSK},
		{name: "osc", service: "osc", path: "/api/v1/ReadImages", secret: joeSK},
		{name: "query", service: "osc", path: "/api/v1/ReadImages?b=2&a=x%20y&a=1&c", secret: joeSK},
		{name: "unsigned payload", service: "s3", path: "/bucket/key", secret: joeSK, unsigned: true},
		{name: "wrong secret", service: "oapi", path: "/api/v1/ReadImages", secret: "x" + joeSK[1:], wantErr: ErrSignatureMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := []byte(`{"Filters":{"ImageIds":["ami-12345678"]}}`)
			req, err := http.NewRequest("POST", srv.URL+c.path, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json")
			sum := sha256.Sum256(body)
			payload := hex.EncodeToString(sum[:])
			if c.unsigned {
				payload = UnsignedPayload
				req.Header.Set("X-Amz-Content-Sha256", payload)
			}
			creds := aws.Credentials{AccessKeyID: joeAK, SecretAccessKey: c.secret}
			// A fresh signer per case: the SDK caches derived keys by access
			// key ID, so a shared one would ignore the wrong secret.
			if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, payload, c.service, "eu-west-2", time.Now()); err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := srv.last(t)
			if !errors.Is(got.err, c.wantErr) || (c.wantErr == nil) != (resp.StatusCode == 200) {
				t.Fatalf("status %d, verify error %v, want %v", resp.StatusCode, got.err, c.wantErr)
			}
			if got.auth.Algorithm != AlgorithmAWS4 || got.auth.Service != c.service || got.auth.Region != "eu-west-2" {
				t.Errorf("parsed %+v", got.auth)
			}
		})
	}
}

func TestCurlAWSSigV4(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is required when CI=true")
		}
		t.Skip("curl not installed")
	}
	srv := newVerifyingServer(t)
	curl := func(t *testing.T, user string, args ...string) string {
		t.Helper()
		args = append([]string{"-sS", "-o", "/dev/null", "-w", "%{http_code}",
			"--aws-sigv4", "osc:osc:eu-west-2:api", "--user", user,
			"-H", "Content-Type: application/json", "-X", "POST"}, args...)
		out, err := exec.Command("curl", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v: %s", err, out)
		}
		return string(out)
	}

	t.Run("ReadImages", func(t *testing.T) {
		if code := curl(t, joeAK+":"+joeSK, srv.URL+"/api/v1/ReadImages", "-d", `{"Filters":{"ImageIds":["ami-1"]}}`); code != "200" {
			t.Fatalf("HTTP %s, verify error %v", code, srv.last(t).err)
		}
		a := srv.last(t).auth
		if a.Algorithm != AlgorithmOSC4 || a.Service != "api" || a.Region != "eu-west-2" || !contains(a.SignedHeaders, "x-osc-date") {
			t.Errorf("parsed %+v", a)
		}
	})
	t.Run("extra header and empty body", func(t *testing.T) {
		code := curl(t, joeAK+":"+joeSK, "-H", "X-Osc-Target: OutscaleService.ReadImages", srv.URL+"/api/latest/ReadImages", "-d", "")
		if code != "200" {
			t.Fatalf("HTTP %s, verify error %v", code, srv.last(t).err)
		}
		if a := srv.last(t).auth; !contains(a.SignedHeaders, "x-osc-target") {
			t.Errorf("x-osc-target not signed: %+v", a)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		if code := curl(t, joeAK+":x"+joeSK[1:], srv.URL+"/api/v1/ReadImages", "-d", `{}`); code != "401" {
			t.Fatalf("HTTP %s, want 401", code)
		}
		if err := srv.last(t).err; !errors.Is(err, ErrSignatureMismatch) {
			t.Errorf("verify error %v, want ErrSignatureMismatch", err)
		}
	})
}

func TestOscSDKGoV2(t *testing.T) {
	srv := newVerifyingServer(t)
	cfg := osc.NewConfiguration()
	cfg.Servers = osc.ServerConfigurations{{URL: srv.URL + "/api/v1"}}
	client := osc.NewAPIClient(cfg)
	call := func(secret string) (osc.ReadImagesResponse, *http.Response, error) {
		ctx := context.WithValue(context.Background(), osc.ContextAWSv4, osc.AWSv4{AccessKey: joeAK, SecretKey: secret})
		req := osc.ReadImagesRequest{Filters: &osc.FiltersImage{ImageIds: &[]string{"ami-12345678"}}}
		return client.ImageApi.ReadImages(ctx).ReadImagesRequest(req).Execute()
	}

	resp, httpResp, err := call(joeSK)
	if err != nil {
		t.Fatalf("ReadImages: %v (verify error %v)", err, srv.last(t).err)
	}
	if httpResp.StatusCode != 200 || resp.Images == nil || len(*resp.Images) != 0 || resp.ResponseContext.GetRequestId() != "x" {
		t.Errorf("response %d %+v", httpResp.StatusCode, resp)
	}
	a := srv.last(t).auth
	if a.Algorithm != AlgorithmAWS4 || a.Service != "oapi" || a.Region != "eu-west-2" || a.AccessKey != joeAK {
		t.Errorf("parsed %+v", a)
	}

	_, httpResp, err = call("x" + joeSK[1:])
	if err == nil || httpResp == nil || httpResp.StatusCode != 401 {
		t.Errorf("wrong secret: %v %v", httpResp, err)
	}
	if err := srv.last(t).err; !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("wrong secret: verify error %v, want ErrSignatureMismatch", err)
	}
}
