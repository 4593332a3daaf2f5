package transfer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/blockstore/local"
	"github.com/omiproject/omi/diskimage"
	"github.com/omiproject/omi/transfer"
	"github.com/omiproject/omi/transfer/internal/diskread"
)

// The benchmarks compare our pipelines with the command lines an operator
// would use, on the same data and machine, in the same iteration:
//
//	export: ExportSnapshot to qcow2.gz  vs  qemu-img convert -O qcow2 + gzip -1
//	import: ImportDisk of that qcow2.gz vs  gunzip + qemu-img convert -O raw
//
// Run: go test -run '^$' -bench . -benchtime 3x ./transfer/
// The disk size is TRANSFER_BENCH_MIB (default 1024).

var benchFix struct {
	once sync.Once
	dir  string
	raw  string // the disk as a sparse raw file
	env  *env2
	size int64
	err  error
}

// env2 is a block store and Manager rooted in a directory of our choice
// (the test helpers' env uses t.TempDir).
type env2 struct {
	blocks *local.Store
	m      *blockmap.Manager
}

func openEnv2(dir string) (*env2, error) {
	blocks, err := local.Open(filepath.Join(dir, "blocks"))
	if err != nil {
		return nil, err
	}
	maps, err := blockmap.NewDirStore(filepath.Join(dir, "maps"))
	if err != nil {
		return nil, err
	}
	return &env2{blocks: blocks, m: blockmap.NewManager(blocks, maps, benchManagerOpts()...)}, nil
}

// benchDisk builds the disk once: per 1 MiB, 35% holes, 15% zero-filled
// data, 30% text-like, 20% random (the mix of a used OS disk), in a raw
// file for qemu-img and in a snapshot map for us.
func benchDisk(b *testing.B) {
	benchFix.once.Do(func() {
		mib := int64(1024)
		if v, err := strconv.ParseInt(os.Getenv("TRANSFER_BENCH_MIB"), 10, 64); err == nil && v > 0 {
			mib = v
		}
		benchFix.size = mib << 20
		benchFix.dir, benchFix.err = os.MkdirTemp("", "transfer-bench-")
		if benchFix.err != nil {
			return
		}
		benchFix.raw = filepath.Join(benchFix.dir, "disk.raw")
		benchFix.err = func() error {
			f, err := os.Create(benchFix.raw)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := f.Truncate(benchFix.size); err != nil {
				return err
			}
			e, err := openEnv2(filepath.Join(benchFix.dir, "src"))
			if err != nil {
				return err
			}
			benchFix.env = e
			ctx := context.Background()
			if err := e.m.Create(ctx, "snap-bench", benchFix.size); err != nil {
				return err
			}
			d, err := e.m.Open(ctx, "snap-bench")
			if err != nil {
				return err
			}
			rng := rand.New(rand.NewPCG(7, 11))
			buf := make([]byte, 1<<20)
			for off := int64(0); off < benchFix.size; off += int64(len(buf)) {
				switch r := rng.IntN(20); {
				case r < 7: // hole
					continue
				case r < 10:
					clear(buf)
				case r < 16:
					fillText(rng, buf)
				default:
					for i := range buf {
						buf[i] = byte(rng.Uint32())
					}
				}
				if _, err := f.WriteAt(buf, off); err != nil {
					return err
				}
				if err := d.WriteAt(ctx, buf, off); err != nil {
					return err
				}
			}
			return d.Close()
		}()
	})
	if benchFix.err != nil {
		b.Fatal(benchFix.err)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchFix.dir != "" {
		os.RemoveAll(benchFix.dir)
	}
	os.Exit(code)
}

func sh(cmd string) error {
	out, err := exec.Command("sh", "-c", cmd).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v\n%s", cmd, err, out)
	}
	return nil
}

// reportRates reports MiB/s of the disk size for both sides and the ratio.
func reportRates(b *testing.B, ours, theirs time.Duration, name string) {
	mib := float64(benchFix.size) / (1 << 20)
	b.ReportMetric(mib/ours.Seconds()*float64(b.N), "omi-MiB/s")
	b.ReportMetric(mib/theirs.Seconds()*float64(b.N), name+"-MiB/s")
	b.ReportMetric(theirs.Seconds()/ours.Seconds(), "speedup")
}

