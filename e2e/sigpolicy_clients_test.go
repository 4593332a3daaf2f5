package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omiproject/omi/apitest"
)

// realClients runs ../shared/clients/install (the unchanged builds of
// terraform-provider-outscale and packer the project keeps) and returns
// the environment it prints, or skips (fails in CI) when they are absent.
func realClients(t *testing.T) []string {
	t.Helper()
	install := filepath.Join(apitest.RepoRoot(), "..", "shared", "clients", "install")
	if _, err := os.Stat(install); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("real clients: %v", err)
		}
		t.Skipf("real clients not found: %v", err)
	}
	apitest.NeedTool(t, "terraform")
	out, err := exec.Command("bash", install).Output()
	if err != nil {
		t.Fatalf("%s: %v", install, err)
	}
	var env []string
	for _, line := range strings.Split(string(out), "\n") {
		env = append(env, strings.Fields(strings.TrimPrefix(line, "export "))...)
	}
	return env
}

// TestRealTerraformAndPackerSign: the real terraform provider (a keypair
// and an images data source, apply then destroy) and packer (the outscale
// OMI data source in a build) sign requests the API's signature policy
// accepts.
func TestRealTerraformAndPackerSign(t *testing.T) {
	e := apitest.Start(t)
	env := append(os.Environ(), realClients(t)...)
	env = append(env, "OSC_ACCESS_KEY="+e.Joe.AccessKey, "OSC_SECRET_KEY="+e.Joe.SecretKey, "OSC_REGION="+apitest.Region,
		"OSC_ENDPOINT_API="+e.APIURL(), "TF_IN_AUTOMATION=1")
	snap := newSnapshot(t, e, e.Joe, newVolume(t, e, e.Joe, 1))
	img := registerImage(t, e, e.Joe, "real-clients-omi", snap)
	waitImage(t, e, e.Joe, img.ImageId, "available")

	dir := t.TempDir()
	tf := `terraform {
  required_providers {
    outscale = { source = "outscale/outscale" }
  }
}
provider "outscale" {}
resource "outscale_keypair" "k" {
  keypair_name = "real-terraform-key"
}
data "outscale_images" "mine" {
  filter {
    name   = "image_names"
    values = ["real-clients-*"]
  }
}
output "image" { value = data.outscale_images.mine.images[0].image_id }
`
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(tf), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	out := run("terraform", "apply", "-auto-approve", "-no-color")
	if !strings.Contains(out, `image = "`+img.ImageId+`"`) {
		t.Errorf("terraform apply did not find the OMI:\n%s", out)
	}
	var kp struct {
		Keypairs []struct{ KeypairName string }
	}
	e.MustCall(t, e.Joe, "ReadKeypairs", map[string]any{"Filters": map[string]any{"KeypairNames": []string{"real-terraform-key"}}}, &kp)
	if len(kp.Keypairs) != 1 {
		t.Errorf("terraform's keypair: %+v", kp.Keypairs)
	}
	run("terraform", "destroy", "-auto-approve", "-no-color")

	pkr := `data "outscale-omi" "src" {
  filters = {
    image-name = "real-clients-omi"
  }
  owners      = ["` + e.Joe.AccountID + `"]
  most_recent = true
}
source "null" "x" {
  communicator = "none"
}
build {
  sources = ["source.null.x"]
  provisioner "shell-local" {
    inline = ["echo OMI=${data.outscale-omi.src.id}"]
  }
}
`
	if err := os.WriteFile(filepath.Join(dir, "build.pkr.hcl"), []byte(pkr), 0o600); err != nil {
		t.Fatal(err)
	}
	packer := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PACKER="); ok {
			packer = v
		}
	}
	if out := run(packer, "build", "-color=false", "build.pkr.hcl"); !strings.Contains(out, "OMI="+img.ImageId) {
		t.Errorf("packer's data source did not find the OMI:\n%s", out)
	}
}
