// Package oapi is the HTTP transport of the OUTSCALE API: it routes
// POST /api/v1/<Call>, /api/latest/<Call> and /<Call> to the service,
// authenticates the caller (access-key signatures, login/password where the
// API allows it, nothing for the public calls), decodes the JSON request,
// and writes the JSON envelope with ResponseContext.RequestId or the
// Errors list with the HTTP status OUTSCALE clients expect.
package oapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/service"
	"github.com/omiproject/omi/sigv4"
)

// MaxBody bounds a request body. The largest legitimate requests (a
// CreateImage with many mappings, CreateTags on many resources) are a few
// KiB.
const MaxBody = 1 << 20

// auth says how a call authenticates.
type auth int

const (
	authKey      auth = iota // access-key signature
	authNone                 // public call: no credentials
	authKeyBasic             // signature or login/password (Basic + X-Osc-Date)
)

// call is one API operation.
type call struct {
	auth auth
	run  func(ctx context.Context, c *omi.Caller, body []byte) (any, error)
}

// Server serves the OUTSCALE API over HTTP.
type Server struct {
	svc      *service.Service
	log      *slog.Logger
	now      func() time.Time
	calls    map[string]call
	observer func(call, code string, status int, d time.Duration)
	// sigPolicy restricts the credential scopes accepted (policy.go).
	sigPolicy SignaturePolicy
}

// SetObserver registers a function told about every call (metrics).
func (s *Server) SetObserver(fn func(call, code string, status int, d time.Duration)) {
	s.observer = fn
}

// New returns the API handler for svc.
func New(svc *service.Service, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{svc: svc, log: log, now: time.Now}
	s.calls = s.routes()
	s.SetSignaturePolicy(SignaturePolicy{ClientScopes: true})
	return s
}

// SetClock replaces the clock used to check request dates (tests).
func (s *Server) SetClock(now func() time.Time) { s.now = now }

// Calls lists the operation names served, for documentation and tests.
func (s *Server) Calls() []string {
	out := make([]string, 0, len(s.calls))
	for name := range s.calls {
		out = append(out, name)
	}
	return out
}

// dryRunner is implemented by every request type (through service.Base).
type dryRunner interface{ IsDryRun() bool }

// op adapts a service method to a call: it decodes the body into In,
// marks dry runs on the context, and returns the method's response.
func op[In, Out any](a auth, fn func(context.Context, *omi.Caller, *In) (*Out, error)) call {
	return call{auth: a, run: func(ctx context.Context, c *omi.Caller, body []byte) (any, error) {
		in := new(In)
		if err := decode(body, in); err != nil {
			return nil, err
		}
		dry := false
		if d, ok := any(in).(dryRunner); ok && d.IsDryRun() {
			dry = true
			ctx = omi.WithDryRun(ctx)
		}
		out, err := fn(ctx, c, in)
		if err != nil {
			return nil, err
		}
		if dry {
			return struct{}{}, nil
		}
		return out, nil
	}}
}

// decode reads a JSON object leniently (unknown fields are ignored, as the
// real API does for newer SDKs) but strictly about types.
func decode(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	// An empty body means {} (libcurl clients send nothing for calls
	// without arguments), and so does null: osc-sdk-go v2 encodes the nil
	// request of a call made without a request struct.
	if len(body) == 0 || string(body) == "null" {
		body = []byte("{}")
	}
	if body[0] != '{' {
		return omi.Invalid(omi.CodeValidation, "the request body must be a JSON object")
	}
	err := json.Unmarshal(body, v)
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "request"
		}
		return omi.Invalid(omi.CodeParameterType, "%s must be of type %s, not %s", field, jsonType(typeErr.Type.String()), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return omi.Invalid(omi.CodeValidation, "the request body is not valid JSON: %v", err)
	}
	return omi.Invalid(omi.CodeValidation, "the request body could not be read: %v", err)
}

// jsonType names a Go type the way an API user thinks of it.
func jsonType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "array"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "*int"), strings.HasPrefix(goType, "float"):
		return "integer"
	case goType == "bool", goType == "*bool":
		return "boolean"
	case goType == "string", goType == "*string":
		return "string"
	}
	return "object"
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	reqID := uuid.NewString()
	path := sigv4.CleanPath(r.URL.EscapedPath())
	name := callName(path)
	out, err := s.serve(r, path, name)
	status := http.StatusOK
	var e *omi.Error
	if err != nil {
		e = omi.AsError(err)
		status = Status(e)
		if status >= 500 {
			s.log.Error("api call failed", "request_id", reqID, "call", name, "err", err)
		}
	}
	writeResponse(w, status, reqID, out, e)
	code := ""
	if e != nil {
		code = e.Code
	}
	d := s.now().Sub(start)
	s.log.Info("api", "request_id", reqID, "call", name, "status", status, "code", code,
		"duration_ms", float64(d.Microseconds())/1000)
	if s.observer != nil {
		if _, known := s.calls[name]; !known {
			name = "" // do not let clients create label values at will
		}
		s.observer(name, code, status, d)
	}
}

// callName extracts the operation from /api/v1/X, /api/latest/X or /X.
func callName(path string) string {
	p := strings.TrimPrefix(path, "/")
	for _, prefix := range []string{"api/v1/", "api/latest/"} {
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			p = rest
			break
		}
	}
	if strings.Contains(p, "/") {
		return ""
	}
	return p
}

