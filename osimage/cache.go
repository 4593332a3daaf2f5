package osimage

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// builderVersion changes when the build itself changes in a way the
// inputs do not show (Go code rather than embedded files).
const builderVersion = "2"

// inputKey hashes what an image is made of: the exact package files (by
// their archive checksums), omi's embedded files under the given rootfs
// directories and the builder version. Equal keys mean equal images, so a
// cached image is reused.
func inputKey(kind string, debs []deb, dirs ...string) string {
	h := sha256.New()
	fmt.Fprintf(h, "omi-osimage %s %s\n", kind, builderVersion)
	sorted := append([]deb(nil), debs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].File < sorted[j].File })
	for _, d := range sorted {
		fmt.Fprintf(h, "deb %s %s\n", d.File, d.SHA256)
	}
	for _, dir := range dirs {
		fs.WalkDir(rootfsFiles, dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				data, _ := rootfsFiles.ReadFile(p)
				fmt.Fprintf(h, "file %s %d\n", p, len(data))
				h.Write(data)
			}
			return nil
		})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// cached returns dir/name, building it with build(work, tmpOut) when
// absent; build returns the image's manifest, kept as dir/name.json. A
// file lock serialises builds of the same name across processes (test
// binaries run in parallel); the result appears atomically, the manifest
// first.
func cached(dir, name string, build func(work, out string) (*Manifest, error)) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	final := filepath.Join(dir, name)
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	lock, err := os.OpenFile(final+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(final); err == nil {
		return final, nil // built by another process meanwhile
	}
	work, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	tmp := filepath.Join(work, "out")
	m, err := build(work, tmp)
	if err != nil {
		return "", err
	}
	if err := writeManifest(ManifestPath(final), m); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	return final, nil
}
