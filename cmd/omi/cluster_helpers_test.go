package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/omiproject/omi/postgres/pgtest"
	"github.com/omiproject/omi/s3x"
	"github.com/omiproject/omi/sigv4"
)

// The helpers of this file start several omi nodes acting as one region:
// one PostgreSQL schema for metadata and one bucket of a separate,
// storage-only omi for blocks and exports, so that a node killed by a test
// takes nothing with it. They take testing.TB so that the benchmarks share
// them; they never call FailNow from a goroutine other than the test's.

// Buckets of the storage-only omi.
const (
	clusterBlockBucket  = "omi-blocks"
	clusterExportBucket = "exports"
)

// clusterOpts shape a cluster.
type clusterOpts struct {
	nodes int
	// sqlite runs a single node on SQLite with local blocks instead
	// (nodes must be 1): the embedded default, for benchmarks.
	sqlite bool
	// gcInterval is every node's --gc-interval ("1s" when empty; "0"
	// disables).
	gcInterval string
	// leaseTTL is every node's --lease-ttl ("2s" when empty).
	leaseTTL string
	// dataDir is the SQLite node's --data (a new temporary directory when
	// empty), so that a benchmark can restart a node on the same data.
	dataDir string
	// extra are more flags for every node.
	extra []string
}

// multiNode is a region of several omi nodes.
type multiNode struct {
	tb    testing.TB
	bin   string
	dsn   string // empty on SQLite
	s3    *proc  // the storage-only omi: block and export buckets
	nodes []*proc
	names []string // --node-name of each node
	alive []bool   // false once killed
	exits []chan struct{}
	waits []*error // how each node's process ended, once exits is closed
}

// startCluster starts the storage-only omi, then o.nodes nodes one after
// the other (the first runs the migrations). It skips, or fails when
// CI=true, when no PostgreSQL server can be had.
func startCluster(tb testing.TB, o clusterOpts) *multiNode {
	tb.Helper()
	if o.gcInterval == "" {
		o.gcInterval = "1s"
	}
	if o.leaseTTL == "" {
		o.leaseTTL = "2s"
	}
	c := &multiNode{tb: tb}
	if !o.sqlite {
		c.dsn = pgtest.DSN(tb)
	}
	c.bin = buildOmi(tb)
	if bin := os.Getenv("OMI_BENCH_OMI_BIN"); bin != "" {
		c.bin = bin // another build, measured with the same benchmark
	}
	if o.sqlite {
		if o.nodes != 1 {
			tb.Fatalf("a SQLite region has one node, not %d", o.nodes)
		}
		dir := o.dataDir
		if dir == "" {
			dir = tb.TempDir()
		}
		c.add(nil, append([]string{"--data", dir, "--catalog=false", "--gc-interval", o.gcInterval}, o.extra...)...)
		return c
	}
	s3, _, _ := c.launch(nil, "--data", tb.TempDir(), "--catalog=false", "--gc-interval", "0")
	c.s3 = s3
	ctx := context.Background()
	if err := s3x.NewClient("http://"+s3.oos, "eu-west-2", titiAK, titiSK).CreateBucket(ctx, clusterBlockBucket); err != nil {
		tb.Fatalf("create the block bucket: %v", err)
	}
	if err := c.exportsClient().CreateBucket(ctx, clusterExportBucket); err != nil {
		tb.Fatalf("create the export bucket: %v", err)
	}
	for i := 0; i < o.nodes; i++ {
		name := fmt.Sprintf("node-%d", i+1)
		// The cluster settings go through the environment so that a binary
		// without them still starts (the API-level tests then run).
		env := []string{"OMI_NODE_NAME=" + name, "OMI_LEASE_TTL=" + o.leaseTTL,
			"OMI_BLOCKSTORE_S3_ACCESS_KEY=" + titiAK, "OMI_BLOCKSTORE_S3_SECRET_KEY=" + titiSK}
		c.names = append(c.names, name)
		c.add(env, "--data", tb.TempDir(), "--catalog=false", "--store", c.dsn, "--gc-interval", o.gcInterval,
			"--blockstore", "s3", "--blockstore-s3-endpoint", "http://"+s3.oos, "--blockstore-s3-bucket", clusterBlockBucket,
			"--s3-endpoint", "http://"+s3.oos)
	}
	return c
}

