package e2e

import (
	"testing"

	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"

	"github.com/omiproject/omi/apitest"
)

// waitVm waits until the VM reaches state.
func waitVm(t *testing.T, c *oscv3.Client, id, state string) oscv3.Vm {
	t.Helper()
	var vm oscv3.Vm
	apitest.WaitFor(t, wait, "VM "+id+" "+state, func() (bool, error) {
		r, err := c.ReadVms(t.Context(), oscv3.ReadVmsRequest{Filters: &oscv3.FiltersVm{VmIds: &[]string{id}}})
		if err != nil || len(deref(r.Vms)) != 1 {
			return false, err
		}
		vm = deref(r.Vms)[0]
		return string(vm.State) == state, nil
	})
	return vm
}

// The image-related calls of a packer-plugin-outscale bsu build, in its
// order (clients.md §6), through the v3 SDK packer uses: credential check
// with a dry run, source image lookup, VM from the source, stop, image from
// the VM, wait available, share, tag image and snapshots, delete the VM.
func TestPackerBuildFlow(t *testing.T) {
	e := apitest.Start(t)
	c := e.V3(e.Joe)
	ctx := t.Context()
	if _, err := c.ReadVms(ctx, oscv3.ReadVmsRequest{DryRun: ptr(true)}); err != nil {
		t.Fatalf("ReadVms DryRun (packer's credential check): %v", err)
	}
	if _, err := c.ReadAccounts(ctx, oscv3.ReadAccountsRequest{}); err != nil {
		t.Fatalf("ReadAccounts: %v", err)
	}
	vol := newVolume(t, e, e.Joe, 10)
	source := registerImage(t, e, e.Joe, "packer-source", newSnapshot(t, e, e.Joe, vol)).ImageId
	waitImage(t, e, e.Joe, source, "available")
	// Duplicate-name check packer runs before building.
	if ids := imageIDs(t, e, e.Joe, &oscv3.FiltersImage{ImageNames: &[]string{"packer-out"}, AccountIds: &[]string{e.Joe.AccountID}}); len(ids) != 0 {
		t.Fatalf("duplicate-name check found %v", ids)
	}

	vms, err := c.CreateVms(ctx, oscv3.CreateVmsRequest{ImageId: source, VmType: ptr("tinav5.c2r4p2")})
	if err != nil {
		t.Fatalf("CreateVms: %v", err)
	}
	if len(deref(vms.Vms)) != 1 {
		t.Fatalf("CreateVms returned %d VMs", len(deref(vms.Vms)))
	}
	vmID := deref(vms.Vms)[0].VmId
	vm := waitVm(t, c, vmID, "running")
	if vm.ImageId != source || len(vm.BlockDeviceMappings) != 1 || vm.RootDeviceName != "/dev/sda1" {
		t.Errorf("VM = image %s, %d mappings, root %s; want %s, 1, /dev/sda1", vm.ImageId, len(vm.BlockDeviceMappings), vm.RootDeviceName, source)
	}
	if _, err := c.StopVms(ctx, oscv3.StopVmsRequest{VmIds: []string{vmID}}); err != nil {
		t.Fatalf("StopVms: %v", err)
	}
	waitVm(t, c, vmID, "stopped")

	out, err := c.CreateImage(ctx, oscv3.CreateImageRequest{VmId: &vmID, ImageName: ptr("packer-out"), Description: ptr("built by packer"), NoReboot: ptr(true)})
	if err != nil {
		t.Fatalf("CreateImage from VM: %v", err)
	}
	imgID := out.Image.ImageId
	img := waitImage(t, e, e.Joe, imgID, "available")
	if img.StateComment == nil {
		t.Errorf("image has no StateComment object")
	}
	var snaps []string
	for _, m := range deref(img.BlockDeviceMappings) {
		if m.Bsu != nil && deref(m.Bsu.SnapshotId) != "" {
			snaps = append(snaps, deref(m.Bsu.SnapshotId))
		}
	}
	if len(snaps) != 1 {
		t.Fatalf("image from a one-volume VM maps %d snapshots, want 1", len(snaps))
	}
	for _, s := range snaps {
		waitSnapshot(t, e, e.Joe, s)
	}

	if _, err := c.UpdateImage(ctx, oscv3.UpdateImageRequest{ImageId: imgID, PermissionsToLaunch: &oscv3.PermissionsOnResourceCreation{
		Additions: &oscv3.PermissionsOnResource{AccountIds: &[]string{e.Titi.AccountID}}}}); err != nil {
		t.Fatalf("UpdateImage: %v", err)
	}
	if _, err := c.UpdateSnapshot(ctx, oscv3.UpdateSnapshotRequest{SnapshotId: snaps[0], PermissionsToCreateVolume: oscv3.PermissionsOnResourceCreation{
		Additions: &oscv3.PermissionsOnResource{AccountIds: &[]string{e.Titi.AccountID}}}}); err != nil {
		t.Fatalf("UpdateSnapshot: %v", err)
	}
	if _, err := c.CreateTags(ctx, oscv3.CreateTagsRequest{ResourceIds: append([]string{imgID}, snaps...),
		Tags: []oscv3.ResourceTag{{Key: "packer", Value: "yes"}}}); err != nil {
		t.Fatalf("CreateTags on image and snapshots: %v", err)
	}
	if _, err := c.DeleteVms(ctx, oscv3.DeleteVmsRequest{VmIds: []string{vmID}}); err != nil {
		t.Fatalf("DeleteVms: %v", err)
	}
	// The image outlives its VM and titi may launch it.
	if !has(imageIDs(t, e, e.Titi, &oscv3.FiltersImage{TagKeys: &[]string{"packer"}}), imgID) {
		t.Errorf("titi does not find the shared packer image by tag")
	}
	if _, err := e.V3(e.Titi).CreateVolume(ctx, oscv3.CreateVolumeRequest{SubregionName: "eu-west-2a", SnapshotId: &snaps[0]}); err != nil {
		t.Errorf("titi CreateVolume from the shared image snapshot: %v", err)
	}
}