func BenchmarkExportQcow2Gz(b *testing.B) {
	needTool(b, "qemu-img", "gzip")
	benchDisk(b)
	dir := b.TempDir()
	out := filepath.Join(dir, "omi.qcow2.gz")
	var ours, theirs time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		f, err := os.Create(out)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := transfer.ExportSnapshot(context.Background(), benchFix.env.m, "snap-bench", diskimage.FormatQcow2, f, nil); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		ours += time.Since(t0)

		t0 = time.Now()
		q := filepath.Join(dir, "qemu.qcow2")
		if err := sh(fmt.Sprintf("qemu-img convert -f raw -O qcow2 %s %s && gzip -1 -c %s > %s.gz", benchFix.raw, q, q, q)); err != nil {
			b.Fatal(err)
		}
		theirs += time.Since(t0)
		os.Remove(q)
		os.Remove(q + ".gz")
	}
	reportRates(b, ours, theirs, "qemu-img+gzip")
	if st, err := os.Stat(out); err == nil {
		b.ReportMetric(float64(st.Size())/(1<<20), "object-MiB")
	}
}

// BenchmarkImportQcow2Gz imports our export (parallel gzip members) and,
// as a second case, a foreign qcow2.gz (qemu-img + gzip -1: sequential
// inflate), each into a fresh block store.
func BenchmarkImportQcow2Gz(b *testing.B) {
	needTool(b, "qemu-img", "gzip")
	benchDisk(b)
	dir := b.TempDir()
	ourGz := filepath.Join(dir, "omi.qcow2.gz")
	f, err := os.Create(ourGz)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := transfer.ExportSnapshot(context.Background(), benchFix.env.m, "snap-bench", diskimage.FormatQcow2, f, nil); err != nil {
		b.Fatal(err)
	}
	f.Close()
	qemuGz := filepath.Join(dir, "qemu.qcow2.gz")
	if err := sh(fmt.Sprintf("qemu-img convert -f raw -O qcow2 %s %s/q.qcow2 && gzip -1 -c %s/q.qcow2 > %s && rm %s/q.qcow2", benchFix.raw, dir, dir, qemuGz, dir)); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, gz string }{{"ours", ourGz}, {"foreign-gzip", qemuGz}} {
		b.Run(c.name, func(b *testing.B) {
			var ours, theirs, synced time.Duration
			for i := range b.N {
				b.StopTimer()
				storeDir := filepath.Join(dir, "import"+strconv.Itoa(i))
				e, err := openEnv2(storeDir)
				if err != nil {
					b.Fatal(err)
				}
				in, err := os.Open(c.gz)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				t0 := time.Now()
				if _, err := transfer.ImportDisk(context.Background(), in, e.m, "snap-in", transfer.ImportOptions{DeclaredSize: benchFix.size}); err != nil {
					b.Fatal(err)
				}
				ours += time.Since(t0)
				in.Close()
				e.blocks.Close()
				os.RemoveAll(storeDir)

				t0 = time.Now()
				if err := sh(fmt.Sprintf("gunzip -c %s > %s/g.qcow2 && qemu-img convert -f qcow2 -O raw %s/g.qcow2 %s/g.raw", c.gz, dir, dir, dir)); err != nil {
					b.Fatal(err)
				}
				theirs += time.Since(t0)
				// Our import is durable when it returns (the block map
				// root is saved after a Sync of the blocks); theirs is in
				// the page cache. The time to make it durable too is
				// reported apart.
				t0 = time.Now()
				if err := sh(fmt.Sprintf("sync -d %s/g.raw", dir)); err != nil {
					b.Fatal(err)
				}
				synced += time.Since(t0)
				os.Remove(filepath.Join(dir, "g.qcow2"))
				os.Remove(filepath.Join(dir, "g.raw"))
			}
			reportRates(b, ours, theirs, "gunzip+qemu-img")
			b.ReportMetric((theirs+synced).Seconds()/ours.Seconds(), "speedup-vs-synced")
		})
	}
}

