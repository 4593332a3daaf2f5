package e2e

import (
	"net/http"
	"testing"
	"time"

	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"

	"github.com/omiproject/omi/apitest"
)

// Snapshot sharing (PermissionsToCreateVolume): shared with titi, titi
// sees it, builds a volume from it and copies it; unshared, titi loses it
// but keeps what it made; public, everyone sees it.
func TestSnapshotSharing(t *testing.T) {
	e := apitest.Start(t)
	joe, titi := e.V3(e.Joe), e.V3(e.Titi)
	ctx := t.Context()
	vol := newVolume(t, e, e.Joe, 3)
	snap := newSnapshot(t, e, e.Joe, vol)
	titiSees := func(who apitest.Account) bool {
		r, err := e.V3(who).ReadSnapshots(ctx, oscv3.ReadSnapshotsRequest{Filters: &oscv3.FiltersSnapshot{SnapshotIds: &[]string{snap}}})
		if err != nil {
			t.Fatalf("ReadSnapshots as %s: %v", who.Alias, err)
		}
		return len(deref(r.Snapshots)) == 1
	}
	if titiSees(e.Titi) {
		t.Fatalf("titi sees joe's unshared snapshot")
	}
	up, err := joe.UpdateSnapshot(ctx, oscv3.UpdateSnapshotRequest{SnapshotId: snap, PermissionsToCreateVolume: oscv3.PermissionsOnResourceCreation{
		Additions: &oscv3.PermissionsOnResource{AccountIds: &[]string{e.Titi.AccountID}}}})
	if err != nil {
		t.Fatalf("UpdateSnapshot share: %v", err)
	}
	if p := up.Snapshot.PermissionsToCreateVolume; p == nil || !has(deref(p.AccountIds), e.Titi.AccountID) {
		t.Errorf("after sharing, PermissionsToCreateVolume = %+v", p)
	}
	if !titiSees(e.Titi) || titiSees(e.Marketplace) {
		t.Fatalf("after sharing with titi: titi sees %v, marketplace sees %v; want true, false", titiSees(e.Titi), titiSees(e.Marketplace))
	}
	v, err := titi.CreateVolume(ctx, oscv3.CreateVolumeRequest{SubregionName: "eu-west-2a", SnapshotId: &snap})
	if err != nil {
		t.Fatalf("titi CreateVolume from the shared snapshot: %v", err)
	}
	if v.Volume.Size != 3 || deref(v.Volume.SnapshotId) != snap {
		t.Errorf("titi's volume: %d GiB from %q, want 3 GiB from %s", v.Volume.Size, deref(v.Volume.SnapshotId), snap)
	}
	cp, err := titi.CreateSnapshot(ctx, oscv3.CreateSnapshotRequest{SourceSnapshotId: &snap, SourceRegionName: ptr(apitest.Region)})
	if err != nil {
		t.Fatalf("titi copies the shared snapshot: %v", err)
	}
	copyID := cp.Snapshot.SnapshotId
	if copyID == snap || cp.Snapshot.AccountId != e.Titi.AccountID {
		t.Errorf("copy %s owned by %s, want a new snapshot of titi's", copyID, cp.Snapshot.AccountId)
	}
	// A copy names no volume (the real cloud's VolumeId ""), and titi
	// learns nothing of joe's volumes from it.
	if id := cp.Snapshot.VolumeId; id != "" {
		t.Errorf("titi's copy names the volume %s", id)
	}
	waitSnapshot(t, e, e.Titi, copyID)
	// titi may not reshare or delete joe's snapshot.
	_, err = titi.UpdateSnapshot(ctx, oscv3.UpdateSnapshotRequest{SnapshotId: snap, PermissionsToCreateVolume: oscv3.PermissionsOnResourceCreation{
		Additions: &oscv3.PermissionsOnResource{GlobalPermission: ptr(true)}}})
	if st := apitest.Status(err); err == nil || st < 400 || st >= 500 {
		t.Errorf("titi makes joe's shared snapshot public: %v, want 4xx", err)
	}
	_, err = titi.DeleteSnapshot(ctx, oscv3.DeleteSnapshotRequest{SnapshotId: snap})
	if st := apitest.Status(err); err == nil || st < 400 || st >= 500 {
		t.Errorf("titi deletes joe's shared snapshot: %v, want 4xx", err)
	}
	// titi does not see who else joe shares with.
	r, _ := titi.ReadSnapshots(ctx, oscv3.ReadSnapshotsRequest{Filters: &oscv3.FiltersSnapshot{SnapshotIds: &[]string{snap}}})
	for _, s := range deref(r.Snapshots) {
		if p := s.PermissionsToCreateVolume; p != nil && len(deref(p.AccountIds)) > 0 {
			t.Errorf("titi sees joe's sharing list %v", deref(p.AccountIds))
		}
	}

	if _, err := joe.UpdateSnapshot(ctx, oscv3.UpdateSnapshotRequest{SnapshotId: snap, PermissionsToCreateVolume: oscv3.PermissionsOnResourceCreation{
		Removals: &oscv3.PermissionsOnResource{AccountIds: &[]string{e.Titi.AccountID}}}}); err != nil {
		t.Fatalf("UpdateSnapshot unshare: %v", err)
	}
	if titiSees(e.Titi) {
		t.Errorf("titi still sees the snapshot after Removals")
	}
	if _, err := titi.CreateVolume(ctx, oscv3.CreateVolumeRequest{SubregionName: "eu-west-2a", SnapshotId: &snap}); !oscv3.IsNotFound(err) {
		t.Errorf("titi CreateVolume from an unshared snapshot: %v, want not found", err)
	}
	waitSnapshot(t, e, e.Titi, copyID) // titi keeps its copy

	if _, err := joe.UpdateSnapshot(ctx, oscv3.UpdateSnapshotRequest{SnapshotId: snap, PermissionsToCreateVolume: oscv3.PermissionsOnResourceCreation{
		Additions: &oscv3.PermissionsOnResource{GlobalPermission: ptr(true)}}}); err != nil {
		t.Fatalf("UpdateSnapshot public: %v", err)
	}
	if !titiSees(e.Titi) || !titiSees(e.Marketplace) {
		t.Errorf("public snapshot not visible to everyone")
	}
	pub, err := e.V3(e.Marketplace).ReadSnapshots(ctx, oscv3.ReadSnapshotsRequest{Filters: &oscv3.FiltersSnapshot{PermissionsToCreateVolumeGlobalPermission: ptr(true)}})
	if err != nil || len(deref(pub.Snapshots)) != 1 {
		t.Errorf("public-only filter as marketplace: %+v, %v; want joe's snapshot", pub, err)
	}
	// A bad account id in a permission change is refused.
	r2 := e.Call(t, e.Joe, "UpdateSnapshot", map[string]any{"SnapshotId": snap, "PermissionsToCreateVolume": map[string]any{
		"Additions": map[string]any{"AccountIds": []string{"not-an-account"}}}})
	if r2.Status != http.StatusBadRequest {
		t.Errorf("UpdateSnapshot with account id not-an-account: %s, want 400", r2)
	}
}

