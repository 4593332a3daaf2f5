package service

import (
	"context"
	"math"
	"time"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/authguard"
)

// Kinds of password checks, as AuthEvent.Kind.
const (
	authKindLogin = "login" // Authorization: Basic on the access-key calls
	authKindCheck = "check" // CheckAuthentication
)

// AuthEvent is a failed or refused password check, for metrics.
type AuthEvent struct {
	// Kind is "login" (Basic authentication) or "check" (CheckAuthentication).
	Kind string
	// Outcome is "failure" (a wrong login or password), "lockout" (that
	// failure started a lockout of Scope) or "refused" (refused during a
	// lockout of Scope, without looking at the password).
	Outcome string
	// Scope is "login" or "address" for lockouts and refusals.
	Scope string
}

// SetAuthObserver registers a function told about every failed or refused
// password check and every lockout (metrics).
func (s *Service) SetAuthObserver(fn func(AuthEvent)) { s.authObserver = fn }

func (s *Service) observeAuth(ev AuthEvent) {
	if s.authObserver != nil {
		s.authObserver(ev)
	}
}

// CheckLogin authenticates an email and password (Basic authentication).
// Failures count per login and per client address (omi.ClientAddr); once
// either has failed too often it is locked out for a delay, during which
// every attempt gets code 13, the right password included.
func (s *Service) CheckLogin(ctx context.Context, email, password string) (*omi.Account, error) {
	return s.checkLogin(ctx, authKindLogin, email, password)
}

func (s *Service) checkLogin(ctx context.Context, kind, email, password string) (*omi.Account, error) {
	addr := omi.ClientAddr(ctx)
	if l := s.guard.Locked(email, addr); l != nil {
		s.observeAuth(AuthEvent{Kind: kind, Outcome: "refused", Scope: string(l.Scope)})
		s.log.Warn("password check refused during a lockout", "kind", kind, "login", email, "client", addr,
			"scope", l.Scope, "until", l.Until.UTC().Format(time.RFC3339))
		return nil, s.lockedError(l)
	}
	acct, err := s.verifyLogin(ctx, email, password)
	if err == nil {
		s.guard.Succeed(email)
		return acct, nil
	}
	if e := omi.AsError(err); e.Type == omi.TypeInternal {
		return nil, err // the store failed: not the client's fault
	}
	s.observeAuth(AuthEvent{Kind: kind, Outcome: "failure"})
	s.log.Info("password check failed", "kind", kind, "login", email, "client", addr)
	for _, l := range s.guard.Fail(email, addr) {
		s.observeAuth(AuthEvent{Kind: kind, Outcome: "lockout", Scope: string(l.Scope)})
		s.log.Warn("too many failed password checks: locked out", "kind", kind, "login", email, "client", addr,
			"scope", l.Scope, "until", l.Until.UTC().Format(time.RFC3339))
	}
	return nil, err
}

// refuseForeignLogin answers a CheckAuthentication of another account's
// login: code 5 (not authorized), without looking the login up, so the
// answer says nothing about it. It counts as a failure of the client
// address (the caller is probing), not of the login it named, which must
// not be lockable by other accounts through this call.
func (s *Service) refuseForeignLogin(ctx context.Context, c *omi.Caller) error {
	addr := omi.ClientAddr(ctx)
	s.observeAuth(AuthEvent{Kind: authKindCheck, Outcome: "failure"})
	s.log.Info("CheckAuthentication of another account's login refused", "account", c.Account.AccountId, "client", addr)
	for _, l := range s.guard.Fail("", addr) {
		s.observeAuth(AuthEvent{Kind: authKindCheck, Outcome: "lockout", Scope: string(l.Scope)})
		s.log.Warn("too many failed password checks: locked out", "kind", authKindCheck, "client", addr,
			"scope", l.Scope, "until", l.Until.UTC().Format(time.RFC3339))
	}
	return omi.Errorf(omi.CodeNotAuthorized, omi.TypeAccessDenied, "CheckAuthentication only checks the login of the calling account")
}

// lockedError is OUTSCALE's TemporaryBruteForceAccessLocked (code 13,
// HTTP 401). The throttling codes 24/25 (HTTP 429) are not used: the v3
// SDK, and so terraform and packer, retries a 429 for up to 40 minutes,
// which would hide a wrong password behind a hang, while a 401 stops the
// client at once with a message saying when to retry.
func (s *Service) lockedError(l *authguard.Lock) error {
	wait := int(math.Ceil(l.Until.Sub(s.now()).Seconds()))
	if wait < 1 {
		wait = 1
	}
	what := "this login"
	if l.Scope == authguard.ScopeAddress {
		what = "this client address"
	}
	return omi.Errorf(omi.CodeLoginLocked, omi.TypeAccessDenied,
		"too many failed logins for %s: locked until %s (retry in %d s)", what, l.Until.UTC().Format(time.RFC3339), wait)
}
