package blockmap

import (
	"encoding/binary"
	"fmt"

	"github.com/omiproject/omi/blockstore"
)

// Root is what a [RootStore] persists for a map: its size and, for each
// chunk of 256 entries (128 MiB of volume), the hash of the chunk block that
// holds those entries in the block store, the zero hash for a chunk that is
// all holes. A root costs 32 bytes per allocated chunk, so saving one (a
// snapshot, a flush after a small write) is cheap whatever the volume size;
// the chunk blocks are shared by every root naming them.
//
// A Root decoded from a file of the older whole-map format (version 1)
// carries that map inline instead of chunk hashes; the Manager reads it
// transparently and the next save of that id writes chunks and a version 2
// root.
type Root struct {
	size   int64
	chunks []blockstore.Hash
	legacy *Map
}

// NewRoot returns the root of a map of size bytes whose chunk blocks are
// chunks, one hash per 256 blocks (the zero hash for an all-hole chunk).
func NewRoot(size int64, chunks []blockstore.Hash) (*Root, error) {
	if size < 0 || size > MaxSize {
		return nil, fmt.Errorf("blockmap: root size %d out of range [0, %d]", size, int64(MaxSize))
	}
	if n := numChunks(blocksOf(size)); int64(len(chunks)) != n {
		return nil, fmt.Errorf("blockmap: root of %d bytes needs %d chunk hashes, got %d", size, n, len(chunks))
	}
	return &Root{size: size, chunks: append([]blockstore.Hash(nil), chunks...)}, nil
}

// Size returns the size in bytes of the map.
func (r *Root) Size() int64 { return r.size }

// Chunks returns a copy of the chunk hashes (nil for an old-format root).
func (r *Root) Chunks() []blockstore.Hash { return append([]blockstore.Hash(nil), r.chunks...) }

// Equal reports whether r and o describe the same map the same way.
func (r *Root) Equal(o *Root) bool {
	if r.size != o.size || len(r.chunks) != len(o.chunks) || (r.legacy == nil) != (o.legacy == nil) {
		return false
	}
	if r.legacy != nil {
		return r.legacy.Equal(o.legacy)
	}
	for i := range r.chunks {
		if r.chunks[i] != o.chunks[i] {
			return false
		}
	}
	return true
}

// Encoding of a root (format version 2, same framing as the whole-map
// format of [Map.MarshalBinary]):
//
//	offset 0   magic "OMIM"
//	offset 4   format version (2)
//	offset 5   three reserved bytes, zero
//	offset 8   size in bytes, uint64 little endian
//	offset 16  runs covering the ceil(blocks/256) chunk hashes, encoded as
//	           the entries of a version 1 map (uvarint n<<1|kind, kind 1
//	           followed by n hashes, kind 0 being n all-hole chunks)
//	end - 4    CRC-32C of everything before, little endian
const rootVersion = 2

// MarshalBinary encodes r: version 2, or version 1 for an old-format root
// that was never converted.
func (r *Root) MarshalBinary() ([]byte, error) {
	if r.legacy != nil {
		return r.legacy.MarshalBinary()
	}
	b := make([]byte, 0, headerSize+trailerSize+8+len(r.chunks)*blockstore.HashSize)
	b = append(b, magic[:]...)
	b = append(b, rootVersion, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, uint64(r.size))
	b = appendRuns(b, int64(len(r.chunks)), func(i int64) blockstore.Hash { return r.chunks[i] })
	return appendCRC(b), nil
}

// DecodeRoot decodes a root encoded by [Root.MarshalBinary], or a whole map
// of format version 1, which it returns as an old-format root. Anything else
// is an error wrapping ErrCorrupt.
func DecodeRoot(data []byte) (*Root, error) {
	if len(data) > 4 && data[4] == formatVersion {
		m, err := Decode(data)
		if err != nil {
			return nil, err
		}
		return &Root{size: m.size, chunks: nil, legacy: m}, nil
	}
	size, body, err := checkFrame(data, rootVersion)
	if err != nil {
		return nil, err
	}
	n := numChunks(blocksOf(size))
	r := &Root{size: size, chunks: make([]blockstore.Hash, n)}
	if err := decodeRuns(body, n, func(i int64, h blockstore.Hash) { r.chunks[i] = h }); err != nil {
		return nil, err
	}
	return r, nil
}

