// Package fetch gets URLs that users hand to omi (the FileLocation of an
// image or snapshot import) without letting them point omi at anything else:
// only http and https, only hosts on an operator's allow-list, checked before
// any connection is made, again for every redirect, and again at dial time
// against the very address being dialed. Bodies are bounded in size and in
// time.
//
// Allow-list entries are "host:port", "host" or "host:*":
//   - "host:port" allows exactly that port;
//   - a bare "host" allows only the scheme's default port (80 for http, 443
//     for https): allowing every port of an allowed host would open the other
//     services on it (on 127.0.0.1, omi's own API and NBD server);
//   - "host:*" allows every port, for operators who mean it.
//
// Hosts are compared exactly and case-insensitively: a name matches only
// that name (no wildcards, no subdomains), an IP literal only that address
// (IPv6 in brackets, "[::1]:3001"). A URL naming an allowed host's address
// instead of its name, or the reverse, is refused. When an allowed entry is a
// name, the addresses it resolves to at dial time are dialed for that name
// only; nothing else is ever resolved.
package fetch

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Errors a caller maps to client errors (4xx). Each returned error wraps one
// of them or is a *StatusError, so errors.Is / errors.As classify it.
var (
	// ErrNotAllowed: the URL (or a redirect) is not http(s), carries
	// credentials, or names a host or port not on the allow-list.
	ErrNotAllowed = errors.New("fetch: URL not allowed")
	// ErrTooLarge: the body is (or says it is) larger than the limit.
	ErrTooLarge = errors.New("fetch: content too large")
	// ErrTimeout: connecting, waiting for the response headers, or waiting
	// for the next bytes of the body took too long.
	ErrTimeout = errors.New("fetch: timed out")
	// ErrUnreachable: the host could not be resolved or connected to.
	ErrUnreachable = errors.New("fetch: host unreachable")
	// ErrNoRange: the server ignored a Range request (ReaderAt only).
	ErrNoRange = errors.New("fetch: server does not support range requests")
)

// StatusError is a response with a status other than the one expected.
type StatusError struct {
	Code int    // HTTP status code
	URL  string // the URL without its query (pre-signed queries are credentials)
	// Detail is the S3 error code when the body is an S3 error document
	// (e.g. "AccessDenied", "NoSuchKey"), else empty.
	Detail string
}

func (e *StatusError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("fetch: %s: HTTP %d (%s)", e.URL, e.Code, e.Detail)
	}
	return fmt.Sprintf("fetch: %s: HTTP %d", e.URL, e.Code)
}

// Resolver resolves host names; *net.Resolver satisfies it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options tunes a Fetcher; zero fields take the defaults shown.
type Options struct {
	ConnectTimeout time.Duration // TCP connect and TLS handshake (10 s)
	HeaderTimeout  time.Duration // from request sent to response headers (30 s)
	IdleTimeout    time.Duration // longest wait for the next body bytes (60 s)
	MaxSize        int64         // largest body accepted (1 TiB)
	MaxRedirects   int           // redirects followed, each re-checked (5); negative refuses all
	Resolver       Resolver      // name resolution (net.DefaultResolver)
	TLSConfig      *tls.Config   // for https (system roots); e.g. a private CA of an external S3
}

// Fetcher gets allowed URLs. It is safe for concurrent use.
type Fetcher struct {
	allow  []entry
	opts   Options
	client *http.Client
}

type entry struct {
	host string // lower-case name, or canonical IP text
	port string // "" = the scheme's default port, "*" = any
	ip   bool
}

