package diskimage

import (
	"encoding/binary"
	"fmt"
)

// qcow2 on-disk constants (docs/interop/qcow2.txt in the QEMU tree).
const (
	qcow2Magic = 0x514649fb // "QFI\xfb"

	qcow2V2HeaderLen = 72
	qcow2V3HeaderLen = 104
	// qcow2HeaderLenOut is the v3 header length we write: the 104-byte base
	// plus the compression type byte, padded to 8 bytes as QEMU does.
	qcow2HeaderLenOut = 112

	minClusterBits = 9
	maxClusterBits = 21

	// maxL1Bytes mirrors QEMU's QCOW_MAX_L1_SIZE: larger L1 tables are
	// refused, so a corrupt l1_size cannot make us allocate gigabytes.
	maxL1Bytes = 32 << 20

	incompatDirty        = 1 << 0
	incompatCorrupt      = 1 << 1
	incompatExternalData = 1 << 2
	incompatCompression  = 1 << 3
	incompatExtendedL2   = 1 << 4

	compressionDeflate = 0

	l1OffsetMask  = 0x00fffffffffffe00
	l2OffsetMask  = 0x00fffffffffffe00
	entryCopied   = uint64(1) << 63
	entryCompress = uint64(1) << 62
	entryZero     = uint64(1) << 0
)

// qcow2Header holds the header fields the readers and writer use.
type qcow2Header struct {
	version          uint32
	backingOffset    uint64
	backingSize      uint32
	clusterBits      uint32
	size             uint64
	cryptMethod      uint32
	l1Size           uint32
	l1Offset         uint64
	refcountOffset   uint64
	refcountClusters uint32
	nbSnapshots      uint32
	snapshotsOffset  uint64
	incompatible     uint64
	compatible       uint64
	autoclear        uint64
	refcountOrder    uint32
	headerLength     uint32
	compressionType  uint8
}

func (h *qcow2Header) clusterSize() int64 { return 1 << h.clusterBits }

// l2Entries is the number of entries in one L2 table (one cluster of uint64).
func (h *qcow2Header) l2Entries() int64 { return h.clusterSize() / 8 }

// l2Coverage is the number of guest bytes one L2 table maps.
func (h *qcow2Header) l2Coverage() int64 { return h.clusterSize() * h.l2Entries() }

