// Package recordcache keeps the records that API reads by id fetch, in
// front of a metadata store, so that a client polling a resource's state
// costs a map lookup instead of a store statement.
//
// Profiles of ReadImages by id under load showed the store's statement
// (and before it, the BEGIN and ROLLBACK of a View) taking half of omi's
// CPU per request. Wrap returns a Store that serves [omi.IDReader.GetIDs]
// from memory when it can and passes everything else through: Views keep
// their snapshot, Updates run on the store.
//
// Coherence. An entry is only ever served while it is the committed value:
//
//   - Every Put, Insert and Delete made through the wrapped Store's
//     Updates marks its record pending before the commit (dropping any
//     entry) and unmarks it once Update has returned. A pending record is
//     neither served nor cached, and every mark and unmark advances a
//     generation number and records it as the record's last invalidation:
//     a store read caches a record only if that record was not invalidated
//     after the read began, so a read that may have seen a value from
//     before a commit never caches it. A write made here is thus seen by
//     every read that starts after its Update returns.
//   - Writes by other processes sharing the store arrive through the
//     store's [omi.ChangeFeed] (PostgreSQL: a NOTIFY sent in the writing
//     transaction, delivered at its commit), and drop their entries the
//     same way. While the feed is not connected nothing is cached, and
//     when it drops (notifications may have been lost) the whole cache is
//     emptied. As a backstop against notifications delayed on a
//     connection that has not yet failed, entries of a shared store expire
//     SharedTTL after the read that fetched them began.
//   - A store without a change feed must have no other writer: SQLite
//     under omi, whose data directory one process holds locked.
//
// Shared stores: one node at a time. Notifications alone cannot give
// reads across nodes at once (a client that got node A's answer to a
// write may read through node B before A's NOTIFY reaches B), so a store
// with a change feed is cached only while [Store.Exclusive] says this
// process is the only live node of the store (package cluster grants it
// from its registrations, and withdraws it, emptying the cache, before
// telling a joining node it may serve). Without a grant, or once it has
// lapsed, every read goes to the store.
//
// A read of several ids answers from the cache only when every entry it
// returns is current at one instant, or reads them all from the store in
// one statement (one snapshot), so a multi-id read never mixes states.
package recordcache

import (
	"context"
	"sync"
	"time"

	"github.com/omiproject/omi"
)

// SharedTTL bounds how long a record of a store shared with other
// processes is served from memory after it was read, whatever happened to
// the notifications of their writes.
const SharedTTL = 5 * time.Second

// DefaultMaxBytes bounds the memory of the cached documents by default.
const DefaultMaxBytes = 64 << 20

// entryOverhead approximates the memory an entry costs besides its
// document (map slot, key, record fields).
const entryOverhead = 160

type key struct {
	kind omi.Kind
	id   string
}

type entry struct {
	rec omi.Record
	at  time.Time // when the read that fetched it began (shared stores)
}

// Store is an omi.Store with a cache of records read by id.
type Store struct {
	omi.Store
	ids omi.IDReader
	// ttl is SharedTTL for a store with a change feed, 0 (no expiry)
	// otherwise.
	ttl      time.Duration
	maxBytes int
	now      func() time.Time

	mu sync.Mutex
	// gen advances at every invalidation; recent holds, for the records
	// invalidated lately, the generation of their last invalidation, and
	// floor the generation up to which invalidations were forgotten (see
	// cacheable).
	gen    uint64
	recent map[key]uint64
	floor  uint64
	live   bool // entries may be added (change feed connected, or none needed)
	// shared: the store has a change feed, so entries are served and added
	// only before alone (see Exclusive).
	shared  bool
	alone   time.Time
	pending map[key]int
	m       map[key]entry
	bytes   int

	stats struct{ hits, misses uint64 }

	cancel context.CancelFunc
	done   chan struct{}
}

var (
	_ omi.Store    = (*Store)(nil)
	_ omi.IDReader = (*Store)(nil)
)

