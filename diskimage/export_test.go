package diskimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// exportFile runs a format writer on a raw file and returns the output path.
func exportFile(t *testing.T, raw string, format Format, gz bool) (string, ExportResult) {
	t.Helper()
	in, err := os.Open(raw)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	src, err := NewFileSource(in)
	if err != nil {
		t.Fatal(err)
	}
	out := tempPath(t, "out."+string(format))
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var res ExportResult
	ctx := context.Background()
	switch {
	case gz:
		out += ".gz"
		if err := os.Rename(f.Name(), out); err != nil {
			t.Fatal(err)
		}
		res, err = Export(ctx, f, src, ExportOptions{Format: format, Gzip: GzipOptions{BlockSize: 256 << 10}})
	case format == FormatQcow2:
		_, err = WriteQcow2(ctx, f, src, Qcow2Options{})
	default:
		_, err = WriteRaw(ctx, f, src)
	}
	if err != nil {
		t.Fatalf("export %s: %v", format, err)
	}
	return out, res
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func gunzipFile(t *testing.T, gz string) string {
	t.Helper()
	out := strings.TrimSuffix(gz, ".gz")
	cmd := exec.Command("gzip", "-dc", gz)
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = f, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("gzip -dc: %v %s", err, stderr.String())
	}
	return out
}

func TestExportQemuCheck(t *testing.T) {
	needTool(t, "qemu-img")
	needTool(t, "qemu-io")
	cases := []struct {
		name   string
		size   int64
		writes []qemuWrite
		opts   Qcow2Options
	}{
		{"empty", 4 << 20, nil, Qcow2Options{}},
		{"patterns", 64 << 20, []qemuWrite{{0, 512, 0x11}, {65536 - 512, 1024, 0x22}, {1 << 20, 3 << 20, 0x33}, {40<<20 + 4096, 8192, 0x44}, {64<<20 - 512, 512, 0x55}}, Qcow2Options{}},
		{"small-clusters-many-l2", 8 << 20, []qemuWrite{{0, 4096, 1}, {3<<20 + 512, 100000, 2}, {8<<20 - 4096, 4096, 3}}, Qcow2Options{ClusterSize: 512}},
		{"odd-size", 10<<20 + 512, []qemuWrite{{10 << 20, 512, 0x77}, {5000, 70000, 0x66}}, Qcow2Options{ClusterSize: 2 << 20}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := tempPath(t, "src.raw")
			makeQemuDisk(t, raw, "raw", tc.size, tc.writes)
			in, _ := os.Open(raw)
			defer in.Close()
			src, err := NewFileSource(in)
			if err != nil {
				t.Fatal(err)
			}
			q := tempPath(t, "out.qcow2")
			f, _ := os.Create(q)
			n, err := WriteQcow2(context.Background(), f, src, tc.opts)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if st, _ := os.Stat(q); st.Size() != n {
				t.Fatalf("wrote %d, file has %d", n, st.Size())
			}
			run(t, "qemu-img", "check", "-f", "qcow2", q)
			run(t, "qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, q)
			info := run(t, "qemu-img", "info", "--output=json", "-f", "qcow2", q)
			if !strings.Contains(info, `"compat": "1.1"`) {
				t.Errorf("not compat 1.1: %s", info)
			}
			// Sparse: only clusters touched by writes are allocated.
			if len(tc.writes) == 0 && n > 6*65536 {
				t.Errorf("empty disk produced %d bytes", n)
			}
		})
	}
}

func TestExportGzipRoundTrip(t *testing.T) {
	needTool(t, "qemu-img")
	raw := tempPath(t, "src.raw")
	realisticDisk(t, raw, 24<<20, 1)
	for _, format := range []Format{FormatQcow2, FormatRaw} {
		t.Run(string(format), func(t *testing.T) {
			gz, res := exportFile(t, raw, format, true)
			if got := sha256File(t, gz); got != res.ObjectSHA256 {
				t.Errorf("object sha256 %s, file %s", res.ObjectSHA256, got)
			}
			if st, _ := os.Stat(gz); st.Size() != res.ObjectSize {
				t.Errorf("object size %d, file %d", res.ObjectSize, st.Size())
			}
			img := gunzipFile(t, gz)
			if got := sha256File(t, img); got != res.ImageSHA256 {
				t.Errorf("image sha256 %s, file %s", res.ImageSHA256, got)
			}
			if st, _ := os.Stat(img); st.Size() != res.ImageSize {
				t.Errorf("image size %d, file %d", res.ImageSize, st.Size())
			}
			if format == FormatQcow2 {
				run(t, "qemu-img", "check", "-f", "qcow2", img)
			}
			run(t, "qemu-img", "compare", "-f", "raw", "-F", string(format), raw, img)
		})
	}
}
