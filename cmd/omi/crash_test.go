package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/omiproject/omi/postgres/pgtest"
	"github.com/omiproject/omi/sigv4"
)

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
}

func freePort(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// proc is a running omi serve.
type proc struct {
	cmd      *exec.Cmd
	api, nbd string
	oos      string
	// ak and sk sign the calls (joe's keys when empty).
	ak, sk string
	// region is the signing region of the calls (eu-west-2 when empty).
	region string
}

// as returns a copy of p that signs with another account's keys.
func (p *proc) as(ak, sk string) *proc {
	c := *p
	c.ak, c.sk = ak, sk
	return &c
}

func startOmi(t *testing.T, bin, data string) *proc {
	t.Helper()
	return launch(t, bin, nil, "", nil, "--data", data)
}

// launch starts omi serve with the example accounts, free loopback ports for
// the API, NBD and the object storage (those of prev after a restart:
// pre-signed URLs name the object storage's address), in directory dir
// (when not "") with extra environment env, plus args; it returns once every
// port answers.
func launch(t *testing.T, bin string, prev *proc, dir string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{api: freePort(t), nbd: freePort(t), oos: freePort(t)}
	if prev != nil {
		p.api, p.nbd, p.oos = prev.api, prev.nbd, prev.oos
	}
	all := append([]string{"serve", "--listen", p.api, "--nbd-listen", p.nbd, "--oos-listen", p.oos,
		"--config", filepath.Join(repoRoot(), "examples", "accounts.yaml"), "--vm-driver", "sim", "--log-level", "warn"}, args...)
	p.cmd = exec.Command(bin, all...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
	for i := 0; !up(p.api) || !up(p.nbd) || !up(p.oos); i++ {
		if i == 200 {
			t.Fatal("omi serve did not start listening within 20 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return p
}

func up(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// call makes a signed API call as joe and decodes the response.
func (p *proc) call(t *testing.T, name string, in, out any) {
	t.Helper()
	resp := p.do(t, name, in)
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		t.Fatalf("%s: %d %s", name, resp.StatusCode, buf.String())
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// callErr makes a call expected to fail and returns its error code.
func (p *proc) callErr(t *testing.T, name string, in any) string {
	t.Helper()
	resp := p.do(t, name, in)
	defer resp.Body.Close()
	var out struct{ Errors []struct{ Code string } }
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode == 200 || len(out.Errors) == 0 {
		t.Fatalf("%s succeeded; want an error", name)
	}
	return out.Errors[0].Code
}

func (p *proc) do(t *testing.T, name string, in any) *http.Response {
	t.Helper()
	body, _ := json.Marshal(in)
	req, _ := http.NewRequest("POST", "http://"+p.api+"/api/v1/"+name, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	ak, sk := p.ak, p.sk
	if ak == "" {
		ak, sk = "11112211111110000000", "0000001111112222223333334444445555555666"
	}
	region := p.region
	if region == "" {
		region = "eu-west-2"
	}
	s := sigv4.Signer{Algorithm: "OSC4-HMAC-SHA256", AccessKey: ak, SecretKey: sk, Region: region, Service: "api"}
	if err := s.Sign(req, body, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func qemuIO(t *testing.T, url string, cmds ...string) {
	t.Helper()
	args := []string{"-f", "raw", url}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("qemu-io", args...).CombinedOutput()
	if err != nil || strings.Contains(string(out), "failed") {
		t.Fatalf("qemu-io %v: %v\n%s", cmds, err, out)
	}
}

// TestFlushedWritesSurviveKill9 writes over NBD (qemu-io flushes before it
// disconnects), kills omi with SIGKILL, starts it again on the same data
// directory and reads the data back; the API state (the volume and its
// snapshot) survives too.
func TestFlushedWritesSurviveKill9(t *testing.T) {
	needTool(t, "qemu-io")
	bin := buildOmi(t)
	data := t.TempDir()
	p := startOmi(t, bin, data)

	var vol struct {
		Volume struct{ VolumeId, State string }
	}
	p.call(t, "CreateVolume", map[string]any{"Size": 1, "SubregionName": "eu-west-2a"}, &vol)
	id := vol.Volume.VolumeId
	waitState(t, p, "ReadVolumes", id, "available")
	qemuIO(t, fmt.Sprintf("nbd://%s/%s", p.nbd, id), "write -P 0x5a 0 3M", "write -P 0xa5 700M 64k", "flush")
	var snap struct{ Snapshot struct{ SnapshotId string } }
	p.call(t, "CreateSnapshot", map[string]any{"VolumeId": id}, &snap)

	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()

	p2 := startOmi(t, bin, data)
	qemuIO(t, fmt.Sprintf("nbd://%s/%s", p2.nbd, id), "read -P 0x5a 0 3M", "read -P 0xa5 700M 64k", "read -P 0 800M 1M")
	var snaps struct {
		Snapshots []struct{ SnapshotId, State string }
	}
	waitState(t, p2, "ReadSnapshots", snap.Snapshot.SnapshotId, "completed")
	p2.call(t, "ReadSnapshots", map[string]any{"Filters": map[string]any{"SnapshotIds": []string{snap.Snapshot.SnapshotId}}}, &snaps)
	// A volume made from the snapshot after the restart has the data.
	var vol2 struct{ Volume struct{ VolumeId string } }
	p2.call(t, "CreateVolume", map[string]any{"SnapshotId": snap.Snapshot.SnapshotId, "SubregionName": "eu-west-2a"}, &vol2)
	waitState(t, p2, "ReadVolumes", vol2.Volume.VolumeId, "available")
	qemuIO(t, fmt.Sprintf("nbd://%s/%s", p2.nbd, vol2.Volume.VolumeId), "read -P 0x5a 0 3M", "read -P 0xa5 700M 64k")
}

// waitState polls a Read call until the resource reaches state.
func waitState(t *testing.T, p *proc, call, id, state string) {
	t.Helper()
	filter := map[string]string{"ReadVolumes": "VolumeIds", "ReadSnapshots": "SnapshotIds"}[call]
	key := map[string]string{"ReadVolumes": "Volumes", "ReadSnapshots": "Snapshots"}[call]
	for i := 0; i < 100; i++ {
		var out map[string]json.RawMessage
		p.call(t, call, map[string]any{"Filters": map[string]any{filter: []string{id}}}, &out)
		var items []struct{ State string }
		json.Unmarshal(out[key], &items)
		if len(items) == 1 && items[0].State == state {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s %s never reached %s", call, id, state)
}

// TestHealthReadinessAndMetrics checks the operator endpoints of a real
// omi serve: /healthz, /readyz, and Prometheus metrics that count calls.
func TestHealthReadinessAndMetrics(t *testing.T) {
	bin := buildOmi(t)
	metricsAddr := freePort(t)
	p := launch(t, bin, nil, "", nil, "--metrics-listen", metricsAddr, "--data", t.TempDir())
	for i := 0; !up(metricsAddr); i++ {
		if i == 100 {
			t.Fatal("metrics endpoint did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + p.api + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
	var out map[string]any
	p.call(t, "ReadVolumes", map[string]any{}, &out)
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if !strings.Contains(buf.String(), `omi_api_requests_total{call="ReadVolumes",code="",status="200"} 1`) {
		t.Errorf("metrics do not count the ReadVolumes call:\n%s", grepLines(buf.String(), "omi_api"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestServeOnPostgres runs omi serve with --store on a real PostgreSQL
// server: a volume created before a restart is still there after it.
func TestServeOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	bin := buildOmi(t)
	data := t.TempDir()
	start := func() *proc { return launch(t, bin, nil, "", nil, "--data", data, "--store", dsn, "--catalog=false") }
	p := start()
	var vol struct{ Volume struct{ VolumeId string } }
	p.call(t, "CreateVolume", map[string]any{"Size": 1, "SubregionName": "eu-west-2a"}, &vol)
	waitState(t, p, "ReadVolumes", vol.Volume.VolumeId, "available")
	p.cmd.Process.Signal(os.Interrupt)
	p.cmd.Wait()
	p2 := start()
	waitState(t, p2, "ReadVolumes", vol.Volume.VolumeId, "available")
}

// TestNBDBeyondLoopbackNeedsTLS: omi serve refuses a non-loopback NBD
// address without TLS, and accepts it with a certificate.
func TestNBDBeyondLoopbackNeedsTLS(t *testing.T) {
	bin := buildOmi(t)
	port := freePort(t)
	_, p, _ := net.SplitHostPort(port)
	args := []string{"serve", "--listen", freePort(t), "--oos-listen", "", "--catalog=false", "--data", t.TempDir(), "--nbd-listen", "0.0.0.0:" + p}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "loopback") {
		t.Fatalf("non-loopback NBD without TLS: %v\n%s", err, out)
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, cert, key)
	cmd := exec.Command(bin, append(args, "--nbd-tls-cert", cert, "--nbd-tls-key", key)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; !up("127.0.0.1:" + p); i++ {
		if i == 100 {
			t.Fatal("NBD with TLS did not listen")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func writeSelfSigned(t *testing.T, certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "omi-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}
