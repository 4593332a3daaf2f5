package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/omiproject/omi/apitest"
)

// A filter on a property no omi VM has (subnet, Net, security group) must
// match no VM, not be ignored: a script narrowing by subnet must not get
// unrelated VMs.
func TestUnsupportedVmFiltersMatchNothing(t *testing.T) {
	e := apitest.Start(t)
	vol := newVolume(t, e, e.Joe, 1)
	img := registerImage(t, e, e.Joe, "vm-base", newSnapshot(t, e, e.Joe, vol)).ImageId
	waitImage(t, e, e.Joe, img, "available")
	e.MustCall(t, e.Joe, "CreateVms", map[string]any{"ImageId": img}, nil)
	count := func(filters map[string]any) int {
		var out struct{ Vms []json.RawMessage }
		e.MustCall(t, e.Joe, "ReadVms", map[string]any{"Filters": filters}, &out)
		return len(out.Vms)
	}
	if n := count(map[string]any{}); n != 1 {
		t.Fatalf("ReadVms = %d VMs, want 1", n)
	}
	for _, f := range []map[string]any{
		{"SubnetIds": []string{"subnet-12345678"}},
		{"NetIds": []string{"vpc-12345678"}},
		{"SecurityGroupNames": []string{"web"}},
		{"NicNicIds": []string{"eni-12345678"}},
	} {
		if n := count(f); n != 0 {
			t.Errorf("ReadVms with %v = %d VMs, want 0", f, n)
		}
	}
	r := e.Call(t, e.Joe, "ReadVms", map[string]any{"Filters": map[string]any{"SubnetIds": map[string]any{"x": 1}}})
	if r.Status != http.StatusBadRequest || r.ErrorCode() != "4108" {
		t.Errorf("wrong-typed SubnetIds: %s, want 400 4108", r)
	}
}

// ReadVms' filters on the public IP a VM shows, on the public IPs linked
// to its NICs' private IPs and on the dates its NICs were linked select
// the VM that has them and no other.
func TestVmPublicIpAndNicLinkFilters(t *testing.T) {
	e := apitest.Start(t)
	vol := newVolume(t, e, e.Joe, 1)
	img := registerImage(t, e, e.Joe, "vm-base", newSnapshot(t, e, e.Joe, vol)).ImageId
	waitImage(t, e, e.Joe, img, "available")
	var net struct{ Net struct{ NetId string } }
	e.MustCall(t, e.Joe, "CreateNet", map[string]any{"IpRange": "10.0.0.0/16"}, &net)
	var sub struct{ Subnet struct{ SubnetId string } }
	e.MustCall(t, e.Joe, "CreateSubnet", map[string]any{"NetId": net.Net.NetId, "IpRange": "10.0.1.0/24"}, &sub)
	var inNet, outside struct {
		Vms []struct {
			VmId, CreationDate string
			Nics               []struct{ NicId string }
		}
	}
	e.MustCall(t, e.Joe, "CreateVms", map[string]any{"ImageId": img, "SubnetId": sub.Subnet.SubnetId}, &inNet)
	e.MustCall(t, e.Joe, "CreateVms", map[string]any{"ImageId": img}, &outside)
	vm := inNet.Vms[0]
	if len(vm.Nics) != 1 {
		t.Fatalf("VM in a subnet has %d NICs, want 1", len(vm.Nics))
	}
	var ip struct {
		PublicIp struct{ PublicIp, PublicIpId string }
	}
	e.MustCall(t, e.Joe, "CreatePublicIp", map[string]any{}, &ip)
	var unlinked struct {
		PublicIp struct{ PublicIp, PublicIpId string }
	}
	e.MustCall(t, e.Joe, "CreatePublicIp", map[string]any{}, &unlinked)
	e.MustCall(t, e.Joe, "LinkPublicIp", map[string]any{"PublicIpId": ip.PublicIp.PublicIpId, "NicId": vm.Nics[0].NicId}, nil)

	ids := func(filters map[string]any) []string {
		var out struct{ Vms []struct{ VmId string } }
		e.MustCall(t, e.Joe, "ReadVms", map[string]any{"Filters": filters}, &out)
		var got []string
		for _, v := range out.Vms {
			got = append(got, v.VmId)
		}
		return got
	}
	day := vm.CreationDate[:10]
	for _, c := range []struct {
		filters map[string]any
		want    []string
	}{
		{map[string]any{"PublicIps": []string{ip.PublicIp.PublicIp}}, []string{vm.VmId}},
		{map[string]any{"PublicIps": []string{unlinked.PublicIp.PublicIp}}, nil},
		{map[string]any{"NicPrivateIpsLinkPublicIpIds": []string{ip.PublicIp.PublicIpId}}, []string{vm.VmId}},
		{map[string]any{"NicPrivateIpsLinkPublicIpIds": []string{ip.PublicIp.PublicIp}}, []string{vm.VmId}},
		{map[string]any{"NicPrivateIpsLinkPublicIpIds": []string{unlinked.PublicIp.PublicIpId}}, nil},
		{map[string]any{"NicLinkNicLinkNicDates": []string{day}}, []string{vm.VmId}},
		{map[string]any{"NicLinkNicLinkNicDates": []string{vm.CreationDate}}, []string{vm.VmId}},
		{map[string]any{"NicLinkNicLinkNicDates": []string{"2001-01-01"}}, nil},
	} {
		if got := ids(c.filters); !equalStrings(got, c.want) {
			t.Errorf("ReadVms %v = %v, want %v", c.filters, got, c.want)
		}
	}
	// The link date stays omi's: ReadNics shows the API's LinkNic only.
	r := e.Call(t, e.Joe, "ReadNics", map[string]any{"Filters": map[string]any{"NicIds": []string{vm.Nics[0].NicId}}})
	if r.Status != http.StatusOK || strings.Contains(string(r.Body), "LinkDate") {
		t.Errorf("ReadNics: %s", r)
	}
	for _, bad := range []map[string]any{{"PublicIps": []int{1}}, {"NicLinkNicLinkNicDates": "2001-01-01"}} {
		if r := e.Call(t, e.Joe, "ReadVms", map[string]any{"Filters": bad}); r.Status != http.StatusBadRequest || r.ErrorCode() != "4108" {
			t.Errorf("ReadVms %v: %s, want 400 4108", bad, r)
		}
	}
}

