package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Verify checks that auth, parsed from r's Authorization header, is a valid
// signature of r by the holder of secretKey at time now.
//
// path is the request's escaped path after [CleanPath], used verbatim as the
// canonical URI; body is the raw request body. The checks run in this order
// and return the matching error: date header of the family present
// (ErrMissingDate) and well-formed (ErrBadDate), scope date equal to its day
// (ErrScopeDateMismatch), date within [MaxSkew] of now (ErrRequestTimeSkewed),
// and the signature itself (ErrSignatureMismatch). When the Host header
// carries a port and the signature does not match, the host without the
// port is tried too, because the Python and Rust SDKs sign it that way.
func Verify(r *http.Request, path string, body []byte, auth *Authorization, secretKey string, now time.Time) error {
	if auth == nil {
		return fmt.Errorf("%w: no authorization", ErrMalformed)
	}
	f, ok := familyOf(auth.Algorithm)
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, auth.Algorithm)
	}
	date, t, err := parseDate(r.Header, f.dateHeader)
	if err != nil {
		return err
	}
	if date[:8] != auth.Date {
		return fmt.Errorf("%w: scope %s, %s %s", ErrScopeDateMismatch, auth.Date, f.dateHeader, date)
	}
	if err := checkSkew(t, now); err != nil {
		return fmt.Errorf("%s: %w", f.dateHeader, err)
	}

	want, err := hex.DecodeString(auth.Signature)
	if err != nil {
		return fmt.Errorf("%w: signature is not hex", ErrMalformed)
	}
	query, err := canonicalQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	key := signingKey(f, secretKey, auth.Date, auth.Region, auth.Service)
	payload := payloadHash(r.Header, auth.SignedHeaders, f, body)
	host := requestHost(r)

	c := canonical{method: r.Method, path: path, query: query, header: r.Header,
		host: host, contentLength: r.ContentLength, signed: auth.SignedHeaders, payload: payload}
	if hmac.Equal(c.signature(f, date, auth.scope(), key), want) {
		return nil
	}
	if bare := stripPort(host); bare != host {
		c.host = bare
		if hmac.Equal(c.signature(f, date, auth.scope(), key), want) {
			return nil
		}
	}
	return fmt.Errorf("%w for access key %s", ErrSignatureMismatch, auth.AccessKey)
}

// canonical holds the parts of a request that go into its canonical form.
type canonical struct {
	method, path, query string
	header              http.Header
	host                string
	contentLength       int64
	signed              []string // lower-case header names
	payload             string   // hex SHA-256 of the body, or UnsignedPayload
}

// signature returns the raw HMAC of the string to sign of c.
func (c *canonical) signature(f family, date, scope string, key []byte) []byte {
	crHash := sha256.Sum256([]byte(c.request()))
	var sts strings.Builder
	sts.Grow(len(f.algorithm) + len(date) + len(scope) + 3 + 2*len(crHash))
	sts.WriteString(f.algorithm)
	sts.WriteByte('\n')
	sts.WriteString(date)
	sts.WriteByte('\n')
	sts.WriteString(scope)
	sts.WriteByte('\n')
	sts.WriteString(hex.EncodeToString(crHash[:]))
	return hmacSHA256(key, sts.String())
}

// request builds the canonical request:
// METHOD \n URI \n query \n headers \n signed-headers \n payload-hash.
func (c *canonical) request() string {
	var b strings.Builder
	b.Grow(256 + len(c.path) + len(c.query))
	b.WriteString(c.method)
	b.WriteByte('\n')
	b.WriteString(c.path)
	b.WriteByte('\n')
	b.WriteString(c.query)
	b.WriteByte('\n')
	for _, name := range c.signed {
		b.WriteString(name)
		b.WriteByte(':')
		switch values := c.header.Values(name); {
		case name == "host":
			b.WriteString(c.host)
		case len(values) == 0 && name == "content-length" && c.contentLength >= 0:
			// Go moves Content-Length out of the header map on both sides.
			b.WriteString(strconv.FormatInt(c.contentLength, 10))
		default:
			for i, v := range values {
				if i > 0 {
					b.WriteByte(',')
				}
				writeTrimmed(&b, v)
			}
		}
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	for i, name := range c.signed {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(name)
	}
	b.WriteByte('\n')
	b.WriteString(c.payload)
	return b.String()
}

// writeTrimmed writes v without leading and trailing blanks and with each
// inner run of spaces and tabs replaced by one space.
func writeTrimmed(b *strings.Builder, v string) {
	v = strings.Trim(v, " \t")
	blank := false
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == ' ' || c == '\t' {
			blank = true
			continue
		}
		if blank {
			b.WriteByte(' ')
			blank = false
		}
		b.WriteByte(v[i])
	}
}

