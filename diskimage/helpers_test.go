package diskimage

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needTool skips the test when a command is missing, except under CI=true
// where missing tools must fail the run.
func needTool(tb testing.TB, name string) {
	tb.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s not installed (apt-get install -y qemu-utils)", name)
		}
		tb.Skipf("%s not installed", name)
	}
}

// run runs a command and fails the test with its output on error.
func run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// qemuWrite is one qemu-io write: a pattern byte at an offset.
type qemuWrite struct {
	off, length int64
	pattern     byte
}

// makeQemuDisk creates an image of format fmt with qemu-img and fills it with
// qemu-io writes, so the data layout is QEMU's, not ours.
func makeQemuDisk(tb testing.TB, path, format string, size int64, writes []qemuWrite, createOpts ...string) {
	tb.Helper()
	args := append([]string{"create", "-q", "-f", format}, createOpts...)
	args = append(args, path, itoa(size))
	run(tb, "qemu-img", args...)
	if len(writes) == 0 {
		return
	}
	qargs := []string{"-f", format}
	for _, w := range writes {
		qargs = append(qargs, "-c", "write -P "+itoa(int64(w.pattern))+" "+itoa(w.off)+" "+itoa(w.length))
	}
	qargs = append(qargs, path)
	run(tb, "qemu-io", qargs...)
}

func itoa(v int64) string { return formatInt(v) }

func formatInt(v int64) string {
	var b [24]byte
	i := len(b)
	neg := v < 0
	if neg {
		v = -v
	}
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// realisticDisk writes a sparse raw file of size bytes mixing text-like data,
// random data and holes, like a used OS disk. Deterministic per seed.
func realisticDisk(tb testing.TB, path string, size int64, seed uint64) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	words := strings.Fields("the quick brown fox jumps over lazy dog kernel module config init systemd usr lib bin etc var log mount root home share local include python3 package version license copyright")
	const chunk = 1 << 20
	buf := make([]byte, chunk)
	for off := int64(0); off < size; off += chunk {
		n := min(chunk, size-off)
		switch r := rng.IntN(10); {
		case r < 4: // hole
			continue
		case r < 8: // text-like
			var b bytes.Buffer
			for int64(b.Len()) < n {
				b.WriteString(words[rng.IntN(len(words))])
				if rng.IntN(12) == 0 {
					b.WriteByte('\n')
				} else {
					b.WriteByte(' ')
				}
			}
			copy(buf, b.Bytes()[:n])
		default: // random (already-compressed files, binaries)
			for i := range buf[:n] {
				buf[i] = byte(rng.Uint32())
			}
		}
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			tb.Fatal(err)
		}
	}
}

func tempPath(tb testing.TB, name string) string { return filepath.Join(tb.TempDir(), name) }
