package osimage_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omiproject/omi/osimage"
	"github.com/omiproject/omi/osimage/osimagetest"
)

type partition struct {
	Start int64  `json:"start"`
	Size  int64  `json:"size"`
	Type  string `json:"type"`
	Name  string `json:"name"`
	Attrs string `json:"attrs"`
}

func partitions(t *testing.T, raw string) []partition {
	t.Helper()
	out, err := exec.Command("sfdisk", "--json", raw).Output()
	if err != nil {
		t.Fatalf("sfdisk --json: %v", err)
	}
	var pt struct {
		PartitionTable struct {
			Label      string      `json:"label"`
			Partitions []partition `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &pt); err != nil {
		t.Fatal(err)
	}
	if pt.PartitionTable.Label != "gpt" {
		t.Fatalf("partition table %q, want gpt", pt.PartitionTable.Label)
	}
	return pt.PartitionTable.Partitions
}

func rawCopy(t *testing.T, qcow2 string) string {
	t.Helper()
	raw := filepath.Join(t.TempDir(), "disk.raw")
	if out, err := exec.Command("qemu-img", "convert", "-O", "raw", qcow2, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, out)
	}
	return raw
}

// TestSmallLayout checks the built disk without booting it: its qcow2
// header, the GPT, the BIOS boot code, the ESP's boot files (mtools), the
// initramfs content and the root filesystem (e2fsck, debugfs).
func TestSmallLayout(t *testing.T) {
	image := osimagetest.Small(t)
	info, err := exec.Command("qemu-img", "info", "--output=json", image).Output()
	if err != nil {
		t.Fatal(err)
	}
	var qi struct {
		Format      string `json:"format"`
		VirtualSize int64  `json:"virtual-size"`
		ActualSize  int64  `json:"actual-size"`
	}
	json.Unmarshal(info, &qi)
	if qi.Format != "qcow2" || qi.VirtualSize != osimage.DefaultSize {
		t.Fatalf("qemu-img info: %s", info)
	}
	t.Logf("small image: %d bytes of compressed qcow2 for %d virtual", qi.ActualSize, qi.VirtualSize)
	if qi.ActualSize > 40<<20 {
		t.Errorf("the small image takes %d bytes; it should stay near 16 MB", qi.ActualSize)
	}

	raw := rawCopy(t, image)
	parts := partitions(t, raw)
	if len(parts) != 2 {
		t.Fatalf("partitions: %+v", parts)
	}
	esp, root := parts[0], parts[1]
	if esp.Type != "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" || !strings.Contains(esp.Attrs, "LegacyBIOSBootable") {
		t.Errorf("first partition %+v: want an EFI system partition marked LegacyBIOSBootable", esp)
	}
	if root.Type != "0FC63DAF-8483-4772-8E79-3D69D8477DE4" {
		t.Errorf("second partition %+v: want a Linux filesystem", root)
	}
	mbr, err := exec.Command("head", "-c", "512", raw).Output()
	if err != nil || len(mbr) != 512 || mbr[510] != 0x55 || mbr[511] != 0xaa || bytes.Count(mbr[:440], []byte{0}) > 400 {
		t.Errorf("MBR has no boot code and signature: %v", err)
	}

	fat := fmt.Sprintf("%s@@%d", raw, esp.Start*512)
	for dir, names := range map[string][]string{
		"::/":         {"vmlinuz", "initrd.img", "syslinux.cfg", "ldlinux.sys", "ldlinux.c32"},
		"::/EFI/BOOT": {"BOOTX64.EFI", "ldlinux.e64", "syslinux.cfg"},
	} {
		out, err := exec.Command("mdir", "-a", "-b", "-i", fat, dir).CombinedOutput()
		if err != nil {
			t.Fatalf("mdir %s: %v: %s", dir, err, out)
		}
		for _, n := range names {
			if !strings.Contains(strings.ToLower(string(out)), strings.ToLower(n)) {
				t.Errorf("ESP %s lacks %s:\n%s", dir, n, out)
			}
		}
	}
	cfg, err := exec.Command("mtype", "-i", fat, "::/EFI/BOOT/syslinux.cfg").Output()
	if err != nil || !strings.Contains(string(cfg), osimage.KernelCmdline) {
		t.Errorf("EFI syslinux.cfg = %q (%v)", cfg, err)
	}
	initrd, err := exec.Command("mtype", "-i", fat, "::/initrd.img").Output()
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(initrd))
	if err != nil {
		t.Fatalf("initramfs: %v", err)
	}
	cpio, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("initramfs: %v", err)
	}
	for _, name := range []string{"init\x00", "bin/busybox\x00", "lib/modules/virtio_blk.ko\x00", "lib/modules/virtio_net.ko\x00", "lib/modules/button.ko\x00", "etc/modules.order\x00", "TRAILER!!!\x00"} {
		if !bytes.Contains(cpio, []byte(name)) {
			t.Errorf("initramfs lacks %q", strings.TrimSuffix(name, "\x00"))
		}
	}

	fs := fmt.Sprintf("%s?offset=%d", raw, root.Start*512)
	if out, err := exec.Command("e2fsck", "-fn", fs).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck: %v\n%s", err, out)
	}
	label, err := exec.Command("e2label", fs).Output()
	if err != nil || strings.TrimSpace(string(label)) != osimage.RootLabel {
		t.Errorf("root label %q (%v)", label, err)
	}
	for path, want := range map[string]string{
		"/usr/sbin/dropbear":                 "Type: regular    Mode:  0755",
		"/usr/bin/scp":                       "Type: regular    Mode:  0755",
		"/usr/lib/openssh/sftp-server":       "Type: regular    Mode:  0755",
		"/usr/lib/sftp-server":               "Type: symlink",
		"/bin/busybox":                       "Type: regular    Mode:  0755",
		"/sbin/init":                         "Type: symlink",
		"/sbin/sfdisk":                       "Type: regular    Mode:  0755",
		"/sbin/partx":                        "Type: regular    Mode:  0755",
		"/sbin/resize2fs":                    "Type: regular    Mode:  0755",
		"/sbin/omi-init":                     "Type: regular    Mode:  0755",
		"/etc/acpi/PWRF/00000080":            "Type: regular    Mode:  0755",
		"/lib/x86_64-linux-gnu/libgmp.so.10": "Type: regular",
		"/lib/x86_64-linux-gnu/libc.so.6":    "Type: regular",
		"/lib64/ld-linux-x86-64.so.2":        "Type: symlink",
		"/etc/shadow":                        "Mode:  0600",
		"/home/outscale":                     "User:  1000   Group:  1000",
		"/root":                              "User:     0   Group:     0",
	} {
		out, err := exec.Command("debugfs", "-R", "stat "+path, fs).CombinedOutput()
		if err != nil || !strings.Contains(strings.Join(strings.Fields(string(out)), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("%s: want %q in:\n%s", path, want, out)
		}
	}
	shadow, _ := exec.Command("debugfs", "-R", "cat /etc/shadow", fs).Output()
	if !strings.HasPrefix(string(shadow), "root:*:") {
		t.Errorf("root's password is not locked: %q", shadow)
	}
}
