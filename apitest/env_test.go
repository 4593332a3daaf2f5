package apitest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	oscv2 "github.com/outscale/osc-sdk-go/v2"
	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"

	"github.com/omiproject/omi/apitest"
)

func TestStartServesExampleAccounts(t *testing.T) {
	e := apitest.Start(t)
	for _, alias := range e.AccountAliases() {
		a := e.Accounts[alias]
		var out struct {
			Accounts []struct{ AccountId, Email string }
		}
		e.MustCall(t, a, "ReadAccounts", map[string]any{}, &out)
		if len(out.Accounts) != 1 || out.Accounts[0].AccountId != a.AccountID || out.Accounts[0].Email != a.Email {
			t.Errorf("ReadAccounts as %s = %+v, want account %s", alias, out.Accounts, a.AccountID)
		}
	}
	if e.Joe.AccessKey != "11112211111110000000" || e.Titi.AccessKey != "11112211111110000333" {
		t.Errorf("joe/titi keys = %s/%s, want the de-facto OUTSCALE test keys", e.Joe.AccessKey, e.Titi.AccessKey)
	}
	if e.Checker().Checked() < int64(len(e.Accounts)) {
		t.Errorf("checker saw %d responses, want at least %d", e.Checker().Checked(), len(e.Accounts))
	}
	if !strings.HasPrefix(e.URL, "http://127.0.0.1:") {
		t.Errorf("URL = %s, want a loopback address", e.URL)
	}
}

func TestSDKClientsGoThroughChecker(t *testing.T) {
	e := apitest.Start(t)
	before := e.Checker().Checked()
	v2, ctx := e.V2(e.Joe)
	if _, _, err := v2.AccountApi.ReadAccounts(ctx).ReadAccountsRequest(oscv2.ReadAccountsRequest{}).Execute(); err != nil {
		t.Fatalf("v2 ReadAccounts: %v", err)
	}
	if _, err := e.V3(e.Joe).ReadAccounts(t.Context(), oscv3.ReadAccountsRequest{}); err != nil {
		t.Fatalf("v3 ReadAccounts: %v", err)
	}
	if got := e.Checker().Checked() - before; got < 2 {
		t.Errorf("checker saw %d responses from the two SDK calls, want 2", got)
	}
}

// recorder is a testing.TB that records errors instead of failing.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Error(args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprint(args...))
}
func (r *recorder) Errorf(format string, args ...any) { r.Error(fmt.Sprintf(format, args...)) }

// The checker must catch each class of violation; a checker that cannot
// fail would make every e2e test unable to fail on conformance.
func TestCheckerCatchesViolations(t *testing.T) {
	spec, err := apitest.LoadSpec()
	if err != nil {
		t.Logf("no spec: %v (schema cases skipped)", err)
	}
	cases := []struct {
		name, path, ctype, body string
		status                  int
		want                    string // substring of the reported problem; "" = none
		needSpec                bool
	}{
		{"ok", "/api/v1/ReadRegions", "application/json", `{"Regions":[],"ResponseContext":{"RequestId":"x"}}`, 200, "", false},
		{"5xx", "/api/v1/ReadRegions", "application/json", `{"Errors":[{"Code":"0","Type":"InternalError","Details":""}],"ResponseContext":{"RequestId":"x"}}`, 500, "5xx", false},
		{"content type", "/api/v1/ReadRegions", "text/plain", `{"ResponseContext":{"RequestId":"x"}}`, 200, "Content-Type", false},
		{"no request id", "/api/v1/ReadRegions", "application/json", `{"Regions":[]}`, 200, "RequestId", false},
		{"not json", "/api/v1/ReadRegions", "application/json", `404 page not found`, 404, "not a JSON object", false},
		{"code not string", "/api/v1/ReadImages", "application/json", `{"Errors":[{"Code":5023,"Type":"InvalidResource"}],"ResponseContext":{"RequestId":"x"}}`, 400, "JSON object", false},
		{"no errors", "/api/v1/ReadImages", "application/json", `{"ResponseContext":{"RequestId":"x"}}`, 400, "without Errors", false},
		{"schema type", "/api/v1/ReadRegions", "application/json", `{"Regions":[{"RegionName":7}],"ResponseContext":{"RequestId":"x"}}`, 200, "OpenAPI", true},
		{"schema extra field", "/api/v1/ReadRegions", "application/json", `{"Regions":[],"Bogus":1,"ResponseContext":{"RequestId":"x"}}`, 200, "OpenAPI", true},
		{"schema 409 error", "/api/v1/DeleteSnapshot", "application/json", `{"Errors":[{"Code":"9004","Type":"ResourceConflict","Details":""}],"ResponseContext":{"RequestId":"x"}}`, 409, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.needSpec && spec == nil {
				t.Skip("no spec")
			}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", c.ctype)
				w.WriteHeader(c.status)
				fmt.Fprint(w, c.body)
			}))
			defer srv.Close()
			rec := &recorder{TB: t}
			chk := apitest.NewChecker(rec, http.DefaultTransport)
			chk.Spec = spec
			resp, err := (&http.Client{Transport: chk}).Post(srv.URL+c.path, "application/json", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := strings.Join(rec.errs, "\n")
			switch {
			case c.want == "" && got != "":
				t.Errorf("unexpected problems: %s", got)
			case c.want != "" && !strings.Contains(got, c.want):
				t.Errorf("problems = %q, want one mentioning %q", got, c.want)
			}
		})
	}
}
