package service_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/apitest"
	"github.com/omiproject/omi/service"
	"github.com/omiproject/omi/sqlite"
)

// The tests of this file cover the calls around images that Terraform and
// Packer flows need: keypairs, security groups, Nets and subnets, public
// IPs, console output and administrator password. Every response is also
// checked against the OUTSCALE OpenAPI description, wrapped in the envelope
// the transport adds.

// nwSpec loads the OpenAPI description, or skips (fails under CI=true).
func nwSpec(t *testing.T) *apitest.Spec {
	t.Helper()
	spec, err := apitest.LoadSpec()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("OpenAPI spec: %v", err)
		}
		t.Skipf("OpenAPI spec not available: %v", err)
	}
	return spec
}

// nwValid checks that out, sent as the 200 response of call, conforms to the
// specification.
func nwValid(t *testing.T, call string, out any) {
	t.Helper()
	body, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s response is not a JSON object: %s", call, body)
	}
	m["ResponseContext"] = map[string]any{"RequestId": "0475ca1e-d0c5-441d-712a-da55a4175157"}
	body, _ = json.Marshal(m)
	if err := nwSpec(t).ValidateResponse(call, 200, body); err != nil {
		t.Errorf("%s response does not match the spec: %v\n%s", call, err, body)
	}
}

// nwCode expects err to carry the OUTSCALE code want.
func nwCode(t *testing.T, what string, err error, want string) {
	t.Helper()
	if got := code(err); got != want {
		t.Errorf("%s: code %q, want %q (err: %v)", what, got, want, err)
	}
	var e *omi.Error
	if want != "" && errors.As(err, &e) && e.Type == "" {
		t.Errorf("%s: error without a type", what)
	}
}

func dry() context.Context { return omi.WithDryRun(context.Background()) }

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// legacyMD5 computes the RFC 4716 fingerprint independently of x/crypto.
func legacyMD5(blob []byte) string {
	sum := md5.Sum(blob)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = hex.EncodeToString([]byte{b})
	}
	return strings.Join(parts, ":")
}

func mustSSH(t *testing.T, key any) ssh.PublicKey {
	t.Helper()
	pub, err := ssh.NewPublicKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func TestCreateKeypairGenerates(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	out, err := e.svc.CreateKeypair(ctx, e.joe, &service.CreateKeypairRequest{KeypairName: "packer_6f1d"})
	if err != nil {
		t.Fatal(err)
	}
	nwValid(t, "CreateKeypair", out)
	k := out.Keypair
	if !omi.ValidKeypairID(k.KeypairId) || k.KeypairType != omi.KeypairRSA || k.KeypairName != "packer_6f1d" {
		t.Fatalf("keypair %+v", k.Keypair)
	}
	block, rest := pem.Decode([]byte(k.PrivateKey))
	if block == nil || block.Type != "RSA PRIVATE KEY" || len(strings.TrimSpace(string(rest))) != 0 {
		t.Fatalf("private key is not one PEM RSA PRIVATE KEY block:\n%s", k.PrivateKey)
	}
	// Packer decrypts Windows passwords with x509.ParsePKCS1PrivateKey.
	priv, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if priv.N.BitLen() != service.GeneratedKeyBits {
		t.Errorf("generated %d bits", priv.N.BitLen())
	}
	if want := legacyMD5(mustSSH(t, &priv.PublicKey).Marshal()); k.KeypairFingerprint != want {
		t.Errorf("fingerprint %s, want %s (MD5 of the public key)", k.KeypairFingerprint, want)
	}
	// The private key is returned once; reads carry no key material.
	rd, err := e.svc.ReadKeypairs(ctx, e.joe, &service.ReadKeypairsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	nwValid(t, "ReadKeypairs", rd)
	body, _ := json.Marshal(rd)
	if len(rd.Keypairs) != 1 || strings.Contains(string(body), "PRIVATE") || strings.Contains(string(body), "PublicKey") {
		t.Errorf("ReadKeypairs: %s", body)
	}
	// The stored public key is the generated one.
	own, err := e.svc.OwnKeypair(ctx, e.joe, "packer_6f1d")
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(mustSSH(t, &priv.PublicKey)))); own.PublicKey != want {
		t.Errorf("stored public key %q, want %q", own.PublicKey, want)
	}
	if _, err := e.svc.OwnKeypair(ctx, e.bob, "packer_6f1d"); code(err) != "5071" {
		t.Errorf("bob sees joe's keypair: %v", err)
	}
}

func TestCreateKeypairImports(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	edSSH := mustSSH(t, edPub)
	authorized := string(ssh.MarshalAuthorizedKey(edSSH))
	pkix, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	rfc4716 := "---- BEGIN SSH2 PUBLIC KEY ----\nComment: \"2048-bit RSA, converted by me@example\\\n from OpenSSH\"\nx-note: test\n" +
		wrap(base64.StdEncoding.EncodeToString(mustSSH(t, &rsaKey.PublicKey).Marshal()), 70) + "---- END SSH2 PUBLIC KEY ----\n"
	cases := []struct {
		name, key, typ string
		pub            ssh.PublicKey
	}{
		{"openssh-ed25519", authorized + "\n", omi.KeypairEd25519, edSSH},
		{"openssh-comment", strings.TrimSpace(authorized) + " me@laptop", omi.KeypairEd25519, edSSH},
		{"pem-pkix-ecdsa", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pkix})), omi.KeypairECDSA384, mustSSH(t, &ecKey.PublicKey)},
		{"pem-pkcs1-rsa", string(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)})), omi.KeypairRSA, mustSSH(t, &rsaKey.PublicKey)},
		{"rfc4716-rsa", rfc4716, omi.KeypairRSA, mustSSH(t, &rsaKey.PublicKey)},
	}
	for _, tc := range cases {
		out, err := e.svc.CreateKeypair(ctx, e.joe, &service.CreateKeypairRequest{KeypairName: tc.name, PublicKey: b64(tc.key)})
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		nwValid(t, "CreateKeypair", out)
		k := out.Keypair
		if k.PrivateKey != "" || k.KeypairType != tc.typ || k.KeypairFingerprint != legacyMD5(tc.pub.Marshal()) {
			t.Errorf("%s: %+v private=%q", tc.name, k.Keypair, k.PrivateKey)
		}
	}
	bad := []struct{ what, key, code string }{
		{"neither base64 nor a key", "not a key!", "4083"},
		{"plain key cut short", "ssh-ed25519 AAAA", "4083"},
		{"base64 of garbage", b64("ssh-ed25519 AAAAnotakey"), "4083"},
		{"empty after decoding", b64("   "), "4083"},
		{"options", b64(`command="/bin/sh" ` + authorized), "4083"},
		{"two keys", b64(authorized + authorized), "4083"},
		{"private key", b64(string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)}))), "4083"},
		{"rfc4716 without end", b64("---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n"), "4083"},
		{"rsa 1024", b64(string(ssh.MarshalAuthorizedKey(mustSSH(t, &small.PublicKey)))), "4033"},
		{"too large", b64(strings.Repeat("A", 20<<10)), "4083"},
	}
	for _, b := range bad {
		_, err := e.svc.CreateKeypair(ctx, e.joe, &service.CreateKeypairRequest{KeypairName: "bad", PublicKey: b.key})
		nwCode(t, b.what, err, b.code)
	}
	rd, err := e.svc.ReadKeypairs(ctx, e.joe, &service.ReadKeypairsRequest{})
	if err != nil || len(rd.Keypairs) != len(cases) {
		t.Fatalf("ReadKeypairs after imports: %d keypairs, %v", len(rd.Keypairs), err)
	}
}

