// Package catalog generates the disks of omi's official OMIs.
//
// The provider account publishes a small catalogue of public OMIs whose root
// volumes hold real, inspectable content: a GPT disk with one ext4 root
// partition carrying /etc/os-release, /etc/hostname, /etc/passwd, a locked
// root in /etc/shadow and an empty /root/.ssh. omi builds these disks itself,
// in pure Go (go-diskfs), so a fresh install needs no mkfs binaries and no
// download. Disks are small (128 MiB by default) and sparse: only the
// filesystem metadata and the few files are written.
package catalog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"github.com/diskfs/go-diskfs/partition/gpt"
)

// DefaultSize is the virtual size of a generated disk when DiskSpec.SizeBytes
// is zero: large enough for ext4 with a journal, small enough that building
// it takes milliseconds.
const DefaultSize = 128 << 20

// MinSize is the smallest disk BuildDisk accepts. go-diskfs needs a few MiB
// for ext4 metadata and the journal, and the partition starts at 1 MiB.
const MinSize = 16 << 20

// MaxSize bounds the disk: the image is staged in memory before being
// written, and official disks are meant to be small (VMs grow the volume).
const MaxSize = 64 << 30

// partitionStart is where the single partition begins (1 MiB, the usual
// alignment of every partitioning tool).
const partitionStart = 1 << 20

const sector = 512

// File is a file or directory placed in the root filesystem of a generated
// disk. Later entries of DiskSpec.Files replace the defaults BuildDisk writes
// (for instance a test can replace /etc/shadow).
type File struct {
	Path string      // absolute path, e.g. /etc/motd
	Data []byte      // content; ignored for directories
	Mode os.FileMode // permission bits; os.ModeDir makes a directory; 0 means 0644 (0755 for directories)
	UID  int
	GID  int
}

// DiskSpec describes one generated disk.
type DiskSpec struct {
	// SizeBytes is the virtual size of the disk (DefaultSize when zero).
	SizeBytes int64
	// OSRelease is the content of /etc/os-release (Linux disks).
	OSRelease string
	// Hostname is written to /etc/hostname (Linux disks).
	Hostname string
	// Label is the ext4 volume label (Linux) and the GPT partition name.
	Label string
	// Windows makes a Windows-looking disk instead of a Linux one: a GPT
	// disk whose only partition is a "Microsoft basic data" partition
	// starting with an NTFS boot sector. It holds no NTFS metadata beyond
	// that sector (go-diskfs cannot write NTFS), so it is recognisable
	// (by partition type and boot sector signature) but not mountable.
	Windows bool
	// Files are added after the defaults, replacing any default with the
	// same path. Parent directories are created as needed (mode 0755).
	Files []File
}

// ContextWriterAt is a device written with a context, such as a
// *blockmap.Device.
type ContextWriterAt interface {
	WriteAt(ctx context.Context, p []byte, off int64) error
}

// WriterAt adapts a context-taking device (a *blockmap.Device) to
// io.WriterAt so BuildDisk can write a generated disk straight into a volume.
func WriterAt(ctx context.Context, d ContextWriterAt) io.WriterAt {
	return ctxWriter{ctx: ctx, d: d}
}

type ctxWriter struct {
	ctx context.Context
	d   ContextWriterAt
}

func (w ctxWriter) WriteAt(p []byte, off int64) (int, error) {
	if err := w.d.WriteAt(w.ctx, p, off); err != nil {
		return 0, err
	}
	return len(p), nil
}

