package vmboot

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"

	"github.com/omiproject/omi/apitest"
	"github.com/omiproject/omi/osimage"
	"github.com/omiproject/omi/osimage/osimagetest"
	"github.com/omiproject/omi/qemuvm"
)

// packerEnv unpacks the real packer and packer-plugin-outscale from
// ../shared/clients (see its README) and returns their variables.
func packerEnv(t *testing.T) map[string]string {
	install := filepath.Join(apitest.RepoRoot(), "..", "shared", "clients", "install")
	out, err := exec.Command(install).Output()
	if err != nil {
		msg := fmt.Sprintf("the real clients in ../shared/clients: %v", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		for _, f := range strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")) {
			if k, v, ok := strings.Cut(f, "="); ok {
				vars[k] = strings.Trim(v, `'"`)
			}
		}
	}
	if vars["PACKER"] == "" {
		t.Fatalf("%s printed no PACKER: %s", install, out)
	}
	return vars
}

const packerTemplate = `
source "outscale-bsu" "small" {
  source_omi   = "%s"
  vm_type      = "tinav5.c1r1p2"
  omi_name     = "%s"
  ssh_username = "root"
  ssh_port     = %d
  ssh_timeout  = "5m"
}

build {
  sources = ["source.outscale-bsu.small"]
  provisioner "shell" {
    inline = ["echo %s > /root/packer-proof", "sync"]
  }
}
`

// TestPackerBuild runs a real packer bsu build with the SSH communicator
// and a shell provisioner on the small OMI: packer dials the VM's public
// address, and a VM of the OMI it makes holds what the provisioner wrote.
func TestPackerBuild(t *testing.T) {
	vars := packerEnv(t)
	osimagetest.NeedTool(t, "qemu-system-x86_64")
	s := newServer(t)
	small := s.image(osimage.SmallFamily)
	mark := fmt.Sprintf("packer-%d", rand.Int64())
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "build.pkr.hcl"), []byte(fmt.Sprintf(packerTemplate, small, mark, qemuvm.ForwardedPort(22), mark)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, vars["PACKER"], "build", "-color=false", "build.pkr.hcl")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir(),
		"OSC_ACCESS_KEY=" + s.e.Joe.AccessKey, "OSC_SECRET_KEY=" + s.e.Joe.SecretKey, "OSC_REGION=" + apitest.Region,
		"OSC_ENDPOINT_API=" + s.e.APIURL(), "PACKER_PLUGIN_PATH=" + vars["PACKER_PLUGIN_PATH"], "CHECKPOINT_DISABLE=1"}
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("packer build: %v\n%s", err, out)
	}
	t.Logf("packer build: %v", time.Since(t0).Round(time.Second))
	r, err := s.c.ReadImages(context.Background(), oscv3.ReadImagesRequest{Filters: &oscv3.FiltersImage{ImageNames: &[]string{mark}}})
	if err != nil || r.Images == nil || len(*r.Images) != 1 {
		t.Fatalf("packer's OMI %s: %v\n%s", mark, err, out)
	}
	built := (*r.Images)[0].ImageId
	signer := s.keypair("check")
	vm := s.createVm(built, "check", "")
	s.waitVm(vm.VmId, "running", bootWithin)
	c := dial(t, *vm.PublicIp, signer, bootWithin)
	if got := strings.TrimSpace(osimagetest.Run(t, c, "cat /root/packer-proof")); got != mark {
		t.Errorf("the provisioner's file holds %q, want %q", got, mark)
	}
	c.Close()
	s.deleteVms(vm.VmId)
	// packer deleted its VM: nothing of it runs.
	if left := s.machines(); len(left) > 0 {
		t.Errorf("machines left after packer: %v", left)
	}
}
