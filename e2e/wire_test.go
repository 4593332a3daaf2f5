package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/omiproject/omi/apitest"
	"github.com/omiproject/omi/sigv4"
)

// curlResult is what curl reports of one exchange.
type curlResult struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r *curlResult) code() string {
	var env struct{ Errors []struct{ Code string } }
	if json.Unmarshal(r.Body, &env) != nil || len(env.Errors) == 0 {
		return ""
	}
	return env.Errors[0].Code
}

func (r *curlResult) String() string { return strconv.Itoa(r.Status) + " " + string(r.Body) }

// runCurl runs the real curl with args against the server and passes the
// response through the harness's checker. The last arg is the path,
// appended to the server URL.
func runCurl(t *testing.T, e *apitest.Env, path string, args ...string) *curlResult {
	t.Helper()
	curl := apitest.NeedTool(t, "curl")
	dir := t.TempDir()
	hdr, body := filepath.Join(dir, "h"), filepath.Join(dir, "b")
	all := append([]string{"-sS", "--path-as-is", "--max-time", "30", "-D", hdr, "-o", body}, args...)
	all = append(all, e.URL+path)
	out, err := exec.Command(curl, all...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %v: %v\n%s", all, err, out)
	}
	raw, err := os.ReadFile(hdr)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(body)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	res := &curlResult{Header: http.Header{}, Body: b}
	for i, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		line = strings.TrimRight(line, "\r")
		if i == 0 {
			f := strings.Fields(line)
			if len(f) < 2 {
				t.Fatalf("curl status line %q", line)
			}
			res.Status, _ = strconv.Atoi(f[1])
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			res.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	e.Checker().Check("curl "+path, apitest.CallName(path), res.Status, res.Header, res.Body)
	return res
}

// signedCurl is curl with OUTSCALE's own signing mode, as oapi-cli and the
// Outscale libcurl examples use it (OSC4, X-Osc-Date).
func signedCurl(t *testing.T, e *apitest.Env, a apitest.Account, path string, extra ...string) *curlResult {
	t.Helper()
	args := append([]string{"--aws-sigv4", "osc:osc:" + apitest.Region + ":api", "--user", a.AccessKey + ":" + a.SecretKey,
		"-H", "Content-Type: application/json", "-X", "POST"}, extra...)
	return runCurl(t, e, path, args...)
}

func TestWireProtocolCurl(t *testing.T) {
	e := apitest.Start(t)
	vol := newVolume(t, e, e.Joe, 1)

	t.Run("paths", func(t *testing.T) {
		for _, p := range []string{"/api/v1/ReadVolumes", "/api/latest/ReadVolumes", "/ReadVolumes"} {
			r := signedCurl(t, e, e.Joe, p, "-d", `{"Filters":{"VolumeIds":["`+vol+`"]}}`)
			if r.Status != http.StatusOK {
				t.Errorf("%s: %s", p, r)
				continue
			}
			var out struct{ Volumes []struct{ VolumeId string } }
			if err := json.Unmarshal(r.Body, &out); err != nil || len(out.Volumes) != 1 || out.Volumes[0].VolumeId != vol {
				t.Errorf("%s: volumes %+v (%v), want %s", p, out.Volumes, err, vol)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("%s: Content-Type %q", p, ct)
			}
		}
	})
	t.Run("empty body", func(t *testing.T) {
		r := signedCurl(t, e, e.Joe, "/api/v1/ReadVolumes")
		if r.Status != http.StatusOK {
			t.Fatalf("empty body: %s", r)
		}
		var out struct{ Volumes []struct{ VolumeId string } }
		if json.Unmarshal(r.Body, &out); len(out.Volumes) != 1 {
			t.Errorf("empty body = all volumes: got %d, want 1", len(out.Volumes))
		}
	})
	t.Run("request ids", func(t *testing.T) {
		seen := map[string]bool{}
		for i := 0; i < 3; i++ {
			r := signedCurl(t, e, e.Joe, "/api/v1/ReadAccounts", "-d", "{}")
			var env struct{ ResponseContext struct{ RequestId string } }
			json.Unmarshal(r.Body, &env)
			if env.ResponseContext.RequestId == "" || seen[env.ResponseContext.RequestId] {
				t.Errorf("RequestId %q missing or repeated", env.ResponseContext.RequestId)
			}
			seen[env.ResponseContext.RequestId] = true
		}
	})
	t.Run("unknown call", func(t *testing.T) {
		r := signedCurl(t, e, e.Joe, "/api/v1/ReadUnicorns", "-d", "{}")
		if r.Status < 400 || r.Status >= 500 || r.code() == "" {
			t.Errorf("unknown call: %s, want a 4xx JSON error", r)
		}
		r = runCurl(t, e, "/api/v1/", "-X", "POST")
		if r.Status < 400 || r.Status >= 500 || r.code() == "" {
			t.Errorf("no call name: %s, want a 4xx JSON error", r)
		}
	})
	t.Run("GET", func(t *testing.T) {
		r := runCurl(t, e, "/api/v1/ReadRegions")
		if r.Status < 400 || r.Status >= 500 || r.code() == "" {
			t.Errorf("GET: %s, want a 4xx JSON error", r)
		}
	})
	t.Run("malformed JSON", func(t *testing.T) {
		for _, body := range []string{`{"Filters":`, `[1,2]`, `"x"`, `{"a":1}{`, "\x00\x01"} {
			f := filepath.Join(t.TempDir(), "body")
			if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			r := signedCurl(t, e, e.Joe, "/api/v1/ReadVolumes", "--data-binary", "@"+f)
			if r.Status != http.StatusBadRequest || (r.code() != "4095" && r.code() != "4108") {
				t.Errorf("body %q: %s, want 400 4095/4108", body, r)
			}
		}
	})
	t.Run("wrong types", func(t *testing.T) {
		for _, body := range []string{`{"ResultsPerPage":"x"}`, `{"Filters":{"VolumeIds":"vol-1"}}`, `{"Filters":[]}`,
			`{"DryRun":"yes"}`, `{"ResultsPerPage":1.5}`} {
			r := signedCurl(t, e, e.Joe, "/api/v1/ReadVolumes", "-d", body)
			if r.Status != http.StatusBadRequest || (r.code() != "4108" && r.code() != "4095") {
				t.Errorf("body %s: %s, want 400 4108/4095", body, r)
			}
		}
	})
	t.Run("unknown fields ignored", func(t *testing.T) {
		r := signedCurl(t, e, e.Joe, "/api/v1/ReadVolumes", "-d", `{"FutureField":{"x":[1]},"Filters":{"VolumeIds":["`+vol+`"],"NewFilter":true}}`)
		var out struct{ Volumes []struct{ VolumeId string } }
		if json.Unmarshal(r.Body, &out); r.Status != http.StatusOK || len(out.Volumes) != 1 {
			t.Errorf("unknown fields: %s, want 200 with the volume", r)
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		r := runCurl(t, e, "/api/v1/ReadVolumes", "-X", "POST", "-H", "Content-Type: application/json", "-d", "{}")
		if r.Status != http.StatusUnauthorized {
			t.Errorf("no Authorization: %s, want 401", r)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		bad := e.Joe
		bad.SecretKey = strings.Repeat("x", 40)
		r := signedCurl(t, e, bad, "/api/v1/ReadVolumes", "-d", "{}")
		if r.Status != http.StatusUnauthorized || r.code() != "1" {
			t.Errorf("wrong secret: %s, want 401 code 1", r)
		}
	})
	t.Run("double slash", func(t *testing.T) {
		// curl signs the path it sends; osc-cli (TestWireProtocolRaw) signs
		// the collapsed path and sends //.
		r := signedCurl(t, e, e.Joe, "//api/latest/ReadVolumes", "-d", "{}")
		if r.Status != http.StatusOK {
			t.Errorf("curl //api/latest: %s", r)
		}
	})
}

// Raw signed requests for what curl cannot do: corrupt signatures, shift
// clocks, osc-cli's double slash.
func TestWireProtocolRaw(t *testing.T) {
	e := apitest.Start(t)
	joe := e.Joe
	t.Run("osc-cli double slash", func(t *testing.T) {
		r := e.Do(t, apitest.Request{Path: "/api/latest/ReadAccounts", Body: []byte("{}"), Account: &joe,
			Tamper: func(req *http.Request) { req.URL.Path = "//api/latest/ReadAccounts"; req.URL.RawPath = "" }})
		if r.Status != http.StatusOK {
			t.Errorf("signed /api/latest, sent //api/latest: %s", r)
		}
	})
	t.Run("python host without port", func(t *testing.T) {
		// osc-sdk-python and osc-sdk-rust sign the host without its port.
		body := []byte("{}")
		req, err := e.NewRequest(apitest.Request{Call: "ReadAccounts", Body: body,
			Header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}})
		if err != nil {
			t.Fatal(err)
		}
		signed := req.Clone(t.Context())
		signed.Host = req.URL.Hostname()
		s := sigv4.Signer{Algorithm: sigv4.AlgorithmOSC4, AccessKey: joe.AccessKey, SecretKey: joe.SecretKey,
			Region: apitest.Region, Service: "api", Headers: []string{"Content-Type"}}
		if err := s.Sign(signed, body, time.Now()); err != nil {
			t.Fatal(err)
		}
		req.Header = signed.Header
		resp, err := e.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("signature over the host without port: %d, want 200", resp.StatusCode)
		}
	})
	t.Run("osc-cli target header", func(t *testing.T) {
		body := []byte("{}")
		req, err := e.NewRequest(apitest.Request{Path: "/api/latest/ReadAccounts", Body: body,
			Header: http.Header{"X-Osc-Target": {"OutscaleService.ReadAccounts"}}})
		if err != nil {
			t.Fatal(err)
		}
		s := sigv4.Signer{Algorithm: sigv4.AlgorithmOSC4, AccessKey: joe.AccessKey, SecretKey: joe.SecretKey,
			Region: apitest.Region, Service: "api", Headers: []string{"X-Osc-Target"}}
		if err := s.Sign(req, body, time.Now()); err != nil {
			t.Fatal(err)
		}
		req.URL.Path = "//api/latest/ReadAccounts"
		resp, err := e.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("osc-cli style (host;x-osc-date;x-osc-target, //api/latest): %d, want 200", resp.StatusCode)
		}
	})
	t.Run("osc-cli url-safe basic", func(t *testing.T) {
		// osc-cli encodes login:password with the URL-safe alphabet.
		enc := base64.URLEncoding.EncodeToString([]byte(joe.Email + ":" + joe.Password))
		r := e.Do(t, apitest.Request{Call: "ReadAccessKeys", Body: []byte("{}"), Header: http.Header{
			"Authorization": {"Basic " + enc}, "X-Osc-Date": {time.Now().UTC().Format(sigv4.DateFormat)}}})
		if r.Status != http.StatusOK {
			t.Errorf("url-safe Basic: %s", r)
		}
	})
	t.Run("both algorithms", func(t *testing.T) {
		for _, alg := range []string{sigv4.AlgorithmOSC4, sigv4.AlgorithmAWS4} {
			for _, svc := range []string{"api", "oapi", "osc"} {
				r := e.Do(t, apitest.Request{Call: "ReadAccounts", Body: []byte("{}"), Account: &joe, Algorithm: alg, Service: svc})
				if r.Status != http.StatusOK {
					t.Errorf("%s service %s: %s", alg, svc, r)
				}
			}
		}
	})
	t.Run("bad signature", func(t *testing.T) {
		r := e.Do(t, apitest.Request{Call: "ReadVolumes", Body: []byte("{}"), Account: &joe, Tamper: func(req *http.Request) {
			h := req.Header.Get("Authorization")
			last := h[len(h)-1]
			repl := byte('0')
			if last == '0' {
				repl = '1'
			}
			req.Header.Set("Authorization", h[:len(h)-1]+string(repl))
		}})
		if r.Status != http.StatusUnauthorized || r.ErrorCode() != "1" {
			t.Errorf("flipped signature: %s, want 401 code 1", r)
		}
	})
	t.Run("body changed after signing", func(t *testing.T) {
		req, err := e.NewRequest(apitest.Request{Call: "ReadVolumes", Body: []byte(`{"ResultsPerPage":1}`), Account: &joe})
		if err != nil {
			t.Fatal(err)
		}
		body := []byte(`{"ResultsPerPage":2}`)
		req.Body, req.ContentLength = readCloser(body), int64(len(body))
		resp, err := e.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("body changed after signing: %d, want 401", resp.StatusCode)
		}
	})
	t.Run("unknown key", func(t *testing.T) {
		ghost := apitest.Account{AccessKey: "ABCDEFGHIJKLMNOPQRST", SecretKey: strings.Repeat("s", 40)}
		r := e.Do(t, apitest.Request{Call: "ReadVolumes", Body: []byte("{}"), Account: &ghost})
		if r.Status != http.StatusUnauthorized || r.ErrorCode() != "1" {
			t.Errorf("unknown key: %s, want 401 code 1", r)
		}
	})
	t.Run("skewed date", func(t *testing.T) {
		for _, d := range []time.Duration{-6 * time.Minute, 6 * time.Minute, -24 * time.Hour} {
			r := e.Do(t, apitest.Request{Call: "ReadVolumes", Body: []byte("{}"), Account: &joe, Date: time.Now().Add(d)})
			if r.Status != http.StatusUnauthorized || r.ErrorCode() != "1" {
				t.Errorf("date off by %s: %s, want 401 code 1", d, r)
			}
		}
		// Within the 5-minute window it works.
		r := e.Do(t, apitest.Request{Call: "ReadVolumes", Body: []byte("{}"), Account: &joe, Date: time.Now().Add(-4 * time.Minute)})
		if r.Status != http.StatusOK {
			t.Errorf("date 4 minutes old: %s, want 200", r)
		}
	})
	t.Run("garbage authorization", func(t *testing.T) {
		for _, h := range []string{"Bearer xyz", "OSC4-HMAC-SHA256", "AWS4-HMAC-SHA256 Credential=x", "Basic !!!", "OSC4-HMAC-SHA256 Credential=11112211111110000000/2026/eu-west-2/api/osc4_request, SignedHeaders=host, Signature=zz"} {
			r := e.Do(t, apitest.Request{Call: "ReadVolumes", Body: []byte("{}"), Header: http.Header{"Authorization": {h}}})
			if r.Status < 400 || r.Status >= 500 {
				t.Errorf("Authorization %q: %s, want 4xx", h, r)
			}
		}
	})
	t.Run("oversized body", func(t *testing.T) {
		big := bytes.Repeat([]byte(" "), 2<<20)
		big = append(append([]byte("{"), big...), '}')
		r := e.Do(t, apitest.Request{Call: "ReadVolumes", Body: big, Account: &joe})
		if r.Status < 400 || r.Status >= 500 {
			t.Errorf("2 MiB body: %s, want 4xx", r)
		}
	})
}