// New builds a Fetcher for the given allow-list (see the package comment for
// the entry syntax). An empty list allows nothing.
func New(allow []string, opts Options) (*Fetcher, error) {
	f := &Fetcher{opts: opts}
	for _, a := range allow {
		e, err := parseEntry(a)
		if err != nil {
			return nil, err
		}
		f.allow = append(f.allow, e)
	}
	if f.opts.ConnectTimeout <= 0 {
		f.opts.ConnectTimeout = 10 * time.Second
	}
	if f.opts.HeaderTimeout <= 0 {
		f.opts.HeaderTimeout = 30 * time.Second
	}
	if f.opts.IdleTimeout <= 0 {
		f.opts.IdleTimeout = 60 * time.Second
	}
	if f.opts.MaxSize <= 0 {
		f.opts.MaxSize = 1 << 40
	}
	if f.opts.MaxRedirects == 0 {
		f.opts.MaxRedirects = 5
	}
	if f.opts.Resolver == nil {
		f.opts.Resolver = net.DefaultResolver
	}
	transport := &http.Transport{
		Proxy:                 nil, // never an environment proxy: it would be an unchecked hop
		DialContext:           f.dial,
		TLSHandshakeTimeout:   f.opts.ConnectTimeout,
		TLSClientConfig:       f.opts.TLSConfig,
		ResponseHeaderTimeout: f.opts.HeaderTimeout,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	f.client = &http.Client{Transport: transport, CheckRedirect: f.checkRedirect}
	return f, nil
}

// ParseAllowList splits a comma-separated list (the --fetch-allow flag) into
// entries, validating each.
func ParseAllowList(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if _, err := parseEntry(part); err != nil {
			return nil, err
		}
		out = append(out, part)
	}
	return out, nil
}

// EntryFromURL is the allow-list entry ("host:port", default port spelled
// out) for an endpoint URL such as the built-in object storage's
// "http://127.0.0.1:3001" or an external S3's "https://s3.example.com":
// what --fetch-allow holds by default.
func EntryFromURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return "", fmt.Errorf("fetch: endpoint %q is not an http(s) URL", endpoint)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	e := net.JoinHostPort(u.Hostname(), port)
	if _, err := parseEntry(e); err != nil {
		return "", err
	}
	return e, nil
}

func parseEntry(s string) (entry, error) {
	bad := func(why string) (entry, error) {
		return entry{}, fmt.Errorf("fetch: allow-list entry %q: %s", s, why)
	}
	if s == "" || strings.ContainsAny(s, "/@?# \t") {
		return bad("want host, host:port or host:*")
	}
	host, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
		if port != "*" {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return bad("bad port")
			}
		}
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		host = s[1 : len(s)-1]
	} else if strings.Contains(s, ":") && strings.Count(s, ":") == 1 {
		return bad("bad port")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return bad("zoned addresses are not supported")
		}
		return entry{host: ip.Unmap().String(), port: port, ip: true}, nil
	}
	if strings.Contains(host, ":") {
		return bad("IPv6 addresses go in brackets, e.g. [::1]:3001")
	}
	name := normalizeName(host)
	if name == "" || !validName(name) {
		return bad("not a host name or IP address")
	}
	return entry{host: name, port: port}, nil
}

func normalizeName(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

func validName(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// target is a checked URL's host and port, ready to match or dial.
type target struct {
	host string // normalized name or canonical IP
	ip   bool
	port string
}

// Check reports whether rawURL may be fetched. It looks at the URL alone:
// nothing is resolved or connected. The error wraps ErrNotAllowed.
func (f *Fetcher) Check(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%w: unparsable URL", ErrNotAllowed)
	}
	_, err = f.checkURL(u)
	return err
}

func (f *Fetcher) checkURL(u *url.URL) (target, error) {
	refuse := func(format string, args ...any) (target, error) {
		return target{}, fmt.Errorf("%w: %s", ErrNotAllowed, fmt.Sprintf(format, args...))
	}
	var defPort string
	switch u.Scheme {
	case "http":
		defPort = "80"
	case "https":
		defPort = "443"
	default:
		return refuse("scheme %q (only http and https)", u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" {
		return refuse("no host")
	}
	if u.User != nil {
		return refuse("credentials in the URL")
	}
	port := u.Port()
	if port == "" {
		if strings.HasSuffix(u.Host, ":") {
			return refuse("empty port")
		}
		port = defPort
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return refuse("bad port %q", port)
	}
	t, err := makeTarget(u.Hostname(), port)
	if err != nil {
		return refuse("%v", err)
	}
	if !f.allowed(t, defPort) {
		return refuse("host %s is not on the allow-list", net.JoinHostPort(t.host, port))
	}
	return t, nil
}

func makeTarget(host, port string) (target, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return target{}, errors.New("zoned address")
		}
		return target{host: ip.Unmap().String(), ip: true, port: port}, nil
	}
	name := normalizeName(host)
	if !validName(name) {
		return target{}, fmt.Errorf("bad host name %q", host)
	}
	return target{host: name, port: port}, nil
}

