package apitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// Checker is an http.RoundTripper that checks every response against what
// OUTSCALE clients require, and reports violations as test errors:
//
//   - the status is never 5xx (the v3 SDK, terraform and packer retry 5xx
//     for up to 40 minutes, so a 5xx looks like a hang to them);
//   - Content-Type is application/json (the v3 SDK parses nothing else);
//   - the body is a JSON object with ResponseContext.RequestId;
//   - a non-200 body carries Errors[0].Code as a string of digits;
//   - with Spec set, the body conforms to the response schema the OpenAPI
//     specification declares for the operation and status (ErrorResponse
//     for an error status the operation does not declare).
type Checker struct {
	// Next is the transport that sends the requests.
	Next http.RoundTripper
	// Spec validates bodies when not nil.
	Spec *Spec

	t       testing.TB
	checked atomic.Int64
	mu      sync.Mutex
	report  []string
}

// NewChecker returns a checker reporting to t.
func NewChecker(t testing.TB, next http.RoundTripper) *Checker {
	return &Checker{Next: next, t: t}
}

// Checked returns how many responses the checker has looked at.
func (c *Checker) Checked() int64 { return c.checked.Load() }

// RoundTrip sends the request and checks the response. The body is read
// whole and handed back unchanged.
func (c *Checker) RoundTrip(req *http.Request) (*http.Response, error) {
	return c.via(c.Next, req)
}

// via sends req with next and checks the response.
func (c *Checker) via(next http.RoundTripper, req *http.Request) (*http.Response, error) {
	resp, err := next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("apitest: read response body: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	c.Check(req.Method+" "+req.URL.Path, CallName(req.URL.Path), resp.StatusCode, resp.Header, body)
	return resp, nil
}

// Check checks one response of call (the operation name, "" if unknown);
// what names the request in messages. It returns the problems found, which
// are also reported as test errors.
func (c *Checker) Check(what, call string, status int, h http.Header, body []byte) []string {
	c.checked.Add(1)
	problems := CheckResponse(status, h, body)
	if c.Spec != nil && len(problems) == 0 {
		if err := c.Spec.ValidateResponse(call, status, body); err != nil {
			problems = append(problems, "OpenAPI: "+err.Error())
		}
	}
	for _, p := range problems {
		msg := fmt.Sprintf("apitest: %s -> %d: %s\nbody: %s", what, status, p, truncate(body, 2000))
		c.mu.Lock()
		c.report = append(c.report, msg)
		c.mu.Unlock()
		c.t.Error(msg)
	}
	return problems
}

// Problems returns every violation reported so far.
func (c *Checker) Problems() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.report...)
}

// CheckResponse applies the envelope rules (everything but the OpenAPI
// schema) to one response and returns the problems found.
func CheckResponse(status int, h http.Header, body []byte) []string {
	var problems []string
	if status >= 500 {
		problems = append(problems, fmt.Sprintf("server error %d: a client must never see a 5xx", status))
	}
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		problems = append(problems, fmt.Sprintf("Content-Type is %q, want application/json", h.Get("Content-Type")))
	}
	var env struct {
		ResponseContext *struct {
			RequestId *string
		}
		Errors []struct {
			Code    *string
			Type    *string
			Details *string
		}
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return append(problems, fmt.Sprintf("body is not a JSON object: %v", err))
	}
	if env.ResponseContext == nil || env.ResponseContext.RequestId == nil || *env.ResponseContext.RequestId == "" {
		problems = append(problems, "ResponseContext.RequestId is missing")
	}
	if status != http.StatusOK {
		if len(env.Errors) == 0 {
			problems = append(problems, "error response without Errors")
		}
		for i, e := range env.Errors {
			if e.Code == nil || *e.Code == "" {
				problems = append(problems, fmt.Sprintf("Errors[%d].Code is missing", i))
			} else if _, err := strconv.Atoi(*e.Code); err != nil {
				problems = append(problems, fmt.Sprintf("Errors[%d].Code %q is not a number", i, *e.Code))
			}
			if e.Type == nil || *e.Type == "" {
				problems = append(problems, fmt.Sprintf("Errors[%d].Type is missing", i))
			}
		}
	} else if len(env.Errors) > 0 {
		problems = append(problems, "200 response with Errors")
	}
	return problems
}

// CallName extracts the operation from /api/v1/X, /api/latest/X or /X
// (repeated slashes collapsed), or returns "".
func CallName(path string) string {
	for strings.Contains(path, "//") {
		path = strings.ReplaceAll(path, "//", "/")
	}
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

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}

// Spec is the OUTSCALE OpenAPI description loaded for validation.
type Spec struct {
	Doc *openapi3.T
	// StrictDates keeps format "date" strict. It is off for the SDK's
	// older copy of the spec, which declares some dates (Image.CreationDate)
	// as "date" where the API and the 1.40 spec have date-times; there a
	// "date" may also carry a time.
	StrictDates bool
	// errorSchema is components.schemas.ErrorResponse.
	errorSchema *openapi3.Schema
}

