package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omiproject/omi/inspect"
)

type imageOut struct {
	ImageId, ImageName, AccountAlias, State string
	ProductCodes                            []string
	PermissionsToLaunch                     struct{ GlobalPermission bool }
}

// TestOfficialCatalogue starts a fresh omi, waits for the official OMIs,
// starts a VM from Debian-12 and reads /etc/os-release of its root volume
// through qemu-img over NBD; the OMI's hygiene inspection is clean.
func TestOfficialCatalogue(t *testing.T) {
	needTool(t, "qemu-img")
	bin := filepath.Join(t.TempDir(), "omi")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	p := startOmi(t, bin, t.TempDir())
	var images []imageOut
	for i := 0; ; i++ {
		var out struct{ Images []imageOut }
		p.call(t, "ReadImages", map[string]any{"Filters": map[string]any{"AccountAliases": []string{"Outscale"}}}, &out)
		images = out.Images
		if len(images) == 4 {
			break
		}
		if i == 200 {
			t.Fatalf("official catalogue not published after 20 s: %+v", images)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var debian, windows imageOut
	date := time.Now().UTC().Format("2006.01.02")
	for _, img := range images {
		if !img.PermissionsToLaunch.GlobalPermission || img.State != "available" {
			t.Errorf("official OMI %s is not public and available: %+v", img.ImageName, img)
		}
		switch {
		case strings.HasPrefix(img.ImageName, "Debian-12-"):
			debian = img
		case strings.HasPrefix(img.ImageName, "Windows-"):
			windows = img
		}
	}
	if debian.ImageName != "Debian-12-"+date+"-0" {
		t.Fatalf("Debian OMI name %q, want Debian-12-%s-0", debian.ImageName, date)
	}
	if len(windows.ProductCodes) != 1 || windows.ProductCodes[0] != "0002" {
		t.Errorf("Windows OMI product codes %v", windows.ProductCodes)
	}
	// The Windows rule applies to it.
	if code := p.callErr(t, "CreateVms", map[string]any{"ImageId": windows.ImageId, "VmType": "tinav5.c1r2p2"}); code != "4047" {
		t.Errorf("small VM from the Windows OMI: code %q", code)
	}

	// The inspection of the official OMI is clean.
	for i := 0; ; i++ {
		var out struct {
			ImageInspection struct {
				State string
				Clean bool
			}
		}
		p.call(t, "ReadImageInspection", map[string]any{"ImageId": debian.ImageId}, &out)
		if out.ImageInspection.State == "done" {
			if !out.ImageInspection.Clean {
				t.Errorf("official Debian OMI is not clean: %+v", out)
			}
			break
		}
		if i == 100 {
			t.Fatalf("inspection still %s", out.ImageInspection.State)
		}
		time.Sleep(100 * time.Millisecond)
	}

	var vms struct {
		Vms []struct {
			VmId                string
			BlockDeviceMappings []struct{ Bsu struct{ VolumeId string } }
		}
	}
	p.call(t, "CreateVms", map[string]any{"ImageId": debian.ImageId}, &vms)
	root := vms.Vms[0].BlockDeviceMappings[0].Bsu.VolumeId
	waitState(t, p, "ReadVolumes", root, "in-use")
	raw := filepath.Join(t.TempDir(), "root.raw")
	if out, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "raw", "nbd://"+p.nbd+"/"+root, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert over NBD: %v\n%s", err, out)
	}
	f, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	rep, err := inspect.Inspect(context.Background(), f, st.Size(), inspect.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OS.ID != "debian" || rep.OS.VersionID != "12" {
		t.Fatalf("os-release of the VM's root volume: %+v (report %+v)", rep.OS, rep)
	}
}
