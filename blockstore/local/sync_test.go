package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/blockstore/blocktest"
)

func pendingFiles(t *testing.T, s *Store) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.Dir(), pendingDir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// A Put block lives in the pending directory until Sync moves it to its
// final path; it is readable all along.
func TestSyncInstallsPendingBlocks(t *testing.T) {
	ctx := context.Background()
	s := openT(t)
	data := blocktest.Data(blocktest.KindMixed, 1, blockstore.BlockSize)
	h, err := s.Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	if exists(t, s.Path(h)) {
		t.Fatal("final file exists before Sync")
	}
	if n := len(pendingFiles(t, s)); n != 1 {
		t.Fatalf("%d pending files, want 1", n)
	}
	got, err := s.Get(ctx, h, nil)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get of pending block: %v", err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !exists(t, s.Path(h)) {
		t.Fatal("no final file after Sync")
	}
	if n := len(pendingFiles(t, s)); n != 0 {
		t.Fatalf("%d pending files after Sync", n)
	}
	if n := s.count.Load(); n != 0 {
		t.Fatalf("pending count %d after Sync", n)
	}
	got, err = s.Get(ctx, h, nil)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get of synced block: %v", err)
	}
	// Nothing pending: Sync does nothing and succeeds.
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

// The written time of a pending block is kept in memory, refreshed by
// re-Puts, honoured by DeleteIfWrittenBefore and carried to the final file.
func TestPendingWrittenTime(t *testing.T) {
	ctx := context.Background()
	s := openT(t)
	data := []byte("pending written time")
	h, err := s.Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	w1 := walkTimes(t, s)[h]
	if w1.IsZero() {
		t.Fatal("Walk does not list the pending block")
	}
	time.Sleep(5 * time.Millisecond)
	if _, err := s.Put(ctx, data); err != nil {
		t.Fatal(err)
	}
	w2 := walkTimes(t, s)[h]
	if !w2.After(w1) {
		t.Fatalf("re-Put of a pending block left its written time at %v (was %v)", w2, w1)
	}
	if n := len(pendingFiles(t, s)); n != 1 {
		t.Fatalf("re-Put of a pending block wrote it again: %d pending files", n)
	}
	if del, err := s.DeleteIfWrittenBefore(ctx, h, w2); err != nil || del {
		t.Fatalf("DeleteIfWrittenBefore(written) = %v, %v; want kept", del, err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.Path(h))
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(w2) {
		t.Fatalf("final file written time %v, want %v", fi.ModTime(), w2)
	}
	if w := walkTimes(t, s)[h]; !w.Equal(w2) {
		t.Fatalf("Walk after Sync: written %v, want %v", w, w2)
	}

	// Conditional delete of a pending block removes its file; a Sync
	// afterwards does not bring it back.
	h2, err := s.Put(ctx, []byte("doomed"))
	if err != nil {
		t.Fatal(err)
	}
	if del, err := s.DeleteIfWrittenBefore(ctx, h2, time.Now().Add(time.Second)); err != nil || !del {
		t.Fatalf("DeleteIfWrittenBefore(later) of a pending block = %v, %v", del, err)
	}
	if n := len(pendingFiles(t, s)); n != 0 {
		t.Fatalf("%d pending files after deleting the only pending block", n)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Has(ctx, h2); ok || exists(t, s.Path(h2)) {
		t.Fatal("deleted pending block came back")
	}
	if n := s.count.Load(); n != 0 {
		t.Fatalf("pending count %d, want 0", n)
	}
}

func walkTimes(t *testing.T, s *Store) map[blockstore.Hash]time.Time {
	t.Helper()
	m := map[blockstore.Hash]time.Time{}
	err := s.Walk(context.Background(), func(h blockstore.Hash, w time.Time) error {
		if _, dup := m[h]; dup {
			return fmt.Errorf("Walk reported %s twice", h)
		}
		m[h] = w
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A process that dies with blocks pending leaves them in the pending
// directory, possibly torn (the page cache was lost). A fresh Store on the
// directory drops them, keeps the synced ones, and a Put of the dropped
// content stores it anew.
func TestCrashDropsUnsyncedBlocks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s1, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// s1 is abandoned, never closed, as by a crash.
	synced := blocktest.Data(blocktest.KindText, 1, blockstore.BlockSize)
	unsynced := blocktest.Data(blocktest.KindText, 2, blockstore.BlockSize)
	hs, err := s1.Put(ctx, synced)
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	hu, err := s1.Put(ctx, unsynced)
	if err != nil {
		t.Fatal(err)
	}
	// What power loss may leave of it: a file of the right size whose
	// data never reached the disk.
	names := pendingFiles(t, s1)
	if len(names) != 1 {
		t.Fatalf("%d pending files, want 1", len(names))
	}
	torn := filepath.Join(dir, pendingDir, names[0])
	fi, err := os.Stat(torn)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(torn, make([]byte, fi.Size()), 0o600); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if n := len(pendingFiles(t, s2)); n != 0 {
		t.Fatalf("Open left %d pending files", n)
	}
	got, err := s2.Get(ctx, hs, nil)
	if err != nil || !bytes.Equal(got, synced) {
		t.Fatalf("synced block after crash: %v", err)
	}
	if ok, err := s2.Has(ctx, hu); err != nil || ok {
		t.Fatalf("Has(unsynced block) after crash = %v, %v; want dropped", ok, err)
	}
	if _, err := s2.Get(ctx, hu, nil); !errors.Is(err, blockstore.ErrNotFound) {
		t.Fatalf("Get(unsynced block) after crash = %v, want ErrNotFound", err)
	}
	if w := walkTimes(t, s2); len(w) != 1 {
		t.Fatalf("Walk after crash lists %d blocks, want 1", len(w))
	}
	// The dedup check must not trust anything of the dropped block.
	if _, err := s2.Put(ctx, unsynced); err != nil {
		t.Fatal(err)
	}
	if err := s2.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got, err = s2.Get(ctx, hu, nil)
	if err != nil || !bytes.Equal(got, unsynced) {
		t.Fatalf("re-Put after crash: %v", err)
	}
}

// A crash in the middle of a Sync (here: the process stops after the
// first rename) leaves every block either absent or complete at its final
// path, never a final file whose content was not synced first.
func TestCrashDuringSync(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s1, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		synced   = map[blockstore.Hash]bool{}
		badOrder []blockstore.Hash
	)
	frozen := make(chan struct{})
	release := make(chan struct{})
	var installs atomic.Int32
	s1.testHook = func(ev string, h blockstore.Hash, _ string) {
		mu.Lock()
		switch ev {
		case evFileSynced:
			synced[h] = true
		case evInstalled:
			if !synced[h] {
				badOrder = append(badOrder, h)
			}
		}
		mu.Unlock()
		if ev == evInstalled && installs.Add(1) == 1 {
			close(frozen)
			<-release
		}
	}
	data := make(map[blockstore.Hash][]byte)
	for i := range 20 {
		d := blocktest.Data(blocktest.KindMixed, uint64(i), 64<<10)
		h, err := s1.Put(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		data[h] = d
	}
	done := make(chan error, 1)
	go func() { done <- s1.Sync(ctx) }()
	<-frozen

	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	present := 0
	for h, d := range data {
		got, err := s2.Get(ctx, h, nil)
		switch {
		case errors.Is(err, blockstore.ErrNotFound):
		case err != nil:
			t.Errorf("block %s after crash: %v", h, err)
		case !bytes.Equal(got, d):
			t.Errorf("block %s after crash: other content", h)
		default:
			present++
		}
	}
	if present != 1 {
		t.Errorf("%d blocks present after a crash right after the first rename, want 1", present)
	}
	// Let the frozen Sync go on: its remaining files are gone, which it
	// reports.
	close(release)
	if err := <-done; err == nil {
		t.Error("Sync whose pending files were removed succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(badOrder) > 0 {
		t.Fatalf("%d blocks renamed into place before their file was synced", len(badOrder))
	}
	s2.Close()
}

// syncLog records, with one global sequence, when blocks were renamed into
// place and when shard directories were synced.
type syncLog struct {
	seq       atomic.Int64
	mu        sync.Mutex
	fileSync  map[blockstore.Hash]int64
	installed map[blockstore.Hash]int64
	dirSyncs  map[string][]int64
	badOrder  int
}

func newSyncLog(s *Store) *syncLog {
	l := &syncLog{fileSync: map[blockstore.Hash]int64{}, installed: map[blockstore.Hash]int64{}, dirSyncs: map[string][]int64{}}
	s.testHook = func(ev string, h blockstore.Hash, path string) {
		n := l.seq.Add(1)
		l.mu.Lock()
		defer l.mu.Unlock()
		switch ev {
		case evFileSynced:
			l.fileSync[h] = n
		case evInstalled:
			if _, ok := l.fileSync[h]; !ok {
				l.badOrder++
			}
			l.installed[h] = n
		case evDirSynced:
			l.dirSyncs[path] = append(l.dirSyncs[path], n)
		}
	}
	return l
}

// durableBy reports whether h was renamed into place and its directory
// synced afterwards, both before sequence number end.
func (l *syncLog) durableBy(s *Store, h blockstore.Hash, end int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	in, ok := l.installed[h]
	if !ok || in > end {
		return fmt.Errorf("block %s not renamed into place", h)
	}
	for _, d := range l.dirSyncs[filepath.Dir(s.Path(h))] {
		if d > in && d < end {
			return nil
		}
	}
	return fmt.Errorf("block %s renamed but its directory not synced", h)
}

// Many goroutines Put overlapping sets of blocks and Sync concurrently,
// while Put also starts background Syncs. Whenever a Sync returns, every
// block the same goroutine Put before calling it (new or a dedup hit on a
// block another goroutine's Sync may be writing) is durable: renamed into
// place after its file was synced, its directory synced after the rename.
func TestConcurrentSyncs(t *testing.T) {
	t.Run("syncfs", func(t *testing.T) { testConcurrentSyncs(t, syncSyncfs) })
	t.Run("fsync", func(t *testing.T) { testConcurrentSyncs(t, syncFsync) })
}

func testConcurrentSyncs(t *testing.T, mode syncMode) {
	s := openT(t)
	s.mode = mode
	s.softBlocks = 5 // background flushes and inline ones (past 20) too
	l := newSyncLog(s)
	const workers, rounds, perRound = 8, 6, 5
	shared := make([][]byte, 16)
	for i := range shared {
		shared[i] = blocktest.Data(blocktest.KindMixed, uint64(1000+i), 8<<10)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			ctx := context.Background()
			for r := range rounds {
				var put []blockstore.Hash
				for k := range perRound {
					d := shared[(w+r+k)%len(shared)]
					if k%2 == 1 {
						d = blocktest.Data(blocktest.KindText, uint64(w*1000+r*10+k), 4<<10)
					}
					h, err := s.Put(ctx, d)
					if err != nil {
						errs <- err
						return
					}
					put = append(put, h)
				}
				if err := s.Sync(ctx); err != nil {
					errs <- err
					return
				}
				end := l.seq.Add(1)
				for _, h := range put {
					if err := l.durableBy(s, h, end); err != nil {
						errs <- err
						return
					}
					if !exists(t, s.Path(h)) {
						errs <- fmt.Errorf("block %s: no final file after Sync", h)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s.flushes.Wait()
	if l.badOrder > 0 {
		t.Fatalf("%d blocks renamed into place before their file was synced", l.badOrder)
	}
	if n := s.count.Load(); n != 0 {
		t.Fatalf("pending count %d after everything was synced", n)
	}
}

// A block deleted (or deleted and Put again) while a Sync is writing it is
// not brought back by that Sync, and its re-Put is synced by the next one.
func TestDeleteDuringSync(t *testing.T) {
	ctx := context.Background()
	s := openT(t)
	a, b := []byte("deleted while syncing"), []byte("deleted and put again while syncing")
	ha, err := s.Put(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	hb, err := s.Put(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	var hookErr error
	var once sync.Once
	s.testHook = func(ev string, _ blockstore.Hash, _ string) {
		if ev != evFilesSynced {
			return
		}
		once.Do(func() {
			if err := s.Delete(ctx, ha); err != nil {
				hookErr = err
			}
			if err := s.Delete(ctx, hb); err != nil {
				hookErr = err
			}
			if _, err := s.Put(ctx, b); err != nil {
				hookErr = err
			}
		})
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if hookErr != nil {
		t.Fatal(hookErr)
	}
	if ok, _ := s.Has(ctx, ha); ok || exists(t, s.Path(ha)) {
		t.Fatal("block deleted during Sync is stored")
	}
	if exists(t, s.Path(hb)) {
		t.Fatal("Sync installed the file of a deleted block")
	}
	got, err := s.Get(ctx, hb, nil)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("block Put again during Sync: %v", err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if !exists(t, s.Path(hb)) {
		t.Fatal("next Sync did not install the block Put again")
	}
	if n := len(pendingFiles(t, s)); n != 0 {
		t.Fatalf("%d pending files left", n)
	}
}

// A writer that never calls Sync cannot grow the pending set past the hard
// limit; Put flushes by itself and every block stays readable.
func TestPendingSetIsBounded(t *testing.T) {
	ctx := context.Background()
	s := openT(t)
	s.softBlocks = 4
	var hs []blockstore.Hash
	var max int64
	for i := range 100 {
		h, err := s.Put(ctx, blocktest.Data(blocktest.KindText, uint64(i), 2000))
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
		max = maxInt(max, s.count.Load())
	}
	if limit := int64(hardFactor * 4); max > limit {
		t.Fatalf("pending set reached %d blocks, limit %d", max, limit)
	}
	s.flushes.Wait()
	final := 0
	for i, h := range hs {
		if exists(t, s.Path(h)) {
			final++
		}
		want := blocktest.Data(blocktest.KindText, uint64(i), 2000)
		got, err := s.Get(ctx, h, nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("block %d: %v", i, err)
		}
	}
	if final < 100-hardFactor*4 {
		t.Fatalf("only %d of 100 blocks synced by Put's own flushes", final)
	}
}

func maxInt(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// Sync honours its context while it waits for another Sync.
func TestSyncCancelledWhileWaiting(t *testing.T) {
	s := openT(t)
	s.sem <- struct{}{} // a Sync in flight
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := s.Sync(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Sync = %v, want DeadlineExceeded", err)
	}
	<-s.sem
}

// A Sync called while another one is writing a block the caller Put (here
// a dedup hit on it) does not return before that block is durable, whether
// the other Sync is frozen before the block's rename or after it (the
// block is no longer pending but its directory is not synced yet).
func TestSyncWaitsForInFlightSync(t *testing.T) {
	for _, at := range []string{evFilesSynced, evInstalled} {
		t.Run(at, func(t *testing.T) { testSyncWaitsForInFlightSync(t, at) })
	}
}

func testSyncWaitsForInFlightSync(t *testing.T, freezeAt string) {
	ctx := context.Background()
	s := openT(t)
	l := newSyncLog(s)
	data := []byte("in flight")
	h, err := s.Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	frozen, release := make(chan struct{}), make(chan struct{})
	inner := s.testHook
	var once sync.Once
	s.testHook = func(ev string, hh blockstore.Hash, path string) {
		inner(ev, hh, path)
		if ev == freezeAt {
			once.Do(func() { close(frozen); <-release })
		}
	}
	first := make(chan error, 1)
	go func() { first <- s.Sync(ctx) }()
	<-frozen

	if _, err := s.Put(ctx, data); err != nil { // dedup hit on the in-flight block
		t.Fatal(err)
	}
	second := make(chan error, 1)
	go func() { second <- s.Sync(ctx) }()
	select {
	case err := <-second:
		t.Fatalf("Sync returned (%v) while the block was still being synced by another", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if err := l.durableBy(s, h, l.seq.Add(1)); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

// A failed syncfs is sticky: the kernel may have dropped the pages it could
// not write, so a retry that succeeds would prove nothing. Every later Sync
// fails, Put and Get still work on what is in memory, and a reopened Store
// starts clean without the blocks that were never durable.
func TestSyncFailureIsSticky(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	durable := []byte("synced before the disk failed")
	hd, err := s.Put(ctx, durable)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	eio := errors.New("injected EIO")
	fails := 0
	s.syncfs = func(path string) error {
		if fails == 0 {
			fails++
			return eio
		}
		return syncfs(path)
	}
	lost := []byte("written while the disk failed")
	hl, err := s.Put(ctx, lost)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(ctx); !errors.Is(err, eio) {
		t.Fatalf("Sync = %v, want the injected error", err)
	}
	// The disk "works" again; Sync must still fail.
	if err := s.Sync(ctx); !errors.Is(err, eio) {
		t.Fatalf("Sync after a failure = %v, want the injected error again", err)
	}
	if exists(t, s.Path(hl)) {
		t.Fatal("block renamed into place although its sync failed")
	}
	if got, err := s.Get(ctx, hl, nil); err != nil || !bytes.Equal(got, lost) {
		t.Fatalf("Get of the pending block: %v", err)
	}
	if err := s.Close(); !errors.Is(err, eio) {
		t.Fatalf("Close = %v, want the injected error", err)
	}

	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if ok, _ := s2.Has(ctx, hl); ok {
		t.Fatal("block whose sync failed survived reopening")
	}
	if got, err := s2.Get(ctx, hd, nil); err != nil || !bytes.Equal(got, durable) {
		t.Fatalf("durable block after reopening: %v", err)
	}
	if _, err := s2.Put(ctx, lost); err != nil {
		t.Fatal(err)
	}
	if err := s2.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}