// A VM created in a subnet with MapPublicIpOnLaunch gets a public IP on
// its primary NIC, which it shows as its PublicIp; a VM of a subnet
// without it gets none. The address is not one of the account's public
// IPs.
func TestMapPublicIpOnLaunch(t *testing.T) {
	e := apitest.Start(t)
	vol := newVolume(t, e, e.Joe, 1)
	img := registerImage(t, e, e.Joe, "vm-base", newSnapshot(t, e, e.Joe, vol)).ImageId
	waitImage(t, e, e.Joe, img, "available")
	var net struct{ Net struct{ NetId string } }
	e.MustCall(t, e.Joe, "CreateNet", map[string]any{"IpRange": "10.0.0.0/16"}, &net)
	subnet := func(cidr string, mapIP bool) string {
		var sub struct{ Subnet struct{ SubnetId string } }
		e.MustCall(t, e.Joe, "CreateSubnet", map[string]any{"NetId": net.Net.NetId, "IpRange": cidr}, &sub)
		if mapIP {
			e.MustCall(t, e.Joe, "UpdateSubnet", map[string]any{"SubnetId": sub.Subnet.SubnetId, "MapPublicIpOnLaunch": true}, nil)
		}
		return sub.Subnet.SubnetId
	}
	type vmView struct {
		VmId, PublicIp, PublicDnsName string
		Nics                          []struct {
			NicId        string
			LinkPublicIp *struct{ PublicIp string }
		}
	}
	create := func(subnetID string) vmView {
		var out struct{ Vms []vmView }
		e.MustCall(t, e.Joe, "CreateVms", map[string]any{"ImageId": img, "SubnetId": subnetID}, &out)
		var read struct{ Vms []vmView }
		e.MustCall(t, e.Joe, "ReadVms", map[string]any{"Filters": map[string]any{"VmIds": []string{out.Vms[0].VmId}}}, &read)
		if len(read.Vms) != 1 || len(read.Vms[0].Nics) != 1 || out.Vms[0].PublicIp != read.Vms[0].PublicIp {
			t.Fatalf("CreateVms %+v, ReadVms %+v", out.Vms, read.Vms)
		}
		return read.Vms[0]
	}
	mapped := create(subnet("10.0.1.0/24", true))
	plain := create(subnet("10.0.2.0/24", false))
	if mapped.PublicIp == "" || mapped.PublicDnsName == "" || mapped.Nics[0].LinkPublicIp == nil || mapped.Nics[0].LinkPublicIp.PublicIp != mapped.PublicIp {
		t.Errorf("VM of a MapPublicIpOnLaunch subnet: %+v, want a public IP on the VM and its primary NIC", mapped)
	}
	if plain.PublicIp != "" || plain.Nics[0].LinkPublicIp != nil {
		t.Errorf("VM of a subnet without MapPublicIpOnLaunch: %+v, want no public IP", plain)
	}
	var ips struct{ PublicIps []struct{ PublicIp string } }
	e.MustCall(t, e.Joe, "ReadPublicIps", map[string]any{}, &ips)
	if len(ips.PublicIps) != 0 {
		t.Errorf("ReadPublicIps lists %v: the mapped address is not an account's public IP", ips.PublicIps)
	}
	var byIP struct{ Vms []struct{ VmId string } }
	e.MustCall(t, e.Joe, "ReadVms", map[string]any{"Filters": map[string]any{"PublicIps": []string{mapped.PublicIp}}}, &byIP)
	if len(byIP.Vms) != 1 || byIP.Vms[0].VmId != mapped.VmId {
		t.Errorf("ReadVms PublicIps %s = %v, want %s", mapped.PublicIp, byIP.Vms, mapped.VmId)
	}
	r := e.Call(t, e.Joe, "ReadNics", map[string]any{"Filters": map[string]any{"NicIds": []string{mapped.Nics[0].NicId}}})
	if r.Status != http.StatusOK || strings.Contains(string(r.Body), "MappedPublicIp") || !strings.Contains(string(r.Body), mapped.PublicIp) {
		t.Errorf("ReadNics of the mapped NIC: %s", r)
	}
}