// BuildDisk generates the disk described by spec and writes it to w.
//
// w must read as zeros wherever BuildDisk does not write (a new sparse file,
// a new volume): only the blocks that hold data are written, so the result
// stays sparse. BuildDisk does not flush w; the caller flushes or syncs it.
func BuildDisk(ctx context.Context, w io.WriterAt, spec DiskSpec) error {
	size := spec.SizeBytes
	if size == 0 {
		size = DefaultSize
	}
	if size < MinSize || size > MaxSize {
		return fmt.Errorf("catalog: disk size %d outside [%d, %d]", size, MinSize, MaxSize)
	}
	if size%sector != 0 {
		return fmt.Errorf("catalog: disk size %d is not a multiple of %d", size, sector)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	img := newMemDisk(size)
	var err error
	if spec.Windows {
		err = buildWindows(img, size, spec)
	} else {
		err = buildLinux(ctx, img, size, spec)
	}
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := img.writeTo(w); err != nil {
		return fmt.Errorf("catalog: write disk: %w", err)
	}
	return nil
}

// writePartitionTable writes a GPT with one partition from partitionStart to
// the last usable sector, and returns the partition's offset and size.
func writePartitionTable(img *memDisk, size int64, typ gpt.Type, name string) (start, length int64, err error) {
	// Primary header + 128 entries take 34 sectors at the start, the backup
	// 33 at the end.
	lastUsable := uint64(size/sector) - 34
	// Keep the partition end on a 1 MiB boundary like partitioning tools do.
	end := (lastUsable+1)/2048*2048 - 1
	first := uint64(partitionStart / sector)
	if end <= first {
		return 0, 0, fmt.Errorf("catalog: disk of %d bytes too small for a partition", size)
	}
	table := &gpt.Table{
		LogicalSectorSize:  sector,
		PhysicalSectorSize: sector,
		ProtectiveMBR:      true,
		Partitions: []*gpt.Partition{{
			Index: 1,
			Start: first,
			End:   end,
			Type:  typ,
			Name:  name,
		}},
	}
	if err := table.Write(img, size); err != nil {
		return 0, 0, fmt.Errorf("catalog: write GPT: %w", err)
	}
	return int64(first) * sector, int64(end-first+1) * sector, nil
}

func buildLinux(ctx context.Context, img *memDisk, size int64, spec DiskSpec) error {
	label := spec.Label
	if label == "" {
		label = "root"
	}
	start, length, err := writePartitionTable(img, size, gpt.LinuxFilesystem, label)
	if err != nil {
		return err
	}
	fs, err := ext4.Create(img, length, start, sector, &ext4.Params{
		SectorsPerBlock: 8, // 4 KiB blocks, as mkfs.ext4 uses for such sizes
		VolumeName:      label,
		Features: []ext4.FeatureOpt{
			// go-diskfs cannot lay out reserved GDT blocks with 4 KiB blocks.
			ext4.WithFeatureReservedGDTBlocksForExpansion(false),
			ext4.WithFeatureMetadataChecksums(true),
		},
	})
	if err != nil {
		return fmt.Errorf("catalog: create ext4: %w", err)
	}
	for _, f := range linuxFiles(spec) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := putFile(fs, f); err != nil {
			return fmt.Errorf("catalog: %s: %w", f.Path, err)
		}
	}
	return nil
}

// linuxFiles returns the defaults merged with spec.Files, parents first.
func linuxFiles(spec DiskSpec) []File {
	hostname := spec.Hostname
	if hostname == "" {
		hostname = "localhost"
	}
	defaults := []File{
		{Path: "/etc", Mode: os.ModeDir | 0o755},
		{Path: "/root", Mode: os.ModeDir | 0o700},
		{Path: "/root/.ssh", Mode: os.ModeDir | 0o700},
		{Path: "/home", Mode: os.ModeDir | 0o755},
		{Path: "/tmp", Mode: os.ModeDir | os.ModeSticky | 0o777},
		{Path: "/etc/os-release", Data: []byte(spec.OSRelease), Mode: 0o644},
		{Path: "/etc/hostname", Data: []byte(hostname + "\n"), Mode: 0o644},
		{Path: "/etc/hosts", Data: []byte("127.0.0.1\tlocalhost\n127.0.1.1\t" + hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"), Mode: 0o644},
		{Path: "/etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/bash\n"), Mode: 0o644},
		{Path: "/etc/group", Data: []byte("root:x:0:\nshadow:x:42:\n"), Mode: 0o644},
		// root locked: '*' never matches a password; cloud-init adds the
		// keypair's key to /root/.ssh/authorized_keys at first boot.
		{Path: "/etc/shadow", Data: []byte("root:*:20000:0:99999:7:::\n"), Mode: 0o640, GID: 42},
		{Path: "/etc/fstab", Data: []byte("LABEL=" + spec.labelOrRoot() + "\t/\text4\tdefaults\t0 1\n"), Mode: 0o644},
	}
	byPath := map[string]File{}
	for _, f := range append(defaults, spec.Files...) {
		f.Path = path.Clean("/" + f.Path)
		byPath[f.Path] = f
	}
	// Create implied parent directories.
	for p := range byPath {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := byPath[d]; !ok {
				byPath[d] = File{Path: d, Mode: os.ModeDir | 0o755}
			}
		}
	}
	out := make([]File, 0, len(byPath))
	for _, f := range byPath {
		out = append(out, f)
	}
	// Parents sort before their children.
	sort.Slice(out, func(i, j int) bool {
		di, dj := strings.Count(out[i].Path, "/"), strings.Count(out[j].Path, "/")
		if di != dj {
			return di < dj
		}
		return out[i].Path < out[j].Path
	})
	return out
}

