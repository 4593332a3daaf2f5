// Package sigv4 verifies and produces the request signatures used by the
// OUTSCALE API.
//
// OUTSCALE clients sign requests with one of two variants of AWS Signature
// Version 4 that differ only in their constant strings: the OSC4 family
// (OSC4-HMAC-SHA256, X-Osc-Date, osc4_request), used by the Python SDK,
// osc-cli and curl, and the plain AWS4 family (AWS4-HMAC-SHA256, X-Amz-Date,
// aws4_request), used by all Go tooling. Clients disagree on the region,
// service and signed headers they put in the signature, so the verifier
// always derives the signing key from the scope the client wrote and checks
// the header list the client declared. Deciding whether a region or service
// is acceptable is left to the caller, which sees them in [Authorization].
//
// A server typically calls [ParseAuthorization], looks up the secret key of
// [Authorization.AccessKey], then calls [Verify]. [Signer] produces the same
// signatures for our own clients and tests.
package sigv4

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Algorithm names as they appear at the start of the Authorization header
// and in the string to sign.
const (
	AlgorithmOSC4 = "OSC4-HMAC-SHA256"
	AlgorithmAWS4 = "AWS4-HMAC-SHA256"
)

// MaxSkew is how far the signed date may be from the server clock. OUTSCALE
// documents that a request must arrive within five minutes of its timestamp.
const MaxSkew = 5 * time.Minute

// DateFormat is the layout of the X-Osc-Date and X-Amz-Date headers.
const DateFormat = "20060102T150405Z"

// UnsignedPayload is the X-Amz-Content-Sha256 (or X-Osc-Content-Sha256)
// value with which S3-style clients declare that the body is not signed.
const UnsignedPayload = "UNSIGNED-PAYLOAD"

// Errors returned by this package. They are wrapped with details, so compare
// them with errors.Is; the API layer maps each to an OUTSCALE error code.
var (
	ErrMalformed            = errors.New("malformed authorization header")
	ErrUnsupportedAlgorithm = errors.New("unsupported signature algorithm")
	ErrMissingDate          = errors.New("missing date header")
	ErrBadDate              = errors.New("bad date format")
	ErrRequestTimeSkewed    = errors.New("request time too skewed")
	ErrScopeDateMismatch    = errors.New("credential scope date does not match date header")
	ErrSignatureMismatch    = errors.New("signature does not match")
)

// family holds the constants that distinguish OSC4 from AWS4 signing.
type family struct {
	algorithm   string
	seedPrefix  string // prepended to the secret key to seed key derivation
	terminator  string // last element of the credential scope
	dateHeader  string
	contentHash string // header carrying the payload hash, S3 style
}

func familyOf(algorithm string) (family, bool) {
	switch algorithm {
	case AlgorithmOSC4:
		return family{AlgorithmOSC4, "OSC4", "osc4_request", "X-Osc-Date", "X-Osc-Content-Sha256"}, true
	case AlgorithmAWS4:
		return family{AlgorithmAWS4, "AWS4", "aws4_request", "X-Amz-Date", "X-Amz-Content-Sha256"}, true
	}
	return family{}, false
}

// Authorization is a parsed signature Authorization header. It is exported
// so that the caller can look up the secret key of AccessKey, and apply its
// own policy on Region and Service, before calling [Verify].
type Authorization struct {
	Algorithm     string   // AlgorithmOSC4 or AlgorithmAWS4
	AccessKey     string   // access key ID from the Credential
	Date          string   // scope date, yyyymmdd
	Region        string   // scope region, as written by the client
	Service       string   // scope service, as written by the client
	SignedHeaders []string // lower-case header names, in the client's order
	Signature     string   // 64 lower-case hex digits
}

// DateHeader returns the name of the header that carries the request time
// for this algorithm family (X-Osc-Date or X-Amz-Date).
func (a *Authorization) DateHeader() string {
	f, _ := familyOf(a.Algorithm)
	return f.dateHeader
}

// scope returns the credential scope, the third line of the string to sign.
func (a *Authorization) scope() string {
	f, _ := familyOf(a.Algorithm)
	return a.Date + "/" + a.Region + "/" + a.Service + "/" + f.terminator
}

