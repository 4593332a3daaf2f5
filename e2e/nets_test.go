package e2e

import (
	"slices"
	"testing"

	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"

	"github.com/omiproject/omi/apitest"
)

// TestNetWithVm builds, through the v3 SDK that terraform uses, what a
// typical configuration puts in a Net: a subnet, a security group with a
// rule, a VM in the subnet with its primary NIC, a second NIC linked to it
// and a public IP on the primary NIC; reads it all back as the provider
// does, checks that another account sees none of it, and tears it down in
// the order terraform destroys, with the refusals on the way.
func TestNetWithVm(t *testing.T) {
	e := apitest.Start(t)
	joe, titi := e.V3(e.Joe), e.V3(e.Titi)
	ctx := t.Context()
	netID, subnetID := gwNet(t, e, e.Joe, "10.0.0.0/16", "10.0.1.0/24")

	sg, err := joe.CreateSecurityGroup(ctx, oscv3.CreateSecurityGroupRequest{SecurityGroupName: "web", Description: "web", NetId: &netID})
	if err != nil {
		t.Fatalf("CreateSecurityGroup: %v", err)
	}
	sgID := sg.SecurityGroup.SecurityGroupId
	if len(sg.SecurityGroup.OutboundRules) != 1 {
		t.Errorf("a group in a Net starts with the outbound allow-all rule: %+v", sg.SecurityGroup.OutboundRules)
	}
	if _, err := joe.CreateSecurityGroupRule(ctx, oscv3.CreateSecurityGroupRuleRequest{SecurityGroupId: sgID, Flow: "Inbound",
		IpProtocol: ptr("tcp"), FromPortRange: ptr(22), ToPortRange: ptr(22), IpRange: ptr("0.0.0.0/0")}); err != nil {
		t.Fatalf("CreateSecurityGroupRule: %v", err)
	}
	vol := newVolume(t, e, e.Joe, 10)
	img := registerImage(t, e, e.Joe, "net-image", newSnapshot(t, e, e.Joe, vol)).ImageId
	waitImage(t, e, e.Joe, img, "available")
	vms, err := joe.CreateVms(ctx, oscv3.CreateVmsRequest{ImageId: img, SubnetId: &subnetID, SecurityGroupIds: []string{sgID}})
	if err != nil {
		t.Fatalf("CreateVms in a subnet: %v", err)
	}
	vm := (*vms.Vms)[0]
	if len(vm.Nics) != 1 || deref(vm.NetId) != netID || deref(vm.SubnetId) != subnetID {
		t.Fatalf("VM in a subnet: %+v", vm)
	}
	primary := vm.Nics[0]
	if primary.LinkNic.DeviceNumber != 0 || primary.MacAddress == "" || len(primary.PrivateIps) != 1 || primary.PrivateIps[0].PrivateIp != vm.PrivateIp {
		t.Errorf("primary NIC %+v", primary)
	}
	// A second NIC, linked on device 1.
	nic, err := joe.CreateNic(ctx, oscv3.CreateNicRequest{SubnetId: subnetID, SecurityGroupIds: &[]string{sgID}})
	if err != nil {
		t.Fatalf("CreateNic: %v", err)
	}
	nicID := nic.Nic.NicId
	link, err := joe.LinkNic(ctx, oscv3.LinkNicRequest{NicId: nicID, VmId: vm.VmId, DeviceNumber: 1})
	if err != nil {
		t.Fatalf("LinkNic: %v", err)
	}
	ip, err := joe.CreatePublicIp(ctx, oscv3.CreatePublicIpRequest{})
	if err != nil {
		t.Fatalf("CreatePublicIp: %v", err)
	}
	if _, err := joe.LinkPublicIp(ctx, oscv3.LinkPublicIpRequest{PublicIpId: &ip.PublicIp.PublicIpId, NicId: &primary.NicId}); err != nil {
		t.Fatalf("LinkPublicIp to a NIC: %v", err)
	}

	// Read back as the provider does.
	rv, err := joe.ReadVms(ctx, oscv3.ReadVmsRequest{Filters: &oscv3.FiltersVm{VmIds: &[]string{vm.VmId}}})
	if err != nil || len(deref(rv.Vms)) != 1 {
		t.Fatalf("ReadVms: %v %+v", err, rv)
	}
	got := (*rv.Vms)[0]
	if len(got.Nics) != 2 || deref(got.PublicIp) != ip.PublicIp.PublicIp || got.Nics[1].NicId != nicID {
		t.Errorf("VM read back: nics %+v public IP %q", got.Nics, deref(got.PublicIp))
	}
	nics, err := joe.ReadNics(ctx, oscv3.ReadNicsRequest{Filters: &oscv3.FiltersNic{LinkNicVmIds: &[]string{vm.VmId}}})
	if err != nil || len(deref(nics.Nics)) != 2 {
		t.Fatalf("ReadNics by VM: %v %+v", err, nics)
	}
	// terraform's destroy of a security group reads the NICs in it.
	bySG, err := joe.ReadNics(ctx, oscv3.ReadNicsRequest{Filters: &oscv3.FiltersNic{SecurityGroupIds: &[]string{sgID}}})
	if err != nil || len(deref(bySG.Nics)) != 2 {
		t.Errorf("ReadNics by security group: %v %+v", err, bySG)
	}
	ips, err := joe.ReadPublicIps(ctx, oscv3.ReadPublicIpsRequest{Filters: &oscv3.FiltersPublicIp{PublicIpIds: &[]string{ip.PublicIp.PublicIpId}}})
	if err != nil || len(deref(ips.PublicIps)) != 1 {
		t.Fatalf("ReadPublicIps: %v %+v", err, ips)
	}
	if p := (*ips.PublicIps)[0]; deref(p.NicId) != primary.NicId || deref(p.VmId) != vm.VmId || deref(p.PrivateIp) != vm.PrivateIp || deref(p.NicAccountId) != e.Joe.AccountID {
		t.Errorf("public IP on a NIC: %+v", p)
	}
	quotas, err := joe.ReadQuotas(ctx, oscv3.ReadQuotasRequest{Filters: &oscv3.FiltersQuota{QuotaNames: &[]string{"vpc_limit"}}})
	if err != nil || len(deref(quotas.QuotaTypes)) != 1 || len(deref((*quotas.QuotaTypes)[0].Quotas)) != 1 || deref((*(*quotas.QuotaTypes)[0].Quotas)[0].UsedValue) != 1 {
		t.Errorf("ReadQuotas vpc_limit: %v %+v", err, quotas)
	}

	// Titi sees none of it and can change none of it.
	tn, err := titi.ReadNics(ctx, oscv3.ReadNicsRequest{Filters: &oscv3.FiltersNic{NicIds: &[]string{nicID, primary.NicId}}})
	if err != nil || len(deref(tn.Nics)) != 0 {
		t.Errorf("titi reads joe's NICs: %v %+v", err, tn)
	}
	tnets, err := titi.ReadNets(ctx, oscv3.ReadNetsRequest{Filters: &oscv3.FiltersNet{NetIds: &[]string{netID}}})
	if err != nil || len(deref(tnets.Nets)) != 0 {
		t.Errorf("titi reads joe's Net: %v %+v", err, tnets)
	}
	if _, err := titi.DeleteNic(ctx, oscv3.DeleteNicRequest{NicId: nicID}); !slices.Contains(apitest.ErrorCodes(err), "5036") {
		t.Errorf("titi deletes joe's NIC: %v", err)
	}
	if _, err := titi.CreateNic(ctx, oscv3.CreateNicRequest{SubnetId: subnetID}); !slices.Contains(apitest.ErrorCodes(err), "5057") {
		t.Errorf("titi makes a NIC in joe's subnet: %v", err)
	}

	// Refusals while something depends on the resource.
	for _, c := range []struct {
		what string
		call func() error
		code string
	}{
		{"DeleteSecurityGroup in use", func() error {
			_, err := joe.DeleteSecurityGroup(ctx, oscv3.DeleteSecurityGroupRequest{SecurityGroupId: &sgID})
			return err
		}, "9085"},
		{"DeleteSubnet with NICs", func() error {
			_, err := joe.DeleteSubnet(ctx, oscv3.DeleteSubnetRequest{SubnetId: subnetID})
			return err
		}, "9095"},
		{"DeleteNet with a subnet", func() error {
			_, err := joe.DeleteNet(ctx, oscv3.DeleteNetRequest{NetId: netID})
			return err
		}, "9066"},
		{"DeleteNic of a linked NIC", func() error {
			_, err := joe.DeleteNic(ctx, oscv3.DeleteNicRequest{NicId: nicID})
			return err
		}, "9004"},
		{"CreateSubnet overlapping", func() error {
			_, err := joe.CreateSubnet(ctx, oscv3.CreateSubnetRequest{NetId: netID, IpRange: "10.0.1.128/25"})
			return err
		}, "9058"},
	} {
		if err := c.call(); !slices.Contains(apitest.ErrorCodes(err), c.code) {
			t.Errorf("%s: %v, want %s", c.what, err, c.code)
		}
	}

	// Teardown in terraform's order.
	if _, err := joe.UnlinkPublicIp(ctx, oscv3.UnlinkPublicIpRequest{PublicIp: &ip.PublicIp.PublicIp}); err != nil {
		t.Fatalf("UnlinkPublicIp: %v", err)
	}
	if _, err := joe.DeletePublicIp(ctx, oscv3.DeletePublicIpRequest{PublicIpId: &ip.PublicIp.PublicIpId}); err != nil {
		t.Fatalf("DeletePublicIp: %v", err)
	}
	if _, err := joe.UnlinkNic(ctx, oscv3.UnlinkNicRequest{LinkNicId: deref(link.LinkNicId)}); err != nil {
		t.Fatalf("UnlinkNic: %v", err)
	}
	if _, err := joe.DeleteNic(ctx, oscv3.DeleteNicRequest{NicId: nicID}); err != nil {
		t.Fatalf("DeleteNic: %v", err)
	}
	if _, err := joe.DeleteVms(ctx, oscv3.DeleteVmsRequest{VmIds: []string{vm.VmId}}); err != nil {
		t.Fatalf("DeleteVms: %v", err)
	}
	// terraform waits for the VM to be terminated before the next deletes.
	waitVm(t, joe, vm.VmId, "terminated")
	left, err := joe.ReadNics(ctx, oscv3.ReadNicsRequest{Filters: &oscv3.FiltersNic{NetIds: &[]string{netID}}})
	if err != nil || len(deref(left.Nics)) != 0 {
		t.Errorf("NICs left after DeleteVms: %v %+v", err, left)
	}
	if _, err := joe.DeleteSecurityGroup(ctx, oscv3.DeleteSecurityGroupRequest{SecurityGroupId: &sgID}); err != nil {
		t.Fatalf("DeleteSecurityGroup: %v", err)
	}
	if _, err := joe.DeleteSubnet(ctx, oscv3.DeleteSubnetRequest{SubnetId: subnetID}); err != nil {
		t.Fatalf("DeleteSubnet: %v", err)
	}
	if _, err := joe.DeleteNet(ctx, oscv3.DeleteNetRequest{NetId: netID}); err != nil {
		t.Fatalf("DeleteNet: %v", err)
	}
	rn, err := joe.ReadNets(ctx, oscv3.ReadNetsRequest{})
	if err != nil || len(deref(rn.Nets)) != 0 {
		t.Errorf("Nets left: %v %+v", err, rn)
	}
}
