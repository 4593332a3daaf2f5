package osimage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Disk geometry shared by the images: a GPT disk with an EFI system
// partition (FAT, syslinux for BIOS and UEFI, the kernel and initramfs)
// and an ext4 root filesystem labelled RootLabel filling the rest.
const (
	// RootLabel is the ext4 label the initramfs looks for.
	RootLabel = "omi-root"
	mib       = 1 << 20
	espStart  = 1 * mib
	espSize   = 63 * mib
	rootStart = espStart + espSize
	// gptTail is kept free at the end for the backup GPT.
	gptTail = 1 * mib

	espType  = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	rootType = "0FC63DAF-8483-4772-8E79-3D69D8477DE4" // Linux filesystem
)

// espFile is a file copied to the EFI system partition.
type espFile struct {
	Dest string // path on the FAT, e.g. /EFI/BOOT/BOOTX64.EFI
	Src  string // host file
	Data []byte // or content
}

// requiredTools are the host programs a build runs.
var requiredTools = []string{"apt-get", "apt-cache", "dpkg-deb", "mkfs.ext4", "debugfs", "mformat", "mcopy", "mmd", "syslinux", "sfdisk", "qemu-img"}

// MissingTools lists the host programs a build needs that are not on PATH
// (Debian packages apt, dpkg, e2fsprogs, mtools, syslinux, fdisk and
// qemu-utils), so tests can skip with a message.
func MissingTools() []string {
	var missing []string
	for _, t := range requiredTools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	return missing
}

// buildESP makes the FAT image of the EFI system partition: syslinux's
// BIOS boot sector and ldlinux.sys (syslinux --install works on a file
// through mtools), and syslinux.efi as the removable-media UEFI loader.
func buildESP(ctx context.Context, path string, files []espFile) error {
	if err := truncate(path, espSize); err != nil {
		return err
	}
	if _, err := run(ctx, "", "mformat", "-i", path, "-v", "OMI-ESP", "-N", "0a1b2c3d", "::"); err != nil {
		return err
	}
	if _, err := run(ctx, "", "syslinux", "--install", path); err != nil {
		return err
	}
	dirs := map[string]bool{}
	sort.Slice(files, func(i, j int) bool { return files[i].Dest < files[j].Dest })
	for _, f := range files {
		// mmd needs each parent directory in turn.
		parts := strings.Split(strings.Trim(filepath.Dir(f.Dest), "/"), "/")
		for i := range parts {
			d := "/" + strings.Join(parts[:i+1], "/")
			if d == "/" || dirs[d] {
				continue
			}
			if _, err := run(ctx, "", "mmd", "-i", path, "::"+d); err != nil {
				return err
			}
			dirs[d] = true
		}
		src := f.Src
		if f.Data != nil {
			tmp, err := os.CreateTemp(filepath.Dir(path), "esp-")
			if err != nil {
				return err
			}
			tmp.Write(f.Data)
			tmp.Close()
			defer os.Remove(tmp.Name())
			src = tmp.Name()
		}
		if _, err := run(ctx, "", "mcopy", "-i", path, src, "::"+f.Dest); err != nil {
			return err
		}
	}
	return nil
}

// buildRoot makes the ext4 root filesystem from a directory with
// mkfs.ext4 -d (no mount, no root). Files a non-root build wrote are
// owned by the builder; ownership is then set to root with debugfs, except
// for the paths in owners (e.g. /home/outscale), which get their own.
func buildRoot(ctx context.Context, path, dir string, size int64, owners map[string][2]int) error {
	if err := truncate(path, size); err != nil {
		return err
	}
	if _, err := run(ctx, "", "mkfs.ext4", "-q", "-F", "-L", RootLabel, "-m", "1", "-E", "root_owner=0:0", "-d", dir, path); err != nil {
		return err
	}
	var script bytes.Buffer
	uid := os.Getuid()
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, dir), "/")
		want := [2]int{0, 0}
		for prefix, o := range owners {
			if rel == prefix || strings.HasPrefix(rel, prefix+"/") {
				want = o
			}
		}
		if uid == 0 && want == [2]int{0, 0} {
			return nil // mkfs.ext4 -d copied root's ownership already
		}
		fmt.Fprintf(&script, "sif \"%s\" uid %d\nsif \"%s\" gid %d\n", rel, want[0], rel, want[1])
		return nil
	})
	if err != nil || script.Len() == 0 {
		return err
	}
	cmd := exec.CommandContext(ctx, "debugfs", "-w", "-f", "-", path)
	cmd.Stdin = &script
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("debugfs (ownership): %w: %s", err, out)
	}
	return nil
}

// assembleDisk writes the partition table, the BIOS boot code (syslinux's
// gptmbr.bin, which boots the partition marked LegacyBIOSBootable) and
// both filesystems into a raw disk of size bytes.
func assembleDisk(ctx context.Context, path string, size int64, gptmbr []byte, espImg, rootImg string) error {
	if err := truncate(path, size); err != nil {
		return err
	}
	rootSize := size - rootStart - gptTail
	table := fmt.Sprintf("label: gpt\nunit: sectors\n\nstart=%d, size=%d, type=%s, name=\"EFI system\", attrs=\"LegacyBIOSBootable\"\nstart=%d, size=%d, type=%s, name=\"root\"\n",
		espStart/512, espSize/512, espType, rootStart/512, rootSize/512, rootType)
	cmd := exec.CommandContext(ctx, "sfdisk", "--no-reread", "--no-tell-kernel", "-q", path)
	cmd.Stdin = strings.NewReader(table)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sfdisk: %w: %s", err, out)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if len(gptmbr) > 440 {
		return fmt.Errorf("gptmbr.bin is %d bytes, more than the 440 of the MBR boot code", len(gptmbr))
	}
	if _, err := f.WriteAt(gptmbr, 0); err != nil {
		return err
	}
	if err := copySparse(f, espImg, espStart); err != nil {
		return err
	}
	if err := copySparse(f, rootImg, rootStart); err != nil {
		return err
	}
	return f.Close()
}

// copySparse copies a file into dst at off, skipping zero chunks (dst
// was created sparse, so they read as zeros already).
func copySparse(dst *os.File, src string, off int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, mib)
	for pos := int64(0); ; {
		n, err := io.ReadFull(f, buf)
		if n > 0 && !allZero(buf[:n]) {
			if _, werr := dst.WriteAt(buf[:n], off+pos); werr != nil {
				return werr
			}
		}
		pos += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func truncate(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// toQcow2 converts the raw disk to compressed qcow2.
func toQcow2(ctx context.Context, raw, out string) error {
	_, err := run(ctx, "", "qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", raw, out)
	return err
}
