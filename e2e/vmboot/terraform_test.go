package vmboot

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omiproject/omi/apitest"
	"github.com/omiproject/omi/osimage"
	"github.com/omiproject/omi/osimage/osimagetest"
	"github.com/omiproject/omi/qemuvm"
)

const terraformConfig = `
terraform {
  required_providers {
    outscale = { source = "outscale/outscale" }
  }
}
provider "outscale" {}

variable "image" {}
variable "mark" {}
variable "ssh_port" {}

resource "outscale_keypair" "k" {
  keypair_name = "tf-${var.mark}"
}

resource "outscale_vm" "vm" {
  image_id     = var.image
  vm_type      = "tinav5.c1r1p2"
  keypair_name = outscale_keypair.k.keypair_name
  connection {
    type        = "ssh"
    user        = "root"
    host        = self.public_ip
    port        = var.ssh_port
    private_key = outscale_keypair.k.private_key
    timeout     = "5m"
  }
  provisioner "remote-exec" {
    inline = ["echo ${var.mark} > /root/tf-proof", "cat /root/tf-proof"]
  }
}

output "public_ip" { value = outscale_vm.vm.public_ip }
`

// TestTerraformRemoteExec applies an outscale_vm with a remote-exec
// provisioner with the real terraform and provider: terraform connects to
// the public_ip of the CreateVms response and runs the script (uploaded
// with scp), then destroys the VM.
func TestTerraformRemoteExec(t *testing.T) {
	tf, err := exec.LookPath("terraform")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("terraform is missing")
		}
		t.Skip("terraform is missing")
	}
	vars := packerEnv(t)
	osimagetest.NeedTool(t, "qemu-system-x86_64")
	s := newServer(t)
	small := s.image(osimage.SmallFamily)
	mark := fmt.Sprintf("tf%d", rand.IntN(1e9))
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(terraformConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, tf, append(args, "-no-color", "-input=false")...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "TMPDIR=" + os.TempDir(),
			"OSC_ACCESS_KEY=" + s.e.Joe.AccessKey, "OSC_SECRET_KEY=" + s.e.Joe.SecretKey, "OSC_REGION=" + apitest.Region,
			"OSC_ENDPOINT_API=" + s.e.APIURL(), "TF_CLI_CONFIG_FILE=" + vars["TF_CLI_CONFIG_FILE"], "TF_IN_AUTOMATION=1",
			"TF_VAR_image=" + small, "TF_VAR_mark=" + mark, fmt.Sprintf("TF_VAR_ssh_port=%d", qemuvm.ForwardedPort(22))}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("terraform %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	t0 := time.Now()
	out := run("apply", "-auto-approve")
	t.Logf("terraform apply with remote-exec: %v", time.Since(t0).Round(time.Second))
	if !strings.Contains(out, mark) || !strings.Contains(out, "remote-exec") {
		t.Errorf("apply output shows no remote-exec output %q:\n%s", mark, out)
	}
	run("destroy", "-auto-approve")
	if left := s.machines(); len(left) > 0 {
		t.Errorf("machines left after destroy: %v", left)
	}
}