// allowed matches a target against the list; defPort is the port a bare
// entry stands for (the scheme's default).
func (f *Fetcher) allowed(t target, defPort string) bool {
	for _, e := range f.allow {
		if e.ip != t.ip || e.host != t.host {
			continue
		}
		switch e.port {
		case "*":
			return true
		case "":
			if t.port == defPort {
				return true
			}
		default:
			if t.port == e.port {
				return true
			}
		}
	}
	return false
}

// allowedAnyScheme is the dial-time check: the transport dials host:port
// without telling the scheme, so a bare entry counts for both default ports.
func (f *Fetcher) allowedAnyScheme(t target) bool {
	return f.allowed(t, "80") || f.allowed(t, "443")
}

func (f *Fetcher) checkRedirect(req *http.Request, via []*http.Request) error {
	if f.opts.MaxRedirects < 0 {
		return fmt.Errorf("%w: redirect to %s refused", ErrNotAllowed, redact(req.URL))
	}
	if len(via) > f.opts.MaxRedirects {
		return fmt.Errorf("%w: more than %d redirects", ErrNotAllowed, f.opts.MaxRedirects)
	}
	if via[len(via)-1].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("%w: redirect from https to %s", ErrNotAllowed, req.URL.Scheme)
	}
	if _, err := f.checkURL(req.URL); err != nil {
		return fmt.Errorf("redirect: %w", err)
	}
	return nil
}

// dial is the transport's only way out. It re-checks the address against the
// allow-list (whatever asked for it), resolves an allowed name itself and
// dials exactly the addresses it got, so the address connected to is always
// the one that was checked.
func (f *Fetcher) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%w: dial %q", ErrNotAllowed, addr)
	}
	t, err := makeTarget(host, port)
	if err != nil || !f.allowedAnyScheme(t) {
		return nil, fmt.Errorf("%w: dial %s refused", ErrNotAllowed, addr)
	}
	var addrs []netip.Addr
	if t.ip {
		addrs = []netip.Addr{netip.MustParseAddr(t.host)}
	} else {
		rctx, cancel := context.WithTimeout(ctx, f.opts.ConnectTimeout)
		addrs, err = f.opts.Resolver.LookupNetIP(rctx, "ip", t.host)
		cancel()
		if err != nil || len(addrs) == 0 {
			return nil, fmt.Errorf("%w: resolve %s: %v", ErrUnreachable, t.host, err)
		}
	}
	d := net.Dialer{Timeout: f.opts.ConnectTimeout}
	var firstErr error
	for _, a := range addrs {
		conn, err := d.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	var ne net.Error
	if errors.As(firstErr, &ne) && ne.Timeout() {
		return nil, fmt.Errorf("%w: connect to %s: %v", ErrTimeout, addr, firstErr)
	}
	return nil, fmt.Errorf("%w: connect to %s: %v", ErrUnreachable, addr, firstErr)
}

// Get fetches rawURL and returns its body and size (-1 when the server did
// not say). The body fails with ErrTooLarge past Options.MaxSize and with
// ErrTimeout when no bytes arrive for Options.IdleTimeout; closing it ends
// the transfer.
func (f *Fetcher) Get(ctx context.Context, rawURL string) (io.ReadCloser, int64, error) {
	resp, body, err := f.do(ctx, rawURL, "", http.StatusOK)
	if err != nil {
		return nil, 0, err
	}
	return body, resp.ContentLength, nil
}

