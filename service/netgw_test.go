package service_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/service"
	"github.com/omiproject/omi/sqlite"
)

// The tests of this file cover the gateways and routing of a Net: internet
// services, route tables and routes, NAT services, Net peerings and DHCP
// options sets, with their rules, error codes, filters, tags, dry runs and
// isolation between accounts. Responses are checked against the OpenAPI
// description.

// gwEnv is env with its store (to put Nets and subnets in place) and a
// third account, carol, who takes part in nothing.
type gwEnv struct {
	*env
	store omi.Store
	carol *omi.Caller
	clock time.Time
	// images holds the OMI each account's VMs run.
	images map[string]*omi.Image
}

func newGwEnv(t *testing.T) *gwEnv {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "omi.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	svc := service.New(store, service.Config{Region: "eu-west-2"}, nil)
	specs := []service.AccountSpec{
		{AccountID: "123456789012", Alias: "joe", Email: "joe@example.com", Password: "pw-joe-123"},
		{AccountID: "210987654321", Alias: "bob", Email: "bob@example.com", Password: "pw-bob-123"},
		{AccountID: "333333333333", Alias: "carol", Email: "carol@example.com", Password: "pw-carol-123"},
	}
	if err := svc.Provision(ctx, specs); err != nil {
		t.Fatal(err)
	}
	caller := func(s service.AccountSpec) *omi.Caller {
		return &omi.Caller{Account: &omi.Account{AccountId: s.AccountID, Alias: s.Alias}}
	}
	g := &gwEnv{env: &env{t: t, svc: svc, joe: caller(specs[0]), bob: caller(specs[1])}, store: store, carol: caller(specs[2]),
		clock: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), images: map[string]*omi.Image{}}
	svc.SetClock(func() time.Time { return g.clock })
	return g
}

// net creates a Net of c, with its main route table and default DHCP
// options.
func (g *gwEnv) net(c *omi.Caller, ipRange string) *omi.Net {
	g.t.Helper()
	out, err := g.svc.CreateNet(context.Background(), c, &service.CreateNetRequest{IpRange: ipRange})
	if err != nil {
		g.t.Fatal(err)
	}
	return out.Net
}

// subnet creates a subnet of a Net.
func (g *gwEnv) subnet(c *omi.Caller, n *omi.Net, ipRange string) *omi.Subnet {
	g.t.Helper()
	out, err := g.svc.CreateSubnet(context.Background(), c, &service.CreateSubnetRequest{NetId: n.NetId, IpRange: ipRange, SubregionName: "eu-west-2a"})
	if err != nil {
		g.t.Fatal(err)
	}
	return out.Subnet
}

// vmIn runs a VM of c in a subnet of n.
func (g *gwEnv) vmIn(c *omi.Caller, n *omi.Net, sn *omi.Subnet) *omi.Vm {
	g.t.Helper()
	img := g.images[c.AccountID()]
	if img == nil {
		img = g.image(c, "gw-image-"+c.AccountID())
		g.images[c.AccountID()] = img
	}
	out, err := g.svc.CreateVms(context.Background(), c, &service.CreateVmsRequest{ImageId: img.ImageId, VmType: "tinav5.c2r4p2", SubnetId: sn.SubnetId})
	if err != nil {
		g.t.Fatal(err)
	}
	g.settle()
	return out.Vms[0]
}

func (g *gwEnv) mainTable(c *omi.Caller, netID string) *omi.RouteTable {
	g.t.Helper()
	out, err := g.svc.ReadRouteTables(context.Background(), c, &service.ReadRouteTablesRequest{
		Filters: &service.FiltersRouteTable{NetIds: []string{netID}, LinkRouteTableMain: ptr(true)}})
	if err != nil || len(out.RouteTables) != 1 {
		g.t.Fatalf("main table of %s: %v %+v", netID, err, out)
	}
	return out.RouteTables[0]
}

func (g *gwEnv) table(c *omi.Caller, id string) *omi.RouteTable {
	g.t.Helper()
	out, err := g.svc.ReadRouteTables(context.Background(), c, &service.ReadRouteTablesRequest{Filters: &service.FiltersRouteTable{RouteTableIds: []string{id}}})
	if err != nil || len(out.RouteTables) != 1 {
		g.t.Fatalf("route table %s: %v %+v", id, err, out)
	}
	return out.RouteTables[0]
}

func (g *gwEnv) igw(c *omi.Caller) *omi.InternetService {
	g.t.Helper()
	out, err := g.svc.CreateInternetService(context.Background(), c, &service.CreateInternetServiceRequest{})
	if err != nil {
		g.t.Fatal(err)
	}
	nwValid(g.t, "CreateInternetService", out)
	return out.InternetService
}

func (g *gwEnv) readIgw(c *omi.Caller, id string) []*omi.InternetService {
	g.t.Helper()
	out, err := g.svc.ReadInternetServices(context.Background(), c, &service.ReadInternetServicesRequest{Filters: &service.FiltersInternetService{InternetServiceIds: []string{id}}})
	if err != nil {
		g.t.Fatal(err)
	}
	nwValid(g.t, "ReadInternetServices", out)
	return out.InternetServices
}

func (g *gwEnv) must(what string, err error) {
	g.t.Helper()
	if err != nil {
		g.t.Fatalf("%s: %v", what, err)
	}
}

