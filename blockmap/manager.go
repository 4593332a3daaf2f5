package blockmap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/omiproject/omi/blockstore"
)

var (
	// ErrExists is returned (wrapped) by Create and Clone when the target id
	// already has a map.
	ErrExists = errors.New("blockmap: map already exists")
	// ErrBusy is returned (wrapped) by Delete while the id is open as a
	// Device (or briefly held by Clone, Resize, View or WriteFrom).
	ErrBusy = errors.New("blockmap: map is in use")
	// ErrOutOfRange is returned (wrapped) for accesses beyond the volume
	// size, negative offsets and lengths, and input longer than the volume.
	ErrOutOfRange = errors.New("blockmap: out of range")
	// ErrClosed is returned by the methods of a closed Device or View.
	ErrClosed = errors.New("blockmap: closed")
)

// Option tunes a Manager.
type Option func(*config)

type config struct {
	dirtyLimit  int64
	cacheBlocks int
	cacheChunks int
	workers     int
	owner       Owner
	logDir      string
}

// WithDirtyLimit sets how many bytes of written blocks each open Device
// buffers in memory before storing them (default 32 MiB). A larger buffer
// absorbs rewrites of the same blocks; it never delays durability, which
// only Flush and Close promise.
func WithDirtyLimit(bytes int64) Option { return func(c *config) { c.dirtyLimit = bytes } }

// WithCacheBlocks sets how many decompressed blocks the Manager keeps for
// reads (default 32, 16 MiB), shared by all devices and views.
func WithCacheBlocks(n int) Option { return func(c *config) { c.cacheBlocks = n } }

// WithCacheChunks sets how many decoded map chunks (8 KiB each, the
// entries of 128 MiB of volume) the Manager keeps (default 2048, 16 MiB):
// maps sharing chunks load them from memory, and a marking reads each
// shared chunk once.
func WithCacheChunks(n int) Option { return func(c *config) { c.cacheChunks = n } }

// WithWorkers sets how many blocks a Device hashes, compresses and stores in
// parallel when writing back, and how many blocks ReadTo reads ahead (twice
// that). The default, 4 x GOMAXPROCS, keeps the CPUs busy while Puts wait
// for fsync (each local Put fsyncs a file and a directory).
func WithWorkers(n int) Option { return func(c *config) { c.workers = max(n, 1) } }

// Manager owns the maps of all volumes and snapshots of a process and the
// devices open on them. It is safe for concurrent use. One Manager must own
// a RootStore: two Managers on the same maps would not see each other's open
// devices.
type Manager struct {
	blocks     blockstore.Store
	maps       RootStore
	cfg        config
	cache      *lru[[]byte]
	chunkCache *lru[*chunk]

	// pins holds every hash Put by a device but not yet in a saved map,
	// every chunk block stored but not yet named by a saved root, and
	// every hash of an open View.
	pins blockstore.Pins

	mu      sync.Mutex
	devs    map[string]*devState
	idLocks map[string]*idLock

	// gate orders map changes against the start and end of a marking.
	// Block Puts (with their Pin), map saves and deletes hold it shared;
	// LiveHashes holds it exclusively only to flip marking.
	gate    sync.RWMutex
	marking int // guarded by gate

	fetchMu       sync.Mutex
	fetches       map[blockstore.Hash]*fetch
	prefetchSlots chan struct{}

	barrierMu sync.Mutex
	barrier   map[blockstore.Hash]struct{} // hashes of maps replaced or deleted while marking

	holdMu  sync.Mutex
	holdSeq uint64
	holds   map[uint64]time.Time // start of each hold (see hold)
}

type idLock struct {
	mu sync.Mutex
	n  int
}

// NewManager returns a Manager storing block content and map chunks in
// blocks and map roots in maps. A *DirStore given as maps is bound to this
// Manager, so that its MapStore methods work (see [DirStore]).
func NewManager(blocks blockstore.Store, maps RootStore, opts ...Option) *Manager {
	cfg := config{dirtyLimit: 32 << 20, cacheBlocks: 32, cacheChunks: 2048, workers: 4 * runtime.GOMAXPROCS(0)}
	for _, o := range opts {
		o(&cfg)
	}
	m := &Manager{
		blocks:     blocks,
		maps:       maps,
		cfg:        cfg,
		cache:      newLRU[[]byte](cfg.cacheBlocks),
		chunkCache: newLRU[*chunk](cfg.cacheChunks),
		devs:       make(map[string]*devState),
		idLocks:    make(map[string]*idLock),
		fetches:    make(map[blockstore.Hash]*fetch),
		// Read-ahead stays well inside the cache so prefetched blocks
		// are still there when the reader arrives.
		prefetchSlots: make(chan struct{}, max(1, min(cfg.workers, cfg.cacheBlocks/4))),
	}
	if b, ok := maps.(interface{ bind(*Manager) }); ok {
		b.bind(m)
	}
	return m
}

