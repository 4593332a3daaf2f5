package blockstore

import "sync"

// Pins is a multiset of hashes that writers hold while a block is stored but
// not yet referenced by a committed block map (for example a device's dirty
// block between its Put and the map commit). The garbage collector reads it
// at mark time and treats every pinned hash as live, so a block is never
// swept in the window between being written and being committed.
//
// The zero value is ready to use, and all methods of a nil *Pins are no-ops,
// so pinning is optional for callers that never run alongside a collector.
type Pins struct {
	mu     sync.Mutex
	counts map[Hash]int
}

// Pin adds one hold on h. Pin before Put, so that a collection that started
// earlier sees either the pin or the refreshed written time.
func (p *Pins) Pin(h Hash) {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.counts == nil {
		p.counts = make(map[Hash]int)
	}
	p.counts[h]++
	p.mu.Unlock()
}

// Unpin releases one hold on h taken by Pin. Unpin only after the map change
// referencing h is committed (or abandoned).
func (p *Pins) Unpin(h Hash) {
	if p == nil {
		return
	}
	p.mu.Lock()
	if n := p.counts[h]; n > 1 {
		p.counts[h] = n - 1
	} else {
		delete(p.counts, h)
	}
	p.mu.Unlock()
}

// Pinned reports whether h has at least one hold.
func (p *Pins) Pinned(h Hash) bool {
	if p == nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[h] > 0
}

// Len returns the number of distinct pinned hashes.
func (p *Pins) Len() int {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.counts)
}

// AddTo adds every currently pinned hash to set, as one consistent snapshot.
func (p *Pins) AddTo(set map[Hash]struct{}) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for h := range p.counts {
		set[h] = struct{}{}
	}
}