func (s DiskSpec) labelOrRoot() string {
	if s.Label == "" {
		return "root"
	}
	return s.Label
}

func putFile(fs *ext4.FileSystem, f File) error {
	if f.Path == "/" {
		return errors.New("cannot replace the root directory")
	}
	p := strings.TrimPrefix(f.Path, "/")
	mode := f.Mode
	if f.Mode.IsDir() {
		if mode.Perm() == 0 {
			mode |= 0o755
		}
		if err := fs.Mkdir(p); err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
	} else {
		if mode.Perm() == 0 {
			mode |= 0o644
		}
		fh, err := fs.OpenFile(p, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
		if err != nil {
			return fmt.Errorf("create: %w", err)
		}
		if len(f.Data) > 0 {
			if _, err := fh.Write(f.Data); err != nil {
				fh.Close()
				return fmt.Errorf("write: %w", err)
			}
		}
		if err := fh.Close(); err != nil {
			return fmt.Errorf("close: %w", err)
		}
	}
	if err := fs.Chmod(p, mode&(os.ModePerm|os.ModeSticky|os.ModeSetuid|os.ModeSetgid)); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if f.UID != 0 || f.GID != 0 {
		if err := fs.Chown(p, f.UID, f.GID); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	return nil
}

// buildWindows writes a GPT disk with one "Microsoft basic data" partition
// that starts with an NTFS boot sector. The rest of the partition is empty.
func buildWindows(img *memDisk, size int64, spec DiskSpec) error {
	label := spec.Label
	if label == "" {
		label = "Basic data partition"
	}
	start, length, err := writePartitionTable(img, size, gpt.MicrosoftBasicData, label)
	if err != nil {
		return err
	}
	if _, err := img.WriteAt(ntfsBootSector(start, length), start); err != nil {
		return fmt.Errorf("catalog: write NTFS boot sector: %w", err)
	}
	return nil
}

// ntfsBootSector returns an NTFS boot sector (BIOS parameter block) for a
// volume of length bytes starting at byte start of the disk.
func ntfsBootSector(start, length int64) []byte {
	b := make([]byte, sector)
	copy(b[0:3], []byte{0xEB, 0x52, 0x90})                      // jump over the BPB
	copy(b[3:11], "NTFS    ")                                   // OEM ID: what identifies NTFS
	binary.LittleEndian.PutUint16(b[11:], sector)               // bytes per sector
	b[13] = 8                                                   // sectors per cluster (4 KiB clusters)
	b[21] = 0xF8                                                // media descriptor: fixed disk
	binary.LittleEndian.PutUint16(b[24:], 63)                   // sectors per track
	binary.LittleEndian.PutUint16(b[26:], 255)                  // heads
	binary.LittleEndian.PutUint32(b[28:], uint32(start/sector)) // hidden sectors
	b[36] = 0x80                                                // drive number
	b[38] = 0x80                                                // extended boot signature (NTFS)
	sectors := length/sector - 1                                // the backup boot sector is excluded
	binary.LittleEndian.PutUint64(b[40:], uint64(sectors))
	binary.LittleEndian.PutUint64(b[48:], 4)                   // $MFT cluster
	binary.LittleEndian.PutUint64(b[56:], uint64(sectors/8/2)) // $MFTMirr cluster
	b[64] = 0xF6                                               // MFT record: 2^10 = 1024 bytes
	b[68] = 1                                                  // clusters per index block
	binary.LittleEndian.PutUint64(b[72:], 0x1F2E3D4C5B6A7988)  // volume serial
	b[510], b[511] = 0x55, 0xAA
	return b
}
