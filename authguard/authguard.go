// Package authguard slows password guessing down: it counts failed logins
// per login name and per client address and locks either out for a while
// once it has failed too often.
//
// The policy follows the one OUTSCALE documents for its API: after N
// consecutive failures the login is locked for one delay, and each further
// N failures lock it again for one more delay, up to a maximum (4 failures,
// 1 minute, plus 1 minute each 4 failures, up to 10 minutes). A lockout
// ends by itself; during it every attempt is refused, a correct password
// included, so that guessing cannot continue at full speed while the
// legitimate user is locked out anyway. Counts are kept in memory: with
// several omi processes each keeps its own.
package authguard

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"time"
)

// Policy sets the thresholds and the delay. A zero threshold disables that
// limit.
type Policy struct {
	// LoginFailures is how many consecutive failures of one login lock it.
	LoginFailures int
	// AddressFailures is how many failures from one client address lock
	// it, whatever logins they tried. It is higher than LoginFailures
	// because many users can share an address (NAT, a proxy).
	AddressFailures int
	// Lockout is the length of the first lockout, and what each further
	// lockout adds.
	Lockout time.Duration
	// MaxLockout caps a lockout's length.
	MaxLockout time.Duration
}

// DefaultPolicy is OUTSCALE's documented policy for a login, and five times
// its threshold for an address.
var DefaultPolicy = Policy{LoginFailures: 4, AddressFailures: 20, Lockout: time.Minute, MaxLockout: 10 * time.Minute}

// Scope says what a lockout applies to.
type Scope string

// The two scopes a lockout applies to.
const (
	ScopeLogin   Scope = "login"
	ScopeAddress Scope = "address"
)

// maxEntries bounds the memory the guard uses whatever an attacker sends:
// beyond it, entries that are neither locked nor recent are dropped first.
const maxEntries = 100000

// Guard keeps the failure counts. Its methods are safe for concurrent use.
type Guard struct {
	p   Policy
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*entry
}

type entry struct {
	failures int       // failures counted since the last reset
	last     time.Time // time of the last failure
	until    time.Time // end of the current lockout
}

// New returns a guard applying p.
func New(p Policy) *Guard {
	if p.Lockout <= 0 {
		p.Lockout = DefaultPolicy.Lockout
	}
	if p.MaxLockout < p.Lockout {
		p.MaxLockout = p.Lockout
	}
	return &Guard{p: p, now: time.Now, entries: map[string]*entry{}}
}

// SetClock replaces the clock (tests).
func (g *Guard) SetClock(now func() time.Time) { g.now = now }

// Policy returns the policy the guard applies.
func (g *Guard) Policy() Policy { return g.p }

// Lock describes a lockout in force.
type Lock struct {
	Scope Scope
	Until time.Time
}

// Locked reports a lockout in force for login or addr (the longer one when
// both are), or nil. It is called before the password is checked.
func (g *Guard) Locked(login, addr string) *Lock {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	var out *Lock
	for _, k := range g.keys(login, addr) {
		if e := g.entries[k.key]; e != nil && now.Before(e.until) && (out == nil || e.until.After(out.Until)) {
			out = &Lock{Scope: k.scope, Until: e.until}
		}
	}
	return out
}

// Fail records a failed attempt of login from addr and returns the
// lockouts it started (none, one or both scopes).
func (g *Guard) Fail(login, addr string) []Lock {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	var started []Lock
	for _, k := range g.keys(login, addr) {
		e := g.entries[k.key]
		if e == nil {
			g.makeRoom(now)
			e = &entry{}
			g.entries[k.key] = e
		}
		// Failures long ago do not add up with new ones: a user who
		// mistypes once a day is never locked.
		if !e.last.IsZero() && now.Sub(e.last) > g.forget() && !now.Before(e.until) {
			e.failures = 0
		}
		e.failures++
		e.last = now
		if e.failures%k.limit == 0 {
			d := time.Duration(e.failures/k.limit) * g.p.Lockout
			if d > g.p.MaxLockout {
				d = g.p.MaxLockout
			}
			e.until = now.Add(d)
			started = append(started, Lock{Scope: k.scope, Until: e.until})
		}
	}
	return started
}

// Succeed records a successful login: its count starts again. The address
// count is kept, so that an attacker cannot clear it by logging in to an
// account of their own between guesses.
func (g *Guard) Succeed(login string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.p.LoginFailures > 0 {
		delete(g.entries, loginKey(login))
	}
}

// forget is how long after its last failure a count is dropped.
func (g *Guard) forget() time.Duration { return 2 * g.p.MaxLockout }

type scoped struct {
	key   string
	scope Scope
	limit int
}

func (g *Guard) keys(login, addr string) []scoped {
	var out []scoped
	if g.p.LoginFailures > 0 && login != "" {
		out = append(out, scoped{loginKey(login), ScopeLogin, g.p.LoginFailures})
	}
	if g.p.AddressFailures > 0 && addr != "" {
		out = append(out, scoped{"a:" + bounded(addr), ScopeAddress, g.p.AddressFailures})
	}
	return out
}

// loginKey normalises a login the way accounts are looked up (emails are
// case-insensitive in practice) so that case variants share one count.
func loginKey(login string) string {
	return "l:" + bounded(strings.ToLower(strings.TrimSpace(login)))
}

// bounded keeps keys short whatever the client sent.
func bounded(s string) string {
	if len(s) <= 128 {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// makeRoom drops forgotten entries when the map is full, then, if needed,
// entries that are not locked. Called with g.mu held.
func (g *Guard) makeRoom(now time.Time) {
	if len(g.entries) < maxEntries {
		return
	}
	for k, e := range g.entries {
		if now.Sub(e.last) > g.forget() && !now.Before(e.until) {
			delete(g.entries, k)
		}
	}
	for k, e := range g.entries {
		if len(g.entries) < maxEntries*9/10 {
			break
		}
		if !now.Before(e.until) {
			delete(g.entries, k)
		}
	}
}

// Len returns how many logins and addresses have a count (tests, metrics).
func (g *Guard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.entries)
}
