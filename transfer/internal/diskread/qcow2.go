package diskread

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/zstd"

	"github.com/omiproject/omi/diskimage"
)

// qcow2 on-disk constants (docs/interop/qcow2.txt in the QEMU tree).
const (
	qcowMagic      = 0x514649fb
	qcowV2Len      = 72
	qcowV3Len      = 104
	minBits        = 9
	maxBits        = 21
	maxL1Bytes     = 32 << 20
	maxHostOffset  = 1 << 56
	offsetMask     = 0x00fffffffffffe00
	flagCompressed = uint64(1) << 62
	flagCopied     = uint64(1) << 63
	flagZero       = uint64(1)

	incDirty    = 1 << 0
	incCorrupt  = 1 << 1
	incDataFile = 1 << 2
	incCompress = 1 << 3
	incExtL2    = 1 << 4

	compDeflate = 0
	compZstd    = 1
)

// header holds what the decoder needs from a qcow2 header.
type header struct {
	version     uint32
	clusterBits uint32
	size        int64
	l1Size      int64
	l1Offset    int64
	compression uint8
}

func (h *header) cs() int64        { return 1 << h.clusterBits }
func (h *header) l2Entries() int64 { return h.cs() / 8 }

// parseHeader validates a qcow2 header and refuses, with diskimage's error
// values, every feature an import cannot honour. b holds at least the
// first 104 bytes of the image, or all of it when shorter.
func parseHeader(b []byte) (*header, error) {
	if len(b) < qcowV2Len {
		return nil, fmt.Errorf("%w: header cut at %d bytes", diskimage.ErrCorrupt, len(b))
	}
	be := binary.BigEndian
	if be.Uint32(b) != qcowMagic {
		return nil, fmt.Errorf("%w: bad magic", diskimage.ErrCorrupt)
	}
	h := &header{version: be.Uint32(b[4:]), clusterBits: be.Uint32(b[20:])}
	backingOff, backingLen := be.Uint64(b[8:]), be.Uint32(b[16:])
	size, crypt := be.Uint64(b[24:]), be.Uint32(b[32:])
	l1Size, l1Off := be.Uint32(b[36:]), be.Uint64(b[40:])
	var incompat uint64
	switch h.version {
	case 2:
	case 3:
		if len(b) < qcowV3Len {
			return nil, fmt.Errorf("%w: v3 header cut at %d bytes", diskimage.ErrCorrupt, len(b))
		}
		incompat = be.Uint64(b[72:])
		hlen := be.Uint32(b[100:])
		if hlen < qcowV3Len || hlen%8 != 0 {
			return nil, fmt.Errorf("%w: header_length %d", diskimage.ErrCorrupt, hlen)
		}
		if hlen > qcowV3Len && len(b) > qcowV3Len {
			h.compression = b[104]
		}
	default:
		return nil, fmt.Errorf("%w: qcow2 version %d", diskimage.ErrUnsupported, h.version)
	}
	if backingOff != 0 || backingLen != 0 {
		return nil, diskimage.ErrBackingFile
	}
	if crypt != 0 {
		return nil, fmt.Errorf("%w (crypt_method %d)", diskimage.ErrEncrypted, crypt)
	}
	switch {
	case incompat&incDataFile != 0:
		return nil, diskimage.ErrExternalDataFile
	case incompat&incCorrupt != 0:
		return nil, fmt.Errorf("%w: the image is marked corrupt", diskimage.ErrCorrupt)
	case incompat&incExtL2 != 0:
		return nil, fmt.Errorf("%w: extended L2 entries", diskimage.ErrUnsupported)
	case incompat&^(incDirty|incCompress) != 0:
		return nil, fmt.Errorf("%w: incompatible features %#x", diskimage.ErrUnsupported, incompat)
	}
	if incompat&incCompress == 0 {
		h.compression = compDeflate
	} else if h.compression != compDeflate && h.compression != compZstd {
		return nil, fmt.Errorf("%w: compression type %d", diskimage.ErrUnsupported, h.compression)
	}
	if h.clusterBits < minBits || h.clusterBits > maxBits {
		return nil, fmt.Errorf("%w: cluster_bits %d", diskimage.ErrCorrupt, h.clusterBits)
	}
	if size > maxHostOffset {
		return nil, fmt.Errorf("%w: virtual size %d", diskimage.ErrCorrupt, size)
	}
	h.size = int64(size)
	cov := h.cs() * h.l2Entries()
	need := (h.size + cov - 1) / cov
	if int64(l1Size) < need || int64(l1Size)*8 > maxL1Bytes {
		return nil, fmt.Errorf("%w: l1_size %d for virtual size %d", diskimage.ErrCorrupt, l1Size, size)
	}
	// Entries past what the size needs are never used.
	h.l1Size = need
	if need > 0 && (l1Off == 0 || l1Off%uint64(h.cs()) != 0 || l1Off >= maxHostOffset) {
		return nil, fmt.Errorf("%w: l1_table_offset %#x", diskimage.ErrCorrupt, l1Off)
	}
	h.l1Offset = int64(l1Off)
	return h, nil
}

