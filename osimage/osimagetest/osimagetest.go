// Package osimagetest gives tests the small bootable image, built once and
// cached by a hash of its inputs (in $OMI_IMAGE_CACHE, else the user's
// cache directory), so every test binary after the first gets it at once.
package osimagetest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omiproject/omi/osimage"
)

var (
	once sync.Once
	path string
	err  error

	debianOnce sync.Once
	debianPath string
	debianErr  error
)

// Small returns the path of the small image's qcow2 file (read-only:
// copy or convert it before writing). It skips the test when the build
// tools are missing or the Debian archive is out of reach (no apt lists,
// no network), and fails instead when CI=true.
func Small(t testing.TB) string {
	t.Helper()
	if missing := osimage.MissingTools(); len(missing) > 0 {
		msg := "building the small image needs " + strings.Join(missing, ", ") +
			" (Debian packages apt, dpkg, e2fsprogs, mtools, syslinux, fdisk, qemu-utils)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		path, err = osimage.BuildSmall(ctx, osimage.Options{Log: func(f string, a ...any) { t.Logf(f, a...) }})
	})
	if errors.Is(err, osimage.ErrPackages) && os.Getenv("CI") != "true" {
		t.Skipf("the Debian archive is out of reach: %v", err)
	}
	if err != nil {
		t.Fatalf("build the small image: %v", err)
	}
	return path
}

// DebianEnv opts in to tests that build the Debian image: debootstrap
// takes minutes and root, so CI does not run them.
const DebianEnv = "OMI_TEST_DEBIAN_IMAGE"

// Debian returns the path of the Debian image's qcow2 file, built once
// and cached like Small. It skips the test unless OMI_TEST_DEBIAN_IMAGE=1,
// and when not root or debootstrap is missing.
func Debian(t testing.TB) string {
	t.Helper()
	if os.Getenv(DebianEnv) != "1" {
		t.Skip("set " + DebianEnv + "=1 to build and test the Debian image (debootstrap, root, about 4 minutes the first time)")
	}
	if os.Geteuid() != 0 {
		t.Skip("building the Debian image needs root (debootstrap)")
	}
	NeedTool(t, "debootstrap")
	if missing := osimage.MissingTools(); len(missing) > 0 {
		t.Fatalf("building the Debian image needs %s", strings.Join(missing, ", "))
	}
	debianOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		debianPath, debianErr = osimage.BuildDebian(ctx, osimage.Options{Log: func(f string, a ...any) { t.Logf(f, a...) }})
	})
	if errors.Is(debianErr, osimage.ErrPackages) {
		t.Skipf("the Debian archive is out of reach: %v", debianErr)
	}
	if debianErr != nil {
		t.Fatalf("build the Debian image: %v", debianErr)
	}
	return debianPath
}

// OfficialImagesDir returns a temporary directory holding the small image
// as small.qcow2 with its manifest (symbolic links into the cache), for
// omi serve --official-images: the server then publishes it as the
// official osimage.SmallFamily OMI.
func OfficialImagesDir(t testing.TB) string {
	t.Helper()
	img := Small(t)
	dir := t.TempDir()
	for _, l := range [][2]string{{img, "small.qcow2"}, {osimage.ManifestPath(img), osimage.ManifestPath("small.qcow2")}} {
		if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
