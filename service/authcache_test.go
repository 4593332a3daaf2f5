package service

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/sqlite"
)

// TestAccessKeyCacheFreshness checks what the access-key cache promises:
// a key deactivated through this Service stops working at once, and one
// deactivated by another node sharing the store (here a second Service
// over the same store) stops working once keyCacheTTL has passed.
func TestAccessKeyCacheFreshness(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "omi.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	here := New(store, Config{Region: "eu-west-2"}, nil)
	other := New(store, Config{Region: "eu-west-2"}, nil)
	now := time.Now()
	here.keys.now = func() time.Time { return now }
	joe := AccountSpec{AccountID: "123456789012", Alias: "joe", Email: "joe@example.com", Password: "pw-joe-123"}
	if err := here.Provision(ctx, []AccountSpec{joe}); err != nil {
		t.Fatal(err)
	}
	caller := &omi.Caller{Account: &omi.Account{AccountId: joe.AccountID, Alias: "joe"}}
	newKey := func() string {
		out, err := here.CreateAccessKey(ctx, caller, &CreateAccessKeyRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return out.AccessKey.AccessKeyId
	}
	lookup := func(id string) error { _, _, err := here.LookupAccessKey(ctx, id); return err }
	deactivate := func(s *Service, id string) {
		if _, err := s.UpdateAccessKey(ctx, caller, &UpdateAccessKeyRequest{AccessKeyId: id, State: omi.AccessKeyInactive}); err != nil {
			t.Fatal(err)
		}
	}

	// Through this node: refused at once, although the key was cached.
	a := newKey()
	if err := lookup(a); err != nil {
		t.Fatal(err)
	}
	deactivate(here, a)
	if err := lookup(a); err == nil {
		t.Fatal("a key deactivated through this node still authenticates")
	}

	// Through another node: refused once the TTL has passed.
	b := newKey()
	if err := lookup(b); err != nil {
		t.Fatal(err)
	}
	deactivate(other, b)
	now = now.Add(keyCacheTTL + time.Millisecond)
	if err := lookup(b); err == nil {
		t.Fatalf("a key deactivated by another node still authenticates after %v", keyCacheTTL)
	}

	// A key deleted here, and an account's change, empty the cache too.
	c := newKey()
	if err := lookup(c); err != nil {
		t.Fatal(err)
	}
	if _, err := here.DeleteAccessKey(ctx, caller, &DeleteAccessKeyRequest{AccessKeyId: c}); err != nil {
		t.Fatal(err)
	}
	if err := lookup(c); err == nil {
		t.Fatal("a deleted key still authenticates")
	}
	if n := len(here.keys.m); n != 0 {
		t.Fatalf("%d keys cached after a key was deleted", n)
	}
}
