// Package transfer moves snapshot data between the block store and object
// storage: the data pipelines behind CreateImageExportTask,
// CreateSnapshotExportTask, and CreateImage / CreateSnapshot with a
// FileLocation, plus the export manifest.
//
// It deliberately knows nothing about S3, HTTP or tasks: an export writes
// to an io.Writer (the lead wires it to a streaming multipart upload), an
// import reads an io.Reader or io.ReaderAt (the safe fetcher's body or
// ranged GETs). That keeps the pipelines testable with files and keeps the
// network policy (allow-lists, timeouts, size limits) in one place.
//
//   - [ExportSnapshot] reads a frozen [blockmap.View] of a snapshot, with
//     read-ahead and without ever reading holes, and writes a gzip-compressed
//     qcow2 or raw image through the parallel gzip writer of package
//     diskimage, returning the digests the manifest carries. [ObjectName]
//     names the object as OUTSCALE does.
//   - [ImportDisk] and [ImportReaderAt] detect gzip, qcow2 (v2, v3,
//     compressed clusters) or raw from content, refuse what an import must
//     not accept (backing files, external data files, a disk larger than
//     declared, a digest mismatch, corrupt or truncated input) with an
//     [ImportError], and write the data into a new block map. On any failure
//     the partial map is deleted, so a snapshot is complete or absent; its
//     blocks are left to garbage collection.
//   - [Manifest] and [ParseManifest] are the version-1 manifest of the
//     OUTSCALE documentation with its key names, plus our digests in keys
//     other importers ignore; parse errors are *omi.Error values (4040,
//     4041, 4094) the API returns as they are.
//
// Memory stays bounded whatever the disk size: exports hold a few MiB of
// read-ahead and gzip members; imports hold the gzip members being inflated,
// a 32 MiB queue in front of the device and the device's write-back buffer.
// No temporary copy of a disk is written to local storage.
package transfer