// Volumes grow but never shrink; io1 needs IOPS within the ratio; a
// deleted volume is gone.
func TestVolumeRules(t *testing.T) {
	e := apitest.Start(t)
	c := e.V3(e.Joe)
	ctx := t.Context()
	vol := newVolume(t, e, e.Joe, 4)
	up, err := c.UpdateVolume(ctx, oscv3.UpdateVolumeRequest{VolumeId: vol, Size: ptr(8)})
	if err != nil {
		t.Fatalf("UpdateVolume grow: %v", err)
	}
	waitVolume(t, e, e.Joe, vol, "available")
	r, err := c.ReadVolumes(ctx, oscv3.ReadVolumesRequest{Filters: &oscv3.FiltersVolume{VolumeIds: &[]string{vol}}})
	if err != nil || len(deref(r.Volumes)) != 1 || deref(r.Volumes)[0].Size != 8 {
		t.Errorf("after growing to 8 GiB: %+v (update answered %d), %v", r, up.Volume.Size, err)
	}
	if _, err := c.UpdateVolume(ctx, oscv3.UpdateVolumeRequest{VolumeId: vol, Size: ptr(2)}); apitest.Status(err) != http.StatusBadRequest {
		t.Errorf("UpdateVolume shrink: %v, want 400", err)
	}
	for _, bad := range []map[string]any{
		{"SubregionName": "eu-west-2a", "Size": 10, "VolumeType": "io1"},                 // io1 without Iops
		{"SubregionName": "eu-west-2a", "Size": 10, "VolumeType": "io1", "Iops": 100000}, // too many IOPS
		{"SubregionName": "eu-west-2a", "Size": 10, "VolumeType": "standard", "Iops": 100},
		{"SubregionName": "eu-west-2a", "Size": 0},
		{"SubregionName": "eu-west-2a", "Size": 20000},
		{"SubregionName": "eu-west-2a", "Size": 10, "VolumeType": "ssd"},
		{"SubregionName": "us-east-2a", "Size": 10},
		{"Size": 10},
	} {
		r := e.Call(t, e.Joe, "CreateVolume", bad)
		if r.Status != http.StatusBadRequest {
			t.Errorf("CreateVolume %v: %s, want 400", bad, r)
		}
	}
	ok := e.Call(t, e.Joe, "CreateVolume", map[string]any{"SubregionName": "eu-west-2b", "Size": 10, "VolumeType": "io1", "Iops": 3000})
	if ok.Status != http.StatusOK {
		t.Errorf("CreateVolume io1 10 GiB 3000 IOPS: %s, want 200", ok)
	}
	if _, err := c.DeleteVolume(ctx, oscv3.DeleteVolumeRequest{VolumeId: vol}); err != nil {
		t.Fatalf("DeleteVolume: %v", err)
	}
	if _, err := c.DeleteVolume(ctx, oscv3.DeleteVolumeRequest{VolumeId: vol}); !oscv3.IsNotFound(err) {
		t.Errorf("second DeleteVolume: %v, want not found", err)
	}
}

