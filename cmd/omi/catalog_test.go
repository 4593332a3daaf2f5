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
	bin := buildOmi(t)
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

// TestInspectCommandAndPublishNewVersion drives the operator commands:
// omi image inspect against a running server, then omi catalog publish on
// the stopped server's data directory.
func TestInspectCommandAndPublishNewVersion(t *testing.T) {
	bin := buildOmi(t)
	data := t.TempDir()
	p := startOmi(t, bin, data)
	first := waitOfficial(t, p, "Debian-12-")

	// publish refuses while omi serve holds the data directory.
	out, err := exec.Command(bin, "catalog", "publish", "--data", data, "--preset", "Debian-12").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use") {
		t.Fatalf("publish while serving: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "image", "inspect", first)
	cmd.Env = append(os.Environ(), "OSC_ENDPOINT_API=http://"+p.api+"/api/v1", "OSC_ACCESS_KEY=11112211111110000000",
		"OSC_SECRET_KEY=0000001111112222223333334444445555555666", "OSC_REGION=eu-west-2")
	for i := 0; ; i++ {
		out, err = cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("omi image inspect: %v\n%s", err, out)
		}
		if strings.Contains(string(out), `"State": "done"`) {
			break
		}
		if i == 50 {
			t.Fatalf("inspection not done:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
		cmd = exec.Command(bin, "image", "inspect", first)
		cmd.Env = append(os.Environ(), "OSC_ENDPOINT_API=http://"+p.api+"/api/v1", "OSC_ACCESS_KEY=11112211111110000000",
			"OSC_SECRET_KEY=0000001111112222223333334444445555555666", "OSC_REGION=eu-west-2")
	}
	if !strings.Contains(string(out), `"Clean": true`) || !strings.Contains(string(out), `"ID": "debian"`) {
		t.Errorf("omi image inspect output:\n%s", out)
	}

	p.cmd.Process.Signal(os.Interrupt)
	p.cmd.Wait()
	out, err = exec.Command(bin, "catalog", "publish", "--data", data, "--preset", "Debian-12").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "published Debian-12 as ami-") {
		t.Fatalf("omi catalog publish: %v\n%s", err, out)
	}
	p2 := startOmi(t, bin, data)
	var list struct{ Images []imageOut }
	p2.call(t, "ReadImages", map[string]any{"Filters": map[string]any{"ImageNames": []string{"Debian-12-*"}}}, &list)
	if len(list.Images) != 1 || list.Images[0].ImageId == first || !strings.HasSuffix(list.Images[0].ImageName, "-1") {
		t.Fatalf("after publishing a new version, ReadImages lists %+v", list.Images)
	}
	var byID struct{ Images []imageOut }
	p2.call(t, "ReadImages", map[string]any{"Filters": map[string]any{"ImageIds": []string{first}}}, &byID)
	if len(byID.Images) != 1 {
		t.Fatalf("the previous version is not readable by id: %+v", byID)
	}
	var vms struct{ Vms []struct{ VmId string } }
	p2.call(t, "CreateVms", map[string]any{"ImageId": first}, &vms)
	if len(vms.Vms) != 1 {
		t.Fatal("the previous version is not launchable by id")
	}
}

func waitOfficial(t *testing.T, p *proc, prefix string) string {
	t.Helper()
	for i := 0; i < 200; i++ {
		var out struct{ Images []imageOut }
		p.call(t, "ReadImages", map[string]any{"Filters": map[string]any{"ImageNames": []string{prefix + "*"}}}, &out)
		if len(out.Images) == 1 && out.Images[0].State == "available" {
			return out.Images[0].ImageId
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no official %s OMI", prefix)
	return ""
}

// TestRelativeDataDirectory runs omi serve with a relative --data: the
// built-in object storage changes the working directory, which must not
// move the data directory (the catalogue writes block maps after it starts).
func TestRelativeDataDirectory(t *testing.T) {
	bin := buildOmi(t)
	dir := t.TempDir()
	p := launch(t, bin, nil, dir, nil, "--data", "relative-data")
	waitOfficial(t, p, "Debian-12-")
	if _, err := os.Stat(filepath.Join(dir, "relative-data", "omi.db")); err != nil {
		t.Fatalf("data directory not where --data said: %v", err)
	}
}
