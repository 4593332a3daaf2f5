package service_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/service"
)

// testCert is a self-signed certificate and its key in the PEM forms a user
// uploads.
type testCert struct {
	body, pkcs1, pkcs8 string
	notAfter           time.Time
}

func newTestCert(t *testing.T, key any, pub any) testCert {
	t.Helper()
	notAfter := time.Date(2031, 9, 7, 0, 24, 43, 0, time.UTC)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "www.example.com"},
		NotBefore: time.Date(2021, 9, 9, 0, 0, 0, 0, time.UTC), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := testCert{body: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		pkcs8: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8})), notAfter: notAfter}
	if k, ok := key.(*rsa.PrivateKey); ok {
		c.pkcs1 = string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}))
	}
	return c
}

func rsaTestCert(t *testing.T) testCert {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return newTestCert(t, k, &k.PublicKey)
}

// TestServerCertificates checks EIM's server certificates: upload with the
// key forms users have (PKCS #1, PKCS #8, EC), what the API shows (ORN,
// dates), the paths filter, renames and moves, deletion, and their use by
// load balancer listeners, which must name a certificate of the account
// and keep it from being deleted.
func TestServerCertificates(t *testing.T) {
	g := newGwEnv(t)
	ctx := context.Background()
	cert := rsaTestCert(t)
	create := func(c *omi.Caller, in service.CreateServerCertificateRequest) (*omi.ServerCertificate, error) {
		t.Helper()
		out, err := g.svc.CreateServerCertificate(ctx, c, &in)
		if err != nil {
			return nil, err
		}
		nwValid(t, "CreateServerCertificate", out)
		return out.ServerCertificate, nil
	}
	web, err := create(g.joe, service.CreateServerCertificateRequest{Name: "web", Body: cert.body, Chain: cert.body, PrivateKey: cert.pkcs1})
	g.must("CreateServerCertificate PKCS #1", err)
	if web.Path != "/" || web.Orn != "arn:aws:iam::"+g.joe.AccountID()+":server-certificate/web" || len(web.Id) != 21 || !strings.HasPrefix(web.Id, "ASCA") ||
		web.ExpirationDate != omi.FormatTime(cert.notAfter) || web.UploadDate == "" {
		t.Errorf("new certificate: %+v", web)
	}
	api, err := create(g.joe, service.CreateServerCertificateRequest{Name: "api", Path: "/prod/eu/", Body: cert.body, PrivateKey: cert.pkcs8})
	g.must("CreateServerCertificate PKCS #8", err)
	if api.Orn != "arn:aws:iam::"+g.joe.AccountID()+":server-certificate/prod/eu/api" {
		t.Errorf("ORN with a path: %s", api.Orn)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	g.must("ecdsa", err)
	ec := newTestCert(t, ek, &ek.PublicKey)
	_, err = create(g.joe, service.CreateServerCertificateRequest{Name: "ec", Body: ec.body, PrivateKey: ec.pkcs8})
	g.must("CreateServerCertificate EC", err)

	read := func(c *omi.Caller, paths ...string) []string {
		t.Helper()
		in := &service.ReadServerCertificatesRequest{}
		if paths != nil {
			in.Filters = &service.FiltersServerCertificate{Paths: paths}
		}
		out, err := g.svc.ReadServerCertificates(ctx, c, in)
		g.must("ReadServerCertificates", err)
		nwValid(t, "ReadServerCertificates", out)
		var names []string
		for _, sc := range out.ServerCertificates {
			names = append(names, sc.Path+sc.Name)
		}
		return names
	}
	if got := strings.Join(read(g.joe), " "); got != "/prod/eu/api /ec /web" {
		t.Errorf("ReadServerCertificates: %s", got)
	}
	if got := strings.Join(read(g.joe, "/prod/eu/"), " "); got != "/prod/eu/api" {
		t.Errorf("ReadServerCertificates by path: %s", got)
	}

	// Bad input: the right code, nothing stored.
	other := rsaTestCert(t)
	encrypted := strings.Replace(cert.pkcs1, "RSA PRIVATE KEY-----\n", "RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00000000000000000000000000000000\n\n", 1)
	for _, c := range []struct {
		what string
		in   service.CreateServerCertificateRequest
		code string
	}{
		{"no name", service.CreateServerCertificateRequest{Body: cert.body, PrivateKey: cert.pkcs1}, "4045"},
		{"no body", service.CreateServerCertificateRequest{Name: "x", PrivateKey: cert.pkcs1}, "4045"},
		{"no key", service.CreateServerCertificateRequest{Name: "x", Body: cert.body}, "4045"},
		{"name with a space", service.CreateServerCertificateRequest{Name: "my cert", Body: cert.body, PrivateKey: cert.pkcs1}, "4043"},
		{"path without slashes", service.CreateServerCertificateRequest{Name: "x", Path: "prod", Body: cert.body, PrivateKey: cert.pkcs1}, "4049"},
		{"body not PEM", service.CreateServerCertificateRequest{Name: "x", Body: "hello", PrivateKey: cert.pkcs1}, "4047"},
		{"key as body", service.CreateServerCertificateRequest{Name: "x", Body: cert.pkcs1, PrivateKey: cert.pkcs1}, "4047"},
		{"two certificates in body", service.CreateServerCertificateRequest{Name: "x", Body: cert.body + other.body, PrivateKey: cert.pkcs1}, "4047"},
		{"chain not PEM", service.CreateServerCertificateRequest{Name: "x", Body: cert.body, Chain: "junk", PrivateKey: cert.pkcs1}, "4047"},
		{"another certificate's key", service.CreateServerCertificateRequest{Name: "x", Body: cert.body, PrivateKey: other.pkcs1}, "4047"},
		{"encrypted key", service.CreateServerCertificateRequest{Name: "x", Body: cert.body, PrivateKey: encrypted}, "4047"},
		{"a name taken", service.CreateServerCertificateRequest{Name: "web", Path: "/other/", Body: cert.body, PrivateKey: cert.pkcs1}, "9015"},
	} {
		_, err := create(g.joe, c.in)
		nwCode(t, c.what, err, c.code)
	}
	if n := len(read(g.joe)); n != 3 {
		t.Errorf("refused uploads stored something: %d certificates", n)
	}

	// Rename and move: the ORN follows; a taken name is refused.
	up, err := g.svc.UpdateServerCertificate(ctx, g.joe, &service.UpdateServerCertificateRequest{Name: "ec", NewName: "edge", NewPath: "/edge/"})
	g.must("UpdateServerCertificate", err)
	nwValid(t, "UpdateServerCertificate", up)
	if sc := up.ServerCertificate; sc.Name != "edge" || sc.Path != "/edge/" || !strings.HasSuffix(sc.Orn, ":server-certificate/edge/edge") {
		t.Errorf("renamed and moved: %+v", sc)
	}
	_, err = g.svc.UpdateServerCertificate(ctx, g.joe, &service.UpdateServerCertificateRequest{Name: "edge", NewName: "web"})
	nwCode(t, "rename to a taken name", err, "9015")
	_, err = g.svc.UpdateServerCertificate(ctx, g.joe, &service.UpdateServerCertificateRequest{Name: "ec", NewName: "x"})
	nwCode(t, "rename an old name", err, "5012")
	_, err = g.svc.UpdateServerCertificate(ctx, g.joe, &service.UpdateServerCertificateRequest{Name: "edge", NewPath: "edge"})
	nwCode(t, "move to a bad path", err, "4049")

	// Load balancer listeners name a certificate of the account by ORN.
	https := func(port int, orn string) service.ListenerForCreation {
		l := listener(port, "HTTPS", 8443)
		l.ServerCertificateId = orn
		return l
	}
	_, err = g.svc.CreateLoadBalancer(ctx, g.joe, &service.CreateLoadBalancerRequest{LoadBalancerName: "tls",
		Listeners: []service.ListenerForCreation{https(443, "arn:aws:iam::"+g.joe.AccountID()+":server-certificate/nothing")}})
	nwCode(t, "a listener with a certificate the account does not have", err, "5012")
	if n := g.countLBs(g.joe); n != 0 {
		t.Fatalf("a refused load balancer was stored: %d", n)
	}
	_, err = g.svc.CreateLoadBalancer(ctx, g.joe, &service.CreateLoadBalancerRequest{LoadBalancerName: "tls", Listeners: []service.ListenerForCreation{https(443, web.Orn)}})
	g.must("CreateLoadBalancer HTTPS", err)
	if l := g.readLB(g.joe, "tls"); len(l.Listeners) != 1 || l.Listeners[0].ServerCertificateId != web.Orn {
		t.Errorf("HTTPS listener: %+v", l.Listeners)
	}
	_, err = g.svc.UpdateLoadBalancer(ctx, g.joe, &service.UpdateLoadBalancerRequest{LoadBalancerName: "tls", LoadBalancerPort: ptr(443), ServerCertificateId: web.Orn + "x"})
	nwCode(t, "UpdateLoadBalancer with an unknown certificate", err, "5012")
	_, err = g.svc.UpdateLoadBalancer(ctx, g.joe, &service.UpdateLoadBalancerRequest{LoadBalancerName: "tls", LoadBalancerPort: ptr(443), ServerCertificateId: api.Orn})
	g.must("UpdateLoadBalancer certificate", err)
	_, err = g.svc.CreateLoadBalancerListeners(ctx, g.joe, &service.CreateLoadBalancerListenersRequest{LoadBalancerName: "tls",
		Listeners: []service.ListenerForCreation{https(8443, web.Orn+"x")}})
	nwCode(t, "CreateLoadBalancerListeners with an unknown certificate", err, "5012")
	if l := g.readLB(g.joe, "tls"); len(l.Listeners) != 1 || l.Listeners[0].ServerCertificateId != api.Orn {
		t.Errorf("after the refused listener: %+v", l.Listeners)
	}

	// A certificate in use stays; once free it goes.
	_, err = g.svc.DeleteServerCertificate(ctx, g.joe, &service.DeleteServerCertificateRequest{Name: "api"})
	nwCode(t, "delete a certificate in use", err, "9002")
	_, err = g.svc.DeleteServerCertificate(ctx, g.joe, &service.DeleteServerCertificateRequest{Name: "web"})
	g.must("DeleteServerCertificate", err)
	_, err = g.svc.DeleteServerCertificate(ctx, g.joe, &service.DeleteServerCertificateRequest{Name: "web"})
	nwCode(t, "delete twice", err, "5012")
	_, err = g.svc.DeleteServerCertificate(ctx, g.joe, &service.DeleteServerCertificateRequest{})
	nwCode(t, "delete without a name", err, "4045")

	// Another account sees and reaches none of them.
	if names := read(g.bob); len(names) != 0 {
		t.Errorf("bob lists joe's certificates: %v", names)
	}
	_, err = g.svc.UpdateServerCertificate(ctx, g.bob, &service.UpdateServerCertificateRequest{Name: "api", NewName: "mine"})
	nwCode(t, "bob renames joe's certificate", err, "5012")
	_, err = g.svc.DeleteServerCertificate(ctx, g.bob, &service.DeleteServerCertificateRequest{Name: "edge"})
	nwCode(t, "bob deletes joe's certificate", err, "5012")
	_, err = g.svc.CreateLoadBalancer(ctx, g.bob, &service.CreateLoadBalancerRequest{LoadBalancerName: "tls", Listeners: []service.ListenerForCreation{https(443, api.Orn)}})
	nwCode(t, "bob's listener with joe's certificate", err, "5012")
	// The same name in another account is another certificate.
	_, err = create(g.bob, service.CreateServerCertificateRequest{Name: "api", Body: cert.body, PrivateKey: cert.pkcs1})
	g.must("bob's own certificate named api", err)
	if names := read(g.joe); strings.Join(names, " ") != "/prod/eu/api /edge/edge" {
		t.Errorf("joe's certificates after bob's: %v", names)
	}
}
