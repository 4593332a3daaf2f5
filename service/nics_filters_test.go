package service_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/service"
)

// TestReadNicsPublicIpAndTagFilters covers the ReadNics filters on the
// public IP of a NIC (its primary address's and any private address's),
// on the subregion and on tags: a NIC without a public IP never matches a
// public IP filter, and another account's filters never reach joe's NICs.
func TestReadNicsPublicIpAndTagFilters(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	n := mustNet(t, e, e.joe, "10.0.0.0/16")
	a := mustSubnet(t, e, e.joe, n.NetId, "10.0.1.0/24", "eu-west-2a")
	b := mustSubnet(t, e, e.joe, n.NetId, "10.0.2.0/24", "eu-west-2b")
	// nic1 has a secondary address carrying the public IP; nic2 has the
	// public IP on its primary address; nic3 has none.
	c1, err := e.svc.CreateNic(ctx, e.joe, &service.CreateNicRequest{SubnetId: a.SubnetId,
		PrivateIps: []service.PrivateIpLight{{PrivateIp: "10.0.1.10", IsPrimary: true}, {PrivateIp: "10.0.1.11"}}})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := e.svc.CreateNic(ctx, e.joe, &service.CreateNicRequest{SubnetId: b.SubnetId})
	if err != nil {
		t.Fatal(err)
	}
	c3, err := e.svc.CreateNic(ctx, e.joe, &service.CreateNicRequest{SubnetId: b.SubnetId})
	if err != nil {
		t.Fatal(err)
	}
	nic1, nic2, nic3 := c1.Nic.NicId, c2.Nic.NicId, c3.Nic.NicId
	p1, err := e.svc.CreatePublicIp(ctx, e.joe, &service.CreatePublicIpRequest{})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := e.svc.CreatePublicIp(ctx, e.joe, &service.CreatePublicIpRequest{})
	if err != nil {
		t.Fatal(err)
	}
	l1, err := e.svc.LinkPublicIp(ctx, e.joe, &service.LinkPublicIpRequest{PublicIpId: p1.PublicIp.PublicIpId, NicId: nic1, PrivateIp: "10.0.1.11"})
	if err != nil {
		t.Fatal(err)
	}
	l2, err := e.svc.LinkPublicIp(ctx, e.joe, &service.LinkPublicIpRequest{PublicIpId: p2.PublicIp.PublicIpId, NicId: nic2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateTags(ctx, e.joe, &service.CreateTagsRequest{ResourceIds: []string{nic3}, Tags: []omi.Tag{{Key: "role", Value: "spare"}}}); err != nil {
		t.Fatal(err)
	}
	// The public IP records name the NIC they are linked to.
	pubs, err := e.svc.ReadPublicIps(ctx, e.joe, &service.ReadPublicIpsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pubs.PublicIps {
		switch p.PublicIpId {
		case p1.PublicIp.PublicIpId:
			if p.NicId != nic1 || p.PrivateIp != "10.0.1.11" || p.NicAccountId != e.joe.AccountID() || p.LinkPublicIpId != l1.LinkPublicIpId {
				t.Errorf("public IP on a secondary address: %+v", p)
			}
		case p2.PublicIp.PublicIpId:
			if p.NicId != nic2 || p.PrivateIp != c2.Nic.PrimaryIp().PrivateIp || p.LinkPublicIpId != l2.LinkPublicIpId {
				t.Errorf("public IP on a primary address: %+v", p)
			}
		}
	}
	nic2Now := readNics(t, e, e.joe, &service.FiltersNic{NicIds: []string{nic2}})
	if len(nic2Now) != 1 || nic2Now[0].LinkPublicIp == nil {
		t.Fatalf("NIC with a public IP on its primary address: %+v", nic2Now)
	}
	dns := nic2Now[0].LinkPublicIp.PublicDnsName
	me := e.joe.AccountID()
	for _, c := range []struct {
		what string
		f    service.FiltersNic
		want []string
	}{
		{"public IP of the primary address", service.FiltersNic{LinkPublicIpPublicIps: []string{p2.PublicIp.PublicIp}}, []string{nic2}},
		{"public IP id", service.FiltersNic{LinkPublicIpPublicIpIds: []string{p2.PublicIp.PublicIpId, p1.PublicIp.PublicIpId}}, []string{nic2}},
		{"link id", service.FiltersNic{LinkPublicIpLinkPublicIpIds: []string{l2.LinkPublicIpId}}, []string{nic2}},
		{"public DNS name", service.FiltersNic{LinkPublicIpPublicDnsNames: []string{dns}}, []string{nic2}},
		{"public IP owner", service.FiltersNic{LinkPublicIpAccountIds: []string{me}}, []string{nic2}},
		{"public IP of any private address", service.FiltersNic{PrivateIpsLinkPublicIpPublicIps: []string{p1.PublicIp.PublicIp}}, []string{nic1}},
		{"owner of any private address's public IP", service.FiltersNic{PrivateIpsLinkPublicIpAccountIds: []string{me}}, []string{nic1, nic2}},
		{"unknown public IP", service.FiltersNic{LinkPublicIpPublicIps: []string{"100.64.0.1"}}, nil},
		{"subregion", service.FiltersNic{SubregionNames: []string{"eu-west-2b"}}, []string{nic2, nic3}},
		{"tag", service.FiltersNic{}, []string{nic3}},
	} {
		f := c.f
		if c.what == "tag" {
			f.Tags = []string{"role=spare"}
		}
		got := []string{}
		for _, x := range readNics(t, e, e.joe, &f) {
			got = append(got, x.NicId)
		}
		want := append([]string{}, c.want...)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("filter %s: NICs %v, want %v", c.what, got, want)
		}
	}
	// Bob's filters on joe's addresses reach nothing.
	if got := readNics(t, e, e.bob, &service.FiltersNic{LinkPublicIpPublicIps: []string{p2.PublicIp.PublicIp}}); len(got) != 0 {
		t.Errorf("bob reads joe's NIC through its public IP: %+v", got)
	}
	if got := readNics(t, e, e.bob, &service.FiltersNic{NicIds: []string{nic1, nic2, nic3}}); len(got) != 0 {
		t.Errorf("bob reads joe's NICs: %+v", got)
	}
	// Unlinking the address clears the NIC's link, and the filter follows.
	if _, err := e.svc.UnlinkPublicIp(ctx, e.joe, &service.UnlinkPublicIpRequest{LinkPublicIpId: l2.LinkPublicIpId}); err != nil {
		t.Fatal(err)
	}
	if got := readNics(t, e, e.joe, &service.FiltersNic{LinkPublicIpPublicIps: []string{p2.PublicIp.PublicIp}}); len(got) != 0 {
		t.Errorf("filter on an unlinked public IP still matches: %+v", got)
	}
	if got := readNics(t, e, e.joe, &service.FiltersNic{NicIds: []string{nic2}}); len(got) != 1 || got[0].LinkPublicIp != nil {
		t.Errorf("NIC after UnlinkPublicIp: %+v", got)
	}
	// Deleting a NIC frees its addresses and its public IP's link.
	before, _ := e.svc.ReadSubnets(ctx, e.joe, &service.ReadSubnetsRequest{Filters: &service.FiltersSubnet{SubnetIds: []string{a.SubnetId}}})
	if _, err := e.svc.DeleteNic(ctx, e.joe, &service.DeleteNicRequest{NicId: nic1}); err != nil {
		t.Fatal(err)
	}
	after, _ := e.svc.ReadSubnets(ctx, e.joe, &service.ReadSubnetsRequest{Filters: &service.FiltersSubnet{SubnetIds: []string{a.SubnetId}}})
	if after.Subnets[0].AvailableIpsCount != before.Subnets[0].AvailableIpsCount+2 {
		t.Errorf("AvailableIpsCount %d after deleting a NIC with 2 addresses, was %d", after.Subnets[0].AvailableIpsCount, before.Subnets[0].AvailableIpsCount)
	}
	pubs, _ = e.svc.ReadPublicIps(ctx, e.joe, &service.ReadPublicIpsRequest{Filters: &service.FiltersPublicIp{PublicIpIds: []string{p1.PublicIp.PublicIpId}}})
	if len(pubs.PublicIps) != 1 || pubs.PublicIps[0].NicId != "" || pubs.PublicIps[0].LinkPublicIpId != "" || pubs.PublicIps[0].PrivateIp != "" {
		t.Errorf("public IP of a deleted NIC: %+v", pubs.PublicIps)
	}
}

// TestReadVmsNicFilters covers the Nic* and VmSecurityGroup* filters of
// ReadVms: a VM matches when one of its NICs does; a VM of the public
// Cloud has no NIC and never matches; another account matches nothing.
func TestReadVmsNicFilters(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	n := mustNet(t, e, e.joe, "10.0.0.0/16")
	sn := mustSubnet(t, e, e.joe, n.NetId, "10.0.1.0/24", "eu-west-2a")
	web, err := e.svc.CreateSecurityGroup(ctx, e.joe, &service.CreateSecurityGroupRequest{SecurityGroupName: "web", Description: "d", NetId: n.NetId})
	if err != nil {
		t.Fatal(err)
	}
	img := e.image(e.joe, "nicfilter-image")
	inNet, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId, SubnetId: sn.SubnetId,
		SecurityGroupIds: []string{web.SecurityGroup.SecurityGroupId}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	vmID := inNet.Vms[0].VmId
	nics := readNics(t, e, e.joe, &service.FiltersNic{LinkNicVmIds: []string{vmID}})
	if len(nics) != 1 {
		t.Fatalf("NICs of the VM: %+v", nics)
	}
	nic := nics[0]
	ip, err := e.svc.CreatePublicIp(ctx, e.joe, &service.CreatePublicIpRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.LinkPublicIp(ctx, e.joe, &service.LinkPublicIpRequest{PublicIpId: ip.PublicIp.PublicIpId, NicId: nic.NicId}); err != nil {
		t.Fatal(err)
	}
	read := func(c *omi.Caller, filters string) []string {
		t.Helper()
		var req service.ReadVmsRequest
		if err := json.Unmarshal([]byte(`{"Filters":`+filters+`}`), &req); err != nil {
			t.Fatalf("%s: %v", filters, err)
		}
		out, err := e.svc.ReadVms(ctx, c, &req)
		if err != nil {
			t.Fatalf("%s: %v", filters, err)
		}
		ids := []string{}
		for _, v := range out.Vms {
			ids = append(ids, v.VmId)
		}
		return ids
	}
	q := func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	for _, f := range []string{
		`{"NicSubnetIds":` + q([]string{sn.SubnetId}) + `}`,
		`{"NicNetIds":` + q([]string{n.NetId}) + `}`,
		`{"NicNicIds":` + q([]string{nic.NicId}) + `}`,
		`{"NicMacAddresses":` + q([]string{nic.MacAddress}) + `}`,
		`{"NicPrivateIpsPrivateIps":` + q([]string{nic.PrimaryIp().PrivateIp}) + `,"NicPrivateIpsPrimaryIp":true}`,
		`{"NicLinkNicDeviceNumbers":[0],"NicLinkNicDeleteOnVmDeletion":true,"NicLinkNicStates":["attached"]}`,
		`{"NicStates":["in-use"],"NicSubregionNames":["eu-west-2a"],"NicIsSourceDestChecked":true}`,
		`{"NicSecurityGroupNames":["web"]}`,
		`{"NicAccountIds":` + q([]string{e.joe.AccountID()}) + `}`,
		`{"NicLinkPublicIpPublicIps":` + q([]string{ip.PublicIp.PublicIp}) + `}`,
		`{"NicLinkPublicIpPublicIpIds":` + q([]string{ip.PublicIp.PublicIpId}) + `}`,
		`{"VmSecurityGroupIds":` + q([]string{web.SecurityGroup.SecurityGroupId}) + `}`,
		`{"VmSecurityGroupNames":["web"]}`,
	} {
		if got := read(e.joe, f); len(got) != 1 || got[0] != vmID {
			t.Errorf("ReadVms %s: %v, want [%s]", f, got, vmID)
		}
	}
	for _, f := range []string{
		`{"NicSubnetIds":["subnet-00000000"]}`,
		`{"NicLinkNicDeviceNumbers":[1]}`,
		`{"NicLinkPublicIpPublicIps":["100.64.0.1"]}`,
		`{"VmSecurityGroupNames":["nope"]}`,
		`{"NicSubnetIds":` + q([]string{sn.SubnetId}) + `,"NicStates":["available"]}`,
	} {
		if got := read(e.joe, f); len(got) != 0 {
			t.Errorf("ReadVms %s: %v, want none", f, got)
		}
	}
	if got := read(e.bob, `{"NicSubnetIds":`+q([]string{sn.SubnetId})+`}`); len(got) != 0 {
		t.Errorf("bob reads joe's VM through its NIC: %v", got)
	}
	var bad service.ReadVmsRequest
	if err := json.Unmarshal([]byte(`{"Filters":{"NicLinkNicDeviceNumbers":["zero"]}}`), &bad); err == nil {
		t.Error("a wrong-typed Nic filter was accepted")
	}
}
