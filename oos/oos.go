// Package oos is omi's built-in S3-compatible object storage endpoint (the
// stand-in for OUTSCALE's OOS): path-style S3 with SigV4 header and
// pre-signed-URL authentication, multipart uploads whose parts live on disk,
// and ranged GETs.
//
// It embeds the versitygw gateway (s3api) over its POSIX backend rather than
// implementing S3 itself: that code verifies signatures, streams bodies and
// keeps multipart parts on disk, which is exactly the part that is easy to get
// subtly wrong. What omi adds is the identity mapping: access keys are looked
// up at request time through Config.Credentials, so keys created or
// deactivated through the API take effect immediately, and every key of an
// account acts as that account (buckets are owned by the account id, not by
// the key that created them).
//
// Layout under Config.Dir: buckets/<bucket>/<key> are the objects as plain
// files, buckets/<bucket>/.sgwtmp/multipart holds the parts of open multipart
// uploads, and meta/ holds object metadata only on filesystems without user
// extended attributes (elsewhere it is in xattrs). The backend does not
// fsync: an acknowledged PUT survives a crash of the process (kill -9), not
// necessarily a power loss.
//
// Two process-wide side effects come with the embedded gateway, and both are
// why only one Server may exist per process at a time:
//   - the POSIX backend changes the process working directory to its storage
//     root (it resolves every object path relative to it), so callers must
//     turn every path they hold into an absolute one before calling New;
//     Shutdown restores the previous working directory;
//   - bucket-name validation and the gateway's debug logger are package
//     globals.
package oos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/gofiber/fiber/v3"
	"github.com/valyala/fasthttp"
	"github.com/versity/versitygw/backend/meta"
	"github.com/versity/versitygw/backend/posix"
	"github.com/versity/versitygw/debuglogger"
	"github.com/versity/versitygw/s3api"
	"github.com/versity/versitygw/s3api/middlewares"
	"github.com/versity/versitygw/s3api/utils"
)

// DefaultListen is the address cmd/omi's --oos-listen defaults to: loopback,
// next to the API's port.
const DefaultListen = "127.0.0.1:3001"

// CredentialsFunc resolves an access key id to its secret key and the id of
// the account that owns it. It is called on every authenticated request (no
// cache), so a key deactivated or deleted elsewhere stops working at once.
// It must return an error wrapping ErrUnknownKey for unknown, inactive or
// expired keys (the client then gets InvalidAccessKeyId); any other error is
// reported to the client as an internal error.
type CredentialsFunc func(ctx context.Context, accessKeyID string) (secret, accountID string, err error)

// ErrUnknownKey is what a CredentialsFunc returns (possibly wrapped) for a key
// that must not authenticate.
var ErrUnknownKey = errors.New("oos: unknown or inactive access key")

// Config configures a Server. Dir, Region and Credentials are required.
type Config struct {
	// Dir is the storage directory (e.g. <data>/oos). Buckets are plain
	// directories under Dir/buckets and objects plain files, so the data can
	// be inspected or backed up with ordinary tools.
	Dir string
	// Region is the SigV4 signing region clients must use (omi's region,
	// e.g. "eu-west-2"). Requests signed for another region are refused.
	Region string
	// Credentials looks access keys up; see CredentialsFunc.
	Credentials CredentialsFunc
	// PublicURL is the endpoint URL handed out to clients (in manifests and
	// pre-signed URLs made by omi), e.g. "https://oos.example.com". When
	// empty, Endpoint derives "http://<listen address>" from the listener.
	PublicURL string
	// MaxConnections bounds concurrent TCP connections (default 1024).
	MaxConnections int
	// MaxRequests bounds concurrent in-flight requests (default MaxConnections).
	MaxRequests int
	// Debug makes the gateway log every request with its headers (secrets
	// masked) to standard output.
	Debug bool
}

// Server is a running (or ready to run) object storage endpoint.
type Server struct {
	cfg     Config
	backend *posix.Posix
	api     *s3api.S3ApiServer
	app     *fiber.App
	prevWD  string

	mu        sync.Mutex
	endpoint  string
	closed    bool
	listeners []net.Listener
	conns     map[net.Conn]struct{} // open connections, for a forced close
}

// Connection timeouts. The header limit also bounds how long a connection
// that never sends a request lives (an HTTP client's spare dial): without
// it such a connection would hold Shutdown forever. Bodies get their own,
// generous limit: a 5 GiB part on a slow link takes hours.
const (
	headerTimeout = 30 * time.Second
	idleTimeout   = 90 * time.Second
	bodyTimeout   = 24 * time.Hour
)