func TestInternetServices(t *testing.T) {
	g := newGwEnv(t)
	ctx := context.Background()
	n1, n2 := g.net(g.joe, "10.0.0.0/16"), g.net(g.joe, "10.1.0.0/16")
	gw := g.igw(g.joe)
	if gw.NetId != "" || gw.State != "" || !omi.ValidID(gw.InternetServiceId, "igw") {
		t.Errorf("new internet service: %+v", gw)
	}

	// Dry runs change nothing.
	_, err := g.svc.CreateInternetService(dry(), g.joe, &service.CreateInternetServiceRequest{})
	nwCode(t, "dry-run create", err, "")
	all, _ := g.svc.ReadInternetServices(ctx, g.joe, &service.ReadInternetServicesRequest{})
	if len(all.InternetServices) != 1 {
		t.Errorf("a dry run created an internet service: %+v", all.InternetServices)
	}
	_, err = g.svc.LinkInternetService(dry(), g.joe, &service.LinkInternetServiceRequest{InternetServiceId: gw.InternetServiceId, NetId: n1.NetId})
	nwCode(t, "dry-run link", err, "")
	if got := g.readIgw(g.joe, gw.InternetServiceId)[0]; got.NetId != "" {
		t.Errorf("a dry-run link linked: %+v", got)
	}

	// Bad input.
	link := func(c *omi.Caller, id, net string) error {
		_, err := g.svc.LinkInternetService(ctx, c, &service.LinkInternetServiceRequest{InternetServiceId: id, NetId: net})
		return err
	}
	nwCode(t, "link without NetId", link(g.joe, gw.InternetServiceId, ""), "4045")
	nwCode(t, "link to a missing Net", link(g.joe, gw.InternetServiceId, "vpc-00000000"), "5065")
	nwCode(t, "link a missing service", link(g.joe, "igw-00000000", n1.NetId), "5019")

	g.must("link", link(g.joe, gw.InternetServiceId, n1.NetId))
	if got := g.readIgw(g.joe, gw.InternetServiceId)[0]; got.NetId != n1.NetId || got.State != "available" {
		t.Errorf("linked internet service: %+v", got)
	}
	nwCode(t, "link again", link(g.joe, gw.InternetServiceId, n2.NetId), "9024")
	gw2 := g.igw(g.joe)
	nwCode(t, "a second service in a Net", link(g.joe, gw2.InternetServiceId, n1.NetId), "9065")

	// Another account sees and changes nothing.
	if got := g.readIgw(g.bob, gw.InternetServiceId); len(got) != 0 {
		t.Errorf("bob reads joe's internet service: %+v", got)
	}
	bobNet := g.net(g.bob, "10.0.0.0/16")
	nwCode(t, "bob links joe's service", link(g.bob, gw2.InternetServiceId, bobNet.NetId), "5019")
	nwCode(t, "joe links to bob's Net", link(g.joe, gw2.InternetServiceId, bobNet.NetId), "5065")
	_, err = g.svc.DeleteInternetService(ctx, g.bob, &service.DeleteInternetServiceRequest{InternetServiceId: gw.InternetServiceId})
	nwCode(t, "bob deletes joe's service", err, "5019")
	_, err = g.svc.UnlinkInternetService(ctx, g.bob, &service.UnlinkInternetServiceRequest{InternetServiceId: gw.InternetServiceId, NetId: n1.NetId})
	nwCode(t, "bob unlinks joe's service", err, "5019")

	// A linked service cannot be deleted.
	_, err = g.svc.DeleteInternetService(ctx, g.joe, &service.DeleteInternetServiceRequest{InternetServiceId: gw.InternetServiceId})
	nwCode(t, "delete a linked service", err, "9024")

	// Filters.
	read := func(f *service.FiltersInternetService) int {
		out, err := g.svc.ReadInternetServices(ctx, g.joe, &service.ReadInternetServicesRequest{Filters: f})
		g.must("read", err)
		return len(out.InternetServices)
	}
	_, err = g.svc.CreateTags(ctx, g.joe, &service.CreateTagsRequest{ResourceIds: []string{gw.InternetServiceId}, Tags: []omi.Tag{{Key: "name", Value: "edge"}}})
	g.must("tag", err)
	for _, c := range []struct {
		f    *service.FiltersInternetService
		want int
	}{
		{&service.FiltersInternetService{LinkNetIds: []string{n1.NetId}}, 1},
		{&service.FiltersInternetService{LinkNetIds: []string{n2.NetId}}, 0},
		{&service.FiltersInternetService{LinkStates: []string{"available"}}, 1},
		{&service.FiltersInternetService{InternetServiceIds: []string{gw.InternetServiceId, gw2.InternetServiceId}}, 2},
		{&service.FiltersInternetService{}, 2},
	} {
		if got := read(c.f); got != c.want {
			t.Errorf("filter %+v: %d services, want %d", c.f, got, c.want)
		}
	}
	f := &service.FiltersInternetService{}
	f.TagKeys, f.Tags = []string{"name"}, []string{"name=edge"}
	if read(f) != 1 {
		t.Errorf("tag filters")
	}
	out, err := g.svc.ReadInternetServices(ctx, g.joe, &service.ReadInternetServicesRequest{Paging: service.Paging{ResultsPerPage: ptr(1)}})
	g.must("page 1", err)
	if len(out.InternetServices) != 1 || out.NextPageToken == "" {
		t.Fatalf("page 1: %+v", out)
	}
	out2, err := g.svc.ReadInternetServices(ctx, g.joe, &service.ReadInternetServicesRequest{Paging: service.Paging{NextPageToken: out.NextPageToken}})
	g.must("page 2", err)
	if len(out2.InternetServices) != 1 || out2.InternetServices[0].InternetServiceId == out.InternetServices[0].InternetServiceId {
		t.Errorf("page 2: %+v", out2)
	}
	_, err = g.svc.ReadInternetServices(ctx, g.joe, &service.ReadInternetServicesRequest{Paging: service.Paging{NextPageToken: "!!"}})
	nwCode(t, "bad page token", err, "4117")

	// Unlink: not from another Net, not while the Net has a NAT service;
	// a public IP linked to a VM of the Net stays linked (the provider's
	// TestAccVm_WithInternetServiceLink_Unlink_Basic, which passes on the
	// real cloud, unlinks the service and keeps the VM's public IP link).
	_, err = g.svc.UnlinkInternetService(ctx, g.joe, &service.UnlinkInternetServiceRequest{InternetServiceId: gw.InternetServiceId, NetId: n2.NetId})
	nwCode(t, "unlink from another Net", err, "1007")
	sn := g.subnet(g.joe, n1, "10.0.1.0/24")
	vm := g.vmIn(g.joe, n1, sn)
	ip, err := g.svc.CreatePublicIp(ctx, g.joe, &service.CreatePublicIpRequest{})
	g.must("public ip", err)
	_, err = g.svc.LinkPublicIp(ctx, g.joe, &service.LinkPublicIpRequest{PublicIpId: ip.PublicIp.PublicIpId, VmId: vm.VmId})
	g.must("link public ip", err)
	_, err = g.svc.UnlinkInternetService(ctx, g.joe, &service.UnlinkInternetServiceRequest{InternetServiceId: gw.InternetServiceId, NetId: n1.NetId})
	g.must("unlink with a public IP linked to a VM of the Net", err)
	ips, err := g.svc.ReadPublicIps(ctx, g.joe, &service.ReadPublicIpsRequest{})
	g.must("read public ips", err)
	if len(ips.PublicIps) != 1 || ips.PublicIps[0].VmId != vm.VmId {
		t.Errorf("after the unlink, public IPs %+v, want %s still linked to %s", ips.PublicIps, ip.PublicIp.PublicIp, vm.VmId)
	}
	_, err = g.svc.LinkInternetService(ctx, g.joe, &service.LinkInternetServiceRequest{InternetServiceId: gw.InternetServiceId, NetId: n1.NetId})
	g.must("link again", err)
	_, err = g.svc.UnlinkPublicIp(ctx, g.joe, &service.UnlinkPublicIpRequest{PublicIp: ip.PublicIp.PublicIp})
	g.must("unlink public ip", err)

	rt := g.mainTable(g.joe, n1.NetId)
	_, err = g.svc.CreateRoute(ctx, g.joe, &service.CreateRouteRequest{RouteTableId: rt.RouteTableId, DestinationIpRange: "0.0.0.0/0", GatewayId: gw.InternetServiceId})
	g.must("default route", err)
	nat, err := g.svc.CreateNatService(ctx, g.joe, &service.CreateNatServiceRequest{SubnetId: sn.SubnetId, PublicIpId: ip.PublicIp.PublicIpId})
	g.must("nat", err)
	_, err = g.svc.UnlinkInternetService(ctx, g.joe, &service.UnlinkInternetServiceRequest{InternetServiceId: gw.InternetServiceId, NetId: n1.NetId})
	nwCode(t, "unlink with a NAT service", err, "1018")
	_, err = g.svc.DeleteNatService(ctx, g.joe, &service.DeleteNatServiceRequest{NatServiceId: nat.NatService.NatServiceId})
	g.must("delete nat", err)

	_, err = g.svc.UnlinkInternetService(dry(), g.joe, &service.UnlinkInternetServiceRequest{InternetServiceId: gw.InternetServiceId, NetId: n1.NetId})
	g.must("dry-run unlink", err)
	_, err = g.svc.UnlinkInternetService(ctx, g.joe, &service.UnlinkInternetServiceRequest{InternetServiceId: gw.InternetServiceId, NetId: n1.NetId})
	g.must("unlink", err)
	if got := g.readIgw(g.joe, gw.InternetServiceId)[0]; got.NetId != "" || got.State != "" {
		t.Errorf("unlinked internet service: %+v", got)
	}
	_, err = g.svc.UnlinkInternetService(ctx, g.joe, &service.UnlinkInternetServiceRequest{InternetServiceId: gw.InternetServiceId, NetId: n1.NetId})
	nwCode(t, "unlink twice", err, "1007")

	// The route to the deleted service becomes a blackhole.
	_, err = g.svc.DeleteInternetService(ctx, g.joe, &service.DeleteInternetServiceRequest{InternetServiceId: gw.InternetServiceId})
	g.must("delete", err)
	if got := g.readIgw(g.joe, gw.InternetServiceId); len(got) != 0 {
		t.Errorf("deleted service still read: %+v", got)
	}
	if r := g.table(g.joe, rt.RouteTableId).Routes[1]; r.State != "blackhole" || r.GatewayId != gw.InternetServiceId {
		t.Errorf("route to a deleted service: %+v", r)
	}
	_, err = g.svc.DeleteInternetService(ctx, g.joe, &service.DeleteInternetServiceRequest{InternetServiceId: gw.InternetServiceId})
	nwCode(t, "delete twice", err, "5019")
	_, err = g.svc.DeleteInternetService(ctx, g.joe, &service.DeleteInternetServiceRequest{})
	nwCode(t, "delete without id", err, "4045")
}

