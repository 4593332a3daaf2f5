package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/omiproject/omi/osimage"
	"github.com/omiproject/omi/osimage/osimagetest"
	"github.com/omiproject/omi/service"
)

type builtImageOut struct {
	ImageId, ImageName, Description, State, AccountId string
	BootModes                                         []string
	PermissionsToLaunch                               struct{ GlobalPermission bool }
	BlockDeviceMappings                               []struct{ Bsu struct{ SnapshotId string } }
}

func readImages(t *testing.T, p *proc, filters map[string]any) []builtImageOut {
	t.Helper()
	var out struct{ Images []builtImageOut }
	p.call(t, "ReadImages", map[string]any{"Filters": filters}, &out)
	return out.Images
}

// rootMatches starts a VM from an OMI and compares its root volume, read
// over omi's NBD server, with an image file (qemu-img compare: the same
// bytes, whatever the formats).
func rootMatches(t *testing.T, p *proc, imageID, file string) {
	t.Helper()
	var vms struct {
		Vms []struct {
			BlockDeviceMappings []struct{ Bsu struct{ VolumeId string } }
		}
	}
	p.call(t, "CreateVms", map[string]any{"ImageId": imageID}, &vms)
	vol := vms.Vms[0].BlockDeviceMappings[0].Bsu.VolumeId
	waitState(t, p, "ReadVolumes", vol, "in-use")
	out, err := exec.Command("qemu-img", "compare", "-f", "raw", "nbd://"+p.nbd+"/"+vol, file).CombinedOutput()
	if err != nil {
		t.Fatalf("root volume of a VM from %s differs from %s: %v\n%s", imageID, file, err, out)
	}
}

