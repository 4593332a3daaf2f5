package e2e

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"

	"github.com/omiproject/omi/apitest"
)

// This file replays, with the v3 SDK, the calls terraform-provider-outscale
// makes for the four examples of the outscale_image resource page (create
// from a VM, import from a manifest, copy, register with a BSU mapping),
// its create -> wait -> read -> delete -> wait-gone sequence, and
// `terraform import outscale_image.x ami-...`. After each step the
// ReadImages result is held against every attribute of the page's
// attribute reference.

// tfImage is what an outscale_image configuration says, that is what the
// provider sends in CreateImage and expects back from Read for a clean
// plan. Zero fields are computed attributes the configuration leaves open.
type tfImage struct {
	Owner          apitest.Account
	Name           string
	Description    string
	Architecture   string
	FileLocation   string
	RootDeviceName string
	// Mappings are block_device_mappings as configured; a nil Bsu field is
	// one the server computes.
	Mappings     []oscv3.BlockDeviceMappingImage
	ProductCodes []string
	Tags         []oscv3.ResourceTag
	// Public and SharedWith are what permissions_to_launch must say.
	Public     bool
	SharedWith []string
}

// tfWait mimics the provider's resource.StateChangeConf over
// ImageOAPIStateRefreshFunc: ReadImages by id, state "destroyed" when the
// image is not listed, "failed" fails at once, and any state that is
// neither pending nor target is an error ("unexpected state").
func tfWait(t *testing.T, c *oscv3.Client, id string, pending, target []string) oscv3.Image {
	t.Helper()
	var img oscv3.Image
	seen := []string{}
	apitest.WaitFor(t, wait, "image "+id+" to reach "+strings.Join(target, "|"), func() (bool, error) {
		r, err := c.ReadImages(t.Context(), oscv3.ReadImagesRequest{Filters: &oscv3.FiltersImage{ImageIds: &[]string{id}}})
		if err != nil {
			return false, err
		}
		state := "destroyed"
		if imgs := deref(r.Images); len(imgs) > 0 {
			img = imgs[0]
			state = string(img.State)
			if state == "failed" {
				t.Fatalf("image %s failed: %+v", id, deref(img.StateComment))
			}
		}
		if len(seen) == 0 || seen[len(seen)-1] != state {
			seen = append(seen, state)
		}
		if slices.Contains(target, state) {
			return true, nil
		}
		if !slices.Contains(pending, state) {
			t.Fatalf("image %s: unexpected state %q (states seen %v), terraform wants %v then %v", id, state, seen, pending, target)
		}
		return false, nil
	})
	return img
}

// tfCreate is resourceOAPIImageCreate: CreateImage, wait pending ->
// available (the first poll must already find the image), CreateTags when
// the configuration has tags, then Read.
func tfCreate(t *testing.T, e *apitest.Env, want tfImage, req oscv3.CreateImageRequest) oscv3.Image {
	t.Helper()
	c := e.V3(want.Owner)
	resp, err := c.CreateImage(t.Context(), req)
	if err != nil {
		t.Fatalf("CreateImage %s: %v", want.Name, err)
	}
	if resp.Image == nil || !strings.HasPrefix(resp.Image.ImageId, "ami-") {
		t.Fatalf("CreateImage %s returned no image id: %+v", want.Name, resp.Image)
	}
	id := resp.Image.ImageId
	if s := string(resp.Image.State); s != "pending" && s != "available" {
		t.Errorf("CreateImage %s: state %q, want pending or available", want.Name, s)
	}
	tfWait(t, c, id, []string{"pending"}, []string{"available"})
	if len(want.Tags) > 0 {
		if _, err := c.CreateTags(t.Context(), oscv3.CreateTagsRequest{ResourceIds: []string{id}, Tags: want.Tags}); err != nil {
			t.Fatalf("CreateTags on %s: %v", id, err)
		}
	}
	return tfRead(t, e, want, id)
}

