package sigv4

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Inputs of the test vectors of osc-api.md §2.4.1.
const (
	vecAK     = "ABCDEFGHIJ0123456789"
	vecSK     = "0123456789abcdef0123456789abcdef01234567"
	vecDate   = "20260102T030405Z"
	vecBody   = `{"Filters":{"ImageIds":["ami-12345678"]}}`
	vecAuthA  = "OSC4-HMAC-SHA256 Credential=ABCDEFGHIJ0123456789/20260102/eu-west-2/api/osc4_request, SignedHeaders=content-type;host;x-osc-date, Signature=4a3731ab0496a2fa82d4406d317c54c0e4f82ddcafc473d576eb0babca830128"
	vecAuthB  = "AWS4-HMAC-SHA256 Credential=ABCDEFGHIJ0123456789/20260102/eu-west-2/oapi/aws4_request, SignedHeaders=accept;content-type;host;x-amz-date, Signature=b80ca0d01131c3630e8eb078a10a3910954117f91770d2bfd542279edfa653af"
	vecTarget = "http://api.eu-west-2.outscale.com/api/v1/ReadImages"
)

var vecTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// vectorA returns the server-side request of vector A (OSC4, python style).
func vectorA() *http.Request {
	r := httptest.NewRequest("POST", vecTarget, strings.NewReader(vecBody))
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	r.Header.Set("X-Osc-Date", vecDate)
	r.Header.Set("Authorization", vecAuthA)
	return r
}

// vectorB returns the server-side request of vector B (AWS4, Go SDK style).
func vectorB() *http.Request {
	r := httptest.NewRequest("POST", vecTarget, strings.NewReader(vecBody))
	r.Header.Set("Accept", "application/json")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("X-Amz-Date", vecDate)
	r.Header.Set("Authorization", vecAuthB)
	return r
}

// verify runs the server side: parse, clean the path, verify.
func verify(t *testing.T, r *http.Request, body, secret string, now time.Time) error {
	t.Helper()
	auth, err := ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return err
	}
	return Verify(r, CleanPath(r.URL.EscapedPath()), []byte(body), auth, secret, now)
}

func TestVectors(t *testing.T) {
	for name, r := range map[string]*http.Request{"A": vectorA(), "B": vectorB()} {
		if err := verify(t, r, vecBody, vecSK, vecTime.Add(time.Minute)); err != nil {
			t.Errorf("vector %s: %v", name, err)
		}
	}
}

