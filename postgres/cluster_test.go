package postgres

import (
	"errors"
	"testing"
	"time"

	"github.com/omiproject/omi/blockmap"
)

// TestRetiredRootsAndFencing checks what the cluster collector relies on:
// a replaced or deleted root stays in the snapshot while a node may still
// read it, and is pruned after; a fenced root store saves only maps whose
// lease its live node holds.
func TestRetiredRootsAndFencing(t *testing.T) {
	s := openT(t)
	c := s.Cluster()
	if _, _, _, err := c.Join(bg, "n1", "node-1", "", time.Minute); err != nil {
		t.Fatal(err)
	}
	rs := s.NodeRoots("n1")
	v1, v2 := rootT(t, 1<<30, 1), rootT(t, 1<<30, 2)
	if err := rs.SaveRoot(bg, "vol-1", v1); !errors.Is(err, blockmap.ErrBusy) {
		t.Fatalf("save without the map lease: %v", err)
	}
	if ok, _, err := c.Acquire(bg, "map/vol-1", "n1"); err != nil || !ok {
		t.Fatalf("acquire: %v %v", ok, err)
	}
	if err := rs.SaveRoot(bg, "vol-1", v1); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	time.Sleep(10 * time.Millisecond)
	if err := rs.SaveRoot(bg, "vol-1", v2); err != nil { // retires v1
		t.Fatal(err)
	}
	roots, err := c.RootSnapshot(bg, before)
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 2 || !(roots[0].Equal(v1) || roots[1].Equal(v1)) {
		t.Fatalf("snapshot since before the replacement holds %d roots, want the current and the retired one", len(roots))
	}
	roots, err = c.RootSnapshot(bg, time.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 1 || !roots[0].Equal(v2) {
		t.Fatalf("snapshot since after the replacement holds %d roots, want the current one", len(roots))
	}
	// The retired root was pruned: an earlier since no longer finds it.
	if roots, _ = c.RootSnapshot(bg, before); len(roots) != 1 {
		t.Fatalf("retired root not pruned: %d roots", len(roots))
	}
	// Another node cannot delete it; the holder can, and the root is
	// retired rather than gone.
	if _, _, _, err := c.Join(bg, "n2", "node-2", "", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := s.NodeRoots("n2").Delete(bg, "vol-1"); !errors.Is(err, blockmap.ErrBusy) {
		t.Fatalf("delete by a node without the lease: %v", err)
	}
	at := time.Now()
	if err := rs.Delete(bg, "vol-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.LoadRoot(bg, "vol-1"); !errors.Is(err, blockmap.ErrNotFound) {
		t.Fatalf("load after delete: %v", err)
	}
	if roots, _ = c.RootSnapshot(bg, at.Add(-time.Second)); len(roots) != 1 || !roots[0].Equal(v2) {
		t.Fatalf("deleted root not kept as retired: %d roots", len(roots))
	}
	// A node whose registration expired is fenced even with the lease.
	if _, err := s.pool.Exec(bg, "UPDATE nodes SET expires_at = now() - interval '1 second' WHERE id = 'n1'"); err != nil {
		t.Fatal(err)
	}
	if err := rs.SaveRoot(bg, "vol-1", v1); !errors.Is(err, blockmap.ErrBusy) {
		t.Fatalf("save by an expired node: %v", err)
	}
	if _, err := c.Heartbeat(bg, "n1", time.Minute, time.Now(), 0); !errors.Is(err, ErrNodeExpired) {
		t.Fatalf("heartbeat of an expired node: %v", err)
	}
	if ok, _, _ := c.Acquire(bg, "map/vol-1", "n2"); !ok {
		t.Fatal("the lease of an expired node cannot be taken over")
	}
}

// The caching flag: a node alone is registered caching and stays so; a
// second node sees it caching until it clears the flag, and a node that
// sees another live node keeps the flag as it is (only the node itself
// clears it, once its cache is off); an expired node does not count.
func TestCachingFlag(t *testing.T) {
	s := openT(t)
	c := s.Cluster()
	if _, _, others, err := c.Join(bg, "n1", "node-1", "", time.Minute); err != nil || others != 0 {
		t.Fatalf("join n1: %d others, %v", others, err)
	}
	if b, err := c.Heartbeat(bg, "n1", time.Minute, time.Now(), 0); err != nil || b.Others != 0 || !b.Caching {
		t.Fatalf("heartbeat of a node alone: %+v %v", b, err)
	}
	if _, _, others, err := c.Join(bg, "n2", "node-2", "", time.Minute); err != nil || others != 1 {
		t.Fatalf("join n2: %d others, %v", others, err)
	}
	if n, err := c.Caching(bg, "n2"); err != nil || n != 1 {
		t.Fatalf("n2 sees %d nodes caching (%v), want n1", n, err)
	}
	if b, err := c.Heartbeat(bg, "n1", time.Minute, time.Now(), 0); err != nil || b.Others != 1 || !b.Caching {
		t.Fatalf("heartbeat of n1 with n2: %+v %v", b, err)
	}
	if b, err := c.Heartbeat(bg, "n2", time.Minute, time.Now(), 0); err != nil || b.Others != 1 || b.Caching {
		t.Fatalf("heartbeat of n2 with n1: %+v %v", b, err)
	}
	if err := c.StopCaching(bg, "n1"); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Caching(bg, "n2"); err != nil || n != 0 {
		t.Fatalf("n2 sees %d nodes caching (%v) after n1 stopped", n, err)
	}
	// n1 expires: n2 is alone, and may cache.
	if _, err := s.pool.Exec(bg, "UPDATE nodes SET expires_at = now() - interval '1 second', caching = true WHERE id = 'n1'"); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Caching(bg, "n2"); err != nil || n != 0 {
		t.Fatalf("an expired node counts as caching: %d %v", n, err)
	}
	if b, err := c.Heartbeat(bg, "n2", time.Minute, time.Now(), 0); err != nil || b.Others != 0 || !b.Caching {
		t.Fatalf("heartbeat of n2 alone: %+v %v", b, err)
	}
}
