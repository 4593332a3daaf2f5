package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	oscv2 "github.com/outscale/osc-sdk-go/v2"
	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"

	"github.com/omiproject/omi/apitest"
)

// The OMI lifecycle as terraform and packer drive it, with the v3 SDK:
// volume -> snapshot -> register -> read with filters -> share with titi
// -> titi copies -> public -> private -> delete, and the snapshot-in-use
// rule.
func TestImageLifecycle(t *testing.T) {
	e := apitest.Start(t)
	joe, titi, mkt := e.V3(e.Joe), e.V3(e.Titi), e.V3(e.Marketplace)
	ctx := t.Context()

	vol := newVolume(t, e, e.Joe, 10)
	snap := newSnapshot(t, e, e.Joe, vol)

	name := "e2e-image-one"
	created, err := joe.CreateImage(ctx, oscv3.CreateImageRequest{
		ImageName:      &name,
		Description:    ptr("first e2e image"),
		Architecture:   ptr("x86_64"),
		BootModes:      &[]oscv3.BootMode{"legacy"},
		RootDeviceName: ptr("/dev/sda1"),
		BlockDeviceMappings: &[]oscv3.BlockDeviceMappingImage{{
			DeviceName: ptr("/dev/sda1"),
			Bsu: &oscv3.BsuToCreate{SnapshotId: &snap, VolumeSize: ptr(12), VolumeType: ptr(oscv3.VolumeType("gp2")),
				DeleteOnVmDeletion: ptr(false)},
		}},
	})
	if err != nil {
		t.Fatalf("CreateImage: %v", err)
	}
	img := *created.Image
	id := img.ImageId
	if !strings.HasPrefix(id, "ami-") || img.AccountId != e.Joe.AccountID {
		t.Fatalf("CreateImage = id %q account %q, want ami-... of joe", id, img.AccountId)
	}
	if img.State != "pending" && img.State != "available" {
		t.Errorf("new image state %q, want pending or available", img.State)
	}
	checkEcho(t, img, snap)

	// terraform polls at once: the image must be readable right after
	// CreateImage returns, whatever its state.
	if ids := imageIDs(t, e, e.Joe, &oscv3.FiltersImage{ImageIds: &[]string{id}}); len(ids) != 1 {
		t.Fatalf("ReadImages right after CreateImage = %v, want the image", ids)
	}
	img = waitImage(t, e, e.Joe, id, "available")
	checkEcho(t, img, snap)
	checkRawImageShape(t, e, e.Joe, id)

	// Filters.
	if _, err := joe.CreateTags(ctx, oscv3.CreateTagsRequest{ResourceIds: []string{id}, Tags: []oscv3.ResourceTag{{Key: "env", Value: "test"}}}); err != nil {
		t.Fatalf("CreateTags: %v", err)
	}
	filters := []struct {
		name string
		f    oscv3.FiltersImage
		want bool
	}{
		{"ImageIds", oscv3.FiltersImage{ImageIds: &[]string{id}}, true},
		{"ImageIds other", oscv3.FiltersImage{ImageIds: &[]string{"ami-00000000"}}, false},
		{"ImageNames exact", oscv3.FiltersImage{ImageNames: &[]string{name}}, true},
		{"ImageNames wildcard", oscv3.FiltersImage{ImageNames: &[]string{"e2e-image-*"}}, true},
		{"ImageNames wildcard middle", oscv3.FiltersImage{ImageNames: &[]string{"e2e-*-one"}}, true},
		{"ImageNames no match", oscv3.FiltersImage{ImageNames: &[]string{"other-*"}}, false},
		{"States available", oscv3.FiltersImage{States: &[]oscv3.ImageState{"available"}}, true},
		{"States failed", oscv3.FiltersImage{States: &[]oscv3.ImageState{"failed", "pending"}}, false},
		{"Tags", oscv3.FiltersImage{Tags: &[]string{"env=test"}}, true},
		{"Tags other value", oscv3.FiltersImage{Tags: &[]string{"env=prod"}}, false},
		{"TagKeys", oscv3.FiltersImage{TagKeys: &[]string{"env"}}, true},
		{"TagValues", oscv3.FiltersImage{TagValues: &[]string{"test"}}, true},
		{"TagKeys other", oscv3.FiltersImage{TagKeys: &[]string{"owner"}}, false},
		{"AccountIds", oscv3.FiltersImage{AccountIds: &[]string{e.Joe.AccountID}}, true},
		{"AccountIds titi", oscv3.FiltersImage{AccountIds: &[]string{e.Titi.AccountID}}, false},
		{"BDM snapshot", oscv3.FiltersImage{BlockDeviceMappingSnapshotIds: &[]string{snap}}, true},
		{"private only", oscv3.FiltersImage{PermissionsToLaunchGlobalPermission: ptr(false), ImageIds: &[]string{id}}, true},
		{"public only", oscv3.FiltersImage{PermissionsToLaunchGlobalPermission: ptr(true), ImageIds: &[]string{id}}, false},
		{"AND of filters", oscv3.FiltersImage{ImageNames: &[]string{"e2e-*"}, States: &[]oscv3.ImageState{"pending"}}, false},
	}
	for _, f := range filters {
		got := has(imageIDs(t, e, e.Joe, &f.f), id)
		if got != f.want {
			t.Errorf("ReadImages filter %s: image listed = %v, want %v", f.name, got, f.want)
		}
	}

	// Private: titi and the marketplace do not see it, by id or in a listing.
	for _, who := range []apitest.Account{e.Titi, e.Marketplace} {
		if has(imageIDs(t, e, who, nil), id) || has(imageIDs(t, e, who, &oscv3.FiltersImage{ImageIds: &[]string{id}}), id) {
			t.Errorf("%s sees joe's private image", who.Alias)
		}
	}

	// Share with titi.
	up, err := joe.UpdateImage(ctx, oscv3.UpdateImageRequest{ImageId: id, PermissionsToLaunch: &oscv3.PermissionsOnResourceCreation{
		Additions: &oscv3.PermissionsOnResource{AccountIds: &[]string{e.Titi.AccountID}}}})
	if err != nil {
		t.Fatalf("UpdateImage share: %v", err)
	}
	if p := up.Image.PermissionsToLaunch; p == nil || p.AccountIds == nil || !has(*p.AccountIds, e.Titi.AccountID) || deref(p.GlobalPermission) {
		t.Errorf("after sharing, PermissionsToLaunch = %+v, want titi listed, not public", p)
	}
	if !has(imageIDs(t, e, e.Titi, nil), id) {
		t.Fatalf("titi does not see the image shared with it")
	}
	if has(imageIDs(t, e, e.Marketplace, nil), id) {
		t.Errorf("marketplace sees an image shared with titi only")
	}
	// titi must not learn joe's other partners.
	titiView := waitImage(t, e, e.Titi, id, "available")
	if p := titiView.PermissionsToLaunch; p != nil && p.AccountIds != nil && len(*p.AccountIds) > 0 {
		t.Errorf("titi sees the sharing list %v of joe's image", *p.AccountIds)
	}
	// titi may not change or delete it.
	_, err = titi.UpdateImage(ctx, oscv3.UpdateImageRequest{ImageId: id, Description: ptr("mine now")})
	if err == nil || apitest.Status(err) < 400 || apitest.Status(err) >= 500 {
		t.Errorf("titi UpdateImage on a shared image: %v, want 4xx", err)
	}
	if _, err := titi.DeleteImage(ctx, oscv3.DeleteImageRequest{ImageId: id}); err == nil || apitest.Status(err) >= 500 {
		t.Errorf("titi DeleteImage on a shared image: %v, want 4xx", err)
	}

	// titi copies it into its own account.
	cp, err := titi.CreateImage(ctx, oscv3.CreateImageRequest{SourceImageId: &id, SourceRegionName: ptr(apitest.Region), ImageName: ptr("titi-copy")})
	if err != nil {
		t.Fatalf("titi copies the shared image: %v", err)
	}
	copyID := cp.Image.ImageId
	if copyID == id || cp.Image.AccountId != e.Titi.AccountID {
		t.Fatalf("copy = %s owned by %s, want a new id owned by titi", copyID, cp.Image.AccountId)
	}
	copyImg := waitImage(t, e, e.Titi, copyID, "available")
	if copyImg.BlockDeviceMappings == nil || len(*copyImg.BlockDeviceMappings) != 1 {
		t.Fatalf("copy mappings = %+v, want one", copyImg.BlockDeviceMappings)
	}
	copySnap := deref((*copyImg.BlockDeviceMappings)[0].Bsu.SnapshotId)
	if copySnap == "" || copySnap == snap {
		t.Errorf("copy maps snapshot %q, want a new snapshot of titi's (source %s)", copySnap, snap)
	}
	if copyImg.Architecture != "x86_64" || len(copyImg.BootModes) != 1 {
		t.Errorf("copy architecture %q boot modes %v, want the source's x86_64 [legacy]", copyImg.Architecture, copyImg.BootModes)
	}
	ts, err := titi.ReadSnapshots(ctx, oscv3.ReadSnapshotsRequest{Filters: &oscv3.FiltersSnapshot{SnapshotIds: &[]string{copySnap}}})
	if err != nil || ts.Snapshots == nil || len(*ts.Snapshots) != 1 || (*ts.Snapshots)[0].AccountId != e.Titi.AccountID {
		t.Errorf("titi's view of the copy's snapshot = %+v, %v; want one snapshot owned by titi", ts, err)
	}
	// A copy from another region is refused: copies stay in a region.
	_, err = titi.CreateImage(ctx, oscv3.CreateImageRequest{SourceImageId: &id, SourceRegionName: ptr("us-east-2"), ImageName: ptr("titi-copy-2")})
	if err == nil || apitest.Status(err) != http.StatusBadRequest {
		t.Errorf("copy with SourceRegionName us-east-2: %v, want 400", err)
	}

	// Unshare titi, then make it public.
	if _, err := joe.UpdateImage(ctx, oscv3.UpdateImageRequest{ImageId: id, PermissionsToLaunch: &oscv3.PermissionsOnResourceCreation{
		Removals: &oscv3.PermissionsOnResource{AccountIds: &[]string{e.Titi.AccountID}}}}); err != nil {
		t.Fatalf("UpdateImage unshare: %v", err)
	}
	if has(imageIDs(t, e, e.Titi, nil), id) {
		t.Errorf("titi still sees the image after Removals")
	}
	if !has(imageIDs(t, e, e.Titi, nil), copyID) {
		t.Errorf("titi lost its own copy when the source was unshared")
	}
	if _, err := joe.UpdateImage(ctx, oscv3.UpdateImageRequest{ImageId: id, PermissionsToLaunch: &oscv3.PermissionsOnResourceCreation{
		Additions: &oscv3.PermissionsOnResource{GlobalPermission: ptr(true)}}}); err != nil {
		t.Fatalf("UpdateImage public: %v", err)
	}
	for _, who := range []apitest.Account{e.Titi, e.Marketplace} {
		if !has(imageIDs(t, e, who, nil), id) {
			t.Errorf("%s does not see the public image", who.Alias)
		}
		if !has(imageIDs(t, e, who, &oscv3.FiltersImage{PermissionsToLaunchGlobalPermission: ptr(true)}), id) {
			t.Errorf("%s: public image missing from the public-only filter", who.Alias)
		}
		if !has(imageIDs(t, e, who, &oscv3.FiltersImage{AccountIds: &[]string{e.Joe.AccountID}}), id) {
			t.Errorf("%s: public image missing from the owner filter", who.Alias)
		}
	}
	if _, err := mkt.UpdateImage(ctx, oscv3.UpdateImageRequest{ImageId: id, PermissionsToLaunch: &oscv3.PermissionsOnResourceCreation{
		Removals: &oscv3.PermissionsOnResource{GlobalPermission: ptr(true)}}}); err == nil {
		t.Errorf("marketplace made joe's public image private")
	}
	if _, err := joe.UpdateImage(ctx, oscv3.UpdateImageRequest{ImageId: id, PermissionsToLaunch: &oscv3.PermissionsOnResourceCreation{
		Removals: &oscv3.PermissionsOnResource{GlobalPermission: ptr(true)}}}); err != nil {
		t.Fatalf("UpdateImage private: %v", err)
	}
	if has(imageIDs(t, e, e.Marketplace, nil), id) {
		t.Errorf("marketplace still sees the image after Removals.GlobalPermission")
	}

	// The snapshot cannot go while the image uses it.
	_, err = joe.DeleteSnapshot(ctx, oscv3.DeleteSnapshotRequest{SnapshotId: snap})
	if st := apitest.Status(err); err == nil || st < 400 || st >= 500 {
		t.Fatalf("DeleteSnapshot of a snapshot an OMI uses: %v, want a 4xx refusal", err)
	}
	if st := apitest.Status(err); st != http.StatusConflict {
		t.Errorf("DeleteSnapshot in use: HTTP %d codes %v, want 409 ResourceConflict", st, apitest.ErrorCodes(err))
	}

	// Delete the image: gone at once, no intermediate state.
	if _, err := joe.DeleteImage(ctx, oscv3.DeleteImageRequest{ImageId: id}); err != nil {
		t.Fatalf("DeleteImage: %v", err)
	}
	if ids := imageIDs(t, e, e.Joe, &oscv3.FiltersImage{ImageIds: &[]string{id}}); len(ids) != 0 {
		t.Errorf("ReadImages after DeleteImage = %v, want nothing", ids)
	}
	_, err = joe.DeleteImage(ctx, oscv3.DeleteImageRequest{ImageId: id})
	if !oscv3.IsNotFound(err) {
		t.Errorf("second DeleteImage: %v, want not found (5xxx)", err)
	}
	// titi's copy survives the source.
	if got := waitImage(t, e, e.Titi, copyID, "available"); got.ImageId != copyID {
		t.Errorf("titi's copy gone after the source was deleted")
	}
	// Now the snapshot can go.
	if _, err := joe.DeleteSnapshot(ctx, oscv3.DeleteSnapshotRequest{SnapshotId: snap}); err != nil {
		t.Fatalf("DeleteSnapshot after DeleteImage: %v", err)
	}
	rs, err := joe.ReadSnapshots(ctx, oscv3.ReadSnapshotsRequest{Filters: &oscv3.FiltersSnapshot{SnapshotIds: &[]string{snap}}})
	if err != nil || (rs.Snapshots != nil && len(*rs.Snapshots) != 0) {
		t.Errorf("ReadSnapshots after DeleteSnapshot = %+v, %v; want none", rs, err)
	}
	// titi can still build a volume from its copy's snapshot.
	v, err := titi.CreateVolume(ctx, oscv3.CreateVolumeRequest{SubregionName: apitest.Region + "a", SnapshotId: &copySnap})
	if err != nil {
		t.Fatalf("titi CreateVolume from the copy's snapshot: %v", err)
	}
	if v.Volume.Size != 10 {
		t.Errorf("volume from a 10 GiB snapshot has %d GiB", v.Volume.Size)
	}
}

