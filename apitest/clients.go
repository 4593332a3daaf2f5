package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	oscv2 "github.com/outscale/osc-sdk-go/v2"
	"github.com/outscale/osc-sdk-go/v3/pkg/middleware"
	"github.com/outscale/osc-sdk-go/v3/pkg/options"
	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"
	"github.com/outscale/osc-sdk-go/v3/pkg/profile"

	"github.com/omiproject/omi/sigv4"
)

// V2 returns an osc-sdk-go v2 client on the server and a context carrying
// a's keys (the SDK takes credentials from the context). Its HTTP client
// is the checking transport.
func (e *Env) V2(a Account) (*oscv2.APIClient, context.Context) {
	ctx := context.WithValue(context.Background(), oscv2.ContextAWSv4, oscv2.AWSv4{AccessKey: a.AccessKey, SecretKey: a.SecretKey})
	return e.v2Client(nil), ctx
}

// V2Anonymous returns a v2 client and a context without credentials, for
// the public calls.
func (e *Env) V2Anonymous() (*oscv2.APIClient, context.Context) {
	return e.v2Client(nil), context.Background()
}

// V2Basic returns a v2 client that authenticates with a's email and
// password (Authorization: Basic) and sends X-Osc-Date, as the API requires
// for login/password calls.
func (e *Env) V2Basic(a Account) (*oscv2.APIClient, context.Context) {
	ctx := context.WithValue(context.Background(), oscv2.ContextBasicAuth, oscv2.BasicAuth{UserName: a.Email, Password: a.Password})
	return e.v2Client(map[string]string{"X-Osc-Date": time.Now().UTC().Format(sigv4.DateFormat)}), ctx
}

func (e *Env) v2Client(headers map[string]string) *oscv2.APIClient {
	cfg := oscv2.NewConfiguration()
	cfg.Servers = oscv2.ServerConfigurations{{URL: e.APIURL()}}
	cfg.HTTPClient = e.HTTPClient()
	for k, v := range headers {
		cfg.DefaultHeader[k] = v
	}
	return oscv2.NewAPIClient(cfg)
}

// checkerMiddleware puts the Checker inside the v3 SDK's middleware chain,
// after signing, so it sees exactly what goes on the wire.
type checkerMiddleware struct{ c *Checker }

func (m checkerMiddleware) Decorate(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) { return m.c.via(next, r) })
}

// V3 returns an osc-sdk-go v3 client for a, configured the way terraform
// and packer configure it (profile with keys, region and API endpoint),
// without rate limit or retries so that a failure shows at once.
func (e *Env) V3(a Account) *oscv3.Client {
	return e.v3Client(&profile.Profile{AccessKey: a.AccessKey, SecretKey: a.SecretKey, Region: Region,
		Endpoints: profile.Endpoint{API: e.APIURL()}})
}

// V3Anonymous returns a v3 client without credentials.
func (e *Env) V3Anonymous() *oscv3.Client {
	return e.v3Client(&profile.Profile{Region: Region, Endpoints: profile.Endpoint{API: e.APIURL()}})
}

// V3Login returns a v3 client that authenticates with a's email and
// password. The SDK does not send X-Osc-Date itself; the client adds it.
func (e *Env) V3Login(a Account) *oscv3.Client {
	return e.v3Client(&profile.Profile{Login: a.Email, Password: a.Password, Region: Region,
		Endpoints: profile.Endpoint{API: e.APIURL()}}, middleware.WithMiddleware(middleware.MiddlewareSlotUseragent, oscDate{}))
}

// oscDate adds X-Osc-Date to each request.
type oscDate struct{}

