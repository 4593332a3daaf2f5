package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/sqlite"
)

// The benchmarks of this file measure omi against a baseline under load
// from a separate process (cmd/omi-bench), both on the same machine and
// interleaved, round after round, so that the load of other work on the
// machine falls on both alike. The figure to read is the ratio.
//
//	go test -run '^$' -bench 'ReadPath|RegistrationAtScale' -benchtime 3x ./cmd/omi
//
// OMI_BENCH_SECONDS (default 3) is how long each load run lasts,
// OMI_BENCH_CLIENTS (default 8) the load generator's keep-alive clients,
// OMI_BENCH_PROFILE a directory where the CPU profile of omi during its
// first run of each case is written, OMI_BENCH_OMI_BIN an omi binary to
// measure instead of this tree's (an older build, for before/after).

var (
	loadgenOnce sync.Once
	loadgenPath string
	loadgenErr  error
	loadgenOut  []byte
)

// buildLoadgen builds cmd/omi-bench next to the omi binary.
func buildLoadgen(tb testing.TB) string {
	tb.Helper()
	bin := buildOmi(tb)
	loadgenOnce.Do(func() {
		loadgenPath = filepath.Join(filepath.Dir(bin), "omi-bench")
		loadgenOut, loadgenErr = exec.Command("go", "build", "-o", loadgenPath, "../omi-bench").CombinedOutput()
	})
	if loadgenErr != nil {
		tb.Fatalf("build omi-bench: %v\n%s", loadgenErr, loadgenOut)
	}
	return loadgenPath
}