// lockID serialises operations that load or replace the map of one id.
func (m *Manager) lockID(id string) (unlock func()) {
	m.mu.Lock()
	l := m.idLocks[id]
	if l == nil {
		l = &idLock{}
		m.idLocks[id] = l
	}
	l.n++
	m.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		m.mu.Lock()
		if l.n--; l.n == 0 {
			delete(m.idLocks, id)
		}
		m.mu.Unlock()
	}
}

// exists reports whether id has a map or an open device. The caller holds
// lockID(id).
func (m *Manager) exists(ctx context.Context, id string) (bool, error) {
	m.mu.Lock()
	_, open := m.devs[id]
	m.mu.Unlock()
	if open {
		return true, nil
	}
	_, err := m.maps.LoadRoot(ctx, id)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrNotFound):
		return false, nil
	default:
		return false, err
	}
}

// Create saves an empty volume map of size bytes: all holes, no block
// stored.
func (m *Manager) Create(ctx context.Context, id string, size int64) error {
	mp, err := New(size)
	if err != nil {
		return fmt.Errorf("blockmap: create %s: %w", id, errors.Join(ErrOutOfRange, err))
	}
	unlock := m.lockID(id)
	defer unlock()
	if err := m.claim(ctx, id); err != nil {
		return fmt.Errorf("blockmap: create %s: %w", id, err)
	}
	defer m.unclaim(id)
	switch ok, err := m.exists(ctx, id); {
	case err != nil:
		return fmt.Errorf("blockmap: create %s: %w", id, err)
	case ok:
		return fmt.Errorf("blockmap: create %s: %w", id, ErrExists)
	}
	_, err = m.saveMap(ctx, id, mp)
	return err
}

// Clone saves a copy of src's map under dst, which must not exist. Only
// metadata is written. When src is open as a Device, the writes it
// acknowledged before Clone was called are flushed first, and the copy is the
// device content at one instant: each block is either as before or as after
// each concurrent write, never torn between two writebacks. A src open in
// another process (see [Owner]) is copied as that process last saved it.
func (m *Manager) Clone(ctx context.Context, src, dst string) error {
	if src == dst {
		return fmt.Errorf("blockmap: clone %s onto itself: %w", src, ErrExists)
	}
	at, done := m.hold()
	defer done()
	s, mp, err := m.openOrLoad(ctx, src, at)
	if err != nil {
		return fmt.Errorf("blockmap: clone %s: %w", src, err)
	}
	if s != nil {
		err = m.cloneFrom(ctx, s, dst)
		if rerr := m.release(ctx, s); err == nil {
			err = rerr
		}
		return err
	}
	defer m.unpinAll(mp)
	return m.saveNew(ctx, src, dst, func() *Map { return mp })
}