// TestBuiltOfficialImages publishes the built small image as an official
// OMI (boot modes legacy and uefi, the generated catalogue beside it),
// does not publish it again on restart, and imports image files with omi
// image import for an account (qcow2) and as official (raw).
func TestBuiltOfficialImages(t *testing.T) {
	needTool(t, "qemu-img")
	small := osimagetest.Small(t)
	bin := buildOmi(t)
	data := t.TempDir()
	// omi image build finds the image osimagetest built in the same cache
	// and copies it where omi serve looks: <data>/images/small.qcow2.
	out, err := exec.Command(bin, "image", "build", "small", "--data", data, "--cache", osimage.DefaultCacheDir()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "built small: "+filepath.Join(data, "images", "small.qcow2")) {
		t.Fatalf("omi image build small: %v\n%s", err, out)
	}
	if cmp, err := exec.Command("cmp", small, filepath.Join(data, "images", "small.qcow2")).CombinedOutput(); err != nil {
		t.Fatalf("omi image build wrote another file than the cached image: %v %s", err, cmp)
	}
	if _, err := osimage.ReadManifest(filepath.Join(data, "images", "small.qcow2")); err != nil {
		t.Fatal(err)
	}
	p := startOmi(t, bin, data)
	id := waitOfficial(t, p, osimage.SmallFamily+"-")
	imgs := readImages(t, p, map[string]any{"ImageIds": []string{id}})
	img := imgs[0]
	if !slices.Equal(img.BootModes, []string{"legacy", "uefi"}) || !img.PermissionsToLaunch.GlobalPermission ||
		!strings.Contains(img.Description, "busybox") {
		t.Fatalf("official small OMI: %+v", img)
	}
	waitOfficial(t, p, "Debian-12-") // the generated catalogue is still published
	rootMatches(t, p, id, small)
	// Its hygiene inspection is clean: no SSH keys, no root password, no
	// host keys in the published disk.
	for i := 0; ; i++ {
		var out struct {
			ImageInspection struct {
				State  string
				Clean  bool
				Report json.RawMessage
			}
		}
		p.call(t, "ReadImageInspection", map[string]any{"ImageId": id}, &out)
		if out.ImageInspection.State == "done" {
			if !out.ImageInspection.Clean {
				t.Errorf("the small official OMI is not clean: %s", out.ImageInspection.Report)
			}
			t.Logf("inspection: %s", out.ImageInspection.Report)
			break
		}
		if i == 300 {
			t.Fatalf("inspection still %s", out.ImageInspection.State)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A restart with the same file (here through --official-images and
	// symbolic links into the cache) publishes nothing new.
	p.cmd.Process.Signal(os.Interrupt)
	p.cmd.Wait()
	p = launch(t, bin, nil, "", nil, "--data", data, "--official-images", osimagetest.OfficialImagesDir(t))
	waitOfficial(t, p, "RockyLinux-9-")
	if got := readImages(t, p, map[string]any{"ImageNames": []string{osimage.SmallFamily + "-*"}}); len(got) != 1 || got[0].ImageId != id {
		t.Fatalf("after a restart: %+v, want only %s", got, id)
	}

	// omi image import refuses while omi serve runs, then imports.
	imp := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"image", "import"}, append(args, "--data", data,
			"--config", filepath.Join(repoRoot(), "examples", "accounts.yaml"))...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := imp(small, "--name", "mine", "--account", "123456789012"); err == nil || !strings.Contains(out, "in use") {
		t.Fatalf("import while serving: %v\n%s", err, out)
	}
	p.cmd.Process.Signal(os.Interrupt)
	p.cmd.Wait()
	imported, err := imp(small, "--name", "mine", "--account", "123456789012", "--boot-modes", "uefi")
	if err != nil || !strings.Contains(imported, "imported") {
		t.Fatalf("omi image import: %v\n%s", err, imported)
	}
	if out, err := imp(small, "--name", "mine", "--account", "123456789012"); err == nil || !strings.Contains(out, "already exists") {
		t.Fatalf("import under a taken name: %v\n%s", err, out)
	}
	if out, err := imp(small, "--name", "x", "--boot-modes", "bios"); err == nil || !strings.Contains(out, "legacy or uefi") {
		t.Fatalf("import with a bad boot mode: %v\n%s", err, out)
	}
	raw := filepath.Join(t.TempDir(), "small.raw")
	if out, err := exec.Command("qemu-img", "convert", "-O", "raw", small, raw).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := imp(raw, "--name", "Raw-Linux", "--description", "from a raw file"); err != nil {
		t.Fatalf("omi image import (raw, official): %v\n%s", err, out)
	}
	p = startOmi(t, bin, data)
	mine := readImages(t, p, map[string]any{"ImageNames": []string{"mine"}})
	if len(mine) != 1 || mine[0].AccountId != "123456789012" || mine[0].PermissionsToLaunch.GlobalPermission ||
		!slices.Equal(mine[0].BootModes, []string{"uefi"}) || mine[0].State != "available" {
		t.Fatalf("imported OMI of joe: %+v", mine)
	}
	rootMatches(t, p, mine[0].ImageId, small)
	official := readImages(t, p, map[string]any{"ImageNames": []string{"Raw-Linux"}})
	if len(official) != 1 || !official[0].PermissionsToLaunch.GlobalPermission || official[0].Description != "from a raw file" {
		t.Fatalf("imported official OMI: %+v", official)
	}
	rootMatches(t, p, official[0].ImageId, raw)
}

// TestPublishBuiltVersions drives publishBuilt directly: an image file
// with a manifest is published once, not again while it is unchanged, and
// as a new version superseding the previous one when it changes; files
// without a manifest are ignored.
func TestPublishBuiltVersions(t *testing.T) {
	ctx := t.Context()
	n, err := openOffline(ctx, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if got := n.publishBuilt(ctx, dir, log); len(got) != 0 {
		t.Fatalf("empty directory covers %v", got)
	}
	disk := filepath.Join(dir, "test.raw")
	write := func(b byte) {
		if err := os.WriteFile(disk, bytes.Repeat([]byte{b}, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(1)
	os.WriteFile(filepath.Join(dir, "stray.qcow2"), []byte("no manifest"), 0o644)
	m := `{"Family": "Test-Linux", "Description": "test", "BootModes": ["legacy", "uefi"]}`
	if err := os.WriteFile(osimage.ManifestPath(disk), []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	covered := n.publishBuilt(ctx, dir, log)
	if !covered["Test-Linux"] || len(covered) != 1 {
		t.Fatalf("covered %v", covered)
	}
	first, err := n.svc.LatestOfficial(ctx, "Test-Linux")
	if err != nil || first == nil {
		t.Fatalf("published: %v %v", first, err)
	}
	if !slices.Equal(first.BootModes, []string{"legacy", "uefi"}) || !first.PermissionsToLaunch.GlobalPermission ||
		!strings.HasPrefix(tagValue(first.Tags, service.OfficialSourceTag), "built:") {
		t.Fatalf("published OMI: %+v", first)
	}
	n.publishBuilt(ctx, dir, log)
	if again, _ := n.svc.LatestOfficial(ctx, "Test-Linux"); again == nil || again.ImageId != first.ImageId {
		t.Fatalf("an unchanged file was published again: %+v", again)
	}
	write(2)
	n.publishBuilt(ctx, dir, log)
	second, _ := n.svc.LatestOfficial(ctx, "Test-Linux")
	if second == nil || second.ImageId == first.ImageId || !strings.HasSuffix(second.ImageName, "-1") {
		t.Fatalf("a changed file gave %+v", second)
	}
}

// TestImageCommandUsage: wrong arguments give the usage and touch nothing.
func TestImageCommandUsage(t *testing.T) {
	data := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"build"}, "usage: omi image build small|debian"},
		{[]string{"build", "ubuntu"}, "usage: omi image build small|debian"},
		{[]string{"build", "small", "extra"}, "usage: omi image build small|debian"},
		{[]string{"import"}, "usage: omi image import FILE"},
		{[]string{"import", "disk.qcow2", "--data", data}, "--name is required"},
		{[]string{"import", filepath.Join(data, "missing.qcow2"), "--name", "x", "--data", data}, "no such file"},
		{[]string{"import", "a", "b", "--name", "x"}, "usage: omi image import FILE"},
	} {
		err := imageCmd(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("omi image %s: %v, want %q", strings.Join(c.args, " "), err, c.want)
		}
	}
	if entries, _ := os.ReadDir(data); len(entries) != 0 {
		t.Errorf("the data directory got %d entries", len(entries))
	}
}