// tfRead is resourceOAPIImageRead (also what `terraform import` and every
// refresh run): ReadImages by id, every attribute set from the result.
// Two reads in a row must give the same attributes, or each plan would
// show a diff.
func tfRead(t *testing.T, e *apitest.Env, want tfImage, id string) oscv3.Image {
	t.Helper()
	read := func() (oscv3.Image, []byte) {
		r, err := e.V3(want.Owner).ReadImages(t.Context(), oscv3.ReadImagesRequest{Filters: &oscv3.FiltersImage{ImageIds: &[]string{id}}})
		if err != nil {
			t.Fatalf("ReadImages %s: %v", id, err)
		}
		if len(deref(r.Images)) != 1 {
			t.Fatalf("ReadImages %s: %d images, want 1", id, len(deref(r.Images)))
		}
		img := deref(r.Images)[0]
		b, _ := json.Marshal(img)
		return img, b
	}
	img, first := read()
	if _, again := read(); string(again) != string(first) {
		t.Errorf("two reads of %s differ (a permanent plan diff):\n%s\n%s", id, first, again)
	}
	checkRawImageShape(t, e, want.Owner, id)
	checkTFAttributes(t, e, want, img)
	return img
}

// checkTFAttributes checks every attribute of the outscale_image attribute
// reference for presence and for consistency with the configuration and
// with the other resources it names.
func checkTFAttributes(t *testing.T, e *apitest.Env, want tfImage, img oscv3.Image) {
	t.Helper()
	id := img.ImageId
	errf := func(format string, args ...any) { t.Helper(); t.Errorf(id+" ("+want.Name+"): "+format, args...) }

	if deref(img.AccountAlias) != want.Owner.Alias {
		errf("account_alias = %q, want %q", deref(img.AccountAlias), want.Owner.Alias)
	}
	if img.AccountId != want.Owner.AccountID {
		errf("account_id = %q, want %q", img.AccountId, want.Owner.AccountID)
	}
	arch := want.Architecture
	if arch == "" && img.Architecture != "x86_64" && img.Architecture != "i386" {
		errf("architecture = %q, want x86_64 or i386", img.Architecture)
	} else if arch != "" && img.Architecture != arch {
		errf("architecture = %q, want %q", img.Architecture, arch)
	}
	for _, m := range img.BootModes {
		if m != "uefi" && m != "legacy" {
			errf("boot_modes has %q", m)
		}
	}
	created := time.Time(img.CreationDate.Time)
	if created.IsZero() || created.After(time.Now().Add(time.Minute)) || created.Before(time.Now().Add(-time.Hour)) {
		errf("creation_date = %v, want about now", created)
	}
	if deref(img.Description) != want.Description {
		errf("description = %q, want %q", deref(img.Description), want.Description)
	}
	if want.FileLocation != "" && deref(img.FileLocation) != want.FileLocation {
		errf("file_location = %q, want %q", deref(img.FileLocation), want.FileLocation)
	} else if deref(img.FileLocation) == "" {
		errf("file_location is empty")
	}
	if !strings.HasPrefix(id, "ami-") || len(id) != len("ami-12345678") {
		errf("image_id %q is not ami-xxxxxxxx", id)
	}
	if deref(img.ImageName) != want.Name {
		errf("image_name = %q, want %q", deref(img.ImageName), want.Name)
	}
	if deref(img.ImageType) == "" {
		errf("image_type is empty")
	}
	perms := deref(img.PermissionsToLaunch)
	if img.PermissionsToLaunch == nil || perms.AccountIds == nil || perms.GlobalPermission == nil {
		errf("permissions_to_launch = %+v, want account_ids and global_permission", perms)
	} else {
		if *perms.GlobalPermission != want.Public {
			errf("permissions_to_launch.global_permission = %v, want %v", *perms.GlobalPermission, want.Public)
		}
		if !reflect.DeepEqual(sorted(*perms.AccountIds), sorted(append([]string{}, want.SharedWith...))) {
			errf("permissions_to_launch.account_ids = %v, want %v", *perms.AccountIds, want.SharedWith)
		}
	}
	if img.ProductCodes == nil {
		errf("product_codes is missing")
	} else if !reflect.DeepEqual(sorted(*img.ProductCodes), sorted(append([]string{}, want.ProductCodes...))) {
		errf("product_codes = %v, want %v", *img.ProductCodes, want.ProductCodes)
	}
	root := want.RootDeviceName
	if root == "" {
		root = "/dev/sda1"
	}
	if deref(img.RootDeviceName) != root {
		errf("root_device_name = %q, want %q", deref(img.RootDeviceName), root)
	}
	if img.RootDeviceType != "bsu" {
		errf("root_device_type = %q, want bsu", img.RootDeviceType)
	}
	_ = img.SecureBoot // a plain bool in the v3 model; its presence is checked on the raw JSON
	if img.State != "available" {
		errf("state = %q, want available", img.State)
	}
	if img.StateComment == nil {
		errf("state_comment is missing")
	} else if sc := img.StateComment; (sc.StateCode == nil) != (sc.StateMessage == nil) {
		errf("state_comment = code %v message %v: set both or neither", sc.StateCode, sc.StateMessage)
	}
	if !reflect.DeepEqual(tagMap(img.Tags), tagMap(want.Tags)) {
		errf("tags = %v, want %v", tagMap(img.Tags), tagMap(want.Tags))
	}
	if img.TpmMandatory == nil {
		errf("tpm_mandatory is missing")
	}
	checkTFMappings(t, e, want, img)
}