// checkEcho checks that the image repeats the registration request.
func checkEcho(t *testing.T, img oscv3.Image, snap string) {
	t.Helper()
	if deref(img.Description) != "first e2e image" || img.Architecture != "x86_64" || deref(img.RootDeviceName) != "/dev/sda1" ||
		img.RootDeviceType != "bsu" || len(img.BootModes) != 1 || img.BootModes[0] != "legacy" {
		t.Errorf("image does not echo the request: description %q arch %q root %q/%q boot %v",
			deref(img.Description), img.Architecture, deref(img.RootDeviceName), img.RootDeviceType, img.BootModes)
	}
	if img.BlockDeviceMappings == nil || len(*img.BlockDeviceMappings) != 1 {
		t.Fatalf("BlockDeviceMappings = %+v, want one", img.BlockDeviceMappings)
	}
	m := (*img.BlockDeviceMappings)[0]
	if deref(m.DeviceName) != "/dev/sda1" || m.Bsu == nil || deref(m.Bsu.SnapshotId) != snap || deref(m.Bsu.VolumeSize) != 12 ||
		deref(m.Bsu.VolumeType) != "gp2" || m.Bsu.DeleteOnVmDeletion == nil || *m.Bsu.DeleteOnVmDeletion {
		b, _ := json.Marshal(m)
		t.Errorf("mapping %s, want /dev/sda1 -> %s, 12 GiB gp2, DeleteOnVmDeletion false", b, snap)
	}
	if img.CreationDate.IsZero() {
		t.Errorf("CreationDate is zero")
	}
}