// instance enforces one Server per process (see the package comment).
var instance atomic.Bool

// New prepares a Server storing under cfg.Dir. It creates the directories it
// needs and changes the process working directory to the bucket root (see the
// package comment). It fails if another Server of this process has not been
// shut down yet.
func New(cfg Config) (*Server, error) {
	if cfg.Dir == "" || cfg.Region == "" || cfg.Credentials == nil {
		return nil, errors.New("oos: Dir, Region and Credentials are required")
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 1024
	}
	if cfg.MaxRequests <= 0 || cfg.MaxRequests > cfg.MaxConnections {
		cfg.MaxRequests = cfg.MaxConnections
	}
	if !instance.CompareAndSwap(false, true) {
		return nil, errors.New("oos: another object storage server is running in this process")
	}
	s, err := newServer(cfg)
	if err != nil {
		instance.Store(false)
		return nil, err
	}
	return s, nil
}

func newServer(cfg Config) (*Server, error) {
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("oos: storage directory: %w", err)
	}
	root := filepath.Join(dir, "buckets")
	if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, fmt.Errorf("oos: create storage directory: %w", err)
	}
	store, err := metadataStore(dir, root)
	if err != nil {
		return nil, err
	}
	prevWD, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("oos: working directory: %w", err)
	}

	// Strict AWS bucket-name rules: OUTSCALE's are the same (3-63 chars,
	// lowercase letters, digits, '-', '.').
	utils.SetBucketNameValidationStrict(true)
	if cfg.Debug {
		debuglogger.SetLevel(debuglogger.LevelDebug)
	} else {
		debuglogger.SetLevel(debuglogger.LevelSilent)
	}

	be, err := posix.New(root, store, posix.PosixOpts{ValidateBucketNames: true})
	if err != nil {
		_ = os.Chdir(prevWD)
		return nil, fmt.Errorf("oos: open storage: %w", err)
	}

	// The gateway insists on a root (admin) identity. Nobody needs it: make
	// it random, keep it in memory, never print it.
	rootAccess, rootSecret := randomKey("OOSROOT", 20), randomKey("", 40)
	iam := &keyIAM{lookup: cfg.Credentials}
	opts := []s3api.Option{
		s3api.WithConcurrencyLimiter(cfg.MaxConnections, cfg.MaxRequests),
		s3api.WithMpMaxParts(10000),
		s3api.WithKeepAlive(),
	}
	if !cfg.Debug {
		opts = append(opts, s3api.WithQuiet())
	}
	api, err := s3api.New(be, middlewares.RootUserConfig{Access: rootAccess, Secret: rootSecret},
		cfg.Region, iam, nil, nil, nil, nil, opts...)
	if err != nil {
		be.Shutdown()
		_ = os.Chdir(prevWD)
		return nil, fmt.Errorf("oos: init gateway: %w", err)
	}
	app, err := fiberApp(api)
	if err != nil {
		be.Shutdown()
		_ = os.Chdir(prevWD)
		return nil, err
	}
	s := &Server{cfg: cfg, backend: be, api: api, app: app, prevWD: prevWD, conns: map[net.Conn]struct{}{}}
	hs := app.Server()
	hs.ReadTimeout = headerTimeout
	hs.IdleTimeout = idleTimeout
	hs.HeaderReceived = func(*fasthttp.RequestHeader) fasthttp.RequestConfig {
		return fasthttp.RequestConfig{ReadTimeout: bodyTimeout}
	}
	hs.ConnState = s.trackConn
	return s, nil
}

func (s *Server) trackConn(c net.Conn, state fasthttp.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch state {
	case fasthttp.StateNew:
		s.conns[c] = struct{}{}
	case fasthttp.StateClosed, fasthttp.StateHijacked:
		delete(s.conns, c)
	}
}

// fiberApp digs the HTTP application out of the gateway. s3api only offers
// ServeMultiPort, which binds addresses itself; omi needs to serve on a
// listener it made (tests bind 127.0.0.1:0 and must know the port without a
// close-and-rebind race, and a caller may hand in a TLS or socket-activated
// listener). The field is unexported, so it is read by reflection; versitygw
// is pinned (v1.8.0) and New fails loudly if the field ever changes shape.
func fiberApp(api *s3api.S3ApiServer) (*fiber.App, error) {
	v := reflect.ValueOf(api).Elem().FieldByName("app")
	if !v.IsValid() || v.Type() != reflect.TypeFor[*fiber.App]() {
		return nil, errors.New("oos: embedded gateway has no *fiber.App field 'app' (versitygw version changed?)")
	}
	app := *(**fiber.App)(unsafe.Pointer(v.UnsafeAddr()))
	if app == nil {
		return nil, errors.New("oos: embedded gateway has no HTTP application")
	}
	return app, nil
}

