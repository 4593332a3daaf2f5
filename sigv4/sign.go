package sigv4

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Signer signs outgoing requests the way OUTSCALE clients do, so that our
// CLI, load generator and tests exercise the same code path as real SDKs.
// The zero value is not usable: set Algorithm and the keys.
type Signer struct {
	Algorithm string // AlgorithmOSC4 or AlgorithmAWS4
	AccessKey string
	SecretKey string
	Region    string // e.g. "eu-west-2"
	Service   string // e.g. "api" (OSC4 clients) or "oapi"/"osc" (Go SDKs)
	// Headers lists extra headers to sign when present on the request, e.g.
	// "Content-Type". Host and the date header are always signed.
	Headers []string
}

// Sign sets the date header of the family and the Authorization header of
// r. body must be exactly the bytes r will send; Sign does not touch r.Body.
// The canonical URI is r.URL.EscapedPath() as is, so a path with repeated
// slashes is signed as such.
func (s *Signer) Sign(r *http.Request, body []byte, now time.Time) error {
	f, ok := familyOf(s.Algorithm)
	if !ok {
		return fmt.Errorf("sign: %w: %q", ErrUnsupportedAlgorithm, s.Algorithm)
	}
	if s.AccessKey == "" || s.SecretKey == "" || s.Region == "" || s.Service == "" {
		return errors.New("sign: access key, secret key, region and service are required")
	}
	if r.Header == nil {
		r.Header = http.Header{}
	}
	date := now.UTC().Format(DateFormat)
	r.Header.Set(f.dateHeader, date)

	signed := []string{"host", strings.ToLower(f.dateHeader)}
	for _, h := range s.Headers {
		h = strings.ToLower(h)
		if h != "host" && h != "authorization" && len(r.Header.Values(h)) > 0 && !contains(signed, h) {
			signed = append(signed, h)
		}
	}
	sort.Strings(signed)

	query, err := canonicalQuery(r.URL.RawQuery)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	auth := Authorization{Algorithm: s.Algorithm, AccessKey: s.AccessKey, Date: date[:8],
		Region: s.Region, Service: s.Service, SignedHeaders: signed}
	c := canonical{method: r.Method, path: path, query: query, header: r.Header,
		host: requestHost(r), contentLength: r.ContentLength, signed: signed,
		payload: payloadHash(r.Header, signed, f, body)}
	key := signingKey(f, s.SecretKey, auth.Date, s.Region, s.Service)
	sig := c.signature(f, date, auth.scope(), key)

	r.Header.Set("Authorization", fmt.Sprintf("%s Credential=%s/%s, SignedHeaders=%s, Signature=%s",
		s.Algorithm, s.AccessKey, auth.scope(), strings.Join(signed, ";"), hex.EncodeToString(sig)))
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