// checkTFMappings checks block_device_mappings: as configured where the
// configuration says something, complete where it does not, and each
// snapshot a completed snapshot the owner can read, no bigger than the
// volume the mapping creates.
func checkTFMappings(t *testing.T, e *apitest.Env, want tfImage, img oscv3.Image) {
	t.Helper()
	got := deref(img.BlockDeviceMappings)
	if img.BlockDeviceMappings == nil || len(got) == 0 {
		t.Errorf("%s: block_device_mappings is empty", img.ImageId)
		return
	}
	if len(want.Mappings) > 0 && len(got) != len(want.Mappings) {
		t.Errorf("%s: %d block_device_mappings, want %d", img.ImageId, len(got), len(want.Mappings))
		return
	}
	rootFound := false
	for i, m := range got {
		b, _ := json.Marshal(m)
		errf := func(format string, args ...any) {
			t.Helper()
			t.Errorf("%s mapping %d %s: "+format, append([]any{img.ImageId, i, b}, args...)...)
		}
		if deref(m.DeviceName) == deref(img.RootDeviceName) {
			rootFound = true
		}
		if m.Bsu == nil {
			errf("no bsu")
			continue
		}
		bsu := *m.Bsu
		if bsu.DeleteOnVmDeletion == nil || bsu.SnapshotId == nil || bsu.VolumeSize == nil || bsu.VolumeType == nil {
			errf("bsu lacks delete_on_vm_deletion, snapshot_id, volume_size or volume_type")
			continue
		}
		if *bsu.VolumeType == "io1" && deref(bsu.Iops) <= 0 {
			errf("io1 without iops")
		}
		if len(want.Mappings) > 0 {
			w := want.Mappings[i]
			if deref(w.DeviceName) != "" && deref(m.DeviceName) != deref(w.DeviceName) {
				errf("device_name, want %q", deref(w.DeviceName))
			}
			if wb := w.Bsu; wb != nil {
				if wb.SnapshotId != nil && *bsu.SnapshotId != *wb.SnapshotId {
					errf("snapshot_id, want %s", *wb.SnapshotId)
				}
				if wb.VolumeSize != nil && *bsu.VolumeSize != *wb.VolumeSize {
					errf("volume_size, want %d", *wb.VolumeSize)
				}
				if wb.VolumeType != nil && *bsu.VolumeType != *wb.VolumeType {
					errf("volume_type, want %s", *wb.VolumeType)
				}
				if wb.Iops != nil && deref(bsu.Iops) != *wb.Iops {
					errf("iops, want %d", *wb.Iops)
				}
				if wb.DeleteOnVmDeletion != nil && *bsu.DeleteOnVmDeletion != *wb.DeleteOnVmDeletion {
					errf("delete_on_vm_deletion, want %v", *wb.DeleteOnVmDeletion)
				}
			}
		}
		snaps, err := e.V3(want.Owner).ReadSnapshots(t.Context(), oscv3.ReadSnapshotsRequest{Filters: &oscv3.FiltersSnapshot{SnapshotIds: &[]string{*bsu.SnapshotId}}})
		if err != nil || len(deref(snaps.Snapshots)) != 1 {
			errf("snapshot not readable by %s: %v", want.Owner.Alias, err)
			continue
		}
		sn := deref(snaps.Snapshots)[0]
		if sn.State != "completed" {
			errf("snapshot %s is %s, want completed once the image is available", sn.SnapshotId, sn.State)
		}
		if sn.VolumeSize > *bsu.VolumeSize {
			errf("volume_size %d smaller than snapshot %s (%d GiB)", *bsu.VolumeSize, sn.SnapshotId, sn.VolumeSize)
		}
	}
	if !rootFound {
		t.Errorf("%s: no mapping for root device %s", img.ImageId, deref(img.RootDeviceName))
	}
}

