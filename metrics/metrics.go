// Package metrics exposes omi's Prometheus metrics: API calls by call and
// code with latencies, background task outcomes, and block store traffic.
// It is the only package that imports the Prometheus client.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/omiproject/omi/blockstore"
)

// Metrics holds the collectors of one omi process.
type Metrics struct {
	reg        *prometheus.Registry
	calls      *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	tasks      *prometheus.HistogramVec
	blockOps   *prometheus.CounterVec
	blockBytes *prometheus.CounterVec
	auth       *prometheus.CounterVec
}

// New registers omi's collectors, plus the Go runtime and process ones.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.calls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "omi_api_requests_total",
		Help: "API calls by operation, OUTSCALE error code (empty on success) and HTTP status."}, []string{"call", "code", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "omi_api_request_duration_seconds",
		Help: "API call latency by operation.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"call"})
	m.tasks = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "omi_task_duration_seconds",
		Help: "Background task durations by kind and final state.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 18)}, []string{"kind", "state"})
	m.blockOps = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "omi_blockstore_operations_total",
		Help: "Block store operations by kind and outcome."}, []string{"op", "outcome"})
	m.blockBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "omi_blockstore_bytes_total",
		Help: "Uncompressed bytes put into and read from the block store."}, []string{"op"})
	m.auth = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "omi_auth_password_events_total",
		Help: "Password checks (kind login: Basic authentication, check: CheckAuthentication) that failed (outcome failure), started a lockout of a login or client address (outcome lockout, with scope) or were refused during one (outcome refused, with scope)."},
		[]string{"kind", "outcome", "scope"})
	m.reg.MustRegister(m.calls, m.latency, m.tasks, m.blockOps, m.blockBytes, m.auth,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveCall records one API call.
func (m *Metrics) ObserveCall(call, code string, status int, d time.Duration) {
	if call == "" {
		call = "unknown"
	}
	m.calls.WithLabelValues(call, code, itoa(status)).Inc()
	m.latency.WithLabelValues(call).Observe(d.Seconds())
}

// ObserveAuth records a failed or refused password check, or a lockout.
func (m *Metrics) ObserveAuth(kind, outcome, scope string) {
	m.auth.WithLabelValues(kind, outcome, scope).Inc()
}

// ObserveTask records a finished background task.
func (m *Metrics) ObserveTask(kind, state string, d time.Duration) {
	m.tasks.WithLabelValues(kind, state).Observe(d.Seconds())
}

func itoa(n int) string {
	if n < 0 {
		return "0"
	}
	var b [8]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// Blocks wraps a block store so that its traffic is counted.
func (m *Metrics) Blocks(s blockstore.Store) blockstore.Store { return &countingStore{Store: s, m: m} }

type countingStore struct {
	blockstore.Store
	m *Metrics
}

// Sync passes through to the wrapped store, so that wrapping never turns
// a batching store's deferred durability into none.
func (c *countingStore) Sync(ctx context.Context) error { return blockstore.Sync(ctx, c.Store) }

func outcome(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

func (c *countingStore) Put(ctx context.Context, data []byte) (blockstore.Hash, error) {
	h, err := c.Store.Put(ctx, data)
	c.m.blockOps.WithLabelValues("put", outcome(err)).Inc()
	if err == nil {
		c.m.blockBytes.WithLabelValues("put").Add(float64(len(data)))
	}
	return h, err
}

func (c *countingStore) Get(ctx context.Context, h blockstore.Hash, dst []byte) ([]byte, error) {
	out, err := c.Store.Get(ctx, h, dst)
	c.m.blockOps.WithLabelValues("get", outcome(err)).Inc()
	if err == nil {
		c.m.blockBytes.WithLabelValues("get").Add(float64(len(out)))
	}
	return out, err
}

func (c *countingStore) Delete(ctx context.Context, h blockstore.Hash) error {
	err := c.Store.Delete(ctx, h)
	c.m.blockOps.WithLabelValues("delete", outcome(err)).Inc()
	return err
}

func (c *countingStore) DeleteIfWrittenBefore(ctx context.Context, h blockstore.Hash, t time.Time) (bool, error) {
	ok, err := c.Store.DeleteIfWrittenBefore(ctx, h, t)
	c.m.blockOps.WithLabelValues("delete", outcome(err)).Inc()
	return ok, err
}