func (c *multiNode) add(env []string, args ...string) {
	c.tb.Helper()
	p, exited, waitErr := c.launch(env, args...)
	if len(c.names) < len(c.nodes)+1 {
		c.names = append(c.names, fmt.Sprintf("node-%d", len(c.nodes)+1))
	}
	c.nodes = append(c.nodes, p)
	c.alive = append(c.alive, true)
	c.exits = append(c.exits, exited)
	c.waits = append(c.waits, waitErr)
}

// launch is launch of main_test.go for any testing.TB, which also notices
// at once a process that exits instead of listening.
func (c *multiNode) launch(env []string, args ...string) (*proc, chan struct{}, *error) {
	tb := c.tb
	tb.Helper()
	p := &proc{api: freePort(tb), nbd: freePort(tb), oos: freePort(tb)}
	all := append([]string{"serve", "--listen", p.api, "--nbd-listen", p.nbd, "--oos-listen", p.oos,
		"--config", filepath.Join(repoRoot(), "examples", "accounts.yaml"), "--vm-driver", "sim", "--log-level", "warn"}, args...)
	p.cmd = exec.Command(c.bin, all...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = p.cmd.Wait(); close(exited) }()
	tb.Cleanup(func() { p.cmd.Process.Kill(); <-exited })
	deadline := time.Now().Add(30 * time.Second)
	for !up(p.api) || !up(p.nbd) || !up(p.oos) {
		select {
		case <-exited:
			tb.Fatalf("omi serve %v exited before listening: %v", args, waitErr)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatal("omi serve did not start listening within 30 s")
		}
	}
	return p, exited, &waitErr
}

// kill sends SIGKILL to node i and waits until it is gone.
func (c *multiNode) kill(i int) {
	c.tb.Helper()
	if err := c.nodes[i].cmd.Process.Kill(); err != nil {
		c.tb.Fatalf("kill %s: %v", c.names[i], err)
	}
	<-c.exits[i]
	c.alive[i] = false
}

// shutdown stops node i with SIGTERM, as an operator would, and returns
// how the process ended (nil for exit status 0).
func (c *multiNode) shutdown(i int) error {
	c.tb.Helper()
	if err := c.nodes[i].cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.tb.Fatalf("SIGTERM %s: %v", c.names[i], err)
	}
	select {
	case <-c.exits[i]:
	case <-time.After(45 * time.Second):
		c.tb.Fatalf("%s still runs 45 s after SIGTERM", c.names[i])
	}
	c.alive[i] = false
	return *c.waits[i]
}

// stop ends every node and the storage-only omi (benchmarks run several
// clusters one after the other).
func (c *multiNode) stop() {
	for i, p := range c.nodes {
		if c.alive[i] {
			p.cmd.Process.Kill()
			<-c.exits[i]
			c.alive[i] = false
		}
	}
	if c.s3 != nil {
		c.s3.cmd.Process.Kill()
	}
}

// node returns node i modulo the number of nodes, skipping killed ones.
func (c *multiNode) node(i int) *proc {
	for k := 0; k < len(c.nodes); k++ {
		j := (i + k) % len(c.nodes)
		if c.alive[j] {
			return c.nodes[j]
		}
	}
	c.tb.Fatal("every node is dead")
	return nil
}

// random returns a live node at random.
func (c *multiNode) random() *proc { return c.node(rand.IntN(len(c.nodes))) }

// nodeIndex returns the index of the node named name, or -1.
func (c *multiNode) nodeIndex(name string) int {
	for i, n := range c.names {
		if n == name {
			return i
		}
	}
	return -1
}

// exportsClient is joe's S3 client on the storage-only omi, which holds
// the export bucket.
func (c *multiNode) exportsClient() *s3x.Client {
	return s3x.NewClient("http://"+c.s3.oos, "eu-west-2", joeAK, joeSK)
}

// clusterHTTP keeps connections to every node open for concurrent clients.
var clusterHTTP = &http.Client{Timeout: 2 * time.Minute,
	Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 64, IdleConnTimeout: time.Minute}}

