package osimage_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/omiproject/omi/osimage/osimagetest"
)

func TestMain(m *testing.M) { osimagetest.Main(m) }

// TestSmallBoots boots the small image under SeaBIOS and OVMF: SSH with
// the metadata key as root and outscale, user data ran, a file uploaded
// with scp, the kernel banner on the serial console, and a clean poweroff
// on the ACPI power button that leaves the file on a clean filesystem.
func TestSmallBoots(t *testing.T) {
	osimagetest.NeedTool(t, "qemu-system-x86_64")
	image := osimagetest.Small(t)
	for _, mode := range []string{"legacy", "uefi"} {
		t.Run(mode, func(t *testing.T) {
			mark := fmt.Sprintf("mark-%d", time.Now().UnixNano())
			g := osimagetest.NewGuest(t, "#!/bin/sh\necho "+mark+" > /root/ud-proof\necho run >> /root/ud-runs\n")
			start := time.Now()
			// Legacy boots a 2 GiB volume: the root grows to it.
			var size int64
			if mode == "legacy" {
				size = 2 << 30
			}
			v := osimagetest.BootDisk(t, image, mode == "uefi", 256, size, g)
			c := v.Dial(t, "root", g.Signer, 5*time.Minute)
			defer c.Close()
			t.Logf("%s: SSH answered %.1f s after QEMU started", mode, time.Since(start).Seconds())
			if got := strings.TrimSpace(osimagetest.Run(t, c, "cat /root/ud-proof")); got != mark {
				t.Fatalf("user data proof = %q, want %q", got, mark)
			}
			if got := strings.TrimSpace(osimagetest.Run(t, c, "hostname")); got != g.Hostname {
				t.Errorf("hostname = %q, want the metadata's %q", got, g.Hostname)
			}
			var blocks, bsize int64
			fmt.Sscan(osimagetest.Run(t, c, "stat -f -c '%b %S' /"), &blocks, &bsize)
			if mode == "legacy" && blocks*bsize < 1900<<20 || mode == "uefi" && blocks*bsize > 1<<30 {
				t.Errorf("root filesystem of %d MiB: want it grown to the 2 GiB volume (legacy) or left at 1 GiB (uefi)", blocks*bsize>>20)
			}
			if fw := strings.TrimSpace(osimagetest.Run(t, c, "test -d /sys/firmware/efi && echo uefi || echo legacy")); fw != mode {
				t.Errorf("firmware seen by the guest = %s, want %s", fw, mode)
			}
			payload := []byte("uploaded " + mark + "\n")
			osimagetest.SCPUpload(t, c, "/root/uploaded.txt", payload)
			if got := osimagetest.Run(t, c, "cat /root/uploaded.txt"); got != string(payload) {
				t.Fatalf("uploaded file = %q", got)
			}
			c2 := v.Dial(t, "outscale", g.Signer, 30*time.Second)
			if got := strings.TrimSpace(osimagetest.Run(t, c2, "id -un")); got != "outscale" {
				t.Errorf("id -un = %q", got)
			}
			c2.Close()
			// sftp-server answers the SFTP subsystem (scp of OpenSSH 9, sftp).
			s, _ := c.NewSession()
			if err := s.RequestSubsystem("sftp"); err != nil {
				t.Errorf("sftp subsystem: %v", err)
			}
			s.Close()
			if !strings.Contains(v.ConsoleText(), "Linux version 6.") {
				t.Errorf("no kernel banner on the serial console:\n%s", osimagetest.Tail(v.ConsoleText(), 2000))
			}
			if mode == "legacy" {
				// A reboot keeps the instance: the user data does not run
				// again, the key still works, the upload is still there.
				bootID := osimagetest.Run(t, c, "cat /proc/sys/kernel/random/boot_id")
				s, _ := c.NewSession()
				s.Start("reboot")
				s.Close()
				c.Close()
				time.Sleep(2 * time.Second) // let dropbear stop before dialling again
				start = time.Now()
				for {
					c = v.Dial(t, "root", g.Signer, 5*time.Minute)
					if s, err := c.NewSession(); err == nil {
						id, err := s.Output("cat /proc/sys/kernel/random/boot_id")
						s.Close()
						if err == nil && string(id) != bootID {
							break // the new boot answers
						}
					}
					c.Close()
					if time.Since(start) > 5*time.Minute {
						t.Fatal("the guest did not reboot")
					}
					time.Sleep(time.Second)
				}
				t.Logf("%s: SSH answered again %.1f s after the reboot", mode, time.Since(start).Seconds())
				if got := osimagetest.Run(t, c, "cat /root/ud-runs /root/uploaded.txt"); got != "run\n"+string(payload) {
					t.Errorf("after a reboot: %q, want the user data run once and the upload kept", got)
				}
			}
			c.Close()
			start = time.Now()
			v.Powerdown(t, 2*time.Minute)
			t.Logf("%s: powered off %.1f s after the ACPI power button", mode, time.Since(start).Seconds())
			osimagetest.CheckDisk(t, v.Disk, "/root/uploaded.txt", payload)
		})
	}
}
