package blockmap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync/atomic"

	"github.com/omiproject/omi/blockstore"
)

// MaxSize is the largest volume a Map describes: 16 TiB, above the largest
// OUTSCALE volume (14,901 GiB). It bounds the memory a decoded map header can
// make us allocate.
const MaxSize = 16 << 40

// chunkEntries is the number of entries per in-memory chunk. Chunks that are
// all holes are not allocated, so an empty 16 TiB map costs a slice of nil
// pointers (1 MiB) and decoding never allocates more than the encoded data
// justifies.
const chunkEntries = 256

// chunk holds the entries of chunkEntries consecutive blocks. Chunks are
// shared copy-on-write: once shared is set (by Map.Clone, or when the chunk
// enters the Manager's chunk cache) the entries never change again, and
// SetEntry on any map holding the chunk copies it first. A clone of a map
// therefore costs a pointer per chunk, not 8 KiB.
type chunk struct {
	e      [chunkEntries]blockstore.Hash
	shared atomic.Bool
}

// clone returns an unshared copy of c.
func (c *chunk) clone() *chunk { return &chunk{e: c.e} }

// share marks c immutable and returns it.
func (c *chunk) share() *chunk { c.shared.Store(true); return c }

func (c *chunk) empty() bool { return c.e == [chunkEntries]blockstore.Hash{} }

// ErrCorrupt is returned (wrapped) when an encoded map fails to decode: bad
// magic, unknown version, checksum mismatch, truncated or non-canonical data.
var ErrCorrupt = errors.New("blockmap: corrupt map")

// Map is the content of a volume or snapshot: its size in bytes and, for each
// block of [blockstore.BlockSize] bytes, the hash of that block's content.
// The zero hash is a hole, a block that reads as zeros and is not stored. The
// last block is shorter when the size is not a multiple of BlockSize, and its
// hash is that of its short content.
//
// A Map is a plain value: it is not safe for concurrent mutation.
type Map struct {
	size   int64
	chunks []*chunk
	// sums[i] is the hash of the chunk block holding chunks[i] when that
	// block is known to be stored and referenced by the saved root (so a
	// save need not store it again), else zero. Any change of the chunk
	// clears it.
	sums []blockstore.Hash
}

// New returns a map of size bytes, all holes.
func New(size int64) (*Map, error) {
	if size < 0 || size > MaxSize {
		return nil, fmt.Errorf("blockmap: size %d out of range [0, %d]", size, int64(MaxSize))
	}
	n := numChunks(blocksOf(size))
	return &Map{size: size, chunks: make([]*chunk, n), sums: make([]blockstore.Hash, n)}, nil
}

func blocksOf(size int64) int64 { return (size + blockstore.BlockSize - 1) / blockstore.BlockSize }
func numChunks(blocks int64) int64 {
	return (blocks + chunkEntries - 1) / chunkEntries
}

// Size returns the size in bytes.
func (m *Map) Size() int64 { return m.size }

// Blocks returns the number of entries, ceil(Size/BlockSize).
func (m *Map) Blocks() int64 { return blocksOf(m.size) }

// BlockLen returns the length in bytes of block i: BlockSize except for a
// short last block; 0 when i is out of range.
func (m *Map) BlockLen(i int64) int {
	if i < 0 || i >= m.Blocks() {
		return 0
	}
	if rest := m.size - i*blockstore.BlockSize; rest < blockstore.BlockSize {
		return int(rest)
	}
	return blockstore.BlockSize
}

// Entry returns the hash of block i, the zero hash for a hole or an index
// out of range.
func (m *Map) Entry(i int64) blockstore.Hash {
	if i < 0 || i >= m.Blocks() {
		return blockstore.Hash{}
	}
	c := m.chunks[i/chunkEntries]
	if c == nil {
		return blockstore.Hash{}
	}
	return c.e[i%chunkEntries]
}

// SetEntry sets the hash of block i (the zero hash makes it a hole).
func (m *Map) SetEntry(i int64, h blockstore.Hash) error {
	if i < 0 || i >= m.Blocks() {
		return fmt.Errorf("blockmap: block %d out of range [0, %d)", i, m.Blocks())
	}
	ci := i / chunkEntries
	c := m.chunks[ci]
	if c == nil {
		if h.IsZero() {
			return nil
		}
		c = new(chunk)
		m.chunks[ci] = c
	}
	if c.e[i%chunkEntries] == h {
		return nil
	}
	if c.shared.Load() {
		c = c.clone()
		m.chunks[ci] = c
	}
	m.sums[ci] = blockstore.Hash{}
	c.e[i%chunkEntries] = h
	if h.IsZero() && c.empty() {
		m.chunks[ci] = nil
	}
	return nil
}

// Grow extends the map to size bytes; the new blocks are holes. It does not
// rehash a short last block that becomes longer: the caller (the Device)
// rewrites that block. Shrinking is refused.
func (m *Map) Grow(size int64) error {
	if size < m.size || size > MaxSize {
		return fmt.Errorf("blockmap: cannot resize from %d to %d bytes (grow only, max %d)", m.size, size, int64(MaxSize))
	}
	n := numChunks(blocksOf(size))
	for int64(len(m.chunks)) < n {
		m.chunks = append(m.chunks, nil)
		m.sums = append(m.sums, blockstore.Hash{})
	}
	m.size = size
	return nil
}