func tagMap(tags []oscv3.ResourceTag) map[string]string {
	m := map[string]string{}
	for _, t := range tags {
		m[t.Key] = t.Value
	}
	return m
}

// tfDestroy is resourceOAPIImageDelete: DeleteImage, then ReadImages until
// the image is gone, with only available or pending seen in between.
func tfDestroy(t *testing.T, e *apitest.Env, a apitest.Account, id string) {
	t.Helper()
	c := e.V3(a)
	if _, err := c.DeleteImage(t.Context(), oscv3.DeleteImageRequest{ImageId: id}); err != nil {
		t.Fatalf("DeleteImage %s: %v", id, err)
	}
	tfWait(t, c, id, []string{"available", "pending"}, []string{"destroyed"})
}

// tfImport is `terraform import outscale_image.x <id>` followed by a plan:
// the import reads the image by id only, and the plan is clean when the
// attributes the configuration sets match what Read put in the state.
func tfImport(t *testing.T, e *apitest.Env, want tfImage, id string) {
	t.Helper()
	tfRead(t, e, want, id)
}

// Example "Create an image": an outscale_vm (CreateVms, wait running) and
// an outscale_image with vm_id and no_reboot = true, with tags.
func TestTerraformImageFromVm(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t)
	c := e.V3(e.Joe)
	ctx := t.Context()
	vol := newVolume(t, e, e.Joe, 10)
	source := registerImage(t, e, e.Joe, "tf-vm-source", newSnapshot(t, e, e.Joe, vol)).ImageId
	waitImage(t, e, e.Joe, source, "available")

	// outscale_vm: CreateVms, then ReadVms until running.
	vms, err := c.CreateVms(ctx, oscv3.CreateVmsRequest{ImageId: source, VmType: ptr("tinav5.c2r4p2")})
	if err != nil || len(deref(vms.Vms)) != 1 {
		t.Fatalf("CreateVms: %v", err)
	}
	vmID := deref(vms.Vms)[0].VmId
	vm := waitVm(t, c, vmID, "running")
	rootVol := ""
	for _, m := range vm.BlockDeviceMappings {
		if m.DeviceName == vm.RootDeviceName {
			rootVol = m.Bsu.VolumeId
		}
	}
	if rootVol == "" {
		t.Fatalf("VM %s has no root volume mapping: %+v", vmID, vm.BlockDeviceMappings)
	}

	want := tfImage{Owner: e.Joe, Name: "terraform-omi-create", RootDeviceName: "/dev/sda1",
		Tags: []oscv3.ResourceTag{{Key: "name", Value: "terraform-omi-create"}, {Key: "team", Value: ""}}}
	img := tfCreate(t, e, want, oscv3.CreateImageRequest{ImageName: ptr(want.Name), VmId: &vmID, NoReboot: ptr(true)})
	// no_reboot: the VM was not stopped.
	if got := waitVm(t, c, vmID, "running"); got.State != "running" {
		t.Errorf("VM state after CreateImage NoReboot = %s", got.State)
	}
	// The image maps a new snapshot of the VM's root volume, of its size.
	m := deref(img.BlockDeviceMappings)
	if len(m) != 1 || m[0].Bsu == nil {
		t.Fatalf("image from a one-volume VM: mappings %+v", m)
	}
	snaps, err := c.ReadSnapshots(ctx, oscv3.ReadSnapshotsRequest{Filters: &oscv3.FiltersSnapshot{SnapshotIds: &[]string{deref(m[0].Bsu.SnapshotId)}}})
	if err != nil || len(deref(snaps.Snapshots)) != 1 {
		t.Fatalf("ReadSnapshots of the image's snapshot: %v", err)
	}
	if sn := deref(snaps.Snapshots)[0]; sn.VolumeId != rootVol || sn.VolumeSize != 10 || deref(m[0].Bsu.VolumeSize) != 10 {
		t.Errorf("image snapshot %s of volume %s (%d GiB), mapping %d GiB; want a snapshot of root volume %s, 10 GiB",
			sn.SnapshotId, sn.VolumeId, sn.VolumeSize, deref(m[0].Bsu.VolumeSize), rootVol)
	}
	if deref(m[0].DeviceName) != "/dev/sda1" {
		t.Errorf("mapping device %q, want /dev/sda1", deref(m[0].DeviceName))
	}

	tfImport(t, e, want, img.ImageId)
	tfDestroy(t, e, e.Joe, img.ImageId)
	// The outscale_vm is destroyed after the image.
	if _, err := c.DeleteVms(ctx, oscv3.DeleteVmsRequest{VmIds: []string{vmID}}); err != nil {
		t.Fatalf("DeleteVms: %v", err)
	}
}

