package nbd

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPKI makes a CA and a server certificate for 127.0.0.1, and writes the
// CA where qemu's tls-creds-x509 (endpoint=client) looks for it.
func testPKI(t *testing.T) (*tls.Config, *x509.CertPool, string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "omi test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca-cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12,
	}
	return cfg, pool, dir
}

func TestTLS(t *testing.T) {
	cfg, pool, _ := testPKI(t)
	ex := newMemExports()
	d := ex.add("vol-1", newMemDisk(1<<20))
	addr, _ := startServer(t, ex, WithTLS(cfg))

	// FORCEDTLS: nothing but STARTTLS and ABORT before the upgrade.
	c := dialHandshake(t, addr, clientFixedNewstyle|clientNoZeroes)
	for _, opt := range []uint32{optList, optGo, optInfo, optStructuredReply, 99} {
		if rs := c.option(t, opt, nil); rs[0].typ != repErrTLSReqd {
			t.Fatalf("option %d before TLS: %#x", opt, rs[0].typ)
		}
	}
	c.sendOpt(optExportName, []byte("vol-1"))
	expectClosed(t, c)

	c = dialHandshake(t, addr, clientFixedNewstyle|clientNoZeroes)
	c.option(t, optStructuredReply, nil) // refused, and forgotten anyway
	if rs := c.option(t, optStartTLS, nil); rs[0].typ != repAck {
		t.Fatalf("STARTTLS: %#x", rs[0].typ)
	}
	tc := tls.Client(c.nc, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.nc = tc
	c.br = bufio.NewReader(tc)
	c.bw = bufio.NewWriter(tc)
	if rs := c.option(t, optStartTLS, nil); rs[0].typ != repErrInvalid {
		t.Fatalf("second STARTTLS: %#x", rs[0].typ)
	}
	c.option(t, optStructuredReply, nil)
	c.structured = true
	if rs := c.option(t, optGo, infoData("vol-1")); rs[len(rs)-1].typ != repAck {
		t.Fatal("GO over TLS failed")
	}
	if r := c.do(t, 0, cmdWrite, 0, 5, []byte("hello")); r.errno != 0 {
		t.Fatal(r.errno)
	}
	got, r := c.readAt(t, 0, 5)
	if r.errno != 0 || string(got) != "hello" || !bytes.Equal(d.bytes()[:5], []byte("hello")) {
		t.Fatalf("read over TLS: %q", got)
	}
}

func TestQemuTLS(t *testing.T) {
	needTools(t, "qemu-img")
	cfg, _, dir := testPKI(t)
	ex := newMemExports()
	ex.add("vol-00000020", newMemDisk(3<<20))
	addr, _ := startServer(t, ex, WithTLS(cfg))
	host, port, _ := strings.Cut(addr, ":")
	out := runTool(t, "qemu-img", "info", "--object", "tls-creds-x509,id=tls0,endpoint=client,dir="+dir,
		"--image-opts", "driver=nbd,host="+host+",port="+port+",export=vol-00000020,tls-creds=tls0")
	if !strings.Contains(out, "virtual size: 3 MiB") {
		t.Fatalf("qemu-img info over TLS:\n%s", out)
	}
	// Without TLS qemu is refused.
	if o, err := exec.Command("qemu-img", "info", nbdURL(addr, "vol-00000020")).CombinedOutput(); err == nil {
		t.Fatalf("plain client accepted by a TLS server:\n%s", o)
	}
}
