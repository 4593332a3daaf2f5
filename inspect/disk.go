package inspect

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

const sectorSize = 512

// device adapts the caller's io.ReaderAt to the read-only storage go-diskfs
// wants. It clamps reads to the disk size (a hostile partition table may
// point past the end), checks the context on every read, and remembers the
// first error of the underlying reader so that a failing block store is
// reported as an error rather than as an unreadable disk.
type device struct {
	ctx  context.Context
	r    io.ReaderAt
	size int64
	pos  int64
	err  error
}

var _ backend.Storage = (*device)(nil)

func (d *device) ReadAt(p []byte, off int64) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if err := d.ctx.Err(); err != nil {
		d.err = err
		return 0, err
	}
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= d.size {
		return 0, io.EOF
	}
	want := len(p)
	if rem := d.size - off; int64(want) > rem {
		want = int(rem)
	}
	n, err := d.r.ReadAt(p[:want], off)
	if err != nil && !(errors.Is(err, io.EOF) && n == want) {
		if errors.Is(err, io.EOF) {
			// The reader is shorter than the size we were given: treat
			// the missing part as content, not as a storage failure.
			return n, io.ErrUnexpectedEOF
		}
		d.err = err
		return n, err
	}
	if want < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (d *device) Read(p []byte) (int, error) {
	n, err := d.ReadAt(p, d.pos)
	d.pos += int64(n)
	return n, err
}

func (d *device) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += d.pos
	case io.SeekEnd:
		offset += d.size
	default:
		return 0, errors.New("invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("negative position")
	}
	d.pos = offset
	return offset, nil
}

func (d *device) Stat() (fs.FileInfo, error)              { return devInfo{d.size}, nil }
func (d *device) Close() error                            { return nil }
func (d *device) Sys() (*os.File, error)                  { return nil, backend.ErrNotSuitable }
func (d *device) Writable() (backend.WritableFile, error) { return nil, backend.ErrIncorrectOpenMode }
func (d *device) Path() string                            { return "" }

// read reads exactly len(p) bytes at off, zero-filling past the end of the
// disk; ok is false when nothing could be read.
func (d *device) read(p []byte, off int64) bool {
	n, err := d.ReadAt(p, off)
	clear(p[n:])
	return n > 0 && (err == nil || errors.Is(err, io.EOF))
}

type devInfo struct{ size int64 }

func (i devInfo) Name() string       { return "disk" }
func (i devInfo) Size() int64        { return i.size }
func (i devInfo) Mode() fs.FileMode  { return 0o400 }
func (i devInfo) ModTime() time.Time { return time.Time{} }
func (i devInfo) IsDir() bool        { return false }
func (i devInfo) Sys() any           { return nil }

// GPT partition types that hold nothing to inspect, and the ones known to
// hold data omi cannot read.
var gptTypes = map[string]string{
	string(gpt.BIOSBoot):          "bios_boot",
	string(gpt.LinuxSwap):         "swap",
	string(gpt.LinuxLVM):          "lvm2",
	string(gpt.LinuxLUKS):         "luks",
	string(gpt.LinuxDMCrypt):      "luks",
	string(gpt.MicrosoftReserved): "msr",
}

