package fetch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omiproject/omi/fetch"
)

// trap is a listener nobody may connect to: any accepted connection fails
// the test. It proves a refusal happened before a connection was made.
func trap(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			hits.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() {
		// Connections are accepted in order: once a last sentinel connection
		// of our own is accepted, any earlier one has been counted.
		if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
			c.Close()
		}
		deadline := time.Now().Add(5 * time.Second)
		for hits.Load() == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		l.Close()
		if n := hits.Load() - 1; n != 0 {
			t.Errorf("the trap listener %s was connected to %d times", l.Addr(), n)
		}
	})
	return l.Addr().String()
}

func server(t *testing.T, h http.HandlerFunc) (*httptest.Server, string) {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s, strings.TrimPrefix(s.URL, "http://")
}

func mustNew(t *testing.T, allow []string, opts fetch.Options) *fetch.Fetcher {
	t.Helper()
	f, err := fetch.New(allow, opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestAllowedHost(t *testing.T) {
	data := bytes.Repeat([]byte("disk"), 10000)
	_, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/bucket/snap.qcow2.gz" || r.URL.Query().Get("X-Amz-Signature") != "abc" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data)
	})
	f := mustNew(t, []string{host}, fetch.Options{})
	u := "http://" + host + "/bucket/snap.qcow2.gz?X-Amz-Signature=abc"
	if err := f.Check(u); err != nil {
		t.Fatal(err)
	}
	body, size, err := f.Get(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(body)
	body.Close()
	if err != nil || !bytes.Equal(got, data) || size != int64(len(data)) {
		t.Fatalf("got %d bytes (size %d), err %v", len(got), size, err)
	}

	// A 404 is a StatusError carrying the code; the query (a pre-signed
	// URL's credential) stays out of the message.
	_, _, err = f.Get(context.Background(), "http://"+host+"/bucket/missing?X-Amz-Signature=secret")
	var se *fetch.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Fatalf("missing object: %v, want a 404 StatusError", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error message leaks the query: %v", err)
	}
}

func TestRefusedBeforeConnecting(t *testing.T) {
	bad := trap(t)
	_, badPort, _ := net.SplitHostPort(bad)
	_, good := server(t, func(w http.ResponseWriter, r *http.Request) {})
	f := mustNew(t, []string{good, "127.0.0.1", "oos.example.com:8443", "[::1]:3001"}, fetch.Options{})
	cases := []string{
		"http://" + bad + "/x",                 // not on the list
		"http://localhost:" + badPort + "/x",   // a name is not its address
		"http://127.0.0.1.:" + badPort + "/x",  // nor with a trailing dot
		"https://" + bad + "/x",                // scheme does not matter
		"ftp://" + good + "/x",                 // scheme
		"file:///etc/passwd",                   // scheme
		"gopher://" + good + "/x",              // scheme
		"http://user:pw@" + good + "/x",        // credentials
		"http://user@" + good + "/x",           // credentials
		"http:" + good,                         // opaque
		"http:///x",                            // no host
		"//" + good + "/x",                     // no scheme
		"http://" + good + ":/x",               // empty port
		"http://[::1]:" + badPort + "/x",       // port not on the list
		"http://0x7f.0.0.1:" + badPort + "/x",  // odd IPv4 spellings are names, not addresses
		"http://2130706433:" + badPort + "/x",  // same
		"http://oos.example.com/x",             // name allowed on 8443 only
		"http://evil.oos.example.com:8443/x",   // no subdomains
		"http://127.0.0.1:" + badPort + "/x",   // a bare entry is the default port only
		"http://[::ffff:127.0.0.1]:" + badPort, // mapped form of an address on the list, other port
	}
	for _, u := range cases {
		err := f.Check(u)
		if !errors.Is(err, fetch.ErrNotAllowed) {
			t.Errorf("Check(%q) = %v, want ErrNotAllowed", u, err)
		}
		if _, _, err := f.Get(context.Background(), u); !errors.Is(err, fetch.ErrNotAllowed) {
			t.Errorf("Get(%q) = %v, want ErrNotAllowed", u, err)
		}
	}
	// Allowed shapes, checked only (nothing listens there).
	for _, u := range []string{
		"http://127.0.0.1/x", "HTTP://127.0.0.1:80/x", "https://OOS.Example.COM:8443/b/k?sig=1",
		"http://[::1]:3001/", "http://[::ffff:127.0.0.1]/x",
	} {
		if err := f.Check(u); err != nil {
			t.Errorf("Check(%q) = %v, want allowed", u, err)
		}
	}
}

func TestAllowListSyntax(t *testing.T) {
	for _, bad := range []string{"", "http://h", "h/x", "h:0", "h:70000", "h:x", "a..b", "u@h", "h:1:2"} {
		if _, err := fetch.New([]string{bad}, fetch.Options{}); err == nil {
			t.Errorf("entry %q accepted", bad)
		}
	}
	got, err := fetch.ParseAllowList(" 127.0.0.1:3001, oos.example.com ,[::1]:*,")
	if err != nil || len(got) != 3 {
		t.Fatalf("ParseAllowList: %v %v", got, err)
	}
	if _, err := fetch.ParseAllowList("ok:1,bad/x"); err == nil {
		t.Error("a bad entry in a list was accepted")
	}
	f := mustNew(t, []string{"[::1]:*"}, fetch.Options{})
	if err := f.Check("http://[::1]:1234/"); err != nil {
		t.Errorf("any-port entry: %v", err)
	}
	for in, want := range map[string]string{
		"http://127.0.0.1:3001":       "127.0.0.1:3001",
		"https://OOS.example.com/":    "OOS.example.com:443",
		"http://[::1]":                "[::1]:80",
		"https://s3.example.com:9000": "s3.example.com:9000",
	} {
		got, err := fetch.EntryFromURL(in)
		if err != nil || got != want {
			t.Errorf("EntryFromURL(%q) = %q, %v; want %q", in, got, err, want)
		}
		if err := mustNew(t, []string{got}, fetch.Options{}).Check(strings.TrimRight(in, "/") + "/b/k"); err != nil {
			t.Errorf("entry %q does not allow its own endpoint: %v", got, err)
		}
	}
	for _, bad := range []string{"ftp://h", "127.0.0.1:3001", ""} {
		if _, err := fetch.EntryFromURL(bad); err == nil {
			t.Errorf("EntryFromURL(%q) accepted", bad)
		}
	}
	empty := mustNew(t, nil, fetch.Options{})
	if err := empty.Check("http://127.0.0.1/"); !errors.Is(err, fetch.ErrNotAllowed) {
		t.Errorf("empty list allowed a URL: %v", err)
	}
}

func TestRedirects(t *testing.T) {
	bad := trap(t)
	_, target := server(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "final") })
	_, hop := server(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-bad":
			http.Redirect(w, r, "http://"+bad+"/steal", http.StatusFound)
		case "/to-good":
			http.Redirect(w, r, "http://"+target+"/obj", http.StatusTemporaryRedirect)
		case "/to-file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		}
	})
	f := mustNew(t, []string{hop, target}, fetch.Options{})
	ctx := context.Background()
	for _, p := range []string{"/to-bad", "/to-file", "/loop"} {
		if _, _, err := f.Get(ctx, "http://"+hop+p); !errors.Is(err, fetch.ErrNotAllowed) {
			t.Errorf("redirect %s: %v, want ErrNotAllowed", p, err)
		}
	}
	body, _, err := f.Get(ctx, "http://"+hop+"/to-good")
	if err != nil {
		t.Fatalf("redirect to an allowed host: %v", err)
	}
	b, _ := io.ReadAll(body)
	body.Close()
	if string(b) != "final" {
		t.Errorf("got %q", b)
	}
	strict := mustNew(t, []string{hop, target}, fetch.Options{MaxRedirects: -1})
	if _, _, err := strict.Get(ctx, "http://"+hop+"/to-good"); !errors.Is(err, fetch.ErrNotAllowed) {
		t.Errorf("redirects refused by option: %v", err)
	}
}

