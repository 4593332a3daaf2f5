// Package cluster lets several omi nodes (omi serve processes) sharing one
// metadata database and one block store act as one region.
//
// A [Node] is this process's membership: it registers, renews its
// registration every quarter of the lease ttl, and gives the rest of omi
//
//   - leases (omi.Leases): exclusive holds on named work, "job/<task>" for a
//     background task, "reconciler", "gc". A lease is bound to its node's
//     registration, so a node that dies (stops renewing for one ttl) loses
//     all of them at once and another node takes the work over;
//   - map ownership (blockmap.Owner): a block map is open for writing, and
//     so served over NBD, by one node at a time, through the lease
//     "map/<id>"; the root store refuses saves from a node that does not
//     hold it, which fences a node that was declared dead while paused;
//   - a guard on the block store (Guard) for the collector's protocol.
//
// A node whose registration expired stops: Lost is closed and the process
// is expected to exit (fail-stop), since its leases may already be
// someone else's.
//
// # Record caches: one node at a time
//
// A node may cache records read by id (package recordcache) only while it
// is the only live node: notifications of other nodes' writes arrive late,
// and a client that got one node's answer may read through another at once.
// Each node row has a caching flag, and registrations and caching
// decisions are serialised in the database (postgres.Cluster):
//
//   - a heartbeat that finds no other live node sets the node's flag, and
//     only after it committed does the node grant its cache
//     (Config.Exclusive) until start+TTL/2, start being when the heartbeat
//     was sent; renewals every TTL/4 extend the grant;
//   - a heartbeat (or Join) that finds another live node withdraws the
//     grant, which empties the cache, and only then clears the flag;
//   - a joining node serves nothing (Join does not return) until no other
//     live node has its flag set. Each live node clears it at its next
//     heartbeat, within TTL/4; one that does not is dead by TTL.
//
// Why a dead or paused node cannot serve from its cache after the joiner
// starts: the joiner goes on without a node's acknowledgement only when
// that node's registration has expired, at a database time E at least TTL
// after the start of its last successful heartbeat, while its grant ran
// out TTL/2 after that start (measured on its own monotonic clock, so TTL/2
// of margin for clocks running at different rates). A node whose
// registration expired fails its next heartbeat and stops (Lost).
//
// What this leaves: a node that was paused past its expiry and resumes
// may write before its next heartbeat fails, as with leases; a node alone
// again caches with the change feed's invalidations (and their 5 s bound)
// as its only guard against such a write.
//
// # Garbage collection across nodes
//
// One node at a time (the holder of the "gc" lease) runs [Collect]. No node
// sees another's in-memory pins, so the collector relies on dates instead:
//
//  1. every node publishes a low water with each renewal
//     (blockmap.Manager.LowWater): no block it Put but has not named in a
//     saved root, and no root it still reads, is older. The collector's
//     cutoff is the smallest low water of the live nodes (and now), minus
//     a margin for clock skew;
//  2. it marks from all saved roots and the roots replaced or deleted since
//     the cutoff (the root store keeps them, dated), read as of one
//     instant, so no clone racing a delete escapes the marking;
//  3. unmarked blocks written before the cutoff are condemned: the set is
//     stored with a new epoch, and the collector waits until every live
//     node has loaded it;
//  4. each condemned block is deleted, if still written before the cutoff,
//     inside a transaction holding its row. A node whose Put hits a
//     condemned block removes the row first (a rescue): either before the
//     collector, which then skips the block, or after the deletion, and
//     then it stores the block again.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/postgres"
)

// Backend keeps the shared state of the nodes (postgres.Cluster).
type Backend interface {
	Join(ctx context.Context, id, name, addr string, ttl time.Duration) (int64, []blockstore.Hash, int, error)
	Heartbeat(ctx context.Context, id string, ttl time.Duration, lowWater time.Time, loaded int64) (postgres.Beat, error)
	StopCaching(ctx context.Context, id string) error
	Caching(ctx context.Context, id string) (int, error)
	Condemned(ctx context.Context) (int64, []blockstore.Hash, error)
	Leave(ctx context.Context, id string) error
	Acquire(ctx context.Context, name, id string) (bool, string, error)
	Release(ctx context.Context, name, id string) error
	LowWater(ctx context.Context) (time.Time, bool, error)
	RootSnapshot(ctx context.Context, since time.Time) ([]*blockmap.Root, error)
	Condemn(ctx context.Context, hs []blockstore.Hash) (int64, error)
	Lagging(ctx context.Context, epoch int64) (int, error)
	Reap(ctx context.Context, hs []blockstore.Hash, del func(blockstore.Hash) error) error
	Rescue(ctx context.Context, h blockstore.Hash) (bool, error)
}