func (s *Server) serve(r *http.Request, path, name string) (any, error) {
	if r.Method != http.MethodPost {
		return nil, omi.Errorf("2", omi.TypeAccessDenied, "the OUTSCALE API only accepts POST")
	}
	c, ok := s.calls[name]
	if !ok {
		return nil, omi.Errorf(omi.CodeNoSuchOperation, omi.TypeInvalidResource, "%q is not an operation of this API", name)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
	if err != nil {
		return nil, omi.Invalid(omi.CodeValidation, "could not read the request body: %v", err)
	}
	if len(body) > MaxBody {
		return nil, omi.Invalid(omi.CodeValidation, "the request body is larger than %d bytes", MaxBody)
	}
	caller, err := s.authenticate(r, path, body, c.auth)
	if err != nil {
		return nil, err
	}
	return c.run(omi.WithClientAddr(r.Context(), remoteIP(r)), caller, body)
}

// authenticate checks the credentials a call needs and returns the caller
// (nil for public calls).
func (s *Server) authenticate(r *http.Request, path string, body []byte, a auth) (*omi.Caller, error) {
	if a == authNone {
		return nil, nil
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, omi.Errorf(omi.CodeMissingAuth, omi.TypeAccessDenied, "this call needs an Authorization header (an access-key signature)")
	}
	ctx := r.Context()
	now := s.now()
	scheme, _, _ := strings.Cut(strings.TrimSpace(h), " ")
	if strings.EqualFold(scheme, "Basic") {
		if a != authKeyBasic {
			return nil, omi.Errorf(omi.CodeWrongAuthMethod, omi.TypeWrongAuthMethod, "login/password authentication is only accepted by the access-key calls; sign this call with an access key")
		}
		email, pw, err := sigv4.ParseBasic(h)
		if err != nil {
			return nil, authFailed(err)
		}
		if _, err := sigv4.CheckDate(r.Header, "X-Osc-Date", now); err != nil {
			return nil, authFailed(err)
		}
		acct, err := s.svc.CheckLogin(omi.WithClientAddr(ctx, remoteIP(r)), email, pw)
		if err != nil {
			return nil, err
		}
		return &omi.Caller{Account: acct}, nil
	}
	parsed, err := sigv4.ParseAuthorization(h)
	if err != nil {
		return nil, authFailed(err)
	}
	if err := s.checkScope(r, parsed); err != nil {
		return nil, authFailed(err)
	}
	key, acct, err := s.svc.LookupAccessKey(ctx, parsed.AccessKey)
	if err != nil {
		return nil, err
	}
	if err := sigv4.Verify(r, path, body, parsed, key.SecretKey, now); err != nil {
		// osc-cli signs the collapsed path and sends "//api/..."; libcurl
		// clients sign the path exactly as sent. Accept either.
		raw := r.URL.EscapedPath()
		if raw == path || !errors.Is(err, sigv4.ErrSignatureMismatch) || sigv4.Verify(r, raw, body, parsed, key.SecretKey, now) != nil {
			return nil, authFailed(err)
		}
	}
	return &omi.Caller{Account: acct, AccessKeyID: key.AccessKeyId}, nil
}

func authFailed(err error) error {
	return &omi.Error{Code: omi.CodeAuthFailed, Type: omi.TypeAccessDenied, Details: "authentication failed: " + err.Error(), Err: err}
}

// Status maps an error to the HTTP status OUTSCALE uses for its code:
// authentication 401 (403 for a wrong method), 4xxx/5xxx/8xxx 400, 6xxx,
// 9xxx and dependency problems 409, internal 500. A client error is never
// a 5xx.
func Status(e *omi.Error) int {
	if e.Type == omi.TypeInternal {
		return http.StatusInternalServerError
	}
	n, err := strconv.Atoi(e.Code)
	if err != nil {
		return http.StatusBadRequest
	}
	switch {
	case n == 2:
		return http.StatusMethodNotAllowed
	case n == 8 || n == 10:
		return http.StatusForbidden
	case n == 24 || n == 25:
		return http.StatusTooManyRequests
	case n < 1000:
		return http.StatusUnauthorized
	case n < 2000, n >= 6000 && n < 7000, n >= 9000 && n < 10000, n == 10001:
		return http.StatusConflict
	}
	return http.StatusBadRequest
}

// errorItem is one entry of the Errors list.
type errorItem struct {
	Code    string `json:"Code"`
	Details string `json:"Details"`
	Type    string `json:"Type"`
}

// writeResponse writes the envelope: the payload's fields beside
// ResponseContext, or the Errors list.
func writeResponse(w http.ResponseWriter, status int, reqID string, out any, e *omi.Error) {
	ctxJSON := fmt.Sprintf(`"ResponseContext":{"RequestId":%q}`, reqID)
	var buf bytes.Buffer
	if e != nil {
		errs, _ := json.Marshal([]errorItem{{Code: e.Code, Type: e.Type, Details: e.Details}})
		buf.WriteString(`{"Errors":`)
		buf.Write(errs)
		buf.WriteString("," + ctxJSON + "}")
	} else {
		payload, err := json.Marshal(out)
		if err != nil || len(payload) < 2 || payload[0] != '{' {
			status = http.StatusInternalServerError
			buf.WriteString(`{"Errors":[{"Code":"0","Details":"could not encode the response","Type":"InternalError"}],` + ctxJSON + "}")
		} else {
			buf.WriteString("{" + ctxJSON)
			if inner := bytes.TrimSpace(payload[1 : len(payload)-1]); len(inner) > 0 {
				buf.WriteByte(',')
				buf.Write(inner)
			}
			buf.WriteByte('}')
		}
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
