package local

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/blockstore/blockcodec"
	"github.com/omiproject/omi/blockstore/blocktest"
)

func openT(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestFormat(t *testing.T) {
	ctx := context.Background()
	s := openT(t)
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog\n"), 12000)[:blockstore.BlockSize]
	random := make([]byte, 100000)
	rand.NewChaCha8([32]byte{1}).Read(random)

	for _, tc := range []struct {
		name       string
		data       []byte
		compressed bool
	}{
		{"text", text, true},
		{"random", random, false},
	} {
		h, err := s.Put(ctx, tc.data)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		name := h.String()
		path := filepath.Join(s.Dir(), name[:2], name)
		if path != s.Path(h) {
			t.Fatalf("Path = %s, want %s", s.Path(h), path)
		}
		obj, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if string(obj[:4]) != "OMIB" || obj[4] != 1 {
			t.Fatalf("%s: bad header % x", tc.name, obj[:12])
		}
		if got := obj[5] == 2; got != tc.compressed { // flag bit 1: S2 payload
			t.Fatalf("%s: compressed flag = %v, want %v", tc.name, got, tc.compressed)
		}
		if tc.compressed && len(obj) > len(tc.data)/4 {
			t.Fatalf("%s: %d bytes stored for %d of repetitive text", tc.name, len(obj), len(tc.data))
		}
		if !tc.compressed && !bytes.Equal(obj[headerSize:], tc.data) {
			t.Fatalf("%s: raw payload differs", tc.name)
		}
	}
}

// Blocks written with zstd, as the store did before it wrote S2, still read.
func TestReadsZstdBlocks(t *testing.T) {
	ctx := context.Background()
	s := openT(t)
	data := bytes.Repeat([]byte("a block from an older omi\n"), 21000)[:blockstore.BlockSize]
	zc, err := blockcodec.New(MaxBlockSize, blockcodec.Zstd)
	if err != nil {
		t.Fatal(err)
	}
	defer zc.Close()
	obj := zc.Encode(data, nil)
	if obj[5] != 1 {
		t.Fatalf("zstd codec wrote flags %#x", obj[5])
	}
	h := blockstore.Sum(data)
	if err := os.WriteFile(s.Path(h), obj, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, h, nil)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get of a zstd block: %v", err)
	}
}

// An unknown version must read as corrupt, not be guessed at.
func TestUnknownVersionIsCorrupt(t *testing.T) {
	ctx := context.Background()
	s := openT(t)
	h, err := s.Put(ctx, []byte("version test"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	obj, err := os.ReadFile(s.Path(h))
	if err != nil {
		t.Fatal(err)
	}
	obj[4] = 9
	if err := os.WriteFile(s.Path(h), obj, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, h, nil); !errors.Is(err, blockstore.ErrCorrupt) {
		t.Fatalf("Get = %v, want ErrCorrupt", err)
	}
}

func TestWalkRemovesStaleTempFiles(t *testing.T) {
	ctx := context.Background()
	s := openT(t)
	stale := filepath.Join(s.Dir(), "ab", tempPrefix+"123")
	fresh := filepath.Join(s.Dir(), "ab", tempPrefix+"456")
	junk := filepath.Join(s.Dir(), "ab", "not-a-hash")
	for _, p := range []string{stale, fresh, junk} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleTemp)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := s.Walk(ctx, func(blockstore.Hash, time.Time) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("Walk reported %d blocks in an empty store", n)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale temp file kept: %v", err)
	}
	for _, p := range []string{fresh, junk} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s removed: %v", p, err)
		}
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte(strings.Repeat("persist me ", 1000))
	h, err := s.Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, err := s2.Get(ctx, h, nil)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after reopen: %v", err)
	}
	if _, err := s2.Put(ctx, make([]byte, MaxBlockSize+1)); err == nil {
		t.Fatal("oversized Put accepted")
	}
}

// corruptible exposes the on-disk files to the conformance suite.
type corruptible struct{ *Store }

// Corrupt flips one byte in the middle of the stored object of h, in its
// pending file if it is not synced yet.
func (c corruptible) Corrupt(t *testing.T, h blockstore.Hash) {
	t.Helper()
	path := c.objectPath(h)
	obj, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	obj[headerSize+(len(obj)-headerSize)/2] ^= 0x40
	if err := os.WriteFile(path, obj, 0o600); err != nil {
		t.Fatal(err)
	}
}

// objectPath is the file holding h now: its pending file or its final one.
func (s *Store) objectPath(h blockstore.Hash) string {
	st := s.stripe(h)
	st.mu.Lock()
	defer st.mu.Unlock()
	if p := st.pending[h]; p != nil {
		return p.file
	}
	return s.Path(h)
}

// syncEach syncs after every Put, so the suite runs on final files.
type syncEach struct{ corruptible }

func (s syncEach) Put(ctx context.Context, data []byte) (blockstore.Hash, error) {
	h, err := s.Store.Put(ctx, data)
	if err == nil {
		err = s.Sync(ctx)
	}
	return h, err
}

// TestConformance runs the suite on blocks left pending (nobody syncs: the
// suite stores fewer blocks than start a flush), on blocks synced after
// every Put, and on a store that flushes every few blocks by itself.
func TestConformance(t *testing.T) {
	t.Run("Pending", func(t *testing.T) {
		blocktest.Run(t, func(t *testing.T) blockstore.Store { return corruptible{openT(t)} })
	})
	t.Run("Synced", func(t *testing.T) {
		blocktest.Run(t, func(t *testing.T) blockstore.Store { return syncEach{corruptible{openT(t)}} })
	})
	t.Run("SmallBatches", func(t *testing.T) {
		blocktest.Run(t, func(t *testing.T) blockstore.Store {
			s := openT(t)
			s.softBlocks = 3
			return corruptible{s}
		})
	})
	t.Run("Fsync", func(t *testing.T) {
		blocktest.Run(t, func(t *testing.T) blockstore.Store {
			s := openT(t)
			s.mode = syncFsync
			return syncEach{corruptible{s}}
		})
	})
}
