package service

import (
	"context"
	"sync"
	"time"

	"github.com/omiproject/omi"
)

// Every signed call looks up its access key and account before doing its
// own work; read from the store each time, that lookup cost as much as a
// ReadImages by id itself. keyCache keeps what the lookup found for a
// short while.
//
// Freshness: a write of any access key or account made through this
// Service (this node) empties the cache once the write's transaction has
// ended, so a key deactivated or deleted here stops working at once, as
// before. A write made by another node sharing the store (PostgreSQL) is
// seen within keyCacheTTL. Expiration dates are checked on every call, on
// the cached key, against the service clock.

// keyCacheTTL bounds how long another node's change to a key or an
// account may go unseen here.
const keyCacheTTL = time.Second

// keyCacheMax bounds the cached keys; a full cache starts over.
const keyCacheMax = 10000

type keyEntry struct {
	key  omi.AccessKey
	acct omi.Account
	at   time.Time
}

type keyCache struct {
	// now is the clock of the TTL (time.Now when nil; tests set it).
	now func() time.Time
	mu  sync.Mutex
	gen uint64
	m   map[string]keyEntry
}

// get returns a copy of the entry of id if it is fresh.
func (c *keyCache) get(id string) (*omi.AccessKey, *omi.Account, bool) {
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if !ok || c.clock().Sub(e.at) > keyCacheTTL {
		return nil, nil, false
	}
	return &e.key, &e.acct, true
}

func (c *keyCache) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// generation is read before a lookup's transaction; put then stores its
// result only if no invalidation happened meanwhile (the transaction may
// have read what the invalidating write replaced).
func (c *keyCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *keyCache) put(gen uint64, id string, key *omi.AccessKey, acct *omi.Account, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.m == nil || len(c.m) >= keyCacheMax {
		c.m = map[string]keyEntry{}
	}
	c.m[id] = keyEntry{key: *key, acct: *acct, at: at}
}

func (c *keyCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.m)
}

// watchingStore is the Service's view of its store: it empties the key
// cache after every Update that wrote an access key or an account,
// whether or not it committed.
type watchingStore struct {
	omi.Store
	keys *keyCache
}

func (w watchingStore) Update(ctx context.Context, fn func(omi.Tx) error) error {
	t := &watchingTx{}
	defer func() {
		if t.touched {
			w.keys.invalidate()
		}
	}()
	return w.Store.Update(ctx, func(tx omi.Tx) error {
		t.Tx = tx
		return fn(t)
	})
}

// watchingTx notes writes of access keys and accounts.
type watchingTx struct {
	omi.Tx
	touched bool
}

func (t *watchingTx) note(k omi.Kind) {
	if k == omi.KindAccessKey || k == omi.KindAccount {
		t.touched = true
	}
}

func (t *watchingTx) Put(r omi.Record) error {
	t.note(r.Kind)
	return t.Tx.Put(r)
}

func (t *watchingTx) Insert(r omi.Record) error {
	t.note(r.Kind)
	return t.Tx.Insert(r)
}

func (t *watchingTx) Delete(k omi.Kind, id string) error {
	t.note(k)
	return t.Tx.Delete(k, id)
}