// parseQcow2Header decodes and validates a qcow2 header from the start of an
// image. b must hold at least the header (the readers pass the first
// cluster or as much of it as exists). It refuses, with the package's
// exported errors, everything an import cannot honour; it never panics.
func parseQcow2Header(b []byte) (*qcow2Header, error) {
	if len(b) < qcow2V2HeaderLen {
		return nil, fmt.Errorf("%w: header is %d bytes, need %d", ErrCorrupt, len(b), qcow2V2HeaderLen)
	}
	be := binary.BigEndian
	if be.Uint32(b[0:]) != qcow2Magic {
		return nil, fmt.Errorf("%w: bad magic", ErrCorrupt)
	}
	h := &qcow2Header{
		version:          be.Uint32(b[4:]),
		backingOffset:    be.Uint64(b[8:]),
		backingSize:      be.Uint32(b[16:]),
		clusterBits:      be.Uint32(b[20:]),
		size:             be.Uint64(b[24:]),
		cryptMethod:      be.Uint32(b[32:]),
		l1Size:           be.Uint32(b[36:]),
		l1Offset:         be.Uint64(b[40:]),
		refcountOffset:   be.Uint64(b[48:]),
		refcountClusters: be.Uint32(b[56:]),
		nbSnapshots:      be.Uint32(b[60:]),
		snapshotsOffset:  be.Uint64(b[64:]),
		refcountOrder:    4,
		headerLength:     qcow2V2HeaderLen,
	}
	switch h.version {
	case 2:
	case 3:
		if len(b) < qcow2V3HeaderLen {
			return nil, fmt.Errorf("%w: v3 header is %d bytes, need %d", ErrCorrupt, len(b), qcow2V3HeaderLen)
		}
		h.incompatible = be.Uint64(b[72:])
		h.compatible = be.Uint64(b[80:])
		h.autoclear = be.Uint64(b[88:])
		h.refcountOrder = be.Uint32(b[96:])
		h.headerLength = be.Uint32(b[100:])
		if h.headerLength < qcow2V3HeaderLen || h.headerLength%8 != 0 {
			return nil, fmt.Errorf("%w: header_length %d", ErrCorrupt, h.headerLength)
		}
		if h.headerLength > qcow2V3HeaderLen && len(b) > qcow2V3HeaderLen {
			h.compressionType = b[104]
		}
	default:
		return nil, fmt.Errorf("%w: qcow2 version %d", ErrUnsupported, h.version)
	}
	if h.clusterBits < minClusterBits || h.clusterBits > maxClusterBits {
		return nil, fmt.Errorf("%w: cluster_bits %d outside [%d,%d]", ErrCorrupt, h.clusterBits, minClusterBits, maxClusterBits)
	}
	cs := uint64(h.clusterSize())
	if uint64(h.headerLength) > cs {
		return nil, fmt.Errorf("%w: header_length %d exceeds the cluster size", ErrCorrupt, h.headerLength)
	}
	if h.backingOffset != 0 || h.backingSize != 0 {
		return nil, ErrBackingFile
	}
	if h.cryptMethod != 0 {
		return nil, fmt.Errorf("%w (crypt_method %d)", ErrEncrypted, h.cryptMethod)
	}
	if h.incompatible&incompatExternalData != 0 {
		return nil, ErrExternalDataFile
	}
	if h.incompatible&incompatCorrupt != 0 {
		return nil, fmt.Errorf("%w: image is marked corrupt", ErrCorrupt)
	}
	if h.incompatible&incompatExtendedL2 != 0 {
		return nil, fmt.Errorf("%w: extended L2 entries", ErrUnsupported)
	}
	if h.incompatible&incompatCompression != 0 && h.compressionType != compressionDeflate {
		return nil, fmt.Errorf("%w: compression type %d (only deflate)", ErrUnsupported, h.compressionType)
	}
	if unknown := h.incompatible &^ (incompatDirty | incompatCorrupt | incompatExternalData | incompatCompression | incompatExtendedL2); unknown != 0 {
		return nil, fmt.Errorf("%w: incompatible features %#x", ErrUnsupported, unknown)
	}
	if h.refcountOrder > 6 {
		return nil, fmt.Errorf("%w: refcount_order %d", ErrCorrupt, h.refcountOrder)
	}
	// QEMU caps images at 2^56 bytes of host offsets; a virtual size beyond
	// that cannot be mapped.
	if h.size > 1<<56 {
		return nil, fmt.Errorf("%w: virtual size %d", ErrCorrupt, h.size)
	}
	cov := uint64(h.l2Coverage())
	need := (h.size + cov - 1) / cov
	if uint64(h.l1Size) < need {
		return nil, fmt.Errorf("%w: l1_size %d cannot map virtual size %d (need %d)", ErrCorrupt, h.l1Size, h.size, need)
	}
	if uint64(h.l1Size)*8 > maxL1Bytes {
		return nil, fmt.Errorf("%w: l1_size %d too large", ErrCorrupt, h.l1Size)
	}
	if h.l1Size > 0 {
		if h.l1Offset == 0 || h.l1Offset%cs != 0 || h.l1Offset > 1<<56 {
			return nil, fmt.Errorf("%w: l1_table_offset %#x", ErrCorrupt, h.l1Offset)
		}
	}
	if h.refcountOffset%cs != 0 || h.refcountOffset > 1<<56 || uint64(h.refcountClusters)*cs > 1<<40 {
		return nil, fmt.Errorf("%w: refcount table at %#x (%d clusters)", ErrCorrupt, h.refcountOffset, h.refcountClusters)
	}
	return h, nil
}

// marshal encodes a v3 header of qcow2HeaderLenOut bytes into b.
func (h *qcow2Header) marshal(b []byte) {
	be := binary.BigEndian
	be.PutUint32(b[0:], qcow2Magic)
	be.PutUint32(b[4:], 3)
	be.PutUint64(b[8:], 0)
	be.PutUint32(b[16:], 0)
	be.PutUint32(b[20:], h.clusterBits)
	be.PutUint64(b[24:], h.size)
	be.PutUint32(b[32:], 0)
	be.PutUint32(b[36:], h.l1Size)
	be.PutUint64(b[40:], h.l1Offset)
	be.PutUint64(b[48:], h.refcountOffset)
	be.PutUint32(b[56:], h.refcountClusters)
	be.PutUint32(b[60:], 0)
	be.PutUint64(b[64:], 0)
	be.PutUint64(b[72:], 0)
	be.PutUint64(b[80:], 0)
	be.PutUint64(b[88:], 0)
	be.PutUint32(b[96:], h.refcountOrder)
	be.PutUint32(b[100:], qcow2HeaderLenOut)
	b[104] = compressionDeflate
}