// ErrExpired is the reason Lost is closed: the node's registration expired
// before it could renew it.
var ErrExpired = errors.New("cluster: node registration expired")

// Config describes a node.
type Config struct {
	// Name is shown to people (logs, task records, busy messages).
	Name string
	// Addr is where the node serves the API, for operators.
	Addr string
	// TTL is how long a registration lasts without renewal (default 10 s).
	TTL time.Duration
	// Expired tells whether a Heartbeat error means the registration
	// expired (postgres.ErrNodeExpired).
	Expired func(error) bool
	// Exclusive, when set, is told how long this node may cache records
	// (recordcache.Store.Exclusive): until a time while it is the only
	// live node, the zero time as soon as another one may serve. A
	// withdrawal must have taken effect when it returns.
	Exclusive func(until time.Time)
	Log       *slog.Logger
}

// Node is this process's membership of the cluster. It is safe for
// concurrent use.
type Node struct {
	b   Backend
	cfg Config
	id  string

	lowWater func() time.Time

	mu        sync.Mutex
	epoch     int64
	condemned map[blockstore.Hash]struct{}

	kick     chan struct{}
	lost     chan struct{}
	lostOnce sync.Once
	stop     context.CancelFunc
	done     chan struct{}
}

var (
	_ omi.Leases     = (*Node)(nil)
	_ blockmap.Owner = (*Node)(nil)
)

// Join registers this process as a new node and starts renewing its
// registration until Leave.
func Join(ctx context.Context, b Backend, cfg Config) (*Node, error) {
	if cfg.TTL <= 0 {
		cfg.TTL = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Expired == nil {
		cfg.Expired = func(error) bool { return false }
	}
	if cfg.Exclusive == nil {
		cfg.Exclusive = func(time.Time) {}
	}
	var suffix [6]byte
	rand.Read(suffix[:])
	n := &Node{
		b:        b,
		cfg:      cfg,
		id:       cfg.Name + "." + hex.EncodeToString(suffix[:]),
		lowWater: time.Now,
		kick:     make(chan struct{}, 1),
		lost:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	start := time.Now()
	epoch, hs, others, err := b.Join(ctx, n.id, cfg.Name, cfg.Addr, cfg.TTL)
	if err != nil {
		return nil, err
	}
	n.setCondemned(epoch, hs)
	if others == 0 {
		cfg.Exclusive(start.Add(cfg.TTL / 2))
	}
	hctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	go n.renew(hctx)
	if others > 0 {
		if err := n.awaitCachesOff(ctx); err != nil {
			n.Leave(context.WithoutCancel(ctx))
			return nil, err
		}
	}
	return n, nil
}

// awaitCachesOff waits until no other live node may be caching: each
// clears its flag at its next heartbeat, or expires within TTL.
func (n *Node) awaitCachesOff(ctx context.Context) error {
	for {
		k, err := n.b.Caching(ctx, n.id)
		if err != nil {
			return err
		}
		if k == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.lost:
			return ErrExpired
		case <-time.After(n.cfg.TTL / 40):
		}
	}
}

// ID is the node's registration id, unique per process start.
func (n *Node) ID() string { return n.id }

// Node implements omi.Leases: the node's name.
func (n *Node) Node() string { return n.cfg.Name }

// SetLowWater sets the source of the low water the node publishes
// (blockmap.Manager.LowWater); until then it publishes the current time,
// right for a node that has stored nothing.
func (n *Node) SetLowWater(fn func() time.Time) {
	n.mu.Lock()
	n.lowWater = fn
	n.mu.Unlock()
}

// Lost is closed when the node's registration expired; the process must
// stop.
func (n *Node) Lost() <-chan struct{} { return n.lost }

// Leave stops renewing and unregisters the node, freeing its leases for
// the other nodes at once.
func (n *Node) Leave(ctx context.Context) error {
	n.stop()
	<-n.done
	n.cfg.Exclusive(time.Time{})
	return n.b.Leave(ctx, n.id)
}

func (n *Node) renew(ctx context.Context) {
	defer close(n.done)
	t := time.NewTicker(n.cfg.TTL / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.kick:
		}
		if err := n.heartbeat(ctx); err != nil {
			if n.cfg.Expired(err) {
				n.cfg.Exclusive(time.Time{})
				n.cfg.Log.Error("cluster: this node's registration expired; stopping", "node", n.cfg.Name, "err", err)
				n.lostOnce.Do(func() { close(n.lost) })
				return
			}
			if ctx.Err() == nil {
				n.cfg.Log.Warn("cluster: heartbeat", "err", err)
			}
		}
	}
}