// do sends a GET (with a Range header when rng is set) and checks the
// status. The returned body owns the request's context.
func (f *Fetcher) do(ctx context.Context, rawURL, rng string, want int) (*http.Response, io.ReadCloser, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: unparsable URL", ErrNotAllowed)
	}
	if _, err := f.checkURL(u); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		cancel(nil)
		return nil, nil, fmt.Errorf("%w: %v", ErrNotAllowed, err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		cancel(nil)
		return nil, nil, classify(err, u)
	}
	if resp.StatusCode != want {
		detail := s3ErrorCode(resp.Body)
		resp.Body.Close()
		cancel(nil)
		if want == http.StatusPartialContent && resp.StatusCode == http.StatusOK {
			return nil, nil, fmt.Errorf("%w: %s answered 200 to a range request", ErrNoRange, redact(u))
		}
		return nil, nil, &StatusError{Code: resp.StatusCode, URL: redact(u), Detail: detail}
	}
	if resp.ContentLength > f.opts.MaxSize {
		resp.Body.Close()
		cancel(nil)
		return nil, nil, fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, redact(u), resp.ContentLength, f.opts.MaxSize)
	}
	b := &body{rc: resp.Body, left: f.opts.MaxSize, max: f.opts.MaxSize, cancel: cancel, ctx: ctx, idle: f.opts.IdleTimeout, url: redact(u)}
	b.timer = time.AfterFunc(b.idle, func() { cancel(ErrTimeout) })
	return resp, b, nil
}

// classify turns a transport error into one of the package's errors.
func classify(err error, u *url.URL) error {
	for _, known := range []error{ErrNotAllowed, ErrTimeout, ErrUnreachable, ErrTooLarge} {
		if errors.Is(err, known) {
			return fmt.Errorf("fetch %s: %w", redact(u), unwrapURLError(err))
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %v", ErrTimeout, redact(u), unwrapURLError(err))
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("fetch %s: %w", redact(u), err)
	}
	return fmt.Errorf("%w: %s: %v", ErrUnreachable, redact(u), unwrapURLError(err))
}

// unwrapURLError drops *url.Error's wrapping, whose message repeats the full
// URL (with a pre-signed URL's signature in it).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redact is the URL without query or fragment, for messages: the query of a
// pre-signed URL is a credential.
func redact(u *url.URL) string {
	c := *u
	c.RawQuery, c.Fragment, c.User = "", "", nil
	return c.String()
}

// s3ErrorCode extracts <Code> from an S3 error document, reading at most
// 4 KiB.
func s3ErrorCode(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 4096))
	s := string(b)
	i := strings.Index(s, "<Code>")
	j := strings.Index(s, "</Code>")
	if i < 0 || j < i {
		return ""
	}
	code := s[i+len("<Code>") : j]
	if len(code) > 64 || strings.ContainsAny(code, "<>\n") {
		return ""
	}
	return code
}

// body enforces the size limit and the idle timeout on a response body.
type body struct {
	rc     io.ReadCloser
	left   int64
	max    int64
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	idle   time.Duration
	url    string
}

func (b *body) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// At the limit: one more byte tells "exactly the limit" from "more".
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("%w: %s exceeds %d bytes", ErrTooLarge, b.url, b.max)
		}
		return 0, b.readErr(err)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if n > 0 {
		b.timer.Reset(b.idle)
	}
	return n, b.readErr(err)
}

func (b *body) readErr(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if errors.Is(context.Cause(b.ctx), ErrTimeout) {
		return fmt.Errorf("%w: no data from %s for %v", ErrTimeout, b.url, b.idle)
	}
	return fmt.Errorf("fetch %s: %w", b.url, unwrapURLError(err))
}

func (b *body) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel(nil)
	return err
}
