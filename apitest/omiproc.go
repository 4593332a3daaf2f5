package apitest

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BuildOmi builds the real omi binary (./cmd/omi) into the test's
// temporary directory, for tests that drive `omi serve` as users run it.
func BuildOmi(t testing.TB) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "omi")
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/omi")
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/omi: %v\n%s", err, out)
	}
	return bin
}

// FreePort returns a loopback address nobody listens on right now, so that
// tests never depend on a fixed port.
func FreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// SyncBuffer collects a process's output while it runs.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends to the buffer; safe while String is called.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// OmiProc is a running `omi serve`.
type OmiProc struct {
	Cmd            *exec.Cmd
	Stdout, Stderr *SyncBuffer
	// URL is the API base, http://127.0.0.1:PORT, without a path.
	URL  string
	done chan error
}

// StartOmi runs `omi serve` with args on a free port (NBD off unless args
// say otherwise) and waits until it answers ReadRegions. It is stopped
// with SIGTERM when the test ends, and a dirty exit fails the test.
func StartOmi(t testing.TB, bin, data string, args ...string) *OmiProc {
	t.Helper()
	addr := FreePort(t)
	args = append([]string{"serve", "--listen", addr, "--data", data, "--nbd-listen", "", "--vm-driver", "sim", "--log-level", "warn"}, args...)
	p := &OmiProc{Cmd: exec.Command(bin, args...), Stdout: &SyncBuffer{}, Stderr: &SyncBuffer{}, URL: "http://" + addr, done: make(chan error, 1)}
	p.Cmd.Stdout, p.Cmd.Stderr = p.Stdout, p.Stderr
	p.Cmd.Env = append(os.Environ(), "OMI_CONFIG=")
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start omi: %v", err)
	}
	go func() { p.done <- p.Cmd.Wait() }()
	t.Cleanup(func() { p.Stop(t) })
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Post(p.URL+"/api/v1/ReadRegions", "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("omi serve %v exited: %v\nstdout:\n%s\nstderr:\n%s", args, err, p.Stdout, p.Stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("omi serve did not answer within 20 s\nstderr:\n%s", p.Stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop sends SIGTERM and waits for a clean exit (30 s, then SIGKILL and a
// test failure).
func (p *OmiProc) Stop(t testing.TB) {
	if p.Cmd.ProcessState != nil {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Errorf("omi serve exited with %v after SIGTERM\nstderr:\n%s", err, p.Stderr)
		}
	case <-time.After(30 * time.Second):
		_ = p.Cmd.Process.Kill()
		t.Errorf("omi serve did not stop within 30 s of SIGTERM")
		<-p.done
	}
}
