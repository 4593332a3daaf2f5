package service_test

import (
	"context"
	"encoding/base64"
	"testing"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/service"
)

// privateOnlyUserData is user data whose OUTSCALE section asks for
// private_only=true, as the provider's recorded vm/TF-147 sends it.
var privateOnlyUserData = base64.StdEncoding.EncodeToString([]byte("-----BEGIN OUTSCALE SECTION-----\n\nprivate_only=true\n\n-----END OUTSCALE SECTION-----"))

// TestPrivateOnlyVmPlacement checks a private-only VM of the public Cloud
// as the real cloud shows it: in a Net and subnet that are not the
// account's, with a primary NIC carrying the VM's address and security
// groups and no public IP; found by the NetIds and SubnetIds filters;
// placed at the next start when its user data changes while it is
// stopped, and taken out again (with a public IP at launch) when the
// setting goes away.
func TestPrivateOnlyVmPlacement(t *testing.T) {
	g := newGwEnv(t)
	ctx := context.Background()
	plain := g.publicVm(g.joe)
	out, err := g.svc.CreateVms(ctx, g.joe, &service.CreateVmsRequest{ImageId: plain.ImageId, VmType: "tinav5.c2r4p2", UserData: privateOnlyUserData})
	g.must("CreateVms private_only", err)
	g.settle()
	nwValid(t, "CreateVms", out)
	checkPlaced := func(v *omi.Vm) (netID string) {
		t.Helper()
		if !omi.ValidID(v.NetId, "vpc") || !omi.ValidID(v.SubnetId, "subnet") || v.PublicIp != "" || v.IsSourceDestChecked {
			t.Fatalf("private-only VM: NetId %q, SubnetId %q, PublicIp %q, IsSourceDestChecked %v", v.NetId, v.SubnetId, v.PublicIp, v.IsSourceDestChecked)
		}
		if len(v.Nics) != 1 {
			t.Fatalf("private-only VM: Nics %+v, want its primary NIC", v.Nics)
		}
		n := v.Nics[0]
		if !omi.ValidID(n.NicId, "eni") || n.NetId != v.NetId || n.SubnetId != v.SubnetId || n.AccountId != g.joe.AccountID() ||
			n.Description != "Primary network interface" || n.IsSourceDestChecked || n.State != "in-use" || n.LinkPublicIp != nil ||
			n.LinkNic.DeviceNumber != 0 || n.LinkNic.State != "attached" || !n.LinkNic.DeleteOnVmDeletion || !omi.ValidID(n.LinkNic.LinkNicId, "eni-attach") ||
			len(n.PrivateIps) != 1 || n.PrivateIps[0].PrivateIp != v.PrivateIp || !n.PrivateIps[0].IsPrimary || n.MacAddress == "" {
			t.Errorf("primary NIC of a private-only VM: %+v", n)
		}
		if len(n.SecurityGroups) != 1 || len(v.SecurityGroups) != 1 || n.SecurityGroups[0] != v.SecurityGroups[0] {
			t.Errorf("NIC groups %+v, VM groups %+v", n.SecurityGroups, v.SecurityGroups)
		}
		return v.NetId
	}
	vm := out.Vms[0]
	netID := checkPlaced(vm)

	read := func(f service.FiltersVm) *service.ReadVmsResponse {
		t.Helper()
		r, err := g.svc.ReadVms(ctx, g.joe, &service.ReadVmsRequest{Filters: &f})
		g.must("ReadVms", err)
		nwValid(t, "ReadVms", r)
		return r
	}
	if r := read(service.FiltersVm{VmIds: []string{vm.VmId}}); len(r.Vms) != 1 || checkPlaced(r.Vms[0]) != netID || r.Vms[0].Nics[0].NicId != vm.Nics[0].NicId {
		t.Fatalf("ReadVms shows another placement: %+v", r.Vms)
	}
	if r := read(service.FiltersVm{NetIds: []string{netID}, SubnetIds: []string{vm.SubnetId}}); len(r.Vms) != 1 || r.Vms[0].VmId != vm.VmId {
		t.Errorf("ReadVms by the private-only Net and subnet: %d VMs", len(r.Vms))
	}

	// The Net, subnet and NIC are the cloud's: the account lists none
	// of them and cannot reach them.
	nets, err := g.svc.ReadNets(ctx, g.joe, &service.ReadNetsRequest{})
	g.must("ReadNets", err)
	subnets, err := g.svc.ReadSubnets(ctx, g.joe, &service.ReadSubnetsRequest{})
	g.must("ReadSubnets", err)
	nics, err := g.svc.ReadNics(ctx, g.joe, &service.ReadNicsRequest{})
	g.must("ReadNics", err)
	if len(nets.Nets)+len(subnets.Subnets)+len(nics.Nics) != 0 {
		t.Errorf("the private-only placement is listed as the account's: %+v %+v %+v", nets.Nets, subnets.Subnets, nics.Nics)
	}
	_, err = g.svc.CreateSubnet(ctx, g.joe, &service.CreateSubnetRequest{NetId: netID, IpRange: "10.0.9.0/24"})
	nwCode(t, "CreateSubnet in the private-only Net", err, "5065")

	// Another account sees nothing of it.
	if r, err := g.svc.ReadVms(ctx, g.bob, &service.ReadVmsRequest{Filters: &service.FiltersVm{NetIds: []string{netID}}}); err != nil || len(r.Vms) != 0 {
		t.Errorf("bob reads joe's private-only VM by its Net: %v %+v", err, r)
	}

	// A VM of the public Cloud whose user data changes while it is
	// stopped moves at its next start; the Net's ids stay while it does
	// not change again.
	move := func(v *omi.Vm, userData string) *omi.Vm {
		t.Helper()
		_, err := g.svc.StopVms(ctx, g.joe, &service.VmIdsRequest{VmIds: []string{v.VmId}})
		g.must("StopVms", err)
		g.settle()
		_, err = g.svc.UpdateVm(ctx, g.joe, &service.UpdateVmRequest{VmId: v.VmId, UserData: &userData})
		g.must("UpdateVm UserData", err)
		if r := read(service.FiltersVm{VmIds: []string{v.VmId}}); len(r.Vms) != 1 || r.Vms[0].NetId != v.NetId {
			t.Errorf("the placement changed before the start: %+v", r.Vms)
		}
		_, err = g.svc.StartVms(ctx, g.joe, &service.VmIdsRequest{VmIds: []string{v.VmId}})
		g.must("StartVms", err)
		g.settle()
		r := read(service.FiltersVm{VmIds: []string{v.VmId}})
		if len(r.Vms) != 1 || r.Vms[0].State != "running" {
			t.Fatalf("after the start: %+v", r.Vms)
		}
		return r.Vms[0]
	}
	moved := move(plain, privateOnlyUserData)
	checkPlaced(moved)
	again := move(moved, base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho still private\n-----BEGIN OUTSCALE SECTION-----\nprivate_only=true\n-----END OUTSCALE SECTION-----\n")))
	if checkPlaced(again) != moved.NetId || again.Nics[0].NicId != moved.Nics[0].NicId {
		t.Errorf("a start that keeps private_only moved the VM: %s -> %s", moved.NetId, again.NetId)
	}
	back := move(again, "")
	if back.NetId != "" || back.SubnetId != "" || len(back.Nics) != 0 || back.PublicIp == "" {
		t.Errorf("out of private_only: NetId %q, SubnetId %q, Nics %+v, PublicIp %q", back.NetId, back.SubnetId, back.Nics, back.PublicIp)
	}

	// Once deleted, the VM shows no NIC.
	_, err = g.svc.DeleteVms(ctx, g.joe, &service.VmIdsRequest{VmIds: []string{vm.VmId}})
	g.must("DeleteVms", err)
	g.settle()
	if r := read(service.FiltersVm{VmIds: []string{vm.VmId}}); len(r.Vms) == 1 && len(r.Vms[0].Nics) != 0 {
		t.Errorf("a terminated private-only VM shows NICs: %+v", r.Vms[0].Nics)
	}
}
