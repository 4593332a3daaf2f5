package local

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/omiproject/omi/blockstore"
)

const (
	// flushBlocks and flushBytes are the pending set's size past which Put
	// starts a Sync in the background. Large enough that the fsyncs of a
	// batch share journal commits, small enough that a Sync stays short.
	flushBlocks = 256
	flushBytes  = 128 << 20
	// hardFactor times those, Put syncs itself: the background flush does
	// not keep up or keeps failing.
	hardFactor = 4
	// syncWorkers bounds the fsyncs a Sync has in flight. They wait on the
	// disk, not the CPU, and the filesystem merges concurrent ones into
	// fewer journal commits.
	syncWorkers = 16
)

// syncMode is how a Sync makes a batch durable.
type syncMode int

const (
	// syncSyncfs calls syncfs(2) twice per batch, before and after the
	// renames: one journal commit and one disk cache flush each, however
	// many blocks. It also writes back whatever else is dirty on the
	// filesystem, a cost other writers can impose on a Sync.
	syncSyncfs syncMode = iota
	// syncFsync fsyncs each pending file, then each shard directory that
	// received one: it writes nothing but ours, but on ext4 each fsync
	// flushes the disk cache again. Measured slower (BenchmarkPutFsync);
	// kept so that the comparison can be rerun.
	syncFsync
)

// syncState is the part of a Store that batches durability.
type syncState struct {
	// sem holds one token: Syncs run one at a time, so a Sync that starts
	// while another is in flight finishes after it.
	sem chan struct{}
	// dirtyDirs are shard directories that received a rename whose fsync
	// has not succeeded yet (it was cancelled). Guarded by sem.
	dirtyDirs map[string]struct{}
	// failed is the first error of a syncfs or fsync; every later Sync
	// returns it. Retrying cannot help: the kernel may have dropped the
	// pages it failed to write and reports the error only once, so a
	// retry would succeed without the data. Guarded by sem.
	failed error
	// syncfs is syncfs, replaceable by tests to inject errors.
	syncfs func(path string) error

	count, bytes atomic.Int64 // size of the pending set
	flushing     atomic.Bool  // a background Sync runs
	flushes      sync.WaitGroup

	mode syncMode
	// softBlocks and softBytes are flushBlocks and flushBytes, settable
	// by tests.
	softBlocks, softBytes int64
	// testHook, when set, is called at each step of a Sync (events
	// evFileSynced, evFilesSynced, evInstalled, evDirSynced), with no lock
	// held.
	testHook func(ev string, h blockstore.Hash, path string)
}

const (
	evFileSynced  = "file-synced"  // one pending file is durable
	evFilesSynced = "files-synced" // all files of the batch are, renames come next
	evInstalled   = "installed"    // a block was renamed to its final path
	evDirSynced   = "dir-synced"   // a shard directory was fsynced
)

func (y *syncState) init() {
	y.sem = make(chan struct{}, 1)
	y.dirtyDirs = make(map[string]struct{})
	y.softBlocks, y.softBytes = flushBlocks, flushBytes
	y.syncfs = syncfs
}

func (y *syncState) hook(ev string, h blockstore.Hash, path string) {
	if y.testHook != nil {
		y.testHook(ev, h, path)
	}
}

// added accounts for a new pending block of size bytes and bounds the
// pending set: past the soft limit it starts a background Sync, past the
// hard limit it syncs before returning.
func (s *Store) added(ctx context.Context, size int64) error {
	n, b := s.count.Add(1), s.bytes.Add(size)
	if n >= hardFactor*s.softBlocks || b >= hardFactor*s.softBytes {
		return s.Sync(ctx)
	}
	if (n >= s.softBlocks || b >= s.softBytes) && s.flushing.CompareAndSwap(false, true) {
		s.flushes.Add(1)
		go func() {
			defer s.flushes.Done()
			defer s.flushing.Store(false)
			// An error leaves the blocks pending: the next Sync retries
			// them and reports its own error.
			s.Sync(context.Background())
		}()
	}
	return nil
}

func (s *Store) removed(size int64) {
	s.count.Add(-1)
	s.bytes.Add(-size)
}

// batchItem is a pending block taken by a Sync.
type batchItem struct {
	h    blockstore.Hash
	p    *pendingBlock
	gone bool // deleted while the Sync ran
}

// Sync implements [blockstore.Syncer]: when it returns nil, every block
// whose Put returned before the call is durable, including blocks another
// goroutine's Sync was already writing. See the package documentation for
// how. Once a syncfs or fsync has failed, every Sync fails: the Store must
// be reopened, which drops the blocks that could not be made durable.
func (s *Store) Sync(ctx context.Context) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("local: sync: %w", ctx.Err())
	}
	defer func() { <-s.sem }()
	if s.failed != nil {
		return fmt.Errorf("local: sync: an earlier sync failed, the store must be reopened: %w", s.failed)
	}

	var batch []batchItem
	for i := range s.stripes {
		st := &s.stripes[i]
		st.mu.Lock()
		for h, p := range st.pending {
			batch = append(batch, batchItem{h: h, p: p})
		}
		st.mu.Unlock()
	}
	if len(batch) == 0 && len(s.dirtyDirs) == 0 {
		return nil
	}
	// 1. Contents first: no final name may become durable before them.
	if err := s.syncFiles(ctx, batch); err != nil {
		return fmt.Errorf("local: sync: %w", err)
	}
	s.hook(evFilesSynced, blockstore.Hash{}, "")
	// 2. Final names. A block that fails stays pending for the next Sync.
	var firstErr error
	for i := range batch {
		if err := s.install(&batch[i]); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	// 3. The directories holding the new names, once each.
	if err := s.syncDirs(ctx); err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		return fmt.Errorf("local: sync: %w", firstErr)
	}
	return nil
}