// BenchmarkImportDecodeOnly is the import without the block store: gunzip
// (parallel members) and qcow2 decoding of our export, writes discarded.
// With BenchmarkStoreWriteFrom it tells which side bounds an import.
func BenchmarkImportDecodeOnly(b *testing.B) {
	benchDisk(b)
	gz := filepath.Join(b.TempDir(), "omi.qcow2.gz")
	f, err := os.Create(gz)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := transfer.ExportSnapshot(context.Background(), benchFix.env.m, "snap-bench", diskimage.FormatQcow2, f, nil); err != nil {
		b.Fatal(err)
	}
	f.Close()
	b.SetBytes(benchFix.size)
	b.ResetTimer()
	for range b.N {
		in, err := os.Open(gz)
		if err != nil {
			b.Fatal(err)
		}
		_, err = diskread.Decode(context.Background(), in, diskread.Options{DeclaredSize: benchFix.size}, diskread.Observer{},
			func(diskread.Info) error { return nil }, func(int64, []byte) error { return nil })
		in.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStoreWriteFrom is the block store's own ingest rate
// (blockmap.Manager.WriteFrom of the raw disk into a fresh store): hash,
// S2, one durable file per 512 KiB block. It bounds any import.
func BenchmarkStoreWriteFrom(b *testing.B) {
	benchDisk(b)
	b.SetBytes(benchFix.size)
	for range b.N {
		b.StopTimer()
		e, err := openEnv2(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		in, err := os.Open(benchFix.raw)
		if err != nil {
			b.Fatal(err)
		}
		if err := e.m.Create(context.Background(), "v", benchFix.size); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := e.m.WriteFrom(context.Background(), "v", in); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		in.Close()
		e.blocks.Close()
		b.StartTimer()
	}
}

// benchManagerOpts lets TRANSFER_BENCH_WORKERS set blockmap.WithWorkers,
// to see how the store's write-back concurrency bounds an import.
func benchManagerOpts() []blockmap.Option {
	if v, err := strconv.Atoi(os.Getenv("TRANSFER_BENCH_WORKERS")); err == nil && v > 0 {
		return []blockmap.Option{blockmap.WithWorkers(v)}
	}
	return nil
}

// BenchmarkImportDurability is our side of BenchmarkImportQcow2Gz/ours
// alone, twice: as shipped (the blocks are durable when ImportDisk
// returns) and with the block store's Sync hidden (blocks left in the page
// cache, like the qemu-img baseline's output). The difference is what
// durability costs an import.
func BenchmarkImportDurability(b *testing.B) {
	benchDisk(b)
	dir := b.TempDir()
	gz := filepath.Join(dir, "omi.qcow2.gz")
	f, err := os.Create(gz)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := transfer.ExportSnapshot(context.Background(), benchFix.env.m, "snap-bench", diskimage.FormatQcow2, f, nil); err != nil {
		b.Fatal(err)
	}
	f.Close()
	for _, c := range []struct {
		name string
		wrap func(*local.Store) blockstore.Store
	}{
		{"durable", func(s *local.Store) blockstore.Store { return s }},
		{"page-cache", func(s *local.Store) blockstore.Store { return noSync{s} }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(benchFix.size)
			var wall, cpu time.Duration
			for i := range b.N {
				b.StopTimer()
				storeDir := filepath.Join(dir, "import"+strconv.Itoa(i))
				blocks, err := local.Open(filepath.Join(storeDir, "blocks"))
				if err != nil {
					b.Fatal(err)
				}
				maps, err := blockmap.NewDirStore(filepath.Join(storeDir, "maps"))
				if err != nil {
					b.Fatal(err)
				}
				m := blockmap.NewManager(c.wrap(blocks), maps, benchManagerOpts()...)
				in, err := os.Open(gz)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				t0, c0 := time.Now(), cpuTime()
				if _, err := transfer.ImportDisk(context.Background(), in, m, "snap-in", transfer.ImportOptions{DeclaredSize: benchFix.size}); err != nil {
					b.Fatal(err)
				}
				wall, cpu = wall+time.Since(t0), cpu+cpuTime()-c0
				b.StopTimer()
				in.Close()
				blocks.Close()
				os.RemoveAll(storeDir)
				b.StartTimer()
			}
			// CPUs kept busy on average: near GOMAXPROCS, the import is
			// CPU bound; well below, it waits (on the disk, or a stage).
			b.ReportMetric(cpu.Seconds()/wall.Seconds(), "CPUs")
		})
	}
}

// noSync hides the Sync method of a store: blockstore.Sync does nothing.
type noSync struct{ blockstore.Store }

// cpuTime is the user and system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