func wrap(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + "\n")
		s = s[n:]
	}
	b.WriteString(s + "\n")
	return b.String()
}

func TestKeypairNamesAndIsolation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	key := b64(string(ssh.MarshalAuthorizedKey(mustSSH(t, edPub))))
	create := func(c *omi.Caller, name string) (*service.CreateKeypairResponse, error) {
		return e.svc.CreateKeypair(ctx, c, &service.CreateKeypairRequest{KeypairName: name, PublicKey: key})
	}
	_, err := create(e.joe, "")
	nwCode(t, "empty name", err, omi.CodeInvalidParameter)
	_, err = create(e.joe, strings.Repeat("k", 256))
	nwCode(t, "256 characters", err, "4035")
	_, err = create(e.joe, "clé")
	nwCode(t, "non-ASCII", err, "4035")
	_, err = create(e.joe, "tab\there")
	nwCode(t, "control character", err, "4035")
	if _, err := create(e.joe, strings.Repeat("k", 255)); err != nil {
		t.Errorf("255 characters: %v", err)
	}
	// Dry runs check everything and create nothing.
	if _, err := e.svc.CreateKeypair(dry(), e.joe, &service.CreateKeypairRequest{KeypairName: "dry"}); err != nil {
		t.Errorf("dry run: %v", err)
	}
	if _, err := create(e.joe, "dry"); err != nil {
		t.Errorf("a dry run left something behind: %v", err)
	}
	_, err = e.svc.CreateKeypair(dry(), e.joe, &service.CreateKeypairRequest{KeypairName: "dry"})
	nwCode(t, "dry run of a duplicate", err, "9011")
	joeKey, err := create(e.joe, "my key*?")
	if err != nil {
		t.Fatal(err)
	}
	_, err = create(e.joe, "my key*?")
	nwCode(t, "duplicate", err, "9011")
	// Names are per account.
	bobKey, err := create(e.bob, "my key*?")
	if err != nil {
		t.Fatalf("bob cannot use a name joe uses: %v", err)
	}
	// Each account reads only its own, whatever the filter.
	for _, f := range []*service.FiltersKeypair{
		{KeypairNames: []string{"my key*?"}},
		{KeypairIds: []string{joeKey.Keypair.KeypairId, bobKey.Keypair.KeypairId}},
		{KeypairFingerprints: []string{joeKey.Keypair.KeypairFingerprint}},
	} {
		rd, err := e.svc.ReadKeypairs(ctx, e.bob, &service.ReadKeypairsRequest{Filters: f})
		if err != nil {
			t.Fatal(err)
		}
		if len(rd.Keypairs) != 1 || rd.Keypairs[0].KeypairId != bobKey.Keypair.KeypairId {
			t.Errorf("bob reads %+v with %+v", rd.Keypairs, f)
		}
	}
	// Names match exactly: '*' in a filter is no wildcard.
	rd, _ := e.svc.ReadKeypairs(ctx, e.joe, &service.ReadKeypairsRequest{Filters: &service.FiltersKeypair{KeypairNames: []string{"my*"}}})
	if len(rd.Keypairs) != 0 {
		t.Errorf("KeypairNames my* matched %d keypairs", len(rd.Keypairs))
	}
	rd, _ = e.svc.ReadKeypairs(ctx, e.joe, &service.ReadKeypairsRequest{Filters: &service.FiltersKeypair{KeypairTypes: []string{omi.KeypairRSA}}})
	if len(rd.Keypairs) != 0 {
		t.Errorf("KeypairTypes ssh-rsa matched %d ed25519 keypairs", len(rd.Keypairs))
	}
	// Dry-run reads return nothing.
	rd, err = e.svc.ReadKeypairs(dry(), e.joe, &service.ReadKeypairsRequest{})
	if err != nil || len(rd.Keypairs) != 0 {
		t.Errorf("dry-run ReadKeypairs: %v %v", rd, err)
	}
	// Paging returns every keypair once.
	seen := map[string]bool{}
	tok := ""
	for pages := 0; ; pages++ {
		rd, err := e.svc.ReadKeypairs(ctx, e.joe, &service.ReadKeypairsRequest{Paging: service.Paging{ResultsPerPage: ptr(2), NextPageToken: tok}})
		if err != nil {
			t.Fatal(err)
		}
		nwValid(t, "ReadKeypairs", rd)
		for _, k := range rd.Keypairs {
			if seen[k.KeypairId] {
				t.Errorf("keypair %s twice", k.KeypairId)
			}
			seen[k.KeypairId] = true
		}
		if tok = rd.NextPageToken; tok == "" || pages > 5 {
			break
		}
	}
	if len(seen) != 3 {
		t.Errorf("paging returned %d keypairs, want 3", len(seen))
	}
	_, err = e.svc.ReadKeypairs(ctx, e.joe, &service.ReadKeypairsRequest{Paging: service.Paging{ResultsPerPage: ptr(0)}})
	nwCode(t, "ResultsPerPage 0", err, omi.CodeInvalidValue)
	_, err = e.svc.ReadKeypairs(ctx, e.joe, &service.ReadKeypairsRequest{Paging: service.Paging{NextPageToken: b64("vol-12345678")}})
	nwCode(t, "token of another kind", err, omi.CodeInvalidPageToken)

	// Deletion: bob cannot delete joe's keypair, and learns nothing.
	_, err = e.svc.DeleteKeypair(ctx, e.bob, &service.DeleteKeypairRequest{KeypairId: joeKey.Keypair.KeypairId})
	nwCode(t, "bob deletes joe's keypair", err, "5071")
	_, err = e.svc.DeleteKeypair(ctx, e.bob, &service.DeleteKeypairRequest{KeypairId: omi.NewKeypairID()})
	nwCode(t, "bob deletes a missing keypair", err, "5071")
	_, err = e.svc.DeleteKeypair(ctx, e.joe, &service.DeleteKeypairRequest{})
	nwCode(t, "delete without name or id", err, omi.CodeInvalidParameter)
	_, err = e.svc.DeleteKeypair(ctx, e.joe, &service.DeleteKeypairRequest{KeypairId: joeKey.Keypair.KeypairId, KeypairName: "dry"})
	nwCode(t, "name and id of different keypairs", err, "5071")
	if _, err := e.svc.DeleteKeypair(dry(), e.joe, &service.DeleteKeypairRequest{KeypairName: "my key*?"}); err != nil {
		t.Errorf("dry-run delete: %v", err)
	}
	if _, err := e.svc.DeleteKeypair(ctx, e.joe, &service.DeleteKeypairRequest{KeypairName: "my key*?"}); err != nil {
		t.Errorf("delete by name after a dry run: %v", err)
	}
	_, err = e.svc.DeleteKeypair(ctx, e.joe, &service.DeleteKeypairRequest{KeypairName: "my key*?"})
	nwCode(t, "delete twice", err, "5071")
	if _, err := e.svc.DeleteKeypair(ctx, e.bob, &service.DeleteKeypairRequest{KeypairId: bobKey.Keypair.KeypairId, KeypairName: "my key*?"}); err != nil {
		t.Errorf("bob deletes his keypair by id and name: %v", err)
	}
	if _, err := create(e.joe, "my key*?"); err != nil {
		t.Errorf("name not reusable after delete: %v", err)
	}
}

