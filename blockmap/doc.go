// Package blockmap turns the content-addressed block store into volumes and
// snapshots: a [Map] gives, for each 512 KiB block of a volume, the hash of
// its content (the zero hash for a hole). Writes replace entries; a snapshot
// or a volume created from a snapshot is a copy of the entries, never of the
// data; an OMI refers to snapshots.
//
// # Pieces
//
//   - [Map] and its compact, checksummed encoding (holes cost a byte per run).
//   - Maps are persisted as chunks plus a root. A chunk is 256 entries
//     (128 MiB of volume, 8 KiB) stored as a content-addressed block in the
//     block store itself; an all-hole chunk is not stored. The [Root] of a
//     map is its size and the list of its chunk hashes, 32 bytes per 128 MiB.
//     [RootStore] persists roots by id; [DirStore] is the single-node one
//     (one file per id, temp file, fsync, rename, fsync of the directory).
//     Every implementation runs the conformance suite in package maptest.
//     [MapStore] is the whole-map view that a DirStore owned by a Manager
//     also offers, for tools and tests.
//   - [Manager] is what the API service uses: Create, Clone (snapshots and
//     volumes from snapshots), Resize, Delete, Open, View (exports), WriteFrom
//     and ReadTo (streaming import/export), and LiveHashes for package gc.
//   - [Device] is an open volume with a write-back buffer, the backend of the
//     NBD server. Reads go through a small LRU of decompressed blocks shared
//     by the Manager; concurrent misses on one block share one read, and a
//     sequential reader gets the next two blocks read ahead.
//   - [View] is a frozen, pinned, read-only copy for exports; it has the
//     Size/ReadAt/Extents method set of diskimage.Source.
//
// # Durability
//
// A Device buffers written blocks in memory. Flush stores them (each Put is
// durable), then stores the chunk blocks that changed since the last save,
// then saves the root, so a write acknowledged before a successful Flush
// survives kill -9, and a root never names a chunk block that is not
// durable: a crash between the chunk Puts and the root save leaves the old
// root, and the new chunk blocks are garbage. Writes not yet flushed may be
// lost in a power loss, as on a disk with a volatile cache. With
// WithWriteLog they survive the death of the process, which a client that
// reconnects (QEMU) would not notice: each is logged to a file before it
// is acknowledged, and replayed when the map is next opened (wal.go).
// Create, Clone, Resize, Delete and WriteFrom are durable when they return
// nil.
//
// # Garbage collection protocol
//
// Collection (package gc) marks from [Manager.LiveHashes] and sweeps with the
// store's written-time check. Live hashes are the chunk blocks named by
// every root and the data blocks named by those chunks (a chunk shared by
// many snapshots is read and reported once). The Manager guarantees that
// every hash referenced when a marking starts is reported (snapshot at the
// beginning):
//
//   - a block Put by a device is pinned ([blockstore.Pins]) until the map
//     naming it is saved, and the Put and the Pin happen under a shared gate
//     that marking takes exclusively to start, so a marking either sees the
//     pin or started after the Put (and the sweep keeps the block by its
//     written time);
//   - chunk blocks stored by a save are pinned, under the same gate, until
//     the root naming them is saved (or the save abandoned);
//   - while a marking runs, a map about to be replaced or deleted first has
//     its hashes (chunk and data blocks) added to a barrier set that the marking reports at its end
//     (the write barrier), so a reference moved from a map not yet walked to
//     one already walked is not lost;
//   - Clone copies a map and saves the copy under the gate, and a View pins
//     its hashes while they are still referenced.
//
// Only one Manager may own a RootStore: the pins and barrier live in its
// memory. A multi-node deployment needs the same protocol across nodes (for
// example a marking flag and barrier table next to the maps in PostgreSQL).
//
// # Costs
//
// Saving a map stores only the chunks that changed since its last save plus
// the root: a Clone (snapshot, volume from snapshot, image) writes a root of
// 2 KiB for a fully written 8 GiB volume and no chunk, since the source's
// chunks are shared; a Flush after a small write stores one chunk block and
// the root. In memory, chunks are shared copy-on-write between maps and the
// chunk cache, so copying a map (Clone, View) costs a pointer per chunk.
//
// The price: loading a map reads its chunk blocks (from an LRU of decoded
// chunks, then the block store, in parallel); marking reads every distinct
// chunk once; each save that changes a chunk leaves its previous version as
// an 8 KiB garbage block until the next collection; and a flush adds the
// durable Put of its changed chunks (on the local store, an fsync of a file
// and a directory, in parallel) before the root save.
//
// Old map files (format version 1, the whole map in the file, written
// before chunked maps) are read transparently as old-format roots; the next
// save of that id writes chunks and a version 2 root.
package blockmap