// ParseAuthorization parses a signature Authorization header:
//
//	<ALG> Credential=<AK>/<yyyymmdd>/<region>/<service>/<terminator>, SignedHeaders=<h1;h2>, Signature=<hex>
//
// Fields may be separated by commas, spaces or both and may come in any
// order. Host must be among the signed headers. It returns ErrUnsupportedAlgorithm when the scheme is neither OSC4
// nor AWS4 (including "Basic"), and ErrMalformed for anything else wrong.
func ParseAuthorization(header string) (*Authorization, error) {
	header = strings.TrimSpace(header)
	if header == "" {
		return nil, fmt.Errorf("%w: empty header", ErrMalformed)
	}
	alg, rest, _ := strings.Cut(header, " ")
	f, ok := familyOf(alg)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, alg)
	}
	a := &Authorization{Algorithm: alg}
	var credential, signedHeaders string
	fields := strings.FieldsFunc(rest, func(c rune) bool { return c == ',' || c == ' ' || c == '\t' })
	for _, field := range fields {
		key, value, ok := strings.Cut(field, "=")
		var dst *string
		switch key {
		case "Credential":
			dst = &credential
		case "SignedHeaders":
			dst = &signedHeaders
		case "Signature":
			dst = &a.Signature
		}
		if !ok || dst == nil || *dst != "" || value == "" {
			return nil, fmt.Errorf("%w: unexpected field %q", ErrMalformed, field)
		}
		*dst = value
	}
	if credential == "" || signedHeaders == "" || a.Signature == "" {
		return nil, fmt.Errorf("%w: need Credential, SignedHeaders and Signature", ErrMalformed)
	}

	parts := strings.Split(credential, "/")
	if len(parts) != 5 || parts[0] == "" || parts[2] == "" || parts[3] == "" {
		return nil, fmt.Errorf("%w: credential %q is not AK/date/region/service/terminator", ErrMalformed, credential)
	}
	if parts[4] != f.terminator {
		return nil, fmt.Errorf("%w: credential terminator %q, want %q", ErrMalformed, parts[4], f.terminator)
	}
	if !isDigits(parts[1], 8) {
		return nil, fmt.Errorf("%w: credential date %q is not yyyymmdd", ErrMalformed, parts[1])
	}
	a.AccessKey, a.Date, a.Region, a.Service = parts[0], parts[1], parts[2], parts[3]

	for _, h := range strings.Split(signedHeaders, ";") {
		if h == "" {
			return nil, fmt.Errorf("%w: empty name in SignedHeaders %q", ErrMalformed, signedHeaders)
		}
		a.SignedHeaders = append(a.SignedHeaders, strings.ToLower(h))
	}
	// SigV4 requires host to be signed; without it a request could be
	// replayed against another endpoint sharing the keys.
	if !contains(a.SignedHeaders, "host") {
		return nil, fmt.Errorf("%w: SignedHeaders %q does not include host", ErrMalformed, signedHeaders)
	}

	a.Signature = strings.ToLower(a.Signature)
	if len(a.Signature) != 64 || strings.Trim(a.Signature, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("%w: signature is not 64 hex digits", ErrMalformed)
	}
	return a, nil
}

func isDigits(s string, n int) bool {
	return len(s) == n && strings.Trim(s, "0123456789") == ""
}

// CleanPath collapses runs of slashes in a URL path. osc-cli requests
// //api/latest/X but signs /api/latest/X, so the server must clean the path
// before routing and before passing it to [Verify]. An empty path becomes "/".
func CleanPath(p string) string {
	if !strings.Contains(p, "//") {
		if p == "" {
			return "/"
		}
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// CheckDate reads the date header named name (X-Osc-Date or X-Amz-Date),
// parses it and checks it is within [MaxSkew] of now. Basic-auth requests
// must carry X-Osc-Date too, and this is how the server checks it. It
// returns the parsed time, or ErrMissingDate, ErrBadDate or
// ErrRequestTimeSkewed.
func CheckDate(h http.Header, name string, now time.Time) (time.Time, error) {
	_, t, err := parseDate(h, name)
	if err != nil {
		return time.Time{}, err
	}
	if err := checkSkew(t, now); err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}

// parseDate returns the trimmed value of the date header name and its time.
func parseDate(h http.Header, name string) (string, time.Time, error) {
	v := strings.TrimSpace(h.Get(name))
	if v == "" {
		return "", time.Time{}, fmt.Errorf("%w: %s", ErrMissingDate, name)
	}
	t, err := time.Parse(DateFormat, v)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%w: %s %q: %w", ErrBadDate, name, v, err)
	}
	return v, t, nil
}

func checkSkew(t, now time.Time) error {
	switch d := now.Sub(t); {
	case d > MaxSkew:
		return fmt.Errorf("%w: %s is %s in the past", ErrRequestTimeSkewed, t.Format(DateFormat), d.Round(time.Second))
	case d < -MaxSkew:
		return fmt.Errorf("%w: %s is %s in the future", ErrRequestTimeSkewed, t.Format(DateFormat), (-d).Round(time.Second))
	}
	return nil
}
