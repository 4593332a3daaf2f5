package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The benchmarks of this file measure API throughput of a region in the
// shapes of issue 6, side by side: one node on SQLite (the embedded
// default, local blocks), and one, two and three nodes sharing one
// PostgreSQL schema and one S3 bucket. Clients are spread evenly over the
// nodes. Each node is a separate omi process on the same machine, so on
// two cores more nodes share the same CPU: they show the cost of
// coordination through PostgreSQL, not a gain.
//
//	go test -run '^$' -bench Cluster ./cmd/omi
//
// OMI_BENCH_CLIENTS (default 8) sets the number of concurrent clients and
// OMI_BENCH_IMAGES (default 2000) the OMIs registered before ReadImages.

var benchShapes = []struct {
	name string
	opts clusterOpts
}{
	{"sqlite-1node", clusterOpts{nodes: 1, sqlite: true}},
	{"pg-1node", clusterOpts{nodes: 1}},
	{"pg-2nodes", clusterOpts{nodes: 2}},
	{"pg-3nodes", clusterOpts{nodes: 3}},
}

func benchEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchRegion is a started region with snapshots to register OMIs from.
type benchRegion struct {
	c      *multiNode
	snaps  []string
	images []string
	volume string
	names  atomic.Int64
}

// newBenchRegion starts a region of shape o, without garbage collection
// (it would compete for the CPU being measured), with 16 snapshots of one
// volume and images OMIs registered from them.
func newBenchRegion(b *testing.B, o clusterOpts, images int) *benchRegion {
	b.Helper()
	o.gcInterval = "0"
	if o.sqlite && o.dataDir == "" {
		o.dataDir = b.TempDir()
	}
	r := &benchRegion{c: startCluster(b, o)}
	first := r.c.nodes[0]
	var vol struct{ Volume struct{ VolumeId string } }
	if err := nodeCall(first, "CreateVolume", map[string]any{"Size": 1, "SubregionName": "eu-west-2a"}, &vol); err != nil {
		b.Fatal(err)
	}
	if err := awaitState(first, "volume", vol.Volume.VolumeId, "available", 20*time.Second); err != nil {
		b.Fatal(err)
	}
	for range 16 {
		var snap struct{ Snapshot struct{ SnapshotId string } }
		if err := nodeCall(first, "CreateSnapshot", map[string]any{"VolumeId": vol.Volume.VolumeId}, &snap); err != nil {
			b.Fatal(err)
		}
		if err := awaitState(first, "snapshot", snap.Snapshot.SnapshotId, "completed", 30*time.Second); err != nil {
			b.Fatal(err)
		}
		r.snaps = append(r.snaps, snap.Snapshot.SnapshotId)
	}
	start := time.Now()
	ids, err := r.clients(8, images, func(p *proc, i int) (string, error) { return r.register(p, i) })
	if err != nil {
		b.Fatal(err)
	}
	r.images = ids
	if images > 0 {
		b.Logf("%s: registered %d OMIs in %v", b.Name(), images, time.Since(start).Round(time.Millisecond))
		// Measure reads once the inspections the registrations queued are
		// done, as the ReadPath benchmark does: their writes are not the
		// reads' cost.
		if o.sqlite {
			awaitSettled(b, o.dataDir)
		} else {
			awaitSettledPG(b, r.c.dsn)
		}
	}
	return r
}

// awaitSettledPG is awaitSettled for a region on the PostgreSQL store dsn.
func awaitSettledPG(tb testing.TB, dsn string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(context.Background())
	for {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM records WHERE kind = 'work'`).Scan(&n); err != nil {
			tb.Fatalf("%d work items still queued: %v", n, err)
		}
		if n == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// register registers one OMI from the i-th snapshot (round robin) through
// p and returns its id.
func (r *benchRegion) register(p *proc, i int) (string, error) {
	var out struct{ Image struct{ ImageId string } }
	err := nodeCall(p, "CreateImage", registerBody(fmt.Sprintf("bench-%d", r.names.Add(1)), r.snaps[i%len(r.snaps)]), &out)
	return out.Image.ImageId, err
}

// clients runs n calls of op from k concurrent clients, client j calling
// through node j modulo the number of nodes, and returns op's results in
// call order.
func (r *benchRegion) clients(k, n int, op func(p *proc, i int) (string, error)) ([]string, error) {
	out := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, k)
	for j := range k {
		p := r.c.node(j)
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				s, err := op(p, i)
				if err != nil {
					errs[j] = err
					return
				}
				out[i] = s
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// measure runs op for b.Loop's iterations from OMI_BENCH_CLIENTS
// concurrent clients spread over the nodes, and reports the throughput
// (req/s) and latency percentiles of the calls.
func (r *benchRegion) measure(b *testing.B, op func(p *proc, i int) error) {
	k := benchEnvInt("OMI_BENCH_CLIENTS", 8)
	jobs := make(chan int)
	lat := make([][]time.Duration, k)
	errs := make([]error, k)
	var wg sync.WaitGroup
	for j := range k {
		p := r.c.node(j)
		wg.Go(func() {
			for i := range jobs {
				if errs[j] != nil {
					continue
				}
				t0 := time.Now()
				errs[j] = op(p, i)
				lat[j] = append(lat[j], time.Since(t0))
			}
		})
	}
	start := time.Now()
	n := 0
	for b.Loop() {
		jobs <- n
		n++
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "req/s")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// BenchmarkClusterReadImages reads one OMI by id per call, among
// OMI_BENCH_IMAGES registered ones.
func BenchmarkClusterReadImages(b *testing.B) {
	for _, s := range benchShapes {
		b.Run(s.name, func(b *testing.B) {
			r := newBenchRegion(b, s.opts, benchEnvInt("OMI_BENCH_IMAGES", 2000))
			r.measure(b, func(p *proc, i int) error {
				id := r.images[(i*7919)%len(r.images)]
				var out struct{ Images []struct{ ImageId string } }
				if err := nodeCall(p, "ReadImages", map[string]any{"Filters": map[string]any{"ImageIds": []string{id}}}, &out); err != nil {
					return err
				}
				if len(out.Images) != 1 || out.Images[0].ImageId != id {
					return fmt.Errorf("ReadImages %s through %s: %+v", id, p.api, out.Images)
				}
				return nil
			})
		})
	}
}

// BenchmarkClusterCreateImage registers one OMI from a snapshot per call
// (16 snapshots, round robin, so that calls do not all update the same
// snapshot's record).
func BenchmarkClusterCreateImage(b *testing.B) {
	for _, s := range benchShapes {
		b.Run(s.name, func(b *testing.B) {
			r := newBenchRegion(b, s.opts, 0)
			r.measure(b, func(p *proc, i int) error {
				_, err := r.register(p, i)
				return err
			})
		})
	}
}