func TestSignerReproducesVectors(t *testing.T) {
	cases := []struct {
		name    string
		signer  Signer
		headers map[string]string
		want    string
	}{
		{"A", Signer{Algorithm: AlgorithmOSC4, Service: "api", Headers: []string{"Content-Type"}},
			map[string]string{"Content-Type": "application/json; charset=utf-8"}, vecAuthA},
		{"B", Signer{Algorithm: AlgorithmAWS4, Service: "oapi", Headers: []string{"Content-Type", "Accept"}},
			map[string]string{"Accept": "application/json", "Content-Type": "application/json"}, vecAuthB},
	}
	for _, c := range cases {
		c.signer.AccessKey, c.signer.SecretKey, c.signer.Region = vecAK, vecSK, "eu-west-2"
		r, err := http.NewRequest("POST", "https://api.eu-west-2.outscale.com/api/v1/ReadImages", strings.NewReader(vecBody))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range c.headers {
			r.Header.Set(k, v)
		}
		if err := c.signer.Sign(r, []byte(vecBody), vecTime); err != nil {
			t.Fatal(err)
		}
		if got := r.Header.Get("Authorization"); got != c.want {
			t.Errorf("vector %s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}

func TestCanonicalRequestVectorA(t *testing.T) {
	r := vectorA()
	auth, err := ParseAuthorization(vecAuthA)
	if err != nil {
		t.Fatal(err)
	}
	c := canonical{method: r.Method, path: "/api/v1/ReadImages", header: r.Header, host: r.Host,
		signed: auth.SignedHeaders, payload: payloadHash(r.Header, auth.SignedHeaders, family{}, []byte(vecBody))}
	want := "POST\n/api/v1/ReadImages\n\n" +
		"content-type:application/json; charset=utf-8\nhost:api.eu-west-2.outscale.com\nx-osc-date:20260102T030405Z\n\n" +
		"content-type;host;x-osc-date\nadd6546c2b9bb68c59f8233f1b55e41ca0386109eff647df76373703bcafad6e"
	if got := c.request(); got != want {
		t.Errorf("canonical request:\n%s\nwant:\n%s", got, want)
	}
}

func TestParseAuthorization(t *testing.T) {
	variants := []string{
		vecAuthA,
		strings.ReplaceAll(vecAuthA, ", ", ","),
		strings.ReplaceAll(vecAuthA, ", ", " , "),
		strings.ReplaceAll(vecAuthA, " Credential", "   Credential") + "  ",
		"OSC4-HMAC-SHA256 Signature=4A3731AB0496A2FA82D4406D317C54C0E4F82DDCAFC473D576EB0BABCA830128,SignedHeaders=content-type;host;x-osc-date, Credential=ABCDEFGHIJ0123456789/20260102/eu-west-2/api/osc4_request",
	}
	for _, v := range variants {
		a, err := ParseAuthorization(v)
		if err != nil {
			t.Errorf("%q: %v", v, err)
			continue
		}
		if a.Algorithm != AlgorithmOSC4 || a.AccessKey != vecAK || a.Date != "20260102" || a.Region != "eu-west-2" ||
			a.Service != "api" || strings.Join(a.SignedHeaders, ";") != "content-type;host;x-osc-date" ||
			a.Signature != "4a3731ab0496a2fa82d4406d317c54c0e4f82ddcafc473d576eb0babca830128" || a.DateHeader() != "X-Osc-Date" {
			t.Errorf("%q: parsed %+v", v, a)
		}
	}

	sig := strings.Repeat("ab", 32)
	bad := map[string]error{
		"":                          ErrMalformed,
		"Basic Zm9vOmJhcg==":        ErrUnsupportedAlgorithm,
		"AWS4-HMAC-SHA1 Credential": ErrUnsupportedAlgorithm,
		"OSC4-HMAC-SHA256":          ErrMalformed,
		"OSC4-HMAC-SHA256 Credential=AK/20260102/r/s/osc4_request, SignedHeaders=host":                                                            ErrMalformed,
		"OSC4-HMAC-SHA256 Credential=AK/20260102/r/s/aws4_request, SignedHeaders=host, Signature=" + sig:                                          ErrMalformed,
		"AWS4-HMAC-SHA256 Credential=AK/20260102/r/s/osc4_request, SignedHeaders=host, Signature=" + sig:                                          ErrMalformed,
		"OSC4-HMAC-SHA256 Credential=AK/2026012/r/s/osc4_request, SignedHeaders=host, Signature=" + sig:                                           ErrMalformed,
		"OSC4-HMAC-SHA256 Credential=AK/20260102/r/osc4_request, SignedHeaders=host, Signature=" + sig:                                            ErrMalformed,
		"OSC4-HMAC-SHA256 Credential=AK/20260102/r/s/osc4_request, SignedHeaders=host;;x, Signature=" + sig:                                       ErrMalformed,
		"OSC4-HMAC-SHA256 Credential=AK/20260102/r/s/osc4_request, SignedHeaders=host, Signature=" + sig[:62]:                                     ErrMalformed,
		"OSC4-HMAC-SHA256 Credential=AK/20260102/r/s/osc4_request, SignedHeaders=host, Signature=" + sig[:63] + "g":                               ErrMalformed,
		"OSC4-HMAC-SHA256 Credential=AK/20260102/r/s/osc4_request, SignedHeaders=host, Signature=" + sig + ", Foo=1":                              ErrMalformed,
		"OSC4-HMAC-SHA256 Credential=AK/20260102/r/s/osc4_request, SignedHeaders=host, Signature=" + sig + ", x":                                  ErrMalformed,
		"OSC4-HMAC-SHA256 Credential=AK/20260102/r/s/osc4_request, Credential=AK/20260102/r/s/osc4_request, SignedHeaders=host, Signature=" + sig: ErrMalformed,
	}
	for h, want := range bad {
		if _, err := ParseAuthorization(h); !errors.Is(err, want) {
			t.Errorf("%q: got %v, want %v", h, err, want)
		}
	}
}

func TestVerifyRejectsTampering(t *testing.T) {
	now := vecTime
	tamper := map[string]func(r *http.Request) (*http.Request, string){
		"body": func(r *http.Request) (*http.Request, string) {
			return r, strings.Replace(vecBody, "12345678", "12345679", 1)
		},
		"signed header": func(r *http.Request) (*http.Request, string) {
			r.Header.Set("Content-Type", "text/plain")
			return r, vecBody
		},
		"host": func(r *http.Request) (*http.Request, string) {
			r.Host = "api.us-east-2.outscale.com"
			return r, vecBody
		},
		"path": func(r *http.Request) (*http.Request, string) {
			r.URL.Path = "/api/v1/DeleteImage"
			return r, vecBody
		},
		"query": func(r *http.Request) (*http.Request, string) {
			r.URL.RawQuery = "a=b"
			return r, vecBody
		},
		"method": func(r *http.Request) (*http.Request, string) {
			r.Method = "PUT"
			return r, vecBody
		},
		"signature": func(r *http.Request) (*http.Request, string) {
			r.Header.Set("Authorization", strings.Replace(vecAuthA, "Signature=4a37", "Signature=4a38", 1))
			return r, vecBody
		},
		"scope service": func(r *http.Request) (*http.Request, string) {
			r.Header.Set("Authorization", strings.Replace(vecAuthA, "/api/", "/oapi/", 1))
			return r, vecBody
		},
		"scope region": func(r *http.Request) (*http.Request, string) {
			r.Header.Set("Authorization", strings.Replace(vecAuthA, "/eu-west-2/", "/us-east-2/", 1))
			return r, vecBody
		},
		"date header (same day)": func(r *http.Request) (*http.Request, string) {
			r.Header.Set("X-Osc-Date", "20260102T030406Z")
			return r, vecBody
		},
	}
	for name, f := range tamper {
		r, body := f(vectorA())
		if err := verify(t, r, body, vecSK, now); !errors.Is(err, ErrSignatureMismatch) {
			t.Errorf("%s: got %v, want ErrSignatureMismatch", name, err)
		}
	}
	if err := verify(t, vectorA(), vecBody, strings.Replace(vecSK, "0", "1", 1), now); !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("wrong secret: got %v", err)
	}
	// Headers the client did not sign may change freely.
	r := vectorA()
	r.Header.Set("User-Agent", "something else")
	r.Header.Set("Accept", "text/html")
	if err := verify(t, r, vecBody, vecSK, now); err != nil {
		t.Errorf("unsigned header changed: %v", err)
	}
}

func TestVerifyDates(t *testing.T) {
	ok := []time.Duration{0, MaxSkew, -MaxSkew, 4 * time.Minute}
	for _, d := range ok {
		if err := verify(t, vectorB(), vecBody, vecSK, vecTime.Add(d)); err != nil {
			t.Errorf("now = date%+v: %v", d, err)
		}
	}
	for _, d := range []time.Duration{MaxSkew + time.Second, -MaxSkew - time.Second, 24 * time.Hour} {
		if err := verify(t, vectorB(), vecBody, vecSK, vecTime.Add(d)); !errors.Is(err, ErrRequestTimeSkewed) {
			t.Errorf("now = date%+v: got %v, want ErrRequestTimeSkewed", d, err)
		}
	}

	r := vectorB()
	r.Header.Del("X-Amz-Date")
	r.Header.Set("X-Osc-Date", vecDate) // the other family's header does not count
	if err := verify(t, r, vecBody, vecSK, vecTime); !errors.Is(err, ErrMissingDate) {
		t.Errorf("missing X-Amz-Date: got %v", err)
	}
	for _, v := range []string{"2026-01-02T03:04:05Z", "20260102T030405", "20261302T030405Z", "Fri, 02 Jan 2026 03:04:05 GMT"} {
		r := vectorA()
		r.Header.Set("X-Osc-Date", v)
		if err := verify(t, r, vecBody, vecSK, vecTime); !errors.Is(err, ErrBadDate) {
			t.Errorf("X-Osc-Date %q: got %v, want ErrBadDate", v, err)
		}
	}
	r = vectorA()
	r.Header.Set("X-Osc-Date", "20260101T235959Z")
	if err := verify(t, r, vecBody, vecSK, vecTime); !errors.Is(err, ErrScopeDateMismatch) {
		t.Errorf("scope date mismatch: got %v", err)
	}
}

// signed returns a request signed by s for target, as the server receives it
// (Host taken from the URL), plus the body.
func signed(t *testing.T, s Signer, target, serverTarget string, now time.Time) *http.Request {
	t.Helper()
	body := []byte(`{}`)
	c, err := http.NewRequest("POST", target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	c.Header.Set("Content-Type", "application/json")
	if err := s.Sign(c, body, now); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", serverTarget, bytes.NewReader(body))
	r.Header = c.Header.Clone()
	return r
}

var testSigner = Signer{Algorithm: AlgorithmOSC4, AccessKey: "11112211111110000000",
	SecretKey: "0000001111112222223333334444445555555666", Region: "eu-west-2", Service: "api",
	Headers: []string{"Content-Type"}}

func TestVerifyHostWithoutPort(t *testing.T) {
	now := time.Now()
	// Python and Rust SDKs sign "127.0.0.1" while sending "127.0.0.1:8443".
	r := signed(t, testSigner, "http://127.0.0.1/api/v1/ReadImages", "http://127.0.0.1:8443/api/v1/ReadImages", now)
	if err := verify(t, r, "{}", testSigner.SecretKey, now); err != nil {
		t.Errorf("host signed without port: %v", err)
	}
	r = signed(t, testSigner, "http://[::1]/api/v1/ReadImages", "http://[::1]:8443/api/v1/ReadImages", now)
	if err := verify(t, r, "{}", testSigner.SecretKey, now); err != nil {
		t.Errorf("IPv6 host signed without port: %v", err)
	}
	r = signed(t, testSigner, "http://127.0.0.1:8443/api/v1/ReadImages", "http://127.0.0.1:8443/api/v1/ReadImages", now)
	if err := verify(t, r, "{}", testSigner.SecretKey, now); err != nil {
		t.Errorf("host signed with port: %v", err)
	}
	r = signed(t, testSigner, "http://127.0.0.1:9000/api/v1/ReadImages", "http://127.0.0.1:8443/api/v1/ReadImages", now)
	if err := verify(t, r, "{}", testSigner.SecretKey, now); !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("host signed with another port: got %v", err)
	}
}

func TestVerifyDoubleSlash(t *testing.T) {
	now := time.Now()
	// osc-cli sends //api/latest/X and signs /api/latest/X.
	r := signed(t, testSigner, "http://127.0.0.1/api/latest/ReadImages", "http://127.0.0.1//api/latest/ReadImages", now)
	if r.URL.EscapedPath() != "//api/latest/ReadImages" {
		t.Fatalf("test request path is %q", r.URL.EscapedPath())
	}
	if err := verify(t, r, "{}", testSigner.SecretKey, now); err != nil {
		t.Errorf("after CleanPath: %v", err)
	}
	auth, err := ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(r, r.URL.EscapedPath(), []byte("{}"), auth, testSigner.SecretKey, now); !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("without CleanPath: got %v, want ErrSignatureMismatch", err)
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"": "/", "/": "/", "//": "/", "/api/v1/ReadImages": "/api/v1/ReadImages",
		"//api/latest/ReadImages": "/api/latest/ReadImages", "/a///b//c/": "/a/b/c/",
	} {
		if got := CleanPath(in); got != want {
			t.Errorf("CleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCanonicalHeadersAndQuery(t *testing.T) {
	h := http.Header{}
	h.Add("X-Multi", "  a   b\t c ")
	h.Add("X-Multi", "d")
	c := canonical{method: "GET", path: "/", header: h, host: "h", contentLength: 12,
		signed: []string{"content-length", "host", "x-missing", "x-multi"}, payload: "p"}
	c.query, _ = canonicalQuery("b=2&a=x+y&a=%2F&c&=e&%7e=~")
	want := "GET\n/\n=e&a=%2F&a=x%20y&b=2&c=&~=~\ncontent-length:12\nhost:h\nx-missing:\nx-multi:a b c,d\n\ncontent-length;host;x-missing;x-multi\np"
	if got := c.request(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if _, err := canonicalQuery("a=%zz"); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad query escape: got %v", err)
	}
}

func TestUnsignedPayload(t *testing.T) {
	now := time.Now()
	s := Signer{Algorithm: AlgorithmAWS4, AccessKey: "AK", SecretKey: "SK", Region: "eu-west-2", Service: "s3",
		Headers: []string{"X-Amz-Content-Sha256"}}
	put := func(hash string, sent []byte) error {
		c, _ := http.NewRequest("PUT", "http://127.0.0.1:9000/bucket/key", nil)
		c.Header.Set("X-Amz-Content-Sha256", hash)
		if err := s.Sign(c, []byte("original"), now); err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("PUT", "http://127.0.0.1:9000/bucket/key", bytes.NewReader(sent))
		r.Header = c.Header.Clone()
		return verify(t, r, string(sent), "SK", now)
	}
	if err := put(UnsignedPayload, []byte("anything")); err != nil {
		t.Errorf("UNSIGNED-PAYLOAD: %v", err)
	}
	const origHash = "0682c5f2076f099c34cfdd15a9e063849ed437a49677e6fcc5b4198c76575be5" // sha256("original")
	if err := put(origHash, []byte("original")); err != nil {
		t.Errorf("signed payload hash header: %v", err)
	}
	if err := put(origHash, []byte("tampered")); !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("tampered body with hash header: got %v", err)
	}
}

func TestSignerErrors(t *testing.T) {
	r, _ := http.NewRequest("POST", "http://h/", nil)
	if err := (&Signer{Algorithm: "HMAC", AccessKey: "a", SecretKey: "s", Region: "r", Service: "s"}).Sign(r, nil, time.Now()); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("bad algorithm: %v", err)
	}
	if err := (&Signer{Algorithm: AlgorithmOSC4}).Sign(r, nil, time.Now()); err == nil {
		t.Error("missing keys: no error")
	}
	if err := Verify(r, "/", nil, nil, "s", time.Now()); !errors.Is(err, ErrMalformed) {
		t.Errorf("nil authorization: %v", err)
	}
}

func TestParseBasic(t *testing.T) {
	const email, password = "joe@example.com", "p>?a:s~s?w>o"
	raw := []byte(email + ":" + password)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		h := "Basic " + enc.EncodeToString(raw)
		e, p, err := ParseBasic(h)
		if err != nil || e != email || p != password {
			t.Errorf("%q: got %q %q %v", h, e, p, err)
		}
	}
	if std, url := base64.StdEncoding.EncodeToString(raw), base64.URLEncoding.EncodeToString(raw); std == url {
		t.Fatal("test password does not exercise the URL-safe alphabet")
	}
	for h, want := range map[string]error{
		"Basic !!!!": ErrMalformed,
		"Basic " + base64.StdEncoding.EncodeToString([]byte("nocolon")): ErrMalformed,
		"Basic " + base64.StdEncoding.EncodeToString([]byte(":pw")):     ErrMalformed,
		"Bearer abc": ErrUnsupportedAlgorithm,
		vecAuthA:     ErrUnsupportedAlgorithm,
	} {
		if _, _, err := ParseBasic(h); !errors.Is(err, want) {
			t.Errorf("%q: got %v, want %v", h, err, want)
		}
	}
}

func TestCheckDate(t *testing.T) {
	h := http.Header{}
	if _, err := CheckDate(h, "X-Osc-Date", vecTime); !errors.Is(err, ErrMissingDate) {
		t.Errorf("missing: %v", err)
	}
	h.Set("X-Osc-Date", "yesterday")
	if _, err := CheckDate(h, "X-Osc-Date", vecTime); !errors.Is(err, ErrBadDate) {
		t.Errorf("bad: %v", err)
	}
	h.Set("X-Osc-Date", vecDate)
	if got, err := CheckDate(h, "X-Osc-Date", vecTime.Add(-2*time.Minute)); err != nil || !got.Equal(vecTime) {
		t.Errorf("ok: %v %v", got, err)
	}
	if _, err := CheckDate(h, "X-Osc-Date", vecTime.Add(10*time.Minute)); !errors.Is(err, ErrRequestTimeSkewed) {
		t.Errorf("skewed: %v", err)
	}
}

func BenchmarkVerify(b *testing.B) {
	r := vectorB()
	body := []byte(vecBody)
	now := vecTime.Add(time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		auth, err := ParseAuthorization(r.Header.Get("Authorization"))
		if err != nil {
			b.Fatal(err)
		}
		if err := Verify(r, CleanPath(r.URL.EscapedPath()), body, auth, vecSK, now); err != nil {
			b.Fatal(err)
		}
	}
}

// TestUnsignedPayloadAndHostScope: UnsignedPayload is true only when the
// family's content-hash header is signed and says UNSIGNED-PAYLOAD, which
// is exactly when Verify leaves the body out; HostScope derives curl's
// scope.
func TestUnsignedPayloadAndHostScope(t *testing.T) {
	for _, c := range []struct {
		alg, header string
		signed      bool
		want        bool
	}{
		{AlgorithmAWS4, "X-Amz-Content-Sha256", true, true},
		{AlgorithmAWS4, "X-Amz-Content-Sha256", false, false},
		{AlgorithmAWS4, "X-Osc-Content-Sha256", true, false},
		{AlgorithmOSC4, "X-Osc-Content-Sha256", true, true},
		{AlgorithmOSC4, "X-Amz-Content-Sha256", true, false},
	} {
		h := http.Header{}
		h.Set(c.header, " "+UnsignedPayload+" ")
		a := &Authorization{Algorithm: c.alg, SignedHeaders: []string{"host"}}
		if c.signed {
			a.SignedHeaders = append(a.SignedHeaders, strings.ToLower(c.header))
		}
		f, _ := familyOf(c.alg)
		if got := a.UnsignedPayload(h); got != c.want || (payloadHash(h, a.SignedHeaders, f, []byte("{}")) == UnsignedPayload) != c.want {
			t.Errorf("%s with %s signed=%v: UnsignedPayload %v, want %v (and Verify must agree)", c.alg, c.header, c.signed, got, c.want)
		}
	}
	for host, want := range map[string][2]string{
		"127.0.0.1:3000": {"0", "127"}, "127.0.0.1": {"0", "127"}, "api.eu-west-2.outscale.com": {"eu-west-2", "api"},
		"localhost:3000": {"", ""}, "[::1]:3000": {"", ""}, ".x": {"", ""}, "a.": {"", ""},
	} {
		region, service, ok := HostScope(host)
		if region != want[0] || service != want[1] || ok != (want[0] != "") {
			t.Errorf("HostScope(%q) = %q, %q, %v; want %q, %q", host, region, service, ok, want[0], want[1])
		}
	}
}

// TestSigningKeyCache checks that a cached signing key is the derived one
// for its exact scope (no two scopes share an entry) and that the cache
// stays bounded whatever scopes requests name.
func TestSigningKeyCache(t *testing.T) {
	f, _ := familyOf(AlgorithmOSC4)
	for range 2 { // the second pass reads the cache
		for _, sc := range [][4]string{
			{"secret", "20260101", "eu-west-2", "api"},
			{"secret", "20260101", "eu-west-2", "oapi"},
			{"secret", "20260102", "eu-west-2", "api"},
			{"secreu", "20260101", "eu-west-2", "api"},
			{"secret\x00", "20260101", "eu-west-2", "api"},
			{"secret", "20260101", "eu-west-2\x00a", "pi"},
			{"secret", "20260101", "eu-west-2", "\x00api"},
		} {
			got := signingKey(f, sc[0], sc[1], sc[2], sc[3])
			want := deriveSigningKey(f, sc[0], sc[1], sc[2], sc[3])
			if !bytes.Equal(got, want) {
				t.Fatalf("scope %q: cached key %x, derived %x", sc, got, want)
			}
		}
	}
	for i := range 3 * maxCachedKeys {
		signingKey(f, "secret", "20260101", fmt.Sprint("region-", i), "api")
	}
	keyCache.Lock()
	n := len(keyCache.m)
	keyCache.Unlock()
	if n > maxCachedKeys {
		t.Fatalf("%d cached keys, more than %d", n, maxCachedKeys)
	}
}