// ShutdownBehaviorConfiguration is on every VM as the real API shows it
// (stop/stop by default), set by CreateVms and UpdateVm, and its guest
// action is mirrored by VmInitiatedShutdownBehavior.
func TestShutdownBehaviorConfiguration(t *testing.T) {
	e := apitest.Start(t)
	vol := newVolume(t, e, e.Joe, 1)
	img := registerImage(t, e, e.Joe, "vm-base", newSnapshot(t, e, e.Joe, vol)).ImageId
	waitImage(t, e, e.Joe, img, "available")
	type conf struct{ GuestAction, HostAction string }
	type vmView struct {
		VmId, VmInitiatedShutdownBehavior string
		ShutdownBehaviorConfiguration     *conf
	}
	check := func(what string, v vmView, want conf, behavior string) {
		t.Helper()
		if v.ShutdownBehaviorConfiguration == nil || *v.ShutdownBehaviorConfiguration != want || v.VmInitiatedShutdownBehavior != behavior {
			t.Errorf("%s: %+v %+v, want %+v and %s", what, v, v.ShutdownBehaviorConfiguration, want, behavior)
		}
	}
	var plain, set struct{ Vms []vmView }
	e.MustCall(t, e.Joe, "CreateVms", map[string]any{"ImageId": img}, &plain)
	check("default", plain.Vms[0], conf{"stop", "stop"}, "stop")
	e.MustCall(t, e.Joe, "CreateVms", map[string]any{"ImageId": img,
		"ShutdownBehaviorConfiguration": map[string]any{"GuestAction": "terminate", "HostAction": "restart"}}, &set)
	check("created with terminate/restart", set.Vms[0], conf{"terminate", "restart"}, "terminate")
	var upd struct{ Vm vmView }
	e.MustCall(t, e.Joe, "UpdateVm", map[string]any{"VmId": set.Vms[0].VmId,
		"ShutdownBehaviorConfiguration": map[string]any{"GuestAction": "stop", "HostAction": "stop"}}, &upd)
	check("updated to stop/stop", upd.Vm, conf{"stop", "stop"}, "stop")
	e.MustCall(t, e.Joe, "UpdateVm", map[string]any{"VmId": set.Vms[0].VmId, "VmInitiatedShutdownBehavior": "terminate"}, &upd)
	check("VmInitiatedShutdownBehavior terminate", upd.Vm, conf{"terminate", "stop"}, "terminate")
	var read struct{ Vms []vmView }
	e.MustCall(t, e.Joe, "ReadVms", map[string]any{"Filters": map[string]any{"VmIds": []string{set.Vms[0].VmId}}}, &read)
	check("read", read.Vms[0], conf{"terminate", "stop"}, "terminate")
	e.MustCall(t, e.Joe, "UpdateVm", map[string]any{"VmId": set.Vms[0].VmId, "VmInitiatedShutdownBehavior": "restart"}, &upd)
	check("VmInitiatedShutdownBehavior restart", upd.Vm, conf{"stop", "restart"}, "restart")
	for _, bad := range []map[string]any{{"GuestAction": "restart"}, {"HostAction": "terminate"}} {
		if r := e.Call(t, e.Joe, "CreateVms", map[string]any{"ImageId": img, "ShutdownBehaviorConfiguration": bad}); r.Status != http.StatusBadRequest {
			t.Errorf("CreateVms with %v: %s, want 400", bad, r)
		}
	}
}

