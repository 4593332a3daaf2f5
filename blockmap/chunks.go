package blockmap

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/omiproject/omi/blockstore"
)

// chunkSum records that chunk i of a map is stored as block h.
type chunkSum struct {
	i int64
	h blockstore.Hash
}

// setSums records chunk hashes returned by a save. The caller guarantees
// the map did not change since the save read it.
func (mp *Map) setSums(sums []chunkSum) {
	for _, s := range sums {
		if int(s.i) < len(mp.sums) {
			mp.sums[s.i] = s.h
		}
	}
}

// getChunk returns the decoded chunk block h, from the chunk cache or the
// store. The result is shared (copy-on-write): maps may hold it as is.
func (m *Manager) getChunk(ctx context.Context, h blockstore.Hash) (*chunk, error) {
	if c := m.chunkCache.get(h); c != nil {
		return c, nil
	}
	data, err := m.blocks.Get(ctx, h, nil)
	if err != nil {
		return nil, fmt.Errorf("blockmap: chunk block %s: %w", h, err)
	}
	c, err := decodeChunk(data)
	if err != nil {
		return nil, fmt.Errorf("blockmap: chunk block %s: %w", h, err)
	}
	c.share()
	m.chunkCache.add(h, c)
	return c, nil
}

// parallel runs fn(0..n-1) on up to the configured number of workers and
// returns the first error; after an error the remaining calls are skipped.
func (m *Manager) parallel(n int, fn func(k int) error) error {
	if n == 0 {
		return nil
	}
	if n == 1 {
		return fn(0)
	}
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for w := 0; w < min(m.cfg.workers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= n {
					return
				}
				if err := fn(k); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// resolve returns the map a root describes, reading its chunk blocks
// (cached ones from memory, the others in parallel).
func (m *Manager) resolve(ctx context.Context, r *Root) (*Map, error) {
	if r.legacy != nil {
		return r.legacy.Clone(), nil
	}
	mp, err := New(r.size)
	if err != nil {
		return nil, err
	}
	var idx []int // chunks to read from the store
	for i, h := range r.chunks {
		if h.IsZero() {
			continue
		}
		if c := m.chunkCache.get(h); c != nil {
			mp.chunks[i], mp.sums[i] = c, h // shared: copied on first change
			continue
		}
		idx = append(idx, i)
	}
	err = m.parallel(len(idx), func(k int) error {
		i := idx[k]
		c, err := m.getChunk(ctx, r.chunks[i])
		if err != nil {
			return err
		}
		mp.chunks[i], mp.sums[i] = c, r.chunks[i]
		return nil
	})
	if err != nil {
		return nil, err
	}
	return mp, nil
}

// loadMap loads and resolves the map of id.
func (m *Manager) loadMap(ctx context.Context, id string) (*Map, error) {
	r, err := m.maps.LoadRoot(ctx, id)
	if err != nil {
		return nil, err
	}
	mp, err := m.resolve(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("blockmap: load %s: %w", id, err)
	}
	return mp, nil
}

// storeChunksLocked stores, durably, every allocated chunk of mp whose block
// is not known to be stored, and returns the root naming them, the new
// chunk hashes (pinned: the caller unpins them once the root is saved or
// abandoned). The caller holds the gate shared from these Puts to the root
// save, so no marking can start in between: a marking already running keeps
// the new chunk blocks by their written time, a later one sees the root. The
// pins are therefore a second guard, kept so that the rule "a block Put but
// not yet named by a saved root is pinned" holds for chunk blocks too if the
// gate is ever narrowed. The caller also keeps mp from changing meanwhile.
func (m *Manager) storeChunksLocked(ctx context.Context, mp *Map) (*Root, []chunkSum, error) {
	root := &Root{size: mp.size, chunks: make([]blockstore.Hash, len(mp.chunks))}
	var todo []int
	for i, c := range mp.chunks {
		switch {
		case c == nil:
		case !mp.sums[i].IsZero():
			root.chunks[i] = mp.sums[i]
		default:
			todo = append(todo, i)
		}
	}
	sums := make([]chunkSum, len(todo))
	at, done := m.hold()
	defer done()
	err := m.parallel(len(todo), func(k int) error {
		i := todo[k]
		c := mp.chunks[i]
		h, err := m.blocks.Put(ctx, encodeChunk(c))
		if err != nil {
			return fmt.Errorf("blockmap: store chunk %d: %w", i, err)
		}
		m.pins.PinAt(h, at)
		m.chunkCache.add(h, c.share())
		sums[k] = chunkSum{int64(i), h}
		return nil
	})
	if err != nil {
		for _, s := range sums {
			if !s.h.IsZero() {
				m.pins.Unpin(s.h)
			}
		}
		return nil, nil, err
	}
	for _, s := range sums {
		root.chunks[s.i] = s.h
	}
	return root, sums, nil
}

// markRoot reports the hashes a root keeps alive: its chunk blocks and the
// data blocks they name. Chunks in seen were reported already (shared by
// several maps) and are skipped; seen may be nil.
func (m *Manager) markRoot(ctx context.Context, r *Root, seen map[blockstore.Hash]struct{}, fn func(blockstore.Hash) error) error {
	if r.legacy != nil {
		return r.legacy.Walk(func(_ int64, h blockstore.Hash) error { return fn(h) })
	}
	for _, ch := range r.chunks {
		if ch.IsZero() {
			continue
		}
		if seen != nil {
			if _, ok := seen[ch]; ok {
				continue
			}
			seen[ch] = struct{}{}
		}
		if err := fn(ch); err != nil {
			return err
		}
		c, err := m.getChunk(ctx, ch)
		if err != nil {
			return err
		}
		for _, h := range c.e {
			if h.IsZero() {
				continue
			}
			if err := fn(h); err != nil {
				return err
			}
		}
	}
	return nil
}
