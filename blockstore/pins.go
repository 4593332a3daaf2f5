package blockstore

import (
	"sync"
	"time"
)

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
	counts map[Hash]pin
}

// pin is the hold count of one hash and the time of its oldest hold.
type pin struct {
	n     int
	since time.Time
}

// Pin adds one hold on h. Pin before Put, so that a collection that started
// earlier sees either the pin or the refreshed written time.
func (p *Pins) Pin(h Hash) { p.PinAt(h, time.Now()) }

// PinAt adds one hold on h dated t: a time no later than the Put of h or the
// read of the map naming h that the hold protects. Collectors that cannot
// see the pins themselves (other processes) rely on [Pins.Oldest].
func (p *Pins) PinAt(h Hash, t time.Time) {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.counts == nil {
		p.counts = make(map[Hash]pin)
	}
	c := p.counts[h]
	if c.n == 0 || t.Before(c.since) {
		c.since = t
	}
	c.n++
	p.counts[h] = c
	p.mu.Unlock()
}

// Unpin releases one hold on h taken by Pin. Unpin only after the map change
// referencing h is committed (or abandoned).
func (p *Pins) Unpin(h Hash) {
	if p == nil {
		return
	}
	p.mu.Lock()
	if c := p.counts[h]; c.n > 1 {
		c.n--
		p.counts[h] = c
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
	return p.counts[h].n > 0
}

// Oldest returns the date of the oldest hold, and false when nothing is
// pinned. It costs one pass over the pinned hashes.
func (p *Pins) Oldest() (time.Time, bool) {
	if p == nil {
		return time.Time{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var old time.Time
	for _, c := range p.counts {
		if old.IsZero() || c.since.Before(old) {
			old = c.since
		}
	}
	return old, len(p.counts) > 0
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
