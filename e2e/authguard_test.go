package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"

	"github.com/omiproject/omi/apitest"
	"github.com/omiproject/omi/service"
	"github.com/omiproject/omi/sigv4"
)

// shiftedClock is the real time plus an offset the test moves forward, so
// a lockout can end without the test waiting for it.
type shiftedClock struct{ offset atomic.Int64 }

func (c *shiftedClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *shiftedClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

// authEvents counts the service's AuthEvents, as the metrics do.
type authEvents struct {
	mu sync.Mutex
	n  map[service.AuthEvent]int
}

func (a *authEvents) observe(ev service.AuthEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n[ev]++
}

func (a *authEvents) count(ev service.AuthEvent) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n[ev]
}

// basicCall sends ReadAccessKeys with login/password (Basic + X-Osc-Date).
func basicCall(t *testing.T, e *apitest.Env, login, password string) *apitest.Response {
	t.Helper()
	return e.Do(t, apitest.Request{Call: "ReadAccessKeys", Body: []byte("{}"), Header: http.Header{
		"Authorization": {basic(login, password)}, "X-Osc-Date": {time.Now().UTC().Format(sigv4.DateFormat)}}})
}

func wantStatusCode(t *testing.T, what string, r *apitest.Response, status int, code string) {
	t.Helper()
	if r.Status != status || r.ErrorCode() != code {
		t.Errorf("%s: %s, want %d code %s", what, r, status, code)
	}
}

// TestLoginLockout: four bad passwords lock a login for a minute (code
// 13, HTTP 401), during which the right password is refused too; the
// lockout ends by itself; other logins are unaffected; and the failures,
// lockouts and refusals reach the service's observer (the metrics).
func TestLoginLockout(t *testing.T) {
	e := apitest.Start(t)
	clock := &shiftedClock{}
	e.Service.SetClock(clock.now)
	ev := &authEvents{n: map[service.AuthEvent]int{}}
	e.Service.SetAuthObserver(ev.observe)

	for i := 1; i <= 4; i++ {
		wantStatusCode(t, fmt.Sprintf("bad password %d", i), basicCall(t, e, e.Joe.Email, "wrong-password"), http.StatusUnauthorized, "1")
	}
	wantStatusCode(t, "right password during the lockout", basicCall(t, e, e.Joe.Email, e.Joe.Password), http.StatusUnauthorized, "13")
	wantStatusCode(t, "case variant of the login during the lockout", basicCall(t, e, "JOE"+e.Joe.Email[3:], e.Joe.Password), http.StatusUnauthorized, "13")
	// The v2 SDK sees the same refusal.
	c, ctx := e.V2Basic(e.Joe)
	_, _, err := c.AccessKeyApi.ReadAccessKeys(ctx).Execute()
	wantCode(t, "v2 SDK during the lockout", err, http.StatusUnauthorized, "13")
	// Another account's login is not locked.
	if r := basicCall(t, e, e.Titi.Email, e.Titi.Password); r.Status != http.StatusOK {
		t.Errorf("titi during joe's lockout: %s", r)
	}
	// CheckAuthentication shares the count of the login.
	wantStatusCode(t, "CheckAuthentication during the lockout",
		e.Call(t, e.Joe, "CheckAuthentication", map[string]any{"Login": e.Joe.Email, "Password": e.Joe.Password}), http.StatusUnauthorized, "13")

	clock.advance(59 * time.Second)
	wantStatusCode(t, "right password after 59 s", basicCall(t, e, e.Joe.Email, e.Joe.Password), http.StatusUnauthorized, "13")
	clock.advance(2 * time.Second)
	if r := basicCall(t, e, e.Joe.Email, e.Joe.Password); r.Status != http.StatusOK {
		t.Errorf("right password after the lockout: %s", r)
	}

	// The next lockout after the count starts again is one minute, not two.
	for i := 0; i < 4; i++ {
		basicCall(t, e, e.Joe.Email, "wrong-again")
	}
	wantStatusCode(t, "second lockout", basicCall(t, e, e.Joe.Email, e.Joe.Password), http.StatusUnauthorized, "13")
	clock.advance(61 * time.Second)
	if r := basicCall(t, e, e.Joe.Email, e.Joe.Password); r.Status != http.StatusOK {
		t.Errorf("right password after the second lockout: %s", r)
	}

	for want, n := range map[service.AuthEvent]int{
		{Kind: "login", Outcome: "failure"}:                   8,
		{Kind: "login", Outcome: "lockout", Scope: "login"}:   2,
		{Kind: "login", Outcome: "refused", Scope: "login"}:   5,
		{Kind: "check", Outcome: "refused", Scope: "login"}:   1,
		{Kind: "login", Outcome: "lockout", Scope: "address"}: 0,
	} {
		if got := ev.count(want); got != n {
			t.Errorf("observed %d %+v, want %d", got, want, n)
		}
	}
}

// TestAddressLockout: twenty failures from one address, whatever logins
// they try, lock the address: even a right password from it is refused.
func TestAddressLockout(t *testing.T) {
	e := apitest.Start(t)
	clock := &shiftedClock{}
	e.Service.SetClock(clock.now)
	for i := 0; i < 20; i++ {
		wantStatusCode(t, "password spraying", basicCall(t, e, fmt.Sprintf("user%d@example.com", i), "Password1"), http.StatusUnauthorized, "1")
	}
	r := basicCall(t, e, e.Titi.Email, e.Titi.Password)
	wantStatusCode(t, "right password from the locked address", r, http.StatusUnauthorized, "13")
	clock.advance(61 * time.Second)
	if r := basicCall(t, e, e.Titi.Email, e.Titi.Password); r.Status != http.StatusOK {
		t.Errorf("right password after the address lockout: %s", r)
	}
}

// TestCheckAuthenticationOwnLoginOnly: an account cannot test another
// account's password (code 5, whatever the password), nor lock that login
// out through CheckAuthentication.
func TestCheckAuthenticationOwnLoginOnly(t *testing.T) {
	e := apitest.Start(t)
	for _, pw := range []string{e.Titi.Password, "wrong", "also-wrong", "still-wrong", "nope"} {
		wantStatusCode(t, "joe checks titi's login", e.Call(t, e.Joe, "CheckAuthentication",
			map[string]any{"Login": e.Titi.Email, "Password": pw}), http.StatusUnauthorized, "5")
	}
	if r := e.Call(t, e.Titi, "CheckAuthentication", map[string]any{"Login": e.Titi.Email, "Password": e.Titi.Password}); r.Status != http.StatusOK {
		t.Errorf("titi checks her own login after joe's attempts: %s", r)
	}
	wantStatusCode(t, "own login, wrong password", e.Call(t, e.Joe, "CheckAuthentication",
		map[string]any{"Login": e.Joe.Email, "Password": "wrong"}), http.StatusUnauthorized, "1")
	// The v3 SDK (terraform's) sees the refusal as an auth error, at once.
	c := e.V3(e.Joe)
	_, err := c.CheckAuthentication(ctxTimeout(t), oscv3.CheckAuthenticationRequest{Login: e.Titi.Email, Password: e.Titi.Password})
	wantCode(t, "v3 SDK CheckAuthentication of another login", err, http.StatusUnauthorized, "5")
}
