package blockmap

import (
	"container/list"
	"sync"

	"github.com/omiproject/omi/blockstore"
)

// blockCache is a small LRU of decompressed, verified blocks keyed by hash.
// NBD clients read a 512 KiB block in several smaller requests; without the
// cache each of them would read, decompress and verify the whole block
// again. Cached slices are immutable and shared: callers copy out of them.
type blockCache struct {
	mu    sync.Mutex
	max   int
	ll    *list.List // of *cacheEntry, most recent first
	items map[blockstore.Hash]*list.Element
}

type cacheEntry struct {
	h    blockstore.Hash
	data []byte
}

func newBlockCache(max int) *blockCache {
	return &blockCache{max: max, ll: list.New(), items: make(map[blockstore.Hash]*list.Element)}
}

// get returns the cached content of h, or nil.
func (c *blockCache) get(h blockstore.Hash) []byte {
	if c.max <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[h]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*cacheEntry).data
	}
	return nil
}

// add caches data as the content of h. The cache keeps data: the caller
// must not modify it afterwards.
func (c *blockCache) add(h blockstore.Hash, data []byte) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[h]; ok {
		c.ll.MoveToFront(e)
		return
	}
	c.items[h] = c.ll.PushFront(&cacheEntry{h: h, data: data})
	for c.ll.Len() > c.max {
		e := c.ll.Back()
		c.ll.Remove(e)
		delete(c.items, e.Value.(*cacheEntry).h)
	}
}
