package inspect_test

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/omiproject/omi/catalog"
	"github.com/omiproject/omi/inspect"
)

// needTool returns the path of an external tool, skipping the test when it
// is missing (failing under CI=true, where it must be installed).
func needTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not installed (Debian packages: e2fsprogs gdisk fdisk openssh-client)", name)
	}
	t.Skipf("%s not installed", name)
	return ""
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// buildDisk builds spec with the catalog into a new sparse file.
func buildDisk(t testing.TB, spec catalog.DiskSpec) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size := spec.SizeBytes
	if size == 0 {
		size = catalog.DefaultSize
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := catalog.BuildDisk(context.Background(), f, spec); err != nil {
		t.Fatal(err)
	}
	return p
}

// countingReader counts the bytes and calls that reach the disk.
type countingReader struct {
	r     io.ReaderAt
	bytes atomic.Int64
	calls atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.bytes.Add(int64(n))
	c.calls.Add(1)
	return n, err
}

func inspectPath(t testing.TB, p string) *inspect.Report {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := inspect.Inspect(context.Background(), f, fi.Size(), inspect.Options{})
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	return rep
}

// keygen creates a key pair with ssh-keygen and returns the private key
// file and the public key line.
func keygen(t testing.TB, dir, typ string, bits int, comment string, extra ...string) (priv string, pub string) {
	t.Helper()
	sshKeygen := needTool(t, "ssh-keygen")
	priv = filepath.Join(dir, typ+strconv.Itoa(bits)+"-"+strconv.Itoa(len(comment)))
	args := append([]string{"-q", "-t", typ, "-N", "", "-C", comment, "-f", priv}, extra...)
	if bits > 0 {
		args = append(args, "-b", strconv.Itoa(bits))
	}
	run(t, sshKeygen, args...)
	b, err := os.ReadFile(priv + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return priv, strings.TrimSpace(string(b))
}

// keygenPrint is one line of ssh-keygen -l output.
type keygenPrint struct {
	Bits        int
	Fingerprint string
	Comment     string
	Type        string // RSA, ED25519, ECDSA, ...
}

// fingerprints runs ssh-keygen -lf on a file.
func fingerprints(t testing.TB, file string) []keygenPrint {
	t.Helper()
	out := run(t, needTool(t, "ssh-keygen"), "-l", "-E", "sha256", "-f", file)
	var res []keygenPrint
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		// 256 SHA256:abc comment words (ED25519)
		f := strings.Fields(l)
		if len(f) < 4 {
			t.Fatalf("ssh-keygen -l: %q", l)
		}
		bits, _ := strconv.Atoi(f[0])
		res = append(res, keygenPrint{
			Bits: bits, Fingerprint: f[1],
			Comment: strings.Join(f[2:len(f)-1], " "),
			Type:    strings.Trim(f[len(f)-1], "()"),
		})
	}
	return res
}

// sshTypeName maps a key type to the name ssh-keygen -l prints.
func sshTypeName(typ string) string {
	switch {
	case typ == "ssh-rsa":
		return "RSA"
	case typ == "ssh-ed25519":
		return "ED25519"
	case strings.HasPrefix(typ, "ecdsa-"):
		return "ECDSA"
	case typ == "ssh-dss":
		return "DSA"
	}
	return typ
}

func writeFile(t testing.TB, p string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
}

// writeAt writes data into file p at off.
func writeAt(t testing.TB, p string, data []byte, off int64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
}

// copyInto copies file src into file dst at off.
func copyInto(t testing.TB, dst, src string, off int64) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeAt(t, dst, data, off)
}

func sparseFile(t testing.TB, size int64) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}
