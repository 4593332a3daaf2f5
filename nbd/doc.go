// Package nbd serves block devices over the Network Block Device protocol, so
// that qemu-img, qemu-io, qemu VMs and the Linux nbd client can read and write
// omi volumes directly (nbd://127.0.0.1:PORT/vol-xxxxxxxx).
//
// It implements the server side of the protocol described in the upstream
// document proto.md (NetworkBlockDevice/nbd, doc/proto.md):
//
//   - fixed newstyle handshake, with and without NBD_FLAG_C_NO_ZEROES;
//   - options EXPORT_NAME, GO, INFO (NBD_INFO_EXPORT, NBD_INFO_BLOCK_SIZE),
//     LIST, ABORT, STRUCTURED_REPLY, LIST_META_CONTEXT and SET_META_CONTEXT
//     for the base:allocation context, and STARTTLS when a TLS configuration
//     is given (FORCEDTLS mode); every other option gets NBD_REP_ERR_UNSUP;
//   - commands READ (with NBD_REPLY_TYPE_OFFSET_HOLE chunks for holes when
//     structured replies are on), WRITE (FUA), FLUSH, TRIM, WRITE_ZEROES
//     (NO_HOLE, FAST_ZERO), CACHE, BLOCK_STATUS (base:allocation) and DISC.
//
// Requests on one connection are served concurrently, bounded both in number
// and in buffered bytes; replies are written one at a time. The package was
// written here rather than built on github.com/pojntfx/go-nbd because that
// library has no FLUSH, TRIM, WRITE_ZEROES, structured replies or
// BLOCK_STATUS, which qemu needs for durable and sparse-aware copies.
//
// The storage side is the Export interface; the omi block store provides the
// real implementation, tests use an in-memory sparse one.
package nbd