// checkRawImageShape checks the fields terraform dereferences unchecked,
// on the raw JSON (the SDK's pointers would hide a missing field).
func checkRawImageShape(t *testing.T, e *apitest.Env, a apitest.Account, id string) {
	t.Helper()
	var out struct{ Images []map[string]json.RawMessage }
	e.MustCall(t, a, "ReadImages", map[string]any{"Filters": map[string]any{"ImageIds": []string{id}}}, &out)
	if len(out.Images) != 1 {
		t.Fatalf("raw ReadImages = %d images", len(out.Images))
	}
	img := out.Images[0]
	for field, prefix := range map[string]string{"StateComment": "{", "PermissionsToLaunch": "{", "BlockDeviceMappings": "[",
		"BootModes": "[", "Tags": "[", "ProductCodes": "[", "CreationDate": `"`, "SecureBoot": "", "State": `"`} {
		raw, ok := img[field]
		if !ok {
			t.Errorf("image has no %s", field)
			continue
		}
		if prefix != "" && !strings.HasPrefix(string(raw), prefix) {
			t.Errorf("image %s = %s, want it to start with %s", field, raw, prefix)
		}
	}
	var perms struct {
		AccountIds       *[]string
		GlobalPermission *bool
	}
	if err := json.Unmarshal(img["PermissionsToLaunch"], &perms); err != nil || perms.AccountIds == nil || perms.GlobalPermission == nil {
		t.Errorf("PermissionsToLaunch = %s, want AccountIds array and GlobalPermission", img["PermissionsToLaunch"])
	}
}

