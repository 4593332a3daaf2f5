package e2e

import (
	"strings"
	"testing"

	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"

	"github.com/omiproject/omi/apitest"
)

// The whole call sequence of a packer-plugin-outscale `bsu` build
// (clients.md §6) with the v3 SDK packer uses, including the steps around
// the image that TestPackerBuildFlow leaves out: temporary keypair,
// temporary security group with an SSH rule, public IP, and their cleanup.
// The build ends with an available OMI whose snapshots are tagged and
// shared; the test asserts that end state from both accounts' views.
func TestPackerBsuBuildSequence(t *testing.T) {
	t.Parallel()
	e := apitest.Start(t)
	c := e.V3(e.Joe)
	ctx := t.Context()

	// A source OMI that the template selects with source_omi_filter
	// (name + owner, most recent).
	vol := newVolume(t, e, e.Joe, 4)
	src := registerImage(t, e, e.Joe, "packer-base-2026.01", newSnapshot(t, e, e.Joe, vol)).ImageId
	waitImage(t, e, e.Joe, src, "available")

	// Prevalidate: credentials, account, source image, name not taken.
	if _, err := c.ReadVms(ctx, oscv3.ReadVmsRequest{DryRun: ptr(true)}); err != nil {
		t.Fatalf("ReadVms DryRun: %v", err)
	}
	acc, err := c.ReadAccounts(ctx, oscv3.ReadAccountsRequest{})
	if err != nil || len(deref(acc.Accounts)) != 1 || deref(deref(acc.Accounts)[0].AccountId) != e.Joe.AccountID {
		t.Fatalf("ReadAccounts = %+v, %v; want joe's account", acc, err)
	}
	if ids := imageIDs(t, e, e.Joe, &oscv3.FiltersImage{ImageNames: &[]string{"packer-base-*"}, AccountIds: &[]string{e.Joe.AccountID},
		States: &[]oscv3.ImageState{"available"}}); len(ids) != 1 || ids[0] != src {
		t.Fatalf("source_omi_filter found %v, want [%s]", ids, src)
	}
	const outName = "packer-app-1"
	if ids := imageIDs(t, e, e.Joe, &oscv3.FiltersImage{ImageNames: &[]string{outName}, AccountIds: &[]string{e.Joe.AccountID}}); len(ids) != 0 {
		t.Fatalf("duplicate-name check found %v", ids)
	}
	if _, err := c.ReadNets(ctx, oscv3.ReadNetsRequest{}); err != nil {
		t.Fatalf("ReadNets: %v", err)
	}
	if _, err := c.ReadSubnets(ctx, oscv3.ReadSubnetsRequest{}); err != nil {
		t.Fatalf("ReadSubnets: %v", err)
	}
	if _, err := c.ReadSecurityGroups(ctx, oscv3.ReadSecurityGroupsRequest{}); err != nil {
		t.Fatalf("ReadSecurityGroups: %v", err)
	}

	// Temporary keypair (generated), public IP, security group with SSH.
	kpName := "packer_6791a3b2-temp"
	kp, err := c.CreateKeypair(ctx, oscv3.CreateKeypairRequest{KeypairName: kpName})
	if err != nil {
		t.Fatalf("CreateKeypair: %v", err)
	}
	if k := deref(kp.Keypair); !strings.Contains(deref(k.PrivateKey), "PRIVATE KEY") || deref(k.KeypairFingerprint) == "" {
		t.Errorf("generated keypair has no private key or fingerprint: %+v", k)
	}
	pip, err := c.CreatePublicIp(ctx, oscv3.CreatePublicIpRequest{})
	if err != nil || pip.PublicIp == nil {
		t.Fatalf("CreatePublicIp: %v", err)
	}
	ipID := pip.PublicIp.PublicIpId
	sg, err := c.CreateSecurityGroup(ctx, oscv3.CreateSecurityGroupRequest{SecurityGroupName: "packer_sg_6791a3b2", Description: "Temporary group for Packer"})
	if err != nil || sg.SecurityGroup == nil {
		t.Fatalf("CreateSecurityGroup: %v", err)
	}
	sgID := sg.SecurityGroup.SecurityGroupId
	rule, err := c.CreateSecurityGroupRule(ctx, oscv3.CreateSecurityGroupRuleRequest{SecurityGroupId: sgID, Flow: "Inbound",
		IpProtocol: ptr("tcp"), FromPortRange: ptr(22), ToPortRange: ptr(22), IpRange: ptr("0.0.0.0/0")})
	if err != nil {
		t.Fatalf("CreateSecurityGroupRule: %v", err)
	}
	if r := rule.SecurityGroup; r == nil || len(r.InboundRules) == 0 {
		t.Errorf("CreateSecurityGroupRule returned no inbound rule: %+v", r)
	}

	// Source VM, running, with the keypair and the group; public IP linked.
	vms, err := c.CreateVms(ctx, oscv3.CreateVmsRequest{ImageId: src, VmType: ptr("tinav5.c2r4p2"), KeypairName: &kpName,
		SecurityGroupIds: []string{sgID}, MinVmsCount: ptr(1), MaxVmsCount: ptr(1)})
	if err != nil || len(deref(vms.Vms)) != 1 {
		t.Fatalf("CreateVms: %v", err)
	}
	vmID := deref(vms.Vms)[0].VmId
	vm := waitVm(t, c, vmID, "running")
	if deref(vm.KeypairName) != kpName || len(vm.SecurityGroups) != 1 || vm.SecurityGroups[0].SecurityGroupId != sgID {
		t.Errorf("VM keypair %q groups %+v, want %s and %s", deref(vm.KeypairName), vm.SecurityGroups, kpName, sgID)
	}
	if _, err := c.LinkPublicIp(ctx, oscv3.LinkPublicIpRequest{PublicIpId: &ipID, VmId: &vmID}); err != nil {
		t.Fatalf("LinkPublicIp: %v", err)
	}
	if r, err := c.ReadPublicIps(ctx, oscv3.ReadPublicIpsRequest{Filters: &oscv3.FiltersPublicIp{PublicIpIds: &[]string{ipID}}}); err != nil ||
		len(deref(r.PublicIps)) != 1 || deref(deref(r.PublicIps)[0].VmId) != vmID || deref(deref(r.PublicIps)[0].LinkPublicIpId) == "" {
		t.Errorf("ReadPublicIps after LinkPublicIp = %+v (%v), want linked to %s", r, err, vmID)
	}
	// packer's SSH communicator takes the host from the VM's PublicIp.
	t.Run("ReadVms shows the linked public IP", func(t *testing.T) {
		if vm := waitVm(t, c, vmID, "running"); deref(vm.PublicIp) != pip.PublicIp.PublicIp {
			t.Errorf("VM public IP %q, want %q", deref(vm.PublicIp), pip.PublicIp.PublicIp)
		}
	})

	// Stop, image from the VM, wait available.
	if _, err := c.StopVms(ctx, oscv3.StopVmsRequest{VmIds: []string{vmID}}); err != nil {
		t.Fatalf("StopVms: %v", err)
	}
	waitVm(t, c, vmID, "stopped")
	out, err := c.CreateImage(ctx, oscv3.CreateImageRequest{VmId: &vmID, ImageName: ptr(outName), Description: ptr("built by packer")})
	if err != nil {
		t.Fatalf("CreateImage from VM: %v", err)
	}
	imgID := out.Image.ImageId
	img := tfWait(t, c, imgID, []string{"pending"}, []string{"available"})
	var snaps []string
	for _, m := range deref(img.BlockDeviceMappings) {
		if m.Bsu != nil && deref(m.Bsu.SnapshotId) != "" {
			snaps = append(snaps, deref(m.Bsu.SnapshotId))
		}
	}
	if len(snaps) != 1 {
		t.Fatalf("image from a one-volume VM maps %d snapshots, want 1", len(snaps))
	}

	// Share image and snapshots (omi_account_ids, snapshot_account_ids),
	// tag image (tags) and snapshots (snapshot_tags).
	if _, err := c.UpdateImage(ctx, oscv3.UpdateImageRequest{ImageId: imgID, PermissionsToLaunch: &oscv3.PermissionsOnResourceCreation{
		Additions: &oscv3.PermissionsOnResource{AccountIds: &[]string{e.Titi.AccountID}}}}); err != nil {
		t.Fatalf("UpdateImage: %v", err)
	}
	for _, s := range snaps {
		if _, err := c.UpdateSnapshot(ctx, oscv3.UpdateSnapshotRequest{SnapshotId: s, PermissionsToCreateVolume: oscv3.PermissionsOnResourceCreation{
			Additions: &oscv3.PermissionsOnResource{AccountIds: &[]string{e.Titi.AccountID}}}}); err != nil {
			t.Fatalf("UpdateSnapshot %s: %v", s, err)
		}
	}
	imageTags := []oscv3.ResourceTag{{Key: "Name", Value: outName}, {Key: "Built-By", Value: "packer"}}
	snapTags := []oscv3.ResourceTag{{Key: "packer-snapshot", Value: "app-1"}}
	if _, err := c.CreateTags(ctx, oscv3.CreateTagsRequest{ResourceIds: []string{imgID}, Tags: imageTags}); err != nil {
		t.Fatalf("CreateTags on the image: %v", err)
	}
	if _, err := c.CreateTags(ctx, oscv3.CreateTagsRequest{ResourceIds: snaps, Tags: snapTags}); err != nil {
		t.Fatalf("CreateTags on the snapshots: %v", err)
	}

	// Cleanup: VM (waited until gone), keypair, group, public IP.
	if _, err := c.DeleteVms(ctx, oscv3.DeleteVmsRequest{VmIds: []string{vmID}}); err != nil {
		t.Fatalf("DeleteVms: %v", err)
	}
	apitest.WaitFor(t, wait, "VM "+vmID+" terminated", func() (bool, error) {
		r, err := c.ReadVms(ctx, oscv3.ReadVmsRequest{Filters: &oscv3.FiltersVm{VmIds: &[]string{vmID}}})
		if err != nil {
			return false, err
		}
		return len(deref(r.Vms)) == 0 || deref(r.Vms)[0].State == "terminated", nil
	})
	if _, err := c.DeleteKeypair(ctx, oscv3.DeleteKeypairRequest{KeypairName: &kpName}); err != nil {
		t.Fatalf("DeleteKeypair: %v", err)
	}
	if _, err := c.DeleteSecurityGroup(ctx, oscv3.DeleteSecurityGroupRequest{SecurityGroupId: &sgID}); err != nil {
		t.Fatalf("DeleteSecurityGroup: %v", err)
	}
	if _, err := c.DeletePublicIp(ctx, oscv3.DeletePublicIpRequest{PublicIpId: &ipID}); err != nil {
		t.Fatalf("DeletePublicIp: %v", err)
	}

	// End state: the temporary resources are gone ...
	if r, err := c.ReadKeypairs(ctx, oscv3.ReadKeypairsRequest{Filters: &oscv3.FiltersKeypair{KeypairNames: &[]string{kpName}}}); err != nil || len(deref(r.Keypairs)) != 0 {
		t.Errorf("keypair %s still listed (%v)", kpName, err)
	}
	if r, err := c.ReadSecurityGroups(ctx, oscv3.ReadSecurityGroupsRequest{Filters: &oscv3.FiltersSecurityGroup{SecurityGroupIds: &[]string{sgID}}}); err != nil || len(deref(r.SecurityGroups)) != 0 {
		t.Errorf("security group %s still listed (%v)", sgID, err)
	}
	if r, err := c.ReadPublicIps(ctx, oscv3.ReadPublicIpsRequest{Filters: &oscv3.FiltersPublicIp{PublicIpIds: &[]string{ipID}}}); err != nil || len(deref(r.PublicIps)) != 0 {
		t.Errorf("public IP %s still listed (%v)", ipID, err)
	}
	// ... and the OMI is available, tagged, shared with titi, and so are
	// its snapshots.
	want := tfImage{Owner: e.Joe, Name: outName, Description: "built by packer", Tags: imageTags, SharedWith: []string{e.Titi.AccountID}}
	tfRead(t, e, want, imgID)
	if !has(imageIDs(t, e, e.Titi, &oscv3.FiltersImage{Tags: &[]string{"Built-By=packer"}}), imgID) {
		t.Errorf("titi does not find the shared OMI by its tag")
	}
	r, err := c.ReadSnapshots(ctx, oscv3.ReadSnapshotsRequest{Filters: &oscv3.FiltersSnapshot{SnapshotIds: &snaps}})
	if err != nil || len(deref(r.Snapshots)) != len(snaps) {
		t.Fatalf("ReadSnapshots of the OMI's snapshots: %v", err)
	}
	for _, s := range deref(r.Snapshots) {
		if s.State != "completed" {
			t.Errorf("snapshot %s is %s, want completed", s.SnapshotId, s.State)
		}
		if tagMap(deref(s.Tags))["packer-snapshot"] != "app-1" {
			t.Errorf("snapshot %s tags %v, want packer-snapshot=app-1", s.SnapshotId, tagMap(deref(s.Tags)))
		}
		if p := deref(s.PermissionsToCreateVolume); !has(deref(p.AccountIds), e.Titi.AccountID) || deref(p.GlobalPermission) {
			t.Errorf("snapshot %s permissions %+v, want shared with titi only", s.SnapshotId, p)
		}
	}
	// titi sees the shared snapshots and can build a volume from one.
	tr, err := e.V3(e.Titi).ReadSnapshots(ctx, oscv3.ReadSnapshotsRequest{Filters: &oscv3.FiltersSnapshot{SnapshotIds: &snaps}})
	if err != nil || len(deref(tr.Snapshots)) != len(snaps) {
		t.Errorf("titi reads %d of the %d shared snapshots (%v)", len(deref(tr.Snapshots)), len(snaps), err)
	}
	if _, err := e.V3(e.Titi).CreateVolume(ctx, oscv3.CreateVolumeRequest{SubregionName: apitest.Region + "a", SnapshotId: &snaps[0]}); err != nil {
		t.Errorf("titi CreateVolume from the shared snapshot: %v", err)
	}
	// The marketplace account was given nothing.
	if has(imageIDs(t, e, e.Marketplace, &oscv3.FiltersImage{ImageIds: &[]string{imgID}}), imgID) {
		t.Errorf("marketplace sees an OMI shared with titi only")
	}
}