// The primary NIC made for a VM created with SubnetId reads as on the real
// cloud: "Primary network interface"; a VM of a Net and its NICs are
// source/dest checked, and NICs created with Nics keep what was asked.
func TestPrimaryNicAsRecorded(t *testing.T) {
	e := apitest.Start(t)
	vol := newVolume(t, e, e.Joe, 1)
	img := registerImage(t, e, e.Joe, "vm-base", newSnapshot(t, e, e.Joe, vol)).ImageId
	waitImage(t, e, e.Joe, img, "available")
	var net struct{ Net struct{ NetId string } }
	e.MustCall(t, e.Joe, "CreateNet", map[string]any{"IpRange": "10.0.0.0/16"}, &net)
	var sub struct{ Subnet struct{ SubnetId string } }
	e.MustCall(t, e.Joe, "CreateSubnet", map[string]any{"NetId": net.Net.NetId, "IpRange": "10.0.1.0/24"}, &sub)
	type vmView struct {
		IsSourceDestChecked bool
		Nics                []struct {
			Description         string
			IsSourceDestChecked bool
		}
	}
	var bySubnet, byNics struct{ Vms []vmView }
	e.MustCall(t, e.Joe, "CreateVms", map[string]any{"ImageId": img, "SubnetId": sub.Subnet.SubnetId}, &bySubnet)
	e.MustCall(t, e.Joe, "CreateVms", map[string]any{"ImageId": img,
		"Nics": []map[string]any{{"SubnetId": sub.Subnet.SubnetId, "DeviceNumber": 0, "Description": "mine"}}}, &byNics)
	v := bySubnet.Vms[0]
	if !v.IsSourceDestChecked || len(v.Nics) != 1 || v.Nics[0].Description != "Primary network interface" || !v.Nics[0].IsSourceDestChecked {
		t.Errorf("VM created with SubnetId: %+v", v)
	}
	v = byNics.Vms[0]
	if !v.IsSourceDestChecked || len(v.Nics) != 1 || v.Nics[0].Description != "mine" || !v.Nics[0].IsSourceDestChecked {
		t.Errorf("VM created with Nics: %+v", v)
	}
}

// CreateVms keeps the Performance asked for over the one of the VM type.
func TestCreateVmsPerformance(t *testing.T) {
	e := apitest.Start(t)
	vol := newVolume(t, e, e.Joe, 1)
	img := registerImage(t, e, e.Joe, "vm-base", newSnapshot(t, e, e.Joe, vol)).ImageId
	waitImage(t, e, e.Joe, img, "available")
	var out struct {
		Vms []struct{ Performance string }
	}
	e.MustCall(t, e.Joe, "CreateVms", map[string]any{"ImageId": img, "VmType": "tinav5.c2r2p2"}, &out)
	if out.Vms[0].Performance != "high" {
		t.Errorf("tinav5.c2r2p2 without Performance: %s, want high", out.Vms[0].Performance)
	}
	e.MustCall(t, e.Joe, "CreateVms", map[string]any{"ImageId": img, "VmType": "tinav5.c2r2p2", "Performance": "medium"}, &out)
	if out.Vms[0].Performance != "medium" {
		t.Errorf("Performance medium: %s", out.Vms[0].Performance)
	}
	if r := e.Call(t, e.Joe, "CreateVms", map[string]any{"ImageId": img, "Performance": "fast"}); r.Status != http.StatusBadRequest {
		t.Errorf("Performance fast: %s, want 400", r)
	}
}