// openOrLoad returns the shared state of id with a reference when id is
// open here, else its saved map, loaded without opening it (so without
// claiming it) and pinned with date at; the caller unpins it (unpinAll).
// The load and the pins happen under the id lock and the gate, so that
// neither a delete nor the start of a marking falls between them.
func (m *Manager) openOrLoad(ctx context.Context, id string, at time.Time) (*devState, *Map, error) {
	unlock := m.lockID(id)
	defer unlock()
	m.mu.Lock()
	if s := m.devs[id]; s != nil {
		s.refs++
		m.mu.Unlock()
		return s, nil, nil
	}
	m.mu.Unlock()
	m.gate.RLock()
	defer m.gate.RUnlock()
	mp, err := m.loadMap(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	mp.Walk(func(_ int64, h blockstore.Hash) error { m.pins.PinAt(h, at); return nil })
	return nil, mp, nil
}

func (m *Manager) cloneFrom(ctx context.Context, s *devState, dst string) error {
	if err := s.flush(ctx); err != nil {
		return fmt.Errorf("blockmap: clone %s: %w", s.id, err)
	}
	return m.saveNew(ctx, s.id, dst, s.snapshot)
}

// saveNew saves the map returned by snap under dst, which must not exist.
func (m *Manager) saveNew(ctx context.Context, src, dst string, snap func() *Map) error {
	unlock := m.lockID(dst)
	defer unlock()
	if err := m.claim(ctx, dst); err != nil {
		return fmt.Errorf("blockmap: clone %s to %s: %w", src, dst, err)
	}
	defer m.unclaim(dst)
	switch ok, err := m.exists(ctx, dst); {
	case err != nil:
		return fmt.Errorf("blockmap: clone %s to %s: %w", src, dst, err)
	case ok:
		return fmt.Errorf("blockmap: clone %s to %s: %w", src, dst, ErrExists)
	}
	// Holding the gate keeps marking from starting or ending between the
	// copy and the save: the copied hashes are referenced by src (saved or
	// pinned) at the copy, and by dst after the save.
	m.gate.RLock()
	defer m.gate.RUnlock()
	_, err := m.saveLocked(ctx, dst, snap())
	return err
}

// Resize grows the volume to size bytes. The new space reads as zeros and
// costs nothing; shrinking is refused.
func (m *Manager) Resize(ctx context.Context, id string, size int64) error {
	s, err := m.acquire(ctx, id)
	if err != nil {
		return fmt.Errorf("blockmap: resize %s: %w", id, err)
	}
	err = s.grow(ctx, size, true)
	if err == nil {
		err = s.flush(ctx)
	}
	if rerr := m.release(ctx, s); err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("blockmap: resize %s: %w", id, err)
	}
	return nil
}

// Delete removes the map of id. Its blocks are freed by the next garbage
// collection unless another map shares them. It fails with ErrBusy while id
// is open; deleting a missing id is not an error.
func (m *Manager) Delete(ctx context.Context, id string) error {
	unlock := m.lockID(id)
	defer unlock()
	m.mu.Lock()
	_, open := m.devs[id]
	m.mu.Unlock()
	if open {
		return fmt.Errorf("blockmap: delete %s: %w", id, ErrBusy)
	}
	if err := m.claim(ctx, id); err != nil {
		return fmt.Errorf("blockmap: delete %s: %w", id, err)
	}
	defer m.unclaim(id)
	m.gate.RLock()
	defer m.gate.RUnlock()
	if err := m.barrierLocked(ctx, id); err != nil {
		return fmt.Errorf("blockmap: delete %s: %w", id, err)
	}
	if err := m.maps.Delete(ctx, id); err != nil {
		return err
	}
	logs, _, _ := m.logsOf(id)
	for _, p := range logs {
		os.Remove(p)
	}
	return nil
}

// IDs calls fn with the id of every saved map, in no particular order.
func (m *Manager) IDs(ctx context.Context, fn func(id string) error) error {
	return m.maps.WalkRoots(ctx, func(id string, _ *Root) error { return fn(id) })
}

// Size returns the size in bytes of id.
func (m *Manager) Size(ctx context.Context, id string) (int64, error) {
	m.mu.Lock()
	s := m.devs[id]
	m.mu.Unlock()
	if s != nil {
		return s.size(), nil
	}
	r, err := m.maps.LoadRoot(ctx, id)
	if err != nil {
		return 0, err
	}
	return r.Size(), nil
}

// Open returns a Device reading and writing id. Opens of the same id share
// one state (buffer, map); each returned Device must be closed, and the last
// Close flushes.
func (m *Manager) Open(ctx context.Context, id string) (*Device, error) {
	s, err := m.acquire(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("blockmap: open %s: %w", id, err)
	}
	return &Device{s: s}, nil
}

// FlushAll flushes every open device, for a graceful shutdown or a
// checkpoint. It returns the first error but tries every device.
func (m *Manager) FlushAll(ctx context.Context) error {
	m.mu.Lock()
	states := make([]*devState, 0, len(m.devs))
	for _, s := range m.devs {
		states = append(states, s)
	}
	m.mu.Unlock()
	var first error
	for _, s := range states {
		if err := s.flush(ctx); err != nil && first == nil {
			first = fmt.Errorf("blockmap: flush %s: %w", s.id, err)
		}
	}
	return first
}

