package service_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/authguard"
	"github.com/omiproject/omi/service"
	"github.com/omiproject/omi/sqlite"
)

// TestLoginLockoutPolicyAndLogs: a configured policy applies per login and
// per client address (from the context); failures are logged at info, a
// lockout and every refusal during it at warn, with the login and the
// client address, and no password reaches the log.
func TestLoginLockoutPolicyAndLogs(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "omi.db"))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	policy := authguard.Policy{LoginFailures: 2, AddressFailures: 3, Lockout: time.Minute, MaxLockout: time.Minute}
	svc := service.New(store, service.Config{Region: "eu-west-2", LoginPolicy: &policy}, log)
	if err := svc.Provision(ctx, []service.AccountSpec{{AccountID: "123456789012", Alias: "joe", Email: "joe@example.com", Password: "pw-joe-123"}}); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	svc.SetClock(func() time.Time { return now })
	from := omi.WithClientAddr(ctx, "192.0.2.7")

	for i := 0; i < 2; i++ {
		if _, err := svc.CheckLogin(from, "joe@example.com", "wrong"); code(err) != "1" {
			t.Fatalf("wrong password: %v", err)
		}
	}
	_, err = svc.CheckLogin(from, "joe@example.com", "pw-joe-123")
	if code(err) != omi.CodeLoginLocked || !strings.Contains(err.Error(), "retry in 60 s") {
		t.Fatalf("right password during the lockout: %v, want code 13 saying when to retry", err)
	}
	// The address has one failure left: a third one locks it for all logins.
	if _, err := svc.CheckLogin(omi.WithClientAddr(ctx, "192.0.2.7"), "nobody@example.com", "x"); code(err) != "1" {
		t.Fatalf("unknown login: %v", err)
	}
	if _, err := svc.CheckLogin(from, "other@example.com", "x"); code(err) != omi.CodeLoginLocked || !strings.Contains(err.Error(), "client address") {
		t.Fatalf("another login from the locked address: %v, want code 13 for the address", err)
	}
	// From another address, after the delay, the right password works.
	now = now.Add(time.Minute)
	if _, err := svc.CheckLogin(omi.WithClientAddr(ctx, "198.51.100.1"), "joe@example.com", "pw-joe-123"); err != nil {
		t.Fatalf("right password after the lockout: %v", err)
	}

	out := logs.String()
	for _, want := range []string{
		`level=INFO msg="password check failed" kind=login login=joe@example.com client=192.0.2.7`,
		`level=WARN msg="too many failed password checks: locked out" kind=login login=joe@example.com client=192.0.2.7 scope=login until=2026-03-04T05:07:07Z`,
		`level=WARN msg="password check refused during a lockout" kind=login login=joe@example.com client=192.0.2.7 scope=login`,
		`level=WARN msg="too many failed password checks: locked out" kind=login login=nobody@example.com client=192.0.2.7 scope=address`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s\nlog:\n%s", want, out)
		}
	}
	if strings.Contains(out, "pw-joe-123") || strings.Contains(out, "wrong") {
		t.Errorf("a password reached the log:\n%s", out)
	}
}