func TestRouteTables(t *testing.T) {
	g := newGwEnv(t)
	ctx := context.Background()
	n := g.net(g.joe, "10.0.0.0/16")
	other := g.net(g.joe, "172.16.0.0/16")

	// The main table comes with the Net, linked to it, with the local route.
	main := g.mainTable(g.joe, n.NetId)
	nwValid(t, "ReadRouteTables", &service.ReadRouteTablesResponse{RouteTables: []*omi.RouteTable{main}})
	ml := main.MainLink()
	if ml == nil || ml.NetId != n.NetId || ml.SubnetId != "" || ml.RouteTableId != main.RouteTableId || !omi.ValidID(ml.LinkRouteTableId, "rtbassoc") {
		t.Errorf("main link: %+v", main.LinkRouteTables)
	}
	want := omi.Route{CreationMethod: "CreateRouteTable", DestinationIpRange: "10.0.0.0/16", GatewayId: "local", State: "active"}
	if len(main.Routes) != 1 || main.Routes[0] != want {
		t.Errorf("local route: %+v", main.Routes)
	}

	// CreateRouteTable.
	_, err := g.svc.CreateRouteTable(ctx, g.joe, &service.CreateRouteTableRequest{})
	nwCode(t, "create without NetId", err, "4045")
	_, err = g.svc.CreateRouteTable(ctx, g.joe, &service.CreateRouteTableRequest{NetId: "vpc-00000000"})
	nwCode(t, "create in a missing Net", err, "5065")
	_, err = g.svc.CreateRouteTable(dry(), g.joe, &service.CreateRouteTableRequest{NetId: n.NetId})
	g.must("dry-run create", err)
	created, err := g.svc.CreateRouteTable(ctx, g.joe, &service.CreateRouteTableRequest{NetId: n.NetId})
	g.must("create", err)
	nwValid(t, "CreateRouteTable", created)
	rt := created.RouteTable
	if len(rt.LinkRouteTables) != 0 || len(rt.Routes) != 1 || rt.Routes[0] != want || rt.NetId != n.NetId {
		t.Errorf("new route table: %+v", rt)
	}
	all, _ := g.svc.ReadRouteTables(ctx, g.joe, &service.ReadRouteTablesRequest{Filters: &service.FiltersRouteTable{NetIds: []string{n.NetId}}})
	if len(all.RouteTables) != 2 {
		t.Errorf("Net %s has %d tables, want 2 (main + created; the dry run made none)", n.NetId, len(all.RouteTables))
	}
	notMain, _ := g.svc.ReadRouteTables(ctx, g.joe, &service.ReadRouteTablesRequest{Filters: &service.FiltersRouteTable{NetIds: []string{n.NetId}, LinkRouteTableMain: ptr(false)}})
	if len(notMain.RouteTables) != 1 || notMain.RouteTables[0].RouteTableId != rt.RouteTableId {
		t.Errorf("LinkRouteTableMain false: %+v", notMain.RouteTables)
	}

	// Links.
	sn1, sn2 := g.subnet(g.joe, n, "10.0.1.0/24"), g.subnet(g.joe, n, "10.0.2.0/24")
	snOther := g.subnet(g.joe, other, "172.16.1.0/24")
	linkRT := func(c *omi.Caller, table, subnet string) (string, error) {
		out, err := g.svc.LinkRouteTable(ctx, c, &service.LinkRouteTableRequest{RouteTableId: table, SubnetId: subnet})
		if err != nil {
			return "", err
		}
		nwValid(t, "LinkRouteTable", out)
		return out.LinkRouteTableId, nil
	}
	_, err = linkRT(g.joe, rt.RouteTableId, snOther.SubnetId)
	nwCode(t, "link a subnet of another Net", err, "4086")
	_, err = linkRT(g.joe, rt.RouteTableId, "subnet-00000000")
	nwCode(t, "link a missing subnet", err, "5057")
	_, err = linkRT(g.joe, "rtb-00000000", sn1.SubnetId)
	nwCode(t, "link a missing table", err, "5046")
	_, err = linkRT(g.joe, rt.RouteTableId, "")
	nwCode(t, "link without subnet", err, "4045")
	l1, err := linkRT(g.joe, rt.RouteTableId, sn1.SubnetId)
	g.must("link 1", err)
	l2, err := linkRT(g.joe, rt.RouteTableId, sn2.SubnetId)
	g.must("link 2", err)
	_, err = linkRT(g.joe, main.RouteTableId, sn1.SubnetId)
	nwCode(t, "link a linked subnet", err, "9000")
	got := g.table(g.joe, rt.RouteTableId)
	if len(got.LinkRouteTables) != 2 || got.LinkRouteTables[0] != (omi.LinkRouteTable{LinkRouteTableId: l1, RouteTableId: rt.RouteTableId, SubnetId: sn1.SubnetId}) {
		t.Errorf("links: %+v", got.LinkRouteTables)
	}
	for _, c := range []struct {
		name string
		f    *service.FiltersRouteTable
		want int
	}{
		{"LinkSubnetIds", &service.FiltersRouteTable{LinkSubnetIds: []string{sn2.SubnetId}}, 1},
		{"LinkRouteTableLinkRouteTableIds", &service.FiltersRouteTable{LinkRouteTableLinkRouteTableIds: []string{l1}}, 1},
		{"LinkRouteTableLinkRouteTableIds main", &service.FiltersRouteTable{LinkRouteTableLinkRouteTableIds: []string{ml.LinkRouteTableId}}, 1},
		{"LinkRouteTableIds", &service.FiltersRouteTable{LinkRouteTableIds: []string{rt.RouteTableId}}, 1},
		{"RouteGatewayIds local", &service.FiltersRouteTable{RouteGatewayIds: []string{"local"}}, 3},
		{"RouteDestinationIpRanges", &service.FiltersRouteTable{RouteDestinationIpRanges: []string{"172.16.0.0/16"}}, 1},
		{"RouteCreationMethods", &service.FiltersRouteTable{RouteCreationMethods: []string{"CreateRoute"}}, 0},
		{"RouteStates", &service.FiltersRouteTable{RouteStates: []string{"active"}}, 3},
	} {
		out, err := g.svc.ReadRouteTables(ctx, g.joe, &service.ReadRouteTablesRequest{Filters: c.f})
		g.must(c.name, err)
		if len(out.RouteTables) != c.want {
			t.Errorf("filter %s: %d tables, want %d", c.name, len(out.RouteTables), c.want)
		}
	}

	// A table with links, or the main one, cannot be deleted.
	del := func(c *omi.Caller, id string) error {
		_, err := g.svc.DeleteRouteTable(ctx, c, &service.DeleteRouteTableRequest{RouteTableId: id})
		return err
	}
	nwCode(t, "delete a linked table", del(g.joe, rt.RouteTableId), "9059")
	nwCode(t, "delete the main table", del(g.joe, main.RouteTableId), "9066")
	_, err = g.svc.UnlinkRouteTable(ctx, g.joe, &service.UnlinkRouteTableRequest{LinkRouteTableId: ml.LinkRouteTableId})
	nwCode(t, "unlink the main link", err, "4047")
	_, err = g.svc.UnlinkRouteTable(ctx, g.joe, &service.UnlinkRouteTableRequest{LinkRouteTableId: "rtbassoc-00000000"})
	nwCode(t, "unlink a missing link", err, "5047")

	// Another account sees none of it and changes nothing.
	bobs, _ := g.svc.ReadRouteTables(ctx, g.bob, &service.ReadRouteTablesRequest{})
	if len(bobs.RouteTables) != 0 {
		t.Errorf("bob reads joe's tables: %+v", bobs.RouteTables)
	}
	nwCode(t, "bob deletes joe's table", del(g.bob, rt.RouteTableId), "5046")
	_, err = g.svc.UnlinkRouteTable(ctx, g.bob, &service.UnlinkRouteTableRequest{LinkRouteTableId: l1})
	nwCode(t, "bob unlinks joe's link", err, "5047")
	_, err = g.svc.CreateRouteTable(ctx, g.bob, &service.CreateRouteTableRequest{NetId: n.NetId})
	nwCode(t, "bob creates a table in joe's Net", err, "5065")
	_, err = g.svc.CreateRoute(ctx, g.bob, &service.CreateRouteRequest{RouteTableId: rt.RouteTableId, DestinationIpRange: "0.0.0.0/0", GatewayId: "igw-00000000"})
	nwCode(t, "bob routes joe's table", err, "5046")
	_, err = g.svc.UpdateRouteTableLink(ctx, g.bob, &service.UpdateRouteTableLinkRequest{LinkRouteTableId: l1, RouteTableId: rt.RouteTableId})
	nwCode(t, "bob moves joe's link", err, "5047")

	// The main link moves to another table (terraform's main route table
	// link): the old main table can then be deleted.
	_, err = g.svc.UpdateRouteTableLink(ctx, g.joe, &service.UpdateRouteTableLinkRequest{LinkRouteTableId: ml.LinkRouteTableId, RouteTableId: g.mainTable(g.joe, other.NetId).RouteTableId})
	nwCode(t, "move the main link to another Net", err, "4086")
	moved, err := g.svc.UpdateRouteTableLink(ctx, g.joe, &service.UpdateRouteTableLinkRequest{LinkRouteTableId: ml.LinkRouteTableId, RouteTableId: rt.RouteTableId})
	g.must("move the main link", err)
	nwValid(t, "UpdateRouteTableLink", moved)
	nm := g.mainTable(g.joe, n.NetId)
	if nm.RouteTableId != rt.RouteTableId || len(nm.LinkRouteTables) != 3 || nm.LinkRouteTables[2].LinkRouteTableId != moved.LinkRouteTableId || !nm.LinkRouteTables[2].Main {
		t.Errorf("new main table: %+v", nm)
	}
	g.must("delete the old main table", del(g.joe, main.RouteTableId))
	// And back (terraform destroys its main route table link so).
	second, err := g.svc.CreateRouteTable(ctx, g.joe, &service.CreateRouteTableRequest{NetId: n.NetId})
	g.must("create", err)
	back, err := g.svc.UpdateRouteTableLink(ctx, g.joe, &service.UpdateRouteTableLinkRequest{LinkRouteTableId: moved.LinkRouteTableId, RouteTableId: second.RouteTable.RouteTableId})
	g.must("move back", err)
	if g.mainTable(g.joe, n.NetId).RouteTableId != second.RouteTable.RouteTableId || back.LinkRouteTableId == moved.LinkRouteTableId {
		t.Errorf("main link moved back: %+v", back)
	}
	// A subnet link moves too.
	l1b, err := g.svc.UpdateRouteTableLink(ctx, g.joe, &service.UpdateRouteTableLinkRequest{LinkRouteTableId: l1, RouteTableId: second.RouteTable.RouteTableId})
	g.must("move a subnet link", err)
	if got := g.table(g.joe, second.RouteTable.RouteTableId).LinkRouteTables; len(got) != 2 || got[1].SubnetId != sn1.SubnetId || got[1].LinkRouteTableId != l1b.LinkRouteTableId {
		t.Errorf("moved subnet link: %+v", got)
	}

	// Unlink, then delete.
	for _, l := range []string{l1b.LinkRouteTableId, l2} {
		_, err = g.svc.UnlinkRouteTable(ctx, g.joe, &service.UnlinkRouteTableRequest{LinkRouteTableId: l})
		g.must("unlink "+l, err)
	}
	nwCode(t, "delete the main table", del(g.joe, rt.RouteTableId), "")
	if err := del(g.joe, rt.RouteTableId); code(err) != "5046" {
		t.Errorf("delete twice: %v", err)
	}
	// Paging.
	p1, err := g.svc.ReadRouteTables(ctx, g.joe, &service.ReadRouteTablesRequest{Paging: service.Paging{ResultsPerPage: ptr(1)}})
	g.must("page", err)
	if len(p1.RouteTables) != 1 || p1.NextPageToken == "" {
		t.Errorf("paging: %+v", p1)
	}
	_, err = g.svc.ReadRouteTables(ctx, g.joe, &service.ReadRouteTablesRequest{Paging: service.Paging{ResultsPerPage: ptr(0)}})
	nwCode(t, "ResultsPerPage 0", err, "4047")
}

