package osimage

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// debianInclude are the packages debootstrap adds to minbase: an init
// (systemd, udev, dbus for logind, which powers off on the ACPI button),
// DHCP networking with ifupdown, OpenSSH and python3 for Ansible, sudo for
// the outscale user, growpart and resize2fs to grow the root filesystem to
// the VM's volume.
var debianInclude = []string{"systemd-sysv", "udev", "dbus", "kmod", "ifupdown", "isc-dhcp-client", "iproute2", "netbase",
	"openssh-server", "python3", "sudo", "cloud-guest-utils", "e2fsprogs"}

// DebianSize is the virtual size of the Debian image.
const DebianSize = 2 << 30

// DebianMirror is the archive debootstrap downloads from unless
// Options.Mirror says otherwise.
const DebianMirror = "http://deb.debian.org/debian"

// hostSuite is the codename of the build host's Debian release, the suite
// the Debian image is made of by default (the kernel and the initramfs
// come from the host's apt sources, so they should match).
func hostSuite() (string, error) {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VERSION_CODENAME="); ok {
			return strings.Trim(v, `"`), nil
		}
	}
	return "", errors.New("/etc/os-release has no VERSION_CODENAME: not a Debian host")
}

// BuildDebian builds (or finds in the cache) the Debian image and returns
// the path of its compressed qcow2 file: debootstrap --variant=minbase
// with systemd, openssh-server, python3, ifupdown with DHCP and sudo; the
// cloud kernel and omi's busybox initramfs on the ESP (so the image needs
// no initramfs-tools), the kernel's modules in the root; and a first-boot
// service (omi-metadata) that installs the metadata service's SSH key for
// root and outscale (passwordless sudo) and runs #! user data once per
// instance. debootstrap needs root; the suite is the host's, the mirror
// DebianMirror or $OMI_DEBIAN_MIRROR.
func BuildDebian(ctx context.Context, opts Options) (string, error) {
	if os.Geteuid() != 0 {
		return "", errors.New("building the Debian image runs debootstrap, which needs root")
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return "", errors.New("building the Debian image needs debootstrap (apt-get install debootstrap)")
	}
	suite, err := hostSuite()
	if err != nil {
		return "", err
	}
	mirror := os.Getenv("OMI_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = DebianMirror
	}
	kernel, err := candidateDepends(ctx, "linux-image-cloud-amd64", "linux-image-")
	if err != nil {
		return "", err
	}
	// The boot packages, and the versions of the included ones, which key
	// the cache (debootstrap resolves the rest of minbase itself).
	debs, err := resolve(ctx, []string{kernel, "busybox-static", "syslinux-common", "syslinux-efi"})
	if err != nil {
		return "", err
	}
	incl, err := resolve(ctx, debianInclude)
	if err != nil {
		return "", err
	}
	key := inputKey("debian "+suite+" "+mirror, append(append([]deb(nil), debs...), incl...), "rootfs/initramfs", "rootfs/debian")
	return cached(opts.cacheDir(), "debian-"+key+".qcow2", func(work, out string) (*Manifest, error) {
		opts.logf("osimage: building the Debian %s image %s with debootstrap from %s", suite, key, mirror)
		return buildDebian(ctx, &opts, suite, mirror, debs, incl, work, out)
	})
}

