package nbd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needTools skips when a qemu tool is missing, except in CI where the test
// must fail instead of silently passing.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed (apt-get install qemu-utils)", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func nbdURL(addr, name string) string { return "nbd://" + addr + "/" + name }

type mapEntry struct {
	Start  int64 `json:"start"`
	Length int64 `json:"length"`
	Data   bool  `json:"data"`
	Zero   bool  `json:"zero"`
}

// dataBytes runs qemu-img map and sums the extents reported as data.
func dataBytes(t *testing.T, args ...string) int64 {
	t.Helper()
	var m []mapEntry
	out := runTool(t, "qemu-img", append([]string{"map", "--output=json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("qemu-img map output: %v\n%s", err, out)
	}
	var n int64
	for _, e := range m {
		if e.Data {
			n += e.Length
		}
	}
	return n
}

func TestQemuIOWriteRead(t *testing.T) {
	needTools(t, "qemu-io")
	ex := newMemExports()
	d := ex.add("vol-0000000a", newMemDisk(8<<20))
	addr, _ := startServer(t, ex)
	out := runTool(t, "qemu-io", "-f", "raw", nbdURL(addr, "vol-0000000a"),
		"-c", "write -P 0xab 0 1M", "-c", "read -P 0xab 0 1M", "-c", "write -P 0x11 4095 3",
		"-c", "aio_write -P 0x22 2M 64k", "-c", "aio_write -P 0x33 3M 64k", "-c", "aio_flush",
		"-c", "read -P 0x22 2M 64k", "-c", "read -P 0x33 3M 64k")
	if strings.Contains(out, "verification failed") || strings.Count(out, "read ") != 3 {
		t.Fatalf("qemu-io:\n%s", out)
	}
	b := d.bytes()
	if !bytes.Equal(b[:4095], bytes.Repeat([]byte{0xab}, 4095)) || !bytes.Equal(b[4095:4098], []byte{0x11, 0x11, 0x11}) {
		t.Fatal("disk does not hold what qemu-io wrote")
	}
	if !bytes.Equal(b[2<<20:2<<20+64<<10], bytes.Repeat([]byte{0x22}, 64<<10)) {
		t.Fatal("aio write lost")
	}
	// A read pattern that does not match must fail verification: the
	// check above can fail.
	bad, _ := exec.Command("qemu-io", "-f", "raw", nbdURL(addr, "vol-0000000a"), "-c", "read -P 0xac 0 4k").CombinedOutput()
	out = string(bad)
	if !strings.Contains(string(out), "verification failed") {
		t.Fatalf("wrong pattern not detected:\n%s", out)
	}
}

func TestQemuImgInfo(t *testing.T) {
	needTools(t, "qemu-img")
	ex := newMemExports()
	ex.add("vol-0000000b", newMemDisk(10<<20+512))
	addr, _ := startServer(t, ex)
	var info struct {
		VirtualSize int64  `json:"virtual-size"`
		Format      string `json:"format"`
	}
	out := runTool(t, "qemu-img", "info", "--output=json", nbdURL(addr, "vol-0000000b"))
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err)
	}
	if info.VirtualSize != 10<<20+512 || info.Format != "raw" {
		t.Fatalf("info: %+v", info)
	}
}