// Clone returns an independent copy of m. The chunks are shared
// copy-on-write, so it costs a pointer per 128 MiB of volume; the first
// change of a shared chunk in either map copies it (8 KiB). Clone marks m's
// chunks shared: it must not run concurrently with a change of m.
func (m *Map) Clone() *Map {
	c := &Map{size: m.size, chunks: make([]*chunk, len(m.chunks)), sums: append([]blockstore.Hash(nil), m.sums...)}
	for i, ch := range m.chunks {
		if ch != nil {
			c.chunks[i] = ch.share()
		}
	}
	return c
}

// Walk calls fn for every allocated (non-hole) entry, in increasing block
// order. An error from fn stops the walk and is returned.
func (m *Map) Walk(fn func(i int64, h blockstore.Hash) error) error {
	for ci, c := range m.chunks {
		if c == nil {
			continue
		}
		for j := range c.e {
			if c.e[j].IsZero() {
				continue
			}
			if err := fn(int64(ci)*chunkEntries+int64(j), c.e[j]); err != nil {
				return err
			}
		}
	}
	return nil
}

// nextAllocated returns the first block index >= i that is not a hole, or
// Blocks() if there is none. It skips unallocated chunks at once.
func (m *Map) nextAllocated(i int64) int64 {
	n := m.Blocks()
	for i < n {
		c := m.chunks[i/chunkEntries]
		if c == nil {
			i = (i/chunkEntries + 1) * chunkEntries
			continue
		}
		if !c.e[i%chunkEntries].IsZero() {
			return i
		}
		i++
	}
	return n
}

// Allocated returns the number of non-hole entries.
func (m *Map) Allocated() int64 {
	var n int64
	m.Walk(func(int64, blockstore.Hash) error { n++; return nil })
	return n
}

// Equal reports whether m and o have the same size and entries.
func (m *Map) Equal(o *Map) bool {
	if m.size != o.size {
		return false
	}
	for i := range m.chunks {
		a, b := m.chunks[i], o.chunks[i]
		switch {
		case a == nil && b == nil:
		case a == nil || b == nil:
			return false
		case a.e != b.e:
			return false
		}
	}
	return true
}

// Encoding:
//
//	offset 0   magic "OMIM"
//	offset 4   format version (1)
//	offset 5   three reserved bytes, zero
//	offset 8   size in bytes, uint64 little endian
//	offset 16  runs covering the Blocks() entries in order; each run is a
//	           uvarint n<<1|kind followed, for kind 1 (data), by n hashes of
//	           32 bytes; kind 0 is n holes. Runs alternate kinds, n > 0, and a
//	           data run holds no zero hash, so each map has one encoding.
//	end - 4    CRC-32C (Castagnoli) of everything before, little endian
const (
	headerSize    = 16
	formatVersion = 1
	trailerSize   = 4
)

var (
	magic    = [4]byte{'O', 'M', 'I', 'M'}
	crcTable = crc32.MakeTable(crc32.Castagnoli)
)

// MarshalBinary encodes m in the compact format described above: holes cost
// about a byte per run, each allocated block 32 bytes.
func (m *Map) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(make([]byte, 0, headerSize+trailerSize+16+int(m.Allocated())*blockstore.HashSize)), nil
}

// AppendBinary appends the encoding of m to b.
func (m *Map) AppendBinary(b []byte) []byte {
	start := len(b)
	b = append(b, magic[:]...)
	b = append(b, formatVersion, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, uint64(m.size))
	n := m.Blocks()
	var i int64
	for i < n {
		data := !m.Entry(i).IsZero()
		j := i + 1
		if data {
			for j < n && !m.Entry(j).IsZero() {
				j++
			}
		} else {
			for j < n && m.Entry(j).IsZero() {
				// Skip whole nil chunks at once.
				if j%chunkEntries == 0 && m.chunks[j/chunkEntries] == nil {
					j = min(j+chunkEntries, n)
					continue
				}
				j++
			}
		}
		kind := uint64(0)
		if data {
			kind = 1
		}
		b = binary.AppendUvarint(b, uint64(j-i)<<1|kind)
		if data {
			for k := i; k < j; k++ {
				h := m.Entry(k)
				b = append(b, h[:]...)
			}
		}
		i = j
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], crcTable))
}

// UnmarshalBinary replaces m with the decoded data. It rejects anything that
// is not exactly a canonical encoding, with an error wrapping ErrCorrupt, and
// allocates no more than the input length justifies.
func (m *Map) UnmarshalBinary(data []byte) error {
	d, err := Decode(data)
	if err != nil {
		return err
	}
	*m = *d
	return nil
}

// Decode decodes a map encoded by MarshalBinary (format version 1).
func Decode(data []byte) (*Map, error) {
	size, body, err := checkFrame(data, formatVersion)
	if err != nil {
		return nil, err
	}
	m, err := New(size)
	if err != nil {
		return nil, corrupt("%v", err)
	}
	if err := decodeRuns(body, m.Blocks(), func(i int64, h blockstore.Hash) { m.SetEntry(i, h) }); err != nil {
		return nil, err
	}
	return m, nil
}

func crcOf(b []byte) uint32 { return crc32.Checksum(b, crcTable) }

// appendCRC appends the checksum of all of b.
func appendCRC(b []byte) []byte {
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}
