// Package blockcodec is the on-disk and on-object encoding of a block,
// shared by every block store backend so that a block copied between
// backends byte for byte stays readable:
//
//	offset 0  magic "OMIB"
//	offset 4  format version (1)
//	offset 5  flags: bit 0 set = payload is a zstd frame, clear = raw bytes
//	offset 6  two reserved bytes, zero
//	offset 8  uncompressed length, uint32 little endian
//	offset 12 payload
package blockcodec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"

	"github.com/klauspost/compress/zstd"
)

const (
	// HeaderSize is the length of the header before the payload.
	HeaderSize    = 12
	formatVersion = 1
	flagZstd      = 1 << 0
)

var magic = [4]byte{'O', 'M', 'I', 'B'}

// Codec compresses blocks with zstd at its fastest level and stores them raw
// when that saves less than 1/16th, which costs nothing to decode. It is
// safe for concurrent use.
type Codec struct {
	enc     *zstd.Encoder
	dec     *zstd.Decoder
	maxSize int
}

// New returns a codec refusing to decode blocks larger than maxSize.
func New(maxSize int) (*Codec, error) {
	// EncodeAll and DecodeAll are safe for concurrent use; each call
	// borrows one of GOMAXPROCS internal states.
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithEncoderCRC(false), // content is verified by SHA-256
		zstd.WithZeroFrames(true))
	if err != nil {
		return nil, fmt.Errorf("blockcodec: zstd encoder: %w", err)
	}
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithDecoderMaxMemory(uint64(maxSize)),
		zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		enc.Close()
		return nil, fmt.Errorf("blockcodec: zstd decoder: %w", err)
	}
	return &Codec{enc: enc, dec: dec, maxSize: maxSize}, nil
}

// Close releases the zstd states.
func (c *Codec) Close() {
	c.enc.Close()
	c.dec.Close()
}

// Encode appends the header and payload for data to dst[:0].
func (c *Codec) Encode(data, dst []byte) []byte {
	var hdr [HeaderSize]byte
	copy(hdr[:4], magic[:])
	hdr[4] = formatVersion
	binary.LittleEndian.PutUint32(hdr[8:], uint32(len(data)))
	dst = append(dst[:0], hdr[:]...)
	if len(data) > 0 {
		comp := c.enc.EncodeAll(data, dst)
		if len(comp)-HeaderSize <= len(data)-len(data)/16 {
			comp[5] = flagZstd
			return comp
		}
		dst = comp[:HeaderSize]
	}
	return append(dst, data...)
}

// Decode checks the header of obj and returns the block content in dst.
// Every error means the object is corrupt.
func (c *Codec) Decode(obj, dst []byte) ([]byte, error) {
	if len(obj) < HeaderSize {
		return nil, fmt.Errorf("object of %d bytes is shorter than its header", len(obj))
	}
	if [4]byte(obj[:4]) != magic {
		return nil, errors.New("bad magic")
	}
	if obj[4] != formatVersion {
		return nil, fmt.Errorf("unknown format version %d", obj[4])
	}
	flags := obj[5]
	if flags&^flagZstd != 0 || obj[6] != 0 || obj[7] != 0 {
		return nil, fmt.Errorf("unknown flags %#x", obj[5:8])
	}
	n := int(binary.LittleEndian.Uint32(obj[8:12]))
	if n > c.maxSize {
		return nil, fmt.Errorf("declared length %d exceeds %d", n, c.maxSize)
	}
	payload := obj[HeaderSize:]
	if cap(dst) < n {
		dst = make([]byte, 0, n)
	}
	if flags&flagZstd == 0 {
		if len(payload) != n {
			return nil, fmt.Errorf("raw payload of %d bytes, header says %d", len(payload), n)
		}
		return append(dst[:0], payload...), nil
	}
	// The cap limit makes the decoder fail rather than grow past n bytes.
	out, err := c.dec.DecodeAll(payload, dst[:0:n])
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	if len(out) != n {
		return nil, fmt.Errorf("decoded %d bytes, header says %d", len(out), n)
	}
	return out, nil
}
