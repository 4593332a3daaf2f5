package service_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/recordcache"
	"github.com/omiproject/omi/service"
	"github.com/omiproject/omi/sqlite"
)

// Reads by id through the record cache and the decoded-document cache:
// each caller sees what it may see (bob, a non-owner, never the share
// list; joe, the owner, always), a read never changes what a later read
// gets, and every change is seen by the next read.
func TestReadByIDThroughCaches(t *testing.T) {
	ctx := context.Background()
	raw, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "omi.db"))
	if err != nil {
		t.Fatal(err)
	}
	store := recordcache.Wrap(raw, 0)
	t.Cleanup(func() { store.Close() })
	svc := service.New(store, service.Config{Region: "eu-west-2"}, nil)
	joeSpec := service.AccountSpec{AccountID: "123456789012", Alias: "joe", Email: "joe@example.com", Password: "pw-joe-123"}
	bobSpec := service.AccountSpec{AccountID: "210987654321", Alias: "bob", Email: "bob@example.com", Password: "pw-bob-123"}
	if err := svc.Provision(ctx, []service.AccountSpec{joeSpec, bobSpec}); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, svc: svc,
		joe: &omi.Caller{Account: &omi.Account{AccountId: joeSpec.AccountID, Alias: "joe"}},
		bob: &omi.Caller{Account: &omi.Account{AccountId: bobSpec.AccountID, Alias: "bob"}}}
	img := e.image(e.joe, "cached")
	id := img.ImageId
	read := func(c *omi.Caller) *omi.Image {
		t.Helper()
		out, err := svc.ReadImages(ctx, c, &service.ReadImagesRequest{Filters: &service.FiltersImage{ImageIds: []string{id, id}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Images) > 1 {
			t.Fatalf("%d images for one id", len(out.Images))
		}
		if len(out.Images) == 0 {
			return nil
		}
		return out.Images[0]
	}
	for range 3 {
		if got := read(e.bob); got != nil {
			t.Fatalf("bob sees joe's unshared OMI: %+v", got)
		}
		if got := read(e.joe); got == nil || got.ImageName != "cached" {
			t.Fatalf("joe reads %+v", got)
		}
	}
	share := func(add bool, accounts []string, global bool) {
		t.Helper()
		p := &omi.Permissions{AccountIds: accounts, GlobalPermission: global}
		ch := &omi.PermissionsChange{Additions: p}
		if !add {
			ch = &omi.PermissionsChange{Removals: p}
		}
		if _, err := svc.UpdateImage(ctx, e.joe, &service.UpdateImageRequest{ImageId: id, PermissionsToLaunch: ch}); err != nil {
			t.Fatal(err)
		}
	}
	share(true, []string{bobSpec.AccountID, "111111111111"}, false)
	for range 3 {
		got := read(e.bob)
		if got == nil {
			t.Fatal("bob does not see the OMI shared with him")
		}
		if len(got.PermissionsToLaunch.AccountIds) != 0 {
			t.Fatalf("bob sees whom joe shares with: %v", got.PermissionsToLaunch.AccountIds)
		}
		// What bob's answer hid must not be hidden from joe's next one.
		got = read(e.joe)
		if !slices.Equal(got.PermissionsToLaunch.AccountIds, []string{bobSpec.AccountID, "111111111111"}) {
			t.Fatalf("joe reads the share list %v", got.PermissionsToLaunch.AccountIds)
		}
		got.Tags = append(got.Tags, omi.Tag{Key: "scribbled", Value: "by a caller"})
		got.PermissionsToLaunch.AccountIds[0] = "scribbled"
	}
	share(false, []string{bobSpec.AccountID}, false)
	if got := read(e.bob); got != nil {
		t.Fatalf("bob still sees the OMI once unshared: %+v", got)
	}
	share(true, nil, true)
	if got := read(e.bob); got == nil {
		t.Fatal("bob does not see the public OMI")
	}
	if _, err := svc.DeleteImage(ctx, e.joe, &service.DeleteImageRequest{ImageId: id}); err != nil {
		t.Fatal(err)
	}
	if got := read(e.joe); got != nil {
		t.Fatalf("joe reads the deleted OMI: %+v", got)
	}
	if hits, _ := store.Stats(); hits == 0 {
		t.Fatal("no read was served by the record cache")
	}
}
