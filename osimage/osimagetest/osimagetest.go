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

// DebianEnv turns the tests that build the Debian image on (1) or off
// (0). debootstrap takes root and about 4 minutes the first time, so they
// are off by default, and on under CI=true (CI runs as root, and the
// image, built once, is shared by the test binaries through the cache).
const DebianEnv = "OMI_TEST_DEBIAN_IMAGE"

// DebianEnabled reports whether the Debian image tests run:
// OMI_TEST_DEBIAN_IMAGE=1, or CI=true unless OMI_TEST_DEBIAN_IMAGE=0.
func DebianEnabled() bool {
	switch os.Getenv(DebianEnv) {
	case "1":
		return true
	case "0":
		return false
	}
	return os.Getenv("CI") == "true"
}

// Debian returns the path of the Debian image's qcow2 file, built once
// and cached like Small (test binaries running at the same time wait for
// one build). It skips the test unless DebianEnabled, and when not root,
// debootstrap is missing or the archive is out of reach; under CI=true
// those fail the test instead.
func Debian(t testing.TB) string {
	t.Helper()
	if !DebianEnabled() {
		t.Skip("set " + DebianEnv + "=1 to build and test the Debian image (debootstrap, root, about 4 minutes the first time)")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("building the Debian image needs root (debootstrap); set " + DebianEnv + "=0 to leave it out")
		}
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
	if errors.Is(debianErr, osimage.ErrPackages) && os.Getenv("CI") != "true" {
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
	return imagesDir(t, map[string]string{"small.qcow2": Small(t)})
}

// OfficialImagesDirDebian is OfficialImagesDir with the Debian image as
// well (debian.qcow2, published as the official Debian-12 OMI); it skips
// as Debian does.
func OfficialImagesDirDebian(t testing.TB) string {
	t.Helper()
	deb := Debian(t)
	return imagesDir(t, map[string]string{"small.qcow2": Small(t), "debian.qcow2": deb})
}

func imagesDir(t testing.TB, imgs map[string]string) string {
	dir := t.TempDir()
	for name, img := range imgs {
		for _, l := range [][2]string{{img, name}, {osimage.ManifestPath(img), osimage.ManifestPath(name)}} {
			if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}