// Example "Copy an image": source_image_id and source_region_name; here
// titi copies an OMI joe shared with it.
func TestTerraformImageCopy(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t)
	ctx := t.Context()
	vol := newVolume(t, e, e.Joe, 4)
	snap := newSnapshot(t, e, e.Joe, vol)
	src, err := e.V3(e.Joe).CreateImage(ctx, oscv3.CreateImageRequest{ImageName: ptr("tf-copy-source"), Description: ptr("source"),
		RootDeviceName: ptr("/dev/sda1"), BootModes: &[]oscv3.BootMode{"uefi"},
		BlockDeviceMappings: &[]oscv3.BlockDeviceMappingImage{{DeviceName: ptr("/dev/sda1"),
			Bsu: &oscv3.BsuToCreate{SnapshotId: &snap, VolumeSize: ptr(6), VolumeType: ptr(oscv3.VolumeType("gp2")), DeleteOnVmDeletion: ptr(true)}}}})
	if err != nil {
		t.Fatalf("CreateImage source: %v", err)
	}
	srcID := src.Image.ImageId
	waitImage(t, e, e.Joe, srcID, "available")
	if _, err := e.V3(e.Joe).UpdateImage(ctx, oscv3.UpdateImageRequest{ImageId: srcID, PermissionsToLaunch: &oscv3.PermissionsOnResourceCreation{
		Additions: &oscv3.PermissionsOnResource{AccountIds: &[]string{e.Titi.AccountID}}}}); err != nil {
		t.Fatalf("UpdateImage share: %v", err)
	}

	want := tfImage{Owner: e.Titi, Name: "terraform-omi-copy", Description: "Terraform copy OMI",
		Mappings: []oscv3.BlockDeviceMappingImage{{DeviceName: ptr("/dev/sda1"),
			Bsu: &oscv3.BsuToCreate{VolumeSize: ptr(6), VolumeType: ptr(oscv3.VolumeType("gp2")), DeleteOnVmDeletion: ptr(true)}}}}
	img := tfCreate(t, e, want, oscv3.CreateImageRequest{ImageName: ptr(want.Name), Description: ptr(want.Description),
		SourceImageId: &srcID, SourceRegionName: ptr(apitest.Region)})
	if img.ImageId == srcID {
		t.Fatalf("the copy has the source's id")
	}
	if !slices.Equal(img.BootModes, []oscv3.BootMode{"uefi"}) {
		t.Errorf("copy boot_modes = %v, want the source's [uefi]", img.BootModes)
	}
	// The copy does not map joe's snapshot: titi owns what it launches from.
	if s := deref(deref(img.BlockDeviceMappings)[0].Bsu.SnapshotId); s == snap {
		t.Errorf("copy maps the source snapshot %s", s)
	}
	tfImport(t, e, want, img.ImageId)
	tfDestroy(t, e, e.Titi, img.ImageId)
	// The source is untouched.
	waitImage(t, e, e.Joe, srcID, "available")
}

