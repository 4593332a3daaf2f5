// Package blockstore defines omi's content-addressed block store: the place
// where the real bytes of volumes, snapshots and OMIs live.
//
// # Data model
//
// Volume data is cut into fixed-size, aligned blocks of [BlockSize] (512 KiB)
// bytes. A volume is a map from block index to block [Hash]; a snapshot is a
// frozen copy of such a map, and an OMI refers to snapshots. Copies share
// blocks: copying a map copies hashes, never data, so snapshots, clones and
// image copies cost metadata only, and N images derived from one base cost the
// base plus their changed blocks.
//
// # Why fixed-size blocks
//
// The unit is the same as the one of the EBS direct APIs. Disk images are
// made of filesystem blocks that do not shift when a file changes, so aligned
// fixed-size blocks deduplicate disk images about as well as content-defined
// chunking, while costing no chunking CPU and keeping random access trivial:
// byte offset o lives in block o/BlockSize at offset o%BlockSize, which is
// what an NBD server or a qcow2 writer needs. 512 KiB is large enough that the
// per-block cost (one object, one map entry) stays small for multi-GiB disks
// and small enough that rewriting a few bytes only rewrites half a MiB.
//
// # Hashes and zero blocks
//
// A block is named by the SHA-256 of its uncompressed content, so the name is
// independent of how a backend compresses or encodes it, and the same digest
// can be shown to users or compared with S3 checksums. Backends verify the
// hash on every read and report a mismatch as [ErrCorrupt], never as data.
//
// All-zero blocks are never stored. By convention the zero [Hash] value (32
// zero bytes, which no real content hashes to) in a block map means "this
// block reads as zeros"; callers check [IsZero] before hashing and storing.
// Sparse and freshly created volumes therefore cost nothing.
//
// # Garbage collection
//
// Blocks are shared and never reference-counted. Unreferenced blocks are
// removed by a mark-and-sweep collector (package gc) that relies on the
// written time each backend keeps per block: [Store.Put] of a block that is
// already stored refreshes that time, so a block being reused while a
// collection runs is not swept. Writers that hold hashes not yet committed to a
// map register them in a [Pins] set so that the collector treats them as live.
package blockstore