func buildDebian(ctx context.Context, opts *Options, suite, mirror string, debs, incl []deb, work, out string) (*Manifest, error) {
	debDir := filepath.Join(opts.cacheDir(), "debs")
	if err := download(ctx, debDir, debs); err != nil {
		return nil, err
	}
	pkgs := filepath.Join(work, "pkgs")
	if err := extract(ctx, debDir, debs, pkgs); err != nil {
		return nil, err
	}
	boot, err := kernelFiles(ctx, pkgs, opts)
	if err != nil {
		return nil, err
	}
	root := filepath.Join(work, "root")
	opts.logf("osimage: debootstrap --variant=minbase %s (a few minutes)", suite)
	args := []string{"--variant=minbase", "--include=" + strings.Join(debianInclude, ","), "--cache-dir=" + debootstrapCache(opts), suite, root, mirror}
	if _, err := run(ctx, "", "debootstrap", args...); err != nil {
		return nil, err
	}
	opts.logf("osimage: configuring the Debian root")
	if err := configureDebian(ctx, pkgs, root, boot.version); err != nil {
		return nil, err
	}
	if err := makeDiskSized(ctx, opts, work, pkgs, boot, root, nil, out, DebianSize); err != nil {
		return nil, err
	}
	osr, _ := os.ReadFile(filepath.Join(root, "etc/os-release"))
	version := "12"
	for _, l := range strings.Split(string(osr), "\n") {
		if v, ok := strings.CutPrefix(l, "VERSION_ID="); ok {
			version = strings.Trim(v, `"`)
		}
	}
	return &Manifest{Family: "Debian-" + version, BootModes: []string{"legacy", "uefi"}, Kernel: boot.version,
		Packages: packageList(append(debs, incl...)),
		Description: fmt.Sprintf("Debian GNU/Linux %s (%s) minbase with systemd, openssh-server and python3; kernel %s; SSH key and #! user data from the metadata service",
			version, suite, boot.version)}, nil
}

// debootstrapCache keeps debootstrap's downloads between builds.
func debootstrapCache(opts *Options) string {
	d := filepath.Join(opts.cacheDir(), "debootstrap")
	os.MkdirAll(d, 0o755)
	return d
}

// configureDebian turns the debootstrapped tree into a cloud image: fstab,
// DHCP, the outscale user, the first-boot service, the kernel's modules;
// it removes what must differ per VM (SSH host keys, machine id) and what
// only takes space (apt lists, documentation).
func configureDebian(ctx context.Context, pkgs, root, kernel string) error {
	if err := writeEmbedded("rootfs/debian", root); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(root, "etc/sudoers.d/outscale"), 0o440); err != nil {
		return err
	}
	for _, f := range [][2]string{{"etc/hostname", "debian\n"}, {"etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"}, {"etc/machine-id", ""}} {
		if err := os.WriteFile(filepath.Join(root, f[0]), []byte(f[1]), 0o644); err != nil {
			return err
		}
	}
	// The kernel on the ESP comes from the host's apt sources (security
	// updates included); its modules go in the root for udev.
	if err := os.MkdirAll(filepath.Join(root, "lib/modules"), 0o755); err != nil {
		return err
	}
	if _, err := run(ctx, "", "cp", "-a", filepath.Join(pkgs, "lib/modules", kernel), filepath.Join(root, "lib/modules")+"/"); err != nil {
		return err
	}
	chroot := func(args ...string) error {
		_, err := run(ctx, "", "chroot", append([]string{root}, args...)...)
		return err
	}
	if err := chroot("depmod", "-a", kernel); err != nil {
		return err
	}
	if err := chroot("useradd", "-m", "-s", "/bin/bash", "-G", "sudo", "-c", "outscale", "outscale"); err != nil {
		return err
	}
	// Enable the first-boot service; mask what only slows a boot under
	// TCG (ifupdown-pre waits for udev to settle, though the initramfs
	// has loaded virtio_net already) or reaches for the archive.
	links := [][2]string{{"/etc/systemd/system/omi-metadata.service", "etc/systemd/system/multi-user.target.wants/omi-metadata.service"}}
	for _, unit := range []string{"ifupdown-pre.service", "e2scrub_reap.service", "apt-daily.timer", "apt-daily-upgrade.timer"} {
		links = append(links, [2]string{"/dev/null", "etc/systemd/system/" + unit})
	}
	for _, l := range links {
		p := filepath.Join(root, l[1])
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.Remove(p)
		if err := os.Symlink(l[0], p); err != nil {
			return err
		}
	}
	for _, glob := range []string{"etc/ssh/ssh_host_*", "var/lib/apt/lists/*_*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
		"usr/share/doc/*", "usr/share/man/*", "usr/share/info/*", "var/log/*.log", "var/lib/dbus/machine-id"} {
		matches, _ := filepath.Glob(filepath.Join(root, glob))
		for _, m := range matches {
			if err := os.RemoveAll(m); err != nil {
				return err
			}
		}
	}
	return nil
}
