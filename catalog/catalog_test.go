package catalog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/omiproject/omi/catalog"
	"github.com/omiproject/omi/inspect"
)

// needTool returns the path of an external tool, skipping the test when it
// is missing (failing under CI=true, where it must be installed).
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(dir, name); fileExists(p) {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not installed (Debian packages: e2fsprogs gdisk fdisk openssh-client)", name)
	}
	t.Skipf("%s not installed", name)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// mustBuild builds spec into a new sparse file and returns its path.
func mustBuild(t testing.TB, spec catalog.DiskSpec) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := spec.SizeBytes
	if size == 0 {
		size = catalog.DefaultSize
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := catalog.BuildDisk(context.Background(), f, spec); err != nil {
		t.Fatalf("BuildDisk: %v", err)
	}
	return p
}

// extractPartition copies the first partition (which BuildDisk places at
// 1 MiB) to its own file for e2fsprogs tools.
func extractPartition(t testing.TB, disk string, start, size int64) string {
	t.Helper()
	src, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p := filepath.Join(t.TempDir(), "part.img")
	dst, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := io.Copy(dst, io.NewSectionReader(src, start, size)); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestBuildDisk_Presets(t *testing.T) {
	sgdisk := needTool(t, "sgdisk")
	e2fsck := needTool(t, "e2fsck")
	debugfs := needTool(t, "debugfs")
	for _, preset := range catalog.Presets() {
		t.Run(preset.Name, func(t *testing.T) {
			disk := mustBuild(t, preset.Spec)

			// The partition table is a valid GPT with one partition of
			// the expected type at 1 MiB.
			if out := run(t, sgdisk, "-v", disk); !strings.Contains(out, "No problems found") {
				t.Fatalf("sgdisk -v: %s", out)
			}
			out := run(t, sgdisk, "-i", "1", disk)
			wantType := "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
			if preset.Platform == "windows" {
				wantType = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
			}
			if !strings.Contains(out, wantType) || !strings.Contains(out, "First sector: 2048 ") {
				t.Fatalf("sgdisk -i 1: want type %s at sector 2048:\n%s", wantType, out)
			}

			// The image is sparse: only metadata and a few files.
			fi, err := os.Stat(disk)
			if err != nil {
				t.Fatal(err)
			}
			if used := fi.Sys().(*syscall.Stat_t).Blocks * 512; used > 2<<20 {
				t.Errorf("disk uses %d bytes on the host, want < 2 MiB", used)
			}

			rep := inspectFile(t, disk)
			if preset.Platform == "windows" {
				if rep.Inspected || !rep.Windows || rep.Clean() || rep.Partitions[0].Filesystem != "ntfs" {
					t.Fatalf("windows disk report: %+v", rep)
				}
				return
			}

			var start, size int64
			for _, l := range strings.Split(out, "\n") {
				var a, b int64
				if n, _ := fmt.Sscanf(l, "First sector: %d", &a); n == 1 {
					start = a * 512
				}
				if n, _ := fmt.Sscanf(l, "Last sector: %d", &b); n == 1 {
					size = (b+1)*512 - start
				}
			}
			part := extractPartition(t, disk, start, size)
			run(t, e2fsck, "-fn", part)

			cat := func(p string) string { return run(t, debugfs, "-R", "cat "+p, part) }
			if got := cat("/etc/os-release"); !strings.Contains(got, preset.Spec.OSRelease) {
				t.Errorf("/etc/os-release = %q, want %q", got, preset.Spec.OSRelease)
			}
			if got := cat("/etc/hostname"); !strings.Contains(got, preset.Spec.Hostname+"\n") {
				t.Errorf("/etc/hostname = %q", got)
			}
			if got := cat("/etc/shadow"); !strings.Contains(got, "root:*:") {
				t.Errorf("/etc/shadow = %q, want root locked", got)
			}
			if got := run(t, debugfs, "-R", "stat /root/.ssh", part); !strings.Contains(got, "Type: directory    Mode:  0700") {
				t.Errorf("/root/.ssh: %s", got)
			}
			if got := run(t, debugfs, "-R", "ls /root/.ssh", part); strings.Contains(got, "authorized_keys") {
				t.Errorf("/root/.ssh not empty: %s", got)
			}

			if !rep.Clean() || rep.OS == nil {
				t.Fatalf("official disk not clean: %+v", rep)
			}
			kv := inspect.ParseOSRelease(preset.Spec.OSRelease)
			if rep.OS.ID != kv["ID"] || rep.OS.VersionID != kv["VERSION_ID"] || rep.OS.PrettyName != kv["PRETTY_NAME"] || rep.OS.ID == "" {
				t.Errorf("OS = %+v, want %v", rep.OS, kv)
			}
		})
	}
}

func inspectFile(t testing.TB, p string) *inspect.Report {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := inspect.Inspect(context.Background(), f, fi.Size(), inspect.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestBuildDisk_Files(t *testing.T) {
	debugfs := needTool(t, "debugfs")
	spec := catalog.DiskSpec{
		OSRelease: "ID=test\n",
		Files: []catalog.File{
			{Path: "/etc/shadow", Data: []byte("root:!:20000::::::\n"), Mode: 0o600},
			{Path: "/opt/app/deep/config.txt", Data: bytes.Repeat([]byte("x"), 10000)},
			{Path: "/var/empty", Mode: os.ModeDir | 0o711},
		},
	}
	part := extractPartition(t, mustBuild(t, spec), 1<<20, catalog.DefaultSize-2<<20)
	if got := run(t, debugfs, "-R", "cat /etc/shadow", part); !strings.Contains(got, "root:!:20000") {
		t.Errorf("replaced /etc/shadow = %q", got)
	}
	if got := run(t, debugfs, "-R", "cat /opt/app/deep/config.txt", part); strings.Count(got, "x") != 10000 {
		t.Errorf("/opt/app/deep/config.txt has %d bytes of content", strings.Count(got, "x"))
	}
	if got := run(t, debugfs, "-R", "stat /var/empty", part); !strings.Contains(got, "Mode:  0711") {
		t.Errorf("/var/empty: %s", got)
	}
	if got := run(t, debugfs, "-R", "stat /etc/shadow", part); !strings.Contains(got, "Mode:  0600") {
		t.Errorf("/etc/shadow: %s", got)
	}
}

func TestBuildDisk_Errors(t *testing.T) {
	ctx := context.Background()
	var w discard
	for _, size := range []int64{1 << 20, catalog.MinSize - 512, catalog.MaxSize + 512, catalog.DefaultSize + 1} {
		if err := catalog.BuildDisk(ctx, w, catalog.DiskSpec{SizeBytes: size}); err == nil {
			t.Errorf("size %d accepted", size)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := catalog.BuildDisk(cctx, w, catalog.DiskSpec{}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: err = %v", err)
	}
	if err := catalog.BuildDisk(ctx, failWriter{}, catalog.DiskSpec{}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("failing writer: err = %v", err)
	}
	if err := catalog.BuildDisk(ctx, w, catalog.DiskSpec{Files: []catalog.File{{Path: "/"}}}); err == nil {
		t.Errorf("replacing / accepted")
	}
	if _, err := catalog.LookupPreset("Debian-12"); err != nil {
		t.Error(err)
	}
	if _, err := catalog.LookupPreset("Slackware-1"); err == nil {
		t.Error("unknown preset found")
	}
}

type discard struct{}

func (discard) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }

type failWriter struct{}

func (failWriter) WriteAt(p []byte, off int64) (int, error) { return 0, errors.New("disk full") }