// acquire returns the shared device state of id, loading its map if it is
// not open, and takes a reference on it.
func (m *Manager) acquire(ctx context.Context, id string) (*devState, error) {
	unlock := m.lockID(id)
	defer unlock()
	m.mu.Lock()
	if s := m.devs[id]; s != nil {
		s.refs++
		m.mu.Unlock()
		return s, nil
	}
	m.mu.Unlock()
	if err := m.claim(ctx, id); err != nil {
		return nil, err
	}
	mp, err := m.loadMap(ctx, id)
	if err != nil {
		m.unclaim(id)
		return nil, err
	}
	s := newDevState(m, id, mp)
	if err := s.replayLogs(ctx); err != nil {
		s.closeLog()
		s.shut()
		m.unclaim(id)
		return nil, err
	}
	m.mu.Lock()
	m.devs[id] = s
	m.mu.Unlock()
	return s, nil
}

// release drops a reference taken by acquire; the last one flushes the
// state and forgets it. Even when that flush fails the state is dropped (and
// its unsaved writes lost), so that a broken store cannot pin a volume open.
func (m *Manager) release(ctx context.Context, s *devState) error {
	unlock := m.lockID(s.id)
	defer unlock()
	m.mu.Lock()
	s.refs--
	last := s.refs == 0
	m.mu.Unlock()
	if !last {
		return nil
	}
	err := s.flush(ctx)
	m.mu.Lock()
	delete(m.devs, s.id)
	m.mu.Unlock()
	s.closeLog() // kept on disk if the flush failed
	s.shut()
	m.unclaim(s.id)
	return err
}

// saveMap durably saves mp under id: the chunk blocks it lacks, then its
// root, recording the hashes of the map it replaces if a marking is running.
// It returns the chunk hashes it stored, which the caller may record in its
// map (setSums) if that map did not change meanwhile; mp itself is only
// read.
func (m *Manager) saveMap(ctx context.Context, id string, mp *Map) ([]chunkSum, error) {
	m.gate.RLock()
	defer m.gate.RUnlock()
	return m.saveLocked(ctx, id, mp)
}

// saveLocked is saveMap for a caller holding the gate shared. The chunk
// blocks are durable (Put returned) before the root naming them is saved,
// and pinned until then.
func (m *Manager) saveLocked(ctx context.Context, id string, mp *Map) ([]chunkSum, error) {
	root, sums, err := m.storeChunksLocked(ctx, mp)
	if err != nil {
		return nil, fmt.Errorf("blockmap: save %s: %w", id, err)
	}
	defer func() {
		for _, s := range sums {
			m.pins.Unpin(s.h)
		}
	}()
	if err := m.barrierLocked(ctx, id); err != nil {
		return nil, fmt.Errorf("blockmap: save %s: %w", id, err)
	}
	// Every block the root names (data blocks written back earlier, the
	// chunk blocks just stored) must be durable before the root is.
	if err := blockstore.Sync(ctx, m.blocks); err != nil {
		return nil, fmt.Errorf("blockmap: save %s: %w", id, err)
	}
	if err := m.maps.SaveRoot(ctx, id, root); err != nil {
		return nil, err
	}
	return sums, nil
}