// canonicalQuery decodes a raw query and re-encodes it the SigV4 way:
// every name and value URI-encoded, pairs sorted by name then value.
func canonicalQuery(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	var pairs []string
	for _, p := range strings.Split(raw, "&") {
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, "=")
		dk, err := url.QueryUnescape(k)
		if err != nil {
			return "", fmt.Errorf("%w: query %q: %w", ErrMalformed, p, err)
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return "", fmt.Errorf("%w: query %q: %w", ErrMalformed, p, err)
		}
		pairs = append(pairs, uriEncode(dk)+"="+uriEncode(dv))
	}
	// "=" sorts before every encoded character, so sorting "k=v" strings
	// orders by name first, then value.
	sort.Strings(pairs)
	return strings.Join(pairs, "&"), nil
}

// uriEncode percent-encodes every byte except the RFC 3986 unreserved ones.
func uriEncode(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// payloadHash returns the last line of the canonical request: the body hash,
// unless the client signed a content-hash header saying UNSIGNED-PAYLOAD.
func payloadHash(h http.Header, signed []string, f family, body []byte) string {
	name := strings.ToLower(f.contentHash)
	for _, s := range signed {
		if s == name && strings.TrimSpace(h.Get(name)) == UnsignedPayload {
			return UnsignedPayload
		}
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// signingKey returns the key of one scope, from keyCache when it was
// derived before. Clients derive it once a day per scope and so can we:
// the four HMACs of the derivation cost about as much as verifying the
// signature itself.
func signingKey(f family, secret, date, region, service string) []byte {
	// Length prefixes keep the id injective whatever bytes the fields hold.
	id := f.seedPrefix + "\x00" + strconv.Itoa(len(secret)) + ":" + secret + strconv.Itoa(len(date)) + ":" + date +
		strconv.Itoa(len(region)) + ":" + region + service
	keyCache.Lock()
	k, ok := keyCache.m[id]
	keyCache.Unlock()
	if ok {
		return k
	}
	k = deriveSigningKey(f, secret, date, region, service)
	keyCache.Lock()
	// The scope comes from the request, so bound what it can make us keep:
	// a full cache starts over (live scopes are a few per key and day).
	if len(keyCache.m) >= maxCachedKeys {
		clear(keyCache.m)
	}
	keyCache.m[id] = k
	keyCache.Unlock()
	return k
}

// maxCachedKeys bounds keyCache.
const maxCachedKeys = 4096

// keyCache holds derived signing keys by family, secret, date, region and
// service. A key is a pure function of those, so an entry never goes
// stale; a secret that is deleted simply stops being looked up. The cached
// slices are never written to (hmacSHA256 only reads its key).
var keyCache = struct {
	sync.Mutex
	m map[string][]byte
}{m: map[string][]byte{}}

// deriveSigningKey derives the key of one scope: HMAC chain over date,
// region, service and terminator, seeded with the family prefix and the
// secret.
func deriveSigningKey(f family, secret, date, region, service string) []byte {
	k := hmacSHA256([]byte(f.seedPrefix+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, f.terminator)
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// requestHost returns the host a client saw: r.Host on the server side,
// the URL host for an outgoing request that did not override it.
func requestHost(r *http.Request) string {
	if r.Host != "" {
		return r.Host
	}
	if r.URL != nil {
		return r.URL.Host
	}
	return ""
}

// stripPort removes a trailing :port, keeping IPv6 brackets.
func stripPort(host string) string {
	i := strings.LastIndexByte(host, ':')
	if i < 0 || i < strings.LastIndexByte(host, ']') {
		return host
	}
	return host[:i]
}
