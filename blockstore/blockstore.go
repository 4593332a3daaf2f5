package blockstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// BlockSize is the size of a volume block in bytes. Only the last block of a
// volume whose size is not a multiple of BlockSize may be shorter.
const BlockSize = 512 << 10

// HashSize is the length of a [Hash] in bytes.
const HashSize = sha256.Size

// Hash names a block: the SHA-256 of its uncompressed content. The zero value
// means "all-zero block" in block maps and is never stored (see [IsZero]).
type Hash [HashSize]byte

// Sum returns the hash naming data.
func Sum(data []byte) Hash { return Hash(sha256.Sum256(data)) }

// String returns the lower-case hex form of h, which is also the name backends
// use for the stored object.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is the zero Hash, the "zero block" marker.
func (h Hash) IsZero() bool { return h == Hash{} }

// MarshalText encodes h as hex so hashes read well in JSON and logs.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes the hex form produced by MarshalText.
func (h *Hash) UnmarshalText(text []byte) error {
	p, err := ParseHash(string(text))
	if err != nil {
		return err
	}
	*h = p
	return nil
}

// ParseHash decodes the 64-character hex form of a hash (either case).
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*HashSize {
		return h, fmt.Errorf("blockstore: parse hash %q: want %d hex characters, got %d", s, 2*HashSize, len(s))
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return h, fmt.Errorf("blockstore: parse hash %q: %w", s, err)
	}
	return h, nil
}

// IsZero reports whether every byte of data is zero. Such blocks are never
// stored; their map entry is the zero Hash. It runs at memory-compare speed: a
// slice is all zero exactly when its first byte is zero and it equals itself
// shifted by one byte.
func IsZero(data []byte) bool {
	if len(data) == 0 {
		return true
	}
	return data[0] == 0 && bytes.Equal(data[1:], data[:len(data)-1])
}

var (
	// ErrNotFound is returned (possibly wrapped) when a block is not stored.
	ErrNotFound = errors.New("blockstore: block not found")
	// ErrCorrupt is returned (possibly wrapped) when a stored block cannot be
	// decoded or its content does not hash to its name. Callers must treat the
	// block as lost; the store never returns corrupt data.
	ErrCorrupt = errors.New("blockstore: block corrupt")
)

// Store is a content-addressed block store. Implementations (a local
// directory, S3) must be safe for concurrent use and must pass the
// conformance suite in package blocktest.
//
// Blocks may have any length up to a backend-specific limit that is at least
// [BlockSize]; a final partial block is simply shorter. Empty and all-zero
// blocks may be stored but callers should not: see [IsZero].
type Store interface {
	// Put stores data under Sum(data) and returns that hash. It is
	// idempotent. When the block is already stored, Put does not rewrite it
	// but refreshes its written time to now, so that a collection that
	// started before this Put does not sweep it. When Put returns nil the
	// block is durable, unless the store is a [Syncer], in which case it is
	// durable after the next Sync. Put does not retain data.
	Put(ctx context.Context, data []byte) (Hash, error)

	// Get returns the content of block h, appended to dst[:0] (so a dst with
	// enough capacity avoids an allocation). It verifies that the content
	// hashes to h. A block that is not stored yields an error wrapping
	// ErrNotFound; one that fails decoding or verification yields an error
	// wrapping ErrCorrupt and no data.
	Get(ctx context.Context, h Hash, dst []byte) ([]byte, error)

	// Has reports whether block h is stored, without reading or verifying it.
	Has(ctx context.Context, h Hash) (bool, error)

	// Delete removes block h unconditionally. Deleting a block that is not
	// stored is not an error.
	Delete(ctx context.Context, h Hash) error

	// DeleteIfWrittenBefore removes block h only if its written time is
	// strictly before t, and reports whether it did. The check and the
	// removal are atomic with respect to Put of the same block in this
	// process: a Put that refreshed the written time wins. The garbage
	// collector sweeps with it; without the condition a block re-Put
	// between the sweep's Walk and its Delete would be lost. A block that is
	// not stored yields (false, nil).
	DeleteIfWrittenBefore(ctx context.Context, h Hash, t time.Time) (bool, error)

	// Walk calls fn for every stored block with its written time (the time
	// of the last Put), in no particular order. fn may call Delete and
	// DeleteIfWrittenBefore; blocks Put during the walk may or may not be
	// reported. An error from fn stops the walk and is returned.
	Walk(ctx context.Context, fn func(h Hash, written time.Time) error) error

	// Close releases resources. The store must not be used afterwards.
	Close() error
}

// Syncer is implemented by stores whose Put may return before the block is
// durable, to batch the cost of durability (one flush for many blocks
// instead of one per block). Sync makes every block whose Put returned
// before the call durable. Callers that reference blocks from durable
// metadata (a saved block map root) call it first; [Sync] does so for any
// store.
type Syncer interface {
	Sync(ctx context.Context) error
}

// Sync makes the blocks already Put in s durable: it calls s.Sync when s is
// a [Syncer] and does nothing otherwise (every Put of such a store is
// durable on return).
func Sync(ctx context.Context, s Store) error {
	if y, ok := s.(Syncer); ok {
		return y.Sync(ctx)
	}
	return nil
}
