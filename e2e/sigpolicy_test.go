package e2e

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/omiproject/omi/apitest"
	"github.com/omiproject/omi/oapi"
	"github.com/omiproject/omi/sigv4"
)

// signedAs sends ReadAccounts signed by joe with the given scope, the
// extra headers in hdr signed too.
func signedAs(t *testing.T, e *apitest.Env, algorithm, region, service string, hdr http.Header) *apitest.Response {
	t.Helper()
	body := []byte("{}")
	req, err := e.NewRequest(apitest.Request{Call: "ReadAccounts", Body: body, Header: hdr})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"Content-Type"}
	for k := range hdr {
		names = append(names, k)
	}
	s := sigv4.Signer{Algorithm: algorithm, AccessKey: e.Joe.AccessKey, SecretKey: e.Joe.SecretKey, Region: region, Service: service, Headers: names}
	if err := s.Sign(req, body, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := e.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &apitest.Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// TestSignaturePolicy: the API accepts the scopes real clients sign with
// (services api, oapi, osc; the served region; the region and service
// libcurl derives from 127.0.0.1; osc-sdk-go v2's eu-west-2/oapi) and refuses with 401 code 1 a scope for
// the object storage (s3) or a made-up service, another region, and a
// body left out of the signature (UNSIGNED-PAYLOAD).
func TestSignaturePolicy(t *testing.T) {
	e := apitest.Start(t)
	for _, alg := range []string{sigv4.AlgorithmOSC4, sigv4.AlgorithmAWS4} {
		for _, svc := range oapi.APIServices {
			if r := signedAs(t, e, alg, apitest.Region, svc, nil); r.Status != http.StatusOK {
				t.Errorf("%s service %s: %s", alg, svc, r)
			}
		}
		// oapi-cli and osc-sdk-C let libcurl derive the scope from the host.
		if r := signedAs(t, e, alg, "0", "127", nil); r.Status != http.StatusOK {
			t.Errorf("%s libcurl's scope for 127.0.0.1 (0/127): %s", alg, r)
		}
		for _, bad := range []struct{ what, region, service string }{
			{"object storage service", apitest.Region, "s3"},
			{"made-up service", apitest.Region, "ec2"},
			{"another region", "us-east-2", "api"},
			{"host scope swapped", "127", "0"},
			{"host scope with the API service", "0", "api"},
		} {
			wantStatusCode(t, alg+" "+bad.what, signedAs(t, e, alg, bad.region, bad.service, nil), http.StatusUnauthorized, "1")
		}
		for _, h := range []string{"X-Amz-Content-Sha256", "X-Osc-Content-Sha256"} {
			r := signedAs(t, e, alg, apitest.Region, "api", http.Header{h: {sigv4.UnsignedPayload}})
			family := map[string]string{sigv4.AlgorithmOSC4: "X-Osc-Content-Sha256", sigv4.AlgorithmAWS4: "X-Amz-Content-Sha256"}[alg]
			if h == family {
				wantStatusCode(t, alg+" "+h+": UNSIGNED-PAYLOAD", r, http.StatusUnauthorized, "1")
			} else if r.Status != http.StatusOK {
				// Another family's header is just a header: the body is signed.
				t.Errorf("%s with %s (not its family's): %s", alg, h, r)
			}
		}
	}

	// The regions are configurable; client-derived scopes can be turned off.
	e.Server.SetSignaturePolicy(oapi.SignaturePolicy{Regions: []string{"eu-west-2", "cloudgouv-eu-west-1"}})
	if r := signedAs(t, e, sigv4.AlgorithmAWS4, "cloudgouv-eu-west-1", "osc", nil); r.Status != http.StatusOK {
		t.Errorf("configured second region: %s", r)
	}
	wantStatusCode(t, "host scope turned off", signedAs(t, e, sigv4.AlgorithmAWS4, "0", "127", nil), http.StatusUnauthorized, "1")

	// A server of another region still takes osc-sdk-go v2's fixed scope
	// (and the v2 SDK itself), and nothing else of eu-west-2.
	e.Server.SetSignaturePolicy(oapi.SignaturePolicy{Regions: []string{"cloudgouv-eu-west-1"}, ClientScopes: true})
	c, ctx := e.V2(e.Joe)
	if _, _, err := c.AccountApi.ReadAccounts(ctx).Execute(); err != nil {
		t.Errorf("v2 SDK against a cloudgouv-eu-west-1 server: %v", err)
	}
	wantStatusCode(t, "eu-west-2/osc against a cloudgouv-eu-west-1 server", signedAs(t, e, sigv4.AlgorithmAWS4, "eu-west-2", "osc", nil), http.StatusUnauthorized, "1")
}

// TestSignaturePolicyCurl: curl --aws-sigv4, the documented way, and with
// the region and service left to libcurl (as oapi-cli does) still work;
// curl signing for s3 is refused.
func TestSignaturePolicyCurl(t *testing.T) {
	e := apitest.Start(t)
	for _, scope := range []string{"osc:osc:" + apitest.Region + ":api", "osc", "aws:amz:" + apitest.Region + ":osc"} {
		r := runCurl(t, e, "/api/v1/ReadAccounts", "--aws-sigv4", scope, "--user", e.Joe.AccessKey+":"+e.Joe.SecretKey,
			"-H", "Content-Type: application/json", "-X", "POST", "-d", "{}")
		if r.Status != http.StatusOK {
			t.Errorf("curl --aws-sigv4 %s: %s", scope, r)
		}
	}
	r := runCurl(t, e, "/api/v1/ReadAccounts", "--aws-sigv4", "aws:amz:"+apitest.Region+":s3", "--user", e.Joe.AccessKey+":"+e.Joe.SecretKey,
		"-H", "Content-Type: application/json", "-X", "POST", "-d", "{}")
	if r.Status != http.StatusUnauthorized || r.code() != "1" {
		t.Errorf("curl --aws-sigv4 for s3: %s, want 401 code 1", r)
	}
}