// partitions finds the partition table. reason is non-empty when the disk
// cannot be inspected at all.
func (in *inspector) partitions() (parts []Partition, table, reason string) {
	d := in.dev
	if d.size < 2*sectorSize {
		return nil, "", fmt.Sprintf("disk of %d bytes too small to hold a partition table", d.size)
	}
	head := make([]byte, sectorSize)
	if !d.read(head, 0) {
		return nil, "", "cannot read the first sector"
	}
	// A valid GPT wins (go-diskfs checks CRCs and falls back to the backup
	// header at the end of the disk).
	if t, err := gpt.Read(d, sectorSize, sectorSize); err == nil {
		for _, p := range t.Partitions {
			if p.Type == gpt.Unused || p.End < p.Start {
				continue
			}
			parts = append(parts, Partition{
				Index: p.Index,
				Start: int64(p.Start) * sectorSize,
				Size:  int64(p.End-p.Start+1) * sectorSize,
				Type:  strings.ToUpper(string(p.Type)),
				Name:  p.Name,
			})
		}
		if len(parts) == 0 {
			return nil, "gpt", "GPT holds no partition"
		}
		return parts, "gpt", ""
	} else if d.err != nil {
		return nil, "", ""
	}
	// A filesystem directly on the disk (its boot sector may also end in
	// 55 AA, so look for it before trying MBR).
	whole := Partition{Index: 0, Start: 0, Size: d.size}
	in.probe(&whole)
	if whole.Filesystem != "unknown" && whole.Filesystem != "empty" {
		return []Partition{whole}, "none", ""
	}
	if head[510] != 0x55 || head[511] != 0xAA {
		if whole.Filesystem == "empty" {
			return nil, "", "no partition table and no filesystem (unformatted disk)"
		}
		return nil, "", "no partition table and no known filesystem"
	}
	parts, reason = in.mbrPartitions(head)
	if reason != "" {
		return nil, "mbr", reason
	}
	return parts, "mbr", ""
}

