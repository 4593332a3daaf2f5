package osimage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrPackages wraps the failures to resolve or download Debian packages
// (no apt lists, archive unreachable), as opposed to failures of the
// build itself, so that tests can skip when the archive is out of reach.
var ErrPackages = errors.New("Debian packages unavailable")

// deb is one Debian package as apt resolves it: the exact file (name and
// version) and its checksum from the signed archive index, so a cached
// download is trusted only if it still has that checksum.
type deb struct {
	URL    string
	File   string // apt's file name, e.g. busybox-static_1%3a1.35.0-4_amd64.deb
	Size   int64
	SHA256 string
}

// run runs a command and returns its standard output; the error carries
// standard error, which is where apt and mkfs explain themselves.
func run(ctx context.Context, dir string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return out, nil
}

// candidateDepends returns the first dependency of apt's candidate version
// of a package whose name starts with prefix: the metapackage
// linux-image-cloud-amd64 names the versioned kernel package this way.
func candidateDepends(ctx context.Context, pkg, prefix string) (string, error) {
	out, err := run(ctx, "", "apt-cache", "show", "--no-all-versions", pkg)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrPackages, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Depends:")
		if !ok {
			continue
		}
		for _, d := range strings.Split(rest, ",") {
			name := strings.Fields(strings.TrimSpace(d))
			if len(name) > 0 && strings.HasPrefix(name[0], prefix) {
				return name[0], nil
			}
		}
	}
	return "", fmt.Errorf("%w: apt-cache show %s: no dependency starting with %s (run apt-get update?)", ErrPackages, pkg, prefix)
}

// resolve asks apt which files it would download for the packages,
// without downloading them.
func resolve(ctx context.Context, pkgs []string) ([]deb, error) {
	out, err := run(ctx, "", "apt-get", append([]string{"download", "--print-uris", "-q"}, pkgs...)...)
	if err != nil {
		return nil, fmt.Errorf("%w: resolve (is apt-get update done?): %w", ErrPackages, err)
	}
	var debs []deb
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 4 || !strings.HasPrefix(f[0], "'") || !strings.HasPrefix(f[3], "SHA256:") {
			continue
		}
		size, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("apt-get --print-uris: bad size in %q", line)
		}
		debs = append(debs, deb{URL: strings.Trim(f[0], "'"), File: f[1], Size: size, SHA256: strings.TrimPrefix(f[3], "SHA256:")})
	}
	if len(debs) != len(pkgs) {
		return nil, fmt.Errorf("apt-get --print-uris resolved %d files for %d packages: %s", len(debs), len(pkgs), out)
	}
	return debs, nil
}

// packageName is the package part of an apt file name.
func (d deb) packageName() string {
	name, _, _ := strings.Cut(d.File, "_")
	return name
}

// version is the (unescaped) version part of an apt file name.
func (d deb) version() string {
	parts := strings.Split(d.File, "_")
	if len(parts) < 2 {
		return ""
	}
	v, err := url.PathUnescape(parts[1])
	if err != nil {
		return parts[1]
	}
	return v
}

// FileSHA256 returns the hex SHA-256 of a file's content: how packages are
// checked against their archive and how a published image file is
// recognised again.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// download makes sure every package is in dir with its archive checksum,
// fetching the missing ones with apt-get download (which checks the
// archive's signature chain).
func download(ctx context.Context, dir string, debs []deb) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var missing []deb
	for _, d := range debs {
		if sum, err := FileSHA256(filepath.Join(dir, d.File)); err == nil && sum == d.SHA256 {
			continue
		}
		missing = append(missing, d)
	}
	if len(missing) == 0 {
		return nil
	}
	tmp, err := os.MkdirTemp(dir, "download-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	os.Chmod(tmp, 0o755)
	var args []string
	for _, d := range missing {
		args = append(args, d.packageName()+"="+d.version())
	}
	if _, err := run(ctx, tmp, "apt-get", append([]string{"download", "-q"}, args...)...); err != nil {
		return fmt.Errorf("%w: download (is the archive reachable?): %w", ErrPackages, err)
	}
	for _, d := range missing {
		got := filepath.Join(tmp, d.File)
		sum, err := FileSHA256(got)
		if err != nil {
			return fmt.Errorf("apt-get download left no %s: %w", d.File, err)
		}
		if sum != d.SHA256 {
			return fmt.Errorf("%s: SHA-256 %s, the archive index says %s", d.File, sum, d.SHA256)
		}
		if err := os.Rename(got, filepath.Join(dir, d.File)); err != nil {
			return err
		}
	}
	return nil
}

// extract unpacks packages into one tree (dpkg-deb -x: files only, no
// maintainer scripts, no root needed).
func extract(ctx context.Context, dir string, debs []deb, into string) error {
	for _, d := range debs {
		if _, err := run(ctx, "", "dpkg-deb", "-x", filepath.Join(dir, d.File), into); err != nil {
			return err
		}
	}
	return nil
}
