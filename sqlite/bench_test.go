package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/omiproject/omi"
)

// Benchmark population: 100,000 images over 100 owners, 10% public, 5%
// shared with one to three other accounts, plus 20,000 snapshots so the
// image queries have another kind to skip.
const (
	benchImages    = 100000
	benchSnapshots = 20000
	benchOwners    = 100
)

var (
	benchOnce sync.Once
	benchDir  string
	benchPath string
	benchIDs  []string
	benchErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

func benchOwner(i int) string { return fmt.Sprintf("%012d", 100000000000+i) }

// benchStore opens the shared benchmark database, building it on first use.
func benchStore(b testing.TB) *Store {
	b.Helper()
	benchOnce.Do(func() {
		// OMI_SQLITE_BENCH_DB keeps the population between runs (it takes
		// several seconds to build), e.g. for profiling.
		if p := os.Getenv("OMI_SQLITE_BENCH_DB"); p != "" {
			benchPath = p
			if _, err := os.Stat(p); err == nil {
				benchIDs, benchErr = readBenchIDs(p)
				return
			}
		} else {
			benchDir, benchErr = os.MkdirTemp("", "omi-sqlite-bench-")
			if benchErr != nil {
				return
			}
			benchPath = filepath.Join(benchDir, "bench.db")
		}
		benchIDs, benchErr = buildBenchDB(benchPath)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	s, err := Open(context.Background(), benchPath)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func benchImage(rng *rand.Rand, id string) *omi.Image {
	owner := benchOwner(rng.IntN(benchOwners))
	img := &omi.Image{
		AccountId: owner, Architecture: "x86_64", CreationDate: "2026-01-02T03:04:05.000Z",
		Description: "benchmark image", ImageId: id, ImageName: fmt.Sprintf("image-%s-%d", owner, rng.IntN(1000)),
		ImageType: "machine", RootDeviceName: "/dev/sda1", RootDeviceType: "bsu", State: omi.ImageAvailable,
		BootModes: []string{"legacy"}, ProductCodes: []string{"0001"},
		BlockDeviceMappings: []omi.ImageBDM{{DeviceName: "/dev/sda1",
			Bsu: &omi.BsuImage{SnapshotId: "snap-" + id[4:], VolumeType: "standard"}}},
		Tags: []omi.Tag{{Key: "env", Value: "bench"}, {Key: "team", Value: owner}},
	}
	img.PermissionsToLaunch.GlobalPermission = rng.IntN(10) == 0
	if rng.IntN(20) == 0 {
		for range 1 + rng.IntN(3) {
			img.PermissionsToLaunch.AccountIds = append(img.PermissionsToLaunch.AccountIds, benchOwner(rng.IntN(benchOwners)))
		}
	}
	return img
}

func buildBenchDB(path string) ([]string, error) {
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	rng := rand.New(rand.NewPCG(42, 42))
	ids := make([]string, 0, benchImages)
	seen := map[string]bool{}
	for len(ids) < benchImages {
		id := fmt.Sprintf("ami-%08x", rng.Uint32())
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	const perTx = 10000
	for start := 0; start < len(ids); start += perTx {
		err := s.Update(ctx, func(tx omi.Tx) error {
			for _, id := range ids[start:min(start+perTx, len(ids))] {
				if err := omi.Insert(tx, benchImage(rng, id)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	err = s.Update(ctx, func(tx omi.Tx) error {
		for i := range benchSnapshots {
			r := omi.Record{Kind: omi.KindSnapshot, ID: fmt.Sprintf("snap-%08x", i), Owner: benchOwner(i % benchOwners),
				Doc: []byte(`{"SnapshotId":"x"}`)}
			if err := tx.Insert(r); err != nil {
				return err
			}
		}
		return nil
	})
	return ids, err
}

// cpuPerOp reports the process CPU time (user + system) per iteration as
// cpu-ns/op, alongside wall-clock ns/op: on a shared machine the first is
// the steadier measure of cost. Use as defer cpuPerOp(b)() after setup.
func cpuPerOp(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readBenchIDs lists the image ids of an existing benchmark database.
func readBenchIDs(path string) ([]string, error) {
	s, err := Open(context.Background(), path)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var ids []string
	err = s.View(context.Background(), func(tx omi.Tx) error {
		return tx.Scan(omi.Query{Kind: omi.KindImage}, func(r omi.Record) (bool, error) {
			if len(r.ID) == len("ami-00000000") {
				ids = append(ids, r.ID)
			}
			return true, nil
		})
	})
	return ids, err
}

// BenchmarkScanVisiblePage lists one page (Limit 50) of the images an
// account may see: its own, the public ones and those shared with it, as
// ReadImages does.
func BenchmarkScanVisiblePage(b *testing.B) {
	for _, tc := range []struct {
		name  string
		after func(rng *rand.Rand) string
	}{
		{"first", func(*rand.Rand) string { return "" }},
		{"random", func(rng *rand.Rand) string { return benchIDs[rng.IntN(len(benchIDs))] }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := benchStore(b)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(1, 1))
			b.ReportAllocs()
			defer cpuPerOp(b)()
			b.ResetTimer()
			for b.Loop() {
				q := omi.Query{Kind: omi.KindImage, VisibleTo: benchOwner(rng.IntN(benchOwners)), Limit: 50, AfterID: tc.after(rng)}
				n := 0
				err := s.View(ctx, func(tx omi.Tx) error {
					return tx.Scan(q, func(omi.Record) (bool, error) { n++; return true, nil })
				})
				if err != nil {
					b.Fatal(err)
				}
				if n != 50 && q.AfterID == "" {
					b.Fatalf("page of %d records", n)
				}
			}
		})
	}
}

// BenchmarkGet reads one image by id in its own View.
func BenchmarkGet(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(2, 2))
	b.ReportAllocs()
	defer cpuPerOp(b)()
	b.ResetTimer()
	for b.Loop() {
		id := benchIDs[rng.IntN(len(benchIDs))]
		err := s.View(ctx, func(tx omi.Tx) error {
			_, err := tx.Get(omi.KindImage, id)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetParallel is BenchmarkGet from GOMAXPROCS goroutines, the
// shape of concurrent ReadImages-by-id requests.
func BenchmarkGetParallel(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	var seed atomic.Uint64
	b.ReportAllocs()
	defer cpuPerOp(b)()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seed.Add(1), 3))
		for pb.Next() {
			id := benchIDs[rng.IntN(len(benchIDs))]
			err := s.View(ctx, func(tx omi.Tx) error {
				_, err := tx.Get(omi.KindImage, id)
				return err
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkUpdateInsert commits one Update inserting one image: the cost of
// one durable API write (fsync of the WAL included).
func BenchmarkUpdateInsert(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 4))
	// A run prefix keeps ids fresh when the database is kept between runs.
	prefix := fmt.Sprintf("ami-%06x", rng.Uint32()&0xffffff)
	var n atomic.Int64
	b.ReportAllocs()
	defer cpuPerOp(b)()
	b.ResetTimer()
	for b.Loop() {
		id := fmt.Sprintf("%s-%d", prefix, n.Add(1))
		rec, err := omi.RecordOf(benchImage(rng, id))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Update(ctx, func(tx omi.Tx) error { return tx.Insert(rec) }); err != nil {
			b.Fatal(err)
		}
	}
}
