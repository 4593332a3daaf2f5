package vmboot

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"

	"github.com/omiproject/omi/osimage"
	"github.com/omiproject/omi/osimage/osimagetest"
)

// TestBootDebian: a VM of the Debian official OMI (debootstrap minbase
// with systemd, openssh-server and python3, built by osimage) boots
// through the QEMU driver: SSH as root and as outscale (passwordless
// sudo) with the keypair, the user data ran, python3 answers as Ansible
// needs, and StopVms powers it off cleanly through systemd. It runs with
// OMI_TEST_DEBIAN_IMAGE=1 or under CI=true (osimagetest.Debian).
func TestBootDebian(t *testing.T) {
	imgs := osimagetest.OfficialImagesDirDebian(t)
	m, err := osimage.ReadManifest(osimagetest.Debian(t))
	if err != nil {
		t.Fatal(err)
	}
	// systemd wants more than the small OMI's 256 MiB, and takes longer
	// to power off under TCG.
	s := newServerWith(t, serverOpts{images: imgs, memoryMiB: 512, stopTimeout: "90s"})
	deb := s.image(m.Family)
	signer := s.keypair("debian")
	mark := fmt.Sprintf("deb-%d", rand.Int64())
	t0 := time.Now()
	vm := s.createVm(deb, "debian", "#!/bin/sh\necho "+mark+" > /root/ud-proof\n")
	c := dial(t, *vm.PublicIp, signer, 2*bootWithin)
	t.Logf("Debian: CreateVms -> SSH answering: %v (QEMU RSS %.0f MiB)", time.Since(t0).Round(100*time.Millisecond), rssMiB(s.machines()[vm.VmId]))
	// The user data runs from a systemd unit that may finish after sshd
	// starts.
	var got string
	for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(time.Second) {
		if got = strings.TrimSpace(osimagetest.Run(t, c, "cat /root/ud-proof 2>/dev/null || true")); got == mark {
			break
		}
	}
	if got != mark {
		t.Errorf("user data wrote %q, want %q", got, mark)
	}
	if got := strings.TrimSpace(osimagetest.Run(t, c, `python3 -c 'import json,sys; print(json.dumps(sys.version_info[0]))'`)); got != "3" {
		t.Errorf("python3: %q", got)
	}
	if got := strings.TrimSpace(osimagetest.Run(t, c, `python3 -c 'import urllib.request as u; print(u.urlopen("http://169.254.169.254/latest/meta-data/instance-id").read().decode())'`)); got != vm.VmId {
		t.Errorf("metadata instance-id from the guest %q, want %s", got, vm.VmId)
	}
	c.Close()
	c2 := dialUser(t, "outscale", *vm.PublicIp, signer, time.Minute)
	if got := strings.TrimSpace(osimagetest.Run(t, c2, "sudo -n id -un")); got != "root" {
		t.Errorf("sudo as outscale: %q", got)
	}
	c2.Close()
	t1 := time.Now()
	if _, err := s.c.StopVms(context.Background(), oscv3.StopVmsRequest{VmIds: []string{vm.VmId}}); err != nil {
		t.Fatal(err)
	}
	s.waitVm(vm.VmId, "stopped", 2*time.Minute)
	t.Logf("Debian: StopVms -> stopped: %v", time.Since(t1).Round(100*time.Millisecond))
	if strings.Contains(s.stderr.String(), "did not power off in time") {
		t.Errorf("the Debian guest did not power off on the ACPI button: it was stopped hard")
	}
	s.deleteVms(vm.VmId)
}