// Wrap returns st with a cache of at most maxBytes of documents (0:
// DefaultMaxBytes; negative: no cache, GetIDs always reads the store).
// st must implement omi.IDReader. If it implements omi.ChangeFeed, Wrap
// starts watching it, and Close stops; such a store is cached only while
// granted by Exclusive. The wrapper must be the only way
// this process writes to st.
func Wrap(st omi.Store, maxBytes int) *Store {
	if maxBytes == 0 {
		maxBytes = DefaultMaxBytes
	}
	s := &Store{Store: st, maxBytes: maxBytes, now: time.Now, pending: map[key]int{}, m: map[key]entry{}, recent: map[key]uint64{}}
	s.ids, _ = st.(omi.IDReader)
	if s.ids == nil {
		s.ids = viewReader{st}
	}
	if maxBytes < 0 {
		return s
	}
	feed, ok := st.(omi.ChangeFeed)
	if !ok {
		s.live = true
		return s
	}
	s.ttl = SharedTTL
	s.shared = true
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		feed.WatchChanges(ctx, s.setLive, s.changed)
	}()
	return s
}

// Unwrap returns the store the cache stands in front of, for tools that
// need what only it has (a SQLite file's path, for instance).
func (s *Store) Unwrap() omi.Store { return s.Store }

// Close stops watching the change feed and closes the store.
func (s *Store) Close() error {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	return s.Store.Close()
}

// Stats returns the number of records served from memory and read from
// the store by GetIDs.
func (s *Store) Stats() (hits, misses uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats.hits, s.stats.misses
}

// Live reports whether the cache follows the store's changes: always for
// a store without a change feed, while the feed is connected for one with
// it. A shared store's reads are cached only while Live and Exclusive.
func (s *Store) Live() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live
}

// Size returns the number of cached records and the bytes they count for
// against the budget.
func (s *Store) Size() (records, bytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m), s.bytes
}

// Exclusive tells the cache of a shared store (one with a change feed)
// that this process is the only one using the store until until (a time
// from time.Now, whose monotonic reading is what counts), so it may serve
// and keep records read by id until then. A zero until (or one past)
// withdraws the grant: the cache is emptied before Exclusive returns, and
// nothing read before is kept afterwards, so once it returns every read
// goes to the store. Stores without a change feed ignore it: they have
// no other user.
func (s *Store) Exclusive(until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.shared {
		return
	}
	now := s.now()
	grant := !until.IsZero() && now.Before(until)
	if !grant || !now.Before(s.alone) {
		// Withdrawn, or not granted until now (never, or lapsed): what
		// is cached or being read may predate another node's writes.
		s.forget()
		clear(s.m)
		s.bytes = 0
	}
	if !grant {
		s.alone = time.Time{}
		return
	}
	s.alone = until
}

// enabled reports whether entries may be served and added at now.
func (s *Store) enabled(now time.Time) bool {
	return s.live && (!s.shared || now.Before(s.alone))
}

// setLive is told whether the change feed delivers every change: when it
// stops, what is cached may have missed some, so all of it goes.
func (s *Store) setLive(up bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forget()
	s.live = up
	if !up {
		clear(s.m)
		s.bytes = 0
	}
}

// maxRecent bounds the invalidations remembered; past it they are
// forgotten at once, and the reads running then are not cached.
const maxRecent = 4096

// invalidate notes that k changed (or may change at any moment), and
// drops its entry.
func (s *Store) invalidate(k key) {
	s.gen++
	if len(s.recent) >= maxRecent {
		s.forget()
	}
	s.recent[k] = s.gen
	s.drop(k)
}

// forget drops the memory of past invalidations: no read that began
// before may be cached.
func (s *Store) forget() {
	s.gen++
	s.floor = s.gen
	clear(s.recent)
}

// cacheable reports whether a record k read from the store by a read that
// began at generation gen may be cached: no invalidation of k happened
// since (or none that could have been forgotten), and no write of it is
// pending.
func (s *Store) cacheable(k key, gen uint64, now time.Time) bool {
	return s.enabled(now) && gen >= s.floor && s.recent[k] <= gen && s.pending[k] == 0
}

// changed drops the entry of a record another process wrote.
func (s *Store) changed(kind omi.Kind, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.invalidate(key{kind, id})
}

func (s *Store) drop(k key) {
	if e, ok := s.m[k]; ok {
		s.bytes -= len(e.rec.Doc) + entryOverhead
		delete(s.m, k)
	}
}

// mark makes k pending: written by an Update of this process that may
// commit at any moment.
func (s *Store) mark(k key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending[k]++
	s.invalidate(k)
}