func TestRoutes(t *testing.T) {
	g := newGwEnv(t)
	ctx := context.Background()
	n := g.net(g.joe, "10.0.0.0/16")
	other := g.net(g.joe, "10.9.0.0/16")
	rt := g.mainTable(g.joe, n.NetId)
	gw := g.igw(g.joe)
	route := func(in *service.CreateRouteRequest) (*omi.RouteTable, error) {
		in.RouteTableId = rt.RouteTableId
		out, err := g.svc.CreateRoute(ctx, g.joe, in)
		if err != nil {
			return nil, err
		}
		nwValid(t, "CreateRoute", out)
		return out.RouteTable, nil
	}

	// Bad input.
	for _, c := range []struct {
		name string
		in   service.CreateRouteRequest
		code string
	}{
		{"no destination", service.CreateRouteRequest{GatewayId: gw.InternetServiceId}, "4045"},
		{"not a range", service.CreateRouteRequest{DestinationIpRange: "10.0.0.0", GatewayId: gw.InternetServiceId}, "4030"},
		{"host bits", service.CreateRouteRequest{DestinationIpRange: "10.0.0.1/8", GatewayId: gw.InternetServiceId}, "4030"},
		{"IPv6", service.CreateRouteRequest{DestinationIpRange: "::/0", GatewayId: gw.InternetServiceId}, "4030"},
		{"no target", service.CreateRouteRequest{DestinationIpRange: "0.0.0.0/0"}, "4045"},
		{"two targets", service.CreateRouteRequest{DestinationIpRange: "0.0.0.0/0", GatewayId: gw.InternetServiceId, VmId: "i-00000000"}, "4046"},
		{"missing gateway", service.CreateRouteRequest{DestinationIpRange: "0.0.0.0/0", GatewayId: "igw-00000000"}, "5019"},
		{"not a gateway id", service.CreateRouteRequest{DestinationIpRange: "0.0.0.0/0", GatewayId: "vgw-00000000"}, "5019"},
		{"missing NAT", service.CreateRouteRequest{DestinationIpRange: "0.0.0.0/0", NatServiceId: "nat-00000000"}, "5032"},
		{"missing VM", service.CreateRouteRequest{DestinationIpRange: "0.0.0.0/0", VmId: "i-00000000"}, "5063"},
		{"missing NIC", service.CreateRouteRequest{DestinationIpRange: "0.0.0.0/0", NicId: "eni-00000000"}, "5036"},
		{"missing peering", service.CreateRouteRequest{DestinationIpRange: "0.0.0.0/0", NetPeeringId: "pcx-00000000"}, "5044"},
		{"the local route", service.CreateRouteRequest{DestinationIpRange: "10.0.0.0/16", GatewayId: gw.InternetServiceId}, "4047"},
	} {
		_, err := route(&c.in)
		nwCode(t, c.name, err, c.code)
	}
	_, err := g.svc.CreateRoute(ctx, g.joe, &service.CreateRouteRequest{RouteTableId: "rtb-00000000", DestinationIpRange: "0.0.0.0/0", GatewayId: gw.InternetServiceId})
	nwCode(t, "missing table", err, "5046")
	if got := g.table(g.joe, rt.RouteTableId); len(got.Routes) != 1 {
		t.Fatalf("failed calls left routes: %+v", got.Routes)
	}

	// A route to an internet service not linked yet is accepted and active
	// (terraform creates the route and the link in parallel).
	_, err = g.svc.CreateRoute(dry(), g.joe, &service.CreateRouteRequest{RouteTableId: rt.RouteTableId, DestinationIpRange: "0.0.0.0/0", GatewayId: gw.InternetServiceId})
	g.must("dry run", err)
	got, err := route(&service.CreateRouteRequest{DestinationIpRange: "0.0.0.0/0", GatewayId: gw.InternetServiceId})
	g.must("route to the internet service", err)
	want := omi.Route{CreationMethod: "CreateRoute", DestinationIpRange: "0.0.0.0/0", GatewayId: gw.InternetServiceId, State: "active"}
	if len(got.Routes) != 2 || got.Routes[1] != want {
		t.Errorf("routes: %+v", got.Routes)
	}
	_, err = route(&service.CreateRouteRequest{DestinationIpRange: "0.0.0.0/0", GatewayId: gw.InternetServiceId})
	nwCode(t, "the same destination", err, "9052")
	// A route wider than the Net is fine (the recorded real states have one).
	_, err = route(&service.CreateRouteRequest{DestinationIpRange: "10.0.0.0/8", GatewayId: gw.InternetServiceId})
	g.must("wider route", err)

	// An internet service linked to another Net is refused.
	gw2 := g.igw(g.joe)
	_, err = g.svc.LinkInternetService(ctx, g.joe, &service.LinkInternetServiceRequest{InternetServiceId: gw2.InternetServiceId, NetId: other.NetId})
	g.must("link gw2", err)
	_, err = route(&service.CreateRouteRequest{DestinationIpRange: "192.168.0.0/16", GatewayId: gw2.InternetServiceId})
	nwCode(t, "a service of another Net", err, "4086")

	// A VM of the Net, and of another Net.
	sn := g.subnet(g.joe, n, "10.0.1.0/24")
	vm := g.vmIn(g.joe, n, sn)
	got, err = route(&service.CreateRouteRequest{DestinationIpRange: "192.168.0.0/16", VmId: vm.VmId})
	g.must("route to a VM", err)
	if r := got.Routes[3]; r.VmId != vm.VmId || r.VmAccountId != g.joe.AccountID() || r.State != "active" {
		t.Errorf("route to a VM: %+v", r)
	}
	snOther := g.subnet(g.joe, other, "10.9.1.0/24")
	vmOther := g.vmIn(g.joe, other, snOther)
	_, err = route(&service.CreateRouteRequest{DestinationIpRange: "192.169.0.0/16", VmId: vmOther.VmId})
	nwCode(t, "a VM of another Net", err, "4086")

	// UpdateRoute changes the target; DeleteRoute removes the route.
	upd := func(in *service.UpdateRouteRequest) error {
		in.RouteTableId = rt.RouteTableId
		out, err := g.svc.UpdateRoute(ctx, g.joe, in)
		if err == nil {
			nwValid(t, "UpdateRoute", out)
		}
		return err
	}
	nwCode(t, "update a missing route", upd(&service.UpdateRouteRequest{DestinationIpRange: "1.2.3.0/24", GatewayId: gw.InternetServiceId}), "5045")
	nwCode(t, "update the local route", upd(&service.UpdateRouteRequest{DestinationIpRange: "10.0.0.0/16", GatewayId: gw.InternetServiceId}), "4047")
	g.must("update", upd(&service.UpdateRouteRequest{DestinationIpRange: "192.168.0.0/16", GatewayId: gw.InternetServiceId}))
	if r := g.table(g.joe, rt.RouteTableId).Routes[3]; r.GatewayId != gw.InternetServiceId || r.VmId != "" || r.CreationMethod != "CreateRoute" {
		t.Errorf("updated route: %+v", r)
	}

	// The VM's route turns blackhole when the VM is terminated.
	g.must("route to the VM again", upd(&service.UpdateRouteRequest{DestinationIpRange: "192.168.0.0/16", VmId: vm.VmId}))
	_, err = g.svc.DeleteVms(ctx, g.joe, &service.VmIdsRequest{VmIds: []string{vm.VmId}})
	g.must("terminate", err)
	g.settle()
	if r := g.table(g.joe, rt.RouteTableId).Routes[3]; r.State != "blackhole" {
		t.Errorf("route to a terminated VM: %+v", r)
	}
	bh, _ := g.svc.ReadRouteTables(ctx, g.joe, &service.ReadRouteTablesRequest{Filters: &service.FiltersRouteTable{RouteStates: []string{"blackhole"}}})
	if len(bh.RouteTables) != 1 {
		t.Errorf("RouteStates blackhole: %d tables", len(bh.RouteTables))
	}
	vmf, _ := g.svc.ReadRouteTables(ctx, g.joe, &service.ReadRouteTablesRequest{Filters: &service.FiltersRouteTable{RouteVmIds: []string{vm.VmId}}})
	if len(vmf.RouteTables) != 1 {
		t.Errorf("RouteVmIds: %d tables", len(vmf.RouteTables))
	}

	del := func(dest string) error {
		out, err := g.svc.DeleteRoute(ctx, g.joe, &service.DeleteRouteRequest{RouteTableId: rt.RouteTableId, DestinationIpRange: dest})
		if err == nil {
			nwValid(t, "DeleteRoute", out)
		}
		return err
	}
	nwCode(t, "delete the local route", del("10.0.0.0/16"), "4047")
	nwCode(t, "delete a missing route", del("1.2.3.0/24"), "5045")
	nwCode(t, "delete a bad range", del("1.2.3.4"), "4030")
	g.must("delete", del("192.168.0.0/16"))
	if got := g.table(g.joe, rt.RouteTableId).Routes; len(got) != 3 {
		t.Errorf("routes after delete: %+v", got)
	}
	_, err = g.svc.DeleteRoute(ctx, g.bob, &service.DeleteRouteRequest{RouteTableId: rt.RouteTableId, DestinationIpRange: "0.0.0.0/0"})
	nwCode(t, "bob deletes joe's route", err, "5046")
}

