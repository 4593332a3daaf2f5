package postgres

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/postgres/pgtest"
)

// Benchmark population, the same as the sqlite package's: 100,000 images
// over 100 owners, 10% public, 5% shared with one to three other accounts,
// plus 20,000 snapshots so the image queries have another kind to skip.
const (
	benchImages    = 100000
	benchSnapshots = 20000
	benchOwners    = 100
)

var (
	benchOnce   sync.Once
	benchAdmin  string
	benchSchema string
	benchKeep   bool
	benchDSN    string
	benchIDs    []string
	benchS      *Store
	benchErr    error
)

func benchOwner(i int) string { return fmt.Sprintf("%012d", 100000000000+i) }

// benchStore returns the store on the shared benchmark schema, building it on first use
// (about a minute). OMI_PG_BENCH_SCHEMA names a schema to keep between runs,
// e.g. for profiling; otherwise the schema is dropped when the tests end.
func benchStore(b testing.TB) *Store {
	b.Helper()
	benchOnce.Do(func() {
		benchAdmin = pgtest.Admin(b)
		benchSchema = os.Getenv("OMI_PG_BENCH_SCHEMA")
		benchKeep = benchSchema != ""
		if !benchKeep {
			benchSchema = fmt.Sprintf("omibench_%d", os.Getpid())
		}
		if benchErr = adminExec(benchAdmin, "CREATE SCHEMA IF NOT EXISTS "+benchSchema); benchErr != nil {
			return
		}
		if benchDSN, benchErr = pgtest.WithSearchPath(benchAdmin, benchSchema); benchErr != nil {
			return
		}
		if benchIDs, benchErr = buildBenchDB(benchDSN); benchErr != nil {
			return
		}
		// One store for every benchmark, so that the server's backends
		// live through them (see cpuSince).
		benchS, benchErr = Open(context.Background(), benchDSN)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchS
}

func dropBenchSchema() {
	if benchS != nil {
		benchS.Close()
	}
	if benchSchema != "" && !benchKeep {
		if err := adminExec(benchAdmin, "DROP SCHEMA "+benchSchema+" CASCADE"); err != nil {
			fmt.Fprintf(os.Stderr, "drop benchmark schema: %v\n", err)
		}
	}
}

func adminExec(dsn, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
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

// buildBenchDB fills the schema of dsn, or lists the image ids of a
// population kept from an earlier run.
func buildBenchDB(dsn string) ([]string, error) {
	ctx := context.Background()
	s, err := Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var ids []string
	err = s.View(ctx, func(tx omi.Tx) error {
		return tx.Scan(omi.Query{Kind: omi.KindImage}, func(r omi.Record) (bool, error) {
			if len(r.ID) == len("ami-00000000") {
				ids = append(ids, r.ID)
			}
			return true, nil
		})
	})
	if err != nil || len(ids) >= benchImages {
		return ids, err
	}
	rng := rand.New(rand.NewPCG(42, 42))
	ids = ids[:0]
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
				if err := omi.Put(tx, benchImage(rng, id)); err != nil {
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
			if err := tx.Put(r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Statistics and visibility map, as autovacuum would soon after a
	// bulk load. VACUUM runs outside a transaction: one statement each.
	for _, table := range []string{"records", "shares"} {
		if _, err := s.pool.Exec(ctx, "VACUUM ANALYZE "+table); err != nil {
			return nil, err
		}
	}
	return ids, nil
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
			defer cpuPerOp(b, s)()
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
	defer cpuPerOp(b, s)()
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
	defer cpuPerOp(b, s)()
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
// one durable API write (the server's WAL flush included).
func BenchmarkUpdateInsert(b *testing.B) {
	s := benchStore(b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(4, 4))
	// Ids unique across runs on a kept schema (OMI_PG_BENCH_SCHEMA), and
	// never taken for population ids by buildBenchDB.
	run := time.Now().UnixNano()
	var n atomic.Int64
	b.ReportAllocs()
	defer cpuPerOp(b, s)()
	b.ResetTimer()
	for b.Loop() {
		id := fmt.Sprintf("ami-b%x-%07x", run, n.Add(1))
		rec, err := omi.RecordOf(benchImage(rng, id))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Update(ctx, func(tx omi.Tx) error { return tx.Insert(rec) }); err != nil {
			b.Fatal(err)
		}
	}
}

// cpuPerOp reports CPU time (user + system) per iteration: cpu-ns/op for the
// test process, as the sqlite benchmarks do, and server-cpu-ns/op for the
// PostgreSQL server when it runs on this machine. On a shared machine these
// are steadier than wall-clock ns/op, and a store's cost is both sides'. Use
// as defer cpuPerOp(b, s)() after setup.
func cpuPerOp(b *testing.B, s *Store) func() {
	server := serverPID(s)
	start, startServer := selfCPU(), serverCPU(server)
	return func() {
		if b.N == 0 {
			return
		}
		b.ReportMetric(float64(selfCPU()-start)/float64(b.N), "cpu-ns/op")
		if server > 0 {
			b.ReportMetric(float64(cpuSince(startServer, serverCPU(server)))/float64(b.N), "server-cpu-ns/op")
		}
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverPID returns the pid of the postmaster serving s, the parent of the
// backend process of a connection, or 0 if it is not on this machine.
func serverPID(s *Store) int {
	var backend int
	if err := s.pool.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		return 0
	}
	st, ok := procStat(strconv.Itoa(backend))
	if !ok || st.comm != "postgres" {
		return 0
	}
	return st.ppid
}

// serverCPU returns the CPU ticks used so far by the postmaster pid and each
// of its live children (backends and auxiliary processes).
func serverCPU(pid int) map[int]int64 {
	if pid <= 0 {
		return nil
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	out := map[int]int64{}
	for _, d := range dirs {
		if st, ok := procStat(filepath.Base(d)); ok && (st.pid == pid || st.ppid == pid) {
			out[st.pid] = st.ticks
		}
	}
	return out
}

// cpuSince is the CPU time the server processes of now used since before,
// counting processes started in between in full. Processes that exited in
// between are lost, hence one store kept open for all benchmarks.
func cpuSince(before, now map[int]int64) time.Duration {
	var ticks int64
	for pid, t := range now {
		ticks += t - before[pid]
	}
	// USER_HZ is 100 on every Linux configuration Go supports.
	return time.Duration(ticks) * (time.Second / 100)
}

type stat struct {
	pid, ppid int
	comm      string
	ticks     int64 // utime + stime
}

// procStat parses /proc/<pid>/stat.
func procStat(pid string) (stat, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return stat{}, false
	}
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return stat{}, false
	}
	f := strings.Fields(string(b[end+1:]))
	// After comm: state(0) ppid(1) ... utime(11) stime(12).
	if len(f) < 13 {
		return stat{}, false
	}
	var st stat
	st.pid, _ = strconv.Atoi(pid)
	st.comm = string(b[open+1 : end])
	st.ppid, _ = strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	st.ticks = ut + stt
	return st, true
}