// Access keys: an expiration date ends a key by itself; an account holds
// a bounded number of keys.
func TestAccessKeyLimits(t *testing.T) {
	e := apitest.Start(t)
	c := e.V3(e.Joe)
	ctx := t.Context()
	exp := time.Now().Add(1500 * time.Millisecond).UTC().Format("2006-01-02T15:04:05.000Z")
	r := e.Call(t, e.Joe, "CreateAccessKey", map[string]any{"ExpirationDate": exp})
	var out struct {
		AccessKey struct{ AccessKeyId, SecretKey, ExpirationDate string }
	}
	if r.Status != http.StatusOK || r.Decode(&out) != nil {
		t.Fatalf("CreateAccessKey with ExpirationDate: %s", r)
	}
	if out.AccessKey.ExpirationDate == "" {
		t.Errorf("ExpirationDate not echoed: %s", r.Body)
	}
	if _, err := readAccountID(t, e, out.AccessKey.AccessKeyId, out.AccessKey.SecretKey); err != nil {
		t.Fatalf("fresh expiring key: %v", err)
	}
	time.Sleep(2 * time.Second)
	_, err := readAccountID(t, e, out.AccessKey.AccessKeyId, out.AccessKey.SecretKey)
	wantCode(t, "expired key", err, http.StatusUnauthorized, "1")
	if r := e.Call(t, e.Joe, "CreateAccessKey", map[string]any{"ExpirationDate": "2001-01-01"}); r.Status != http.StatusBadRequest {
		t.Errorf("ExpirationDate in the past: %s, want 400", r)
	}
	if r := e.Call(t, e.Joe, "CreateAccessKey", map[string]any{"ExpirationDate": "tomorrow"}); r.Status != http.StatusBadRequest {
		t.Errorf("ExpirationDate tomorrow: %s, want 400", r)
	}

	// Fill up to the limit, then one more is refused with a 4xx.
	var refused *apitest.Response
	for i := 0; i < 20; i++ {
		r := e.Call(t, e.Joe, "CreateAccessKey", map[string]any{})
		if r.Status != http.StatusOK {
			refused = r
			break
		}
	}
	if refused == nil {
		t.Fatalf("20 more access keys accepted: no limit")
	}
	if refused.Status < 400 || refused.Status >= 500 {
		t.Errorf("key over the limit: %s, want 4xx", refused)
	}
	keys, err := c.ReadAccessKeys(ctx, oscv3.ReadAccessKeysRequest{})
	if err != nil || len(deref(keys.AccessKeys)) > 10 {
		t.Errorf("joe holds %d keys (%v), want at most 10", len(deref(keys.AccessKeys)), err)
	}
	// CheckAuthentication checks the caller's own login without side
	// effects (other accounts' logins: TestCheckAuthenticationOwnLoginOnly).
	if r := e.Call(t, e.Joe, "CheckAuthentication", map[string]any{"Login": e.Joe.Email, "Password": e.Joe.Password}); r.Status != http.StatusOK {
		t.Errorf("CheckAuthentication good password: %s", r)
	}
	if r := e.Call(t, e.Joe, "CheckAuthentication", map[string]any{"Login": e.Joe.Email, "Password": "nope"}); r.Status != http.StatusUnauthorized {
		t.Errorf("CheckAuthentication bad password: %s, want 401", r)
	}
}
