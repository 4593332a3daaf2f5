package blockmap_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/gc"
)

// rootFile returns the bytes of the map file of id.
func rootFile(t *testing.T, e *env, id string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(e.dir, "maps", id+".map"))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustRoot(t *testing.T, e *env, id string) *blockmap.Root {
	t.Helper()
	r, err := e.maps.LoadRoot(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func collect(t *testing.T, e *env) gc.Stats {
	t.Helper()
	time.Sleep(2 * time.Millisecond) // written times strictly before the collection
	st, err := gc.Collect(context.Background(), e.blocks, e.m.LiveHashes)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestCloneWritesOnlyRoot checks the point of chunked maps: a clone of a
// large, fully written map stores no block and a root of 32 bytes per
// chunk, and a flush after a one-block write stores one data block and one
// chunk block.
func TestCloneWritesOnlyRoot(t *testing.T) {
	ctx := context.Background()
	e := mustEnv(t, "")
	const size = 4 << 30 // 8192 blocks, 32 chunks
	mustCreate(t, e, "vol-1", size)
	mp, _ := blockmap.New(size)
	for i := int64(0); i < mp.Blocks(); i++ {
		mp.SetEntry(i, blockstore.Sum([]byte{byte(i), byte(i >> 8)})) // need not be stored for this test
	}
	if err := e.maps.Save(ctx, "vol-1", mp); err != nil {
		t.Fatal(err)
	}
	before := len(storedBlocks(t, e.blocks))
	if before != 32 {
		t.Fatalf("%d chunk blocks stored, want 32", before)
	}
	if err := e.m.Clone(ctx, "vol-1", "snap-1"); err != nil {
		t.Fatal(err)
	}
	if n := len(storedBlocks(t, e.blocks)); n != before {
		t.Fatalf("clone stored %d blocks", n-before)
	}
	if n := len(rootFile(t, e, "snap-1")); n > 32*32+64 {
		t.Fatalf("root of a 4 GiB map is %d bytes", n)
	}
	if !mustRoot(t, e, "snap-1").Equal(mustRoot(t, e, "vol-1")) {
		t.Fatal("clone root differs from its source")
	}
	got, err := e.maps.Load(ctx, "snap-1")
	if err != nil || !got.Equal(mp) {
		t.Fatalf("clone does not load as the source map: %v", err)
	}
	// Rewriting block 300 changes chunk 1 only.
	d := mustOpen(t, e, "vol-1")
	fillBlock(t, d, 300, 5)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(storedBlocks(t, e.blocks)); n != before+2 {
		t.Fatalf("a one-block flush stored %d blocks, want 2", n-before)
	}
	a, b := mustRoot(t, e, "vol-1").Chunks(), mustRoot(t, e, "snap-1").Chunks()
	for i := range a {
		if (a[i] != b[i]) != (i == 1) {
			t.Fatalf("chunk %d: changed = %v", i, a[i] != b[i])
		}
	}
}

// TestCollectChunks frees chunk blocks no root names any more, keeps those
// still named (shared by a snapshot whose source changed, then was
// deleted), and the snapshot still loads from a cold Manager.
func TestCollectChunks(t *testing.T) {
	ctx := context.Background()
	e := mustEnv(t, "")
	mustCreate(t, e, "vol-1", 600*bs) // 3 chunks, 2 written
	d := mustOpen(t, e, "vol-1")
	fillBlock(t, d, 10, 1)
	fillBlock(t, d, 500, 2)
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	first := mustRoot(t, e, "vol-1").Chunks()
	if err := e.m.Clone(ctx, "vol-1", "snap-1"); err != nil {
		t.Fatal(err)
	}
	fillBlock(t, d, 10, 3) // chunk 0 changes twice: the middle version is an orphan
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	fillBlock(t, d, 11, 4)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	last := mustRoot(t, e, "vol-1").Chunks()
	if first[0] == last[0] || first[1] != last[1] || !first[2].IsZero() {
		t.Fatalf("chunks %v then %v", first, last)
	}
	// Stored: data blocks 1, 2, 3, 4; chunks first[0], first[1], middle,
	// last[0].
	if n := len(storedBlocks(t, e.blocks)); n != 8 {
		t.Fatalf("%d blocks stored, want 8", n)
	}
	st := collect(t, e)
	if st.Freed != 1 {
		t.Fatalf("collection %+v, want the middle chunk freed", st)
	}
	stored := storedBlocks(t, e.blocks)
	for _, h := range []blockstore.Hash{first[0], first[1], last[0]} {
		if !stored[h] {
			t.Fatalf("chunk block %s freed while named", h)
		}
	}
	// Deleting the volume frees its own chunk and data, not the shared ones.
	if err := e.m.Delete(ctx, "vol-1"); err != nil {
		t.Fatal(err)
	}
	if st := collect(t, e); st.Freed != 3 { // last[0], data 3, data 4
		t.Fatalf("collection after delete %+v, want 3 freed", st)
	}
	cold := mustEnv(t, e.dir)
	v, err := cold.m.View(ctx, "snap-1")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range map[int64]uint32{10: 1, 11: 0, 500: 2} {
		p := make([]byte, bs)
		if _, err := v.ReadAt(p, i*bs); err != nil {
			t.Fatal(err)
		}
		if blockValue(p) != want {
			t.Fatalf("snapshot block %d = %d after collections, want %d", i, blockValue(p), want)
		}
	}
	v.Close()
	if err := cold.m.Delete(ctx, "snap-1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	if _, err := gc.Collect(ctx, cold.blocks, cold.m.LiveHashes); err != nil {
		t.Fatal(err)
	}
	if n := len(storedBlocks(t, cold.blocks)); n != 0 {
		t.Fatalf("%d blocks left after deleting every map", n)
	}
}

// failingRoots fails every SaveRoot after the chunk blocks were stored, as
// a crash between the chunk Puts and the root save would.
type failingRoots struct{ blockmap.RootStore }

var errCrash = errors.New("crash before the root was saved")

func (failingRoots) SaveRoot(context.Context, string, *blockmap.Root) error { return errCrash }

// TestCrashBeforeRootSave checks that chunk blocks stored for a root that
// was never saved leave the old root valid and are collected once nothing
// pins them.
func TestCrashBeforeRootSave(t *testing.T) {
	ctx := context.Background()
	e := mustEnv(t, "")
	mustCreate(t, e, "vol-1", 4*bs)
	d := mustOpen(t, e, "vol-1")
	fillBlock(t, d, 0, 1)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	old := mustRoot(t, e, "vol-1")

	m := blockmap.NewManager(e.blocks, failingRoots{e.maps})
	d, err := m.Open(ctx, "vol-1")
	if err != nil {
		t.Fatal(err)
	}
	fillBlock(t, d, 1, 2)
	if err := d.Flush(ctx); !errors.Is(err, errCrash) {
		t.Fatalf("flush: %v, want the crash", err)
	}
	if !mustRoot(t, e, "vol-1").Equal(old) {
		t.Fatal("root changed although its save failed")
	}
	// The new chunk block was stored. A collection while the device still
	// holds its data block (pinned, to retry the save) frees the orphan
	// chunk only.
	if n := len(storedBlocks(t, e.blocks)); n != 4 { // 2 data, old and new chunk
		t.Fatalf("%d blocks stored, want 4", n)
	}
	time.Sleep(2 * time.Millisecond)
	if st, err := gc.Collect(ctx, e.blocks, m.LiveHashes); err != nil || st.Freed != 1 {
		t.Fatalf("collection with the device open: %+v, %v; want the orphan chunk freed", st, err)
	}
	d.Close() // fails again: the state is dropped with its pins
	cold := mustEnv(t, e.dir)
	data := readAll(t, cold, "vol-1")
	if blockValue(data) != 1 || !bytes.Equal(data[bs:2*bs], make([]byte, bs)) {
		t.Fatal("old root does not read as before the crash")
	}
	time.Sleep(2 * time.Millisecond)
	st, err := gc.Collect(ctx, cold.blocks, cold.m.LiveHashes)
	if err != nil {
		t.Fatal(err)
	}
	if st.Freed != 2 { // the orphan chunk and the data block it named
		t.Fatalf("collection %+v, want 2 freed", st)
	}
	if got := readAll(t, mustEnv(t, e.dir), "vol-1"); !bytes.Equal(got, data) {
		t.Fatal("content changed by the collection")
	}
}

// TestChunkStoredDuringMarking saves a new root (new chunk block, new data)
// and deletes the source of a shared chunk while a marking is paused after
// listing the roots: neither the new chunk, nor the shared one, nor the
// data they name may be freed.
func TestChunkStoredDuringMarking(t *testing.T) {
	ctx := context.Background()
	e := mustEnv(t, "")
	mustCreate(t, e, "vol-1", 4*bs)
	d := mustOpen(t, e, "vol-1")
	fillBlock(t, d, 0, 1)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	paused, resume := make(chan struct{}), make(chan struct{})
	m := blockmap.NewManager(e.blocks, pausingStore{RootStore: e.maps, pause: func() { close(paused); <-resume }})
	time.Sleep(2 * time.Millisecond)
	done := make(chan error)
	go func() {
		_, err := gc.Collect(ctx, e.blocks, m.LiveHashes)
		done <- err
	}()
	<-paused
	if err := m.Clone(ctx, "vol-1", "snap-1"); err != nil { // shares chunk 0
		t.Fatal(err)
	}
	if err := m.Delete(ctx, "vol-1"); err != nil { // the listed root goes
		t.Fatal(err)
	}
	if err := m.Create(ctx, "vol-2", 4*bs); err != nil {
		t.Fatal(err)
	}
	d2, err := m.Open(ctx, "vol-2")
	if err != nil {
		t.Fatal(err)
	}
	fillBlock(t, d2, 2, 7)
	if err := d2.Close(); err != nil {
		t.Fatal(err)
	}
	close(resume)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cold := mustEnv(t, e.dir)
	if v := blockValue(readAll(t, cold, "snap-1")); v != 1 {
		t.Fatalf("snap-1 block 0 = %d", v)
	}
	if v := blockValue(readAll(t, cold, "vol-2")[2*bs:]); v != 7 {
		t.Fatalf("vol-2 block 2 = %d", v)
	}
}

// TestOldFormatMap reads a map file of the whole-map format (version 1),
// keeps its blocks through a collection, and converts it on the next save.
func TestOldFormatMap(t *testing.T) {
	ctx := context.Background()
	e := mustEnv(t, "")
	mustCreate(t, e, "vol-1", 3*bs)
	d := mustOpen(t, e, "vol-1")
	fillBlock(t, d, 0, 1)
	fillBlock(t, d, 2, 3)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	mp, err := e.maps.Load(ctx, "vol-1")
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := mp.MarshalBinary()
	if err := os.WriteFile(filepath.Join(e.dir, "maps", "vol-1.map"), v1, 0o644); err != nil {
		t.Fatal(err)
	}
	e = mustEnv(t, e.dir)
	if got := rootFile(t, e, "vol-1"); got[4] != 1 {
		t.Fatal("test setup: not a version 1 file")
	}
	if st := collect(t, e); st.Freed != 1 || st.Live != 2 { // the chunk block no file names
		t.Fatalf("collection %+v, want the chunk freed and both data blocks live", st)
	}
	if err := e.m.Clone(ctx, "vol-1", "snap-1"); err != nil {
		t.Fatal(err)
	}
	d = mustOpen(t, e, "vol-1")
	fillBlock(t, d, 1, 2)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"vol-1", "snap-1"} {
		if v := rootFile(t, e, id)[4]; v != 2 {
			t.Fatalf("%s saved in format %d, want 2", id, v)
		}
	}
	collect(t, e)
	data := readAll(t, mustEnv(t, e.dir), "vol-1")
	for i, want := range []uint32{1, 2, 3} {
		if v := blockValue(data[i*bs:]); v != want {
			t.Fatalf("block %d = %d, want %d", i, v, want)
		}
	}
}

// TestSaveLoadedMapAfterCollection saves, under a new id, a map loaded
// before its source changed and its old chunk was collected: Save must
// store the chunk again rather than name a freed block.
func TestSaveLoadedMapAfterCollection(t *testing.T) {
	ctx := context.Background()
	e := mustEnv(t, "")
	mustCreate(t, e, "vol-1", 2*bs)
	d := mustOpen(t, e, "vol-1")
	fillBlock(t, d, 0, 1)
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	loaded, err := e.maps.Load(ctx, "vol-1")
	if err != nil {
		t.Fatal(err)
	}
	fillBlock(t, d, 1, 2) // replaces chunk 0
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if st := collect(t, e); st.Freed != 1 {
		t.Fatalf("collection %+v, want the old chunk freed", st)
	}
	if err := e.maps.Save(ctx, "vol-2", loaded); err != nil {
		t.Fatal(err)
	}
	collect(t, e)
	data := readAll(t, mustEnv(t, e.dir), "vol-2")
	if blockValue(data) != 1 || blockValue(data[bs:]) != 0 {
		t.Fatal("vol-2 does not read as the loaded map")
	}
}