// mbrPartitions reads the four primary entries and the chain of logical
// partitions of an extended partition.
func (in *inspector) mbrPartitions(head []byte) ([]Partition, string) {
	var parts []Partition
	for i := 0; i < 4; i++ {
		e := head[446+16*i : 446+16*(i+1)]
		typ := e[4]
		start := int64(binary.LittleEndian.Uint32(e[8:])) * sectorSize
		size := int64(binary.LittleEndian.Uint32(e[12:])) * sectorSize
		if typ == 0 || size == 0 {
			continue
		}
		if typ == 0xEE {
			return nil, "protective MBR but no valid GPT (primary and backup headers unreadable)"
		}
		if (e[0] != 0 && e[0] != 0x80) || start >= in.dev.size {
			return nil, "sector 0 ends in 55 AA but holds no valid MBR partition table"
		}
		p := Partition{Index: i + 1, Start: start, Size: size, Type: fmt.Sprintf("0x%02x", typ)}
		if isExtended(typ) {
			p.Filesystem, p.Status = "extended", StatusSkipped
			parts = append(parts, p)
			parts = append(parts, in.logicalPartitions(start, size)...)
			continue
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return nil, "MBR holds no partition"
	}
	return parts, ""
}

func isExtended(t byte) bool { return t == 0x05 || t == 0x0F || t == 0x85 }

// logicalPartitions walks the EBR chain of an extended partition. Logical
// partitions are numbered from 5, as Linux does.
func (in *inspector) logicalPartitions(extStart, extSize int64) []Partition {
	var out []Partition
	ebr := make([]byte, sectorSize)
	seen := map[int64]bool{}
	next := extStart
	for idx := 5; idx < 5+128; idx++ {
		if seen[next] || next < extStart || next >= extStart+extSize || !in.dev.read(ebr, next) {
			break
		}
		seen[next] = true
		if ebr[510] != 0x55 || ebr[511] != 0xAA {
			break
		}
		e1, e2 := ebr[446:462], ebr[462:478]
		if e1[4] != 0 {
			out = append(out, Partition{
				Index: idx,
				Start: next + int64(binary.LittleEndian.Uint32(e1[8:]))*sectorSize,
				Size:  int64(binary.LittleEndian.Uint32(e1[12:])) * sectorSize,
				Type:  fmt.Sprintf("0x%02x", e1[4]),
			})
		}
		if e2[4] == 0 {
			break
		}
		next = extStart + int64(binary.LittleEndian.Uint32(e2[8:]))*sectorSize
	}
	return out
}

// probe sets p.Filesystem from the signatures in the partition's first
// blocks, and p.Status/Reason for partitions that need no more work.
func (in *inspector) probe(p *Partition) {
	if p.Filesystem != "" {
		return
	}
	if t, ok := gptTypes[p.Type]; ok {
		p.Filesystem = t
	}
	if p.Start < 0 || p.Size <= 0 || p.Start >= in.dev.size {
		p.Filesystem, p.Status, p.Reason = "unknown", StatusNotInspected, "partition lies outside the disk"
		return
	}
	b := make([]byte, 4096)
	in.dev.read(b, p.Start)
	fs := p.Filesystem
	switch {
	case bytes.HasPrefix(b, []byte("LUKS\xba\xbe")):
		fs = "luks"
	case isLVM(b):
		fs = "lvm2"
	case bytes.HasPrefix(b, []byte("XFSB")):
		fs = "xfs"
	case string(b[3:11]) == "NTFS    ":
		fs = "ntfs"
	case binary.LittleEndian.Uint16(b[1024+56:]) == 0xEF53:
		fs = extVersion(b[1024:2048])
		// go-diskfs verifies inode checksums unconditionally, so it reads
		// only filesystems with metadata_csum (mke2fs's default since
		// e2fsprogs 1.43, 2016).
		if binary.LittleEndian.Uint32(b[1024+0x64:])&0x400 == 0 {
			p.Filesystem = fs
			p.Status = StatusNotInspected
			p.Reason = fs + " without metadata_csum: omi's ext reader needs metadata checksums"
			return
		}
	case b[510] == 0x55 && b[511] == 0xAA && (string(b[54:59]) == "FAT12" || string(b[54:59]) == "FAT16" || string(b[82:87]) == "FAT32"):
		fs = "vfat"
	case string(b[4086:4096]) == "SWAPSPACE2" || string(b[4086:4096]) == "SWAP-SPACE":
		fs = "swap"
	case fs == "":
		magic := make([]byte, 8)
		if p.Size > 0x10048 {
			in.dev.read(magic, p.Start+0x10040)
		}
		switch {
		case string(magic) == "_BHRfS_M":
			fs = "btrfs"
		case allZero(b):
			fs = "empty"
		default:
			fs = "unknown"
		}
	}
	p.Filesystem = fs
	switch fs {
	case "bios_boot", "swap", "vfat", "msr", "empty":
		p.Status = StatusSkipped
	case "lvm2":
		p.Status, p.Reason = StatusNotInspected, "LVM physical volume: omi has no LVM reader"
	case "luks":
		p.Status, p.Reason = StatusNotInspected, "encrypted (LUKS)"
	case "xfs", "btrfs":
		p.Status, p.Reason = StatusNotInspected, fs+": omi has no "+fs+" reader"
	case "unknown":
		p.Status, p.Reason = StatusNotInspected, "unknown filesystem"
	}
}

// isLVM looks for an LVM2 physical volume label in one of the first four
// sectors.
func isLVM(b []byte) bool {
	for s := 0; s < 4; s++ {
		l := b[s*sectorSize:]
		if string(l[0:8]) == "LABELONE" && string(l[24:32]) == "LVM2 001" {
			return true
		}
	}
	return false
}

// extVersion tells ext2, ext3 and ext4 apart the way blkid does: ext4
// features (extents, 64bit, flex_bg, ...) make ext4, a journal makes ext3.
func extVersion(sb []byte) string {
	compat := binary.LittleEndian.Uint32(sb[0x5C:])
	incompat := binary.LittleEndian.Uint32(sb[0x60:])
	roCompat := binary.LittleEndian.Uint32(sb[0x64:])
	const (
		compatHasJournal = 0x4
		incompatExt3     = 0x2 | 0x4 | 0x10 // filetype, recover, meta_bg
		roCompatExt3     = 0x1 | 0x2 | 0x4  // sparse_super, large_file, btree_dir
	)
	switch {
	case incompat&^incompatExt3 != 0 || roCompat&^roCompatExt3 != 0:
		return "ext4"
	case compat&compatHasJournal != 0:
		return "ext3"
	default:
		return "ext2"
	}
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
