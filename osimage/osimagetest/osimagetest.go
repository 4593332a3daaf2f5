// Package osimagetest gives tests the small bootable image, built once and
// cached by a hash of its inputs (in $OMI_IMAGE_CACHE, else the user's
// cache directory), so every test binary after the first gets it at once.
package osimagetest

import (
	"context"
	"os"
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
)

// Small returns the path of the small image's qcow2 file (read-only:
// copy or convert it before writing). It skips the test when the build
// tools are missing, and fails instead when CI=true.
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
	if err != nil {
		t.Fatalf("build the small image: %v", err)
	}
	return path
}
