package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/omiproject/omi/authguard"
	"github.com/omiproject/omi/config"
	"github.com/omiproject/omi/sigv4"
)

// TestSecuritySettingsPrecedence: defaults, then the file, then the
// environment, then the flags.
func TestSecuritySettingsPrecedence(t *testing.T) {
	file, err := config.Parse([]byte("login_lockout:\n  login_failures: 6\n  delay: 2m\nsignature:\n  regions: [eu-west-2, cloudgouv-eu-west-1]\n  client_scopes: false\n"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("OMI_ADDRESS_FAILURES", "50")
	t.Setenv("OMI_LOGIN_LOCKOUT_MAX", "30m")
	f, err := parseServeFlags([]string{"--login-failures", "0", "--signature-client-scopes", "true"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.security.loginPolicy(file.LoginLockout)
	if err != nil {
		t.Fatal(err)
	}
	want := authguard.Policy{LoginFailures: 0, AddressFailures: 50, Lockout: 2 * time.Minute, MaxLockout: 30 * time.Minute}
	if p != want {
		t.Errorf("login policy %+v, want %+v", p, want)
	}
	sp, err := f.security.signaturePolicy(file.Signature)
	if err != nil {
		t.Fatal(err)
	}
	if !sp.ClientScopes || strings.Join(sp.Regions, ",") != "eu-west-2,cloudgouv-eu-west-1" {
		t.Errorf("signature policy %+v", sp)
	}
	// No file, no flags: the defaults.
	if p, _ := (&securityFlags{}).loginPolicy(config.LoginLockout{}); p != authguard.DefaultPolicy {
		t.Errorf("default login policy %+v", p)
	}
	for _, args := range [][]string{{"--login-failures", "-1"}, {"--login-lockout", "soon"}, {"--login-lockout", "5m", "--login-lockout-max", "1m"}} {
		f, err := parseServeFlags(args)
		if err == nil {
			_, err = f.security.loginPolicy(config.LoginLockout{})
		}
		if err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	if _, err := config.Parse([]byte("login_lockout:\n  login_failures: -2\n")); err == nil {
		t.Error("a negative login_failures in the file is accepted")
	}
}

// TestLockoutSettingsInAProcess: omi serve applies OMI_LOGIN_FAILURES and
// --signature-regions, and counts lockouts in its metrics.
func TestLockoutSettingsInAProcess(t *testing.T) {
	bin := buildOmi(t)
	metricsAddr := freePort(t)
	p := launch(t, bin, nil, "", []string{"OMI_LOGIN_FAILURES=2"}, "--metrics-listen", metricsAddr, "--data", t.TempDir(),
		"--catalog=false", "--signature-regions", "eu-west-2,us-east-2")
	login := func(pw string) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+p.api+"/api/v1/ReadAccessKeys", strings.NewReader("{}"))
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("joe@example.com:"+pw)))
		req.Header.Set("X-Osc-Date", time.Now().UTC().Format(sigv4.DateFormat))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Errors []struct{ Code string } }
		json.NewDecoder(resp.Body).Decode(&out)
		code := ""
		if len(out.Errors) > 0 {
			code = out.Errors[0].Code
		}
		return resp.StatusCode, code
	}
	for i := 0; i < 2; i++ {
		if st, code := login("wrong"); st != 401 || code != "1" {
			t.Fatalf("bad password: %d %s", st, code)
		}
	}
	if st, code := login("joe-password-1234"); st != 401 || code != "13" {
		t.Errorf("right password after 2 failures with OMI_LOGIN_FAILURES=2: %d %s, want 401 13", st, code)
	}
	// A second configured region is accepted.
	body := []byte("{}")
	req, _ := http.NewRequest("POST", "http://"+p.api+"/api/v1/ReadAccounts", bytes.NewReader(body))
	s := sigv4.Signer{Algorithm: sigv4.AlgorithmAWS4, AccessKey: "11112211111110000000", SecretKey: "0000001111112222223333334444445555555666", Region: "us-east-2", Service: "osc"}
	if err := s.Sign(req, body, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("signed for us-east-2 with --signature-regions eu-west-2,us-east-2: %d", resp.StatusCode)
	}

	for i := 0; !up(metricsAddr); i++ {
		if i == 100 {
			t.Fatal("metrics endpoint did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}
	mresp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer mresp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(mresp.Body)
	for _, line := range []string{
		`omi_auth_password_events_total{kind="login",outcome="failure",scope=""} 2`,
		`omi_auth_password_events_total{kind="login",outcome="lockout",scope="login"} 1`,
		`omi_auth_password_events_total{kind="login",outcome="refused",scope="login"} 1`,
	} {
		if !strings.Contains(buf.String(), line) {
			t.Errorf("metrics lack %s:\n%s", line, grepLines(buf.String(), "omi_auth"))
		}
	}
}