// sgRule builds a RuleRequest.
func sgRule(proto string, from, to int, ranges ...string) service.RuleRequest {
	return service.RuleRequest{IpProtocol: proto, FromPortRange: ptr(from), ToPortRange: ptr(to), IpRanges: ranges}
}

func TestDefaultSecurityGroups(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// A Net comes with its default group.
	created, err := e.svc.CreateNet(ctx, e.joe, &service.CreateNetRequest{IpRange: "10.0.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	netID := created.Net.NetId
	// Concurrent first reads create one set of default groups.
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := e.svc.ReadSecurityGroups(ctx, e.joe, &service.ReadSecurityGroupsRequest{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	out, err := e.svc.ReadSecurityGroups(ctx, e.joe, &service.ReadSecurityGroupsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	nwValid(t, "ReadSecurityGroups", out)
	if len(out.SecurityGroups) != 2 {
		t.Fatalf("%d groups, want the public Cloud and the Net default groups: %+v", len(out.SecurityGroups), out.SecurityGroups)
	}
	scopes := map[string]bool{}
	for _, g := range out.SecurityGroups {
		scopes[g.NetId] = true
		if g.SecurityGroupName != "default" || g.AccountId != e.joe.AccountID() || !omi.ValidID(g.SecurityGroupId, "sg") {
			t.Errorf("default group %+v", g)
		}
		in := g.InboundRules
		if len(in) != 1 || in[0].IpProtocol != "-1" || len(in[0].SecurityGroupsMembers) != 1 || in[0].SecurityGroupsMembers[0].SecurityGroupId != g.SecurityGroupId {
			t.Errorf("default group %s inbound rules %+v: want its members to reach each other", g.SecurityGroupId, in)
		}
		if wantOut := g.NetId != ""; (len(g.OutboundRules) == 1) != wantOut {
			t.Errorf("default group in net %q outbound rules %+v", g.NetId, g.OutboundRules)
		}
	}
	if !scopes[""] || !scopes[netID] {
		t.Errorf("default groups in scopes %v, want public Cloud and %s", scopes, netID)
	}
	// Default groups cannot be deleted.
	_, err = e.svc.DeleteSecurityGroup(ctx, e.joe, &service.DeleteSecurityGroupRequest{SecurityGroupName: "default"})
	nwCode(t, "delete default by name", err, "9051")
	_, err = e.svc.DeleteSecurityGroup(ctx, e.joe, &service.DeleteSecurityGroupRequest{SecurityGroupId: out.SecurityGroups[1].SecurityGroupId})
	nwCode(t, "delete default by id", err, "9051")
	// Bob has his own, and cannot reach joe's.
	bobs, _ := e.svc.ReadSecurityGroups(ctx, e.bob, &service.ReadSecurityGroupsRequest{Filters: &service.FiltersSecurityGroup{
		SecurityGroupIds: []string{out.SecurityGroups[0].SecurityGroupId, out.SecurityGroups[1].SecurityGroupId}}})
	if len(bobs.SecurityGroups) != 0 {
		t.Errorf("bob reads joe's groups: %+v", bobs.SecurityGroups)
	}
	_, err = e.svc.DeleteSecurityGroup(ctx, e.bob, &service.DeleteSecurityGroupRequest{SecurityGroupId: out.SecurityGroups[0].SecurityGroupId})
	nwCode(t, "bob deletes joe's default group", err, "5020")
	// A dry-run read returns nothing.
	d, err := e.svc.ReadSecurityGroups(dry(), e.joe, &service.ReadSecurityGroupsRequest{})
	if err != nil || len(d.SecurityGroups) != 0 {
		t.Errorf("dry-run read: %+v %v", d, err)
	}
}

func TestSecurityGroupsAndRules(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	created, err := e.svc.CreateNet(ctx, e.joe, &service.CreateNetRequest{IpRange: "10.0.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	netID := created.Net.NetId
	create := func(c *omi.Caller, name, desc, net string) (*service.CreateSecurityGroupResponse, error) {
		return e.svc.CreateSecurityGroup(ctx, c, &service.CreateSecurityGroupRequest{SecurityGroupName: name, Description: desc, NetId: net})
	}
	for _, b := range []struct{ what, name, desc, net, code string }{
		{"no name", "", "d", "", omi.CodeInvalidParameter},
		{"no description", "n", "", "", omi.CodeInvalidParameter},
		{"sg- prefix", "sg-12345678", "d", "", omi.CodeInvalidValue},
		{"bad character", "web|ssh", "d", "", omi.CodeInvalidValue},
		{"long name", strings.Repeat("n", 256), "d", "", omi.CodeInvalidValue},
		{"bad description", "n", "tab\t", "", omi.CodeInvalidValue},
		{"unknown net", "n", "d", "vpc-00000000", "5065"},
		{"default exists", "default", "d", "", "9008"},
	} {
		_, err := create(e.joe, b.name, b.desc, b.net)
		nwCode(t, b.what, err, b.code)
	}
	_, err = create(e.bob, "n", "d", netID)
	nwCode(t, "bob uses joe's net", err, "5065")
	if _, err := create(e.joe, "dry", "d", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateSecurityGroup(dry(), e.joe, &service.CreateSecurityGroupRequest{SecurityGroupName: "ghost", Description: "d"}); err != nil {
		t.Errorf("dry-run create: %v", err)
	}
	web, err := create(e.joe, "packer_web", "Temporary group for Packer éà", "")
	if err != nil {
		t.Fatal(err)
	}
	nwValid(t, "CreateSecurityGroup", web)
	if len(web.SecurityGroup.OutboundRules) != 0 || len(web.SecurityGroup.InboundRules) != 0 {
		t.Errorf("new public Cloud group has rules: %+v", web.SecurityGroup)
	}
	_, err = create(e.joe, "packer_web", "again", "")
	nwCode(t, "duplicate in the public Cloud", err, "9008")
	inNet, err := create(e.joe, "packer_web", "same name in the Net", netID)
	if err != nil {
		t.Fatalf("same name in another scope: %v", err)
	}
	nwValid(t, "CreateSecurityGroup", inNet)
	if o := inNet.SecurityGroup.OutboundRules; len(o) != 1 || o[0].IpProtocol != "-1" || len(o[0].IpRanges) != 1 || o[0].IpRanges[0] != "0.0.0.0/0" {
		t.Errorf("new Net group outbound rules %+v, want all traffic", o)
	}
	if _, err := create(e.bob, "packer_web", "bob group", ""); err != nil {
		t.Errorf("bob cannot use joe's group name: %v", err)
	}
	webID := web.SecurityGroup.SecurityGroupId

	// Packer's rule: SSH from a CIDR, in the Rules form.
	ssh22 := sgRule("tcp", 22, 22, "203.0.113.7/32")
	rr, err := e.svc.CreateSecurityGroupRule(ctx, e.joe, &service.CreateSecurityGroupRuleRequest{
		SecurityGroupId: webID, Flow: "Inbound", Rules: []service.RuleRequest{ssh22}})
	if err != nil {
		t.Fatal(err)
	}
	nwValid(t, "CreateSecurityGroupRule", rr)
	// Terraform's flat form merges into the rule of the same protocol and ports.
	rr, err = e.svc.CreateSecurityGroupRule(ctx, e.joe, &service.CreateSecurityGroupRuleRequest{
		SecurityGroupId: webID, Flow: "Inbound", IpProtocol: "6", FromPortRange: ptr(22), ToPortRange: ptr(22), IpRange: "10.0.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	in := rr.SecurityGroup.InboundRules
	if len(in) != 1 || in[0].IpProtocol != "tcp" || strings.Join(in[0].IpRanges, ",") != "203.0.113.7/32,10.0.0.0/16" {
		t.Errorf("merged inbound rules %+v", in)
	}
	// Link the default group by name, and ICMP, in one call.
	rr, err = e.svc.CreateSecurityGroupRule(ctx, e.joe, &service.CreateSecurityGroupRuleRequest{
		SecurityGroupId: webID, Flow: "Inbound", Rules: []service.RuleRequest{
			{IpProtocol: "-1", SecurityGroupsMembers: []service.MemberRequest{{AccountId: e.joe.AccountID(), SecurityGroupName: "default"}}},
			{IpProtocol: "icmp", FromPortRange: ptr(8), IpRanges: []string{"0.0.0.0/0"}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	nwValid(t, "CreateSecurityGroupRule", rr)
	if len(rr.SecurityGroup.InboundRules) != 3 {
		t.Errorf("inbound rules %+v", rr.SecurityGroup.InboundRules)
	}
	rule := func(in *service.CreateSecurityGroupRuleRequest) error {
		if in.SecurityGroupId == "" {
			in.SecurityGroupId = webID
		}
		if in.Flow == "" {
			in.Flow = "Inbound"
		}
		_, err := e.svc.CreateSecurityGroupRule(ctx, e.joe, in)
		return err
	}
	bobGroups, _ := e.svc.ReadSecurityGroups(ctx, e.bob, &service.ReadSecurityGroupsRequest{})
	bobGroup := bobGroups.SecurityGroups[0].SecurityGroupId
	for _, b := range []struct {
		what string
		in   service.CreateSecurityGroupRuleRequest
		code string
	}{
		{"duplicate range", service.CreateSecurityGroupRuleRequest{Rules: []service.RuleRequest{ssh22}}, omi.CodeAlreadyExists},
		{"no flow", service.CreateSecurityGroupRuleRequest{Flow: "In", IpRange: "1.2.3.4/32"}, omi.CodeInvalidValue},
		{"outbound in the public Cloud", service.CreateSecurityGroupRuleRequest{Flow: "Outbound", IpRange: "1.2.3.4/32"}, omi.CodeInvalidValue},
		{"nothing to allow", service.CreateSecurityGroupRuleRequest{IpProtocol: "tcp", FromPortRange: ptr(1), ToPortRange: ptr(2)}, omi.CodeInvalidParameter},
		{"rules and flat", service.CreateSecurityGroupRuleRequest{IpRange: "1.2.3.4/32", Rules: []service.RuleRequest{ssh22}}, omi.CodeInvalidParamSet},
		{"unknown protocol", service.CreateSecurityGroupRuleRequest{IpProtocol: "tcpx", IpRange: "1.2.3.4/32"}, "4053"},
		{"protocol number in the public Cloud", service.CreateSecurityGroupRuleRequest{IpProtocol: "47", IpRange: "1.2.3.4/32"}, "4053"},
		{"tcp from a port without ToPortRange (taken as 0)", service.CreateSecurityGroupRuleRequest{IpProtocol: "tcp", FromPortRange: ptr(22), IpRange: "1.2.3.4/32"}, "4051"},
		{"from port too large", service.CreateSecurityGroupRuleRequest{IpProtocol: "udp", FromPortRange: ptr(70000), ToPortRange: ptr(70000), IpRange: "1.2.3.4/32"}, "4064"},
		{"negative to port", service.CreateSecurityGroupRuleRequest{IpProtocol: "udp", FromPortRange: ptr(1), ToPortRange: ptr(-5), IpRange: "1.2.3.4/32"}, "4021"},
		{"reversed ports", service.CreateSecurityGroupRuleRequest{IpProtocol: "tcp", FromPortRange: ptr(90), ToPortRange: ptr(80), IpRange: "1.2.3.4/32"}, "4051"},
		{"bad cidr", service.CreateSecurityGroupRuleRequest{IpRange: "10.0.0.0/33"}, "4030"},
		{"ipv6", service.CreateSecurityGroupRuleRequest{IpRange: "2001:db8::/32"}, "4030"},
		{"service ids", service.CreateSecurityGroupRuleRequest{Rules: []service.RuleRequest{{IpRanges: []string{"1.2.3.4/32"}, ServiceIds: []string{"pl-12345678"}}}}, omi.CodeInvalidParameter},
		{"bob's account", service.CreateSecurityGroupRuleRequest{SecurityGroupAccountIdToLink: e.bob.AccountID(), SecurityGroupNameToLink: "default"}, "5020"},
		{"bob's group id", service.CreateSecurityGroupRuleRequest{SecurityGroupNameToLink: bobGroup}, "5020"},
		{"group of the Net", service.CreateSecurityGroupRuleRequest{SecurityGroupNameToLink: inNet.SecurityGroup.SecurityGroupId}, "4086"},
		{"unknown group", service.CreateSecurityGroupRuleRequest{SecurityGroupNameToLink: "nope"}, "5020"},
		{"bob's target group", service.CreateSecurityGroupRuleRequest{SecurityGroupId: bobGroup, IpRange: "1.2.3.4/32"}, "5020"},
	} {
		in := b.in
		nwCode(t, b.what, rule(&in), b.code)
	}
	// A failed call changes nothing, even when its first rule was fine.
	err = rule(&service.CreateSecurityGroupRuleRequest{Rules: []service.RuleRequest{sgRule("tcp", 443, 443, "0.0.0.0/0"), ssh22}})
	nwCode(t, "second rule duplicate", err, omi.CodeAlreadyExists)
	// Protocol numbers are fine in a Net, and so are outbound rules.
	if err := rule(&service.CreateSecurityGroupRuleRequest{SecurityGroupId: inNet.SecurityGroup.SecurityGroupId, Flow: "Outbound", IpProtocol: "47", IpRange: "10.1.0.0/16"}); err != nil {
		t.Errorf("GRE outbound in a Net: %v", err)
	}

	// Filters.
	rd, err := e.svc.ReadSecurityGroups(ctx, e.joe, &service.ReadSecurityGroupsRequest{Filters: &service.FiltersSecurityGroup{
		InboundRuleIpRanges: []string{"10.0.0.0/16"}, InboundRuleFromPortRanges: []int{22}, InboundRuleProtocols: []string{"tcp"}}})
	if err != nil {
		t.Fatal(err)
	}
	nwValid(t, "ReadSecurityGroups", rd)
	if len(rd.SecurityGroups) != 1 || rd.SecurityGroups[0].SecurityGroupId != webID {
		t.Errorf("inbound rule filter: %+v", rd.SecurityGroups)
	}
	for _, f := range []*service.FiltersSecurityGroup{
		{InboundRuleIpRanges: []string{"10.0.0.0/16"}, InboundRuleFromPortRanges: []int{443}},
		{SecurityGroupNames: []string{"packer_web"}, NetIds: []string{"vpc-00000000"}},
		{OutboundRuleProtocols: []string{"47"}, SecurityGroupIds: []string{webID}},
	} {
		rd, _ := e.svc.ReadSecurityGroups(ctx, e.joe, &service.ReadSecurityGroupsRequest{Filters: f})
		if len(rd.SecurityGroups) != 0 {
			t.Errorf("filter %+v matched %+v", f, rd.SecurityGroups)
		}
	}
	rd, _ = e.svc.ReadSecurityGroups(ctx, e.joe, &service.ReadSecurityGroupsRequest{Filters: &service.FiltersSecurityGroup{
		SecurityGroupNames: []string{"packer_web"}, InboundRuleSecurityGroupNames: []string{"default"}}})
	if len(rd.SecurityGroups) != 1 {
		t.Errorf("member name filter: %+v", rd.SecurityGroups)
	}

	// The default group is named by a rule of packer_web: it is busy, but
	// default groups are reserved anyway. Make packer_web depend on "dry".
	dryGroups, _ := e.svc.ReadSecurityGroups(ctx, e.joe, &service.ReadSecurityGroupsRequest{Filters: &service.FiltersSecurityGroup{SecurityGroupNames: []string{"dry"}}})
	dryID := dryGroups.SecurityGroups[0].SecurityGroupId
	if err := rule(&service.CreateSecurityGroupRuleRequest{SecurityGroupNameToLink: dryID, IpProtocol: "tcp", FromPortRange: ptr(80), ToPortRange: ptr(80)}); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.DeleteSecurityGroup(ctx, e.joe, &service.DeleteSecurityGroupRequest{SecurityGroupId: dryID})
	nwCode(t, "delete a group named by a rule", err, "9002")

	// Rule deletion.
	del := func(in *service.DeleteSecurityGroupRuleRequest) (*service.DeleteSecurityGroupRuleResponse, error) {
		if in.SecurityGroupId == "" {
			in.SecurityGroupId = webID
		}
		if in.Flow == "" {
			in.Flow = "Inbound"
		}
		return e.svc.DeleteSecurityGroupRule(ctx, e.joe, in)
	}
	dr, err := del(&service.DeleteSecurityGroupRuleRequest{SecurityGroupNameToUnlink: "dry", IpProtocol: "tcp", FromPortRange: ptr(80), ToPortRange: ptr(80)})
	if err != nil {
		t.Fatal(err)
	}
	nwValid(t, "DeleteSecurityGroupRule", dr)
	_, err = del(&service.DeleteSecurityGroupRuleRequest{SecurityGroupNameToUnlink: "dry", IpProtocol: "tcp", FromPortRange: ptr(80), ToPortRange: ptr(80)})
	nwCode(t, "delete a rule twice", err, "5008")
	_, err = del(&service.DeleteSecurityGroupRuleRequest{IpProtocol: "tcp", FromPortRange: ptr(22), ToPortRange: ptr(22), IpRange: "192.0.2.0/24"})
	nwCode(t, "delete a range the rule lacks", err, "5008")
	_, err = e.svc.DeleteSecurityGroupRule(ctx, e.bob, &service.DeleteSecurityGroupRuleRequest{SecurityGroupId: webID, Flow: "Inbound", IpRange: "10.0.0.0/16",
		IpProtocol: "tcp", FromPortRange: ptr(22), ToPortRange: ptr(22)})
	nwCode(t, "bob deletes joe's rule", err, "5020")
	if _, err := del(&service.DeleteSecurityGroupRuleRequest{Rules: []service.RuleRequest{sgRule("tcp", 22, 22, "203.0.113.7/32", "10.0.0.0/16")}}); err != nil {
		t.Fatal(err)
	}
	dr, err = del(&service.DeleteSecurityGroupRuleRequest{Rules: []service.RuleRequest{{IpProtocol: "icmp", FromPortRange: ptr(8)}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := dr.SecurityGroup.InboundRules; len(r) != 1 || r[0].IpProtocol != "-1" {
		t.Errorf("after deletions, inbound rules %+v", r)
	}

	// Group deletion, by id and by name.
	if _, err := e.svc.DeleteSecurityGroup(ctx, e.joe, &service.DeleteSecurityGroupRequest{SecurityGroupId: dryID}); err != nil {
		t.Errorf("delete a group no longer named: %v", err)
	}
	_, err = e.svc.DeleteSecurityGroup(ctx, e.joe, &service.DeleteSecurityGroupRequest{})
	nwCode(t, "delete without id or name", err, omi.CodeInvalidParameter)
	_, err = e.svc.DeleteSecurityGroup(ctx, e.joe, &service.DeleteSecurityGroupRequest{SecurityGroupName: "nope"})
	nwCode(t, "delete a missing name", err, "5020")
	if _, err := e.svc.DeleteSecurityGroup(dry(), e.joe, &service.DeleteSecurityGroupRequest{SecurityGroupName: "packer_web"}); err != nil {
		t.Errorf("dry-run delete: %v", err)
	}
	if _, err := e.svc.DeleteSecurityGroup(ctx, e.joe, &service.DeleteSecurityGroupRequest{SecurityGroupName: "packer_web"}); err != nil {
		t.Errorf("delete by name: %v", err)
	}
	rd, _ = e.svc.ReadSecurityGroups(ctx, e.joe, &service.ReadSecurityGroupsRequest{Filters: &service.FiltersSecurityGroup{SecurityGroupNames: []string{"packer_web"}}})
	if len(rd.SecurityGroups) != 1 || rd.SecurityGroups[0].NetId != netID {
		t.Errorf("deleting by name should take the public Cloud group first, left %+v", rd.SecurityGroups)
	}
	rd, _ = e.svc.ReadSecurityGroups(ctx, e.joe, &service.ReadSecurityGroupsRequest{Filters: &service.FiltersSecurityGroup{SecurityGroupNames: []string{"ghost"}}})
	if len(rd.SecurityGroups) != 0 {
		t.Errorf("a dry-run create left %+v", rd.SecurityGroups)
	}
}

// runningVms starts n VMs of c from a fresh image.
func runningVms(t *testing.T, e *env, c *omi.Caller, n int, codes ...string) []*omi.Vm {
	t.Helper()
	img := e.image(c, "nw-image-"+c.AccountID(), codes...)
	out, err := e.svc.CreateVms(context.Background(), c, &service.CreateVmsRequest{ImageId: img.ImageId, VmType: "tinav5.c2r4p2",
		MinVmsCount: ptr(n), MaxVmsCount: ptr(n)})
	if err != nil {
		t.Fatal(err)
	}
	e.settle()
	return out.Vms
}

func TestPublicIps(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	vms := runningVms(t, e, e.joe, 2)
	bobVm := runningVms(t, e, e.bob, 1)[0]
	newIP := func(c *omi.Caller) *omi.PublicIp {
		out, err := e.svc.CreatePublicIp(ctx, c, &service.CreatePublicIpRequest{})
		if err != nil {
			t.Fatal(err)
		}
		nwValid(t, "CreatePublicIp", out)
		return out.PublicIp
	}
	a, b := newIP(e.joe), newIP(e.joe)
	bobIP := newIP(e.bob)
	for _, p := range []*omi.PublicIp{a, b, bobIP} {
		addr, err := netip.ParseAddr(p.PublicIp)
		if err != nil || !netip.MustParsePrefix("100.64.0.0/10").Contains(addr) || !omi.ValidID(p.PublicIpId, "eipalloc") {
			t.Errorf("public IP %+v", p)
		}
	}
	if _, err := e.svc.CreatePublicIp(dry(), e.joe, &service.CreatePublicIpRequest{}); err != nil {
		t.Errorf("dry-run create: %v", err)
	}
	all, _ := e.svc.ReadPublicIps(ctx, e.joe, &service.ReadPublicIpsRequest{})
	if len(all.PublicIps) != 2 {
		t.Errorf("joe holds %d public IPs, want 2 (a dry run creates nothing)", len(all.PublicIps))
	}

	// Links: checks and isolation.
	link := func(c *omi.Caller, in service.LinkPublicIpRequest) (*service.LinkPublicIpResponse, error) {
		return e.svc.LinkPublicIp(ctx, c, &in)
	}
	for _, bad := range []struct {
		what string
		c    *omi.Caller
		in   service.LinkPublicIpRequest
		code string
	}{
		{"no address", e.joe, service.LinkPublicIpRequest{VmId: vms[0].VmId}, omi.CodeInvalidParameter},
		{"no VM", e.joe, service.LinkPublicIpRequest{PublicIp: a.PublicIp}, omi.CodeInvalidParameter},
		{"a NIC", e.joe, service.LinkPublicIpRequest{PublicIp: a.PublicIp, NicId: "eni-12345678"}, "5036"},
		{"bob's address", e.joe, service.LinkPublicIpRequest{PublicIp: bobIP.PublicIp, VmId: vms[0].VmId}, "5025"},
		{"bob's address by id", e.joe, service.LinkPublicIpRequest{PublicIpId: bobIP.PublicIpId, VmId: vms[0].VmId}, "5025"},
		{"id and address disagree", e.joe, service.LinkPublicIpRequest{PublicIpId: a.PublicIpId, PublicIp: b.PublicIp, VmId: vms[0].VmId}, "5025"},
		{"bob's VM", e.joe, service.LinkPublicIpRequest{PublicIp: a.PublicIp, VmId: bobVm.VmId}, "5063"},
		{"bob links joe's address", e.bob, service.LinkPublicIpRequest{PublicIp: a.PublicIp, VmId: bobVm.VmId}, "5025"},
		{"wrong private IP", e.joe, service.LinkPublicIpRequest{PublicIp: a.PublicIp, VmId: vms[0].VmId, PrivateIp: "192.0.2.1"}, omi.CodeInvalidValue},
	} {
		_, err := link(bad.c, bad.in)
		nwCode(t, bad.what, err, bad.code)
	}
	l1, err := link(e.joe, service.LinkPublicIpRequest{PublicIp: a.PublicIp, VmId: vms[0].VmId})
	if err != nil {
		t.Fatal(err)
	}
	nwValid(t, "LinkPublicIp", l1)
	if !omi.ValidID(l1.LinkPublicIpId, "eipassoc") {
		t.Errorf("link id %q", l1.LinkPublicIpId)
	}
	if again, err := link(e.joe, service.LinkPublicIpRequest{PublicIpId: a.PublicIpId, VmId: vms[0].VmId}); err != nil || again.LinkPublicIpId != l1.LinkPublicIpId {
		t.Errorf("linking twice: %+v %v", again, err)
	}
	_, err = link(e.joe, service.LinkPublicIpRequest{PublicIp: a.PublicIp, VmId: vms[1].VmId})
	nwCode(t, "move without AllowRelink", err, "9031")
	rd, err := e.svc.ReadPublicIps(ctx, e.joe, &service.ReadPublicIpsRequest{Filters: &service.FiltersPublicIp{VmIds: []string{vms[0].VmId}}})
	if err != nil {
		t.Fatal(err)
	}
	nwValid(t, "ReadPublicIps", rd)
	if len(rd.PublicIps) != 1 || rd.PublicIps[0].PublicIp != a.PublicIp || rd.PublicIps[0].PrivateIp != vms[0].PrivateIp || rd.PublicIps[0].LinkPublicIpId != l1.LinkPublicIpId {
		t.Errorf("linked address %+v", rd.PublicIps)
	}
	// A second address for the same VM replaces the first.
	if _, err := link(e.joe, service.LinkPublicIpRequest{PublicIp: b.PublicIp, VmId: vms[0].VmId}); err != nil {
		t.Fatal(err)
	}
	rd, _ = e.svc.ReadPublicIps(ctx, e.joe, &service.ReadPublicIpsRequest{Filters: &service.FiltersPublicIp{VmIds: []string{vms[0].VmId}}})
	if len(rd.PublicIps) != 1 || rd.PublicIps[0].PublicIp != b.PublicIp {
		t.Errorf("VM addresses after a second link: %+v", rd.PublicIps)
	}
	// With AllowRelink an address moves.
	if _, err := link(e.joe, service.LinkPublicIpRequest{PublicIp: b.PublicIp, VmId: vms[1].VmId, AllowRelink: true}); err != nil {
		t.Fatal(err)
	}
	// Bob sees none of it.
	for _, f := range []*service.FiltersPublicIp{{PublicIps: []string{a.PublicIp, b.PublicIp}}, {VmIds: []string{vms[1].VmId}}, {PublicIpIds: []string{a.PublicIpId}}} {
		out, _ := e.svc.ReadPublicIps(ctx, e.bob, &service.ReadPublicIpsRequest{Filters: f})
		if len(out.PublicIps) != 0 {
			t.Errorf("bob with %+v reads %+v", f, out.PublicIps)
		}
	}
	if d, err := e.svc.ReadPublicIps(dry(), e.joe, &service.ReadPublicIpsRequest{}); err != nil || len(d.PublicIps) != 0 {
		t.Errorf("dry-run ReadPublicIps: %+v %v", d, err)
	}

	// Unlinks.
	_, err = e.svc.UnlinkPublicIp(ctx, e.joe, &service.UnlinkPublicIpRequest{})
	nwCode(t, "unlink without address", err, omi.CodeInvalidParameter)
	_, err = e.svc.UnlinkPublicIp(ctx, e.joe, &service.UnlinkPublicIpRequest{PublicIp: a.PublicIp})
	nwCode(t, "unlink an unlinked address", err, "5026")
	_, err = e.svc.UnlinkPublicIp(ctx, e.bob, &service.UnlinkPublicIpRequest{PublicIp: b.PublicIp})
	nwCode(t, "bob unlinks joe's address", err, "5025")
	rd, _ = e.svc.ReadPublicIps(ctx, e.joe, &service.ReadPublicIpsRequest{Filters: &service.FiltersPublicIp{PublicIps: []string{b.PublicIp}}})
	linkB := rd.PublicIps[0].LinkPublicIpId
	_, err = e.svc.UnlinkPublicIp(ctx, e.bob, &service.UnlinkPublicIpRequest{LinkPublicIpId: linkB})
	nwCode(t, "bob unlinks joe's link", err, "5026")
	if out, err := e.svc.UnlinkPublicIp(ctx, e.joe, &service.UnlinkPublicIpRequest{LinkPublicIpId: linkB}); err != nil {
		t.Fatal(err)
	} else {
		nwValid(t, "UnlinkPublicIp", out)
	}
	rd, _ = e.svc.ReadPublicIps(ctx, e.joe, &service.ReadPublicIpsRequest{Filters: &service.FiltersPublicIp{LinkPublicIpIds: []string{linkB}}})
	if len(rd.PublicIps) != 0 {
		t.Errorf("unlinked address still linked: %+v", rd.PublicIps)
	}

	// A terminated VM loses its address.
	if _, err := link(e.joe, service.LinkPublicIpRequest{PublicIp: a.PublicIp, VmId: vms[1].VmId}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.DeleteVms(ctx, e.joe, &service.VmIdsRequest{VmIds: []string{vms[1].VmId}}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	rd, _ = e.svc.ReadPublicIps(ctx, e.joe, &service.ReadPublicIpsRequest{Filters: &service.FiltersPublicIp{PublicIps: []string{a.PublicIp}}})
	if len(rd.PublicIps) != 1 || rd.PublicIps[0].VmId != "" || rd.PublicIps[0].LinkPublicIpId != "" {
		t.Errorf("address of a terminated VM: %+v", rd.PublicIps)
	}
	_, err = link(e.joe, service.LinkPublicIpRequest{PublicIp: a.PublicIp, VmId: vms[1].VmId})
	nwCode(t, "link to a terminated VM", err, omi.CodeInvalidVmState)

	// Deletes: a linked address is unlinked and released.
	if _, err := link(e.joe, service.LinkPublicIpRequest{PublicIp: a.PublicIp, VmId: vms[0].VmId}); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.DeletePublicIp(ctx, e.bob, &service.DeletePublicIpRequest{PublicIp: a.PublicIp})
	nwCode(t, "bob deletes joe's address", err, "5025")
	_, err = e.svc.DeletePublicIp(ctx, e.joe, &service.DeletePublicIpRequest{})
	nwCode(t, "delete without address", err, omi.CodeInvalidParameter)
	if out, err := e.svc.DeletePublicIp(ctx, e.joe, &service.DeletePublicIpRequest{PublicIp: a.PublicIp}); err != nil {
		t.Fatal(err)
	} else {
		nwValid(t, "DeletePublicIp", out)
	}
	if _, err := e.svc.DeletePublicIp(ctx, e.joe, &service.DeletePublicIpRequest{PublicIpId: b.PublicIpId}); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.DeletePublicIp(ctx, e.joe, &service.DeletePublicIpRequest{PublicIpId: b.PublicIpId})
	nwCode(t, "delete twice", err, "5025")
	rd, _ = e.svc.ReadPublicIps(ctx, e.joe, &service.ReadPublicIpsRequest{})
	if len(rd.PublicIps) != 0 {
		t.Errorf("joe still holds %+v", rd.PublicIps)
	}
}

func TestPublicIpQuotaAndUniqueness(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	seen := map[string]bool{}
	for i := 0; i < service.MaxPublicIpsPerAccount; i++ {
		out, err := e.svc.CreatePublicIp(ctx, e.joe, &service.CreatePublicIpRequest{})
		if err != nil {
			t.Fatalf("address %d: %v", i, err)
		}
		if seen[out.PublicIp.PublicIp] {
			t.Fatalf("address %s handed out twice", out.PublicIp.PublicIp)
		}
		seen[out.PublicIp.PublicIp] = true
	}
	_, err := e.svc.CreatePublicIp(ctx, e.joe, &service.CreatePublicIpRequest{})
	nwCode(t, "one address too many", err, "10011")
	// Paging through them returns each once.
	got := map[string]bool{}
	tok := ""
	for pages := 0; pages < 20; pages++ {
		rd, err := e.svc.ReadPublicIps(ctx, e.joe, &service.ReadPublicIpsRequest{Paging: service.Paging{ResultsPerPage: ptr(30), NextPageToken: tok}})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range rd.PublicIps {
			if got[p.PublicIp] {
				t.Errorf("%s on two pages", p.PublicIp)
			}
			got[p.PublicIp] = true
		}
		if tok = rd.NextPageToken; tok == "" {
			break
		}
	}
	if len(got) != len(seen) {
		t.Errorf("paging returned %d of %d addresses", len(got), len(seen))
	}
}

func TestConsoleAndAdminPassword(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	linux := runningVms(t, e, e.joe, 1)[0]
	img := e.image(e.joe, "windows-image", "0002")
	out, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId, VmType: "tinav5.c2r4p2"})
	if err != nil {
		t.Fatal(err)
	}
	e.settle()
	windows := out.Vms[0]
	for _, vm := range []*omi.Vm{linux, windows} {
		co, err := e.svc.ReadConsoleOutput(ctx, e.joe, &service.ReadConsoleOutputRequest{VmId: vm.VmId})
		if err != nil {
			t.Fatal(err)
		}
		nwValid(t, "ReadConsoleOutput", co)
		if co.VmId != vm.VmId {
			t.Errorf("console of %s: %+v", vm.VmId, co)
		}
		if _, err := base64.StdEncoding.DecodeString(co.ConsoleOutput); err != nil {
			t.Errorf("console output is not Base64: %v", err)
		}
		// terraform reads the password of every VM it refreshes, Linux
		// ones included, and fails on an error.
		pw, err := e.svc.ReadAdminPassword(ctx, e.joe, &service.ReadAdminPasswordRequest{VmId: vm.VmId})
		if err != nil {
			t.Fatalf("ReadAdminPassword %s: %v", vm.VmId, err)
		}
		nwValid(t, "ReadAdminPassword", pw)
		if pw.VmId != vm.VmId || pw.AdminPassword != "" {
			t.Errorf("password of %s: %+v", vm.VmId, pw)
		}
		_, err = e.svc.ReadConsoleOutput(ctx, e.bob, &service.ReadConsoleOutputRequest{VmId: vm.VmId})
		nwCode(t, "bob reads joe's console", err, omi.CodeNoSuchVm)
		_, err = e.svc.ReadAdminPassword(ctx, e.bob, &service.ReadAdminPasswordRequest{VmId: vm.VmId})
		nwCode(t, "bob reads joe's password", err, omi.CodeNoSuchVm)
		if d, err := e.svc.ReadAdminPassword(dry(), e.joe, &service.ReadAdminPasswordRequest{VmId: vm.VmId}); err != nil || d.VmId != "" {
			t.Errorf("dry-run ReadAdminPassword: %+v %v", d, err)
		}
	}
	_, err = e.svc.ReadConsoleOutput(ctx, e.joe, &service.ReadConsoleOutputRequest{})
	nwCode(t, "console without VmId", err, omi.CodeInvalidParameter)
	_, err = e.svc.ReadAdminPassword(ctx, e.joe, &service.ReadAdminPasswordRequest{VmId: "i-00000000"})
	nwCode(t, "password of a missing VM", err, omi.CodeNoSuchVm)
	_, err = e.svc.ReadConsoleOutput(dry(), e.joe, &service.ReadConsoleOutputRequest{VmId: "i-00000000"})
	nwCode(t, "dry-run console of a missing VM", err, omi.CodeNoSuchVm)
}

// TestErrorsMatchSpec checks that the errors of these calls are well-formed
// ErrorResponse bodies (the transport sends Code, Type and Details).
func TestErrorsMatchSpec(t *testing.T) {
	e := newEnv(t)
	_, err := e.svc.CreateKeypair(context.Background(), e.joe, &service.CreateKeypairRequest{KeypairName: "x", PublicKey: "!"})
	var oe *omi.Error
	if !errors.As(err, &oe) {
		t.Fatalf("not an *omi.Error: %v", err)
	}
	body, _ := json.Marshal(map[string]any{"Errors": []map[string]string{{"Code": oe.Code, "Type": oe.Type, "Details": oe.Details}},
		"ResponseContext": map[string]string{"RequestId": "0475ca1e-d0c5-441d-712a-da55a4175157"}})
	if err := nwSpec(t).ValidateResponse("CreateKeypair", 400, body); err != nil {
		t.Errorf("error body: %v", err)
	}
}

// nwBenchEnv is newEnv for benchmarks: a service over a real SQLite store
// with the accounts joe and bob.
func nwBenchEnv(b *testing.B) *env {
	b.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "omi.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	svc := service.New(store, service.Config{Region: "eu-west-2"}, nil)
	joe := service.AccountSpec{AccountID: "123456789012", Alias: "joe", Email: "joe@example.com", Password: "pw-joe-123"}
	bob := service.AccountSpec{AccountID: "210987654321", Alias: "bob", Email: "bob@example.com", Password: "pw-bob-123"}
	if err := svc.Provision(ctx, []service.AccountSpec{joe, bob}); err != nil {
		b.Fatal(err)
	}
	return &env{svc: svc,
		joe: &omi.Caller{Account: &omi.Account{AccountId: joe.AccountID, Alias: "joe"}},
		bob: &omi.Caller{Account: &omi.Account{AccountId: bob.AccountID, Alias: "bob"}}}
}

// BenchmarkCreateKeypairGenerate measures CreateKeypair without PublicKey:
// a 2048-bit RSA generation plus one store insert.
func BenchmarkCreateKeypairGenerate(b *testing.B) {
	e := nwBenchEnv(b)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := e.svc.CreateKeypair(ctx, e.joe, &service.CreateKeypairRequest{KeypairName: "bench-" + strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadSecurityGroups measures a ReadSecurityGroups by name among
// 200 groups of the caller and 200 of another account.
func BenchmarkReadSecurityGroups(b *testing.B) {
	e := nwBenchEnv(b)
	ctx := context.Background()
	for _, c := range []*omi.Caller{e.joe, e.bob} {
		for i := 0; i < 200; i++ {
			if _, err := e.svc.CreateSecurityGroup(ctx, c, &service.CreateSecurityGroupRequest{SecurityGroupName: "g" + strconv.Itoa(i), Description: "bench"}); err != nil {
				b.Fatal(err)
			}
		}
	}
	in := &service.ReadSecurityGroupsRequest{Filters: &service.FiltersSecurityGroup{SecurityGroupNames: []string{"g100"}}}
	b.ResetTimer()
	for b.Loop() {
		out, err := e.svc.ReadSecurityGroups(ctx, e.joe, in)
		if err != nil || len(out.SecurityGroups) != 1 {
			b.Fatalf("%v %v", out, err)
		}
	}
}