// Example "Create an image with a BSU volume": block_device_mappings with
// an io1 bsu (snapshot, 120 GiB, 150 IOPS, delete_on_vm_deletion) and
// root_device_name.
func TestTerraformImageRegisterBsu(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t)
	vol := newVolume(t, e, e.Joe, 10)
	snap := newSnapshot(t, e, e.Joe, vol)
	// expandOmiBlockDeviceBSU sends each bsu field that is set, iops only
	// for io1.
	mappings := []oscv3.BlockDeviceMappingImage{{DeviceName: ptr("/dev/sda1"), Bsu: &oscv3.BsuToCreate{
		SnapshotId: &snap, VolumeSize: ptr(120), VolumeType: ptr(oscv3.VolumeType("io1")), Iops: ptr(150), DeleteOnVmDeletion: ptr(true)}}}
	want := tfImage{Owner: e.Joe, Name: "terraform-omi-bsu", Description: "Terraform OMI with BSU", RootDeviceName: "/dev/sda1",
		Mappings: mappings, Tags: []oscv3.ResourceTag{{Key: "Name", Value: "bsu"}}}
	img := tfCreate(t, e, want, oscv3.CreateImageRequest{ImageName: ptr(want.Name), Description: ptr(want.Description),
		RootDeviceName: ptr("/dev/sda1"), BlockDeviceMappings: &mappings})
	tfImport(t, e, want, img.ImageId)

	// A VM from it gets a 120 GiB io1 root volume with 150 IOPS.
	c := e.V3(e.Joe)
	vms, err := c.CreateVms(t.Context(), oscv3.CreateVmsRequest{ImageId: img.ImageId})
	if err != nil || len(deref(vms.Vms)) != 1 {
		t.Fatalf("CreateVms from the registered OMI: %v", err)
	}
	vm := waitVm(t, c, deref(vms.Vms)[0].VmId, "running")
	if len(vm.BlockDeviceMappings) != 1 {
		t.Fatalf("VM mappings %+v", vm.BlockDeviceMappings)
	}
	root := vm.BlockDeviceMappings[0].Bsu.VolumeId
	vr, err := c.ReadVolumes(t.Context(), oscv3.ReadVolumesRequest{Filters: &oscv3.FiltersVolume{VolumeIds: &[]string{root}}})
	if err != nil || len(deref(vr.Volumes)) != 1 {
		t.Fatalf("ReadVolumes root: %v", err)
	}
	if v := deref(vr.Volumes)[0]; v.Size != 120 || v.VolumeType != "io1" || v.Iops != 150 {
		t.Errorf("root volume = %d GiB %s %d IOPS, want 120 GiB io1 150 IOPS", v.Size, v.VolumeType, v.Iops)
	}
	if _, err := c.DeleteVms(t.Context(), oscv3.DeleteVmsRequest{VmIds: []string{vm.VmId}}); err != nil {
		t.Fatalf("DeleteVms: %v", err)
	}
	tfDestroy(t, e, e.Joe, img.ImageId)
}