var (
	specOnce sync.Once
	spec     *Spec
	specErr  error
)

// SpecPath finds the OpenAPI file: $OMI_API_SPEC, else shared/spec beside the
// repository (where the team and CI keep it, API 1.40.1), else the copy
// shipped in the osc-sdk-go v3 module (pkg/osc/api.yaml, API 1.35.3).
func SpecPath() (string, error) {
	if p := os.Getenv("OMI_API_SPEC"); p != "" {
		return p, nil
	}
	p := filepath.Join(RepoRoot(), "..", "shared", "spec", "osc-api-outscale.yaml")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/outscale/osc-sdk-go/v3")
	cmd.Dir = RepoRoot()
	out, err := cmd.Output()
	if err == nil {
		sdk := filepath.Join(strings.TrimSpace(string(out)), "pkg", "osc", "api.yaml")
		if _, err := os.Stat(sdk); err == nil {
			return sdk, nil
		}
	}
	return "", fmt.Errorf("OpenAPI spec not found in %s nor in the osc-sdk-go v3 module (set OMI_API_SPEC)", p)
}

// LoadSpec loads the specification once per test binary (it is a 1 MB
// document; parsing takes about a second).
func LoadSpec() (*Spec, error) {
	specOnce.Do(func() {
		path, err := SpecPath()
		if err != nil {
			specErr = err
			return
		}
		loader := openapi3.NewLoader()
		loader.IsExternalRefsAllowed = true
		doc, err := loader.LoadFromFile(path)
		if err != nil {
			specErr = fmt.Errorf("load OpenAPI spec %s: %w", path, err)
			return
		}
		ref := doc.Components.Schemas["ErrorResponse"]
		if ref == nil || ref.Value == nil {
			specErr = errors.New("OpenAPI spec has no ErrorResponse schema")
			return
		}
		addRecordedProperties(doc)
		spec = &Spec{Doc: doc, errorSchema: ref.Value, StrictDates: !strings.HasSuffix(path, filepath.Join("pkg", "osc", "api.yaml"))}
	})
	return spec, specErr
}

// addRecordedProperties declares what the real API returns and the spec
// of shared/spec (1.40.1) omits, so that omi may answer it: the Vm's
// ShutdownBehaviorConfiguration, on every VM of terraform-provider-
// outscale's recorded states and declared by osc-sdk-go v3's spec.
func addRecordedProperties(doc *openapi3.T) {
	vm := doc.Components.Schemas["Vm"]
	if vm == nil || vm.Value == nil || vm.Value.Properties["ShutdownBehaviorConfiguration"] != nil {
		return
	}
	enum := func(vals ...any) *openapi3.SchemaRef {
		s := openapi3.NewStringSchema()
		s.Enum = vals
		return s.NewRef()
	}
	no := false
	conf := openapi3.NewObjectSchema()
	conf.Properties = openapi3.Schemas{"GuestAction": enum("stop", "terminate"), "HostAction": enum("restart", "stop")}
	conf.AdditionalProperties = openapi3.AdditionalProperties{Has: &no}
	vm.Value.Properties["ShutdownBehaviorConfiguration"] = conf.NewRef()
}

// ValidateResponse checks body against the schema the specification gives
// for call's response with that status. An error status the operation does
// not declare (409 on most calls) and errors of calls the spec does not
// know are checked against ErrorResponse; successes of such calls (omi
// extensions) are not checked.
func (s *Spec) ValidateResponse(call string, status int, body []byte) error {
	var schema *openapi3.Schema
	if item := s.Doc.Paths.Find("/" + call); call != "" && item != nil && item.Post != nil {
		if r := item.Post.Responses.Status(status); r != nil && r.Value != nil {
			if mt := r.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil {
				schema = mt.Schema.Value
			}
		}
		if schema == nil && status == http.StatusOK {
			return fmt.Errorf("the spec declares no 200 JSON response for %s", call)
		}
	}
	if schema == nil {
		if status == http.StatusOK {
			// An omi extension (a call the OUTSCALE spec does not
			// define, such as ReadImageInspection): only the envelope
			// rules apply.
			return nil
		}
		schema = s.errorSchema
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	opts := []openapi3.SchemaValidationOption{openapi3.MultiErrors(), openapi3.VisitAsResponse(), openapi3.EnableFormatValidation()}
	if !s.StrictDates {
		opts = append(opts, openapi3.WithStringFormatValidator("date", openapi3.NewRegexpFormatValidator(`^[0-9]{4}-[0-9]{2}-[0-9]{2}`)))
	}
	return schema.VisitJSON(v, opts...)
}

func lookPath(name string) (string, error) { return exec.LookPath(name) }
