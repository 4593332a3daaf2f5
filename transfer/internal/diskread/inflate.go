package diskread

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

// inflateInto decodes the raw deflate stream src (RFC 1951) into dst, whose
// length is the exact size the stream must inflate to, and reports the
// bytes written. It exists for the members of our own exports, whose
// uncompressed size the "OM" field gives: knowing it, the decoder writes
// straight into the member's buffer and reads src as a byte slice with a
// 64-bit bit buffer, without the 32 KiB window and the byte-at-a-time input
// of a streaming decoder, which made gunzip half of an import's CPU.
//
// It is strict: anything unusual (an incomplete or over-subscribed code, a
// distance before the start, output past len(dst), input past its end)
// returns errInflate, and the caller decodes the member again with the
// streaming decoder, which gives the authoritative result and error. The
// member's CRC-32 is checked on the output either way.
//
// d holds the decoding tables between calls, so that a goroutine inflating
// many members allocates them once; its zero value is ready to use.
func inflateInto(d *memberInflater, dst, src []byte) (int, error) {
	d.src, d.pos, d.bits, d.nb = src, 0, 0, 0
	d.dst, d.out = dst, 0
	defer func() { d.src, d.dst = nil, nil }()
	for {
		d.refill()
		final := d.bits & 1
		typ := (d.bits >> 1) & 3
		d.drop(3)
		var err error
		switch typ {
		case 0:
			err = d.stored()
		case 1:
			err = d.huffman(&fixedLit, &fixedDist)
		case 2:
			if err = d.dynamicTables(); err == nil {
				err = d.huffman(&d.lit, &d.dist)
			}
		default:
			err = errInflate
		}
		if err != nil {
			return d.out, err
		}
		if d.overrun() {
			return d.out, errInflate
		}
		if final == 1 {
			return d.out, nil
		}
	}
}

var errInflate = errors.New("deflate stream needs the streaming decoder")

const (
	litBits  = 11 // index bits of the literal/length primary table
	distBits = 9  // and of the distance one
	maxCode  = 15 // longest code deflate allows
)

// A table entry is a uint32:
//
//	bits 0-4   code length to consume (for a link: the primary table's bits)
//	bits 5-7   kind
//	bits 8-12  extra bits to read after the code (lengths, distances)
//	bits 16-31 value: literal byte, base length or distance, or for a link
//	           the subtable's offset in the same slice
//
// A link's subtable is indexed by the next (entry>>8)&31 bits.
//
// The kinds are numbered so that, in a literal/length table, bit 5 of an
// entry is set for literals alone: the hot loop tests one bit.
const (
	kindInvalid = 0 // no code maps here
	kindLit     = 1
	kindEOB     = 2
	kindDist    = 3 // only in distance tables
	kindLen     = 4
	kindLink    = 6

	litFlag = kindLit << 5
)

// table is a two-level decoding table: a primary part of 1<<primary entries
// followed by subtables.
type table struct {
	e       []uint32
	primary uint
}

func entry(n, kind, extra, value uint32) uint32 {
	return n | kind<<5 | extra<<8 | value<<16
}