// DryRun answers 200 with only ResponseContext and changes nothing.
func TestDryRun(t *testing.T) {
	e := apitest.Start(t)
	vol := newVolume(t, e, e.Joe, 1)
	snap := newSnapshot(t, e, e.Joe, vol)
	img := registerImage(t, e, e.Joe, "dry", snap).ImageId
	count := func(call, field string) int {
		var out map[string]json.RawMessage
		e.MustCall(t, e.Joe, call, map[string]any{}, &out)
		var list []any
		json.Unmarshal(out[field], &list)
		return len(list)
	}
	vols, imgs, snaps := count("ReadVolumes", "Volumes"), count("ReadImages", "Images"), count("ReadSnapshots", "Snapshots")
	cases := []struct {
		call string
		body map[string]any
	}{
		{"CreateVolume", map[string]any{"DryRun": true, "SubregionName": apitest.Region + "a", "Size": 3}},
		{"CreateImage", map[string]any{"DryRun": true, "ImageName": "dry-2", "RootDeviceName": "/dev/sda1",
			"BlockDeviceMappings": []map[string]any{{"DeviceName": "/dev/sda1", "Bsu": map[string]any{"SnapshotId": snap}}}}},
		{"CreateImage", map[string]any{"DryRun": true, "SourceImageId": img, "SourceRegionName": apitest.Region, "ImageName": "dry-copy"}},
		{"DeleteImage", map[string]any{"DryRun": true, "ImageId": img}},
		{"CreateSnapshot", map[string]any{"DryRun": true, "VolumeId": vol}},
		{"DeleteVolume", map[string]any{"DryRun": true, "VolumeId": vol}},
		{"UpdateImage", map[string]any{"DryRun": true, "ImageId": img, "Description": "dry"}},
		{"CreateTags", map[string]any{"DryRun": true, "ResourceIds": []string{img}, "Tags": []map[string]string{{"Key": "k", "Value": "v"}}}},
		{"CreateAccessKey", map[string]any{"DryRun": true}},
	}
	for _, c := range cases {
		r := e.Call(t, e.Joe, c.call, c.body)
		if r.Status != http.StatusOK {
			t.Errorf("%s DryRun: %s, want 200", c.call, r)
			continue
		}
		var out map[string]json.RawMessage
		if err := r.Decode(&out); err != nil || len(out) != 1 || out["ResponseContext"] == nil {
			t.Errorf("%s DryRun body %s, want only ResponseContext", c.call, r.Body)
		}
	}
	if v, i, s := count("ReadVolumes", "Volumes"), count("ReadImages", "Images"), count("ReadSnapshots", "Snapshots"); v != vols || i != imgs || s != snaps {
		t.Errorf("after dry runs: %d volumes %d images %d snapshots, want %d %d %d", v, i, s, vols, imgs, snaps)
	}
	got := waitImage(t, e, e.Joe, img, "available")
	if deref(got.Description) != "" || len(got.Tags) != 0 {
		t.Errorf("dry runs changed the image: description %q tags %v", deref(got.Description), got.Tags)
	}
	var keys struct{ AccessKeys []any }
	e.MustCall(t, e.Joe, "ReadAccessKeys", map[string]any{}, &keys)
	if len(keys.AccessKeys) != 1 {
		t.Errorf("dry-run CreateAccessKey left %d keys, want 1", len(keys.AccessKeys))
	}
	// A dry run still checks: a bad request fails as the real call would.
	r := e.Call(t, e.Joe, "DeleteImage", map[string]any{"DryRun": true, "ImageId": "ami-0000dead"})
	if r.Status != http.StatusBadRequest || r.ErrorCode() != "5023" {
		t.Errorf("dry-run DeleteImage of a missing image: %s, want 400 5023", r)
	}
	r = e.Call(t, e.Titi, "DeleteImage", map[string]any{"DryRun": true, "ImageId": img})
	if r.Status != http.StatusBadRequest || r.ErrorCode() != "5023" {
		t.Errorf("dry-run DeleteImage of joe's image by titi: %s, want 400 5023", r)
	}
}