// A public IP linked to a VM of the public Cloud reports a NIC and its
// account, as the real cloud does, stable across reads and usable as a
// filter.
func TestPublicCloudLinkShowsNic(t *testing.T) {
	e := apitest.Start(t)
	vol := newVolume(t, e, e.Joe, 1)
	img := registerImage(t, e, e.Joe, "vm-base", newSnapshot(t, e, e.Joe, vol)).ImageId
	waitImage(t, e, e.Joe, img, "available")
	var vms struct{ Vms []struct{ VmId string } }
	e.MustCall(t, e.Joe, "CreateVms", map[string]any{"ImageId": img}, &vms)
	var ip struct {
		PublicIp struct{ PublicIp, PublicIpId string }
	}
	e.MustCall(t, e.Joe, "CreatePublicIp", map[string]any{}, &ip)
	e.MustCall(t, e.Joe, "LinkPublicIp", map[string]any{"PublicIpId": ip.PublicIp.PublicIpId, "VmId": vms.Vms[0].VmId}, nil)
	type ipView struct{ NicId, NicAccountId, VmId string }
	read := func(filters map[string]any) []ipView {
		var out struct{ PublicIps []ipView }
		e.MustCall(t, e.Joe, "ReadPublicIps", map[string]any{"Filters": filters}, &out)
		return out.PublicIps
	}
	all := read(map[string]any{})
	if len(all) != 1 || !strings.HasPrefix(all[0].NicId, "eni-") || all[0].NicAccountId != e.Joe.AccountID || all[0].VmId != vms.Vms[0].VmId {
		t.Fatalf("ReadPublicIps: %+v", all)
	}
	if again := read(map[string]any{"NicIds": []string{all[0].NicId}}); len(again) != 1 || again[0] != all[0] {
		t.Errorf("ReadPublicIps by NicIds %s: %+v", all[0].NicId, again)
	}
	e.MustCall(t, e.Joe, "UnlinkPublicIp", map[string]any{"PublicIp": ip.PublicIp.PublicIp}, nil)
	if after := read(map[string]any{}); len(after) != 1 || after[0].NicId != "" || after[0].NicAccountId != "" {
		t.Errorf("after the unlink: %+v", after)
	}
}

// The rule filters on accounts, group ids and group names match the
// groups a rule grants and, as the real cloud answers, the group holding
// the rule; not an unrelated group.
func TestSecurityGroupRuleFiltersAsRecorded(t *testing.T) {
	e := apitest.Start(t)
	group := func(name string) string {
		var out struct {
			SecurityGroup struct{ SecurityGroupId string }
		}
		e.MustCall(t, e.Joe, "CreateSecurityGroup", map[string]any{"SecurityGroupName": name, "Description": name}, &out)
		return out.SecurityGroup.SecurityGroupId
	}
	g1, g2, g3 := group("qa-one"), group("qa-two"), group("qa-three")
	e.MustCall(t, e.Joe, "CreateSecurityGroupRule", map[string]any{"SecurityGroupId": g1, "Flow": "Inbound",
		"Rules": []map[string]any{{"IpProtocol": "tcp", "FromPortRange": 22, "ToPortRange": 22,
			"SecurityGroupsMembers": []map[string]any{{"SecurityGroupId": g2}}}}}, nil)
	e.MustCall(t, e.Joe, "CreateSecurityGroupRule", map[string]any{"SecurityGroupId": g3, "Flow": "Inbound",
		"Rules": []map[string]any{{"IpProtocol": "tcp", "FromPortRange": 80, "ToPortRange": 80, "IpRanges": []string{"46.231.147.88/32"}}}}, nil)
	ids := func(filters map[string]any) []string {
		var out struct {
			SecurityGroups []struct{ SecurityGroupId string }
		}
		e.MustCall(t, e.Joe, "ReadSecurityGroups", map[string]any{"Filters": filters}, &out)
		var got []string
		for _, g := range out.SecurityGroups {
			got = append(got, g.SecurityGroupId)
		}
		return got
	}
	for _, c := range []struct {
		filters map[string]any
		want    []string
	}{
		{map[string]any{"InboundRuleSecurityGroupIds": []string{g1}, "InboundRuleSecurityGroupNames": []string{"qa-one"}, "InboundRuleFromPortRanges": []int{22}}, []string{g1}},
		{map[string]any{"InboundRuleSecurityGroupIds": []string{g2}}, []string{g1}},
		{map[string]any{"InboundRuleSecurityGroupIds": []string{g3}, "InboundRuleFromPortRanges": []int{22}}, nil},
		{map[string]any{"InboundRuleAccountIds": []string{e.Joe.AccountID}, "Descriptions": []string{"qa-three"}}, []string{g3}},
		{map[string]any{"InboundRuleAccountIds": []string{e.Titi.AccountID}}, nil},
	} {
		if got := ids(c.filters); !equalStrings(got, c.want) {
			t.Errorf("ReadSecurityGroups %v = %v, want %v", c.filters, got, c.want)
		}
	}
}