func TestSizeLimit(t *testing.T) {
	_, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/declared":
			w.Write(make([]byte, 2000))
		case "/chunked":
			// No Content-Length: flushes force chunked encoding.
			for i := 0; i < 4; i++ {
				w.Write(make([]byte, 500))
				w.(http.Flusher).Flush()
			}
		case "/exact":
			w.Write(make([]byte, 1000))
		}
	})
	f := mustNew(t, []string{host}, fetch.Options{MaxSize: 1000})
	ctx := context.Background()
	if _, _, err := f.Get(ctx, "http://"+host+"/declared"); !errors.Is(err, fetch.ErrTooLarge) {
		t.Errorf("declared 2000 bytes: %v, want ErrTooLarge", err)
	}
	body, size, err := f.Get(ctx, "http://"+host+"/chunked")
	if err != nil {
		t.Fatal(err)
	}
	if size != -1 {
		t.Errorf("chunked size %d, want -1", size)
	}
	n, err := io.Copy(io.Discard, body)
	body.Close()
	if !errors.Is(err, fetch.ErrTooLarge) || n > 1000 {
		t.Errorf("chunked 2000 bytes: read %d, %v, want ErrTooLarge after at most 1000", n, err)
	}
	body, _, err = f.Get(ctx, "http://"+host+"/exact")
	if err != nil {
		t.Fatal(err)
	}
	n, err = io.Copy(io.Discard, body)
	body.Close()
	if err != nil || n != 1000 {
		t.Errorf("exactly the limit: %d, %v", n, err)
	}
}

