package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/service"
	"github.com/omiproject/omi/sqlite"
)

// env is a service over a real SQLite store with two accounts.
type env struct {
	t        *testing.T
	svc      *service.Service
	joe, bob *omi.Caller
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "omi.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	svc := service.New(store, service.Config{Region: "eu-west-2"}, nil)
	joe := service.AccountSpec{AccountID: "123456789012", Alias: "joe", Email: "joe@example.com", Password: "pw-joe-123"}
	bob := service.AccountSpec{AccountID: "210987654321", Alias: "bob", Email: "bob@example.com", Password: "pw-bob-123"}
	if err := svc.Provision(ctx, []service.AccountSpec{joe, bob}); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, svc: svc,
		joe: &omi.Caller{Account: &omi.Account{AccountId: joe.AccountID, Alias: "joe"}},
		bob: &omi.Caller{Account: &omi.Account{AccountId: bob.AccountID, Alias: "bob"}}}
}

func (e *env) settle() {
	e.t.Helper()
	if err := e.svc.Settle(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

// code returns the OUTSCALE code of err, or "" for nil.
func code(err error) string {
	if err == nil {
		return ""
	}
	var e *omi.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return "not an *omi.Error: " + err.Error()
}

func ptr[T any](v T) *T { return &v }

// image registers an OMI owned by c over a fresh 2 GiB volume's snapshot.
func (e *env) image(c *omi.Caller, name string, codes ...string) *omi.Image {
	e.t.Helper()
	ctx := context.Background()
	vol, err := e.svc.CreateVolume(ctx, c, &service.CreateVolumeRequest{Size: ptr(2), SubregionName: "eu-west-2a"})
	if err != nil {
		e.t.Fatal(err)
	}
	e.settle()
	snap, err := e.svc.CreateSnapshot(ctx, c, &service.CreateSnapshotRequest{VolumeId: vol.Volume.VolumeId})
	if err != nil {
		e.t.Fatal(err)
	}
	e.settle()
	img, err := e.svc.CreateImage(ctx, c, &service.CreateImageRequest{ImageName: name, RootDeviceName: "/dev/sda1", ProductCodes: codes,
		BlockDeviceMappings: []omi.ImageBDM{{DeviceName: "/dev/sda1", Bsu: &omi.BsuImage{SnapshotId: snap.Snapshot.SnapshotId}}}})
	if err != nil {
		e.t.Fatal(err)
	}
	if img.Image.State != omi.ImageAvailable {
		e.t.Fatalf("registered image is %s", img.Image.State)
	}
	return img.Image
}

func (e *env) vm(c *omi.Caller, id string) *omi.Vm {
	e.t.Helper()
	out, err := e.svc.ReadVms(context.Background(), c, &service.ReadVmsRequest{Filters: &service.FiltersVm{VmIds: []string{id}}})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(out.Vms) != 1 {
		e.t.Fatalf("ReadVms %s: %d VMs", id, len(out.Vms))
	}
	return out.Vms[0]
}

func (e *env) volume(c *omi.Caller, id string) (*omi.Volume, bool) {
	e.t.Helper()
	out, err := e.svc.ReadVolumes(context.Background(), c, &service.ReadVolumesRequest{Filters: &service.FiltersVolume{VolumeIds: []string{id}}})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(out.Volumes) == 0 {
		return nil, false
	}
	return out.Volumes[0], true
}

func TestCreateVmsFromImage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	img := e.image(e.joe, "base-image")
	out, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId, VmType: "tinav5.c2r4p2",
		MinVmsCount: ptr(2), MaxVmsCount: ptr(2),
		BlockDeviceMappings: []service.BDMVmCreation{
			{DeviceName: "/dev/sda1", Bsu: &omi.BsuImage{VolumeSize: ptr(10)}},
			{DeviceName: "/dev/sdb", Bsu: &omi.BsuImage{VolumeSize: ptr(5), VolumeType: "gp2", DeleteOnVmDeletion: ptr(false)}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Vms) != 2 || out.Vms[0].State != omi.VmPending {
		t.Fatalf("CreateVms: %+v", out.Vms)
	}
	e.settle()
	vm := e.vm(e.joe, out.Vms[0].VmId)
	if vm.State != omi.VmRunning || len(vm.BlockDeviceMappings) != 2 {
		t.Fatalf("VM after settle: state %s, %d volumes", vm.State, len(vm.BlockDeviceMappings))
	}
	root, _ := e.volume(e.joe, vm.BlockDeviceMappings[0].Bsu.VolumeId)
	data, _ := e.volume(e.joe, vm.BlockDeviceMappings[1].Bsu.VolumeId)
	if root.Size != 10 || root.State != omi.VolumeInUse || root.SnapshotId != img.BlockDeviceMappings[0].Bsu.SnapshotId {
		t.Errorf("root volume: %+v", root)
	}
	if data.Size != 5 || data.VolumeType != "gp2" || data.SnapshotId != "" || data.LinkedVolumes[0].VmId != vm.VmId {
		t.Errorf("data volume: %+v", data)
	}
	// bob sees neither the VM nor can he start one from joe's unshared OMI.
	if got, _ := e.svc.ReadVms(ctx, e.bob, &service.ReadVmsRequest{}); len(got.Vms) != 0 {
		t.Errorf("bob sees %d of joe's VMs", len(got.Vms))
	}
	if _, err := e.svc.CreateVms(ctx, e.bob, &service.CreateVmsRequest{ImageId: img.ImageId}); code(err) != omi.CodeNoSuchImage {
		t.Errorf("bob CreateVms from joe's image: %v", err)
	}
	if _, err := e.svc.StopVms(ctx, e.bob, &service.VmIdsRequest{VmIds: []string{vm.VmId}}); code(err) != omi.CodeNoSuchVm {
		t.Errorf("bob StopVms: %v", err)
	}

	// Delete: the root (DeleteOnVmDeletion true by default) goes, the data volume stays, detached.
	del, err := e.svc.DeleteVms(ctx, e.joe, &service.VmIdsRequest{VmIds: []string{vm.VmId}})
	if err != nil || del.Vms[0].CurrentState != omi.VmShuttingDown || del.Vms[0].PreviousState != omi.VmRunning {
		t.Fatalf("DeleteVms: %+v %v", del, err)
	}
	e.settle()
	if got := e.vm(e.joe, vm.VmId); got.State != omi.VmTerminated {
		t.Errorf("deleted VM is %s", got.State)
	}
	if _, ok := e.volume(e.joe, root.VolumeId); ok {
		t.Error("root volume survived its VM")
	}
	if v, ok := e.volume(e.joe, data.VolumeId); !ok || v.State != omi.VolumeAvailable || len(v.LinkedVolumes) != 0 {
		t.Errorf("data volume after VM deletion: %+v", v)
	}
	// Deleting again is idempotent.
	if _, err := e.svc.DeleteVms(ctx, e.joe, &service.VmIdsRequest{VmIds: []string{vm.VmId}}); err != nil {
		t.Errorf("second DeleteVms: %v", err)
	}
}

func TestVmRulesAndStates(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	win := e.image(e.joe, "windows-image", "0002")
	// The Windows rule: below generation 3, 2 vCores or 4 GiB is refused.
	for _, vt := range []string{"tinav5.c1r4p2", "tinav5.c2r2p2", "t2.small"} {
		if _, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: win.ImageId, VmType: vt}); code(err) != omi.CodeInvalidValue {
			t.Errorf("Windows VM of type %s: %v", vt, err)
		}
	}
	if _, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: win.ImageId, VmType: "tinav1.c2r4p2"}); code(err) != omi.CodeNoSuchVmType {
		t.Errorf("generation 1: %v", err)
	}
	out, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: win.ImageId, VmType: "tinav3.c2r4p1", DeletionProtection: true})
	if err != nil {
		t.Fatal(err)
	}
	id := out.Vms[0].VmId
	if got := out.Vms[0].ProductCodes; len(got) != 1 || got[0] != "0002" {
		t.Errorf("VM product codes %v", got)
	}
	e.settle()
	if _, err := e.svc.DeleteVms(ctx, e.joe, &service.VmIdsRequest{VmIds: []string{id}}); code(err) != omi.CodeInvalidState {
		t.Errorf("DeleteVms with DeletionProtection: %v", err)
	}
	// VmType changes only while stopped, and the Windows rule applies.
	if _, err := e.svc.UpdateVm(ctx, e.joe, &service.UpdateVmRequest{VmId: id, VmType: "tinav3.c4r8p1"}); code(err) != omi.CodeInvalidVmState {
		t.Errorf("UpdateVm VmType while running: %v", err)
	}
	if _, err := e.svc.StopVms(ctx, e.joe, &service.VmIdsRequest{VmIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	if got := e.vm(e.joe, id); got.State != omi.VmStopping {
		t.Errorf("after StopVms: %s", got.State)
	}
	e.settle()
	if got := e.vm(e.joe, id); got.State != omi.VmStopped {
		t.Errorf("after settle: %s", got.State)
	}
	if _, err := e.svc.UpdateVm(ctx, e.joe, &service.UpdateVmRequest{VmId: id, VmType: "tinav3.c1r8p1"}); code(err) != omi.CodeInvalidValue {
		t.Errorf("UpdateVm to a type too small for Windows: %v", err)
	}
	up, err := e.svc.UpdateVm(ctx, e.joe, &service.UpdateVmRequest{VmId: id, VmType: "tinav4.c4r8p1", DeletionProtection: ptr(false)})
	if err != nil || up.Vm.VmType != "tinav4.c4r8p1" || up.Vm.DeletionProtection {
		t.Fatalf("UpdateVm: %+v %v", up, err)
	}
	if _, err := e.svc.StartVms(ctx, e.joe, &service.VmIdsRequest{VmIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	if got := e.vm(e.joe, id); got.State != omi.VmRunning {
		t.Errorf("after StartVms: %s", got.State)
	}
	if _, err := e.svc.DeleteVms(ctx, e.joe, &service.VmIdsRequest{VmIds: []string{id}}); err != nil {
		t.Errorf("DeleteVms after protection removed: %v", err)
	}
}

func TestCreateImageFromVm(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	base := e.image(e.joe, "base-image", "0001")
	out, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: base.ImageId})
	if err != nil {
		t.Fatal(err)
	}
	e.settle()
	vmID := out.Vms[0].VmId
	// Attach an extra volume, which the image must include.
	vol, err := e.svc.CreateVolume(ctx, e.joe, &service.CreateVolumeRequest{Size: ptr(4), VolumeType: "io1", Iops: ptr(200), SubregionName: "eu-west-2a"})
	if err != nil {
		t.Fatal(err)
	}
	e.settle()
	if _, err := e.svc.LinkVolume(ctx, e.joe, &service.LinkVolumeRequest{VmId: vmID, VolumeId: vol.Volume.VolumeId, DeviceName: "/dev/sda1"}); code(err) != omi.CodeInvalidDeviceName {
		t.Errorf("LinkVolume on the root device: %v", err)
	}
	if _, err := e.svc.LinkVolume(ctx, e.joe, &service.LinkVolumeRequest{VmId: vmID, VolumeId: vol.Volume.VolumeId, DeviceName: "/dev/sdc"}); err != nil {
		t.Fatal(err)
	}

	// With reboot: the VM stops for the snapshots, then runs again.
	img, err := e.svc.CreateImage(ctx, e.joe, &service.CreateImageRequest{VmId: vmID, ImageName: "from-vm"})
	if err != nil {
		t.Fatal(err)
	}
	if img.Image.State != omi.ImagePending || len(img.Image.BlockDeviceMappings) != 2 {
		t.Fatalf("CreateImage from VM: %+v", img.Image)
	}
	if got := e.vm(e.joe, vmID); got.State != omi.VmStopping {
		t.Errorf("VM during imaging: %s", got.State)
	}
	bdm := img.Image.BlockDeviceMappings[1]
	if bdm.DeviceName != "/dev/sdc" || *bdm.Bsu.VolumeSize != 4 || bdm.Bsu.VolumeType != "io1" || *bdm.Bsu.Iops != 200 || *bdm.Bsu.DeleteOnVmDeletion {
		t.Errorf("extra mapping: %+v %+v", bdm, *bdm.Bsu)
	}
	if got := img.Image.ProductCodes; len(got) != 1 || got[0] != "0001" {
		t.Errorf("product codes %v", got)
	}
	e.settle()
	if got := e.vm(e.joe, vmID); got.State != omi.VmRunning {
		t.Errorf("VM after imaging: %s", got.State)
	}
	imgs, err := e.svc.ReadImages(ctx, e.joe, &service.ReadImagesRequest{Filters: &service.FiltersImage{ImageIds: []string{img.Image.ImageId}}})
	if err != nil || len(imgs.Images) != 1 || imgs.Images[0].State != omi.ImageAvailable {
		t.Fatalf("image after settle: %+v %v", imgs, err)
	}

	// NoReboot: the VM stays running throughout.
	img2, err := e.svc.CreateImage(ctx, e.joe, &service.CreateImageRequest{VmId: vmID, ImageName: "from-vm-noreboot", NoReboot: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.vm(e.joe, vmID); got.State != omi.VmRunning {
		t.Errorf("VM during NoReboot imaging: %s", got.State)
	}
	e.settle()
	// A VM started from the new image gets both volumes.
	out2, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img2.Image.ImageId})
	if err != nil {
		t.Fatal(err)
	}
	e.settle()
	if got := e.vm(e.joe, out2.Vms[0].VmId); len(got.BlockDeviceMappings) != 2 || got.State != omi.VmRunning {
		t.Errorf("VM from imaged OMI: %+v", got)
	}
	// The snapshots of an image cannot be deleted while it exists.
	snapID := img2.Image.BlockDeviceMappings[0].Bsu.SnapshotId
	if _, err := e.svc.DeleteSnapshot(ctx, e.joe, &service.DeleteSnapshotRequest{SnapshotId: snapID}); code(err) != omi.CodeDeviceInUse {
		t.Errorf("DeleteSnapshot of an image's snapshot: %v", err)
	}
	if _, err := e.svc.CreateImage(ctx, e.bob, &service.CreateImageRequest{VmId: vmID, ImageName: "stolen"}); code(err) != omi.CodeNoSuchVm {
		t.Errorf("bob images joe's VM: %v", err)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	e := newEnv(t)
	ctx := omi.WithDryRun(context.Background())
	if _, err := e.svc.CreateVolume(ctx, e.joe, &service.CreateVolumeRequest{Size: ptr(1), SubregionName: "eu-west-2a"}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	out, err := e.svc.ReadVolumes(context.Background(), e.joe, &service.ReadVolumesRequest{})
	if err != nil || len(out.Volumes) != 0 {
		t.Fatalf("dry run created %d volumes (%v)", len(out.Volumes), err)
	}
	// A dry run still checks parameters.
	if _, err := e.svc.CreateVolume(ctx, e.joe, &service.CreateVolumeRequest{Size: ptr(0), SubregionName: "eu-west-2a"}); code(err) != omi.CodeInvalidVolumeSize {
		t.Errorf("dry run with a bad size: %v", err)
	}
}

func TestCreateVmsChecksKeypair(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	img := e.image(e.joe, "kp-image")
	if _, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId, KeypairName: "nope"}); code(err) != "5071" {
		t.Fatalf("CreateVms with an unknown keypair: %v", err)
	}
	if _, err := e.svc.CreateKeypair(ctx, e.bob, &service.CreateKeypairRequest{KeypairName: "bobs-key"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId, KeypairName: "bobs-key"}); code(err) != "5071" {
		t.Fatalf("CreateVms with another account's keypair: %v", err)
	}
	if _, err := e.svc.CreateKeypair(ctx, e.joe, &service.CreateKeypairRequest{KeypairName: "joes-key"}); err != nil {
		t.Fatal(err)
	}
	out, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId, KeypairName: "joes-key"})
	if err != nil || out.Vms[0].KeypairName != "joes-key" {
		t.Fatalf("CreateVms with own keypair: %v", err)
	}
}

