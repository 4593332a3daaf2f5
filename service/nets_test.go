package service_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"testing"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/service"
)

func TestNetsAndSubnets(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if out, err := e.svc.ReadNets(ctx, e.joe, &service.ReadNetsRequest{}); err != nil || len(out.Nets) != 0 {
		t.Fatalf("a new account has Nets: %+v %v", out, err)
	}
	for _, b := range []struct{ ipRange, code string }{
		{"", omi.CodeInvalidParameter}, {"10.0.0.0", "4030"}, {"10.0.0.1/16", "4030"}, {"::1/64", "4030"},
		{"10.0.0.0/8", "4015"}, {"10.0.0.0/29", "4015"},
	} {
		_, err := e.svc.CreateNet(ctx, e.joe, &service.CreateNetRequest{IpRange: b.ipRange})
		nwCode(t, "CreateNet "+b.ipRange, err, b.code)
	}
	_, err := e.svc.CreateNet(ctx, e.joe, &service.CreateNetRequest{IpRange: "10.0.0.0/16", Tenancy: "shared"})
	nwCode(t, "bad tenancy", err, omi.CodeInvalidValue)
	cn, err := e.svc.CreateNet(ctx, e.joe, &service.CreateNetRequest{IpRange: "10.0.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	nwValid(t, "CreateNet", cn)
	n := cn.Net
	if !omi.ValidID(n.NetId, "vpc") || !omi.ValidID(n.DhcpOptionsSetId, "dopt") || n.IpRange != "10.0.0.0/16" || n.State != "available" || n.Tenancy != "default" {
		t.Errorf("net %+v", n)
	}
	other, err := e.svc.CreateNet(ctx, e.joe, &service.CreateNetRequest{IpRange: "172.16.0.0/28"})
	if err != nil {
		t.Fatal(err)
	}
	rn, _ := e.svc.ReadNets(ctx, e.joe, &service.ReadNetsRequest{Filters: &service.FiltersNet{IpRanges: []string{"10.0.0.0/16"}, States: []string{"available"}}})
	if len(rn.Nets) != 1 || rn.Nets[0].NetId != n.NetId {
		t.Errorf("ReadNets by range: %+v", rn.Nets)
	}
	if out, _ := e.svc.ReadNets(ctx, e.joe, &service.ReadNetsRequest{Filters: &service.FiltersNet{IsDefault: ptr(true)}}); len(out.Nets) != 0 {
		t.Errorf("omi has no default Net, IsDefault true found %+v", out.Nets)
	}
	if _, err := e.svc.CreateTags(ctx, e.joe, &service.CreateTagsRequest{ResourceIds: []string{n.NetId}, Tags: []omi.Tag{{Key: "env", Value: "prod"}}}); err != nil {
		t.Fatal(err)
	}
	var byTag service.FiltersNet
	if err := json.Unmarshal([]byte(`{"Tags":["env=prod"]}`), &byTag); err != nil {
		t.Fatal(err)
	}
	if out, _ := e.svc.ReadNets(ctx, e.joe, &service.ReadNetsRequest{Filters: &byTag}); len(out.Nets) != 1 || len(out.Nets[0].Tags) != 1 {
		t.Errorf("ReadNets by tag: %+v", out.Nets)
	}
	// Bob sees, changes and deletes none of it.
	if out, _ := e.svc.ReadNets(ctx, e.bob, &service.ReadNetsRequest{Filters: &service.FiltersNet{NetIds: []string{n.NetId}}}); len(out.Nets) != 0 {
		t.Errorf("bob reads joe's Net: %+v", out.Nets)
	}
	_, err = e.svc.DeleteNet(ctx, e.bob, &service.DeleteNetRequest{NetId: n.NetId})
	nwCode(t, "bob deletes joe's Net", err, "5065")
	_, err = e.svc.UpdateNet(ctx, e.bob, &service.UpdateNetRequest{NetId: n.NetId, DhcpOptionsSetId: "default"})
	nwCode(t, "bob updates joe's Net", err, "5065")
	_, err = e.svc.CreateSubnet(ctx, e.bob, &service.CreateSubnetRequest{NetId: n.NetId, IpRange: "10.0.1.0/24"})
	nwCode(t, "bob makes a subnet in joe's Net", err, "5065")
	_, err = e.svc.CreateTags(ctx, e.bob, &service.CreateTagsRequest{ResourceIds: []string{n.NetId}, Tags: []omi.Tag{{Key: "k", Value: "v"}}})
	nwCode(t, "bob tags joe's Net", err, "5065")

	// Subnets: inside the Net, no overlap, in a subregion of the region.
	for _, b := range []struct{ ipRange, subregion, code string }{
		{"10.1.0.0/24", "", "9044"}, {"10.0.0.0/15", "", "4015"}, {"10.0.0.0/8", "", "4015"}, {"10.0.0.7/24", "", "4030"},
		{"10.0.0.0/30", "", "4015"},
		{"10.0.0.0/24", "eu-west-2z", "5009"},
	} {
		_, err := e.svc.CreateSubnet(ctx, e.joe, &service.CreateSubnetRequest{NetId: n.NetId, IpRange: b.ipRange, SubregionName: b.subregion})
		nwCode(t, "CreateSubnet "+b.ipRange+" "+b.subregion, err, b.code)
	}
	cs, err := e.svc.CreateSubnet(ctx, e.joe, &service.CreateSubnetRequest{NetId: n.NetId, IpRange: "10.0.1.0/24", SubregionName: "eu-west-2b"})
	if err != nil {
		t.Fatal(err)
	}
	nwValid(t, "CreateSubnet", cs)
	sn := cs.Subnet
	if sn.AvailableIpsCount != 251 || sn.SubregionName != "eu-west-2b" || sn.NetId != n.NetId || sn.MapPublicIpOnLaunch || !omi.ValidID(sn.SubnetId, "subnet") {
		t.Errorf("subnet %+v", sn)
	}
	_, err = e.svc.CreateSubnet(ctx, e.joe, &service.CreateSubnetRequest{NetId: n.NetId, IpRange: "10.0.0.0/20"})
	nwCode(t, "overlapping subnet", err, "9058")
	if _, err := e.svc.CreateSubnet(ctx, e.joe, &service.CreateSubnetRequest{NetId: n.NetId, IpRange: "10.0.2.0/29"}); err != nil {
		t.Fatal(err)
	}
	up, err := e.svc.UpdateSubnet(ctx, e.joe, &service.UpdateSubnetRequest{SubnetId: sn.SubnetId, MapPublicIpOnLaunch: ptr(true)})
	if err != nil || !up.Subnet.MapPublicIpOnLaunch {
		t.Errorf("UpdateSubnet: %+v %v", up, err)
	}
	_, err = e.svc.UpdateSubnet(ctx, e.joe, &service.UpdateSubnetRequest{SubnetId: sn.SubnetId})
	nwCode(t, "UpdateSubnet without MapPublicIpOnLaunch", err, omi.CodeInvalidParameter)
	rs, _ := e.svc.ReadSubnets(ctx, e.joe, &service.ReadSubnetsRequest{Filters: &service.FiltersSubnet{NetIds: []string{n.NetId}, SubregionNames: []string{"eu-west-2b"}}})
	nwValid(t, "ReadSubnets", rs)
	if len(rs.Subnets) != 1 || rs.Subnets[0].SubnetId != sn.SubnetId {
		t.Errorf("ReadSubnets by Net and subregion: %+v", rs.Subnets)
	}
	if out, _ := e.svc.ReadSubnets(ctx, e.bob, &service.ReadSubnetsRequest{Filters: &service.FiltersSubnet{SubnetIds: []string{sn.SubnetId}}}); len(out.Subnets) != 0 {
		t.Errorf("bob reads joe's subnet: %+v", out.Subnets)
	}
	_, err = e.svc.DeleteSubnet(ctx, e.bob, &service.DeleteSubnetRequest{SubnetId: sn.SubnetId})
	nwCode(t, "bob deletes joe's subnet", err, "5057")

	// A Net with subnets stays; so does a subnet with a NIC.
	_, err = e.svc.DeleteNet(ctx, e.joe, &service.DeleteNetRequest{NetId: n.NetId})
	nwCode(t, "DeleteNet with subnets", err, "9066")
	nic, err := e.svc.CreateNic(ctx, e.joe, &service.CreateNicRequest{SubnetId: sn.SubnetId})
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := e.svc.ReadSubnets(ctx, e.joe, &service.ReadSubnetsRequest{Filters: &service.FiltersSubnet{AvailableIpsCounts: []int{250}}}); len(out.Subnets) != 1 || out.Subnets[0].SubnetId != sn.SubnetId {
		t.Errorf("AvailableIpsCount after a NIC: %+v", out.Subnets)
	}
	_, err = e.svc.DeleteSubnet(ctx, e.joe, &service.DeleteSubnetRequest{SubnetId: sn.SubnetId})
	nwCode(t, "DeleteSubnet with a NIC", err, "9095")
	if _, err := e.svc.DeleteNic(ctx, e.joe, &service.DeleteNicRequest{NicId: nic.Nic.NicId}); err != nil {
		t.Fatal(err)
	}
	all, _ := e.svc.ReadSubnets(ctx, e.joe, &service.ReadSubnetsRequest{})
	for _, s := range all.Subnets {
		if _, err := e.svc.DeleteSubnet(ctx, e.joe, &service.DeleteSubnetRequest{SubnetId: s.SubnetId}); err != nil {
			t.Fatal(err)
		}
	}
	// A security group of its own keeps the Net; the default group goes
	// with it.
	g, err := e.svc.CreateSecurityGroup(ctx, e.joe, &service.CreateSecurityGroupRequest{SecurityGroupName: "web", Description: "d", NetId: n.NetId})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.DeleteNet(ctx, e.joe, &service.DeleteNetRequest{NetId: n.NetId})
	nwCode(t, "DeleteNet with a security group", err, "9066")
	if _, err := e.svc.DeleteSecurityGroup(ctx, e.joe, &service.DeleteSecurityGroupRequest{SecurityGroupId: g.SecurityGroup.SecurityGroupId}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.DeleteNet(ctx, e.joe, &service.DeleteNetRequest{NetId: n.NetId}); err != nil {
		t.Fatal(err)
	}
	groups, _ := e.svc.ReadSecurityGroups(ctx, e.joe, &service.ReadSecurityGroupsRequest{Filters: &service.FiltersSecurityGroup{NetIds: []string{n.NetId}}})
	if len(groups.SecurityGroups) != 0 {
		t.Errorf("groups left after DeleteNet: %+v", groups.SecurityGroups)
	}
	rn, _ = e.svc.ReadNets(ctx, e.joe, &service.ReadNetsRequest{})
	if len(rn.Nets) != 1 || rn.Nets[0].NetId != other.Net.NetId {
		t.Errorf("Nets after DeleteNet: %+v", rn.Nets)
	}
	_, err = e.svc.DeleteNet(ctx, e.joe, &service.DeleteNetRequest{NetId: n.NetId})
	nwCode(t, "DeleteNet twice", err, "5065")
}

func TestNicsAndVmsInNets(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	n := mustNet(t, e, e.joe, "10.0.0.0/16")
	sn := mustSubnet(t, e, e.joe, n.NetId, "10.0.1.0/24", "eu-west-2a")
	sn2 := mustSubnet(t, e, e.joe, n.NetId, "10.0.2.0/24", "eu-west-2a")
	web, err := e.svc.CreateSecurityGroup(ctx, e.joe, &service.CreateSecurityGroupRequest{SecurityGroupName: "web", Description: "d", NetId: n.NetId})
	if err != nil {
		t.Fatal(err)
	}
	public, err := e.svc.CreateSecurityGroup(ctx, e.joe, &service.CreateSecurityGroupRequest{SecurityGroupName: "pub", Description: "d"})
	if err != nil {
		t.Fatal(err)
	}

	// NIC creation: reserved, outside and taken addresses, foreign groups.
	for _, b := range []struct {
		what string
		in   service.CreateNicRequest
		code string
	}{
		{"no subnet", service.CreateNicRequest{}, omi.CodeInvalidParameter},
		{"unknown subnet", service.CreateNicRequest{SubnetId: "subnet-00000000"}, "5057"},
		{"reserved address", service.CreateNicRequest{SubnetId: sn.SubnetId, PrivateIps: []service.PrivateIpLight{{PrivateIp: "10.0.1.2", IsPrimary: true}}}, "4030"},
		{"broadcast address", service.CreateNicRequest{SubnetId: sn.SubnetId, PrivateIps: []service.PrivateIpLight{{PrivateIp: "10.0.1.255"}}}, "4030"},
		{"outside the subnet", service.CreateNicRequest{SubnetId: sn.SubnetId, PrivateIps: []service.PrivateIpLight{{PrivateIp: "10.0.2.10"}}}, "4030"},
		{"two primaries", service.CreateNicRequest{SubnetId: sn.SubnetId, PrivateIps: []service.PrivateIpLight{{PrivateIp: "10.0.1.10", IsPrimary: true}, {PrivateIp: "10.0.1.11", IsPrimary: true}}}, omi.CodeInvalidValue},
		{"group of the public Cloud", service.CreateNicRequest{SubnetId: sn.SubnetId, SecurityGroupIds: []string{public.SecurityGroup.SecurityGroupId}}, "4086"},
	} {
		_, err := e.svc.CreateNic(ctx, e.joe, &b.in)
		nwCode(t, "CreateNic "+b.what, err, b.code)
	}
	// As in the real cloud's recorded state: a secondary address given,
	// the primary one allocated.
	c1, err := e.svc.CreateNic(ctx, e.joe, &service.CreateNicRequest{SubnetId: sn.SubnetId, Description: "second",
		PrivateIps: []service.PrivateIpLight{{PrivateIp: "10.0.1.20"}}, SecurityGroupIds: []string{web.SecurityGroup.SecurityGroupId}})
	if err != nil {
		t.Fatal(err)
	}
	nwValid(t, "CreateNic", c1)
	nic := c1.Nic
	primary := nic.PrimaryIp()
	if primary == nil || primary.PrivateIp != "10.0.1.4" || len(nic.PrivateIps) != 2 || !omi.ValidID(nic.NicId, "eni") ||
		nic.State != "available" || nic.LinkNic != nil || nic.NetId != n.NetId || nic.SubregionName != "eu-west-2a" ||
		len(nic.MacAddress) != 17 || !nic.IsSourceDestChecked || nic.PrivateDnsName != "ip-10-0-1-4.eu-west-2.compute.internal" ||
		len(nic.SecurityGroups) != 1 || nic.SecurityGroups[0].SecurityGroupName != "web" || nic.AccountId != e.joe.AccountID() {
		t.Errorf("NIC %+v", nic)
	}
	_, err = e.svc.CreateNic(ctx, e.joe, &service.CreateNicRequest{SubnetId: sn.SubnetId, PrivateIps: []service.PrivateIpLight{{PrivateIp: "10.0.1.20", IsPrimary: true}}})
	nwCode(t, "CreateNic with a taken address", err, "9001")
	// A NIC without groups gets the Net's default group.
	c2, err := e.svc.CreateNic(ctx, e.joe, &service.CreateNicRequest{SubnetId: sn.SubnetId})
	if err != nil {
		t.Fatal(err)
	}
	if g := c2.Nic.SecurityGroups; len(g) != 1 || g[0].SecurityGroupName != "default" || c2.Nic.PrimaryIp().PrivateIp != "10.0.1.5" {
		t.Errorf("second NIC %+v", c2.Nic)
	}

	// Private IPs: add by count and by address, relink, remove.
	_, err = e.svc.LinkPrivateIps(ctx, e.joe, &service.LinkPrivateIpsRequest{NicId: c2.Nic.NicId, PrivateIps: []string{"10.0.1.20"}})
	nwCode(t, "LinkPrivateIps of a held address", err, "9001")
	if _, err := e.svc.LinkPrivateIps(ctx, e.joe, &service.LinkPrivateIpsRequest{NicId: c2.Nic.NicId, PrivateIps: []string{"10.0.1.20"}, AllowRelink: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.LinkPrivateIps(ctx, e.joe, &service.LinkPrivateIpsRequest{NicId: c2.Nic.NicId, SecondaryPrivateIpCount: ptr(2)}); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.LinkPrivateIps(ctx, e.joe, &service.LinkPrivateIpsRequest{NicId: c2.Nic.NicId})
	nwCode(t, "LinkPrivateIps of nothing", err, omi.CodeInvalidParamSet)
	_, err = e.svc.LinkPrivateIps(ctx, e.joe, &service.LinkPrivateIpsRequest{NicId: c2.Nic.NicId, PrivateIps: []string{"10.0.1.4"}, AllowRelink: true})
	nwCode(t, "relink of a primary address", err, "9001")
	_, err = e.svc.UnlinkPrivateIps(ctx, e.joe, &service.UnlinkPrivateIpsRequest{NicId: c2.Nic.NicId, PrivateIps: []string{"10.0.1.5"}})
	nwCode(t, "UnlinkPrivateIps of the primary address", err, "4030")
	if _, err := e.svc.UnlinkPrivateIps(ctx, e.joe, &service.UnlinkPrivateIpsRequest{NicId: c2.Nic.NicId, PrivateIps: []string{"10.0.1.20"}}); err != nil {
		t.Fatal(err)
	}
	ipCount := map[string]int{}
	for _, x := range readNics(t, e, e.joe, &service.FiltersNic{NicIds: []string{nic.NicId, c2.Nic.NicId}}) {
		ipCount[x.NicId] = len(x.PrivateIps)
	}
	if len(ipCount) != 2 || ipCount[nic.NicId] != 1 || ipCount[c2.Nic.NicId] != 3 {
		t.Errorf("private IPs per NIC after the changes: %v", ipCount)
	}
	if out, _ := e.svc.ReadSubnets(ctx, e.joe, &service.ReadSubnetsRequest{Filters: &service.FiltersSubnet{SubnetIds: []string{sn.SubnetId}}}); out.Subnets[0].AvailableIpsCount != 251-4 {
		t.Errorf("AvailableIpsCount with 4 addresses taken: %d", out.Subnets[0].AvailableIpsCount)
	}

	// A VM in a subnet gets its primary NIC.
	img := e.image(e.joe, "nic-image")
	cv, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId, SubnetId: sn.SubnetId,
		SecurityGroupIds: []string{web.SecurityGroup.SecurityGroupId}, PrivateIps: []string{"10.0.1.50"}})
	if err != nil {
		t.Fatal(err)
	}
	e.settle()
	vm := cv.Vms[0]
	if vm.NetId != n.NetId || vm.SubnetId != sn.SubnetId || vm.PrivateIp != "10.0.1.50" || len(vm.Nics) != 1 ||
		vm.Nics[0].LinkNic.DeviceNumber != 0 || !vm.Nics[0].LinkNic.DeleteOnVmDeletion || vm.Placement.SubregionName != "eu-west-2a" {
		t.Errorf("VM in a subnet %+v", vm)
	}
	_, err = e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId, SubnetId: sn.SubnetId, PrivateIps: []string{"10.0.1.50"}})
	nwCode(t, "VM on a taken address", err, "9001")
	_, err = e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId, PrivateIps: []string{"10.0.1.51"}})
	nwCode(t, "private IP in the public Cloud", err, omi.CodeInvalidParamSet)
	_, err = e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId, SubnetId: sn.SubnetId, SecurityGroupIds: []string{public.SecurityGroup.SecurityGroupId}})
	nwCode(t, "VM of a Net in a public Cloud group", err, "4086")
	primaryNic := vm.Nics[0].NicId
	// A second NIC on device 1, then off again.
	_, err = e.svc.LinkNic(ctx, e.joe, &service.LinkNicRequest{NicId: nic.NicId, VmId: vm.VmId, DeviceNumber: ptr(0)})
	nwCode(t, "LinkNic on device 0", err, omi.CodeInvalidValue)
	ln, err := e.svc.LinkNic(ctx, e.joe, &service.LinkNicRequest{NicId: nic.NicId, VmId: vm.VmId, DeviceNumber: ptr(1)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.LinkNic(ctx, e.joe, &service.LinkNicRequest{NicId: c2.Nic.NicId, VmId: vm.VmId, DeviceNumber: ptr(1)})
	nwCode(t, "LinkNic on a taken device", err, "9004")
	_, err = e.svc.DeleteNic(ctx, e.joe, &service.DeleteNicRequest{NicId: nic.NicId})
	nwCode(t, "DeleteNic of a linked NIC", err, "9004")
	vms := readVms(t, e, vm.VmId)
	if len(vms[0].Nics) != 2 || vms[0].Nics[1].NicId != nic.NicId || vms[0].Nics[1].LinkNic.LinkNicId != ln.LinkNicId {
		t.Errorf("VM with two NICs: %+v", vms[0].Nics)
	}
	nwValid(t, "ReadVms", &service.ReadVmsResponse{Vms: vms})

	// Every ReadNics filter that has something to match.
	for _, b := range []struct {
		what string
		f    service.FiltersNic
		want []string
	}{
		{"vm", service.FiltersNic{LinkNicVmIds: []string{vm.VmId}}, []string{primaryNic, nic.NicId}},
		{"device", service.FiltersNic{LinkNicDeviceNumbers: []int{1}}, []string{nic.NicId}},
		{"link id", service.FiltersNic{LinkNicLinkNicIds: []string{ln.LinkNicId}}, []string{nic.NicId}},
		{"delete with vm", service.FiltersNic{LinkNicDeleteOnVmDeletion: ptr(true)}, []string{primaryNic}},
		{"link state", service.FiltersNic{LinkNicStates: []string{"attached"}, LinkNicVmAccountIds: []string{e.joe.AccountID()}}, []string{primaryNic, nic.NicId}},
		{"state", service.FiltersNic{States: []string{"available"}}, []string{c2.Nic.NicId}},
		{"description", service.FiltersNic{Descriptions: []string{"second"}}, []string{nic.NicId}},
		{"group name", service.FiltersNic{SecurityGroupNames: []string{"web"}}, []string{primaryNic, nic.NicId}},
		{"group id", service.FiltersNic{SecurityGroupIds: []string{web.SecurityGroup.SecurityGroupId}}, []string{primaryNic, nic.NicId}},
		{"private ip", service.FiltersNic{PrivateIpsPrivateIps: []string{"10.0.1.50"}}, []string{primaryNic}},
		{"primary ip", service.FiltersNic{PrivateIpsPrimaryIp: ptr(false)}, []string{c2.Nic.NicId}},
		{"dns name", service.FiltersNic{PrivateDnsNames: []string{"ip-10-0-1-5.eu-west-2.compute.internal"}}, []string{c2.Nic.NicId}},
		{"mac", service.FiltersNic{MacAddresses: []string{nic.MacAddress}}, []string{nic.NicId}},
		{"net, subnet and subregion", service.FiltersNic{NetIds: []string{n.NetId}, SubnetIds: []string{sn.SubnetId}, SubregionNames: []string{"eu-west-2a"}}, []string{primaryNic, nic.NicId, c2.Nic.NicId}},
		{"other subnet", service.FiltersNic{SubnetIds: []string{sn2.SubnetId}}, nil},
		{"source/dest check", service.FiltersNic{IsSourceDestCheck: ptr(false)}, nil},
	} {
		got := []string{}
		for _, x := range readNics(t, e, e.joe, &b.f) {
			got = append(got, x.NicId)
		}
		want := append([]string{}, b.want...)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("ReadNics by %s: %v, want %v", b.what, got, want)
		}
	}
	// Bob sees none of joe's NICs, and cannot touch them.
	if out := readNics(t, e, e.bob, &service.FiltersNic{NicIds: []string{nic.NicId}}); len(out) != 0 {
		t.Errorf("bob reads joe's NIC: %+v", out)
	}
	_, err = e.svc.UpdateNic(ctx, e.bob, &service.UpdateNicRequest{NicId: nic.NicId, Description: ptr("x")})
	nwCode(t, "bob updates joe's NIC", err, "5036")
	_, err = e.svc.UnlinkNic(ctx, e.bob, &service.UnlinkNicRequest{LinkNicId: ln.LinkNicId})
	nwCode(t, "bob unlinks joe's NIC", err, "5007")

	// A public IP on the primary NIC: on the VM, on the NIC, on the IP.
	ip, err := e.svc.CreatePublicIp(ctx, e.joe, &service.CreatePublicIpRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.LinkPublicIp(ctx, e.joe, &service.LinkPublicIpRequest{PublicIpId: ip.PublicIp.PublicIpId, VmId: vm.VmId}); err != nil {
		t.Fatal(err)
	}
	rip, _ := e.svc.ReadPublicIps(ctx, e.joe, &service.ReadPublicIpsRequest{Filters: &service.FiltersPublicIp{NicIds: []string{primaryNic}}})
	if len(rip.PublicIps) != 1 || rip.PublicIps[0].VmId != vm.VmId || rip.PublicIps[0].PrivateIp != "10.0.1.50" || rip.PublicIps[0].NicAccountId != e.joe.AccountID() {
		t.Errorf("public IP of the primary NIC: %+v", rip.PublicIps)
	}
	vms = readVms(t, e, vm.VmId)
	if vms[0].PublicIp != ip.PublicIp.PublicIp || vms[0].Nics[0].LinkPublicIp == nil || vms[0].Nics[0].LinkPublicIp.PublicIp != ip.PublicIp.PublicIp {
		t.Errorf("VM with a public IP: %+v", vms[0])
	}
	if out := readNics(t, e, e.joe, &service.FiltersNic{LinkPublicIpPublicIps: []string{ip.PublicIp.PublicIp}}); len(out) != 1 || out[0].NicId != primaryNic {
		t.Errorf("ReadNics by public IP: %+v", out)
	}
	// Moved onto the secondary address of another NIC with AllowRelink.
	_, err = e.svc.LinkPublicIp(ctx, e.joe, &service.LinkPublicIpRequest{PublicIpId: ip.PublicIp.PublicIpId, NicId: c2.Nic.NicId, PrivateIp: "10.0.1.99"})
	nwCode(t, "LinkPublicIp to an address the NIC lacks", err, omi.CodeInvalidValue)
	_, err = e.svc.LinkPublicIp(ctx, e.joe, &service.LinkPublicIpRequest{PublicIpId: ip.PublicIp.PublicIpId, NicId: c2.Nic.NicId})
	nwCode(t, "LinkPublicIp of a linked address", err, "9031")
	if _, err := e.svc.LinkPublicIp(ctx, e.joe, &service.LinkPublicIpRequest{PublicIpId: ip.PublicIp.PublicIpId, NicId: c2.Nic.NicId, AllowRelink: true}); err != nil {
		t.Fatal(err)
	}
	if vms = readVms(t, e, vm.VmId); vms[0].PublicIp != "" {
		t.Errorf("VM keeps a moved public IP: %q", vms[0].PublicIp)
	}

	// Groups in use by a NIC stay; the VM's groups follow its primary NIC.
	_, err = e.svc.DeleteSecurityGroup(ctx, e.joe, &service.DeleteSecurityGroupRequest{SecurityGroupId: web.SecurityGroup.SecurityGroupId})
	nwCode(t, "DeleteSecurityGroup used by NICs", err, "9085")
	def := readNics(t, e, e.joe, &service.FiltersNic{NicIds: []string{c2.Nic.NicId}})[0].SecurityGroups[0].SecurityGroupId
	if _, err := e.svc.UpdateNic(ctx, e.joe, &service.UpdateNicRequest{NicId: primaryNic, SecurityGroupIds: []string{def}}); err != nil {
		t.Fatal(err)
	}
	if vms = readVms(t, e, vm.VmId); len(vms[0].SecurityGroups) != 1 || vms[0].SecurityGroups[0].SecurityGroupId != def {
		t.Errorf("VM groups after UpdateNic of its primary NIC: %+v", vms[0].SecurityGroups)
	}
	_, err = e.svc.UpdateNic(ctx, e.joe, &service.UpdateNicRequest{NicId: primaryNic, SecurityGroupIds: []string{}})
	nwCode(t, "UpdateNic without groups", err, omi.CodeInvalidParameter)
	_, err = e.svc.UnlinkNic(ctx, e.joe, &service.UnlinkNicRequest{LinkNicId: vms[0].Nics[0].LinkNic.LinkNicId})
	nwCode(t, "UnlinkNic of the primary NIC", err, omi.CodeInvalidValue)

	// Deleting the VM takes its primary NIC and leaves the linked one.
	if _, err := e.svc.DeleteVms(ctx, e.joe, &service.VmIdsRequest{VmIds: []string{vm.VmId}}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	left := readNics(t, e, e.joe, &service.FiltersNic{NetIds: []string{n.NetId}})
	ids := []string{}
	for _, x := range left {
		ids = append(ids, x.NicId)
		if x.NicId == nic.NicId && (x.LinkNic != nil || x.State != "available") {
			t.Errorf("NIC of a deleted VM still linked: %+v", x)
		}
	}
	slices.Sort(ids)
	want := []string{nic.NicId, c2.Nic.NicId}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("NICs after DeleteVms: %v, want %v", ids, want)
	}

	// A VM with Nics: an existing NIC as its primary one and a new one.
	cv2, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId, Nics: []service.NicForVmCreation{
		{NicId: nic.NicId, DeviceNumber: ptr(0)}, {SubnetId: sn2.SubnetId, DeviceNumber: ptr(1), SecondaryPrivateIpCount: ptr(1)}}})
	if err != nil {
		t.Fatal(err)
	}
	v2 := cv2.Vms[0]
	if len(v2.Nics) != 2 || v2.Nics[0].NicId != nic.NicId || v2.PrivateIp != "10.0.1.4" || len(v2.Nics[1].PrivateIps) != 2 || v2.Nics[1].SubnetId != sn2.SubnetId {
		t.Errorf("VM with Nics: %+v", v2)
	}
	_, err = e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId, Nics: []service.NicForVmCreation{{SubnetId: sn.SubnetId, DeviceNumber: ptr(1)}}})
	nwCode(t, "Nics without a primary", err, omi.CodeInvalidParameter)
	_, err = e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId, Nics: []service.NicForVmCreation{{NicId: nic.NicId, DeviceNumber: ptr(0)}}})
	nwCode(t, "Nics with a linked NIC", err, "9004")
	_, err = e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId, Nics: []service.NicForVmCreation{{NicId: c2.Nic.NicId, DeviceNumber: ptr(0), SubnetId: sn2.SubnetId}}})
	nwCode(t, "Nics with an existing NIC of another subnet", err, omi.CodeInvalidParamSet)
	// What the provider sends for an existing NIC: every field of its
	// block, empty, and DeleteOnVmDeletion.
	cv3, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId, Nics: []service.NicForVmCreation{
		{NicId: c2.Nic.NicId, DeviceNumber: ptr(0), SubnetId: "", PrivateIps: []service.PrivateIpLight{}, DeleteOnVmDeletion: ptr(true)}}})
	if err != nil {
		t.Fatalf("CreateVms with an existing NIC as terraform sends it: %v", err)
	}
	if v := cv3.Vms[0]; len(v.Nics) != 1 || v.Nics[0].NicId != c2.Nic.NicId || !v.Nics[0].LinkNic.DeleteOnVmDeletion {
		t.Errorf("VM on an existing NIC: %+v", v.Nics)
	}

	// Quotas count what the account holds.
	q, err := e.svc.ReadQuotas(ctx, e.joe, &service.ReadQuotasRequest{})
	if err != nil {
		t.Fatal(err)
	}
	nwValid(t, "ReadQuotas", q)
	used := map[string]int{}
	for _, qt := range q.QuotaTypes {
		for _, x := range qt.Quotas {
			used[qt.QuotaType+"/"+x.Name] = x.UsedValue
			if x.AccountId != e.joe.AccountID() || x.MaxValue == 0 && x.Name == "vpc_limit" {
				t.Errorf("quota %+v", x)
			}
		}
	}
	if used["global/vpc_limit"] != 1 || used[n.NetId+"/subnet_limit"] != 2 || used["global/ip_limit"] != 1 || used["global/vm_limit"] != 2 || used[n.NetId+"/vpc_sg_limit"] != 2 {
		t.Errorf("quota usage %v", used)
	}
	f, err := e.svc.ReadQuotas(ctx, e.joe, &service.ReadQuotasRequest{Filters: &service.FiltersQuota{QuotaNames: []string{"subnet_limit"}}})
	// The per-Net quotas are listed in the global scope too (as the real
	// cloud lists them, quotas/TF-186), with the usage of the fullest Net.
	if err != nil || len(f.QuotaTypes) != 2 || f.QuotaTypes[0].QuotaType != "global" || f.QuotaTypes[1].QuotaType != n.NetId ||
		len(f.QuotaTypes[1].Quotas) != 1 || f.QuotaTypes[0].Quotas[0].UsedValue != 2 {
		t.Errorf("ReadQuotas by name: %+v %v", f, err)
	}
}

