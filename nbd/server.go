package nbd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// Server accepts NBD connections and serves the exports its Exports resolves.
// Each connection opens its own Export and closes it when the client leaves.
type Server struct {
	exports Exports
	log     *slog.Logger

	readOnly         bool
	tlsConfig        *tls.Config
	maxInFlight      int
	maxInFlightBytes int64
	handshakeTimeout time.Duration

	// ctx is cancelled when Shutdown gives up waiting; every Export call
	// made on behalf of a client carries it.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   bool
	connWG    sync.WaitGroup
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger for connection events and export errors. The
// default discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(s *Server) {
		if l != nil {
			s.log = l
		}
	}
}

// WithReadOnly makes every export read-only, whatever the Export says.
func WithReadOnly(ro bool) Option { return func(s *Server) { s.readOnly = ro } }

// WithTLS requires clients to upgrade with NBD_OPT_STARTTLS before anything
// else (the FORCEDTLS mode of proto.md). A nil config leaves TLS off.
func WithTLS(cfg *tls.Config) Option { return func(s *Server) { s.tlsConfig = cfg } }

// WithMaxInFlight bounds the requests served concurrently on one connection
// (default 32) and the bytes of request and reply data they may hold
// (default 64 MiB). A request larger than the byte bound still runs, alone.
func WithMaxInFlight(requests int, bytes int64) Option {
	return func(s *Server) {
		if requests > 0 {
			s.maxInFlight = requests
		}
		if bytes > 0 {
			s.maxInFlightBytes = bytes
		}
	}
}

// WithHandshakeTimeout bounds the whole option negotiation of a connection
// (default 30 s), so that idle or slow clients cannot hold connections open
// before choosing an export.
func WithHandshakeTimeout(d time.Duration) Option {
	return func(s *Server) {
		if d > 0 {
			s.handshakeTimeout = d
		}
	}
}

// NewServer returns a server for exports.
func NewServer(exports Exports, opts ...Option) *Server {
	s := &Server{
		exports:          exports,
		log:              slog.New(slog.DiscardHandler),
		maxInFlight:      32,
		maxInFlightBytes: 64 << 20,
		handshakeTimeout: 30 * time.Second,
		listeners:        make(map[net.Listener]struct{}),
		conns:            make(map[*conn]struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// Serve accepts connections on l until Shutdown is called, then returns
// ErrServerClosed. Other accept errors are returned as they come.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()

	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosing() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("nbd: accept: %w", err)
		}
		backoff = 0
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			nc.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.connWG.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.connWG.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// Shutdown stops accepting connections, stops reading new requests, lets the
// requests already received finish and be answered, then flushes and closes
// every open export and drops the connections. Clients still negotiating are
// disconnected at once. If ctx ends first, remaining connections are closed
// hard, in-flight export calls see a cancelled context, and ctx's error is
// returned once they have returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.stop()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
	}
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.raw.Close()
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}

// CheckListenAddr refuses to serve NBD on anything but a loopback address
// unless TLS is configured: plain NBD has no authentication, so whoever can
// reach the port can read and overwrite every volume. An empty host (":10809")
// means all interfaces and is refused too.
func CheckListenAddr(addr string, tlsConfigured bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("nbd: listen address %q: %w", addr, err)
	}
	if tlsConfigured {
		return nil
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if i := strings.IndexByte(host, '%'); i >= 0 {
		host = host[:i]
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("nbd: refusing to listen on %q without TLS: NBD has no authentication, use a loopback address or configure TLS", addr)
}
