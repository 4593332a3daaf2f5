package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockmap/maptest"
	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/blockstore/local"
	"github.com/omiproject/omi/postgres/pgtest"
)

func TestRootStoreConformance(t *testing.T) {
	maptest.RunRoots(t, func(t *testing.T) blockmap.RootStore { return openT(t).Roots() })
}

// rootT returns a root of size bytes whose chunks all hold hashes derived
// from seed.
func rootT(t *testing.T, size int64, seed byte) *blockmap.Root {
	t.Helper()
	n := (size/blockstore.BlockSize + 255) / 256
	hs := make([]blockstore.Hash, n)
	for i := range hs {
		hs[i][0], hs[i][1], hs[i][2] = seed, byte(i), byte(i>>8)
	}
	r, err := blockmap.NewRoot(size, hs)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// withPoolMax returns dsn with a pool of at most n connections.
func withPoolMax(t *testing.T, dsn string, n int) string {
	t.Helper()
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("pool_max_conns", fmt.Sprint(n))
		u.RawQuery = q.Encode()
		return u.String()
	}
	return fmt.Sprintf("%s pool_max_conns=%d", dsn, n)
}

// TestWalkRootsPagesAndReentry walks more roots than a page holds on a pool
// of one connection, while the callback uses the store: a walk holding its
// connection across the callback would deadlock, one holding a snapshot
// would not see the roots saved ahead of it.
func TestWalkRootsPagesAndReentry(t *testing.T) {
	s, err := Open(bg, withPoolMax(t, pgtest.DSN(t), 1))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs := s.Roots()
	rs.pageSize = 4
	const n = 10 // pages of 4, 4, 2
	for i := range n {
		if err := rs.SaveRoot(bg, fmt.Sprintf("vol-%02d", i), rootT(t, int64(i+1)<<30, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	var seen []string
	err = rs.WalkRoots(ctx, func(id string, r *blockmap.Root) error {
		seen = append(seen, id)
		// Reentry: a load, a replacement of this root, a root saved
		// behind the walk and one ahead of it.
		got, err := rs.LoadRoot(ctx, id)
		if err != nil {
			return err
		}
		if !got.Equal(r) {
			return fmt.Errorf("%s: walk and load disagree", id)
		}
		if err := rs.SaveRoot(ctx, id, rootT(t, r.Size(), 0xee)); err != nil {
			return err
		}
		if id == "vol-05" {
			if err := rs.SaveRoot(ctx, "vol-00a", rootT(t, 1<<20, 1)); err != nil {
				return err
			}
			if err := rs.SaveRoot(ctx, "vol-99", rootT(t, 1<<20, 2)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("WalkRoots: %v", err)
	}
	want := []string{"vol-00", "vol-01", "vol-02", "vol-03", "vol-04", "vol-05", "vol-06", "vol-07", "vol-08", "vol-09", "vol-99"}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("walk saw %v, want %v", seen, want)
	}
}

// TestRootIDOrderIsBytewise checks that ids page in byte order (the "C"
// collation): under a linguistic collation "vol-B" < "vol-a" would not hold
// and a keyset page could skip roots.
func TestRootIDOrderIsBytewise(t *testing.T) {
	rs := openT(t).Roots()
	rs.pageSize = 1
	ids := []string{"vol-a", "vol-B", "vol-_", "vol-.", "vol-0", "snap-Z", "snap-z"}
	for _, id := range ids {
		if err := rs.SaveRoot(bg, id, rootT(t, 1<<20, 1)); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	if err := rs.WalkRoots(bg, func(id string, _ *blockmap.Root) error { seen = append(seen, id); return nil }); err != nil {
		t.Fatal(err)
	}
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	if !slices.Equal(seen, sorted) {
		t.Fatalf("walk order %v, want %v", seen, sorted)
	}
}

// TestCorruptRootStopsWalk: garbage collection marks from WalkRoots, so a
// root that does not decode must fail the walk, not be skipped.
func TestCorruptRootStopsWalk(t *testing.T) {
	s := openT(t)
	rs := s.Roots()
	if err := rs.SaveRoot(bg, "vol-1", rootT(t, 1<<30, 1)); err != nil {
		t.Fatal(err)
	}
	data, _ := rootT(t, 1<<30, 2).MarshalBinary()
	data[len(data)/2] ^= 1
	if _, err := s.pool.Exec(bg, "INSERT INTO block_roots (id, root) VALUES ('vol-2', $1)", data); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.LoadRoot(bg, "vol-2"); !errors.Is(err, blockmap.ErrCorrupt) {
		t.Fatalf("LoadRoot of a corrupt root: %v, want ErrCorrupt", err)
	}
	err := rs.WalkRoots(bg, func(string, *blockmap.Root) error { return nil })
	if !errors.Is(err, blockmap.ErrCorrupt) {
		t.Fatalf("WalkRoots over a corrupt root: %v, want ErrCorrupt", err)
	}
}

func TestRootInvalidIDsAndClosed(t *testing.T) {
	s, err := Open(bg, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	rs := s.Roots()
	r := rootT(t, 1<<20, 1)
	for _, id := range []string{"", ".hidden", "vol/1", "vol-\x00", "vol-é", strings.Repeat("v", 129)} {
		if err := rs.SaveRoot(bg, id, r); err == nil {
			t.Errorf("SaveRoot(%q) succeeded", id)
		}
		if _, err := rs.LoadRoot(bg, id); err == nil || errors.Is(err, blockmap.ErrNotFound) {
			t.Errorf("LoadRoot(%q): %v, want an invalid id error", id, err)
		}
		if err := rs.Delete(bg, id); err == nil {
			t.Errorf("Delete(%q) succeeded", id)
		}
	}
	if err := rs.SaveRoot(bg, strings.Repeat("v", 128), r); err != nil {
		t.Fatalf("SaveRoot of a 128-byte id: %v", err)
	}
	s.Close()
	if _, err := rs.LoadRoot(bg, "vol-1"); !errors.Is(err, errClosed) {
		t.Fatalf("LoadRoot after Close: %v", err)
	}
	if err := rs.WalkRoots(bg, func(string, *blockmap.Root) error { return nil }); !errors.Is(err, errClosed) {
		t.Fatalf("WalkRoots after Close: %v", err)
	}
}

// TestSaveRootRaisesSynchronousCommit runs the durable statements inside a
// transaction that turned synchronous_commit off: they must turn it back to
// a durable level for the commit, and leave stronger levels alone.
func TestSaveRootRaisesSynchronousCommit(t *testing.T) {
	s := openT(t)
	data, _ := rootT(t, 1<<20, 1).MarshalBinary()
	for _, c := range []struct {
		name, set, want string
		sql             string
		args            []any
	}{
		{"save/off", "off", "local", qSaveRoot, []any{"vol-1", data, "", time.Now()}},
		{"delete/off", "off", "local", qDeleteRoot, []any{"vol-1", nil, "", time.Now()}},
		{"save/remote_apply", "remote_apply", "remote_apply", qSaveRoot, []any{"vol-1", data, "", time.Now()}},
		{"save/on", "on", "on", qSaveRoot, []any{"vol-1", data, "", time.Now()}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tx, err := s.pool.Begin(bg)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(bg)
			// Each case stands alone: the delete has a row to delete.
			if _, err := tx.Exec(bg, "INSERT INTO block_roots (id, root) VALUES ('vol-1', $1) ON CONFLICT DO NOTHING", data); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(bg, "SET LOCAL synchronous_commit = "+c.set); err != nil {
				t.Fatal(err)
			}
			tag, err := tx.Exec(bg, c.sql, c.args...)
			if err != nil {
				t.Fatal(err)
			}
			if tag.RowsAffected() != 1 {
				t.Fatalf("%d rows affected, want 1", tag.RowsAffected())
			}
			var got string
			if err := tx.QueryRow(bg, "SHOW synchronous_commit").Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("synchronous_commit %s after the statement, want %s", got, c.want)
			}
			if err := tx.Commit(bg); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestManagerOverRootStore runs a blockmap.Manager on a local block store
// and the PostgreSQL roots, then a second Manager, as another process or
// node would, on the same database and blocks.
func TestManagerOverRootStore(t *testing.T) {
	ctx := bg
	dsn := pgtest.DSN(t)
	blocksDir := t.TempDir()
	const size = 8 << 20
	pattern := func(seed byte, n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i*7) ^ seed
		}
		return p
	}
	first, second := pattern(1, 3<<20), pattern(2, 100<<10)
	const firstOff, secondOff = 1<<20 + 4096, 6 << 20

	func() {
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		blocks, err := local.Open(blocksDir)
		if err != nil {
			t.Fatal(err)
		}
		m := blockmap.NewManager(blocks, s.Roots())
		if err := m.Create(ctx, "vol-1", size); err != nil {
			t.Fatal(err)
		}
		if err := m.Create(ctx, "vol-1", size); !errors.Is(err, blockmap.ErrExists) {
			t.Fatalf("second Create: %v, want ErrExists", err)
		}
		d, err := m.Open(ctx, "vol-1")
		if err != nil {
			t.Fatal(err)
		}
		if err := d.WriteAt(ctx, first, firstOff); err != nil {
			t.Fatal(err)
		}
		if err := d.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := m.Clone(ctx, "vol-1", "snap-1"); err != nil {
			t.Fatal(err)
		}
		// Written after the clone: in vol-1, not in snap-1.
		if err := d.WriteAt(ctx, second, secondOff); err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil { // the last Close flushes
			t.Fatal(err)
		}
	}()

	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	blocks, err := local.Open(blocksDir)
	if err != nil {
		t.Fatal(err)
	}
	rs := s.Roots()
	m := blockmap.NewManager(blocks, rs)
	want := map[string][]byte{"vol-1": make([]byte, size), "snap-1": make([]byte, size)}
	for _, id := range []string{"vol-1", "snap-1"} {
		copy(want[id][firstOff:], first)
	}
	copy(want["vol-1"][secondOff:], second)
	for id, w := range want {
		if got, err := m.Size(ctx, id); err != nil || got != size {
			t.Fatalf("Size(%s) = %d, %v", id, got, err)
		}
		d, err := m.Open(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, size)
		if err := d.ReadAt(ctx, got, 0); err != nil {
			t.Fatal(err)
		}
		d.Close()
		if !bytes.Equal(got, w) {
			t.Fatalf("%s: content read through a new Manager differs from what was written", id)
		}
	}
	var ids []string
	if err := rs.WalkRoots(ctx, func(id string, _ *blockmap.Root) error { ids = append(ids, id); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids) != "[snap-1 vol-1]" {
		t.Fatalf("roots %v, want [snap-1 vol-1]", ids)
	}
	if err := m.Delete(ctx, "snap-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.LoadRoot(ctx, "snap-1"); !errors.Is(err, blockmap.ErrNotFound) {
		t.Fatalf("LoadRoot after Manager.Delete: %v", err)
	}
}

// benchRoot is the root of a 100 GiB volume: 800 chunk hashes, 25 KiB.
func benchRoot(b *testing.B) *blockmap.Root {
	hs := make([]blockstore.Hash, 800)
	for i := range hs {
		hs[i][0], hs[i][1] = byte(i), byte(i>>8)
		hs[i][31] = 1
	}
	r, err := blockmap.NewRoot(100<<30, hs)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkSaveRoot measures a durable root replacement, what a Flush or a
// snapshot costs on top of storing blocks.
func BenchmarkSaveRoot(b *testing.B) {
	rs := openT(b).Roots()
	r := benchRoot(b)
	for i := 0; b.Loop(); i++ {
		if err := rs.SaveRoot(bg, fmt.Sprintf("vol-%d", i%64), r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadRoot measures a root load, what opening a device costs on
// top of reading its chunk blocks.
func BenchmarkLoadRoot(b *testing.B) {
	rs := openT(b).Roots()
	r := benchRoot(b)
	if err := rs.SaveRoot(bg, "vol-1", r); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := rs.LoadRoot(bg, "vol-1"); err != nil {
			b.Fatal(err)
		}
	}
}