func TestNatServices(t *testing.T) {
	g := newGwEnv(t)
	ctx := context.Background()
	n := g.net(g.joe, "10.0.0.0/16")
	pub, priv := g.subnet(g.joe, n, "10.0.0.0/24"), g.subnet(g.joe, n, "10.0.1.0/24")
	ip, err := g.svc.CreatePublicIp(ctx, g.joe, &service.CreatePublicIpRequest{})
	g.must("ip", err)
	ipID := ip.PublicIp.PublicIpId
	create := func(c *omi.Caller, subnet, ipID, token string) (*omi.NatService, error) {
		out, err := g.svc.CreateNatService(ctx, c, &service.CreateNatServiceRequest{SubnetId: subnet, PublicIpId: ipID, ClientToken: token})
		if err != nil {
			return nil, err
		}
		nwValid(t, "CreateNatService", out)
		return out.NatService, nil
	}
	_, err = create(g.joe, "", ipID, "")
	nwCode(t, "no subnet", err, "4045")
	_, err = create(g.joe, pub.SubnetId, "", "")
	nwCode(t, "no public IP", err, "4045")
	_, err = create(g.joe, "subnet-00000000", ipID, "")
	nwCode(t, "missing subnet", err, "5057")
	_, err = create(g.joe, pub.SubnetId, "eipalloc-00000000", "")
	nwCode(t, "missing public IP", err, "5025")
	_, err = create(g.joe, pub.SubnetId, ipID, "")
	nwCode(t, "a subnet without a route to the internet", err, "9045")

	// Make the subnet public: its own table routes to an internet service.
	gw := g.igw(g.joe)
	_, err = g.svc.LinkInternetService(ctx, g.joe, &service.LinkInternetServiceRequest{InternetServiceId: gw.InternetServiceId, NetId: n.NetId})
	g.must("link igw", err)
	rtPub, err := g.svc.CreateRouteTable(ctx, g.joe, &service.CreateRouteTableRequest{NetId: n.NetId})
	g.must("rt", err)
	_, err = g.svc.CreateRoute(ctx, g.joe, &service.CreateRouteRequest{RouteTableId: rtPub.RouteTable.RouteTableId, DestinationIpRange: "0.0.0.0/0", GatewayId: gw.InternetServiceId})
	g.must("route", err)
	_, err = create(g.joe, pub.SubnetId, ipID, "")
	nwCode(t, "route in an unlinked table", err, "9045")
	_, err = g.svc.LinkRouteTable(ctx, g.joe, &service.LinkRouteTableRequest{RouteTableId: rtPub.RouteTable.RouteTableId, SubnetId: pub.SubnetId})
	g.must("link rt", err)

	// The public IP must be free.
	vm := g.vmIn(g.joe, n, priv)
	_, err = g.svc.LinkPublicIp(ctx, g.joe, &service.LinkPublicIpRequest{PublicIpId: ipID, VmId: vm.VmId})
	g.must("link ip", err)
	_, err = create(g.joe, pub.SubnetId, ipID, "")
	nwCode(t, "a linked public IP", err, "9031")
	_, err = g.svc.UnlinkPublicIp(ctx, g.joe, &service.UnlinkPublicIpRequest{PublicIp: ip.PublicIp.PublicIp})
	g.must("unlink ip", err)

	_, err = g.svc.CreateNatService(dry(), g.joe, &service.CreateNatServiceRequest{SubnetId: pub.SubnetId, PublicIpId: ipID})
	g.must("dry run", err)
	nat, err := create(g.joe, pub.SubnetId, ipID, "tok-1")
	g.must("create", err)
	if nat.State != "available" || nat.NetId != n.NetId || nat.SubnetId != pub.SubnetId || len(nat.PublicIps) != 1 ||
		nat.PublicIps[0] != (omi.PublicIpLight{PublicIp: ip.PublicIp.PublicIp, PublicIpId: ipID}) || !omi.ValidID(nat.NatServiceId, "nat") {
		t.Errorf("NAT service: %+v", nat)
	}
	again, err := create(g.joe, pub.SubnetId, ipID, "tok-1")
	g.must("same client token", err)
	if again.NatServiceId != nat.NatServiceId {
		t.Errorf("the client token made a second NAT service: %s", again.NatServiceId)
	}
	ip2, err := g.svc.CreatePublicIp(ctx, g.joe, &service.CreatePublicIpRequest{})
	g.must("ip2", err)
	_, err = create(g.joe, pub.SubnetId, ip2.PublicIp.PublicIpId, "tok-1")
	nwCode(t, "client token with other parameters", err, "9000")
	_, err = create(g.joe, pub.SubnetId, ip2.PublicIp.PublicIpId, "")
	nwCode(t, "a second NAT service in the subnet", err, "9037")

	// Its public IP is locked while it lives.
	_, err = g.svc.LinkPublicIp(ctx, g.joe, &service.LinkPublicIpRequest{PublicIpId: ipID, VmId: vm.VmId})
	nwCode(t, "link the NAT's IP to a VM", err, "9031")
	_, err = g.svc.DeletePublicIp(ctx, g.joe, &service.DeletePublicIpRequest{PublicIpId: ipID})
	nwCode(t, "release the NAT's IP", err, "9031")
	_, err = create(g.joe, priv.SubnetId, ipID, "")
	nwCode(t, "the IP of another NAT", err, "9031")

	// Routes of the private subnet's table go through it.
	rtPriv := g.mainTable(g.joe, n.NetId)
	_, err = g.svc.CreateRoute(ctx, g.joe, &service.CreateRouteRequest{RouteTableId: rtPriv.RouteTableId, DestinationIpRange: "0.0.0.0/0", NatServiceId: nat.NatServiceId})
	g.must("route to the NAT", err)
	byNat, _ := g.svc.ReadRouteTables(ctx, g.joe, &service.ReadRouteTablesRequest{Filters: &service.FiltersRouteTable{RouteNatServiceIds: []string{nat.NatServiceId}}})
	if len(byNat.RouteTables) != 1 || byNat.RouteTables[0].Routes[1].State != "active" {
		t.Errorf("RouteNatServiceIds: %+v", byNat.RouteTables)
	}

	// Filters and isolation.
	_, err = g.svc.CreateTags(ctx, g.joe, &service.CreateTagsRequest{ResourceIds: []string{nat.NatServiceId}, Tags: []omi.Tag{{Key: "Key", Value: "value-tags"}}})
	g.must("tag", err)
	for _, c := range []struct {
		name string
		f    service.FiltersNatService
		want int
	}{
		{"SubnetIds", service.FiltersNatService{SubnetIds: []string{pub.SubnetId}}, 1},
		{"SubnetIds other", service.FiltersNatService{SubnetIds: []string{priv.SubnetId}}, 0},
		{"NetIds", service.FiltersNatService{NetIds: []string{n.NetId}}, 1},
		{"States", service.FiltersNatService{States: []string{"available"}}, 1},
		{"States deleted", service.FiltersNatService{States: []string{"deleted"}}, 0},
		{"ClientTokens", service.FiltersNatService{ClientTokens: []string{"tok-1"}}, 1},
		{"NatServiceIds", service.FiltersNatService{NatServiceIds: []string{nat.NatServiceId}}, 1},
	} {
		out, err := g.svc.ReadNatServices(ctx, g.joe, &service.ReadNatServicesRequest{Filters: &c.f})
		g.must(c.name, err)
		nwValid(t, "ReadNatServices", out)
		if len(out.NatServices) != c.want {
			t.Errorf("filter %s: %d, want %d", c.name, len(out.NatServices), c.want)
		}
	}
	tf := &service.FiltersNatService{}
	tf.TagValues = []string{"value-tags"}
	if out, _ := g.svc.ReadNatServices(ctx, g.joe, &service.ReadNatServicesRequest{Filters: tf}); len(out.NatServices) != 1 {
		t.Errorf("TagValues filter")
	}
	if out, _ := g.svc.ReadNatServices(ctx, g.bob, &service.ReadNatServicesRequest{}); len(out.NatServices) != 0 {
		t.Errorf("bob reads joe's NAT services")
	}
	_, err = g.svc.DeleteNatService(ctx, g.bob, &service.DeleteNatServiceRequest{NatServiceId: nat.NatServiceId})
	nwCode(t, "bob deletes joe's NAT", err, "5032")
	_, err = g.svc.CreateNatService(ctx, g.bob, &service.CreateNatServiceRequest{SubnetId: pub.SubnetId, PublicIpId: ipID})
	nwCode(t, "bob uses joe's subnet", err, "5057")

	// A subnet with a NAT service cannot be deleted; its Net neither.
	err = g.store.Update(ctx, func(tx omi.Tx) error { return g.svc.NetgwDeleteSubnet(tx, g.joe.AccountID(), pub) })
	nwCode(t, "delete the NAT's subnet", err, "9095")

	// Deleting it frees the IP; routes to it turn blackhole.
	_, err = g.svc.DeleteNatService(ctx, g.joe, &service.DeleteNatServiceRequest{NatServiceId: nat.NatServiceId})
	g.must("delete", err)
	if r := g.table(g.joe, rtPriv.RouteTableId).Routes[1]; r.State != "blackhole" {
		t.Errorf("route to a deleted NAT: %+v", r)
	}
	_, err = g.svc.LinkPublicIp(ctx, g.joe, &service.LinkPublicIpRequest{PublicIpId: ipID, VmId: vm.VmId})
	g.must("the IP is free again", err)
	_, err = g.svc.DeleteNatService(ctx, g.joe, &service.DeleteNatServiceRequest{NatServiceId: nat.NatServiceId})
	nwCode(t, "delete twice", err, "5032")
	// The subnet's route table link goes with the subnet.
	err = g.store.Update(ctx, func(tx omi.Tx) error { return g.svc.NetgwDeleteSubnet(tx, g.joe.AccountID(), pub) })
	g.must("delete the subnet", err)
	if got := g.table(g.joe, rtPub.RouteTable.RouteTableId).LinkRouteTables; len(got) != 0 {
		t.Errorf("links of a deleted subnet: %+v", got)
	}
}