// syncFiles makes the pending files of batch durable. Files deleted since
// the batch was taken are marked gone.
func (s *Store) syncFiles(ctx context.Context, batch []batchItem) error {
	if len(batch) == 0 {
		return nil
	}
	if s.mode == syncSyncfs {
		if err := s.syncfs(s.pending); err != nil {
			s.failed = err
			return err
		}
		for _, b := range batch {
			s.hook(evFileSynced, b.h, b.p.file)
		}
		return nil
	}
	var (
		next    atomic.Int64
		errOnce sync.Once
		first   error
		ioErr   atomic.Pointer[error]
		wg      sync.WaitGroup
	)
	fail := func(err error) {
		errOnce.Do(func() { first = err })
		next.Store(int64(len(batch))) // stop the others
	}
	for range min(syncWorkers, len(batch)) {
		wg.Go(func() {
			for {
				k := int(next.Add(1) - 1)
				if k >= len(batch) {
					return
				}
				if err := ctx.Err(); err != nil {
					fail(err)
					return
				}
				b := &batch[k]
				err := syncFile(b.p.file)
				if err != nil && !s.isCurrent(b.h, b.p) {
					b.gone = true // deleted meanwhile: nothing to make durable
					continue
				}
				if err != nil {
					err = fmt.Errorf("%s: %w", b.h, err)
					ioErr.CompareAndSwap(nil, &err)
					fail(err)
					return
				}
				s.hook(evFileSynced, b.h, b.p.file)
			}
		})
	}
	wg.Wait()
	if e := ioErr.Load(); e != nil {
		s.failed = *e
	}
	return first
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncfs flushes the whole filesystem holding path.
func syncfs(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", path, err)
	}
	return nil
}

// isCurrent reports whether p is still the pending record of h.
func (s *Store) isCurrent(h blockstore.Hash, p *pendingBlock) bool {
	st := s.stripe(h)
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.pending[h] == p
}

// install renames a synced pending block to its final path and drops its
// pending record, both under the stripe lock, so that readers and deleters
// find the block in exactly one of the two places. A block deleted (and
// perhaps Put again, as a new record) since the batch was taken is skipped.
// The caller holds sem.
func (s *Store) install(b *batchItem) error {
	if b.gone {
		return nil
	}
	st := s.stripe(b.h)
	final := s.Path(b.h)
	st.mu.Lock()
	p := st.pending[b.h]
	if p != b.p {
		st.mu.Unlock()
		return nil
	}
	// The written time goes on the file now: it may have been refreshed
	// since Put. Not durable by itself, which the collector tolerates.
	err := os.Chtimes(p.file, p.written, p.written)
	if err == nil {
		// unix.Rename, not os.Rename: the latter first stats the
		// destination (to refuse renaming onto a directory, which a
		// shard never holds), one more lookup per block.
		if err = unix.Rename(p.file, final); err != nil {
			err = &os.LinkError{Op: "rename", Old: p.file, New: final, Err: err}
		}
	}
	if err != nil {
		st.mu.Unlock()
		return fmt.Errorf("install %s: %w", b.h, err)
	}
	delete(st.pending, b.h)
	st.installs++
	s.removed(p.size)
	s.dirtyDirs[filepath.Dir(final)] = struct{}{}
	st.mu.Unlock()
	s.hook(evInstalled, b.h, final)
	return nil
}

// syncDirs fsyncs the directories in dirtyDirs and forgets those that
// succeeded. The caller holds sem.
func (s *Store) syncDirs(ctx context.Context) error {
	if len(s.dirtyDirs) == 0 {
		return nil
	}
	if s.mode == syncSyncfs {
		if err := s.syncfs(s.dir); err != nil {
			s.failed = err
			return err
		}
		for d := range s.dirtyDirs {
			s.hook(evDirSynced, blockstore.Hash{}, d)
		}
		clear(s.dirtyDirs)
		return nil
	}
	dirs := make([]string, 0, len(s.dirtyDirs))
	for d := range s.dirtyDirs {
		dirs = append(dirs, d)
	}
	errs := make([]error, len(dirs))
	var failed atomic.Pointer[error]
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(syncWorkers, len(dirs)) {
		wg.Go(func() {
			for {
				k := int(next.Add(1) - 1)
				if k >= len(dirs) {
					return
				}
				if errs[k] = ctx.Err(); errs[k] != nil {
					continue
				}
				if errs[k] = syncDir(dirs[k]); errs[k] == nil {
					s.hook(evDirSynced, blockstore.Hash{}, dirs[k])
				} else {
					failed.Store(&errs[k])
				}
			}
		})
	}
	wg.Wait()
	if e := failed.Load(); e != nil {
		s.failed = *e
	}
	var first error
	for k, d := range dirs {
		if errs[k] == nil {
			delete(s.dirtyDirs, d)
		} else if first == nil {
			first = fmt.Errorf("%s: %w", d, errs[k])
		}
	}
	return first
}