// unmark ends the pending state of keys, once their Update has returned.
func (s *Store) unmark(keys []key) {
	if len(keys) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if s.pending[k]--; s.pending[k] <= 0 {
			delete(s.pending, k)
		}
		s.invalidate(k)
	}
}

// Update runs fn on the store, noting every record it writes (see the
// package documentation).
func (s *Store) Update(ctx context.Context, fn func(omi.Tx) error) error {
	t := &writeTx{s: s}
	defer func() { s.unmark(t.keys) }()
	return s.Store.Update(ctx, func(tx omi.Tx) error {
		t.Tx = tx
		return fn(t)
	})
}

// writeTx marks the records an Update writes before the store sees the
// write, so before it can commit.
type writeTx struct {
	omi.Tx
	s *Store
	// keys is every mark made, across the attempts of a retried Update;
	// each is unmarked once.
	keys []key
	mu   sync.Mutex
}

func (t *writeTx) note(kind omi.Kind, id string) {
	k := key{kind, id}
	t.s.mark(k)
	t.mu.Lock()
	t.keys = append(t.keys, k)
	t.mu.Unlock()
}

func (t *writeTx) Put(r omi.Record) error {
	t.note(r.Kind, r.ID)
	return t.Tx.Put(r)
}

func (t *writeTx) Insert(r omi.Record) error {
	t.note(r.Kind, r.ID)
	return t.Tx.Insert(r)
}

func (t *writeTx) Delete(kind omi.Kind, id string) error {
	t.note(kind, id)
	return t.Tx.Delete(kind, id)
}

// GetIDs returns the records of kind among ids, from memory when every one
// of them is cached, else from the store in one statement. The records
// returned may be shared with the cache: callers must not modify their Doc
// or SharedWith.
func (s *Store) GetIDs(ctx context.Context, kind omi.Kind, ids []string) ([]omi.Record, error) {
	if s.maxBytes < 0 {
		return s.ids.GetIDs(ctx, kind, ids)
	}
	now := s.now()
	s.mu.Lock()
	gen := s.gen
	out := make([]omi.Record, 0, len(ids))
	all := s.enabled(now)
	for i, id := range ids {
		if !all {
			break
		}
		e, ok := s.m[key{kind, id}]
		if !ok || (s.ttl > 0 && now.Sub(e.at) > s.ttl) {
			all = false
			break
		}
		if !repeated(ids, i) {
			out = append(out, e.rec)
		}
	}
	if all {
		s.stats.hits += uint64(len(ids))
		s.mu.Unlock()
		return out, nil
	}
	s.stats.misses += uint64(len(ids))
	s.mu.Unlock()
	recs, err := s.ids.GetIDs(ctx, kind, ids)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	later := s.now()
	for _, r := range recs {
		k := key{kind, r.ID}
		if !s.cacheable(k, gen, later) {
			// Written meanwhile, or being written: what was read may be
			// older than the commit. It is still one snapshot, taken after
			// the call began, so the answer stands; only caching it would
			// be wrong.
			continue
		}
		s.drop(k)
		s.m[k] = entry{rec: r, at: now}
		s.bytes += len(r.Doc) + entryOverhead
	}
	s.trim()
	return recs, nil
}

// repeated reports whether ids[i] occurs earlier in ids.
func repeated(ids []string, i int) bool {
	for _, id := range ids[:i] {
		if id == ids[i] {
			return true
		}
	}
	return false
}

// trim drops entries (in the map's random order) until the cache is back
// under 90% of its budget.
func (s *Store) trim() {
	if s.bytes <= s.maxBytes {
		return
	}
	for k := range s.m {
		s.drop(k)
		if s.bytes <= s.maxBytes*9/10 {
			return
		}
	}
}

// viewReader reads by id through a View, for stores without IDReader.
type viewReader struct{ st omi.Store }

func (v viewReader) GetIDs(ctx context.Context, kind omi.Kind, ids []string) ([]omi.Record, error) {
	var out []omi.Record
	err := v.st.View(ctx, func(tx omi.Tx) error {
		out = out[:0]
		return tx.Scan(omi.Query{Kind: kind, IDs: ids}, func(r omi.Record) (bool, error) {
			out = append(out, r)
			return true, nil
		})
	})
	return out, err
}
