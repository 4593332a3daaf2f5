// Package inspect reads the root volume of an OMI and reports what a user
// should know before launching VMs from it: SSH keys that would let the
// image's author log in, a usable root password, SSH host private keys shared
// by every VM, and for Windows whether the image was generalised.
//
// The OUTSCALE user guide warns that non-official OMIs "can already have a
// root password or an embedded SSH" key and asks users to check
// /root/.ssh/authorized_keys by hand; omi does it for them when an OMI
// becomes available.
//
// Inspection reads only the blocks it needs (partition tables, filesystem
// superblocks, a few inodes and directories, a few small files), so a
// 10 GiB volume costs a few hundred KiB of reads. A disk it cannot read
// (LVM, encryption, an unknown filesystem, NTFS) is reported as not
// inspected with a reason, never as clean.
//
// What is read: GPT (with its backup header) or MBR including logical
// partitions, or a filesystem directly on the disk, with 512-byte sectors;
// ext4 with metadata_csum through go-diskfs (the mke2fs default since
// 2016). ext2, ext3 and older ext4, XFS, Btrfs, LVM, LUKS and NTFS are
// recognised by their signatures and reported as not inspected.
package inspect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Finding kinds.
const (
	// KindAuthorizedKey is a public key in an authorized_keys file: whoever
	// holds the private key can log in to every VM launched from the OMI.
	KindAuthorizedKey = "authorized_key"
	// KindRootPassword is a usable (not locked) password for root in
	// /etc/shadow or /etc/passwd, including an empty one.
	KindRootPassword = "root_password"
	// KindHostPrivateKey is an SSH host private key: every VM launched
	// from the OMI shares it, so one can impersonate the others.
	KindHostPrivateKey = "host_private_key"
)

// Partition statuses.
const (
	// StatusInspected: the filesystem was read.
	StatusInspected = "inspected"
	// StatusSkipped: nothing to inspect there (BIOS boot, swap, EFI system
	// partition, an unformatted partition, an extended MBR container).
	StatusSkipped = "skipped"
	// StatusNotInspected: the partition may hold data omi cannot read.
	StatusNotInspected = "not_inspected"
)

// Options tunes an inspection. The zero value is ready to use.
type Options struct {
	// MaxFileSize bounds how much of one file is read (default 1 MiB):
	// authorized_keys and shadow files are small, and a hostile image
	// must not make omi read gigabytes.
	MaxFileSize int64
	// MaxHomes bounds how many home directories are looked at (default 1000).
	MaxHomes int
}

func (o Options) withDefaults() Options {
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = 1 << 20
	}
	if o.MaxHomes <= 0 {
		o.MaxHomes = 1000
	}
	return o
}

// Report is the result of inspecting one disk. It is JSON-serialisable and
// meant to be stored as is.
type Report struct {
	// Inspected is true when a root filesystem was found and read.
	Inspected bool `json:"Inspected"`
	// Reason explains why the disk, or part of it, was not inspected.
	Reason string `json:"Reason,omitempty"`
	// Table is the partition table found: "gpt", "mbr" or "none" (a
	// filesystem directly on the disk), or "" when unreadable.
	Table      string      `json:"Table,omitempty"`
	Partitions []Partition `json:"Partitions"`
	// Windows is true when the disk holds an NTFS volume.
	Windows bool `json:"Windows,omitempty"`
	// OS is read from /etc/os-release of the root filesystem.
	OS *OS `json:"OS,omitempty"`
	// RootPassword says what /etc/shadow holds for root (a locked
	// password, no password, a usable hash and its scheme, ...).
	RootPassword string    `json:"RootPassword,omitempty"`
	Findings     []Finding `json:"Findings"`
}

// Partition describes one partition (or the whole disk when Table is "none").
type Partition struct {
	Index int    `json:"Index"`          // 1-based; 0 for a filesystem on the whole disk
	Start int64  `json:"Start"`          // bytes from the start of the disk
	Size  int64  `json:"Size"`           // bytes
	Type  string `json:"Type,omitempty"` // GPT type GUID or MBR type (0x83)
	Name  string `json:"Name,omitempty"` // GPT partition name
	// Filesystem is what the first blocks hold: ext2, ext3, ext4, xfs,
	// btrfs, ntfs, vfat, swap, lvm2, luks, bios_boot, empty or unknown.
	Filesystem string `json:"Filesystem"`
	Status     string `json:"Status"`
	// Root is true for the filesystem holding /etc.
	Root   bool   `json:"Root,omitempty"`
	Reason string `json:"Reason,omitempty"`
}

