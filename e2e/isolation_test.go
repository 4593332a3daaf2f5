package e2e

import (
	"strings"
	"testing"

	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"

	"github.com/omiproject/omi/apitest"
)

// titi cannot read, change, tag, use or delete anything of joe's that joe
// has not shared, and the refusal looks exactly like a missing id, so titi
// cannot even learn that the id exists.
func TestIsolation(t *testing.T) {
	e := apitest.Start(t)
	joe := e.V3(e.Joe)
	vol := newVolume(t, e, e.Joe, 2)
	snap := newSnapshot(t, e, e.Joe, vol)
	img := registerImage(t, e, e.Joe, "joe-private", snap).ImageId
	waitImage(t, e, e.Joe, img, "available")
	key, err := joe.CreateAccessKey(t.Context(), oscv3.CreateAccessKeyRequest{Tag: ptr("joe-second")})
	if err != nil {
		t.Fatalf("CreateAccessKey: %v", err)
	}
	ak := deref(key.AccessKey.AccessKeyId)
	if _, err := joe.CreateTags(t.Context(), oscv3.CreateTagsRequest{ResourceIds: []string{vol, snap, img},
		Tags: []oscv3.ResourceTag{{Key: "owner", Value: "joe"}}}); err != nil {
		t.Fatalf("CreateTags: %v", err)
	}
	// Ids of the right shape that exist nowhere: titi's answers about joe's
	// resources must match the answers about these.
	missing := map[string]string{"image": "ami-0000abcd", "snapshot": "snap-0000abcd", "volume": "vol-0000abcd", "accesskey": "ZZZZZZZZZZZZZZZZZZZZ"}
	real := map[string]string{"image": img, "snapshot": snap, "volume": vol, "accesskey": ak}

	type attempt struct {
		kind, call string
		body       func(id string) map[string]any
		codes      string // acceptable error codes, space-separated
	}
	notFound := map[string]string{"image": "5023", "snapshot": "5054", "volume": "5064"}
	tagBody := func(id string) map[string]any {
		return map[string]any{"ResourceIds": []string{id}, "Tags": []map[string]string{{"Key": "owner", "Value": "titi"}}}
	}
	attempts := []attempt{
		{"image", "UpdateImage", func(id string) map[string]any { return map[string]any{"ImageId": id, "Description": "titi was here"} }, notFound["image"]},
		{"image", "UpdateImage", func(id string) map[string]any {
			return map[string]any{"ImageId": id, "PermissionsToLaunch": map[string]any{"Additions": map[string]any{"GlobalPermission": true}}}
		}, notFound["image"]},
		{"image", "DeleteImage", func(id string) map[string]any { return map[string]any{"ImageId": id} }, notFound["image"]},
		{"image", "CreateTags", tagBody, notFound["image"]},
		{"image", "DeleteTags", func(id string) map[string]any {
			return map[string]any{"ResourceIds": []string{id}, "Tags": []map[string]string{{"Key": "owner"}}}
		}, notFound["image"]},
		{"image", "CreateImage", func(id string) map[string]any {
			return map[string]any{"SourceImageId": id, "SourceRegionName": apitest.Region, "ImageName": "stolen"}
		}, notFound["image"]},
		{"snapshot", "UpdateSnapshot", func(id string) map[string]any {
			return map[string]any{"SnapshotId": id, "PermissionsToCreateVolume": map[string]any{"Additions": map[string]any{"AccountIds": []string{e.Titi.AccountID}}}}
		}, notFound["snapshot"]},
		{"snapshot", "DeleteSnapshot", func(id string) map[string]any { return map[string]any{"SnapshotId": id} }, notFound["snapshot"]},
		{"snapshot", "CreateTags", tagBody, notFound["snapshot"]},
		{"snapshot", "CreateVolume", func(id string) map[string]any {
			return map[string]any{"SnapshotId": id, "SubregionName": apitest.Region + "a"}
		}, notFound["snapshot"]},
		{"snapshot", "CreateSnapshot", func(id string) map[string]any {
			return map[string]any{"SourceSnapshotId": id, "SourceRegionName": apitest.Region}
		}, notFound["snapshot"]},
		{"snapshot", "CreateImage", func(id string) map[string]any {
			return map[string]any{"ImageName": "stolen-reg", "RootDeviceName": "/dev/sda1",
				"BlockDeviceMappings": []map[string]any{{"DeviceName": "/dev/sda1", "Bsu": map[string]any{"SnapshotId": id}}}}
		}, notFound["snapshot"]},
		{"volume", "UpdateVolume", func(id string) map[string]any { return map[string]any{"VolumeId": id, "Size": 20} }, notFound["volume"]},
		{"volume", "DeleteVolume", func(id string) map[string]any { return map[string]any{"VolumeId": id} }, notFound["volume"]},
		{"volume", "CreateTags", tagBody, notFound["volume"]},
		{"volume", "CreateSnapshot", func(id string) map[string]any { return map[string]any{"VolumeId": id} }, notFound["volume"]},
		{"accesskey", "UpdateAccessKey", func(id string) map[string]any { return map[string]any{"AccessKeyId": id, "State": "INACTIVE"} }, "4000"},
		{"accesskey", "DeleteAccessKey", func(id string) map[string]any { return map[string]any{"AccessKeyId": id} }, "4000"},
	}
	for _, a := range attempts {
		t.Run(a.kind+"/"+a.call, func(t *testing.T) {
			got := e.Call(t, e.Titi, a.call, a.body(real[a.kind]))
			ref := e.Call(t, e.Titi, a.call, a.body(missing[a.kind]))
			if got.Status < 400 || got.Status >= 500 {
				t.Fatalf("titi %s on joe's %s: %s, want a 4xx", a.call, a.kind, got)
			}
			if !strings.Contains(" "+a.codes+" ", " "+got.ErrorCode()+" ") {
				t.Errorf("titi %s on joe's %s: code %s, want %s (%s)", a.call, a.kind, got.ErrorCode(), a.codes, got)
			}
			if got.Status != ref.Status || got.ErrorCode() != ref.ErrorCode() {
				t.Errorf("titi %s: joe's %s gives %d/%s but a missing id gives %d/%s: the refusal leaks existence",
					a.call, a.kind, got.Status, got.ErrorCode(), ref.Status, ref.ErrorCode())
			}
		})
	}

	t.Run("reads", func(t *testing.T) {
		tc := e.V3(e.Titi)
		ctx := t.Context()
		if ids := imageIDs(t, e, e.Titi, &oscv3.FiltersImage{ImageIds: &[]string{img}}); len(ids) != 0 {
			t.Errorf("titi ReadImages by id = %v", ids)
		}
		if ids := imageIDs(t, e, e.Titi, &oscv3.FiltersImage{AccountIds: &[]string{e.Joe.AccountID}}); len(ids) != 0 {
			t.Errorf("titi ReadImages by joe's account = %v", ids)
		}
		if r, err := tc.ReadSnapshots(ctx, oscv3.ReadSnapshotsRequest{Filters: &oscv3.FiltersSnapshot{SnapshotIds: &[]string{snap}}}); err != nil || len(deref(r.Snapshots)) != 0 {
			t.Errorf("titi ReadSnapshots by id = %+v, %v", r, err)
		}
		if r, err := tc.ReadSnapshots(ctx, oscv3.ReadSnapshotsRequest{}); err != nil || len(deref(r.Snapshots)) != 0 {
			t.Errorf("titi ReadSnapshots = %+v, %v", r, err)
		}
		if r, err := tc.ReadVolumes(ctx, oscv3.ReadVolumesRequest{Filters: &oscv3.FiltersVolume{VolumeIds: &[]string{vol}}}); err != nil || len(deref(r.Volumes)) != 0 {
			t.Errorf("titi ReadVolumes by id = %+v, %v", r, err)
		}
		if r, err := tc.ReadAccessKeys(ctx, oscv3.ReadAccessKeysRequest{Filters: &oscv3.FiltersAccessKeys{AccessKeyIds: &[]string{ak, e.Joe.AccessKey}}}); err != nil || len(deref(r.AccessKeys)) != 0 {
			t.Errorf("titi ReadAccessKeys of joe's keys = %+v, %v", r, err)
		}
		if r, err := tc.ReadTags(ctx, oscv3.ReadTagsRequest{Filters: &oscv3.FiltersTag{ResourceIds: &[]string{vol, snap, img}}}); err != nil || len(deref(r.Tags)) != 0 {
			t.Errorf("titi ReadTags of joe's resources = %+v, %v", r, err)
		}
	})

	t.Run("v3 helpers", func(t *testing.T) {
		tc := e.V3(e.Titi)
		ctx := t.Context()
		_, err := tc.DeleteImage(ctx, oscv3.DeleteImageRequest{ImageId: img})
		if !oscv3.IsNotFound(err) {
			t.Errorf("DeleteImage: %v, want oscv3.IsNotFound", err)
		}
		_, err = tc.DeleteSnapshot(ctx, oscv3.DeleteSnapshotRequest{SnapshotId: snap})
		if !oscv3.IsNotFound(err) {
			t.Errorf("DeleteSnapshot: %v, want oscv3.IsNotFound", err)
		}
		_, err = tc.DeleteVolume(ctx, oscv3.DeleteVolumeRequest{VolumeId: vol})
		if !oscv3.IsNotFound(err) {
			t.Errorf("DeleteVolume: %v, want oscv3.IsNotFound", err)
		}
		_, err = tc.UpdateImage(ctx, oscv3.UpdateImageRequest{ImageId: img, Description: ptr("x")})
		if !oscv3.IsNotFound(err) {
			t.Errorf("UpdateImage: %v, want oscv3.IsNotFound", err)
		}
		_, err = tc.UpdateAccessKey(ctx, oscv3.UpdateAccessKeyRequest{AccessKeyId: ak, State: ptr("INACTIVE")})
		if err == nil || apitest.Status(err) >= 500 {
			t.Errorf("UpdateAccessKey of joe's key: %v, want a 4xx", err)
		}
	})

	// Nothing of joe's changed.
	t.Run("unchanged", func(t *testing.T) {
		got := waitImage(t, e, e.Joe, img, "available")
		if deref(got.Description) != "" || deref(deref(got.PermissionsToLaunch).GlobalPermission) || len(got.Tags) != 1 || got.Tags[0].Value != "joe" {
			t.Errorf("joe's image changed: %+v", got)
		}
		waitVolume(t, e, e.Joe, vol, "available")
		rv, err := joe.ReadVolumes(t.Context(), oscv3.ReadVolumesRequest{Filters: &oscv3.FiltersVolume{VolumeIds: &[]string{vol}}})
		if err != nil || len(deref(rv.Volumes)) != 1 || deref(rv.Volumes)[0].Size != 2 {
			t.Errorf("joe's volume changed: %+v, %v", rv, err)
		}
		keys, err := joe.ReadAccessKeys(t.Context(), oscv3.ReadAccessKeysRequest{Filters: &oscv3.FiltersAccessKeys{AccessKeyIds: &[]string{ak}}})
		if err != nil || len(deref(keys.AccessKeys)) != 1 || deref(deref(keys.AccessKeys)[0].State) != "ACTIVE" {
			t.Errorf("joe's second key changed: %+v, %v", keys, err)
		}
		if id, err := readAccountID(t, e, ak, deref(key.AccessKey.SecretKey)); err != nil || id != e.Joe.AccountID {
			t.Errorf("joe's second key no longer works: %q, %v", id, err)
		}
		r, err := joe.ReadSnapshots(t.Context(), oscv3.ReadSnapshotsRequest{Filters: &oscv3.FiltersSnapshot{SnapshotIds: &[]string{snap}}})
		if err != nil || len(deref(r.Snapshots)) != 1 {
			t.Fatalf("joe's snapshot: %+v, %v", r, err)
		}
		if p := deref(r.Snapshots)[0].PermissionsToCreateVolume; p != nil && len(deref(p.AccountIds)) != 0 {
			t.Errorf("joe's snapshot got shared: %v", deref(p.AccountIds))
		}
	})
}
