package transfer_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/omiproject/omi/diskimage"
	"github.com/omiproject/omi/transfer"
)

// BenchmarkRealFS exports and imports a real filesystem image rather than
// a synthetic pattern: an ext4 disk (REALFS_DISK_MIB, default 1536 MiB)
// built by mkfs.ext4 -d from copies of the Go toolchain's binaries and
// tools, /usr/share/doc and shared libraries of /usr/lib/x86_64-linux-gnu
// (about REALFS_DATA_MIB, default 400 MiB, of mixed machine code and text).
// Each iteration runs both sides on the same data, one after the other:
//
//	export: ExportSnapshot to qcow2.gz  vs  qemu-img convert -O qcow2 + pigz -1
//	import: ImportDisk of omi's export  vs  pigz -dc + qemu-img convert -O raw
//	import-verified: the same, omi also checking the manifest's disk SHA-256
//
//	go test -run '^$' -bench RealFS -benchtime 3x ./transfer/
//
// It skips without mkfs.ext4, qemu-img or pigz (apt-get install e2fsprogs
// qemu-utils pigz).
func BenchmarkRealFS(b *testing.B) {
	needTool(b, "mkfs.ext4", "qemu-img", "pigz")
	dir := b.TempDir()
	raw := buildRealFS(b, dir)
	st, err := os.Stat(raw)
	if err != nil {
		b.Fatal(err)
	}
	size := st.Size()
	e, err := openEnv2(filepath.Join(dir, "src"))
	if err != nil {
		b.Fatal(err)
	}
	defer e.blocks.Close()
	ctx := context.Background()
	if err := e.m.Create(ctx, "snap-realfs", size); err != nil {
		b.Fatal(err)
	}
	in, err := os.Open(raw)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.m.WriteFrom(ctx, "snap-realfs", in); err != nil {
		b.Fatal(err)
	}
	in.Close()
	mib := float64(size) / (1 << 20)
	ourGz := filepath.Join(dir, "omi.qcow2.gz")
	var diskSHA string // of the export, as its manifest gives it

	b.Run("export", func(b *testing.B) {
		var ours, theirs []float64
		var ourCPU, theirCPU float64
		for i := 0; b.Loop(); i++ {
			omiRun := func() {
				c0 := cpuSeconds(syscall.RUSAGE_SELF)
				defer func() { ourCPU += cpuSeconds(syscall.RUSAGE_SELF) - c0 }()
				t0 := time.Now()
				f, err := os.Create(ourGz)
				if err != nil {
					b.Fatal(err)
				}
				res, err := transfer.ExportSnapshot(ctx, e.m, "snap-realfs", diskimage.FormatQcow2, f, nil)
				if err != nil {
					b.Fatal(err)
				}
				diskSHA = res.DiskSHA256
				if err := f.Close(); err != nil {
					b.Fatal(err)
				}
				ours = append(ours, time.Since(t0).Seconds())
			}
			q := filepath.Join(dir, "q.qcow2")
			baseRun := func() {
				c0 := cpuSeconds(syscall.RUSAGE_CHILDREN)
				defer func() { theirCPU += cpuSeconds(syscall.RUSAGE_CHILDREN) - c0 }()
				t0 := time.Now()
				if err := sh(fmt.Sprintf("qemu-img convert -f raw -O qcow2 %s %s && pigz -1 -c %s > %s.gz", raw, q, q, q)); err != nil {
					b.Fatal(err)
				}
				theirs = append(theirs, time.Since(t0).Seconds())
			}
			// Alternate which goes first: the machine's other load falls
			// on both alike.
			if i%2 == 0 {
				omiRun()
				baseRun()
			} else {
				baseRun()
				omiRun()
			}
			if i == 0 {
				og, _ := os.Stat(ourGz)
				pg, _ := os.Stat(q + ".gz")
				if og != nil && pg != nil {
					b.ReportMetric(float64(og.Size())/(1<<20), "omi-object-MiB")
					b.ReportMetric(float64(pg.Size())/(1<<20), "pigz-object-MiB")
				}
			}
			b.Logf("round %d: omi %.2f s, qemu-img+pigz %.2f s: %.2fx (load average %s)", i, ours[i], theirs[i], theirs[i]/ours[i], loadAvg())
			os.Remove(q)
			os.Remove(q + ".gz")
		}
		reportSideBySide(b, mib, ours, theirs, "qemu-img+pigz")
		b.ReportMetric(ourCPU/float64(len(ours)), "omi-cpu-s")
		b.ReportMetric(theirCPU/float64(len(theirs)), "qemu-img+pigz-cpu-s")
	})

	// import: as the baseline, no digest checked beyond gzip's CRCs;
	// import-verified: as an API import of an export, the manifest's disk
	// SHA-256 checked too.
	for _, verified := range []bool{false, true} {
		name := "import"
		if verified {
			name = "import-verified"
		}
		b.Run(name, func(b *testing.B) { benchRealFSImport(b, dir, ourGz, diskSHA, size, verified) })
	}
}

