package service_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/omiproject/omi/service"
)

// TestPublicCloudVmLaunchAddress checks the address a VM of the public
// Cloud gets at launch under a driver without an address pool: a public
// address that is no account's public IP, with the real cloud's DNS name;
// a public IP linked to the VM replaces it in ReadVms and in the PublicIps
// filter until it is unlinked; a VM of a Net gets none, nor does one
// whose user data asks for none (private_only=true).
func TestPublicCloudVmLaunchAddress(t *testing.T) {
	g := newGwEnv(t)
	ctx := context.Background()
	vm := g.publicVm(g.joe)
	a, err := netip.ParseAddr(vm.PublicIp)
	if err != nil || !netip.MustParsePrefix("100.64.0.0/10").Contains(a) {
		t.Fatalf("launch address %q, want one of 100.64.0.0/10", vm.PublicIp)
	}
	if want := "ows-" + strings.ReplaceAll(vm.PublicIp, ".", "-") + ".eu-west-2.compute.outscale.com"; vm.PublicDnsName != want {
		t.Errorf("PublicDnsName %q, want %q", vm.PublicDnsName, want)
	}
	ips, err := g.svc.ReadPublicIps(ctx, g.joe, &service.ReadPublicIpsRequest{})
	g.must("ReadPublicIps", err)
	if len(ips.PublicIps) != 0 {
		t.Errorf("the launch address shows as a public IP of the account: %+v", ips.PublicIps)
	}

	readBy := func(filter string) []string {
		t.Helper()
		var f service.FiltersVm
		if err := json.Unmarshal([]byte(filter), &f); err != nil {
			t.Fatal(err)
		}
		out, err := g.svc.ReadVms(ctx, g.joe, &service.ReadVmsRequest{Filters: &f})
		g.must("ReadVms", err)
		var got []string
		for _, v := range out.Vms {
			got = append(got, v.VmId+"="+v.PublicIp)
		}
		return got
	}
	byID := `{"VmIds":["` + vm.VmId + `"]}`
	if got := readBy(byID); len(got) != 1 || got[0] != vm.VmId+"="+vm.PublicIp {
		t.Errorf("ReadVms %v", got)
	}
	if got := readBy(`{"PublicIps":["` + vm.PublicIp + `"]}`); len(got) != 1 {
		t.Errorf("ReadVms by launch address %v", got)
	}

	eip, err := g.svc.CreatePublicIp(ctx, g.joe, &service.CreatePublicIpRequest{})
	g.must("CreatePublicIp", err)
	addr := eip.PublicIp.PublicIp
	_, err = g.svc.LinkPublicIp(ctx, g.joe, &service.LinkPublicIpRequest{PublicIp: addr, VmId: vm.VmId})
	g.must("LinkPublicIp", err)
	if got := readBy(byID); len(got) != 1 || got[0] != vm.VmId+"="+addr {
		t.Errorf("ReadVms with %s linked: %v", addr, got)
	}
	if got := readBy(`{"PublicIps":["` + addr + `"]}`); len(got) != 1 {
		t.Errorf("ReadVms by the linked address %v", got)
	}
	if got := readBy(`{"PublicIps":["` + vm.PublicIp + `"]}`); len(got) != 0 {
		t.Errorf("ReadVms by the replaced launch address %v", got)
	}
	_, err = g.svc.UnlinkPublicIp(ctx, g.joe, &service.UnlinkPublicIpRequest{PublicIp: addr})
	g.must("UnlinkPublicIp", err)
	if got := readBy(byID); len(got) != 1 || got[0] != vm.VmId+"="+vm.PublicIp {
		t.Errorf("ReadVms after unlink %v", got)
	}

	// Given by its launch address, a VM is a backend address: the real
	// cloud lists it in BackendIps and leaves BackendVmIds empty
	// (load_balancer_vms/TF-11 of the provider's recorded states).
	_, err = g.svc.CreateLoadBalancer(ctx, g.joe, &service.CreateLoadBalancerRequest{LoadBalancerName: "by-ip",
		SubregionNames: []string{"eu-west-2a"}, Listeners: []service.ListenerForCreation{listener(80, "TCP", 80)}})
	g.must("CreateLoadBalancer", err)
	_, err = g.svc.LinkLoadBalancerBackendMachines(ctx, g.joe, &service.BackendMachinesRequest{LoadBalancerName: "by-ip", BackendIps: []string{vm.PublicIp}})
	g.must("LinkLoadBalancerBackendMachines", err)
	if l := g.readLB(g.joe, "by-ip"); len(l.BackendVmIds) != 0 || len(l.BackendIps) != 1 || l.BackendIps[0] != vm.PublicIp {
		t.Errorf("registered by launch address: BackendVmIds %v, BackendIps %v", l.BackendVmIds, l.BackendIps)
	}
	_, err = g.svc.LinkLoadBalancerBackendMachines(ctx, g.joe, &service.BackendMachinesRequest{LoadBalancerName: "by-ip", BackendIps: []string{"100.64.0.1"}})
	nwCode(t, "an address that is no VM's and no public IP of the account", err, "5025")

	// private_only=true in the user data's OUTSCALE section: no address.
	priv, err := g.svc.CreateVms(ctx, g.joe, &service.CreateVmsRequest{ImageId: vm.ImageId, VmType: "tinav5.c2r4p2",
		UserData: "LS0tLS1CRUdJTiBPVVRTQ0FMRSBTRUNUSU9OLS0tLS0KCnByaXZhdGVfb25seT10cnVlCgotLS0tLUVORCBPVVRTQ0FMRSBTRUNUSU9OLS0tLS0="})
	g.must("CreateVms private_only", err)
	if v := priv.Vms[0]; v.PublicIp != "" || v.PublicDnsName != "" {
		t.Errorf("a private_only VM got %q / %q", v.PublicIp, v.PublicDnsName)
	}

	n := g.net(g.joe, "10.2.0.0/16")
	if netVm := g.vmIn(g.joe, n, g.subnet(g.joe, n, "10.2.1.0/24")); netVm.PublicIp != "" || netVm.PublicDnsName != "" {
		t.Errorf("a VM of a Net got %q / %q", netVm.PublicIp, netVm.PublicDnsName)
	}
}