// loadResult is what omi-bench load prints.
type loadResult struct {
	Requests  int     `json:"requests"`
	PerSecond float64 `json:"req_per_s"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	Bytes     int     `json:"resp_bytes"`
	// CPUus is the server's CPU per request in µs (withCPU), 0 if not
	// measured.
	CPUus float64 `json:"-"`
}

// runLoad runs the load generator against url with the bodies of file.
func runLoad(tb testing.TB, url, file string, extra ...string) loadResult {
	tb.Helper()
	args := append([]string{"load", "-url", url, "-ak", joeAK, "-sk", joeSK, "-bodies", file,
		"-clients", fmt.Sprint(benchEnvInt("OMI_BENCH_CLIENTS", 8)),
		"-duration", fmt.Sprintf("%ds", benchEnvInt("OMI_BENCH_SECONDS", 3))}, extra...)
	cmd := exec.Command(buildLoadgen(tb), args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("omi-bench load %s: %v", url, err)
	}
	var r loadResult
	if err := json.Unmarshal(out, &r); err != nil {
		tb.Fatalf("omi-bench load: %v: %s", err, out)
	}
	return r
}

// procCPU returns the CPU time (user and system) process pid has used so
// far, from /proc (Linux), or 0 if it cannot be read.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces, in parentheses):
	// utime and stime are the 12th and 13th, in clock ticks (100 per second
	// on Linux).
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0
	}
	var ut, st int64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// withCPU runs a load run and adds to its result the server's CPU per
// request: the CPU process pid used during the run (its warm-up included)
// over the requests the run would have sent in that whole time.
func withCPU(pid int, run func() loadResult) loadResult {
	c0 := procCPU(pid)
	t0 := time.Now()
	r := run()
	cpu, wall := procCPU(pid)-c0, time.Since(t0)
	if r.PerSecond > 0 && cpu > 0 {
		r.CPUus = float64(cpu.Microseconds()) / (r.PerSecond * wall.Seconds())
	}
	return r
}

// startBaseline starts the baseline server answering answer to every
// correctly signed request, and returns its address and process id.
func startBaseline(tb testing.TB, answer []byte) (string, int) {
	tb.Helper()
	file := filepath.Join(tb.TempDir(), "answer.json")
	if err := os.WriteFile(file, answer, 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(buildLoadgen(tb), "baseline", "-ak", joeAK, "-sk", joeSK, "-response", file)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("baseline server: %v", err)
	}
	return strings.TrimSpace(addr), cmd.Process.Pid
}

// writeBodies writes the load generator's request file: one
// "expect<TAB>body" line per request.
func writeBodies(tb testing.TB, lines []string) string {
	tb.Helper()
	file := filepath.Join(tb.TempDir(), "bodies")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return file
}

// cloneImages adds copies of the OMIs of the SQLite store under dataDir
// (the node must be stopped) until it holds total, straight through the
// store in large transactions: seeding 100,000 OMIs through the API would
// take longer than the benchmark. Copies keep everything but their id and
// name, so they are as visible and as large as the originals.
func cloneImages(tb testing.TB, dataDir string, total int) []string {
	tb.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dataDir, "omi.db"))
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	var src []omi.Record
	if err := st.View(ctx, func(tx omi.Tx) error {
		return tx.Scan(omi.Query{Kind: omi.KindImage}, func(r omi.Record) (bool, error) {
			src = append(src, r)
			return true, nil
		})
	}); err != nil {
		tb.Fatal(err)
	}
	if len(src) == 0 {
		tb.Fatal("no OMI to clone")
	}
	uses := map[string][]string{} // snapshot id -> clones using it
	var clones []string
	for n := len(src); n < total; {
		err := st.Update(ctx, func(tx omi.Tx) error {
			for i := 0; i < 5000 && n+i < total; i++ {
				r := src[(n+i)%len(src)]
				var doc map[string]any
				if err := json.Unmarshal(r.Doc, &doc); err != nil {
					return err
				}
				r.Name = fmt.Sprintf("clone-%d", n+i)
				doc["ImageName"], doc["FileLocation"] = r.Name, r.Owner+"/"+r.Name
				for {
					// Ids are 32 random bits: among 100,000 a collision or
					// two is likely.
					r.ID = omi.NewID(omi.PrefixImage)
					doc["ImageId"] = r.ID
					var err error
					if r.Doc, err = json.Marshal(doc); err != nil {
						return err
					}
					if err = tx.Insert(r); !errors.Is(err, omi.ErrExists) {
						if err != nil {
							return err
						}
						break
					}
				}
				var img omi.Image
				if err := json.Unmarshal(r.Doc, &img); err != nil {
					return err
				}
				for _, sn := range img.SnapshotIDs() {
					uses[sn] = append(uses[sn], r.ID)
				}
				clones = append(clones, r.ID)
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
		n += 5000
	}
	// Record the clones' use of their snapshots as a registration would:
	// one use record per pair, or, with OMI_BENCH_LEGACY_USEDBY=1, in the
	// snapshot's UsedBy list as omi did before (to measure an older build
	// on a store shaped as it would have shaped it).
	legacy := os.Getenv("OMI_BENCH_LEGACY_USEDBY") == "1"
	for sn, ids := range uses {
		for len(ids) > 0 {
			chunk := ids[:min(len(ids), 5000)]
			ids = ids[len(chunk):]
			err := st.Update(ctx, func(tx omi.Tx) error {
				if !legacy {
					for _, id := range chunk {
						if err := tx.Put(omi.Record{Kind: omi.KindSnapshotUse, ID: sn + "/" + id, Doc: []byte("{}")}); err != nil {
							return err
						}
					}
					return nil
				}
				rec, err := tx.Get(omi.KindSnapshot, sn)
				if err != nil {
					return err
				}
				var doc map[string]any
				if err := json.Unmarshal(rec.Doc, &doc); err != nil {
					return err
				}
				used, _ := doc["UsedBy"].([]any)
				for _, id := range chunk {
					used = append(used, id)
				}
				doc["UsedBy"] = used
				if rec.Doc, err = json.Marshal(doc); err != nil {
					return err
				}
				return tx.Put(rec)
			})
			if err != nil {
				tb.Fatal(err)
			}
		}
	}
	return clones
}

// awaitSettled waits until the node on the SQLite store under dataDir has
// no queued work left (the inspections that registrations queue), reading
// the database read-only beside it, so that a measurement does not count
// background work left over from the setup.
func awaitSettled(tb testing.TB, dataDir string) {
	tb.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "omi.db")+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM records WHERE kind = 'work'`).Scan(&n); err != nil {
			tb.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d work items still queued after 5 minutes", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// profileDuring fetches a CPU profile of the node from its metrics
// listener while fn runs, into OMI_BENCH_PROFILE/name.pprof.
func profileDuring(tb testing.TB, metricsAddr, name string, fn func()) {
	dir := os.Getenv("OMI_BENCH_PROFILE")
	if dir == "" || metricsAddr == "" {
		fn()
		return
	}
	done := make(chan error, 1)
	go func() {
		secs := benchEnvInt("OMI_BENCH_SECONDS", 3)
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", metricsAddr, secs))
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(filepath.Join(dir, strings.ReplaceAll(name, "/", "_")+".pprof"))
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		_, err = io.Copy(f, resp.Body)
		done <- err
	}()
	fn()
	if err := <-done; err != nil {
		tb.Logf("profile %s: %v", name, err)
	}
}

// sideBySide runs omi and the baseline in turn for each of b.Loop's rounds
// (alternating which goes first) and reports both throughputs and the
// median of the per-round ratios.
func sideBySide(b *testing.B, name, metricsAddr string, omiRun, baseRun func() loadResult) {
	var ratios, omis, bases, omiCPU, baseCPU []float64
	var last loadResult
	round := 0
	for b.Loop() {
		var o, base loadResult
		if round%2 == 0 {
			if round == 0 {
				profileDuring(b, metricsAddr, name, func() { o = omiRun() })
			} else {
				o = omiRun()
			}
			base = baseRun()
		} else {
			base = baseRun()
			o = omiRun()
		}
		b.Logf("%s round %d: omi %.0f req/s (p50 %.2f ms, p99 %.2f ms, %d B, %.0f µs CPU/req), baseline %.0f req/s (p50 %.2f ms, %.0f µs CPU/req): %.2fx",
			name, round, o.PerSecond, o.P50ms, o.P99ms, o.Bytes, o.CPUus, base.PerSecond, base.P50ms, base.CPUus, o.PerSecond/base.PerSecond)
		ratios = append(ratios, o.PerSecond/base.PerSecond)
		omiCPU = append(omiCPU, o.CPUus)
		baseCPU = append(baseCPU, base.CPUus)
		omis = append(omis, o.PerSecond)
		bases = append(bases, base.PerSecond)
		last = o
		round++
	}
	med := func(v []float64) float64 { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
	b.ReportMetric(med(omis), "omi-req/s")
	b.ReportMetric(med(bases), "baseline-req/s")
	b.ReportMetric(med(ratios), "ratio")
	b.ReportMetric(last.P99ms, "omi-p99-ms")
	b.ReportMetric(med(omiCPU), "omi-cpu-µs/req")
	b.ReportMetric(med(baseCPU), "baseline-cpu-µs/req")
}

// BenchmarkReadPath reads one resource by id per request (ReadImages among
// 2,000 and 100,000 OMIs, ReadSnapshots, ReadVolumes) from 8 signed
// keep-alive clients of a separate process, against a real omi serve on
// SQLite and against the baseline server of cmd/omi-bench, which verifies
// the same signature, decodes the same JSON and answers a real answer of
// omi of the same size.
func BenchmarkReadPath(b *testing.B) {
	buildLoadgen(b)
	for _, images := range []int{2000, 100000} {
		dir := b.TempDir()
		o := clusterOpts{nodes: 1, sqlite: true, dataDir: dir}
		metrics := ""
		if os.Getenv("OMI_BENCH_PROFILE") != "" {
			metrics = freePort(b)
			o.extra = []string{"--metrics-listen", metrics, "--pprof"}
		}
		o.gcInterval = "0"
		r := &benchRegion{c: startClusterForBench(b, o)}
		r.setup(b, min(images, 2000))
		if images > len(r.images) {
			r.c.stop()
			start := time.Now()
			// Read ids spread over the whole store, not only the first
			// 2,000: the store's b-tree pages of the clones are read too.
			all := append(r.images, cloneImages(b, dir, images)...)
			r.images = nil
			for i := range 2000 {
				r.images = append(r.images, all[i*len(all)/2000])
			}
			b.Logf("cloned to %d OMIs in %v", images, time.Since(start).Round(time.Millisecond))
			r.c = startClusterForBench(b, o)
		}
		awaitSettled(b, dir)
		p := r.c.nodes[0]
		cases := []struct {
			call, filter string
			ids          []string
		}{
			{"ReadImages", "ImageIds", r.images},
			{"ReadSnapshots", "SnapshotIds", r.snaps},
			{"ReadVolumes", "VolumeIds", []string{r.volume}},
		}
		for _, c := range cases {
			if images > 2000 && c.call != "ReadImages" {
				continue
			}
			b.Run(fmt.Sprintf("%s/images=%d", c.call, images), func(b *testing.B) {
				var lines []string
				for i := range 2000 {
					id := c.ids[(i*7919)%len(c.ids)]
					body, _ := json.Marshal(map[string]any{"Filters": map[string]any{c.filter: []string{id}}})
					lines = append(lines, `"`+id+`"`+"\t"+string(body))
				}
				file := writeBodies(b, lines)
				_, line, _ := strings.Cut(lines[0], "\t")
				status, answer, err := apiSend(p, c.call, json.RawMessage(line))
				if err != nil || status != 200 {
					b.Fatalf("%s: %d %s %v", c.call, status, answer, err)
				}
				base, basePID := startBaseline(b, answer)
				sideBySide(b, b.Name(), metrics,
					func() loadResult {
						return withCPU(p.cmd.Process.Pid, func() loadResult { return runLoad(b, "http://"+p.api+"/api/v1/"+c.call, file) })
					},
					func() loadResult {
						return withCPU(basePID, func() loadResult {
							return runLoad(b, "http://"+base+"/api/v1/"+c.call, file, "-check=false")
						})
					})
			})
		}
		r.c.stop()
	}
}

// startClusterForBench is startCluster for a single SQLite node, running
// the omi binary OMI_BENCH_OMI_BIN instead of this tree's when set (to
// measure an older build with the same benchmark).
func startClusterForBench(b *testing.B, o clusterOpts) *multiNode {
	if bin := os.Getenv("OMI_BENCH_OMI_BIN"); bin != "" {
		c := &multiNode{tb: b, bin: bin}
		dir := o.dataDir
		if dir == "" {
			dir = b.TempDir()
		}
		c.add(nil, append([]string{"--data", dir, "--catalog=false", "--gc-interval", o.gcInterval}, o.extra...)...)
		return c
	}
	return startCluster(b, o)
}

// setup creates a volume, 16 snapshots of it and n OMIs registered from
// them, as newBenchRegion does, on an already started region.
func (r *benchRegion) setup(b *testing.B, n int) {
	b.Helper()
	first := r.c.nodes[0]
	var vol struct{ Volume struct{ VolumeId string } }
	if err := nodeCall(first, "CreateVolume", map[string]any{"Size": 1, "SubregionName": "eu-west-2a"}, &vol); err != nil {
		b.Fatal(err)
	}
	r.volume = vol.Volume.VolumeId
	if err := awaitState(first, "volume", r.volume, "available", 20*time.Second); err != nil {
		b.Fatal(err)
	}
	for range 16 {
		var snap struct{ Snapshot struct{ SnapshotId string } }
		if err := nodeCall(first, "CreateSnapshot", map[string]any{"VolumeId": r.volume}, &snap); err != nil {
			b.Fatal(err)
		}
		if err := awaitState(first, "snapshot", snap.Snapshot.SnapshotId, "completed", 30*time.Second); err != nil {
			b.Fatal(err)
		}
		r.snaps = append(r.snaps, snap.Snapshot.SnapshotId)
	}
	ids, err := r.clients(8, n, func(p *proc, i int) (string, error) { return r.register(p, i) })
	if err != nil {
		b.Fatal(err)
	}
	r.images = ids
}

// BenchmarkRegistrationAtScale registers OMIs from snapshots (CreateImage,
// 8 clients of a separate process) on two SQLite nodes side by side: one
// that starts empty, measured over its first 1,000 registrations, and one
// whose store holds 100,000 OMIs (OMI_BENCH_IMAGES). Each round sends 250
// registrations to each, alternating which goes first; -benchtime 4x
// covers the first thousand. The ratio is the large store's throughput
// over the small one's: 1 means a write's cost does not grow with the
// store.
func BenchmarkRegistrationAtScale(b *testing.B) {
	buildLoadgen(b)
	total := benchEnvInt("OMI_BENCH_IMAGES", 100000)
	small := &benchRegion{c: startClusterForBench(b, clusterOpts{nodes: 1, sqlite: true, gcInterval: "0"})}
	small.setup(b, 0)
	dir := b.TempDir()
	o := clusterOpts{nodes: 1, sqlite: true, dataDir: dir, gcInterval: "0"}
	large := &benchRegion{c: startClusterForBench(b, o)}
	large.setup(b, 16)
	large.c.stop()
	start := time.Now()
	cloneImages(b, dir, total)
	b.Logf("cloned to %d OMIs in %v", total, time.Since(start).Round(time.Millisecond))
	large.c = startClusterForBench(b, o)
	awaitSettled(b, dir)
	round := 0
	bodies := func(r *benchRegion) string {
		var lines []string
		for i := range 250 {
			body, _ := json.Marshal(registerBody(fmt.Sprintf("reg-%d-%d", round, i), r.snaps[i%len(r.snaps)]))
			lines = append(lines, `"ImageId"`+"\t"+string(body))
		}
		return writeBodies(b, lines)
	}
	var ratios, smalls, larges []float64
	for b.Loop() {
		sf, lf := bodies(small), bodies(large)
		run := func(r *benchRegion, f string) loadResult {
			return runLoad(b, "http://"+r.c.nodes[0].api+"/api/v1/CreateImage", f, "-once")
		}
		var s, l loadResult
		if round%2 == 0 {
			s, l = run(small, sf), run(large, lf)
		} else {
			l, s = run(large, lf), run(small, sf)
		}
		b.Logf("round %d: empty store %.0f req/s (p99 %.1f ms), %d OMIs stored %.0f req/s (p99 %.1f ms): %.2fx",
			round, s.PerSecond, s.P99ms, total, l.PerSecond, l.P99ms, l.PerSecond/s.PerSecond)
		ratios = append(ratios, l.PerSecond/s.PerSecond)
		smalls = append(smalls, s.PerSecond)
		larges = append(larges, l.PerSecond)
		round++
	}
	med := func(v []float64) float64 { v = slices.Clone(v); slices.Sort(v); return v[len(v)/2] }
	b.ReportMetric(med(smalls), "first1000-req/s")
	b.ReportMetric(med(larges), "at-large-req/s")
	b.ReportMetric(med(ratios), "ratio")
}
