package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/blockstore/local"
	"github.com/omiproject/omi/postgres"
	"github.com/omiproject/omi/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// ttl is short enough to keep the tests quick and long enough that a
// renewal is not missed on a loaded 2-core CI machine (QEMU boots run in
// another package at the same time).
const ttl = 3 * time.Second

// region is what the nodes of a test share: one database, one block store.
type region struct {
	pg     *postgres.Store
	blocks blockstore.Store
}

func newRegion(t *testing.T) *region {
	t.Helper()
	ctx := context.Background()
	pg, err := postgres.Open(ctx, pgtest.DSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	blocks, err := local.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { blocks.Close() })
	return &region{pg: pg, blocks: blocks}
}

// member is one node of a test region with its block map manager.
type member struct {
	*Node
	maps   *blockmap.Manager
	blocks blockstore.Store // guarded
}

func (r *region) join(t *testing.T, name string) *member {
	t.Helper()
	n, err := Join(context.Background(), r.pg.Cluster(), Config{Name: name, TTL: ttl,
		Expired: func(err error) bool { return errors.Is(err, postgres.ErrNodeExpired) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.stop(); <-n.done })
	g := n.Guard(r.blocks)
	maps := blockmap.NewManager(g, r.pg.NodeRoots(n.ID()), blockmap.WithOwner(n), blockmap.WithDirtyLimit(1<<20))
	n.SetLowWater(maps.LowWater)
	return &member{Node: n, maps: maps, blocks: g}
}

// die stops the node's renewals, as a kill would, and waits until its
// registration expired.
func (m *member) die(t *testing.T) {
	t.Helper()
	m.stop()
	<-m.done
	time.Sleep(ttl + 200*time.Millisecond)
}

func TestLeasesFollowTheNode(t *testing.T) {
	r := newRegion(t)
	ctx := context.Background()
	a, b := r.join(t, "a"), r.join(t, "b")
	if ok, err := a.Acquire(ctx, "job/x"); err != nil || !ok {
		t.Fatalf("a acquires a free lease: %v %v", ok, err)
	}
	if ok, err := a.Acquire(ctx, "job/x"); err != nil || !ok {
		t.Fatalf("a confirms its lease: %v %v", ok, err)
	}
	if ok, err := b.Acquire(ctx, "job/x"); err != nil || ok {
		t.Fatalf("b takes a's live lease: %v %v", ok, err)
	}
	if err := a.Release(ctx, "job/x"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.Acquire(ctx, "job/x"); !ok {
		t.Fatal("b cannot take a released lease")
	}
	if ok, _ := a.Acquire(ctx, "job/y"); !ok {
		t.Fatal("a cannot take a free lease")
	}
	// Renewals keep a's leases beyond the ttl.
	time.Sleep(2 * ttl)
	if ok, _ := b.Acquire(ctx, "job/y"); ok {
		t.Fatal("b took the lease of a live node")
	}
	a.die(t)
	if ok, _ := b.Acquire(ctx, "job/y"); !ok {
		t.Fatal("b cannot take over the lease of a dead node")
	}
	// The dead node learns it is dead on its next renewal.
	if err := a.heartbeat(ctx); !errors.Is(err, postgres.ErrNodeExpired) {
		t.Fatalf("heartbeat of an expired node: %v", err)
	}
	// Leave frees leases at once.
	c := r.join(t, "c")
	if ok, _ := c.Acquire(ctx, "job/z"); !ok {
		t.Fatal("c cannot take a free lease")
	}
	if err := c.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := b.Acquire(ctx, "job/z"); !ok {
		t.Fatal("the lease of a node that left is still held")
	}
}

func pattern(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

// content is n bytes of fill, but for the last block, which repeats name.
func content(name string, fill byte, n int) []byte {
	b := pattern(fill, n)
	last := b[n-blockstore.BlockSize:]
	for i := range last {
		last[i] = name[i%len(name)]
	}
	return b
}

func TestOneWriterPerMapAndFencing(t *testing.T) {
	r := newRegion(t)
	ctx := context.Background()
	a, b := r.join(t, "node-a"), r.join(t, "node-b")
	if err := a.maps.Create(ctx, "vol-1", 4<<20); err != nil {
		t.Fatal(err)
	}
	dev, err := a.maps.Open(ctx, "vol-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.WriteAt(ctx, pattern(0x11, 1<<20), 0); err != nil {
		t.Fatal(err)
	}
	if err := dev.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = b.maps.Open(ctx, "vol-1")
	if !errors.Is(err, blockmap.ErrBusy) || !strings.Contains(err.Error(), "node-a") {
		t.Fatalf("b opens a volume a has open: %v", err)
	}
	if err := b.maps.Delete(ctx, "vol-1"); !errors.Is(err, blockmap.ErrBusy) {
		t.Fatalf("b deletes a volume a has open: %v", err)
	}
	// Readers never claim: b reads what a last saved, and clones it.
	if err := dev.WriteAt(ctx, pattern(0x22, 1<<20), 0); err != nil { // not flushed
		t.Fatal(err)
	}
	v, err := b.maps.View(ctx, "vol-1")
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 1<<20)
	if _, err := v.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	v.Close()
	if !bytes.Equal(got, pattern(0x11, 1<<20)) {
		t.Fatal("b's view is not a's last flushed content")
	}
	if err := b.maps.Clone(ctx, "vol-1", "snap-1"); err != nil {
		t.Fatal(err)
	}
	// a dies with unflushed writes; b takes the volume over.
	a.die(t)
	dev2, err := b.maps.Open(ctx, "vol-1")
	if err != nil {
		t.Fatalf("b cannot open the volume of a dead node: %v", err)
	}
	if err := dev2.WriteAt(ctx, pattern(0x33, 1<<20), 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := dev2.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// The dead node's late flush is fenced off: its root never lands.
	if err := dev.Flush(ctx); !errors.Is(err, blockmap.ErrBusy) {
		t.Fatalf("flush of a node declared dead: %v", err)
	}
	dev.Close()
	if err := dev2.ReadAt(ctx, got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pattern(0x11, 1<<20)) {
		t.Fatal("the dead node's unflushed write reached the volume")
	}
	if err := dev2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRescueOfACondemnedBlock(t *testing.T) {
	r := newRegion(t)
	ctx := context.Background()
	a := r.join(t, "a")
	c := r.pg.Cluster()
	data := pattern(0x5a, 4096)
	h := blockstore.Sum(data)

	// Rescue first: the collector then skips the block.
	if _, err := r.blocks.Put(ctx, data); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Condemn(ctx, []blockstore.Hash{h}); err != nil {
		t.Fatal(err)
	}
	if err := a.heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.blocks.Put(ctx, data); err != nil {
		t.Fatal(err)
	}
	reaped := 0
	if err := c.Reap(ctx, []blockstore.Hash{h}, func(blockstore.Hash) error { reaped++; return nil }); err != nil {
		t.Fatal(err)
	}
	if reaped != 0 {
		t.Fatal("the collector reaped a rescued block")
	}

	// Deletion first: the rescuing Put stores the block again.
	if _, err := c.Condemn(ctx, []blockstore.Hash{h}); err != nil {
		t.Fatal(err)
	}
	if err := a.heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Reap(ctx, []blockstore.Hash{h}, func(h blockstore.Hash) error { return r.blocks.Delete(ctx, h) }); err != nil {
		t.Fatal(err)
	}
	if ok, _ := r.blocks.Has(ctx, h); ok {
		t.Fatal("reap did not delete")
	}
	if _, err := a.blocks.Put(ctx, data); err != nil {
		t.Fatal(err)
	}
	if ok, _ := r.blocks.Has(ctx, h); !ok {
		t.Fatal("a Put racing the collector left the block deleted")
	}
}

// TestCollectWhileOtherNodesWrite runs collections on one node while two
// others write volumes, snapshot them, delete some and read through views:
// at the end every map reads back what was written into it, and once
// everything is deleted a collection leaves no block.
func TestCollectWhileOtherNodesWrite(t *testing.T) {
	r := newRegion(t)
	ctx := context.Background()
	writers := []*member{r.join(t, "w1"), r.join(t, "w2")}
	collector := r.join(t, "gc")

	type want struct {
		id   string
		fill byte
	}
	var mu sync.Mutex
	var kept []want
	const size = 2 << 20
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	for wi, w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(wi), 7))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				vol := fmt.Sprintf("vol-%d-%d", wi, i)
				// Most content repeats across iterations, so Puts hit
				// blocks that earlier deletions left for the collector;
				// the last block is unique, and garbage once deleted.
				fill := byte(1 + rng.IntN(6))
				err := func() error {
					if err := w.maps.Create(ctx, vol, size); err != nil {
						return err
					}
					dev, err := w.maps.Open(ctx, vol)
					if err != nil {
						return err
					}
					if err := dev.WriteAt(ctx, content(vol, fill, size), 0); err != nil {
						dev.Close()
						return err
					}
					if err := dev.Close(); err != nil {
						return err
					}
					snap := "snap-" + vol[4:]
					if err := w.maps.Clone(ctx, vol, snap); err != nil {
						return err
					}
					if err := w.maps.Delete(ctx, vol); err != nil {
						return err
					}
					if rng.IntN(2) == 0 {
						return w.maps.Delete(ctx, snap)
					}
					mu.Lock()
					kept = append(kept, want{snap, fill})
					mu.Unlock()
					return nil
				}()
				if err != nil {
					errc <- fmt.Errorf("%s: %w", vol, err)
					return
				}
			}
		}()
	}
	collections, freed := 0, int64(0)
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		st, err := collector.Collect(ctx, collector.maps, r.blocks, CollectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		collections++
		freed += st.Freed
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	t.Logf("%d collections freed %d blocks while %d snapshots were kept", collections, freed, len(kept))
	if freed == 0 {
		t.Fatal("no collection freed anything: the test did not exercise the sweep")
	}
	// A last collection after the writers stopped, then check every kept
	// snapshot through another node.
	if _, err := collector.Collect(ctx, collector.maps, r.blocks, CollectOptions{}); err != nil {
		t.Fatal(err)
	}
	reader := writers[0]
	got := make([]byte, size)
	for _, k := range kept {
		v, err := reader.maps.View(ctx, k.id)
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.ReadAt(got, 0)
		v.Close()
		if err != nil {
			t.Fatalf("%s: %v", k.id, err)
		}
		if !bytes.Equal(got, content("vol-"+k.id[5:], k.fill, size)) {
			t.Fatalf("%s does not read back its content", k.id)
		}
	}
	// Delete everything: a collection then frees every block, once the
	// low waters of the nodes have moved past the deletions.
	for _, k := range kept {
		if err := reader.maps.Delete(ctx, k.id); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(ttl) // a renewal publishes each node's low water
	if _, err := collector.Collect(ctx, collector.maps, r.blocks, CollectOptions{}); err != nil {
		t.Fatal(err)
	}
	left := 0
	r.blocks.Walk(ctx, func(blockstore.Hash, time.Time) error { left++; return nil })
	if left != 0 {
		t.Fatalf("%d blocks left after deleting every map", left)
	}
}
