package service

import (
	"sync"

	"github.com/omiproject/omi"
)

// Decoding a stored document was the largest cost left in a read by id
// served from the record cache (package recordcache). decodedCache keeps
// the decoded value of the documents of resources that can clone
// themselves, and readPage hands out clones.
//
// An entry is valid only for the very document it was decoded from: it
// keeps that document's byte slice and is used only when the record read
// carries the same slice (same array, same length). The record cache
// hands out the same slice until the record is written, so a written
// record's new document misses here. Holding the slice also keeps its
// array alive, so its address cannot be reused by another document while
// the entry exists.
type decodedCache struct {
	mu sync.Mutex
	m  map[decodedKey]decodedEntry
}

type decodedKey struct {
	kind omi.Kind
	id   string
}

type decodedEntry struct {
	doc []byte
	v   any
}

// decodedMax bounds the entries; a full cache starts over.
const decodedMax = 1 << 16

// cloner is implemented by resources whose decoded value readPage may
// keep: Clone returns a deep copy.
type cloner[T any] interface{ Clone() *T }

func sameDoc(a, b []byte) bool {
	return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0]
}

// decode returns the resource of r, a clone of a kept value when r's
// document is the one it was decoded from.
func decode[T any, PT interface {
	*T
	omi.Resource
}](c *decodedCache, r omi.Record) (*T, error) {
	if _, ok := any(PT(nil)).(cloner[T]); !ok || c == nil {
		return omi.Decode[T, PT](r)
	}
	k := decodedKey{r.Kind, r.ID}
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	if ok && sameDoc(e.doc, r.Doc) {
		return any(e.v.(*T)).(cloner[T]).Clone(), nil
	}
	v, err := omi.Decode[T, PT](r)
	if err != nil {
		return nil, err
	}
	kept := any(v).(cloner[T]).Clone()
	c.mu.Lock()
	if c.m == nil || len(c.m) >= decodedMax {
		c.m = map[decodedKey]decodedEntry{}
	}
	c.m[k] = decodedEntry{doc: r.Doc, v: kept}
	c.mu.Unlock()
	return v, nil
}
