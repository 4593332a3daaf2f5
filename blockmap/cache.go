package blockmap

import (
	"container/list"
	"sync"

	"github.com/omiproject/omi/blockstore"
)

// lru is a small cache of immutable values keyed by block hash: the
// decompressed, verified content of data blocks (NBD clients read a 512 KiB
// block in several smaller requests; without the cache each of them would
// read, decompress and verify the whole block again) and the decoded chunks
// of chunk blocks (loading a map or marking reads each shared chunk once).
// Cached values are shared: callers copy out of them and never modify them.
type lru[V any] struct {
	mu    sync.Mutex
	max   int
	ll    *list.List // of *lruEntry[V], most recent first
	items map[blockstore.Hash]*list.Element
}

type lruEntry[V any] struct {
	h blockstore.Hash
	v V
}

func newLRU[V any](max int) *lru[V] {
	return &lru[V]{max: max, ll: list.New(), items: make(map[blockstore.Hash]*list.Element)}
}

// get returns the cached value of h, or the zero V.
func (c *lru[V]) get(h blockstore.Hash) V {
	var zero V
	if c.max <= 0 {
		return zero
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[h]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*lruEntry[V]).v
	}
	return zero
}

// add caches v as the value of h. The cache keeps v: the caller must not
// modify it afterwards.
func (c *lru[V]) add(h blockstore.Hash, v V) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[h]; ok {
		c.ll.MoveToFront(e)
		return
	}
	c.items[h] = c.ll.PushFront(&lruEntry[V]{h: h, v: v})
	for c.ll.Len() > c.max {
		e := c.ll.Back()
		c.ll.Remove(e)
		delete(c.items, e.Value.(*lruEntry[V]).h)
	}
}