// The same lifecycle through the v2 SDK, whose models decode differently
// (dates as strings, everything optional).
func TestImageLifecycleV2(t *testing.T) {
	e := apitest.Start(t)
	c, ctx := e.V2(e.Joe)
	vr, _, err := c.VolumeApi.CreateVolume(ctx).CreateVolumeRequest(oscv2.CreateVolumeRequest{SubregionName: "eu-west-2b", Size: ptr(int32(4))}).Execute()
	if err != nil {
		t.Fatalf("CreateVolume: %v", err)
	}
	vol := vr.Volume.GetVolumeId()
	waitVolume(t, e, e.Joe, vol, "available")
	sr, _, err := c.SnapshotApi.CreateSnapshot(ctx).CreateSnapshotRequest(oscv2.CreateSnapshotRequest{VolumeId: &vol}).Execute()
	if err != nil {
		t.Fatalf("CreateSnapshot: %v", err)
	}
	snap := sr.Snapshot.GetSnapshotId()
	waitSnapshot(t, e, e.Joe, snap)
	ir, _, err := c.ImageApi.CreateImage(ctx).CreateImageRequest(oscv2.CreateImageRequest{
		ImageName: ptr("v2-image"), RootDeviceName: ptr("/dev/sda1"),
		BlockDeviceMappings: &[]oscv2.BlockDeviceMappingImage{{DeviceName: ptr("/dev/sda1"), Bsu: &oscv2.BsuToCreate{SnapshotId: &snap}}},
	}).Execute()
	if err != nil {
		t.Fatalf("CreateImage: %v", err)
	}
	id := ir.Image.GetImageId()
	waitImage(t, e, e.Joe, id, "available")
	list, _, err := c.ImageApi.ReadImages(ctx).ReadImagesRequest(oscv2.ReadImagesRequest{Filters: &oscv2.FiltersImage{ImageNames: &[]string{"v2-*"}}}).Execute()
	if err != nil {
		t.Fatalf("ReadImages: %v", err)
	}
	if len(list.GetImages()) != 1 || list.GetImages()[0].GetImageId() != id {
		t.Fatalf("ReadImages v2-* = %+v, want the image", list.GetImages())
	}
	got := list.GetImages()[0]
	bdm := got.GetBlockDeviceMappings()
	if len(bdm) != 1 || bdm[0].Bsu.GetVolumeSize() != 4 || bdm[0].Bsu.GetVolumeType() != "standard" || !bdm[0].Bsu.GetDeleteOnVmDeletion() {
		t.Errorf("defaults of the mapping = %+v, want 4 GiB (the snapshot's size), standard, DeleteOnVmDeletion true", bdm)
	}
	if got.GetArchitecture() != "x86_64" || got.GetState() != "available" || got.GetImageType() != "machine" {
		t.Errorf("image defaults = arch %q state %q type %q", got.GetArchitecture(), got.GetState(), got.GetImageType())
	}
	_, _, err = c.ImageApi.UpdateImage(ctx).UpdateImageRequest(oscv2.UpdateImageRequest{ImageId: id,
		PermissionsToLaunch: &oscv2.PermissionsOnResourceCreation{Additions: &oscv2.PermissionsOnResource{AccountIds: &[]string{e.Titi.AccountID}}}}).Execute()
	if err != nil {
		t.Fatalf("UpdateImage: %v", err)
	}
	tc, tctx := e.V2(e.Titi)
	tl, _, err := tc.ImageApi.ReadImages(tctx).ReadImagesRequest(oscv2.ReadImagesRequest{Filters: &oscv2.FiltersImage{ImageIds: &[]string{id}}}).Execute()
	if err != nil || len(tl.GetImages()) != 1 {
		t.Errorf("titi ReadImages of the shared image = %+v, %v", tl.GetImages(), err)
	}
	_, _, err = c.SnapshotApi.DeleteSnapshot(ctx).DeleteSnapshotRequest(oscv2.DeleteSnapshotRequest{SnapshotId: snap}).Execute()
	if st := apitest.Status(err); err == nil || st < 400 || st >= 500 {
		t.Errorf("DeleteSnapshot in use: %v, want 4xx", err)
	}
	if _, _, err := c.ImageApi.DeleteImage(ctx).DeleteImageRequest(oscv2.DeleteImageRequest{ImageId: id}).Execute(); err != nil {
		t.Fatalf("DeleteImage: %v", err)
	}
	if _, _, err := c.SnapshotApi.DeleteSnapshot(ctx).DeleteSnapshotRequest(oscv2.DeleteSnapshotRequest{SnapshotId: snap}).Execute(); err != nil {
		t.Errorf("DeleteSnapshot after DeleteImage: %v", err)
	}
	if _, _, err := c.VolumeApi.DeleteVolume(ctx).DeleteVolumeRequest(oscv2.DeleteVolumeRequest{VolumeId: vol}).Execute(); err != nil {
		t.Errorf("DeleteVolume: %v", err)
	}
}

