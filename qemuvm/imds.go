package qemuvm

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// The metadata service reaches omi this way: QEMU's guestfwd rule for
// 169.254.169.254:80 runs a command per guest connection (`omi
// imds-proxy SOCKET VM-ID`), with the connection as its stdin and stdout.
// The command dials omi's unix socket, writes the VM's id on a first
// line, then copies bytes both ways. omi reads that line and serves HTTP
// on the rest, so it knows which VM asks without trusting the guest.
// The socket lives in the driver's directory (mode 0700).

// Proxy is the imds-proxy command: it bridges stdin and stdout to the
// metadata socket for VM vmID, and returns the exit status.
func Proxy(sock, vmID string) int {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return 1
	}
	if _, err := io.WriteString(c, vmID+"\n"); err != nil {
		return 1
	}
	done := make(chan struct{})
	go func() {
		io.Copy(c, os.Stdin)
		c.(*net.UnixConn).CloseWrite()
	}()
	go func() {
		io.Copy(os.Stdout, c)
		close(done)
	}()
	<-done
	return 0
}

type vmKey struct{}

// VmOf is the id of the VM a metadata request comes from.
func VmOf(r *http.Request) string {
	id, _ := r.Context().Value(vmKey{}).(string)
	return id
}

// vmConn is a metadata connection whose first line named its VM.
type vmConn struct {
	net.Conn
	r  *bufio.Reader
	vm string
}

func (c *vmConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// idListener accepts unix connections and hands them over once their
// first line, the VM id, is read.
type idListener struct {
	ln   net.Listener
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func newIDListener(ln net.Listener) *idListener {
	l := &idListener{ln: ln, ch: make(chan net.Conn), done: make(chan struct{})}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				l.Close()
				return
			}
			go func() {
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(c)
				line, err := r.ReadString('\n')
				id := strings.TrimSpace(line)
				if err != nil || id == "" || len(id) > 64 {
					c.Close()
					return
				}
				c.SetReadDeadline(time.Time{})
				select {
				case l.ch <- &vmConn{Conn: c, r: r, vm: id}:
				case <-l.done:
					c.Close()
				}
			}()
		}
	}()
	return l
}

func (l *idListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *idListener) Close() error {
	l.once.Do(func() { close(l.done); l.ln.Close() })
	return nil
}

func (l *idListener) Addr() net.Addr { return l.ln.Addr() }

// serveMetadata serves h on the unix socket sock; each request's context
// carries the VM id (VmOf).
func serveMetadata(sock string, h http.Handler) (*http.Server, error) {
	os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, err
	}
	os.Chmod(sock, 0o600)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if vc, ok := c.(*vmConn); ok {
				return context.WithValue(ctx, vmKey{}, vc.vm)
			}
			return ctx
		}}
	go srv.Serve(newIDListener(ln))
	return srv, nil
}
