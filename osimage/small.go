package osimage

import (
	"bytes"
	"compress/gzip"
	"context"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

//go:embed rootfs
var rootfsFiles embed.FS

// smallPackages are the Debian packages the small image is made of
// (besides the kernel, resolved from linux-image-cloud-amd64): busybox for
// everything, dropbear for SSH with its libraries, OpenSSH's scp and
// sftp-server for file transfers (Terraform, Packer), syslinux to boot,
// and sfdisk, partx and resize2fs only, from fdisk, util-linux and
// e2fsprogs.
var smallPackages = []string{
	"busybox-static", "dropbear-bin", "libtomcrypt1", "libtommath1", "libgmp10", "zlib1g", "libcrypt1", "libc6",
	"openssh-client", "openssh-sftp-server", "syslinux-common", "syslinux-efi",
	// sfdisk, partx and resize2fs grow the root to a larger volume at boot.
	"util-linux", "fdisk", "libfdisk1", "libsmartcols1", "libreadline8", "libtinfo6", "libblkid1", "libuuid1",
	"e2fsprogs", "libext2fs2", "libcom-err2",
}

// initramfsModules are loaded by the initramfs: the cloud kernel builds
// virtio, the ACPI button and evdev as modules; without the button and
// evdev, acpid never sees the power button and StopVms cannot stop the
// guest cleanly.
var initramfsModules = []string{"virtio_pci", "virtio_blk", "virtio_net", "virtio_scsi", "sd_mod", "virtio_rng", "button", "evdev"}

// KernelCmdline is the kernel command line of the images: the serial
// console last so that /dev/console (and ReadConsoleOutput) is ttyS0;
// no_timer_check avoids a false APIC timer panic under TCG.
const KernelCmdline = "console=tty0 console=ttyS0,115200n8 no_timer_check net.ifnames=0 root=LABEL=" + RootLabel

// DefaultSize is the virtual size of the images: the root filesystem
// fills what the partition table and ESP leave of 1 GiB (what an OMI
// volume is rounded up to anyway).
const DefaultSize = 1 << 30

// Options are the settings of an image build.
type Options struct {
	// CacheDir keeps the downloaded packages and the built images, named by
	// a hash of their inputs; empty means DefaultCacheDir().
	CacheDir string
	// Log receives one line per build step; nil discards them.
	Log func(format string, args ...any)
}

// DefaultCacheDir is $OMI_IMAGE_CACHE, else omi/images under the user's
// cache directory (~/.cache/omi/images).
func DefaultCacheDir() string {
	if d := os.Getenv("OMI_IMAGE_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "omi", "images")
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		o.Log(format, args...)
	}
}

func (o *Options) cacheDir() string {
	if o.CacheDir != "" {
		return o.CacheDir
	}
	return DefaultCacheDir()
}

// BuildSmall builds (or finds in the cache) the small bootable image and
// returns the path of its compressed qcow2 file: the Debian cloud kernel,
// a busybox initramfs, and an ext4 root with busybox, dropbear, scp and
// sftp-server, whose init brings the network up by DHCP, installs the SSH
// key of the metadata service for root and outscale, runs #! user data
// once per instance, starts dropbear on port 22 and powers off cleanly on
// the ACPI power button. It boots under SeaBIOS and OVMF. Packages come
// from the host's apt sources (apt-get download; no root needed).
func BuildSmall(ctx context.Context, opts Options) (string, error) {
	kernel, err := candidateDepends(ctx, "linux-image-cloud-amd64", "linux-image-")
	if err != nil {
		return "", err
	}
	debs, err := resolve(ctx, append([]string{kernel}, smallPackages...))
	if err != nil {
		return "", err
	}
	key := inputKey("small", debs, "rootfs/initramfs", "rootfs/small")
	return cached(opts.cacheDir(), "small-"+key+".qcow2", func(work, out string) (*Manifest, error) {
		opts.logf("osimage: building the small image %s (%d packages)", key, len(debs))
		return buildSmall(ctx, &opts, debs, work, out)
	})
}

func buildSmall(ctx context.Context, opts *Options, debs []deb, work, out string) (*Manifest, error) {
	debDir := filepath.Join(opts.cacheDir(), "debs")
	opts.logf("osimage: downloading packages into %s", debDir)
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
	opts.logf("osimage: assembling the root filesystem")
	owners, err := smallRoot(ctx, pkgs, root)
	if err != nil {
		return nil, err
	}
	if err := makeDisk(ctx, opts, work, pkgs, boot, root, owners, out); err != nil {
		return nil, err
	}
	return &Manifest{Family: SmallFamily, BootModes: []string{"legacy", "uefi"}, Kernel: boot.version, Packages: packageList(debs),
		Description: fmt.Sprintf("Small Linux from Debian packages: kernel %s, busybox %s, dropbear %s, scp and sftp-server %s; SSH key and #! user data from the metadata service",
			boot.version, versionOf(debs, "busybox-static"), versionOf(debs, "dropbear-bin"), versionOf(debs, "openssh-client"))}, nil
}

// bootFiles are the kernel and initramfs put on the ESP.
type bootFiles struct {
	kernel    string // host path of vmlinuz
	initramfs []byte
	version   string
}

// kernelFiles finds the kernel in the extracted packages and builds the
// initramfs: static busybox, the needed modules and omi's /init.
func kernelFiles(ctx context.Context, pkgs string, opts *Options) (*bootFiles, error) {
	kernels, _ := filepath.Glob(filepath.Join(pkgs, "boot", "vmlinuz-*"))
	if len(kernels) != 1 {
		return nil, fmt.Errorf("expected one kernel in the packages, found %v", kernels)
	}
	version := strings.TrimPrefix(filepath.Base(kernels[0]), "vmlinuz-")
	mods, err := moduleClosure(filepath.Join(pkgs, "lib", "modules", version), initramfsModules)
	if err != nil {
		return nil, err
	}
	busybox, err := os.ReadFile(filepath.Join(pkgs, "bin", "busybox"))
	if err != nil {
		return nil, fmt.Errorf("static busybox: %w", err)
	}
	initScript, err := rootfsFiles.ReadFile("rootfs/initramfs/init")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	c := &cpioWriter{w: zw}
	for _, d := range []string{"bin", "dev", "etc", "lib", "lib/modules", "proc", "sys", "newroot", "sbin", "usr", "usr/bin", "usr/sbin"} {
		c.Dir(d)
	}
	c.File("bin/busybox", 0o755, busybox)
	c.Symlink("bin/sh", "busybox")
	c.File("init", 0o755, initScript)
	var order []string
	for _, m := range mods {
		data, err := os.ReadFile(m)
		if err != nil {
			return nil, err
		}
		name := moduleName(m)
		c.File("lib/modules/"+name+".ko", 0o644, data)
		order = append(order, name)
	}
	c.File("etc/modules.order", 0o644, []byte(strings.Join(order, "\n")+"\n"))
	if err := c.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	opts.logf("osimage: kernel %s, initramfs %d bytes with %d modules", version, buf.Len(), len(order))
	return &bootFiles{kernel: kernels[0], initramfs: buf.Bytes(), version: version}, nil
}

// syslinuxCfg boots the kernel at once, with output on the serial port.
func syslinuxCfg() []byte {
	return []byte("SERIAL 0 115200\nDEFAULT omi\nPROMPT 0\nTIMEOUT 0\nLABEL omi\n  LINUX /vmlinuz\n  INITRD /initrd.img\n  APPEND " + KernelCmdline + "\n")
}

// makeDisk builds the ESP and root filesystems, the GPT disk and the
// qcow2 file at out.
func makeDisk(ctx context.Context, opts *Options, work, pkgs string, boot *bootFiles, root string, owners map[string][2]int, out string) error {
	return makeDiskSized(ctx, opts, work, pkgs, boot, root, owners, out, DefaultSize)
}

func makeDiskSized(ctx context.Context, opts *Options, work, pkgs string, boot *bootFiles, root string, owners map[string][2]int, out string, size int64) error {
	gptmbr, err := os.ReadFile(filepath.Join(pkgs, "usr/lib/syslinux/mbr/gptmbr.bin"))
	if err != nil {
		return err
	}
	cfg := syslinuxCfg()
	esp := []espFile{
		{Dest: "/vmlinuz", Src: boot.kernel},
		{Dest: "/initrd.img", Data: boot.initramfs},
		{Dest: "/syslinux.cfg", Data: cfg},
		{Dest: "/EFI/BOOT/BOOTX64.EFI", Src: filepath.Join(pkgs, "usr/lib/SYSLINUX.EFI/efi64/syslinux.efi")},
		{Dest: "/EFI/BOOT/ldlinux.e64", Src: filepath.Join(pkgs, "usr/lib/syslinux/modules/efi64/ldlinux.e64")},
		{Dest: "/EFI/BOOT/syslinux.cfg", Data: cfg},
	}
	espImg := filepath.Join(work, "esp.img")
	if err := buildESP(ctx, espImg, esp); err != nil {
		return err
	}
	rootImg := filepath.Join(work, "root.img")
	if err := buildRoot(ctx, rootImg, root, size-rootStart-gptTail, owners); err != nil {
		return err
	}
	raw := filepath.Join(work, "disk.raw")
	if err := assembleDisk(ctx, raw, size, gptmbr, espImg, rootImg); err != nil {
		return err
	}
	opts.logf("osimage: converting to compressed qcow2")
	return toQcow2(ctx, raw, out)
}

// smallRoot fills dir with the small image's root filesystem and returns
// the ownership of the paths not owned by root.
func smallRoot(ctx context.Context, pkgs, dir string) (map[string][2]int, error) {
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "usr/lib/openssh", "lib/x86_64-linux-gnu", "lib64", "etc/dropbear",
		"dev", "proc", "sys", "run", "tmp", "mnt", "root", "home/outscale", "var/lib", "var/log", "var/run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	os.Chmod(filepath.Join(dir, "root"), 0o700)
	os.Chmod(filepath.Join(dir, "tmp"), 0o1777)
	copies := map[string]string{
		"bin/busybox":                 "bin/busybox",
		"usr/sbin/dropbear":           "usr/sbin/dropbear",
		"usr/bin/scp":                 "usr/bin/scp",
		"usr/lib/openssh/sftp-server": "usr/lib/openssh/sftp-server",
		"sbin/sfdisk":                 "sbin/sfdisk",
		"sbin/resize2fs":              "sbin/resize2fs",
		"usr/bin/partx":               "sbin/partx",
	}
	for src, dst := range copies {
		if err := copyFile(filepath.Join(pkgs, src), filepath.Join(dir, dst), 0o755); err != nil {
			return nil, err
		}
	}
	// Debian's dropbear looks for the SFTP server here.
	if err := os.Symlink("openssh/sftp-server", filepath.Join(dir, "usr/lib/sftp-server")); err != nil {
		return nil, err
	}
	libs, interp, err := libClosure(pkgs, []string{"usr/sbin/dropbear", "usr/bin/scp", "usr/lib/openssh/sftp-server", "sbin/sfdisk", "sbin/resize2fs", "usr/bin/partx"})
	if err != nil {
		return nil, err
	}
	for so, src := range libs {
		if err := copyFile(filepath.Join(pkgs, src), filepath.Join(dir, "lib/x86_64-linux-gnu", so), 0o755); err != nil {
			return nil, err
		}
	}
	if interp != "" {
		if _, ok := libs[path.Base(interp)]; !ok {
			src := filepath.Join(pkgs, "lib/x86_64-linux-gnu", path.Base(interp))
			if err := copyFile(src, filepath.Join(dir, "lib/x86_64-linux-gnu", path.Base(interp)), 0o755); err != nil {
				return nil, err
			}
		}
		if err := os.MkdirAll(filepath.Join(dir, path.Dir(interp)), 0o755); err != nil {
			return nil, err
		}
		if err := os.Symlink("/lib/x86_64-linux-gnu/"+path.Base(interp), filepath.Join(dir, interp)); err != nil && !os.IsExist(err) {
			return nil, err
		}
	}
	// Busybox applets as symbolic links, as Debian's busybox package
	// would install them.
	list, err := run(ctx, "", filepath.Join(pkgs, "bin/busybox"), "--list-full")
	if err != nil {
		return nil, fmt.Errorf("list busybox applets (the build runs the amd64 busybox): %w", err)
	}
	for _, a := range strings.Fields(string(list)) {
		p := filepath.Join(dir, a)
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.Symlink("/bin/busybox", p); err != nil {
			return nil, err
		}
	}
	files := map[string]string{
		"etc/passwd":     "root:x:0:0:root:/root:/bin/sh\noutscale:x:1000:1000:outscale:/home/outscale:/bin/sh\n",
		"etc/group":      "root:x:0:\noutscale:x:1000:\n",
		"etc/shadow":     "root:*:20000:0:99999:7:::\noutscale:*:20000:0:99999:7:::\n",
		"etc/shells":     "/bin/sh\n/bin/ash\n",
		"etc/hostname":   "omi-small\n",
		"etc/hosts":      "127.0.0.1\tlocalhost\n",
		"etc/os-release": "PRETTY_NAME=\"omi small Linux (Debian packages)\"\nNAME=\"omi small Linux\"\nID=omi-small\nID_LIKE=debian\nHOME_URL=\"https://github.com/omiproject/omi\"\n",
		"etc/profile":    "export PATH=/usr/sbin:/usr/bin:/sbin:/bin\n",
		"etc/motd":       "omi small image: busybox, dropbear, scp and sftp-server from Debian packages.\n",
	}
	for p, content := range files {
		mode := os.FileMode(0o644)
		if p == "etc/shadow" {
			mode = 0o600
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(content), mode); err != nil {
			return nil, err
		}
	}
	if err := writeEmbedded("rootfs/small", dir); err != nil {
		return nil, err
	}
	return map[string][2]int{"/home/outscale": {1000, 1000}}, nil
}

// writeEmbedded copies an embedded tree into dir; scripts (#!) become
// executable.
func writeEmbedded(base, dir string) error {
	var paths []string
	err := fs.WalkDir(rootfsFiles, base, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	for _, p := range paths {
		data, err := rootfsFiles.ReadFile(p)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if bytes.HasPrefix(data, []byte("#!")) {
			mode = 0o755
		}
		dst := filepath.Join(dir, strings.TrimPrefix(p, base+"/"))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		os.Remove(dst)
		if err := os.WriteFile(dst, data, mode); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, mode)
}