// appendRuns appends the run encoding of n entries.
func appendRuns(b []byte, n int64, entry func(int64) blockstore.Hash) []byte {
	var i int64
	for i < n {
		data := !entry(i).IsZero()
		j := i + 1
		for j < n && entry(j).IsZero() != data {
			j++
		}
		kind := uint64(0)
		if data {
			kind = 1
		}
		b = binary.AppendUvarint(b, uint64(j-i)<<1|kind)
		if data {
			for k := i; k < j; k++ {
				h := entry(k)
				b = append(b, h[:]...)
			}
		}
		i = j
	}
	return b
}

// corrupt returns an error wrapping ErrCorrupt.
func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// checkFrame checks magic, checksum, version and reserved bytes of an
// encoded map or root and returns its size and the runs.
func checkFrame(data []byte, version byte) (int64, []byte, error) {
	if len(data) < headerSize+trailerSize {
		return 0, nil, corrupt("%d bytes is shorter than header and checksum", len(data))
	}
	if [4]byte(data[:4]) != magic {
		return 0, nil, corrupt("bad magic")
	}
	body := data[:len(data)-trailerSize]
	if want := binary.LittleEndian.Uint32(data[len(data)-trailerSize:]); crcOf(body) != want {
		return 0, nil, corrupt("checksum mismatch")
	}
	if data[4] != version {
		return 0, nil, corrupt("unknown format version %d", data[4])
	}
	if data[5] != 0 || data[6] != 0 || data[7] != 0 {
		return 0, nil, corrupt("reserved bytes not zero")
	}
	size := binary.LittleEndian.Uint64(data[8:16])
	if size > MaxSize {
		return 0, nil, corrupt("size %d exceeds %d", size, int64(MaxSize))
	}
	return int64(size), body[headerSize:], nil
}

// decodeRuns decodes runs covering exactly n entries, calling set for each
// non-zero one. It rejects non-canonical encodings.
func decodeRuns(p []byte, n int64, set func(i int64, h blockstore.Hash)) error {
	var i int64
	lastKind := uint64(2)
	for len(p) > 0 {
		v, k := binary.Uvarint(p)
		if k <= 0 {
			return corrupt("bad run header at entry %d", i)
		}
		p = p[k:]
		kind, count := v&1, v>>1
		if count == 0 || count > uint64(n-i) {
			return corrupt("run of %d entries at entry %d of %d", count, i, n)
		}
		if kind == lastKind {
			return corrupt("two consecutive runs of the same kind at entry %d", i)
		}
		lastKind = kind
		if kind == 0 {
			i += int64(count)
			continue
		}
		if uint64(len(p))/blockstore.HashSize < count {
			return corrupt("data run of %d entries truncated", count)
		}
		for c := uint64(0); c < count; c++ {
			h := blockstore.Hash(p[:blockstore.HashSize])
			p = p[blockstore.HashSize:]
			if h.IsZero() {
				return corrupt("zero hash inside a data run at entry %d", i)
			}
			set(i, h)
			i++
		}
	}
	if i != n {
		return corrupt("runs cover %d of %d entries", i, n)
	}
	return nil
}

// Chunk blocks: the 256 entries of one chunk, stored in the block store
// under the SHA-256 of this encoding (the store compresses the holes):
//
//	offset 0   magic "OMIC"
//	offset 4   format version (1)
//	offset 5   three reserved bytes, zero
//	offset 8   256 hashes of 32 bytes, zero for holes
//
// An all-hole chunk is never stored: its root entry is the zero hash.
const (
	chunkHeader    = 8
	chunkBlockSize = chunkHeader + chunkEntries*blockstore.HashSize
)

var chunkMagic = [4]byte{'O', 'M', 'I', 'C'}

func encodeChunk(c *chunk) []byte {
	b := make([]byte, chunkHeader, chunkBlockSize)
	copy(b, chunkMagic[:])
	b[4] = 1
	for i := range c.e {
		b = append(b, c.e[i][:]...)
	}
	return b
}

func decodeChunk(data []byte) (*chunk, error) {
	if len(data) != chunkBlockSize || [4]byte(data[:4]) != chunkMagic || data[4] != 1 ||
		data[5] != 0 || data[6] != 0 || data[7] != 0 {
		return nil, corrupt("not a chunk block (%d bytes)", len(data))
	}
	c := new(chunk)
	p := data[chunkHeader:]
	for i := range c.e {
		c.e[i] = blockstore.Hash(p[i*blockstore.HashSize:])
	}
	if c.empty() {
		return nil, corrupt("all-hole chunk block")
	}
	return c, nil
}

// IsChunkBlock reports whether data, the content of a stored block, is a map
// chunk block rather than volume data. Tools and tests that count or inspect
// volume data in a block store use it to skip map metadata.
func IsChunkBlock(data []byte) bool {
	_, err := decodeChunk(data)
	return err == nil
}