// metadataStore keeps object metadata (ETags, content types, ACLs) in
// extended attributes when the filesystem supports them, else in a sidecar
// tree beside the bucket root. A directory that already has a sidecar tree
// keeps using it, so the choice never flips under existing data.
func metadataStore(dir, root string) (meta.MetadataStorer, error) {
	side := filepath.Join(dir, "meta")
	if _, err := os.Stat(side); err == nil || !xattrSupported(root) {
		if err := os.MkdirAll(side, 0o750); err != nil {
			return nil, fmt.Errorf("oos: create metadata directory: %w", err)
		}
		sc, err := meta.NewSideCar(side)
		if err != nil {
			return nil, fmt.Errorf("oos: metadata directory: %w", err)
		}
		return sc, nil
	}
	return meta.XattrMeta{}, nil
}

// xattrSupported probes for user extended attributes in dir.
func xattrSupported(dir string) bool {
	f, err := os.CreateTemp(dir, ".xattr-probe-")
	if err != nil {
		return false
	}
	name := f.Name()
	f.Close()
	defer os.Remove(name)
	return setXattr(name, "user.omi.probe", []byte("1")) == nil
}

// Serve serves S3 on l until Shutdown. It returns nil after Shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("oos: server is shut down")
	}
	if s.endpoint == "" {
		s.endpoint = listenerURL(l)
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	err := s.app.Listener(l, fiber.ListenConfig{DisableStartupMessage: true})
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil
	}
	if err != nil {
		return fmt.Errorf("oos: serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting connections and waits for in-flight requests
// until ctx ends; connections still open then are closed, cutting their
// requests. It then closes the storage and restores the working directory,
// after which a new Server may be created in this process.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	listeners := s.listeners
	s.mu.Unlock()
	var err error
	if gerr := s.app.ShutdownWithContext(ctx); gerr != nil && !errors.Is(gerr, fiber.ErrNotRunning) && ctx.Err() == nil {
		err = gerr
	}
	// A Serve that had not reached its accept loop yet must not start
	// serving after Shutdown: closing its listener makes it return.
	for _, l := range listeners {
		_ = l.Close()
	}
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.backend.Shutdown()
	if werr := os.Chdir(s.prevWD); werr != nil && err == nil {
		err = fmt.Errorf("oos: restore working directory: %w", werr)
	}
	instance.Store(false)
	if err != nil {
		return fmt.Errorf("oos: shutdown: %w", err)
	}
	return nil
}

// Endpoint is the base URL clients use: Config.PublicURL if set, else
// "http://<address>" of the listener given to Serve (or Start); "" before.
func (s *Server) Endpoint() string {
	if s.cfg.PublicURL != "" {
		return strings.TrimRight(s.cfg.PublicURL, "/")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endpoint
}

// Region is the signing region clients must use.
func (s *Server) Region() string { return s.cfg.Region }

func listenerURL(l net.Listener) string {
	addr := l.Addr()
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		// A wildcard bind is reachable on loopback; "http://[::]:3001" is not
		// a URL a client can use.
		return fmt.Sprintf("http://127.0.0.1:%d", tcp.Port)
	}
	return "http://" + addr.String()
}

// Start listens on addr (host:port), serves in the background and returns
// once the socket accepts connections, so Endpoint is usable at once. Serve
// errors other than a clean shutdown go to errc when it is not nil.
// It is the one-call form cmd/omi uses for --oos-listen.
func Start(cfg Config, addr string, errc chan<- error) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("oos: listen %s: %w", addr, err)
	}
	s, err := New(cfg)
	if err != nil {
		l.Close()
		return nil, err
	}
	s.mu.Lock()
	if s.endpoint == "" {
		s.endpoint = listenerURL(l)
	}
	s.mu.Unlock()
	go func() {
		if err := s.Serve(l); err != nil && errc != nil {
			errc <- err
		}
	}()
	return s, nil
}

func randomKey(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	s := prefix + strings.ToUpper(hex.EncodeToString(b))
	return s[:n]
}
