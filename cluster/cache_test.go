package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/postgres"
	"github.com/omiproject/omi/postgres/pgtest"
	"github.com/omiproject/omi/recordcache"
)

// cachedNode is a node whose API reads by id go through a record cache,
// as omi serve runs it.
type cachedNode struct {
	*Node
	rc *recordcache.Store
	// withdrawn counts the withdrawals of the cache's grant.
	withdrawn atomic.Int64
}

func joinCached(t *testing.T, dsn, name string) *cachedNode {
	t.Helper()
	ctx := context.Background()
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	c := &cachedNode{rc: recordcache.Wrap(st, 0)}
	t.Cleanup(func() { c.rc.Close() })
	for deadline := time.Now().Add(10 * time.Second); !c.rc.Live(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the change feed did not connect within 10 s")
		}
	}
	n, err := Join(ctx, st.Cluster(), Config{Name: name, TTL: ttl,
		Expired: func(err error) bool { return errors.Is(err, postgres.ErrNodeExpired) },
		Exclusive: func(until time.Time) {
			c.rc.Exclusive(until)
			if until.IsZero() {
				c.withdrawn.Add(1)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	c.Node = n
	t.Cleanup(func() { n.stop(); <-n.done })
	return c
}

func (c *cachedNode) put(t *testing.T, id, v string) {
	t.Helper()
	if err := c.rc.Update(context.Background(), func(tx omi.Tx) error {
		return tx.Put(omi.Record{Kind: omi.KindImage, ID: id, Owner: "o", Doc: []byte(`"` + v + `"`)})
	}); err != nil {
		t.Fatal(err)
	}
}

func (c *cachedNode) get(t *testing.T, id string) string {
	t.Helper()
	recs, err := c.rc.GetIDs(context.Background(), omi.KindImage, []string{id})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		return ""
	}
	return string(recs[0].Doc)
}

// awaitHits reads id through c until one read is served from memory.
// Liveness only: a node alone is granted its cache at once or at its next
// heartbeat; failing after 10 s means it never was.
func (c *cachedNode) awaitHits(t *testing.T, id string) {
	t.Helper()
	h0, _ := c.rc.Stats()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c.get(t, id)
		if h, _ := c.rc.Stats(); h > h0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the node alone serves nothing from memory")
		}
	}
}

// A node alone caches; a second node's Join returns only once the first
// has emptied and stopped its cache; from then on a write through either
// is read through the other at once, every time; once the second leaves,
// the first caches again.
func TestRecordCacheOneNodeAtATime(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := joinCached(t, dsn, "a")
	a.put(t, "ami-1", "v0")
	a.awaitHits(t, "ami-1")
	if recs, _ := a.rc.Size(); recs == 0 {
		t.Fatal("the node alone caches nothing")
	}
	if a.withdrawn.Load() != 0 {
		t.Fatal("the cache of the node alone was withdrawn")
	}

	b := joinCached(t, dsn, "b")
	// Join returned: a acknowledged b, so its cache is off and empty.
	if a.withdrawn.Load() == 0 {
		t.Fatal("b's Join returned before a withdrew its cache")
	}
	if recs, _ := a.rc.Size(); recs != 0 {
		t.Fatalf("a still caches %d records once b joined", recs)
	}
	h0, _ := a.rc.Stats()
	hb0, _ := b.rc.Stats()
	for i := range 300 {
		w, r := a, b
		if i%2 == 1 {
			w, r = b, a
		}
		v := fmt.Sprintf("v%d", i+1)
		w.put(t, "ami-1", v)
		if got := r.get(t, "ami-1"); got != `"`+v+`"` {
			t.Fatalf("round %d: read %s right after writing %q through the other node", i, got, v)
		}
		if got := w.get(t, "ami-1"); got != `"`+v+`"` {
			t.Fatalf("round %d: read %s right after writing %q through the same node", i, got, v)
		}
	}
	if h, _ := a.rc.Stats(); h != h0 {
		t.Fatalf("a served %d reads from memory while b was live", h-h0)
	}
	if h, _ := b.rc.Stats(); h != hb0 {
		t.Fatalf("b served %d reads from memory while a was live", h-hb0)
	}

	// b leaves: a is alone again and caches at its next heartbeat.
	if err := b.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.awaitHits(t, "ami-1")
}

// A node that stops renewing (paused, cut off) never acknowledges a
// joiner: the joiner waits until its registration expired, by which time
// the silent node's own grant has run out, so it serves nothing from
// memory any more (it never withdrew: the grant lapsed).
func TestRecordCacheOfASilentNodeLapses(t *testing.T) {
	dsn := pgtest.DSN(t)
	a := joinCached(t, dsn, "a")
	a.put(t, "ami-1", "v0")
	a.awaitHits(t, "ami-1")
	a.stop()
	<-a.done
	b := joinCached(t, dsn, "b")
	if n, err := b.b.Caching(context.Background(), b.id); err != nil || n != 0 {
		t.Fatalf("b joined while %d nodes may cache (%v)", n, err)
	}
	h0, _ := a.rc.Stats()
	b.put(t, "ami-1", "v1")
	if got := a.get(t, "ami-1"); got != `"v1"` {
		t.Fatalf("the silent node read %s after b's write", got)
	}
	if h, _ := a.rc.Stats(); h != h0 {
		t.Fatal("the silent node served from memory after b joined")
	}
	if a.withdrawn.Load() != 0 {
		t.Fatal("the silent node withdrew its grant: it was meant to lapse")
	}
}