func TestTimeouts(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	_, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/no-headers":
			<-release
		case "/stall":
			w.Header().Set("Content-Length", "1000")
			w.Write(make([]byte, 10))
			w.(http.Flusher).Flush()
			<-release
		}
	})
	f := mustNew(t, []string{host}, fetch.Options{HeaderTimeout: 200 * time.Millisecond, IdleTimeout: 200 * time.Millisecond})
	ctx := context.Background()
	start := time.Now()
	if _, _, err := f.Get(ctx, "http://"+host+"/no-headers"); !errors.Is(err, fetch.ErrTimeout) {
		t.Errorf("no headers: %v, want ErrTimeout", err)
	}
	body, _, err := f.Get(ctx, "http://"+host+"/stall")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, body)
	body.Close()
	if !errors.Is(err, fetch.ErrTimeout) {
		t.Errorf("stalled body: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("timeouts took %v", d)
	}
}

func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	res := &mapResolver{m: map[string][]netip.Addr{}}
	f := mustNew(t, []string{addr, "no-such-host.invalid"}, fetch.Options{Resolver: res})
	if _, _, err := f.Get(context.Background(), "http://"+addr+"/x"); !errors.Is(err, fetch.ErrUnreachable) {
		t.Errorf("closed port: %v, want ErrUnreachable", err)
	}
	if _, _, err := f.Get(context.Background(), "http://no-such-host.invalid/x"); !errors.Is(err, fetch.ErrUnreachable) {
		t.Errorf("unresolvable name: %v, want ErrUnreachable", err)
	}
}

// mapResolver resolves names from a map and counts lookups.
type mapResolver struct {
	m     map[string][]netip.Addr
	calls atomic.Int32
}

func (r *mapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.calls.Add(1)
	if a, ok := r.m[host]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("no such host %s", host)
}

func TestNamesResolvedAtDial(t *testing.T) {
	_, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Host)
	})
	_, port, _ := net.SplitHostPort(host)
	res := &mapResolver{m: map[string][]netip.Addr{
		"oos.region-a.test": {netip.MustParseAddr("127.0.0.1")},
	}}
	f := mustNew(t, []string{"oos.region-a.test:" + port}, fetch.Options{Resolver: res})
	body, _, err := f.Get(context.Background(), "http://OOS.region-a.test:"+port+"/b/k")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(body)
	body.Close()
	if !strings.EqualFold(string(b), "oos.region-a.test:"+port) {
		t.Errorf("server saw Host %q", b)
	}
	if res.calls.Load() == 0 {
		t.Error("the name was not resolved by the Fetcher's resolver")
	}
	// The address the name resolved to is not allowed by itself.
	if err := f.Check("http://" + host + "/b/k"); !errors.Is(err, fetch.ErrNotAllowed) {
		t.Errorf("address of an allowed name: %v, want ErrNotAllowed", err)
	}
}