func TestTags(t *testing.T) {
	e := apitest.Start(t)
	c := e.V3(e.Joe)
	ctx := t.Context()
	vol := newVolume(t, e, e.Joe, 1)
	snap := newSnapshot(t, e, e.Joe, vol)
	img := registerImage(t, e, e.Joe, "tagged", snap).ImageId
	ids := []string{vol, snap, img}

	if _, err := c.CreateTags(ctx, oscv3.CreateTagsRequest{ResourceIds: ids, Tags: []oscv3.ResourceTag{
		{Key: "project", Value: "omi"}, {Key: "empty", Value: ""}}}); err != nil {
		t.Fatalf("CreateTags: %v", err)
	}
	// Same key again: the value is replaced, not duplicated.
	if _, err := c.CreateTags(ctx, oscv3.CreateTagsRequest{ResourceIds: []string{vol}, Tags: []oscv3.ResourceTag{{Key: "project", Value: "omi2"}}}); err != nil {
		t.Fatalf("CreateTags replace: %v", err)
	}
	all := readTags(t, c, oscv3.FiltersTag{})
	want := []string{
		img + " image empty=", img + " image project=omi",
		snap + " snapshot empty=", snap + " snapshot project=omi",
		vol + " volume empty=", vol + " volume project=omi2",
	}
	if got := strings.Join(all, "\n"); got != strings.Join(sorted(want), "\n") {
		t.Errorf("ReadTags =\n%s\nwant\n%s", got, strings.Join(sorted(want), "\n"))
	}
	if got := readTags(t, c, oscv3.FiltersTag{ResourceTypes: &[]string{"snapshot"}}); len(got) != 2 {
		t.Errorf("ReadTags ResourceTypes snapshot = %v, want 2", got)
	}
	if got := readTags(t, c, oscv3.FiltersTag{Keys: &[]string{"project"}, Values: &[]string{"omi2"}}); len(got) != 1 || !strings.HasPrefix(got[0], vol) {
		t.Errorf("ReadTags project=omi2 = %v, want the volume's", got)
	}
	if got := readTags(t, c, oscv3.FiltersTag{ResourceIds: &[]string{img}}); len(got) != 2 {
		t.Errorf("ReadTags ResourceIds image = %v, want 2", got)
	}
	// Tags show on the resources themselves.
	rv, err := c.ReadVolumes(ctx, oscv3.ReadVolumesRequest{Filters: &oscv3.FiltersVolume{TagKeys: &[]string{"project"}}})
	if err != nil || rv.Volumes == nil || len(*rv.Volumes) != 1 || len((*rv.Volumes)[0].Tags) != 2 {
		t.Errorf("ReadVolumes TagKeys project = %+v, %v; want the volume with 2 tags", rv, err)
	}
	// titi sees none of joe's tags.
	if got := readTags(t, e.V3(e.Titi), oscv3.FiltersTag{}); len(got) != 0 {
		t.Errorf("titi's ReadTags = %v, want nothing", got)
	}
	// DeleteTags with a value removes only the exact pair.
	if _, err := c.DeleteTags(ctx, oscv3.DeleteTagsRequest{ResourceIds: ids, Tags: []oscv3.ResourceTag{{Key: "project", Value: "omi"}}}); err != nil {
		t.Fatalf("DeleteTags: %v", err)
	}
	if got := readTags(t, c, oscv3.FiltersTag{Keys: &[]string{"project"}}); len(got) != 1 || !strings.HasPrefix(got[0], vol) {
		t.Errorf("after DeleteTags project=omi: %v, want only the volume's project=omi2", got)
	}
	// Without a value (raw JSON: the v3 model always sends Value), every value goes.
	e.MustCall(t, e.Joe, "DeleteTags", map[string]any{"ResourceIds": ids, "Tags": []map[string]string{{"Key": "project"}, {"Key": "empty"}}}, nil)
	if got := readTags(t, c, oscv3.FiltersTag{}); len(got) != 0 {
		t.Errorf("after DeleteTags by key: %v, want nothing", got)
	}
	// Keys longer than 255 characters are refused and nothing changes.
	_, err = c.CreateTags(ctx, oscv3.CreateTagsRequest{ResourceIds: []string{vol}, Tags: []oscv3.ResourceTag{{Key: strings.Repeat("k", 256), Value: "v"}}})
	if st := apitest.Status(err); st != http.StatusBadRequest {
		t.Errorf("CreateTags with a 256-character key: %v, want 400", err)
	}
	// All or nothing: one bad id fails the whole call.
	_, err = c.CreateTags(ctx, oscv3.CreateTagsRequest{ResourceIds: []string{vol, "vol-00000000"}, Tags: []oscv3.ResourceTag{{Key: "k", Value: "v"}}})
	if !oscv3.IsNotFound(err) {
		t.Errorf("CreateTags with a missing id: %v, want not found", err)
	}
	if got := readTags(t, c, oscv3.FiltersTag{}); len(got) != 0 {
		t.Errorf("a failed CreateTags left tags: %v", got)
	}
}

func readTags(t *testing.T, c *oscv3.Client, f oscv3.FiltersTag) []string {
	t.Helper()
	r, err := c.ReadTags(t.Context(), oscv3.ReadTagsRequest{Filters: &f})
	if err != nil {
		t.Fatalf("ReadTags: %v", err)
	}
	out := []string{}
	if r.Tags != nil {
		for _, tg := range *r.Tags {
			out = append(out, fmt.Sprintf("%s %s %s=%s", tg.ResourceId, tg.ResourceType, tg.Key, tg.Value))
		}
	}
	return sorted(out)
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}
