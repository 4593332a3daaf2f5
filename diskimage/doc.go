// Package diskimage streams virtual disks to and from the file formats used by
// image exports and imports: raw and qcow2, each optionally gzip-compressed.
//
// Everything here is forward-only and bounded in memory, because exports are
// written into an S3 multipart upload through a pipe and imports are read from
// an HTTP body: a full temporary copy of a multi-GiB disk is never made.
//
// Export: the caller describes the disk as a [Source] (size, random reads and
// a zero/data extent map). [WriteRaw] and [WriteQcow2] write the image in one
// pass; [Export] composes a format writer with the parallel gzip writer
// ([NewGzipWriter]) and returns the SHA-256 of both the uncompressed image and
// the compressed object, which the export manifest carries.
//
// The qcow2 writer knows every allocated cluster up front from
// [Source.Extents], so it lays the file out as header, L1 table, refcount table,
// refcount blocks, all L2 tables, then the data clusters in guest order. That
// ordering is also what lets [Open] read our own exports with no buffering.
//
// Import: [Open] detects the format from content (gzip magic, then qcow2
// magic, otherwise raw; file names are never trusted) and returns a [Stream]
// that yields the virtual disk as consecutive extents in increasing offset
// order, with zero ranges reported as such so an importer can skip them.
// [OpenReaderAt] does the same for a random-access object (e.g. ranged GETs of
// an uncompressed qcow2) and then follows qcow2 metadata wherever it is.
//
// Limits of the forward-only qcow2 reader: qcow2 metadata may point backwards
// (an L2 table stored after the data it maps, data stored out of guest order).
// The reader keeps only the clusters it may still need, and refuses with
// [ErrBufferLimit] when that exceeds [OpenOptions.BufferLimit] (default
// 128 MiB). Images written by qemu-img convert and by this package need
// (almost) no buffering. Backing files, external data files, encryption,
// extended L2 entries and internal-snapshot-only data are not supported.
//
// Gzip: the writer emits a multi-member gzip stream (valid for gzip(1) and
// every standard decoder); each member carries an extra field with its
// compressed and uncompressed sizes so that our reader can inflate members in
// parallel. Foreign gzip streams are inflated sequentially.
package diskimage