func TestEnvironmentProxyIgnored(t *testing.T) {
	proxy := trap(t)
	t.Setenv("HTTP_PROXY", "http://"+proxy)
	t.Setenv("http_proxy", "http://"+proxy)
	_, host := server(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "direct") })
	f := mustNew(t, []string{host}, fetch.Options{})
	body, _, err := f.Get(context.Background(), "http://"+host+"/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(body)
	body.Close()
	if string(b) != "direct" {
		t.Errorf("got %q", b)
	}
}

func TestRemoteFileReadAt(t *testing.T) {
	data := make([]byte, 100_000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	_, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/norange" {
			w.Write(data)
			return
		}
		http.ServeContent(w, r, "disk.qcow2", time.Time{}, bytes.NewReader(data))
	})
	f := mustNew(t, []string{host}, fetch.Options{})
	ctx := context.Background()
	rf, err := f.OpenRange(ctx, "http://"+host+"/disk")
	if err != nil {
		t.Fatal(err)
	}
	if rf.Size() != int64(len(data)) {
		t.Fatalf("size %d", rf.Size())
	}
	buf := make([]byte, 5000)
	n, err := rf.ReadAt(buf, 12345)
	if err != nil || n != 5000 || !bytes.Equal(buf, data[12345:17345]) {
		t.Fatalf("ReadAt middle: %d %v", n, err)
	}
	n, err = rf.ReadAt(buf, int64(len(data))-100)
	if err != io.EOF || n != 100 || !bytes.Equal(buf[:n], data[len(data)-100:]) {
		t.Fatalf("ReadAt tail: %d %v", n, err)
	}
	if _, err := rf.ReadAt(buf, int64(len(data))); err != io.EOF {
		t.Fatalf("ReadAt past end: %v", err)
	}
	if _, err := f.OpenRange(ctx, "http://"+host+"/norange"); !errors.Is(err, fetch.ErrNoRange) {
		t.Errorf("server without ranges: %v, want ErrNoRange", err)
	}
	small := mustNew(t, []string{host}, fetch.Options{MaxSize: 1000})
	if _, err := small.OpenRange(ctx, "http://"+host+"/disk"); !errors.Is(err, fetch.ErrTooLarge) {
		t.Errorf("object over the limit: %v, want ErrTooLarge", err)
	}
}

func TestHTTPS(t *testing.T) {
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "over tls")
	}))
	defer s.Close()
	host := strings.TrimPrefix(s.URL, "https://")
	ctx := context.Background()
	f := mustNew(t, []string{host}, fetch.Options{TLSConfig: s.Client().Transport.(*http.Transport).TLSClientConfig})
	body, _, err := f.Get(ctx, s.URL+"/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(body)
	body.Close()
	if string(b) != "over tls" {
		t.Errorf("got %q", b)
	}
	// Without the test CA the certificate is refused.
	plain := mustNew(t, []string{host}, fetch.Options{})
	if _, _, err := plain.Get(ctx, s.URL+"/x"); err == nil {
		t.Error("an untrusted certificate was accepted")
	}
}

func TestTruncatedBody(t *testing.T) {
	_, host := server(t, func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
		buf.Write(make([]byte, 600))
		buf.Flush()
	})
	f := mustNew(t, []string{host}, fetch.Options{})
	body, size, err := f.Get(context.Background(), "http://"+host+"/x")
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	n, err := io.Copy(io.Discard, body)
	if size != 1000 || n != 600 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated body: size %d, read %d, err %v; want 1000, 600, unexpected EOF", size, n, err)
	}
}
