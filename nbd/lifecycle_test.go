package nbd

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

func TestHandshakeTimeout(t *testing.T) {
	ex := newMemExports()
	ex.add("vol-1", newMemDisk(4096))
	addr, _ := startServer(t, ex, WithHandshakeTimeout(100*time.Millisecond))
	c := dialHandshake(t, addr, clientFixedNewstyle)
	start := time.Now()
	expectClosed(t, c)
	if time.Since(start) > 3*time.Second {
		t.Fatal("idle negotiating client was not dropped")
	}
	// The deadline does not apply once in transmission.
	c = connect(t, addr, "vol-1", false, false)
	time.Sleep(300 * time.Millisecond)
	if _, r := c.readAt(t, 0, 512); r.errno != 0 {
		t.Fatal(r.errno)
	}
}

func TestServerReadOnlyOption(t *testing.T) {
	ex := newMemExports()
	d := ex.add("vol-1", newMemDisk(4096))
	addr, _ := startServer(t, ex, WithReadOnly(true))
	c := connect(t, addr, "vol-1", true, false)
	if c.flags&tflagReadOnly == 0 {
		t.Fatalf("flags %#x lack READ_ONLY", c.flags)
	}
	if r := c.do(t, 0, cmdWrite, 0, 1, []byte{1}); r.errno != errPerm {
		t.Fatalf("write: errno %d", r.errno)
	}
	if d.allocatedBytes() != 0 {
		t.Fatal("written")
	}
}

// stuckExport never finishes a write until its context is cancelled.
type stuckExports struct{ *memExports }
type stuckExport struct {
	*memExport
	entered chan struct{}
}

var stuckEntered = make(chan struct{}, 1)

func (s stuckExports) Open(ctx context.Context, name string) (Export, error) {
	e, err := s.memExports.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	return stuckExport{e.(*memExport), stuckEntered}, nil
}

func (s stuckExport) WriteAt(ctx context.Context, p []byte, off int64) error {
	s.entered <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

func TestShutdownDeadline(t *testing.T) {
	ex := newMemExports()
	d := ex.add("vol-1", newMemDisk(4096))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(stuckExports{ex})
	go s.Serve(l)
	c := connect(t, l.Addr().String(), "vol-1", false, false)
	c.request(0, cmdWrite, 1, 0, 1, []byte{1})
	<-stuckEntered
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v", err)
	}
	if d.closes.Load() != 1 {
		t.Fatal("export not closed after forced shutdown")
	}
	expectClosed(t, c)
}
