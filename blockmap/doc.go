// Package blockmap turns the content-addressed block store into volumes and
// snapshots: a [Map] gives, for each 512 KiB block of a volume, the hash of
// its content (the zero hash for a hole). Writes replace entries; a snapshot
// or a volume created from a snapshot is a copy of the entries, never of the
// data; an OMI refers to snapshots.
//
// # Pieces
//
//   - [Map] and its compact, checksummed encoding (holes cost a byte per run).
//   - [MapStore] persists maps by id; [DirStore] is the single-node one (one
//     file per id, temp file, fsync, rename, fsync of the directory). Every
//     implementation runs the conformance suite in package maptest.
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
// durable) and then saves the map, so a write acknowledged before a
// successful Flush survives kill -9. Writes not yet flushed may be lost, as
// on a disk with a volatile cache. Create, Clone, Resize, Delete and
// WriteFrom are durable when they return nil.
//
// # Garbage collection protocol
//
// Collection (package gc) marks from [Manager.LiveHashes] and sweeps with the
// store's written-time check. The Manager guarantees that every hash
// referenced when a marking starts is reported (snapshot at the beginning):
//
//   - a block Put by a device is pinned ([blockstore.Pins]) until the map
//     naming it is saved, and the Put and the Pin happen under a shared gate
//     that marking takes exclusively to start, so a marking either sees the
//     pin or started after the Put (and the sweep keeps the block by its
//     written time);
//   - while a marking runs, a map about to be replaced or deleted first has
//     its hashes added to a barrier set that the marking reports at its end
//     (the write barrier), so a reference moved from a map not yet walked to
//     one already walked is not lost;
//   - Clone copies a map and saves the copy under the gate, and a View pins
//     its hashes while they are still referenced.
//
// Only one Manager may own a MapStore: the pins and barrier live in its
// memory. A multi-node deployment needs the same protocol across nodes (for
// example a marking flag and barrier table next to the maps in PostgreSQL).
//
// # Costs and what a later design could improve
//
// A map is saved whole: 32 bytes per allocated block, 640 KiB for a fully
// written 10 GiB volume, on each Flush that changed it. Flush skips the save
// when nothing changed. Storing maps as chunks in the block store (a tree of
// hashes, the saved map being only its root) would make a save after a small
// write cost one chunk, a clone a few bytes, and let the marking skip chunks
// shared by many snapshots; the MapStore contract does not prevent it. It was
// not done yet because it also makes every map load and every marking read
// the block store, and the flat encoding already meets the targets measured
// by the benchmarks.
package blockmap