func TestNetPeerings(t *testing.T) {
	g := newGwEnv(t)
	ctx := context.Background()
	a, b := g.net(g.joe, "10.10.0.0/24"), g.net(g.joe, "10.31.0.0/16")
	overlap := g.net(g.joe, "10.31.128.0/17")
	bobNet := g.net(g.bob, "10.20.0.0/16")
	create := func(c *omi.Caller, src, acc, owner string) (*omi.NetPeering, error) {
		out, err := g.svc.CreateNetPeering(ctx, c, &service.CreateNetPeeringRequest{SourceNetId: src, AccepterNetId: acc, AccepterOwnerId: owner})
		if err != nil {
			return nil, err
		}
		nwValid(t, "CreateNetPeering", out)
		return out.NetPeering, nil
	}
	read := func(c *omi.Caller, f *service.FiltersNetPeering) []*omi.NetPeering {
		out, err := g.svc.ReadNetPeerings(ctx, c, &service.ReadNetPeeringsRequest{Filters: f})
		g.must("read", err)
		nwValid(t, "ReadNetPeerings", out)
		return out.NetPeerings
	}
	one := func(c *omi.Caller, id string) *omi.NetPeering {
		got := read(c, &service.FiltersNetPeering{NetPeeringIds: []string{id}})
		if len(got) != 1 {
			t.Fatalf("%s reads %d peerings %s", c.Account.Alias, len(got), id)
		}
		return got[0]
	}

	_, err := create(g.joe, a.NetId, "", "")
	nwCode(t, "no accepter", err, "4045")
	_, err = create(g.joe, a.NetId, a.NetId, "")
	nwCode(t, "a Net with itself", err, "4047")
	_, err = create(g.joe, "vpc-00000000", b.NetId, "")
	nwCode(t, "missing source", err, "5065")
	_, err = create(g.joe, a.NetId, bobNet.NetId, "")
	nwCode(t, "bob's Net without his account id", err, "5065")
	_, err = create(g.joe, a.NetId, bobNet.NetId, g.carol.AccountID())
	nwCode(t, "bob's Net named as carol's", err, "5065")
	_, err = create(g.bob, a.NetId, bobNet.NetId, g.bob.AccountID())
	nwCode(t, "bob peers joe's Net", err, "5065")

	// Within one account.
	_, err = g.svc.CreateNetPeering(dry(), g.joe, &service.CreateNetPeeringRequest{SourceNetId: b.NetId, AccepterNetId: a.NetId})
	g.must("dry run", err)
	p, err := create(g.joe, b.NetId, a.NetId, "")
	g.must("create", err)
	if p.State.Name != "pending-acceptance" || p.State.Message != "Pending acceptance by "+g.joe.AccountID() || p.ExpirationDate == nil ||
		p.SourceNet != (omi.PeeringNet{AccountId: g.joe.AccountID(), IpRange: "10.31.0.0/16", NetId: b.NetId}) ||
		p.AccepterNet != (omi.PeeringNet{AccountId: g.joe.AccountID(), IpRange: "10.10.0.0/24", NetId: a.NetId}) || !omi.ValidID(p.NetPeeringId, "pcx") {
		t.Errorf("new peering: %+v", p)
	}
	if len(read(g.joe, nil)) != 1 {
		t.Errorf("the dry run created a peering")
	}
	_, err = create(g.joe, b.NetId, a.NetId, "")
	nwCode(t, "the same request twice", err, "9067")

	// Overlapping Nets: the peering fails at once, as the API documents.
	f, err := create(g.joe, overlap.NetId, b.NetId, "")
	g.must("overlapping", err)
	if f.State.Name != "failed" {
		t.Errorf("peering of overlapping Nets: %+v", f.State)
	}
	_, err = g.svc.AcceptNetPeering(ctx, g.joe, &service.AcceptNetPeeringRequest{NetPeeringId: f.NetPeeringId})
	nwCode(t, "accept a failed peering", err, "6003")
	_, err = g.svc.DeleteNetPeering(ctx, g.joe, &service.DeleteNetPeeringRequest{NetPeeringId: f.NetPeeringId})
	nwCode(t, "delete a failed peering", err, "6003")

	// A route to it is a blackhole until it is accepted.
	rt := g.mainTable(g.joe, a.NetId)
	_, err = g.svc.CreateRoute(ctx, g.joe, &service.CreateRouteRequest{RouteTableId: rt.RouteTableId, DestinationIpRange: "10.31.0.0/16", NetPeeringId: p.NetPeeringId})
	g.must("route to the peering", err)
	if r := g.table(g.joe, rt.RouteTableId).Routes[1]; r.State != "blackhole" || r.NetPeeringId != p.NetPeeringId {
		t.Errorf("route to a pending peering: %+v", r)
	}
	_, err = g.svc.CreateRoute(ctx, g.joe, &service.CreateRouteRequest{RouteTableId: g.mainTable(g.joe, overlap.NetId).RouteTableId, DestinationIpRange: "10.10.0.0/24", NetPeeringId: p.NetPeeringId})
	nwCode(t, "route to a peering of other Nets", err, "4086")
	accepted, err := g.svc.AcceptNetPeering(ctx, g.joe, &service.AcceptNetPeeringRequest{NetPeeringId: p.NetPeeringId})
	g.must("accept", err)
	nwValid(t, "AcceptNetPeering", accepted)
	if accepted.NetPeering.State.Name != "active" {
		t.Errorf("accepted: %+v", accepted.NetPeering.State)
	}
	if r := g.table(g.joe, rt.RouteTableId).Routes[1]; r.State != "active" {
		t.Errorf("route to an active peering: %+v", r)
	}
	_, err = g.svc.AcceptNetPeering(ctx, g.joe, &service.AcceptNetPeeringRequest{NetPeeringId: p.NetPeeringId})
	nwCode(t, "accept twice", err, "6003")
	// The other way round is redundant: rejected at once.
	rev, err := create(g.joe, a.NetId, b.NetId, "")
	g.must("reverse", err)
	if rev.State.Name != "rejected" {
		t.Errorf("redundant peering: %+v", rev.State)
	}

	// Across accounts: bob accepts joe's request; carol sees nothing.
	x, err := create(g.joe, a.NetId, bobNet.NetId, g.bob.AccountID())
	g.must("cross-account", err)
	if x.AccepterNet.AccountId != g.bob.AccountID() || x.State.Message != "Pending acceptance by "+g.bob.AccountID() {
		t.Errorf("cross-account peering: %+v", x)
	}
	if got := one(g.bob, x.NetPeeringId); got.SourceNet.NetId != a.NetId {
		t.Errorf("bob's view: %+v", got)
	}
	if len(read(g.bob, nil)) != 1 {
		t.Errorf("bob sees peerings he is not part of")
	}
	if got := read(g.carol, nil); len(got) != 0 {
		t.Errorf("carol sees %d peerings", len(got))
	}
	for _, c := range []struct {
		name string
		err  error
		code string
	}{
		{"carol accepts", func() error {
			_, err := g.svc.AcceptNetPeering(ctx, g.carol, &service.AcceptNetPeeringRequest{NetPeeringId: x.NetPeeringId})
			return err
		}(), "5044"},
		{"carol deletes", func() error {
			_, err := g.svc.DeleteNetPeering(ctx, g.carol, &service.DeleteNetPeeringRequest{NetPeeringId: x.NetPeeringId})
			return err
		}(), "5044"},
		{"carol tags", func() error {
			_, err := g.svc.CreateTags(ctx, g.carol, &service.CreateTagsRequest{ResourceIds: []string{x.NetPeeringId}, Tags: []omi.Tag{{Key: "k", Value: "v"}}})
			return err
		}(), "5044"},
		{"joe accepts his own request to bob", func() error {
			_, err := g.svc.AcceptNetPeering(ctx, g.joe, &service.AcceptNetPeeringRequest{NetPeeringId: x.NetPeeringId})
			return err
		}(), "4047"},
		{"joe rejects his own request to bob", func() error {
			_, err := g.svc.RejectNetPeering(ctx, g.joe, &service.RejectNetPeeringRequest{NetPeeringId: x.NetPeeringId})
			return err
		}(), "4047"},
		{"bob deletes a pending request", func() error {
			_, err := g.svc.DeleteNetPeering(ctx, g.bob, &service.DeleteNetPeeringRequest{NetPeeringId: x.NetPeeringId})
			return err
		}(), "4047"},
		{"bob routes to it from joe's table", func() error {
			_, err := g.svc.CreateRoute(ctx, g.bob, &service.CreateRouteRequest{RouteTableId: rt.RouteTableId, DestinationIpRange: "10.20.0.0/16", NetPeeringId: x.NetPeeringId})
			return err
		}(), "5046"},
	} {
		nwCode(t, c.name, c.err, c.code)
	}
	// Tags are the requester's; the accepter reads them.
	_, err = g.svc.CreateTags(ctx, g.joe, &service.CreateTagsRequest{ResourceIds: []string{x.NetPeeringId}, Tags: []omi.Tag{{Key: "name", Value: "to-bob"}}})
	g.must("tag", err)
	if got := one(g.bob, x.NetPeeringId); len(got.Tags) != 1 {
		t.Errorf("bob's view of the tags: %+v", got.Tags)
	}
	_, err = g.svc.CreateTags(ctx, g.bob, &service.CreateTagsRequest{ResourceIds: []string{x.NetPeeringId}, Tags: []omi.Tag{{Key: "k", Value: "v"}}})
	nwCode(t, "bob tags joe's peering", err, "5044")
	// Bob can route to it from his Net.
	_, err = g.svc.CreateRoute(ctx, g.bob, &service.CreateRouteRequest{RouteTableId: g.mainTable(g.bob, bobNet.NetId).RouteTableId, DestinationIpRange: "10.10.0.0/24", NetPeeringId: x.NetPeeringId})
	g.must("bob routes to the peering", err)
	_, err = g.svc.AcceptNetPeering(ctx, g.bob, &service.AcceptNetPeeringRequest{NetPeeringId: x.NetPeeringId})
	g.must("bob accepts", err)
	if got := one(g.joe, x.NetPeeringId); got.State.Name != "active" || got.ExpirationDate != nil {
		t.Errorf("joe's view after acceptance: %+v", got)
	}
	// Either side deletes an active peering; it stays readable as deleted
	// for an hour.
	_, err = g.svc.DeleteNetPeering(ctx, g.bob, &service.DeleteNetPeeringRequest{NetPeeringId: x.NetPeeringId})
	g.must("bob deletes the active peering", err)
	if got := one(g.joe, x.NetPeeringId); got.State.Name != "deleted" {
		t.Errorf("deleted: %+v", got.State)
	}
	_, err = g.svc.DeleteNetPeering(ctx, g.joe, &service.DeleteNetPeeringRequest{NetPeeringId: x.NetPeeringId})
	nwCode(t, "delete twice", err, "6003")

	// Reject.
	g.clock = g.clock.Add(time.Minute)
	y, err := create(g.joe, b.NetId, bobNet.NetId, g.bob.AccountID())
	g.must("second request", err)
	_, err = g.svc.RejectNetPeering(ctx, g.bob, &service.RejectNetPeeringRequest{NetPeeringId: y.NetPeeringId})
	g.must("reject", err)
	if got := one(g.joe, y.NetPeeringId); got.State.Name != "rejected" {
		t.Errorf("rejected: %+v", got.State)
	}
	_, err = g.svc.RejectNetPeering(ctx, g.bob, &service.RejectNetPeeringRequest{NetPeeringId: y.NetPeeringId})
	nwCode(t, "reject twice", err, "6003")

	// Filters.
	for _, c := range []struct {
		name string
		f    service.FiltersNetPeering
		want int
	}{
		{"StateNames", service.FiltersNetPeering{StateNames: []string{"active"}}, 1},
		{"AccepterNetAccountIds", service.FiltersNetPeering{AccepterNetAccountIds: []string{g.bob.AccountID()}}, 2},
		{"AccepterNetNetIds", service.FiltersNetPeering{AccepterNetNetIds: []string{a.NetId}}, 1},
		{"AccepterNetIpRanges", service.FiltersNetPeering{AccepterNetIpRanges: []string{"10.20.0.0/16"}}, 2},
		{"SourceNetNetIds", service.FiltersNetPeering{SourceNetNetIds: []string{b.NetId}}, 2},
		{"SourceNetIpRanges", service.FiltersNetPeering{SourceNetIpRanges: []string{"10.31.128.0/17"}}, 1},
		{"SourceNetAccountIds", service.FiltersNetPeering{SourceNetAccountIds: []string{g.joe.AccountID()}}, 5},
		{"StateMessages", service.FiltersNetPeering{StateMessages: []string{"Rejected by " + g.bob.AccountID()}}, 1},
		{"ExpirationDates", service.FiltersNetPeering{ExpirationDates: []string{*y.ExpirationDate}}, 1},
	} {
		if got := read(g.joe, &c.f); len(got) != c.want {
			t.Errorf("filter %s: %d, want %d", c.name, len(got), c.want)
		}
	}
	_, err = g.svc.ReadNetPeerings(ctx, g.joe, &service.ReadNetPeeringsRequest{Filters: &service.FiltersNetPeering{ExpirationDates: []string{"tomorrow"}}})
	nwCode(t, "a bad date filter", err, "4047")

	// A request left a week expires; ended peerings disappear after an hour.
	z, err := create(g.joe, b.NetId, bobNet.NetId, g.bob.AccountID())
	g.must("third request", err)
	g.clock = g.clock.Add(7*24*time.Hour + time.Minute)
	if got := one(g.bob, z.NetPeeringId); got.State.Name != "expired" {
		t.Errorf("after a week: %+v", got.State)
	}
	_, err = g.svc.AcceptNetPeering(ctx, g.bob, &service.AcceptNetPeeringRequest{NetPeeringId: z.NetPeeringId})
	nwCode(t, "accept an expired request", err, "6003")
	g.clock = g.clock.Add(2 * time.Hour)
	if got := read(g.joe, nil); len(got) != 1 || got[0].NetPeeringId != p.NetPeeringId {
		t.Errorf("after the linger time joe reads %d peerings, want the active one", len(got))
	}

	// Deleting a Net ends its peerings.
	err = g.store.Update(ctx, func(tx omi.Tx) error { return g.svc.NetgwDeleteNet(tx, g.joe.AccountID(), a.NetId) })
	g.must("delete the Net's gateways", err)
	if got := one(g.joe, p.NetPeeringId); got.State.Name != "deleted" {
		t.Errorf("peering of a deleted Net: %+v", got.State)
	}
}

