package authguard

import (
	"fmt"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newGuard(p Policy) (*Guard, *clock) {
	c := &clock{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	g := New(p)
	g.SetClock(c.now)
	return g, c
}

func TestLoginLockoutEndsAfterDelayAndEscalates(t *testing.T) {
	g, c := newGuard(Policy{LoginFailures: 4, AddressFailures: 0, Lockout: time.Minute, MaxLockout: 3 * time.Minute})
	for i := 1; i <= 3; i++ {
		if started := g.Fail("Joe@Example.com", "10.0.0.1"); len(started) != 0 {
			t.Fatalf("failure %d locked: %v", i, started)
		}
		if l := g.Locked("joe@example.com", "10.0.0.1"); l != nil {
			t.Fatalf("locked after %d failures", i)
		}
	}
	started := g.Fail("joe@example.com", "10.0.0.2")
	if len(started) != 1 || started[0].Scope != ScopeLogin || !started[0].Until.Equal(c.t.Add(time.Minute)) {
		t.Fatalf("4th failure started %v, want a 1 min login lockout", started)
	}
	// Case variants and other addresses are the same login.
	if l := g.Locked("JOE@example.com", "192.0.2.9"); l == nil || l.Scope != ScopeLogin {
		t.Fatalf("Locked = %v, want the login locked", l)
	}
	if g.Locked("titi@example.com", "10.0.0.1") != nil {
		t.Fatal("another login is locked")
	}
	c.add(59 * time.Second)
	if g.Locked("joe@example.com", "") == nil {
		t.Fatal("lockout ended early")
	}
	c.add(time.Second)
	if l := g.Locked("joe@example.com", ""); l != nil {
		t.Fatalf("lockout did not end after the delay: %v", l)
	}
	// Four more failures: two minutes; then three (the cap).
	for want := 2; want <= 4; want++ {
		var s []Lock
		for i := 0; i < 4; i++ {
			s = g.Fail("joe@example.com", "")
		}
		d := time.Duration(min(want, 3)) * time.Minute
		if len(s) != 1 || !s[0].Until.Equal(c.t.Add(d)) {
			t.Fatalf("lockout %d: %v, want %v", want, s, d)
		}
		c.add(d)
	}
	// A success starts the count again.
	g.Succeed("joe@example.com")
	for i := 0; i < 3; i++ {
		g.Fail("joe@example.com", "")
	}
	if g.Locked("joe@example.com", "") != nil {
		t.Fatal("locked after 3 failures following a success")
	}
}

func TestAddressLockoutIsNotClearedBySuccess(t *testing.T) {
	g, c := newGuard(Policy{LoginFailures: 4, AddressFailures: 5, Lockout: time.Minute, MaxLockout: 10 * time.Minute})
	for i := 0; i < 4; i++ {
		g.Fail(fmt.Sprintf("user%d@example.com", i), "10.0.0.1")
		g.Succeed("mine@example.com")
	}
	s := g.Fail("user9@example.com", "10.0.0.1")
	if len(s) != 1 || s[0].Scope != ScopeAddress {
		t.Fatalf("5th failure from the address started %v, want an address lockout", s)
	}
	if l := g.Locked("mine@example.com", "10.0.0.1"); l == nil || l.Scope != ScopeAddress {
		t.Fatalf("a good login from the locked address: %v, want locked", l)
	}
	if g.Locked("mine@example.com", "10.0.0.2") != nil {
		t.Fatal("another address is locked")
	}
	c.add(time.Minute)
	if g.Locked("mine@example.com", "10.0.0.1") != nil {
		t.Fatal("address lockout did not end")
	}
}

func TestOldFailuresAreForgotten(t *testing.T) {
	g, c := newGuard(DefaultPolicy)
	for i := 0; i < 3; i++ {
		g.Fail("joe@example.com", "")
		c.add(time.Hour)
	}
	if s := g.Fail("joe@example.com", ""); len(s) != 0 {
		t.Fatalf("four failures an hour apart locked: %v", s)
	}
}

func TestDisabledLimits(t *testing.T) {
	g, _ := newGuard(Policy{})
	for i := 0; i < 100; i++ {
		if s := g.Fail("joe@example.com", "10.0.0.1"); len(s) != 0 {
			t.Fatal(s)
		}
	}
	if g.Locked("joe@example.com", "10.0.0.1") != nil || g.Len() != 0 {
		t.Fatal("a disabled guard locked or kept counts")
	}
}

func TestMemoryIsBounded(t *testing.T) {
	g, _ := newGuard(Policy{LoginFailures: 4, Lockout: time.Minute, MaxLockout: time.Minute})
	for i := 0; i < maxEntries+1000; i++ {
		g.Fail(fmt.Sprintf("u%d", i), "")
	}
	if n := g.Len(); n > maxEntries {
		t.Fatalf("%d entries, want at most %d", n, maxEntries)
	}
	long := string(make([]byte, 1<<20))
	g.Fail(long, long)
	if k := loginKey(long); len(k) > 200 {
		t.Fatalf("key of a 1 MiB login is %d bytes", len(k))
	}
}