// cluster is one guest cluster's mapping, decoded from an L2 entry.
type cluster struct {
	host   int64 // host offset of the data
	length int64 // bytes to read at host: a cluster, or the compressed size
	comp   bool
}

// l2Entry decodes an L2 entry; ok is false for a cluster that reads as
// zeros (unallocated or zero flag).
func (h *header) l2Entry(e uint64) (c cluster, ok bool, err error) {
	if e&flagCompressed != 0 {
		e &^= flagCompressed | flagCopied
		shift := 62 - (h.clusterBits - 8)
		host := e & (1<<shift - 1)
		sectors := (e>>shift)&(1<<(h.clusterBits-8)-1) + 1
		length := int64(sectors*512 - host&511)
		if host == 0 || host >= maxHostOffset {
			return c, false, fmt.Errorf("%w: compressed cluster at %#x", diskimage.ErrCorrupt, host)
		}
		return cluster{host: int64(host), length: length, comp: true}, true, nil
	}
	if h.version >= 3 && e&flagZero != 0 {
		return c, false, nil
	}
	host := e & offsetMask
	if host == 0 {
		return c, false, nil
	}
	if host%uint64(h.cs()) != 0 || host >= maxHostOffset {
		return c, false, fmt.Errorf("%w: data cluster at unaligned offset %#x", diskimage.ErrCorrupt, host)
	}
	return cluster{host: int64(host), length: h.cs()}, true, nil
}

// l1Entry decodes an L1 entry: the L2 table's offset, or 0 when unused.
func (h *header) l1Entry(e uint64) (int64, error) {
	off := e & offsetMask
	if off == 0 {
		return 0, nil
	}
	if off%uint64(h.cs()) != 0 || off >= maxHostOffset {
		return 0, fmt.Errorf("%w: L2 table at unaligned offset %#x", diskimage.ErrCorrupt, off)
	}
	return int64(off), nil
}

// inflater decompresses compressed clusters, reusing decoders.
type inflater struct {
	h  *header
	fr io.ReadCloser
	zr *zstd.Decoder
}

var zstdPool = sync.Pool{New: func() any {
	d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(64<<20))
	return d
}}

// inflate decompresses one cluster's data into out (a full cluster).
// Compressed data is followed by padding up to a sector, so only out's
// length is read.
func (f *inflater) inflate(comp, out []byte) error {
	var r io.Reader
	switch f.h.compression {
	case compZstd:
		if f.zr == nil {
			f.zr = zstdPool.Get().(*zstd.Decoder)
		}
		if err := f.zr.Reset(bytes.NewReader(comp)); err != nil {
			return err
		}
		r = f.zr
	default:
		if f.fr == nil {
			f.fr = flate.NewReader(bytes.NewReader(comp))
		} else if err := f.fr.(flate.Resetter).Reset(bytes.NewReader(comp), nil); err != nil {
			return err
		}
		r = f.fr
	}
	if _, err := io.ReadFull(r, out); err != nil {
		return fmt.Errorf("%w: compressed cluster: %v", diskimage.ErrCorrupt, err)
	}
	return nil
}

func (f *inflater) close() {
	if f.zr != nil {
		f.zr.Reset(nil)
		zstdPool.Put(f.zr)
		f.zr = nil
	}
}
