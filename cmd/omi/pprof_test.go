package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPprofOnMetricsListener checks that --pprof adds Go's profiles to the
// metrics listener without taking /metrics away, and that they are not
// served without it.
func TestPprofOnMetricsListener(t *testing.T) {
	bin := buildOmi(t)
	get := func(addr, path string) string {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return ""
		}
		return string(b)
	}
	for _, withPprof := range []bool{true, false} {
		metricsAddr := freePort(t)
		args := []string{"--metrics-listen", metricsAddr, "--data", t.TempDir()}
		if withPprof {
			args = append(args, "--pprof")
		}
		launch(t, bin, nil, "", nil, args...)
		for i := 0; !up(metricsAddr); i++ {
			if i == 100 {
				t.Fatal("metrics endpoint did not start")
			}
			time.Sleep(100 * time.Millisecond)
		}
		if m := get(metricsAddr, "/metrics"); !strings.Contains(m, "go_goroutines") {
			t.Errorf("--pprof=%v: /metrics has no Go runtime metric:\n%.300s", withPprof, m)
		}
		index := get(metricsAddr, "/debug/pprof/")
		if got := strings.Contains(index, "Types of profiles available"); got != withPprof {
			t.Errorf("--pprof=%v: /debug/pprof/ lists the profiles: %v\n%.300s", withPprof, got, index)
		}
	}
}