func TestTagsOnEveryTaggableKind(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	img := e.image(e.joe, "tagged-image")
	kp, err := e.svc.CreateKeypair(ctx, e.joe, &service.CreateKeypairRequest{KeypairName: "tagged-key"})
	if err != nil {
		t.Fatal(err)
	}
	sg, err := e.svc.CreateSecurityGroup(ctx, e.joe, &service.CreateSecurityGroupRequest{SecurityGroupName: "tagged-sg", Description: "d"})
	if err != nil {
		t.Fatal(err)
	}
	ip, err := e.svc.CreatePublicIp(ctx, e.joe, &service.CreatePublicIpRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{img.ImageId, kp.Keypair.KeypairId, sg.SecurityGroup.SecurityGroupId, ip.PublicIp.PublicIpId}
	if _, err := e.svc.CreateTags(ctx, e.joe, &service.CreateTagsRequest{ResourceIds: ids, Tags: []omi.Tag{{Key: "env", Value: "prod"}}}); err != nil {
		t.Fatal(err)
	}
	got, err := e.svc.ReadTags(ctx, e.joe, &service.ReadTagsRequest{Filters: &service.FiltersTag{Keys: []string{"env"}}})
	if err != nil || len(got.Tags) != len(ids) {
		t.Fatalf("ReadTags: %+v %v", got, err)
	}
	// bob cannot tag joe's resources; the answer is the kind's not-found.
	if _, err := e.svc.CreateTags(ctx, e.bob, &service.CreateTagsRequest{ResourceIds: ids[1:2], Tags: []omi.Tag{{Key: "x", Value: "y"}}}); code(err) != "5071" {
		t.Errorf("bob tags joe's keypair: %v", err)
	}
}

func TestMarketplaceProductCodes(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "omi.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	seller := service.AccountSpec{AccountID: "555566667777", Alias: "seller", Email: "s@example.com"}
	buyer := service.AccountSpec{AccountID: "123456789012", Alias: "buyer", Email: "b@example.com"}
	svc := service.New(store, service.Config{Region: "eu-west-2", Marketplace: []service.MarketplaceProduct{
		{ProductTypeId: "0100", Description: "Appliance", Vendor: "V", SellerAccountId: seller.AccountID}}}, nil)
	if err := svc.Provision(ctx, []service.AccountSpec{seller, buyer}); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, svc: svc, joe: &omi.Caller{Account: &omi.Account{AccountId: seller.AccountID}},
		bob: &omi.Caller{Account: &omi.Account{AccountId: buyer.AccountID}}}
	types, err := svc.ReadProductTypes(ctx, nil, &service.ReadProductTypesRequest{})
	if err != nil || !slicesContainsFunc(types.ProductTypes, func(p service.ProductType) bool { return p.ProductTypeId == "0100" }) {
		t.Fatalf("ReadProductTypes does not list the marketplace product: %+v %v", types, err)
	}
	img := e.image(e.joe, "appliance-1", "0100")
	// Only the seller may use its code.
	vol, _ := svc.CreateVolume(ctx, e.bob, &service.CreateVolumeRequest{Size: ptr(1), SubregionName: "eu-west-2a"})
	e.settle()
	snap, _ := svc.CreateSnapshot(ctx, e.bob, &service.CreateSnapshotRequest{VolumeId: vol.Volume.VolumeId})
	e.settle()
	if _, err := svc.CreateImage(ctx, e.bob, &service.CreateImageRequest{ImageName: "fake-appliance", RootDeviceName: "/dev/sda1", ProductCodes: []string{"0100"},
		BlockDeviceMappings: []omi.ImageBDM{{DeviceName: "/dev/sda1", Bsu: &omi.BsuImage{SnapshotId: snap.Snapshot.SnapshotId}}}}); code(err) != omi.CodeInvalidValue {
		t.Errorf("buyer registering with the seller's code: %v", err)
	}
	// The seller publishes; the buyer copies it and starts a VM: the code follows.
	if _, err := svc.UpdateImage(ctx, e.joe, &service.UpdateImageRequest{ImageId: img.ImageId,
		PermissionsToLaunch: &omi.PermissionsChange{Additions: &omi.Permissions{GlobalPermission: true}}}); err != nil {
		t.Fatal(err)
	}
	cp, err := svc.CreateImage(ctx, e.bob, &service.CreateImageRequest{SourceImageId: img.ImageId, SourceRegionName: "eu-west-2", ImageName: "my-appliance"})
	if err != nil || len(cp.Image.ProductCodes) != 1 || cp.Image.ProductCodes[0] != "0100" {
		t.Fatalf("copy: %+v %v", cp, err)
	}
	e.settle()
	vms, err := svc.CreateVms(ctx, e.bob, &service.CreateVmsRequest{ImageId: cp.Image.ImageId})
	if err != nil || len(vms.Vms[0].ProductCodes) != 1 || vms.Vms[0].ProductCodes[0] != "0100" {
		t.Fatalf("VM product codes: %+v %v", vms, err)
	}
	// UpdateImage replaces the list; the buyer cannot put the code back once removed.
	up, err := svc.UpdateImage(ctx, e.bob, &service.UpdateImageRequest{ImageId: cp.Image.ImageId, ProductCodes: &[]string{"0001"}})
	if err != nil || len(up.Image.ProductCodes) != 1 || up.Image.ProductCodes[0] != "0001" {
		t.Fatalf("UpdateImage ProductCodes: %+v %v", up, err)
	}
	if _, err := svc.UpdateImage(ctx, e.bob, &service.UpdateImageRequest{ImageId: cp.Image.ImageId, ProductCodes: &[]string{"0100"}}); code(err) != omi.CodeInvalidValue {
		t.Errorf("buyer setting the seller's code: %v", err)
	}
}

