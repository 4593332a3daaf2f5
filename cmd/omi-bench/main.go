// Command omi-bench is the load side of omi's API benchmarks, kept in a
// process of its own so that the load generator's CPU, garbage and
// scheduling are not charged to (or hidden in) the server it measures.
//
//	omi-bench load -url URL -ak AK -sk SK -bodies FILE [-clients 8] [-duration 5s]
//	omi-bench baseline -listen ADDR -ak AK -sk SK -response FILE
//
// load sends signed POSTs (OSC4-HMAC-SHA256, as the OUTSCALE SDKs) from
// several keep-alive clients, cycling over the request bodies of FILE (one
// per line, optionally "expect<TAB>body": the answer must then contain
// expect), and prints one JSON line with the throughput and latencies.
//
// baseline serves the unavoidable part of an API call and nothing else: it
// parses the HTTP request, verifies the same SigV4 signature with the
// same package as omi, decodes the JSON body, and writes a fixed answer
// (normally a real answer of omi, so of the same size). It is the
// denominator of the read benchmarks' ratios.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/omiproject/omi/sigv4"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: omi-bench load|baseline [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "load":
		err = load(os.Args[2:])
	case "baseline":
		err = baseline(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "omi-bench:", err)
		os.Exit(1)
	}
}

// Result is what load prints.
type Result struct {
	Requests  int     `json:"requests"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"req_per_s"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`
	Bytes     int     `json:"resp_bytes"` // size of the last answer
}

type request struct{ expect, body []byte }

func readBodies(path string) ([]request, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []request
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := slices.Clone(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		r := request{body: line}
		if e, b, ok := bytes.Cut(line, []byte("\t")); ok {
			r = request{expect: e, body: b}
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no request bodies", path)
	}
	return out, sc.Err()
}

func load(args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	url := fs.String("url", "", "endpoint of the call, e.g. http://127.0.0.1:8080/api/v1/ReadImages")
	ak := fs.String("ak", "", "access key")
	sk := fs.String("sk", "", "secret key")
	bodies := fs.String("bodies", "", "file of request bodies, one per line")
	clients := fs.Int("clients", 8, "concurrent keep-alive clients")
	duration := fs.Duration("duration", 5*time.Second, "how long to send")
	warmup := fs.Duration("warmup", 500*time.Millisecond, "requests sent before measuring")
	check := fs.Bool("check", true, "check that each answer holds the expected text of its line (off for the baseline's fixed answer)")
	once := fs.Bool("once", false, "send each body exactly once, all measured, then stop (writes)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	reqs, err := readBodies(*bodies)
	if err != nil {
		return err
	}
	signer := sigv4.Signer{Algorithm: sigv4.AlgorithmOSC4, AccessKey: *ak, SecretKey: *sk, Region: "eu-west-2", Service: "api"}
	tr := &http.Transport{MaxIdleConns: *clients, MaxIdleConnsPerHost: *clients, IdleConnTimeout: time.Minute,
		DialContext: (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext}
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	var next atomic.Int64
	var measuring atomic.Bool
	var stop atomic.Bool
	lat := make([][]time.Duration, *clients)
	errs := make([]error, *clients)
	var lastSize atomic.Int64
	var wg sync.WaitGroup
	for j := range *clients {
		wg.Go(func() {
			for !stop.Load() {
				i := int(next.Add(1) - 1)
				if *once && i >= len(reqs) {
					return
				}
				r := reqs[i%len(reqs)]
				t0 := time.Now()
				req, err := http.NewRequest("POST", *url, bytes.NewReader(r.body))
				if err != nil {
					errs[j] = err
					return
				}
				req.Header.Set("Content-Type", "application/json")
				if err := signer.Sign(req, r.body, t0); err != nil {
					errs[j] = err
					return
				}
				resp, err := hc.Do(req)
				if err != nil {
					errs[j] = err
					return
				}
				out, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != 200 {
					err = fmt.Errorf("%d %s", resp.StatusCode, out)
				}
				if err == nil && *check && len(r.expect) > 0 && !bytes.Contains(out, r.expect) {
					err = fmt.Errorf("answer to %s lacks %s: %s", r.body, r.expect, out)
				}
				if err != nil {
					errs[j] = err
					return
				}
				if measuring.Load() {
					// A client's slice is its own; the main goroutine reads
					// them after wg.Wait.
					lat[j] = append(lat[j], time.Since(t0))
					lastSize.Store(int64(len(out)))
				}
			}
		})
	}
	var start time.Time
	var elapsed time.Duration
	if *once {
		measuring.Store(true)
		start = time.Now()
		wg.Wait()
		elapsed = time.Since(start)
	} else {
		time.Sleep(*warmup)
		measuring.Store(true)
		start = time.Now()
		time.Sleep(*duration)
		measuring.Store(false)
		elapsed = time.Since(start)
		stop.Store(true)
		wg.Wait()
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	res := Result{Requests: len(all), Seconds: elapsed.Seconds(), PerSecond: float64(len(all)) / elapsed.Seconds(),
		Bytes: int(lastSize.Load())}
	if len(all) > 0 {
		res.P50ms = float64(all[len(all)/2].Microseconds()) / 1000
		res.P99ms = float64(all[len(all)*99/100].Microseconds()) / 1000
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// filters is the shape of the Read calls' requests: decoding into a
// struct, as omi does, not into a generic map.
type filters struct {
	DryRun         bool                `json:"DryRun"`
	Filters        map[string][]string `json:"Filters"`
	NextPageToken  string              `json:"NextPageToken"`
	ResultsPerPage int                 `json:"ResultsPerPage"`
}

func baseline(args []string) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to serve on")
	ak := fs.String("ak", "", "the access key accepted")
	sk := fs.String("sk", "", "its secret key")
	response := fs.String("response", "", "file holding the fixed answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	answer, err := os.ReadFile(*response)
	if err != nil {
		return err
	}
	answerLen := strconv.Itoa(len(answer))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail := func(status int, err error) { http.Error(w, err.Error(), status) }
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			fail(400, err)
			return
		}
		auth, err := sigv4.ParseAuthorization(r.Header.Get("Authorization"))
		if err != nil {
			fail(401, err)
			return
		}
		if auth.AccessKey != *ak {
			fail(401, fmt.Errorf("unknown access key"))
			return
		}
		if err := sigv4.Verify(r, sigv4.CleanPath(r.URL.EscapedPath()), body, auth, *sk, time.Now()); err != nil {
			fail(401, err)
			return
		}
		var in filters
		if err := json.Unmarshal(body, &in); err != nil || !strings.HasPrefix(r.URL.Path, "/api/v1/") {
			fail(400, fmt.Errorf("bad request: %v", err))
			return
		}
		hd := w.Header()
		hd.Set("Content-Type", "application/json")
		hd.Set("Content-Length", answerLen)
		w.Write(answer)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	return srv.Serve(ln)
}
