package inspect_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omiproject/omi/inspect"
)

// rootTree lays out a root filesystem the way distributions do, with the
// traps a reader must survive: /etc/os-release as a relative symlink
// (Debian, Ubuntu), a large /etc (several directory blocks, hashed with
// dir_index), keys reached through an absolute symlink, a home outside
// /home found through /etc/passwd, and a symlink loop.
func rootTree(t *testing.T, key1, key2, key3 string) string {
	dir := filepath.Join(t.TempDir(), "root")
	writeFile(t, filepath.Join(dir, "usr/lib/os-release"), []byte("ID=ubuntu\nVERSION_ID=\"24.04\"\nPRETTY_NAME=\"Ubuntu 24.04.3 LTS\"\n"), 0o644)
	symlink(t, "../usr/lib/os-release", filepath.Join(dir, "etc/os-release"))
	for i := 0; i < 400; i++ {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("etc/conf.d/file-with-a-long-name-%04d.conf", i)), []byte("x\n"), 0o644)
		writeFile(t, filepath.Join(dir, fmt.Sprintf("etc/filler-with-a-long-name-%04d", i)), []byte("x\n"), 0o644)
	}
	writeFile(t, filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/bash\nbob:x:1001:1001::/srv/bob:/bin/bash\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n"), 0o644)
	writeFile(t, filepath.Join(dir, "etc/shadow"), []byte("root:!:20000:0:99999:7:::\nbob:$y$j9T$x$y:20000::::::\n"), 0o640)
	writeFile(t, filepath.Join(dir, "root/.ssh/authorized_keys"), []byte(key1+"\n"), 0o600)
	symlink(t, "authorized_keys2", filepath.Join(dir, "root/.ssh/authorized_keys2")) // loop
	writeFile(t, filepath.Join(dir, "srv/bob/.ssh/authorized_keys"), []byte(key2+"\n"), 0o600)
	writeFile(t, filepath.Join(dir, "etc/keys/carol"), []byte(key3+"\n"), 0o644)
	if err := os.MkdirAll(filepath.Join(dir, "home/carol/.ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	symlink(t, "/etc/keys/carol", filepath.Join(dir, "home/carol/.ssh/authorized_keys"))
	symlink(t, "/home/dave/.ssh", filepath.Join(dir, "home/dave/.ssh")) // points at itself
	return dir
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// TestInspect_E2fsprogsDisks inspects filesystems made by mke2fs (ext2,
// ext3, ext4) in GPT, MBR and table-less disks.
func TestInspect_E2fsprogsDisks(t *testing.T) {
	mkfs := needTool(t, "mke2fs")
	sgdisk := needTool(t, "sgdisk")
	sfdisk := needTool(t, "sfdisk")
	dir := t.TempDir()
	_, k1 := keygen(t, dir, "ed25519", 0, "root-key")
	_, k2 := keygen(t, dir, "ecdsa", 256, "bob-key")
	_, k3 := keygen(t, dir, "ed25519", 0, "carol-key")
	tree := rootTree(t, k1, k2, k3)
	const fsSize = 48 << 20

	for _, c := range []struct {
		name, fs, table string
		opts            []string
		unreadable      bool // go-diskfs reads only ext4 with metadata_csum
	}{
		{"ext4-gpt", "ext4", "gpt", nil, false},
		{"ext4-mbr", "ext4", "mbr", nil, false},
		{"ext4-whole-disk", "ext4", "none", nil, false},
		{"ext4-no-metadata-csum", "ext4", "gpt", []string{"-O", "^metadata_csum"}, true},
		{"ext3-mbr", "ext3", "mbr", nil, true},
		{"ext2-gpt", "ext2", "gpt", nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			disk := sparseFile(t, 64<<20)
			offset := int64(1 << 20)
			switch c.table {
			case "gpt":
				run(t, sgdisk, "-n", "1:2048:+48M", "-t", "1:8300", disk)
			case "mbr":
				cmd := fmt.Sprintf("echo 'start=2048, size=%d, type=83' | %s -q %s", fsSize/512, sfdisk, disk)
				run(t, "sh", "-c", cmd)
			case "none":
				offset = 0
			}
			args := append([]string{"-q", "-F", "-t", c.fs, "-d", tree, "-E", fmt.Sprintf("offset=%d", offset)}, c.opts...)
			run(t, mkfs, append(args, disk, fmt.Sprintf("%dk", fsSize>>10))...)

			rep := inspectPath(t, disk)
			if c.unreadable {
				if rep.Inspected || rep.Clean() || len(rep.Partitions) != 1 || rep.Partitions[0].Filesystem != c.fs ||
					!strings.Contains(rep.Reason, "without metadata_csum") {
					t.Fatalf("report: %+v", rep)
				}
				return
			}
			if !rep.Inspected || rep.Table != c.table || len(rep.Partitions) != 1 || rep.Partitions[0].Filesystem != c.fs {
				t.Fatalf("report: %+v", rep)
			}
			if rep.OS == nil || rep.OS.ID != "ubuntu" || rep.OS.VersionID != "24.04" {
				t.Errorf("OS = %+v", rep.OS)
			}
			var got []string
			for _, f := range rep.Findings {
				got = append(got, f.Kind+" "+f.Path+" "+f.Comment)
			}
			want := []string{
				"authorized_key /root/.ssh/authorized_keys root-key",
				"authorized_key /srv/bob/.ssh/authorized_keys bob-key",
				"authorized_key /home/carol/.ssh/authorized_keys carol-key",
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if !strings.Contains(rep.RootPassword, "locked") {
				t.Errorf("RootPassword = %q", rep.RootPassword)
			}
		})
	}
}

// A /boot partition next to an LVM root is not inspected (and says why);
// an ext4 root next to a LUKS data partition is inspected but not clean;
// keys on a separate /home partition are found.
func TestInspect_MultiplePartitions(t *testing.T) {
	mkfs := needTool(t, "mke2fs")
	sgdisk := needTool(t, "sgdisk")
	dir := t.TempDir()
	_, k1 := keygen(t, dir, "ed25519", 0, "home-key")
	boot := filepath.Join(dir, "boot")
	writeFile(t, filepath.Join(boot, "grub/grub.cfg"), []byte("set root=(lvm/vg0-root)\n"), 0o644)
	root := filepath.Join(dir, "root")
	writeFile(t, filepath.Join(root, "etc/os-release"), []byte("ID=rocky\nVERSION_ID=\"9.6\"\n"), 0o644)
	writeFile(t, filepath.Join(root, "etc/shadow"), []byte("root:*:1::::::\n"), 0o640)
	home := filepath.Join(dir, "home")
	writeFile(t, filepath.Join(home, "erin/.ssh/authorized_keys"), []byte(k1+"\n"), 0o600)

	mk := func(t *testing.T, disk, tree string, startMiB int) {
		run(t, mkfs, "-q", "-F", "-t", "ext4", "-d", tree, "-E", fmt.Sprintf("offset=%d", startMiB<<20), disk, "16M")
	}
	t.Run("boot+lvm", func(t *testing.T) {
		disk := sparseFile(t, 64<<20)
		run(t, sgdisk, "-n", "1:2048:+16M", "-t", "1:8300", "-n", "2:0:+16M", "-t", "2:8e00", disk)
		mk(t, disk, boot, 1)
		writeAt(t, disk, lvmLabel(), 17<<20)
		rep := inspectPath(t, disk)
		if rep.Inspected || rep.Clean() || !strings.Contains(rep.Reason, "partition 2: LVM") {
			t.Fatalf("report: %+v", rep)
		}
		if rep.Partitions[0].Status != inspect.StatusInspected || rep.Partitions[0].Root {
			t.Errorf("boot partition: %+v", rep.Partitions[0])
		}
	})
	t.Run("root+home+luks", func(t *testing.T) {
		disk := sparseFile(t, 64<<20)
		run(t, sgdisk, "-n", "1:2048:+16M", "-n", "2:0:+16M", "-n", "3:0:+16M", disk)
		mk(t, disk, root, 1)
		mk(t, disk, home, 17)
		writeAt(t, disk, []byte("LUKS\xba\xbe\x00\x02"), 33<<20)
		rep := inspectPath(t, disk)
		if !rep.Inspected || rep.Clean() || !strings.Contains(rep.Reason, "partition 3: encrypted") {
			t.Fatalf("report: %+v", rep)
		}
		if len(rep.Findings) != 1 || rep.Findings[0].Path != "partition 2:/erin/.ssh/authorized_keys" || rep.Findings[0].Comment != "home-key" {
			t.Errorf("findings: %+v", rep.Findings)
		}
		if rep.OS == nil || rep.OS.ID != "rocky" {
			t.Errorf("OS = %+v", rep.OS)
		}
	})
}