func TestDhcpOptions(t *testing.T) {
	g := newGwEnv(t)
	ctx := context.Background()
	read := func(c *omi.Caller, f *service.FiltersDhcpOptions) []*omi.DhcpOptionsSet {
		out, err := g.svc.ReadDhcpOptions(ctx, c, &service.ReadDhcpOptionsRequest{Filters: f})
		g.must("read", err)
		nwValid(t, "ReadDhcpOptions", out)
		return out.DhcpOptionsSets
	}
	// The default set is there from the start.
	def := read(g.joe, nil)
	if len(def) != 1 || !def[0].Default || def[0].DomainName != "eu-west-2.compute.internal" || len(def[0].DomainNameServers) != 1 ||
		def[0].DomainNameServers[0] != "OutscaleProvidedDNS" || !omi.ValidID(def[0].DhcpOptionsSetId, "dopt") {
		t.Fatalf("default set: %+v", def)
	}
	if n := g.net(g.joe, "10.0.0.0/16"); n.DhcpOptionsSetId != def[0].DhcpOptionsSetId {
		t.Errorf("a new Net uses %s, not the default set %s", n.DhcpOptionsSetId, def[0].DhcpOptionsSetId)
	}
	if got := read(g.joe, nil); len(got) != 1 {
		t.Errorf("stored default set listed twice: %+v", got)
	}

	create := func(in *service.CreateDhcpOptionsRequest) (*omi.DhcpOptionsSet, error) {
		out, err := g.svc.CreateDhcpOptions(ctx, g.joe, in)
		if err != nil {
			return nil, err
		}
		nwValid(t, "CreateDhcpOptions", out)
		return out.DhcpOptionsSet, nil
	}
	for _, c := range []struct {
		name string
		in   service.CreateDhcpOptionsRequest
		code string
	}{
		{"nothing", service.CreateDhcpOptionsRequest{}, "4045"},
		{"bad domain", service.CreateDhcpOptionsRequest{DomainName: "a_b!"}, "4047"},
		{"bad DNS", service.CreateDhcpOptionsRequest{DomainNameServers: []string{"dns.example"}}, "4030"},
		{"bad NTP", service.CreateDhcpOptionsRequest{NtpServers: []string{"OutscaleProvidedDNS"}}, "4030"},
		{"IPv6 log server", service.CreateDhcpOptionsRequest{LogServers: []string{"::1"}}, "4030"},
		{"five NTP servers", service.CreateDhcpOptionsRequest{NtpServers: []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"}}, "4047"},
		{"twice the same", service.CreateDhcpOptionsRequest{NtpServers: []string{"10.0.0.1", "10.0.0.1"}}, "4047"},
	} {
		_, err := create(&c.in)
		nwCode(t, c.name, err, c.code)
	}
	full, err := create(&service.CreateDhcpOptionsRequest{DomainName: "test234.fr", DomainNameServers: []string{"192.168.12.12", "192.168.12.132"},
		NtpServers: []string{"192.0.0.2", "192.168.12.242"}, LogServers: []string{"192.10.10.2", "192.168.112.92"}})
	g.must("full", err)
	if full.Default || full.DomainName != "test234.fr" || len(full.LogServers) != 2 {
		t.Errorf("full set: %+v", full)
	}
	// Left-out options get the cloud's defaults (as the recorded real sets).
	ntp, err := create(&service.CreateDhcpOptionsRequest{NtpServers: []string{"192.0.0.25"}})
	g.must("ntp only", err)
	if ntp.DomainName != "eu-west-2.compute.internal" || len(ntp.DomainNameServers) != 1 || ntp.DomainNameServers[0] != "OutscaleProvidedDNS" || ntp.LogServers == nil {
		t.Errorf("defaults of a set: %+v", ntp)
	}
	_, err = g.svc.CreateDhcpOptions(dry(), g.joe, &service.CreateDhcpOptionsRequest{DomainName: "dry.example"})
	g.must("dry run", err)

	for _, c := range []struct {
		name string
		f    service.FiltersDhcpOptions
		want int
	}{
		{"all", service.FiltersDhcpOptions{}, 3},
		{"Default", service.FiltersDhcpOptions{Default: ptr(true)}, 1},
		{"not Default", service.FiltersDhcpOptions{Default: ptr(false)}, 2},
		{"DomainNames", service.FiltersDhcpOptions{DomainNames: []string{"test234.fr"}}, 1},
		{"DomainNameServers", service.FiltersDhcpOptions{DomainNameServers: []string{"OutscaleProvidedDNS"}}, 2},
		{"NtpServers", service.FiltersDhcpOptions{NtpServers: []string{"192.0.0.2", "192.0.0.25"}}, 2},
		{"LogServers", service.FiltersDhcpOptions{LogServers: []string{"192.10.10.2"}}, 1},
		{"DhcpOptionsSetIds", service.FiltersDhcpOptions{DhcpOptionsSetIds: []string{full.DhcpOptionsSetId, def[0].DhcpOptionsSetId}}, 2},
	} {
		if got := read(g.joe, &c.f); len(got) != c.want {
			t.Errorf("filter %s: %d, want %d", c.name, len(got), c.want)
		}
	}
	if got := read(g.bob, &service.FiltersDhcpOptions{DhcpOptionsSetIds: []string{full.DhcpOptionsSetId, def[0].DhcpOptionsSetId}}); len(got) != 0 {
		t.Errorf("bob reads joe's sets: %+v", got)
	}
	if got := read(g.bob, nil); len(got) != 1 || got[0].DhcpOptionsSetId == def[0].DhcpOptionsSetId {
		t.Errorf("bob's default set: %+v", got)
	}
	out, err := g.svc.ReadDhcpOptions(ctx, g.joe, &service.ReadDhcpOptionsRequest{Paging: service.Paging{ResultsPerPage: ptr(2)}})
	g.must("page", err)
	if len(out.DhcpOptionsSets) != 2 || out.NextPageToken == "" {
		t.Errorf("paging: %+v", out)
	}

	// Tags, on the default set of an account that has no Net yet too.
	bobDef := read(g.bob, nil)[0].DhcpOptionsSetId
	_, err = g.svc.CreateTags(ctx, g.bob, &service.CreateTagsRequest{ResourceIds: []string{bobDef}, Tags: []omi.Tag{{Key: "k", Value: "v"}}})
	g.must("tag bob's default set", err)
	if got := read(g.bob, nil); len(got) != 1 || len(got[0].Tags) != 1 || !got[0].Default {
		t.Errorf("bob's tagged default set: %+v", got)
	}
	_, err = g.svc.CreateTags(ctx, g.joe, &service.CreateTagsRequest{ResourceIds: []string{bobDef}, Tags: []omi.Tag{{Key: "k", Value: "v"}}})
	nwCode(t, "joe tags bob's default set", err, "5018")

	// UpdateNet's DhcpOptionsSetId: "default", or one of the caller's sets.
	var id string
	err = g.store.Update(ctx, func(tx omi.Tx) error {
		var err error
		id, err = g.svc.DhcpOptionsForNet(tx, g.joe, "default")
		return err
	})
	if err != nil || id != def[0].DhcpOptionsSetId {
		t.Errorf("default: %s %v", id, err)
	}
	err = g.store.Update(ctx, func(tx omi.Tx) error { _, err := g.svc.DhcpOptionsForNet(tx, g.bob, full.DhcpOptionsSetId); return err })
	nwCode(t, "bob uses joe's set", err, "5018")

	// A set in use, or the default one, stays.
	n := g.net(g.joe, "10.1.0.0/16")
	err = g.store.Update(ctx, func(tx omi.Tx) error {
		n.DhcpOptionsSetId = full.DhcpOptionsSetId
		return omi.Put(tx, n)
	})
	g.must("use the set", err)
	del := func(c *omi.Caller, id string) error {
		_, err := g.svc.DeleteDhcpOptions(ctx, c, &service.DeleteDhcpOptionsRequest{DhcpOptionsSetId: id})
		return err
	}
	nwCode(t, "delete a set in use", del(g.joe, full.DhcpOptionsSetId), "9066")
	nwCode(t, "delete the default set", del(g.joe, def[0].DhcpOptionsSetId), "4047")
	nwCode(t, "bob deletes joe's set", del(g.bob, ntp.DhcpOptionsSetId), "5018")
	nwCode(t, "delete without id", del(g.joe, ""), "4045")
	g.must("delete", del(g.joe, ntp.DhcpOptionsSetId))
	nwCode(t, "delete twice", del(g.joe, ntp.DhcpOptionsSetId), "5018")
}

func TestNetgwTagsAndNetHooks(t *testing.T) {
	g := newGwEnv(t)
	ctx := context.Background()
	n := g.net(g.joe, "10.0.0.0/16")
	gw := g.igw(g.joe)
	rt, err := g.svc.CreateRouteTable(ctx, g.joe, &service.CreateRouteTableRequest{NetId: n.NetId})
	g.must("rt", err)
	dopt, err := g.svc.CreateDhcpOptions(ctx, g.joe, &service.CreateDhcpOptionsRequest{DomainName: "example.org"})
	g.must("dopt", err)
	m := g.net(g.joe, "10.1.0.0/16")
	pcx, err := g.svc.CreateNetPeering(ctx, g.joe, &service.CreateNetPeeringRequest{SourceNetId: n.NetId, AccepterNetId: m.NetId})
	g.must("pcx", err)
	ids := []string{gw.InternetServiceId, rt.RouteTable.RouteTableId, dopt.DhcpOptionsSet.DhcpOptionsSetId, pcx.NetPeering.NetPeeringId}
	_, err = g.svc.CreateTags(ctx, g.joe, &service.CreateTagsRequest{ResourceIds: ids, Tags: []omi.Tag{{Key: "env", Value: "test"}}})
	g.must("tags", err)
	tags, err := g.svc.ReadTags(ctx, g.joe, &service.ReadTagsRequest{Filters: &service.FiltersTag{Keys: []string{"env"}}})
	g.must("read tags", err)
	types := map[string]string{}
	for _, tg := range tags.Tags {
		types[tg.ResourceId] = tg.ResourceType
	}
	for id, want := range map[string]string{gw.InternetServiceId: "internet-gateway", rt.RouteTable.RouteTableId: "route-table",
		dopt.DhcpOptionsSet.DhcpOptionsSetId: "dhcpoptions", pcx.NetPeering.NetPeeringId: "vpc-peering-connection"} {
		if types[id] != want {
			t.Errorf("ReadTags type of %s: %q, want %q", id, types[id], want)
		}
	}
	byType, _ := g.svc.ReadTags(ctx, g.joe, &service.ReadTagsRequest{Filters: &service.FiltersTag{ResourceTypes: []string{"route-table"}}})
	if len(byType.Tags) != 1 {
		t.Errorf("ResourceTypes route-table: %+v", byType.Tags)
	}
	_, err = g.svc.CreateTags(ctx, g.bob, &service.CreateTagsRequest{ResourceIds: []string{gw.InternetServiceId}, Tags: []omi.Tag{{Key: "x", Value: "y"}}})
	nwCode(t, "bob tags joe's internet service", err, "5019")
	_, err = g.svc.CreateTags(ctx, g.bob, &service.CreateTagsRequest{ResourceIds: []string{rt.RouteTable.RouteTableId}, Tags: []omi.Tag{{Key: "x", Value: "y"}}})
	nwCode(t, "bob tags joe's route table", err, "5046")
	_, err = g.svc.DeleteTags(ctx, g.joe, &service.DeleteTagsRequest{ResourceIds: ids, Tags: []service.TagToDelete{{Key: "env"}}})
	g.must("delete tags", err)
	if tags, _ := g.svc.ReadTags(ctx, g.joe, &service.ReadTagsRequest{}); len(tags.Tags) != 0 {
		t.Errorf("tags left: %+v", tags.Tags)
	}

	// DeleteNet: refused while an internet service is linked or a route
	// table other than the main one remains; then the main table goes.
	deleteNet := func() error {
		return g.store.Update(ctx, func(tx omi.Tx) error { return g.svc.NetgwDeleteNet(tx, g.joe.AccountID(), n.NetId) })
	}
	_, err = g.svc.LinkInternetService(ctx, g.joe, &service.LinkInternetServiceRequest{InternetServiceId: gw.InternetServiceId, NetId: n.NetId})
	g.must("link", err)
	nwCode(t, "delete a Net with an internet service", deleteNet(), "9066")
	_, err = g.svc.UnlinkInternetService(ctx, g.joe, &service.UnlinkInternetServiceRequest{InternetServiceId: gw.InternetServiceId, NetId: n.NetId})
	g.must("unlink", err)
	nwCode(t, "delete a Net with a route table", deleteNet(), "9066")
	_, err = g.svc.DeleteRouteTable(ctx, g.joe, &service.DeleteRouteTableRequest{RouteTableId: rt.RouteTable.RouteTableId})
	g.must("delete rt", err)
	g.must("delete the Net", deleteNet())
	if out, _ := g.svc.ReadRouteTables(ctx, g.joe, &service.ReadRouteTablesRequest{Filters: &service.FiltersRouteTable{NetIds: []string{n.NetId}}}); len(out.RouteTables) != 0 {
		t.Errorf("tables of a deleted Net: %+v", out.RouteTables)
	}
}

// BenchmarkReadRouteTables measures ReadRouteTables for the main table of
// one Net (NetIds and LinkRouteTableMain filters, as the provider's main
// route table link reads it) among 40 Nets of the caller with two tables
// each, three routes per table, and as many of another account.
func BenchmarkReadRouteTables(b *testing.B) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "omi.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	svc := service.New(store, service.Config{Region: "eu-west-2"}, nil)
	var target string
	for _, acct := range []string{"123456789012", "210987654321"} {
		c := &omi.Caller{Account: &omi.Account{AccountId: acct}}
		gw, err := svc.CreateInternetService(ctx, c, &service.CreateInternetServiceRequest{})
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < 40; i++ {
			n := &omi.Net{AccountId: acct, NetId: omi.NewID(omi.PrefixNet), IpRange: "10.0.0.0/16", State: omi.NetAvailable, Tags: []omi.Tag{}}
			err := store.Update(ctx, func(tx omi.Tx) error {
				if err := svc.NetgwCreateNet(tx, acct, n); err != nil {
					return err
				}
				return omi.Insert(tx, n)
			})
			if err != nil {
				b.Fatal(err)
			}
			rt, err := svc.CreateRouteTable(ctx, c, &service.CreateRouteTableRequest{NetId: n.NetId})
			if err != nil {
				b.Fatal(err)
			}
			for _, dest := range []string{"0.0.0.0/0", "192.168.0.0/16"} {
				if _, err := svc.CreateRoute(ctx, c, &service.CreateRouteRequest{RouteTableId: rt.RouteTable.RouteTableId, DestinationIpRange: dest, GatewayId: gw.InternetService.InternetServiceId}); err != nil {
					b.Fatal(err)
				}
			}
			if acct == "123456789012" && i == 20 {
				target = n.NetId
			}
		}
	}
	joe := &omi.Caller{Account: &omi.Account{AccountId: "123456789012"}}
	in := &service.ReadRouteTablesRequest{Filters: &service.FiltersRouteTable{NetIds: []string{target}, LinkRouteTableMain: ptr(true)}}
	b.ResetTimer()
	for b.Loop() {
		out, err := svc.ReadRouteTables(ctx, joe, in)
		if err != nil || len(out.RouteTables) != 1 {
			b.Fatalf("%v %v", out, err)
		}
	}
}