// OS identifies the operating system from /etc/os-release.
type OS struct {
	ID         string `json:"ID"`
	VersionID  string `json:"VersionID,omitempty"`
	PrettyName string `json:"PrettyName,omitempty"`
}

// Finding is one thing the user should know about.
type Finding struct {
	Kind string `json:"Kind"`
	// Path is the file in the root filesystem; on another partition it is
	// prefixed with "partition N:".
	Path string `json:"Path"`
	// Detail says what was found (key type and comment, hash scheme, ...).
	Detail string `json:"Detail"`
	// Fingerprint is the key's SHA256 fingerprint as ssh-keygen -l prints
	// it ("SHA256:" and unpadded base64), when the finding is a key.
	Fingerprint string `json:"Fingerprint,omitempty"`
	KeyType     string `json:"KeyType,omitempty"`
	Bits        int    `json:"Bits,omitempty"`
	Comment     string `json:"Comment,omitempty"`
	Partition   int    `json:"Partition"`
}

// Clean reports whether the disk was inspected completely and nothing was
// found. A disk with a partition omi could not read is not clean even when
// its root filesystem is.
func (r *Report) Clean() bool {
	if r == nil || !r.Inspected || len(r.Findings) > 0 {
		return false
	}
	for _, p := range r.Partitions {
		if p.Status == StatusNotInspected {
			return false
		}
	}
	return true
}

// Inspect reads the disk of size bytes through disk and reports what it
// finds. It returns an error only when reading fails (the disk's backing
// store, the context): a disk whose content cannot be understood gives a
// report with Inspected false and a Reason.
func Inspect(ctx context.Context, disk io.ReaderAt, size int64, opts Options) (*Report, error) {
	if disk == nil {
		return nil, errors.New("inspect: nil disk")
	}
	if size < 0 {
		return nil, fmt.Errorf("inspect: negative disk size %d", size)
	}
	in := &inspector{
		ctx:  ctx,
		opts: opts.withDefaults(),
		dev:  &device{ctx: ctx, r: disk, size: size},
		rep:  &Report{Partitions: []Partition{}, Findings: []Finding{}},
	}
	in.run()
	if in.dev.err != nil {
		return nil, fmt.Errorf("inspect: read disk: %w", in.dev.err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	return in.rep, nil
}

type inspector struct {
	ctx  context.Context
	opts Options
	dev  *device
	rep  *Report
}

func (in *inspector) run() {
	parts, table, reason := in.partitions()
	in.rep.Table = table
	if reason != "" {
		in.rep.Reason = reason
		return
	}
	var roots int
	for i := range parts {
		if in.ctx.Err() != nil || in.dev.err != nil {
			return
		}
		p := &parts[i]
		in.probe(p)
		if p.Filesystem == "ntfs" {
			in.rep.Windows = true
		}
		if p.Status == "" && isExt(p.Filesystem) {
			if in.inspectExt(p) {
				roots++
			}
		}
		if p.Filesystem == "ntfs" && p.Status == "" {
			p.Status = StatusNotInspected
			p.Reason = "NTFS volume: omi has no NTFS reader, so keys, passwords and sysprep state are unknown"
		}
		if p.Status == "" {
			p.Status = StatusNotInspected
			if p.Reason == "" {
				p.Reason = p.Filesystem + ": filesystem not readable"
			}
		}
	}
	in.rep.Partitions = parts
	in.rep.Inspected = roots > 0
	var why []string
	for _, p := range parts {
		if p.Status == StatusNotInspected {
			why = append(why, fmt.Sprintf("partition %d: %s", p.Index, p.Reason))
		}
	}
	switch {
	case roots == 0 && in.rep.Windows:
		in.rep.Reason = "windows: not inspected"
		if len(why) > 0 {
			in.rep.Reason += " (" + strings.Join(why, "; ") + ")"
		}
	case roots == 0 && len(why) > 0:
		in.rep.Reason = "no readable root filesystem: " + strings.Join(why, "; ")
	case roots == 0:
		in.rep.Reason = "no root filesystem found"
	case len(why) > 0:
		in.rep.Reason = strings.Join(why, "; ")
	}
}

func isExt(fs string) bool { return fs == "ext2" || fs == "ext3" || fs == "ext4" }