func (oscDate) Decorate(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r.Header.Set("X-Osc-Date", time.Now().UTC().Format(sigv4.DateFormat))
		return next.RoundTrip(r)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (e *Env) v3Client(p *profile.Profile, extra ...middleware.MiddlewareChainOption) *oscv3.Client {
	e.t.Helper()
	opts := append([]middleware.MiddlewareChainOption{
		options.WithoutRatelimit(), options.WithoutRetry(), options.WithoutLogging(),
		// The rate-limit slot sits after signing and retries: the checker
		// there sees every signed request and every raw response.
		middleware.WithMiddleware(middleware.MiddlewareSlotRateLimit, checkerMiddleware{e.checker}),
	}, extra...)
	c, err := oscv3.NewClient(p, opts...)
	if err != nil {
		e.t.Fatalf("apitest: v3 client: %v", err)
	}
	return c
}

// Request is a raw API request for tests of the wire protocol. The zero
// value is an unsigned POST of an empty body to /api/v1/<Call>.
type Request struct {
	Method string // default POST
	// Path is the request path; default /api/v1/<Call>.
	Path string
	Call string
	Body []byte
	// JSON, when not nil, is marshalled into Body.
	JSON   any
	Header http.Header
	// Account signs the request when not nil.
	Account *Account
	// Algorithm is sigv4.AlgorithmOSC4 (default) or AlgorithmAWS4;
	// Service defaults to "api" (OSC4) or "oapi" (AWS4).
	Algorithm string
	Service   string
	// Date is the signing time (default now).
	Date time.Time
	// Tamper runs after signing, to corrupt the request.
	Tamper func(*http.Request)
}

// Response is a raw API response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// ErrorCode returns Errors[0].Code, or "".
func (r *Response) ErrorCode() string {
	var env struct{ Errors []struct{ Code string } }
	if json.Unmarshal(r.Body, &env) != nil || len(env.Errors) == 0 {
		return ""
	}
	return env.Errors[0].Code
}

// Decode unmarshals the body into v.
func (r *Response) Decode(v any) error { return json.Unmarshal(r.Body, v) }

// RequestID returns ResponseContext.RequestId, or "".
func (r *Response) RequestID() string {
	var env struct{ ResponseContext struct{ RequestId string } }
	_ = json.Unmarshal(r.Body, &env)
	return env.ResponseContext.RequestId
}

func (r *Response) String() string { return fmt.Sprintf("%d %s", r.Status, truncate(r.Body, 500)) }

// NewRequest builds the http.Request of r, signed if r.Account is set.
func (e *Env) NewRequest(r Request) (*http.Request, error) {
	if r.JSON != nil {
		b, err := json.Marshal(r.JSON)
		if err != nil {
			return nil, err
		}
		r.Body = b
	}
	if r.Method == "" {
		r.Method = http.MethodPost
	}
	if r.Path == "" {
		r.Path = "/api/v1/" + r.Call
	}
	req, err := http.NewRequest(r.Method, e.URL+r.Path, bytes.NewReader(r.Body))
	if err != nil {
		return nil, err
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if req.Header.Get("Content-Type") == "" && r.Method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.Account != nil {
		if err := Sign(req, r.Body, *r.Account, r.Algorithm, r.Service, r.Date); err != nil {
			return nil, err
		}
	}
	if r.Tamper != nil {
		r.Tamper(req)
	}
	return req, nil
}

// Sign signs req (whose body is body) with a's keys using package sigv4's
// Signer: algorithm OSC4 (service api) unless AWS4 is asked (service oapi),
// scope region eu-west-2, Content-Type signed.
func Sign(req *http.Request, body []byte, a Account, algorithm, service string, date time.Time) error {
	if algorithm == "" {
		algorithm = sigv4.AlgorithmOSC4
	}
	if service == "" {
		service = "api"
		if algorithm == sigv4.AlgorithmAWS4 {
			service = "oapi"
		}
	}
	if date.IsZero() {
		date = time.Now()
	}
	s := sigv4.Signer{Algorithm: algorithm, AccessKey: a.AccessKey, SecretKey: a.SecretKey, Region: Region,
		Service: service, Headers: []string{"Content-Type"}}
	return s.Sign(req, body, date)
}

// Do sends a raw request through the checking transport.
func (e *Env) Do(t testing.TB, r Request) *Response {
	t.Helper()
	req, err := e.NewRequest(r)
	if err != nil {
		t.Fatalf("apitest: build request: %v", err)
	}
	resp, err := e.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("apitest: %s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("apitest: read body: %v", err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// Call sends a signed call with a JSON body as a and returns the response.
func (e *Env) Call(t testing.TB, a Account, call string, body any) *Response {
	t.Helper()
	return e.Do(t, Request{Call: call, JSON: body, Account: &a})
}

// MustCall is Call that fails the test unless the status is 200, and
// decodes the body into out when out is not nil.
func (e *Env) MustCall(t testing.TB, a Account, call string, body, out any) {
	t.Helper()
	r := e.Call(t, a, call, body)
	if r.Status != http.StatusOK {
		t.Fatalf("%s as %s: %s", call, a.Alias, r)
	}
	if out != nil {
		if err := r.Decode(out); err != nil {
			t.Fatalf("%s: decode: %v", call, err)
		}
	}
}

// WaitFor polls cond every 20 ms until it returns true or timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ErrorCodes returns the OUTSCALE error codes carried by an error of either
// SDK, or nil.
func ErrorCodes(err error) []string {
	if err == nil {
		return nil
	}
	if e := oscv3.AsErrorResponse(err); e != nil {
		var out []string
		for _, x := range e.Errors {
			out = append(out, x.Code)
		}
		return out
	}
	// The v3 SDK parses error bodies only for the statuses the spec
	// declares; for others (403, 409) the body is in the message.
	if msg := err.Error(); strings.HasPrefix(msg, "unexpected response status ") {
		if i := strings.IndexByte(msg, '{'); i >= 0 {
			var env struct{ Errors []struct{ Code string } }
			if json.Unmarshal([]byte(msg[i:]), &env) == nil {
				var out []string
				for _, x := range env.Errors {
					out = append(out, x.Code)
				}
				return out
			}
		}
	}
	if ge, ok := err.(oscv2.GenericOpenAPIError); ok {
		if m, ok := ge.Model().(oscv2.ErrorResponse); ok {
			var out []string
			for _, x := range m.GetErrors() {
				out = append(out, x.GetCode())
			}
			return out
		}
		var env struct{ Errors []struct{ Code string } }
		if json.Unmarshal(ge.Body(), &env) == nil {
			var out []string
			for _, x := range env.Errors {
				out = append(out, x.Code)
			}
			return out
		}
	}
	return nil
}

// HasCode reports whether err carries code among its OUTSCALE error codes.
func HasCode(err error, code string) bool {
	for _, c := range ErrorCodes(err) {
		if c == code {
			return true
		}
	}
	return false
}

// Status returns the HTTP status in a v2 SDK error message or a v3 one
// ("HTTP 401: ..."), or 0.
func Status(err error) int {
	if err == nil {
		return 0
	}
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "HTTP "); ok {
		var n int
		fmt.Sscanf(rest, "%d", &n)
		return n
	}
	if rest, ok := strings.CutPrefix(msg, "unexpected response status "); ok {
		var n int
		fmt.Sscanf(rest, "%d", &n)
		return n
	}
	var n int
	fmt.Sscanf(msg, "%d", &n)
	return n
}
