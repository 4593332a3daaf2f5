// Package local is a [blockstore.Store] that keeps blocks as files in a
// directory on the local filesystem: the default backend of a single-node omi.
//
// # Layout
//
// Block h lives in <dir>/<first two hex digits of h>/<hex of h>, so no
// directory holds more than 1/256th of the blocks. The 256 shard directories
// are created by [Open]. Blocks that are stored but not yet durable live in
// <dir>/pending (see Durability).
//
// # Object format
//
// Each file holds one block in the encoding of package blockcodec, shared with
// the other backends: a 12-byte header followed by the payload:
//
//	offset 0  magic "OMIB"
//	offset 4  format version (1)
//	offset 5  flags: bit 0 = payload is a zstd frame, bit 1 = an S2 block,
//	          neither = raw bytes
//	offset 6  two reserved bytes, zero
//	offset 8  uncompressed length, uint32 little endian
//
// The payload is compressed with S2 (klauspost/compress, a Snappy
// extension); when that does not save at least 1/16th of the size (random or
// already-compressed data) the block is stored raw, which costs nothing to
// decode. Blocks written with zstd at its fastest level, as this store did
// before, still read. S2 was chosen for CPU: on the real filesystem disk of
// transfer's BenchmarkRealFS zstd took about four times S2's CPU per block
// (the largest cost of an import after gunzip) for objects 18% smaller
// (2.4 against 2.0 times smaller than the data); a local disk has more room
// to spare than a 2-core machine has CPU. The S3 backend keeps zstd. The
// version byte and flags let the format evolve (other codecs, encryption)
// without renaming blocks; readers reject versions and flags they do not
// know as corrupt.
//
// # Durability
//
// A Store is a [blockstore.Syncer]: Put returns before the block is durable,
// and [Store.Sync] makes every block Put before it durable. One fsync per
// block (file, then directory) used to cap ingest well below what hashing
// and compression allow; a Sync pays for a whole batch at once.
//
// The rule everything rests on: a file at a block's final path always holds
// complete, durable content. Put of a block whose final file exists is a
// dedup hit that never looks at the content again, so a final file left
// half-written by a crash would be trusted forever. Hence:
//
//   - Put writes the encoded block to a new file in <dir>/pending, without
//     fsync, and records it in memory as pending. It is a stored block from
//     then on: Get and Has find it, Walk lists it, Delete and
//     DeleteIfWrittenBefore remove it, and a second Put of it is a dedup hit
//     that refreshes its written time in memory.
//   - Sync takes every pending block, makes their files durable with one
//     syncfs(2), renames each to its final path, then makes the renames
//     durable with a second syncfs. A block's final name therefore never
//     becomes durable before its content. A rename and the removal of the
//     pending record happen together under the block's stripe lock, so
//     readers and deleters see either the pending file or the final one.
//   - Syncs run one at a time; a Sync that arrives while another is in
//     flight waits for it and then syncs what is still pending. That covers a
//     block another goroutine's Sync took and a dedup hit on a block being
//     synced: records leave the pending set only once renamed, and the
//     renames are made durable before the Sync that did them lets the next
//     one start.
//   - A failed syncfs or fsync is sticky: every later Sync (and Close)
//     fails. The kernel may have dropped the pages it could not write and
//     reports that once, so a retry could succeed without the data.
//     Reopening the Store drops the blocks that never became durable.
//   - [Open] removes <dir>/pending: after a crash its files belong to blocks
//     no durable block map names (a map root is saved only after Sync), so
//     they are dropped rather than trusted. A clean [Store.Close] syncs first.
//
// Why syncfs rather than an fsync per file and per shard directory (still
// there, see BenchmarkPutFsync): each fsync ends in a journal commit or a
// disk cache flush of its own (ext4 flushes even when the commit was done
// for an earlier fsync), so a batch of 256 blocks costs some 400 of them
// against 2 syncfs calls. Put and import throughput measured 15-60% higher
// with syncfs on the development machine. The price: syncfs also writes back
// whatever else is dirty on the filesystem, so a large unsynced write by
// another program on it lengthens a Sync, and a write error anywhere on it
// fails the Store's Syncs (conservatively, see above).
//
// Pending blocks cost a file each and a small record in memory. Once there
// are 256 of them or 128 MiB, Put starts a Sync in the background;
// at four times that (a flush that cannot keep up or keeps failing), Put
// syncs itself before returning, so a writer that never calls Sync cannot
// grow the set without bound, and a failing disk surfaces as Put errors.
//
// Several Stores must not share a directory: Open would drop the other's
// pending blocks, and the atomicity of DeleteIfWrittenBefore against Put
// holds within one Store only. omi serve locks its data directory.
//
// Deletions are not fsynced: a block resurrected by a crash is garbage the
// next collection removes again.
//
// # Written time
//
// The file modification time of a final file is the block's written time; a
// pending block's is kept in memory and set on the file when it is renamed
// into place. Put of an existing block only refreshes it (see
// [blockstore.Store.Put]). Times are set explicitly from the Go clock rather
// than left to the kernel, whose file timestamps are coarse and may lag the
// garbage collector's start time by a few milliseconds.
package local