// barrierLocked is the write barrier of the collector: while a marking
// runs, a map about to be replaced or deleted first has its hashes (chunk
// blocks and the data blocks they name) added to the barrier set, which
// LiveHashes reports at its end. The caller holds the gate shared, so
// marking cannot start between this check and the change.
func (m *Manager) barrierLocked(ctx context.Context, id string) error {
	if m.marking == 0 {
		return nil
	}
	old, err := m.maps.LoadRoot(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var hs []blockstore.Hash
	if err := m.markRoot(ctx, old, nil, func(h blockstore.Hash) error { hs = append(hs, h); return nil }); err != nil {
		return err
	}
	m.barrierMu.Lock()
	defer m.barrierMu.Unlock()
	for _, h := range hs {
		m.barrier[h] = struct{}{}
	}
	return nil
}

// putPinned stores data and pins its hash, atomically with respect to the
// start of a marking: a marking either sees the pin or starts after the Put,
// in which case the block's written time protects it from that collection.
func (m *Manager) putPinned(ctx context.Context, data []byte) (blockstore.Hash, error) {
	at, done := m.hold()
	defer done()
	m.gate.RLock()
	defer m.gate.RUnlock()
	h, err := m.blocks.Put(ctx, data)
	if err != nil {
		return h, err
	}
	m.pins.PinAt(h, at)
	return h, nil
}

// getBlock returns the content of block h, from the cache or the store. The
// returned slice is shared and must not be modified. Concurrent misses on
// the same block share one Get: an NBD client reading a block in several
// pipelined requests costs one read and one decompression.
func (m *Manager) getBlock(ctx context.Context, h blockstore.Hash) ([]byte, error) {
	if data := m.cache.get(h); data != nil {
		return data, nil
	}
	m.fetchMu.Lock()
	if c := m.fetches[h]; c != nil {
		m.fetchMu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if c.err == nil {
			return c.data, nil
		}
		// The leader's failure may be its own cancellation: try ourselves.
		return m.blocks.Get(ctx, h, nil)
	}
	c := &fetch{done: make(chan struct{})}
	m.fetches[h] = c
	m.fetchMu.Unlock()

	c.data, c.err = m.blocks.Get(ctx, h, nil)
	if c.err == nil {
		m.cache.add(h, c.data)
	}
	m.fetchMu.Lock()
	delete(m.fetches, h)
	m.fetchMu.Unlock()
	close(c.done)
	return c.data, c.err
}

// prefetch reads block h into the cache in the background, if a slot is
// free; sequential readers call it for the blocks after the one they read.
func (m *Manager) prefetch(h blockstore.Hash) {
	if m.cache.get(h) != nil {
		return
	}
	select {
	case m.prefetchSlots <- struct{}{}:
	default:
		return // enough reads ahead already
	}
	go func() {
		defer func() { <-m.prefetchSlots }()
		m.getBlock(context.Background(), h)
	}()
}

// fetch is a Get in progress, shared by concurrent readers of one block.
type fetch struct {
	done chan struct{}
	data []byte
	err  error
}

// LiveHashes calls fn with every hash that must survive a collection that
// started before the call: the chunk blocks of every saved map and the data
// blocks they name, those Put by open devices but not yet saved, chunk
// blocks stored but whose root is not saved yet, those of open Views, and
// those of maps replaced or deleted while it runs. A chunk shared by several
// maps is read and reported once. A hash may be reported more than once. Use it as
// the live function of gc.Collect.
//
// It is a snapshot-at-the-beginning marking: every hash referenced when it
// starts is reported, even if the reference is dropped meanwhile (the write
// barrier), and hashes that become referenced later were Put after the
// collection started, so the sweep's written-time check keeps them.
func (m *Manager) LiveHashes(ctx context.Context, fn func(blockstore.Hash) error) error {
	m.gate.Lock()
	if m.marking == 0 {
		m.barrierMu.Lock()
		m.barrier = make(map[blockstore.Hash]struct{})
		m.barrierMu.Unlock()
	}
	m.marking++
	m.gate.Unlock()
	defer func() {
		m.gate.Lock()
		if m.marking--; m.marking == 0 {
			m.barrierMu.Lock()
			m.barrier = nil
			m.barrierMu.Unlock()
		}
		m.gate.Unlock()
	}()

	pinned := make(map[blockstore.Hash]struct{})
	m.pins.AddTo(pinned)
	for h := range pinned {
		if err := fn(h); err != nil {
			return err
		}
	}
	seen := make(map[blockstore.Hash]struct{})
	err := m.maps.WalkRoots(ctx, func(id string, r *Root) error {
		if err := m.markRoot(ctx, r, seen, fn); err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("blockmap: live hashes: %w", err)
	}
	m.barrierMu.Lock()
	barrier := make([]blockstore.Hash, 0, len(m.barrier))
	for h := range m.barrier {
		barrier = append(barrier, h)
	}
	m.barrierMu.Unlock()
	for _, h := range barrier {
		if err := fn(h); err != nil {
			return err
		}
	}
	return nil
}

// WriteFrom copies r into volume id from offset 0, as an import does, and
// returns the number of bytes copied. Input shorter than the volume leaves
// the rest unchanged; longer input fails with ErrOutOfRange after writing
// what fits. All-zero blocks become holes. The data is flushed before
// WriteFrom returns nil.
func (m *Manager) WriteFrom(ctx context.Context, id string, r io.Reader) (int64, error) {
	s, err := m.acquire(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("blockmap: write %s: %w", id, err)
	}
	n, err := s.readFrom(ctx, r)
	if err == nil {
		err = s.flush(ctx)
	}
	if rerr := m.release(ctx, s); err == nil {
		err = rerr
	}
	if err != nil {
		return n, fmt.Errorf("blockmap: write %s: %w", id, err)
	}
	return n, nil
}

// ReadTo writes the whole content of id to w, holes as zeros, reading
// blocks ahead in parallel, and returns the number of bytes written.
func (m *Manager) ReadTo(ctx context.Context, id string, w io.Writer) (int64, error) {
	v, err := m.View(ctx, id)
	if err != nil {
		return 0, err
	}
	defer v.Close()
	return v.WriteTo(w)
}