var lenBase = [29]uint32{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
var lenExtra = [29]uint32{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
var distBase = [30]uint32{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
var distExtra = [30]uint32{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}

// litEntry and distEntry give what a decoded symbol means.
func litEntry(sym int, n uint32) uint32 {
	switch {
	case sym < 256:
		return entry(n, kindLit, 0, uint32(sym))
	case sym == 256:
		return entry(n, kindEOB, 0, 0)
	case sym <= 285:
		return entry(n, kindLen, lenExtra[sym-257], lenBase[sym-257])
	}
	return entry(n, kindInvalid, 0, 0) // 286, 287: never valid
}

func distEntry(sym int, n uint32) uint32 {
	if sym < 30 {
		return entry(n, kindDist, distExtra[sym], distBase[sym])
	}
	return entry(n, kindInvalid, 0, 0)
}

// build fills t from the code lengths of the symbols (canonical Huffman
// codes, RFC 1951 3.2.2). allowSingle accepts the incomplete code of one
// symbol that deflate allows for distances; any other incomplete or
// over-subscribed code fails.
func (t *table) build(lengths []uint8, primary uint, meaning func(sym int, n uint32) uint32, allowSingle bool) bool {
	var count [maxCode + 1]int
	used, maxLen := 0, uint(0)
	for _, l := range lengths {
		count[l]++
		if l > 0 {
			used++
			maxLen = max(maxLen, uint(l))
		}
	}
	count[0] = 0
	left := 1
	for l := 1; l <= maxCode; l++ {
		left = left<<1 - count[l]
		if left < 0 {
			return false // over-subscribed
		}
	}
	if left != 0 && !(allowSingle && used <= 1) {
		return false
	}
	t.primary = primary
	size := 1 << primary
	if cap(t.e) < size {
		t.e = make([]uint32, size, size+512)
	}
	t.e = t.e[:size]
	clear(t.e)
	if used == 0 {
		return true // every entry invalid: any use fails
	}
	var next [maxCode + 2]int
	code := 0
	for l := 1; l <= maxCode; l++ {
		code = (code + count[l-1]) << 1
		next[l] = code
	}
	subBits := uint(0)
	if maxLen > primary {
		subBits = maxLen - primary
	}
	for sym, l := range lengths {
		if l == 0 {
			continue
		}
		n := uint(l)
		c := next[n]
		next[n]++
		rev := int(bits.Reverse16(uint16(c)) >> (16 - n))
		if n <= primary {
			e := meaning(sym, uint32(n))
			for i := rev; i < size; i += 1 << n {
				t.e[i] = e
			}
			continue
		}
		// Long code: its low primary bits pick a link to a subtable of
		// 1<<subBits entries, indexed by the bits after them.
		p := rev & (size - 1)
		link := t.e[p]
		if link == 0 {
			off := len(t.e)
			t.e = append(t.e, make([]uint32, 1<<subBits)...)
			link = entry(uint32(primary), kindLink, uint32(subBits), uint32(off))
			t.e[p] = link
		}
		off := int(link >> 16)
		rest := n - primary
		e := meaning(sym, uint32(rest))
		for i := rev >> primary; i < 1<<subBits; i += 1 << rest {
			t.e[off+i] = e
		}
	}
	return true
}

var fixedLit, fixedDist table

func init() {
	var l [288]uint8
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	fixedLit.build(l[:], litBits, litEntry, false)
	// 32 five-bit codes, of which 30 and 31 never occur: built as a
	// complete code whose last two symbols are invalid.
	var d [32]uint8
	for i := range d {
		d[i] = 5
	}
	fixedDist.build(d[:], distBits, distEntry, false)
}

type memberInflater struct {
	src  []byte
	pos  int // next byte of src to load (may pass len(src): zeros)
	bits uint64
	nb   uint // valid bits in bits
	dst  []byte
	out  int

	lit, dist, clen table
	lengths         [288 + 32]uint8
}

// refill tops the bit buffer up to at least 56 bits; past the end of src it
// shifts in zero bytes, which overrun detects if they are consumed.
func (d *memberInflater) refill() {
	if d.nb >= 56 {
		return
	}
	if d.pos+8 <= len(d.src) {
		d.bits |= binary.LittleEndian.Uint64(d.src[d.pos:]) << d.nb
		add := (63 - d.nb) >> 3
		d.pos += int(add)
		d.nb += add << 3
		return
	}
	for d.nb <= 56 {
		if d.pos < len(d.src) {
			d.bits |= uint64(d.src[d.pos]) << d.nb
		}
		d.pos++
		d.nb += 8
	}
}

func (d *memberInflater) drop(n uint) {
	d.bits >>= n
	d.nb -= n
}

// overrun reports whether more bits were consumed than src holds.
func (d *memberInflater) overrun() bool {
	return d.pos*8-int(d.nb) > len(d.src)*8
}

// stored copies a stored block.
func (d *memberInflater) stored() error {
	d.drop(d.nb & 7) // to a byte boundary
	d.refill()
	n := int(d.bits & 0xffff)
	nn := int((d.bits >> 16) & 0xffff)
	d.drop(32)
	if n != ^nn&0xffff {
		return errInflate
	}
	// Give back the whole bytes still buffered, then copy from src.
	d.pos -= int(d.nb >> 3)
	d.bits, d.nb = 0, 0
	if d.pos < 0 || d.pos+n > len(d.src) || d.out+n > len(d.dst) {
		return errInflate
	}
	copy(d.dst[d.out:], d.src[d.pos:d.pos+n])
	d.pos += n
	d.out += n
	return nil
}

// clenOrder is the order of the code length code lengths.
var clenOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// dynamicTables reads a dynamic block's header and builds d.lit, d.dist.
func (d *memberInflater) dynamicTables() error {
	d.refill()
	nlit := int(d.bits&31) + 257
	ndist := int((d.bits>>5)&31) + 1
	nclen := int((d.bits>>10)&15) + 4
	d.drop(14)
	if nlit > 286 || ndist > 30 {
		return errInflate
	}
	var cl [19]uint8
	for i := range nclen {
		d.refill()
		cl[clenOrder[i]] = uint8(d.bits & 7)
		d.drop(3)
	}
	if !d.clen.build(cl[:], 7, func(sym int, n uint32) uint32 { return entry(n, kindLit, 0, uint32(sym)) }, false) {
		return errInflate
	}
	lengths := d.lengths[:nlit+ndist]
	for i := 0; i < len(lengths); {
		d.refill()
		e := d.clen.e[d.bits&127]
		if (e>>5)&7 != kindLit {
			return errInflate
		}
		d.drop(uint(e & 31))
		sym := e >> 16
		var rep int
		var val uint8
		switch {
		case sym < 16:
			lengths[i] = uint8(sym)
			i++
			continue
		case sym == 16:
			if i == 0 {
				return errInflate
			}
			val = lengths[i-1]
			rep = 3 + int(d.bits&3)
			d.drop(2)
		case sym == 17:
			rep = 3 + int(d.bits&7)
			d.drop(3)
		default:
			rep = 11 + int(d.bits&127)
			d.drop(7)
		}
		if i+rep > len(lengths) {
			return errInflate
		}
		for range rep {
			lengths[i] = val
			i++
		}
	}
	if lengths[256] == 0 {
		return errInflate // no end of block
	}
	if !d.lit.build(lengths[:nlit], litBits, litEntry, false) ||
		!d.dist.build(lengths[nlit:], distBits, distEntry, true) {
		return errInflate
	}
	return nil
}

// huffman decodes a block's symbols with the tables lit and dist. The bit
// buffer lives in locals here, the decoder's hot loop, and the primary
// tables are indexed through fixed-size arrays so that their lookups need no
// bounds checks.
func (d *memberInflater) huffman(lit, dist *table) error {
	lp := (*[1 << litBits]uint32)(lit.e[:1<<litBits])
	dp := (*[1 << distBits]uint32)(dist.e[:1<<distBits])
	le, de := lit.e, dist.e
	dst, src := d.dst, d.src
	out, pos, b, nb := d.out, d.pos, d.bits, d.nb
	defer func() { d.out, d.pos, d.bits, d.nb = out, pos, b, nb }()
	for {
		// 56 bits cover a length code with its extra bits (15 + 5) and a
		// distance code with its extra bits (15 + 13).
		if nb < 56 {
			if pos+8 <= len(src) {
				b |= binary.LittleEndian.Uint64(src[pos:]) << nb
				add := (63 - nb) >> 3
				pos += int(add)
				nb += add << 3
			} else {
				for nb <= 56 {
					if pos < len(src) {
						b |= uint64(src[pos]) << nb
					}
					pos++
					nb += 8
				}
			}
		}
		e := lp[b&(1<<litBits-1)]
		if (e>>5)&7 == kindLink {
			b >>= e & 31
			nb -= uint(e & 31)
			e = le[int(e>>16)+int(b&(1<<((e>>8)&31)-1))]
		}
		b >>= e & 31
		nb -= uint(e & 31)
		if e&litFlag != 0 {
			if uint(out) >= uint(len(dst)) {
				return errInflate
			}
			dst[out] = byte(e >> 16)
			out++
			// Further literals while the buffer surely holds a code.
			for nb >= maxCode {
				e = lp[b&(1<<litBits-1)]
				if e&litFlag == 0 {
					break
				}
				b >>= e & 31
				nb -= uint(e & 31)
				if uint(out) >= uint(len(dst)) {
					return errInflate
				}
				dst[out] = byte(e >> 16)
				out++
			}
			continue
		}
		switch (e >> 5) & 7 {
		case kindEOB:
			return nil
		case kindLen:
		default:
			return errInflate
		}
		extra := (e >> 8) & 31
		length := int(e>>16) + int(b&(1<<extra-1))
		b >>= extra
		nb -= uint(extra)
		e = dp[b&(1<<distBits-1)]
		if (e>>5)&7 == kindLink {
			b >>= e & 31
			nb -= uint(e & 31)
			e = de[int(e>>16)+int(b&(1<<((e>>8)&31)-1))]
		}
		if (e>>5)&7 != kindDist {
			return errInflate
		}
		b >>= e & 31
		nb -= uint(e & 31)
		extra = (e >> 8) & 31
		dist := int(e>>16) + int(b&(1<<extra-1))
		b >>= extra
		nb -= uint(extra)
		if dist > out || length > len(dst)-out {
			return errInflate
		}
		from := out - dist
		if dist >= 8 && length <= 64 && len(dst)-out >= length+8 {
			// Short match: words of 8 bytes beat a call to memmove.
			// Each word reads bytes already final (dist >= 8); the last
			// may write up to 7 bytes past the match, rewritten later.
			for k := 0; k < length; k += 8 {
				binary.LittleEndian.PutUint64(dst[out+k:], binary.LittleEndian.Uint64(dst[from+k:]))
			}
			out += length
			continue
		}
		if dist >= length {
			copy(dst[out:out+length], dst[from:from+length])
			out += length
			continue
		}
		// Overlapping: each copy doubles the repeated run.
		end := out + length
		for out < end {
			out += copy(dst[out:end], dst[from:out])
		}
	}
}
