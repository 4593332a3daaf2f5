package blockmap_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/omiproject/omi/blockmap"
)

// killed stands for a process that died: its Manager and Devices are
// dropped without Close or Flush, and a new Manager opens the same data
// directory, as the next omi does.
func restarted(t *testing.T, e *env, opts ...blockmap.Option) *env {
	t.Helper()
	return mustEnv(t, e.dir, opts...)
}

func logDir(t *testing.T, dir string) string {
	d := filepath.Join(dir, "wlog")
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

func pattern(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i%251)
	}
	return p
}

func mustRead(t *testing.T, d *blockmap.Device, off int64, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	if err := d.ReadAt(context.Background(), p, off); err != nil {
		t.Fatal(err)
	}
	return p
}

// The journalling file system case behind issue 12: a write acknowledged
// by one process (a journal block), the process killed before any flush,
// the client reconnecting to the next process and writing the commit
// block, then a FLUSH there. The flush must cover the write the dead
// process acknowledged: after a second kill, both are in the saved map.
func TestWriteLogFlushAfterKillCoversEarlierWrites(t *testing.T) {
	ctx := context.Background()
	e := mustEnv(t, "")
	wl := logDir(t, e.dir)
	e = restarted(t, e, blockmap.WithWriteLog(wl))
	mustCreate(t, e, "vol-1", 16*bs)
	d := mustOpen(t, e, "vol-1")
	base := pattern(3*bs, 1)
	if err := d.WriteAt(ctx, base, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	journal := pattern(5000, 7) // partial blocks, across a block boundary
	if err := d.WriteAt(ctx, journal, 4*bs-1000); err != nil {
		t.Fatal(err)
	}
	if err := d.WriteZeroes(ctx, bs, bs); err != nil { // a trim acknowledged too
		t.Fatal(err)
	}
	// Killed: d and e.m are dropped as they are.

	e2 := restarted(t, e, blockmap.WithWriteLog(wl))
	d2 := mustOpen(t, e2, "vol-1")
	commit := pattern(512, 9)
	if err := d2.WriteAt(ctx, commit, 10*bs); err != nil {
		t.Fatal(err)
	}
	if err := d2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(wl, "*")); len(left) != 0 {
		t.Errorf("write logs left after a flush: %v", left)
	}
	// Killed again. What the flush promised is in the saved map: a
	// Manager without a write log, which reads only saved maps, sees it.
	e3 := restarted(t, e2)
	got := readAll(t, e3, "vol-1")
	want := make([]byte, 16*bs)
	copy(want, base)
	clear(want[bs : 2*bs])
	copy(want[4*bs-1000:], journal)
	copy(want[10*bs:], commit)
	if !bytes.Equal(got, want) {
		t.Fatalf("after a write, a kill, a reconnection and a flush, the volume differs from what was acknowledged")
	}
}

// Writes acknowledged but never flushed by a killed process are replayed
// by RecoverLogs, so a reader of the saved map (a snapshot, an export)
// sees them; the logs are then gone.
func TestWriteLogRecover(t *testing.T) {
	ctx := context.Background()
	e := mustEnv(t, "")
	wl := logDir(t, e.dir)
	e = restarted(t, e, blockmap.WithWriteLog(wl))
	mustCreate(t, e, "vol-1", 8*bs)
	mustCreate(t, e, "vol-2", 2*bs)
	d := mustOpen(t, e, "vol-1")
	if err := e.m.Resize(ctx, "vol-1", 9*bs+10); err != nil {
		t.Fatal(err)
	}
	a := pattern(bs+10, 3)
	if err := d.WriteAt(ctx, a, 8*bs); err != nil { // in the grown part
		t.Fatal(err)
	}
	d2 := mustOpen(t, e, "vol-2")
	if err := d2.WriteAt(ctx, []byte("second"), 100); err != nil {
		t.Fatal(err)
	}
	// A record torn by the kill ends its log's replay: it was never
	// acknowledged.
	logs, _ := filepath.Glob(filepath.Join(wl, "vol-1.*"))
	if len(logs) != 1 {
		t.Fatalf("logs of vol-1: %v", logs)
	}
	f, err := os.OpenFile(logs[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{'W', 1, 2, 3})
	f.Close()

	e2 := restarted(t, e, blockmap.WithWriteLog(wl))
	n, err := e2.m.RecoverLogs(ctx)
	if err != nil || n != 2 {
		t.Fatalf("RecoverLogs: %d, %v; want 2 volumes", n, err)
	}
	if left, _ := filepath.Glob(filepath.Join(wl, "*")); len(left) != 0 {
		t.Errorf("write logs left after recovery: %v", left)
	}
	got := readAll(t, e2, "vol-1")
	if len(got) != 9*bs+10 || !bytes.Equal(got[8*bs:], a) {
		t.Errorf("vol-1 after recovery: %d bytes, grown part equal %v", len(got), len(got) == 9*bs+10 && bytes.Equal(got[8*bs:], a))
	}
	if got := readAll(t, e2, "vol-2"); !bytes.Equal(got[100:106], []byte("second")) {
		t.Errorf("vol-2 after recovery: %q", got[100:106])
	}
}

// A clean Close flushes and leaves no log; Delete removes a map's logs.
func TestWriteLogCloseAndDelete(t *testing.T) {
	ctx := context.Background()
	e := mustEnv(t, "")
	wl := logDir(t, e.dir)
	e = restarted(t, e, blockmap.WithWriteLog(wl))
	mustCreate(t, e, "vol-1", 4*bs)
	d := mustOpen(t, e, "vol-1")
	if err := d.WriteAt(ctx, pattern(bs, 5), 0); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(wl, "*")); len(left) != 1 {
		t.Fatalf("an acknowledged write is not logged: %v", left)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(wl, "*")); len(left) != 0 {
		t.Errorf("logs left after Close: %v", left)
	}
	d = mustOpen(t, e, "vol-1")
	if got := mustRead(t, d, 0, bs); !bytes.Equal(got, pattern(bs, 5)) {
		t.Errorf("content after Close and Open differs")
	}
	if err := d.WriteAt(ctx, []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	// Killed with the write unflushed; the volume is then deleted.
	e2 := restarted(t, e, blockmap.WithWriteLog(wl))
	if err := e2.m.Delete(ctx, "vol-1"); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(wl, "*")); len(left) != 0 {
		t.Errorf("logs left after Delete: %v", left)
	}
}