// benchRealFSImport imports omi's export of the real disk into a fresh
// store each round, side by side with pigz -dc + qemu-img convert -O raw;
// verified adds the manifest's disk digest to the import's checks.
func benchRealFSImport(b *testing.B, dir, ourGz, diskSHA string, size int64, verified bool) {
	ctx := context.Background()
	mib := float64(size) / (1 << 20)
	if _, err := os.Stat(ourGz); err != nil || diskSHA == "" {
		b.Skip("needs the export's object (run export too)")
	}
	opts := transfer.ImportOptions{DeclaredSize: size}
	if verified {
		opts.ExpectedSHA256 = diskSHA
	}
	base := "pigz-d+qemu-img"
	if verified {
		base = "pigz-d+sha256sum+qemu-img"
	}
	var ours, theirs []float64
	var ourCPU, theirCPU float64
	for i := 0; b.Loop(); i++ {
		omiRun := func() {
			storeDir := filepath.Join(dir, "import"+strconv.Itoa(i))
			e2, err := openEnv2(storeDir)
			if err != nil {
				b.Fatal(err)
			}
			in, err := os.Open(ourGz)
			if err != nil {
				b.Fatal(err)
			}
			c0 := cpuSeconds(syscall.RUSAGE_SELF)
			t0 := time.Now()
			if _, err := transfer.ImportDisk(ctx, in, e2.m, "snap-in", opts); err != nil {
				b.Fatal(err)
			}
			ours = append(ours, time.Since(t0).Seconds())
			ourCPU += cpuSeconds(syscall.RUSAGE_SELF) - c0
			in.Close()
			e2.blocks.Close()
			os.RemoveAll(storeDir)
		}
		baseRun := func() {
			c0 := cpuSeconds(syscall.RUSAGE_CHILDREN)
			defer func() { theirCPU += cpuSeconds(syscall.RUSAGE_CHILDREN) - c0 }()
			t0 := time.Now()
			// The verified import checks the SHA-256 of the image
			// file against the manifest; the baseline then checks it
			// too, hashing the decompressed stream as it is written.
			decompress := fmt.Sprintf("pigz -dc %s > %s/g.qcow2", ourGz, dir)
			if verified {
				decompress = fmt.Sprintf("pigz -dc %s | tee %s/g.qcow2 | sha256sum | grep -q %s", ourGz, dir, diskSHA)
			}
			if err := sh(fmt.Sprintf("%s && qemu-img convert -f qcow2 -O raw %s/g.qcow2 %s/g.raw", decompress, dir, dir)); err != nil {
				b.Fatal(err)
			}
			theirs = append(theirs, time.Since(t0).Seconds())
			os.Remove(filepath.Join(dir, "g.qcow2"))
			os.Remove(filepath.Join(dir, "g.raw"))
		}
		if i%2 == 0 {
			omiRun()
			baseRun()
		} else {
			baseRun()
			omiRun()
		}
		b.Logf("round %d: omi %.2f s, %s %.2f s: %.2fx (load average %s)", i, ours[i], base, theirs[i], theirs[i]/ours[i], loadAvg())
	}
	reportSideBySide(b, mib, ours, theirs, base)
	b.ReportMetric(ourCPU/float64(len(ours)), "omi-cpu-s")
	b.ReportMetric(theirCPU/float64(len(theirs)), base+"-cpu-s")
}

// reportSideBySide reports the median rates of both sides and the median
// of the per-round speedups.
func reportSideBySide(b *testing.B, mib float64, ours, theirs []float64, name string) {
	var speedups []float64
	for i := range ours {
		speedups = append(speedups, theirs[i]/ours[i])
	}
	b.ReportMetric(mib/median(ours), "omi-MiB/s")
	b.ReportMetric(mib/median(theirs), name+"-MiB/s")
	b.ReportMetric(median(speedups), "speedup")
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	for i := range s { // insertion sort: a handful of rounds
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[len(s)/2]
}

// buildRealFS copies a mix of binaries and text into a staging tree and
// makes an ext4 image of it, returning the raw image's path.
func buildRealFS(b *testing.B, dir string) string {
	b.Helper()
	diskMiB := envInt("REALFS_DISK_MIB", 1536)
	dataMiB := int64(envInt("REALFS_DATA_MIB", 400))
	stage := filepath.Join(dir, "stage")
	budget := dataMiB << 20
	for _, src := range []string{"/usr/local/go/bin", "/usr/local/go/pkg/tool", "/usr/share/doc", "/usr/lib/x86_64-linux-gnu"} {
		if budget <= 0 {
			break
		}
		filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
			if err != nil || budget <= 0 {
				return nil
			}
			if !info.Mode().IsRegular() {
				return nil
			}
			dst := filepath.Join(stage, path)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			if err := copyFile(path, dst); err != nil {
				return nil // unreadable: skip
			}
			budget -= info.Size()
			return nil
		})
	}
	if budget > (dataMiB<<20)/2 {
		b.Skipf("found only %d MiB of files to copy", dataMiB-budget>>20)
	}
	raw := filepath.Join(dir, "disk.raw")
	out, err := exec.Command("mkfs.ext4", "-q", "-F", "-d", stage, raw, fmt.Sprintf("%dM", diskMiB)).CombinedOutput()
	if err != nil {
		b.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	os.RemoveAll(stage)
	used, _ := exec.Command("du", "-m", raw).Output()
	b.Logf("ext4 image of %d MiB, %d MiB of files, allocated: %s", diskMiB, dataMiB-budget>>20, bytes.Fields(used)[0])
	return raw
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// cpuSeconds is the user and system CPU time of who (this process, or its
// waited-for children), in seconds: on a machine shared with other work,
// CPU per run is steadier than wall time.
func cpuSeconds(who int) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// loadAvg is the one-minute load average, for the round logs: a figure
// measured on a busy machine says so.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return string(bytes.Fields(b)[0])
}