// heartbeat renews the registration, grants or withdraws the record
// cache (see the package documentation) and, when a new collection epoch
// has started, loads its condemned set and acknowledges it at once.
func (n *Node) heartbeat(ctx context.Context) error {
	n.mu.Lock()
	lw, loaded := n.lowWater, n.epoch
	n.mu.Unlock()
	cur, err := n.beat(ctx, lw(), loaded)
	if err != nil || cur == loaded {
		return err
	}
	epoch, hs, err := n.b.Condemned(ctx)
	if err != nil {
		return err
	}
	n.setCondemned(epoch, hs)
	_, err = n.beat(ctx, lw(), epoch)
	return err
}

// beat sends one heartbeat and acts on what it says of the other nodes.
func (n *Node) beat(ctx context.Context, lowWater time.Time, loaded int64) (int64, error) {
	start := time.Now()
	b, err := n.b.Heartbeat(ctx, n.id, n.cfg.TTL, lowWater, loaded)
	if err != nil {
		return 0, err
	}
	if b.Others == 0 && b.Caching {
		n.cfg.Exclusive(start.Add(n.cfg.TTL / 2))
		return b.Epoch, nil
	}
	n.cfg.Exclusive(time.Time{})
	if b.Caching {
		if err := n.b.StopCaching(ctx, n.id); err != nil {
			return 0, err
		}
	}
	return b.Epoch, nil
}

// Refresh asks for a heartbeat now (the collector after condemning).
func (n *Node) Refresh() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

func (n *Node) setCondemned(epoch int64, hs []blockstore.Hash) {
	set := make(map[blockstore.Hash]struct{}, len(hs))
	for _, h := range hs {
		set[h] = struct{}{}
	}
	n.mu.Lock()
	n.epoch, n.condemned = epoch, set
	n.mu.Unlock()
}

// Acquire implements omi.Leases.
func (n *Node) Acquire(ctx context.Context, name string) (bool, error) {
	ok, _, err := n.b.Acquire(ctx, name, n.id)
	return ok, err
}

// Release implements omi.Leases.
func (n *Node) Release(ctx context.Context, name string) error {
	return n.b.Release(ctx, name, n.id)
}

// Claim implements blockmap.Owner with the lease "map/<id>".
func (n *Node) Claim(ctx context.Context, id string) error {
	ok, holder, err := n.b.Acquire(ctx, "map/"+id, n.id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s is in use on omi node %s: %w", id, holder, blockmap.ErrBusy)
	}
	return nil
}

// Unclaim implements blockmap.Owner.
func (n *Node) Unclaim(ctx context.Context, id string) error {
	return n.b.Release(ctx, "map/"+id, n.id)
}

// Guard wraps the node's block store so that a Put of a condemned block
// rescues it (see the package documentation). Every Put of the node must
// go through it.
func (n *Node) Guard(s blockstore.Store) blockstore.Store { return &guarded{Store: s, n: n} }

type guarded struct {
	blockstore.Store
	n *Node
}

func (g *guarded) Put(ctx context.Context, data []byte) (blockstore.Hash, error) {
	h, err := g.Store.Put(ctx, data)
	if err != nil {
		return h, err
	}
	g.n.mu.Lock()
	_, hit := g.n.condemned[h]
	g.n.mu.Unlock()
	if !hit {
		return h, nil
	}
	rescued, err := g.n.b.Rescue(ctx, h)
	if err != nil {
		return h, err
	}
	g.n.mu.Lock()
	delete(g.n.condemned, h)
	g.n.mu.Unlock()
	if rescued {
		return h, nil
	}
	// The collector deleted it before the rescue (its transaction is over,
	// so the deletion is done): store it again.
	return g.Store.Put(ctx, data)
}

// Sync passes through, so that guarding keeps a batching store durable.
func (g *guarded) Sync(ctx context.Context) error { return blockstore.Sync(ctx, g.Store) }