func slicesContainsFunc[T any](s []T, f func(T) bool) bool {
	for _, v := range s {
		if f(v) {
			return true
		}
	}
	return false
}

func TestVmNetworkAndStrictFilters(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	img := e.image(e.joe, "net-image")
	sg, err := e.svc.CreateSecurityGroup(ctx, e.joe, &service.CreateSecurityGroupRequest{SecurityGroupName: "web", Description: "web"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId, SecurityGroupIds: []string{sg.SecurityGroup.SecurityGroupId}})
	if err != nil || len(out.Vms[0].SecurityGroups) != 1 || out.Vms[0].SecurityGroups[0].SecurityGroupName != "web" {
		t.Fatalf("CreateVms with a security group: %+v %v", out, err)
	}
	plain, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId})
	if err != nil || len(plain.Vms[0].SecurityGroups) != 1 || plain.Vms[0].SecurityGroups[0].SecurityGroupName != "default" {
		t.Fatalf("CreateVms without groups gets the default group: %+v %v", plain.Vms[0].SecurityGroups, err)
	}
	if _, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId, SubnetId: "subnet-00000000"}); code(err) != "5057" {
		t.Errorf("unknown subnet: %v", err)
	}
	if _, err := e.svc.CreateVms(ctx, e.bob, &service.CreateVmsRequest{ImageId: img.ImageId, SecurityGroupIds: []string{sg.SecurityGroup.SecurityGroupId}}); err == nil {
		t.Error("bob used joe's security group")
	}
	read := func(filters string) ([]*omi.Vm, error) {
		var req service.ReadVmsRequest
		if err := json.Unmarshal([]byte(`{"Filters":`+filters+`}`), &req); err != nil {
			return nil, err
		}
		got, err := e.svc.ReadVms(ctx, e.joe, &req)
		if err != nil {
			return nil, err
		}
		return got.Vms, nil
	}
	if vms, err := read(`{"SecurityGroupNames":["web"]}`); err != nil || len(vms) != 1 {
		t.Errorf("SecurityGroupNames filter: %d VMs, %v", len(vms), err)
	}
	if vms, err := read(`{"NicNicIds":["eni-12345678"]}`); err != nil || len(vms) != 0 {
		t.Errorf("a filter on an unknown NIC matched %d VMs, %v", len(vms), err)
	}
	if _, err := read(`{"NicNicIds":{"x":1}}`); err == nil {
		t.Error("a wrong-typed filter was accepted")
	}
	if vms, err := read(`{"NicNicIds":[]}`); err != nil || len(vms) != 2 {
		t.Errorf("an empty filter list constrains nothing: %d VMs, %v", len(vms), err)
	}
}