func mustNet(t *testing.T, e *env, c *omi.Caller, ipRange string) *omi.Net {
	t.Helper()
	out, err := e.svc.CreateNet(context.Background(), c, &service.CreateNetRequest{IpRange: ipRange})
	if err != nil {
		t.Fatal(err)
	}
	return out.Net
}

func mustSubnet(t *testing.T, e *env, c *omi.Caller, netID, ipRange, subregion string) *omi.Subnet {
	t.Helper()
	out, err := e.svc.CreateSubnet(context.Background(), c, &service.CreateSubnetRequest{NetId: netID, IpRange: ipRange, SubregionName: subregion})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := netip.ParsePrefix(out.Subnet.IpRange); err != nil {
		t.Fatal(err)
	}
	return out.Subnet
}

func readNics(t *testing.T, e *env, c *omi.Caller, f *service.FiltersNic) []*omi.Nic {
	t.Helper()
	out, err := e.svc.ReadNics(context.Background(), c, &service.ReadNicsRequest{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	nwValid(t, "ReadNics", out)
	return out.Nics
}

func readVms(t *testing.T, e *env, ids ...string) []*omi.Vm {
	t.Helper()
	out, err := e.svc.ReadVms(context.Background(), e.joe, &service.ReadVmsRequest{Filters: &service.FiltersVm{VmIds: ids}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Vms
}