func TestQemuUnknownExport(t *testing.T) {
	needTools(t, "qemu-img")
	ex := newMemExports()
	ex.add("vol-0000000c", newMemDisk(1<<20))
	addr, _ := startServer(t, ex)
	out, err := exec.Command("qemu-img", "info", nbdURL(addr, "vol-00000bad")).CombinedOutput()
	if err == nil {
		t.Fatalf("qemu-img info of an unknown export succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), "unknown export") && !strings.Contains(string(out), "not available") {
		t.Fatalf("qemu-img did not report the unknown export:\n%s", out)
	}
}

// sparseDisk holds three 1 MiB data regions in 64 MiB.
func sparseDisk() (*memDisk, int64) {
	d := newMemDisk(64 << 20)
	for i, off := range []int64{0, 20 << 20, 63 << 20} {
		d.fill(randBytes(1<<20, uint64(10+i)), off)
	}
	return d, 3 << 20
}

func TestQemuImgConvertSparseToQcow2(t *testing.T) {
	needTools(t, "qemu-img")
	ex := newMemExports()
	d, data := sparseDisk()
	ex.add("vol-0000000d", d)
	addr, _ := startServer(t, ex)
	url := nbdURL(addr, "vol-0000000d")

	// qemu-img map over NBD sees exactly the data regions: BLOCK_STATUS.
	if got := dataBytes(t, "-f", "raw", url); got != data {
		t.Fatalf("qemu-img map over NBD: %d data bytes, want %d", got, data)
	}

	d.bytesRead.Store(0)
	out := filepath.Join(t.TempDir(), "out.qcow2")
	runTool(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", url, out)
	st, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 6<<20 {
		t.Fatalf("qcow2 of a 64 MiB export with 3 MiB of data is %d bytes", st.Size())
	}
	if n := d.bytesRead.Load(); n > data+(1<<20) {
		t.Fatalf("convert read %d bytes from the export; holes should not be read", n)
	}
	if got := dataBytes(t, "-f", "qcow2", out); got != data {
		t.Fatalf("qcow2 holds %d data bytes, want %d", got, data)
	}
	runTool(t, "qemu-img", "compare", "-f", "raw", "-F", "qcow2", url, out)
}

func TestQemuImgCompare(t *testing.T) {
	needTools(t, "qemu-img")
	ex := newMemExports()
	d, _ := sparseDisk()
	ex.add("vol-0000000e", d)
	addr, _ := startServer(t, ex)
	url := nbdURL(addr, "vol-0000000e")

	file := filepath.Join(t.TempDir(), "same.raw")
	if err := os.WriteFile(file, d.bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	runTool(t, "qemu-img", "compare", "-f", "raw", "-F", "raw", url, file)

	b := d.bytes()
	b[40<<20] = 1 // inside a hole of the export
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "raw", url, file)
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("compare of differing images: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), fmt.Sprint(40<<20)) {
		t.Fatalf("compare did not point at the difference:\n%s", out)
	}
}

func TestQemuImgConvertIntoExport(t *testing.T) {
	needTools(t, "qemu-img")
	ex := newMemExports()
	d := ex.add("vol-0000000f", newMemDisk(16<<20))
	d.fill(bytes.Repeat([]byte{0xee}, 16<<20), 0) // stale content must be overwritten
	addr, _ := startServer(t, ex)

	src := make([]byte, 16<<20)
	copy(src[1<<20:], randBytes(3<<20, 20))
	copy(src[9<<20+100:], randBytes(12345, 21))
	file := filepath.Join(t.TempDir(), "src.raw")
	if err := os.WriteFile(file, src, 0o600); err != nil {
		t.Fatal(err)
	}
	runTool(t, "qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", file, nbdURL(addr, "vol-0000000f"))
	waitFor(t, func() bool { return d.closes.Load() == d.opens.Load() })
	if !bytes.Equal(d.bytes(), src) {
		t.Fatal("export content differs from the converted file")
	}
	if d.flushes.Load() == 0 {
		t.Fatal("qemu-img convert ended without a flush reaching the export")
	}
	// Zero regions were zeroed, not written: most of the disk is holes again.
	if a := d.allocatedBytes(); a > 6<<20 {
		t.Fatalf("%d bytes allocated after converting 3 MiB of data", a)
	}
}

func TestQemuIODiscardAndWriteZeroes(t *testing.T) {
	needTools(t, "qemu-io", "qemu-img")
	ex := newMemExports()
	d := ex.add("vol-00000010", newMemDisk(4<<20))
	d.fill(bytes.Repeat([]byte{0x5a}, 4<<20), 0)
	addr, _ := startServer(t, ex)
	url := nbdURL(addr, "vol-00000010")
	runTool(t, "qemu-io", "-f", "raw", url,
		"-c", "discard 0 1M",
		"-c", "write -z 1M 1M",
		"-c", "write -z -u 2M 1M",
		"-c", "read -P 0 0 3M", "-c", "read -P 0x5a 3M 1M")
	b := d.bytes()
	if !bytes.Equal(b[:3<<20], make([]byte, 3<<20)) {
		t.Fatal("discarded/zeroed range is not zero")
	}
	if d.allocated(0) || d.allocated(2<<20) {
		t.Fatal("discard / write -z -u left the range allocated")
	}
	if !d.allocated(1 << 20) {
		t.Fatal("write -z without -u (NBD_CMD_FLAG_NO_HOLE) punched a hole")
	}
	if got := dataBytes(t, "-f", "raw", url); got != 2<<20 {
		t.Fatalf("map reports %d data bytes, want 2 MiB", got)
	}
}

func TestQemuNbdList(t *testing.T) {
	needTools(t, "qemu-nbd")
	ex := newMemExports()
	ex.add("vol-00000011", newMemDisk(1<<20))
	ex.add("vol-00000012", newMemDisk(2<<20))
	addr, _ := startServer(t, ex)
	host, port, _ := strings.Cut(addr, ":")
	out := runTool(t, "qemu-nbd", "-L", "-b", host, "-p", port)
	for _, want := range []string{"exports available: 2", "export: 'vol-00000011'", "export: 'vol-00000012'", "size:  2097152", "base:allocation"} {
		if !strings.Contains(out, want) {
			t.Fatalf("qemu-nbd -L output lacks %q:\n%s", want, out)
		}
	}
}
