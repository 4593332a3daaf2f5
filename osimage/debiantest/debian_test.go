// Package debiantest builds and boots the Debian image. It is its own
// package so that its minutes run in parallel with other packages, and it
// runs only with OMI_TEST_DEBIAN_IMAGE=1 or under CI=true (as root, with
// debootstrap).
package debiantest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/omiproject/omi/osimage/osimagetest"
)

func TestMain(m *testing.M) { osimagetest.Main(m) }

// TestDebianBoots boots the Debian image under SeaBIOS and OVMF: SSH as
// root and outscale (passwordless sudo) with the metadata key, user data
// ran, python3 answers (Ansible's requirement), the root filesystem grew
// to the volume, scp works, and the ACPI
// power button powers off through systemd with the uploaded file on a
// clean filesystem.
func TestDebianBoots(t *testing.T) {
	image := osimagetest.Debian(t)
	osimagetest.NeedTool(t, "qemu-system-x86_64")
	for _, mode := range []string{"legacy", "uefi"} {
		t.Run(mode, func(t *testing.T) {
			mark := fmt.Sprintf("mark-%d", time.Now().UnixNano())
			g := osimagetest.NewGuest(t, "#!/bin/sh\necho "+mark+" > /root/ud-proof\n")
			start := time.Now()
			// A 3 GiB volume for a 2 GiB image: the root grows to it.
			v := osimagetest.BootDisk(t, image, mode == "uefi", 512, 3<<30, g)
			c := v.Dial(t, "root", g.Signer, 8*time.Minute)
			defer c.Close()
			t.Logf("%s: SSH answered %.1f s after QEMU started", mode, time.Since(start).Seconds())
			if got := strings.TrimSpace(osimagetest.Run(t, c, "cat /root/ud-proof")); got != mark {
				t.Fatalf("user data proof = %q, want %q", got, mark)
			}
			if got := strings.TrimSpace(osimagetest.Run(t, c, `python3 -c 'import json,sys; print(json.dumps(sys.version_info[0]))'`)); got != "3" {
				t.Errorf("python3: %q", got)
			}
			if got := strings.TrimSpace(osimagetest.Run(t, c, "hostname")); got != g.Hostname {
				t.Errorf("hostname = %q, want %q", got, g.Hostname)
			}
			var blocks, size int64
			fmt.Sscan(osimagetest.Run(t, c, "stat -f -c '%b %S' /"), &blocks, &size)
			if blocks*size < 2900<<20 {
				t.Errorf("root filesystem of %d MiB on a 3 GiB volume: not grown", blocks*size>>20)
			}
			c2 := v.Dial(t, "outscale", g.Signer, time.Minute)
			if got := strings.TrimSpace(osimagetest.Run(t, c2, "sudo -n id -un")); got != "root" {
				t.Errorf("sudo as outscale: %q", got)
			}
			c2.Close()
			payload := []byte("uploaded " + mark + "\n")
			osimagetest.SCPUpload(t, c, "/root/uploaded.txt", payload)
			osimagetest.Run(t, c, "sync")
			if !strings.Contains(v.ConsoleText(), "Linux version 6.") {
				t.Errorf("no kernel banner on the serial console")
			}
			c.Close()
			start = time.Now()
			v.Powerdown(t, 3*time.Minute)
			t.Logf("%s: powered off %.1f s after the ACPI power button", mode, time.Since(start).Seconds())
			osimagetest.CheckDisk(t, v.Disk, "/root/uploaded.txt", payload)
		})
	}
}