// apiSend makes a signed call (joe's keys unless p carries others) and
// returns the status and body; it never stops the test, so any goroutine
// may use it.
func apiSend(p *proc, name string, in any) (int, []byte, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequest("POST", "http://"+p.api+"/api/v1/"+name, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	ak, sk := p.ak, p.sk
	if ak == "" {
		ak, sk = joeAK, joeSK
	}
	s := sigv4.Signer{Algorithm: "OSC4-HMAC-SHA256", AccessKey: ak, SecretKey: sk, Region: "eu-west-2", Service: "api"}
	if err := s.Sign(req, body, time.Now()); err != nil {
		return 0, nil, err
	}
	resp, err := clusterHTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// nodeCall is apiSend that decodes a 200 answer into out and turns any
// other answer into an error.
func nodeCall(p *proc, name string, in, out any) error {
	status, body, err := apiSend(p, name, in)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if status != 200 {
		return fmt.Errorf("%s: %d %s", name, status, body)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: decode: %w", name, err)
	}
	return nil
}

// waitUntil polls fn every 50 ms until it returns true, failing tb after
// limit.
func waitUntil(tb testing.TB, limit time.Duration, what string, fn func() bool) {
	tb.Helper()
	deadline := time.Now().Add(limit)
	for !fn() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stateOf returns the state of a volume or snapshot, "" when it does not
// exist.
func stateOf(p *proc, kind, id string) (string, error) {
	call, filter, key := "ReadVolumes", "VolumeIds", "Volumes"
	if kind == "snapshot" {
		call, filter, key = "ReadSnapshots", "SnapshotIds", "Snapshots"
	}
	var out map[string]json.RawMessage
	if err := nodeCall(p, call, map[string]any{"Filters": map[string]any{filter: []string{id}}}, &out); err != nil {
		return "", err
	}
	var items []struct{ State string }
	if err := json.Unmarshal(out[key], &items); err != nil {
		return "", fmt.Errorf("%s: %w", call, err)
	}
	if len(items) == 0 {
		return "", nil
	}
	return items[0].State, nil
}

// awaitState waits (at most limit) for a volume or snapshot to reach
// state; it returns an error rather than stopping the test.
func awaitState(p *proc, kind, id, state string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		got, err := stateOf(p, kind, id)
		if err != nil {
			return err
		}
		if got == state {
			return nil
		}
		if got == "error" || got == "failed" || time.Now().After(deadline) {
			return fmt.Errorf("%s %s is %q, want %q", kind, id, got, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// qemuIOErr is qemuIO returning the error, for goroutines.
func qemuIOErr(url string, cmds ...string) error {
	args := []string{"-f", "raw", url}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("qemu-io", args...).CombinedOutput()
	if err != nil || strings.Contains(string(out), "failed") || strings.Contains(string(out), "Pattern verification") {
		return fmt.Errorf("qemu-io %s %v: %v\n%s", url, cmds, err, out)
	}
	return nil
}

// taskRun is one run of a background task, as recorded in its record.
type taskRun struct {
	Node       string
	Start, End string
}

// taskDoc is the part of an export task record these tests read.
type taskDoc struct {
	State string
	Runs  []taskRun
}

// readTask reads task id's record straight from PostgreSQL: the runs
// are not part of the API.
func readTask(ctx context.Context, dsn, id string) (taskDoc, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return taskDoc{}, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var doc []byte
	if err := conn.QueryRow(ctx, "SELECT doc FROM records WHERE kind = 'task' AND id = $1", id).Scan(&doc); err != nil {
		return taskDoc{}, fmt.Errorf("task %s: %w", id, err)
	}
	var d taskDoc
	if err := json.Unmarshal(doc, &d); err != nil {
		return taskDoc{}, fmt.Errorf("task %s: decode %s: %w", id, doc, err)
	}
	return d, nil
}

// checkRuns checks what holds for the runs of any task: each names a
// known node and has a start; a run that ended did so after it started;
// a later run starts only after an earlier one ended. A run without an
// end (its node died) must be followed by one that started after died,
// when died is not zero.
func checkRuns(c *multiNode, id string, runs []taskRun, died time.Time) error {
	var prevEnd time.Time
	for i, r := range runs {
		if c.nodeIndex(r.Node) < 0 {
			return fmt.Errorf("task %s run %d by unknown node %q (nodes %v)", id, i, r.Node, c.names)
		}
		start, err := time.Parse(time.RFC3339Nano, r.Start)
		if err != nil {
			return fmt.Errorf("task %s run %d: Start %q: %v", id, i, r.Start, err)
		}
		if i > 0 {
			switch {
			case !prevEnd.IsZero() && start.Before(prevEnd):
				return fmt.Errorf("task %s: run %d (%s) starts at %s, before run %d ended at %s", id, i, r.Node, r.Start, i-1, prevEnd)
			case prevEnd.IsZero() && !died.IsZero() && start.Before(died.Add(-time.Second)):
				// RFC3339 may drop the fraction: one second of slack.
				return fmt.Errorf("task %s: run %d (%s) started at %s while run %d's node was still alive (killed at %s)",
					id, i, r.Node, r.Start, i-1, died.Format(time.RFC3339Nano))
			case prevEnd.IsZero() && died.IsZero():
				return fmt.Errorf("task %s: run %d started although run %d never ended and no node died", id, i, i-1)
			}
		}
		prevEnd = time.Time{}
		if r.End != "" {
			end, err := time.Parse(time.RFC3339Nano, r.End)
			if err != nil {
				return fmt.Errorf("task %s run %d: End %q: %v", id, i, r.End, err)
			}
			if end.Before(start.Truncate(time.Second)) {
				return fmt.Errorf("task %s run %d ends (%s) before it starts (%s)", id, i, r.End, r.Start)
			}
			prevEnd = end
		}
	}
	return nil
}

// NBD wire values for the test client (the nbd package keeps its own
// unexported).
const (
	nbdcMagicOpt      = 0x49484156454F5054
	nbdcMagicReply    = 0x3e889045565a9
	nbdcOptGo         = 7
	nbdcRepAck        = 1
	nbdcRepInfo       = 3
	nbdcRequestMagic  = 0x25609513
	nbdcSimpleMagic   = 0x67446698
	nbdcCmdRead       = 0
	nbdcCmdDisc       = 2
	nbdcClientNewstyl = 1 | 2 // fixed newstyle, no zeroes
)

// nbdClient is a minimal NBD client (fixed newstyle, NBD_OPT_GO, simple
// replies): enough to hold an export open from a test while other
// clients try the same volume through other nodes.
type nbdClient struct {
	conn net.Conn
	size uint64
}

// nbdRefused is the option error a server answered NBD_OPT_GO with.
type nbdRefused struct {
	Type uint32
	Msg  string
}

func (e *nbdRefused) Error() string {
	return fmt.Sprintf("NBD_OPT_GO refused: reply type %#x: %q", e.Type, e.Msg)
}

// nbdDial connects to addr and opens export name; a refusal comes back as
// *nbdRefused.
func nbdDial(addr, name string) (*nbdClient, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := &nbdClient{conn: conn}
	if err := c.handshake(name); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return c, nil
}

func (c *nbdClient) handshake(name string) error {
	var hello [18]byte
	if _, err := io.ReadFull(c.conn, hello[:]); err != nil {
		return fmt.Errorf("read greeting: %w", err)
	}
	if string(hello[:8]) != "NBDMAGIC" || string(hello[8:16]) != "IHAVEOPT" {
		return fmt.Errorf("not an NBD newstyle server: %q", hello[:16])
	}
	w := binary.BigEndian
	opt := make([]byte, 0, 64)
	opt = w.AppendUint32(opt, nbdcClientNewstyl)
	opt = w.AppendUint64(opt, nbdcMagicOpt)
	opt = w.AppendUint32(opt, nbdcOptGo)
	opt = w.AppendUint32(opt, uint32(4+len(name)+2))
	opt = w.AppendUint32(opt, uint32(len(name)))
	opt = append(opt, name...)
	opt = w.AppendUint16(opt, 0) // no information requests: NBD_INFO_EXPORT comes anyway
	if _, err := c.conn.Write(opt); err != nil {
		return fmt.Errorf("send NBD_OPT_GO: %w", err)
	}
	for {
		var h [20]byte
		if _, err := io.ReadFull(c.conn, h[:]); err != nil {
			return fmt.Errorf("read option reply: %w", err)
		}
		if w.Uint64(h[0:]) != nbdcMagicReply || w.Uint32(h[8:]) != nbdcOptGo {
			return fmt.Errorf("bad option reply header %x", h)
		}
		typ, n := w.Uint32(h[12:]), w.Uint32(h[16:])
		if n > 1<<16 {
			return fmt.Errorf("option reply of %d bytes", n)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(c.conn, data); err != nil {
			return fmt.Errorf("read option reply data: %w", err)
		}
		switch {
		case typ&(1<<31) != 0:
			return &nbdRefused{Type: typ, Msg: string(data)}
		case typ == nbdcRepInfo && len(data) >= 12 && w.Uint16(data) == 0:
			c.size = w.Uint64(data[2:])
		case typ == nbdcRepAck:
			return nil
		}
	}
}

// read reads n bytes at off with NBD_CMD_READ.
func (c *nbdClient) read(off uint64, n uint32) ([]byte, error) {
	w := binary.BigEndian
	req := make([]byte, 0, 28)
	req = w.AppendUint32(req, nbdcRequestMagic)
	req = w.AppendUint16(req, 0)
	req = w.AppendUint16(req, nbdcCmdRead)
	req = w.AppendUint64(req, 1)
	req = w.AppendUint64(req, off)
	req = w.AppendUint32(req, n)
	c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	defer c.conn.SetDeadline(time.Time{})
	if _, err := c.conn.Write(req); err != nil {
		return nil, err
	}
	var h [16]byte
	if _, err := io.ReadFull(c.conn, h[:]); err != nil {
		return nil, fmt.Errorf("read reply: %w", err)
	}
	if w.Uint32(h[0:]) != nbdcSimpleMagic {
		return nil, fmt.Errorf("bad reply magic %x", h[:4])
	}
	if e := w.Uint32(h[4:]); e != 0 {
		return nil, fmt.Errorf("NBD error %d", e)
	}
	buf := make([]byte, n)
	_, err := io.ReadFull(c.conn, buf)
	return buf, err
}

// close sends NBD_CMD_DISC and closes the connection.
func (c *nbdClient) close() error {
	w := binary.BigEndian
	req := make([]byte, 0, 28)
	req = w.AppendUint32(req, nbdcRequestMagic)
	req = w.AppendUint16(req, 0)
	req = w.AppendUint16(req, nbdcCmdDisc)
	req = w.AppendUint64(req, 2)
	req = w.AppendUint64(req, 0)
	req = w.AppendUint32(req, 0)
	_, err := c.conn.Write(req)
	return errors.Join(err, c.conn.Close())
}

// statusLog counts the answers of a load test by call and status and keeps
// the first server errors for the report.
type statusLog struct {
	mu     sync.Mutex
	counts map[string]int
	errs5  []string
	failed []string // transport errors
}

func newStatusLog() *statusLog { return &statusLog{counts: map[string]int{}} }

func (l *statusLog) add(call string, status int, body []byte, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failed = append(l.failed, fmt.Sprintf("%s: %v", call, err))
		return
	}
	code := ""
	if status != 200 {
		var out struct{ Errors []struct{ Code string } }
		json.Unmarshal(body, &out)
		if len(out.Errors) > 0 {
			code = " " + out.Errors[0].Code
		}
	}
	l.counts[fmt.Sprintf("%s %d%s", call, status, code)]++
	if status >= 500 && len(l.errs5) < 20 {
		l.errs5 = append(l.errs5, fmt.Sprintf("%s: %d %s", call, status, body))
	}
}

// eachParallel calls fn(i) for i in [0, n) from k goroutines and returns
// the errors, in no particular order.
func eachParallel(n, k int, fn func(i int) error) []error {
	var (
		mu   sync.Mutex
		errs []error
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range k {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := fn(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return errs
}

// volumeFrom makes a volume of snapshot snap through p and waits until it
// is available.
func volumeFrom(p *proc, snap string) (string, error) {
	var v struct{ Volume struct{ VolumeId string } }
	if err := nodeCall(p, "CreateVolume", map[string]any{"SnapshotId": snap, "SubregionName": "eu-west-2a"}, &v); err != nil {
		return "", err
	}
	return v.Volume.VolumeId, awaitState(p, "volume", v.Volume.VolumeId, "available", 20*time.Second)
}
