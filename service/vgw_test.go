package service_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/service"
)

// TestVirtualGateways covers virtual gateways: creation and its checks,
// one Net per gateway and one gateway per Net, route propagation into the
// tables of the linked Net only, what unlinking and deletion require,
// filters, tags, the vpg_limit quota, dry runs and isolation between
// accounts.
func TestVirtualGateways(t *testing.T) {
	g := newGwEnv(t)
	ctx := context.Background()
	create := func(c *omi.Caller) *omi.VirtualGateway {
		t.Helper()
		out, err := g.svc.CreateVirtualGateway(ctx, c, &service.CreateVirtualGatewayRequest{ConnectionType: "ipsec.1"})
		g.must("CreateVirtualGateway", err)
		nwValid(t, "CreateVirtualGateway", out)
		return out.VirtualGateway
	}
	read := func(c *omi.Caller, f service.FiltersVirtualGateway) []*omi.VirtualGateway {
		t.Helper()
		out, err := g.svc.ReadVirtualGateways(ctx, c, &service.ReadVirtualGatewaysRequest{Filters: &f})
		g.must("ReadVirtualGateways", err)
		nwValid(t, "ReadVirtualGateways", out)
		return out.VirtualGateways
	}

	_, err := g.svc.CreateVirtualGateway(ctx, g.joe, &service.CreateVirtualGatewayRequest{})
	nwCode(t, "no ConnectionType", err, "4045")
	_, err = g.svc.CreateVirtualGateway(ctx, g.joe, &service.CreateVirtualGatewayRequest{ConnectionType: "gre"})
	nwCode(t, "unknown ConnectionType", err, "4080")
	_, err = g.svc.CreateVirtualGateway(dry(), g.joe, &service.CreateVirtualGatewayRequest{ConnectionType: "ipsec.1"})
	nwCode(t, "dry run", err, "")
	if n := len(read(g.joe, service.FiltersVirtualGateway{})); n != 0 {
		t.Fatalf("%d gateways after refused and dry-run creations", n)
	}

	vgw := create(g.joe)
	if vgw.State != "available" || len(vgw.NetToVirtualGatewayLinks) != 0 || vgw.ConnectionType != "ipsec.1" {
		t.Errorf("new gateway %+v", vgw)
	}
	n1, n2 := g.net(g.joe, "10.5.0.0/16"), g.net(g.joe, "10.6.0.0/16")
	link, err := g.svc.LinkVirtualGateway(ctx, g.joe, &service.LinkVirtualGatewayRequest{VirtualGatewayId: vgw.VirtualGatewayId, NetId: n1.NetId})
	g.must("LinkVirtualGateway", err)
	if link.NetToVirtualGatewayLink != (omi.NetToVirtualGatewayLink{NetId: n1.NetId, State: "attached"}) {
		t.Errorf("link %+v", link.NetToVirtualGatewayLink)
	}
	_, err = g.svc.LinkVirtualGateway(ctx, g.joe, &service.LinkVirtualGatewayRequest{VirtualGatewayId: vgw.VirtualGatewayId, NetId: n2.NetId})
	nwCode(t, "link a linked gateway", err, "9024")
	other := create(g.joe)
	_, err = g.svc.LinkVirtualGateway(ctx, g.joe, &service.LinkVirtualGatewayRequest{VirtualGatewayId: other.VirtualGatewayId, NetId: n1.NetId})
	nwCode(t, "a second gateway on a Net", err, "9065")
	_, err = g.svc.LinkVirtualGateway(ctx, g.joe, &service.LinkVirtualGatewayRequest{VirtualGatewayId: "vgw-00000000", NetId: n2.NetId})
	nwCode(t, "link a missing gateway", err, "5068")
	_, err = g.svc.LinkVirtualGateway(ctx, g.joe, &service.LinkVirtualGatewayRequest{VirtualGatewayId: other.VirtualGatewayId})
	nwCode(t, "link without NetId", err, "4045")

	if got := read(g.joe, service.FiltersVirtualGateway{LinkNetIds: []string{n1.NetId}}); len(got) != 1 || got[0].VirtualGatewayId != vgw.VirtualGatewayId {
		t.Errorf("LinkNetIds filter: %+v", got)
	}
	if got := read(g.joe, service.FiltersVirtualGateway{LinkStates: []string{"attached"}, ConnectionTypes: []string{"ipsec.1"}, States: []string{"available"}}); len(got) != 1 {
		t.Errorf("LinkStates filter: %d gateways", len(got))
	}
	_, err = g.svc.CreateTags(ctx, g.joe, &service.CreateTagsRequest{ResourceIds: []string{other.VirtualGatewayId}, Tags: []omi.Tag{{Key: "env", Value: "prod"}}})
	g.must("CreateTags", err)
	var byTag service.FiltersVirtualGateway
	if err := json.Unmarshal([]byte(`{"Tags":["env=prod"]}`), &byTag); err != nil {
		t.Fatal(err)
	}
	if got := read(g.joe, byTag); len(got) != 1 || got[0].VirtualGatewayId != other.VirtualGatewayId || len(got[0].Tags) != 1 {
		t.Errorf("Tags filter: %+v", got)
	}

	// Propagation: only into a table of the linked Net.
	t1, t2 := g.mainTable(g.joe, n1.NetId), g.mainTable(g.joe, n2.NetId)
	_, err = g.svc.UpdateRoutePropagation(ctx, g.joe, &service.UpdateRoutePropagationRequest{Enable: ptr(true), RouteTableId: t2.RouteTableId, VirtualGatewayId: vgw.VirtualGatewayId})
	nwCode(t, "propagate into another Net's table", err, "9026")
	_, err = g.svc.UpdateRoutePropagation(ctx, g.joe, &service.UpdateRoutePropagationRequest{RouteTableId: t1.RouteTableId, VirtualGatewayId: vgw.VirtualGatewayId})
	nwCode(t, "propagation without Enable", err, "4045")
	up, err := g.svc.UpdateRoutePropagation(ctx, g.joe, &service.UpdateRoutePropagationRequest{Enable: ptr(true), RouteTableId: t1.RouteTableId, VirtualGatewayId: vgw.VirtualGatewayId})
	g.must("UpdateRoutePropagation", err)
	nwValid(t, "UpdateRoutePropagation", up)
	if p := g.table(g.joe, t1.RouteTableId).RoutePropagatingVirtualGateways; len(p) != 1 || p[0].VirtualGatewayId != vgw.VirtualGatewayId {
		t.Errorf("propagating gateways %+v", p)
	}

	// What a linked gateway holds up.
	_, err = g.svc.DeleteVirtualGateway(ctx, g.joe, &service.DeleteVirtualGatewayRequest{VirtualGatewayId: vgw.VirtualGatewayId})
	nwCode(t, "delete a linked gateway", err, "9024")
	_, err = g.svc.DeleteNet(ctx, g.joe, &service.DeleteNetRequest{NetId: n1.NetId})
	nwCode(t, "delete a Net with a gateway linked", err, "9066")

	// Another account sees and touches none of it.
	if got := read(g.bob, service.FiltersVirtualGateway{VirtualGatewayIds: []string{vgw.VirtualGatewayId}}); len(got) != 0 {
		t.Errorf("bob reads joe's gateway: %+v", got)
	}
	bobNet := g.net(g.bob, "10.7.0.0/16")
	_, err = g.svc.LinkVirtualGateway(ctx, g.bob, &service.LinkVirtualGatewayRequest{VirtualGatewayId: other.VirtualGatewayId, NetId: bobNet.NetId})
	nwCode(t, "bob links joe's gateway", err, "5068")
	_, err = g.svc.LinkVirtualGateway(ctx, g.joe, &service.LinkVirtualGatewayRequest{VirtualGatewayId: other.VirtualGatewayId, NetId: bobNet.NetId})
	nwCode(t, "joe links to bob's Net", err, "5065")
	_, err = g.svc.UnlinkVirtualGateway(ctx, g.bob, &service.UnlinkVirtualGatewayRequest{VirtualGatewayId: vgw.VirtualGatewayId, NetId: n1.NetId})
	nwCode(t, "bob unlinks joe's gateway", err, "5068")
	_, err = g.svc.DeleteVirtualGateway(ctx, g.bob, &service.DeleteVirtualGatewayRequest{VirtualGatewayId: other.VirtualGatewayId})
	nwCode(t, "bob deletes joe's gateway", err, "5068")

	// Unlinking stops the propagation; the gateway can then go.
	_, err = g.svc.UnlinkVirtualGateway(ctx, g.joe, &service.UnlinkVirtualGatewayRequest{VirtualGatewayId: vgw.VirtualGatewayId, NetId: n2.NetId})
	nwCode(t, "unlink from a Net it is not linked to", err, "9026")
	_, err = g.svc.UnlinkVirtualGateway(ctx, g.joe, &service.UnlinkVirtualGatewayRequest{VirtualGatewayId: vgw.VirtualGatewayId, NetId: n1.NetId})
	g.must("UnlinkVirtualGateway", err)
	if p := g.table(g.joe, t1.RouteTableId).RoutePropagatingVirtualGateways; len(p) != 0 {
		t.Errorf("propagating gateways after unlink %+v", p)
	}
	_, err = g.svc.UpdateRoutePropagation(ctx, g.joe, &service.UpdateRoutePropagationRequest{Enable: ptr(false), RouteTableId: t1.RouteTableId, VirtualGatewayId: vgw.VirtualGatewayId})
	g.must("disable a propagation that is already gone", err)
	// The link stays, detached (the provider's acceptance tests of
	// outscale_virtual_gateway_link expect it).
	if got := read(g.joe, service.FiltersVirtualGateway{VirtualGatewayIds: []string{vgw.VirtualGatewayId}}); len(got) != 1 ||
		!slices.Equal(got[0].NetToVirtualGatewayLinks, []omi.NetToVirtualGatewayLink{{NetId: n1.NetId, State: "detached"}}) {
		t.Errorf("after unlink: %+v", got)
	}
	// Moved to another Net: the new link attached first, the old one
	// detached; back to the first Net, its link is attached again.
	_, err = g.svc.LinkVirtualGateway(ctx, g.joe, &service.LinkVirtualGatewayRequest{VirtualGatewayId: vgw.VirtualGatewayId, NetId: n2.NetId})
	g.must("LinkVirtualGateway to another Net", err)
	if got := read(g.joe, service.FiltersVirtualGateway{VirtualGatewayIds: []string{vgw.VirtualGatewayId}}); len(got) != 1 ||
		!slices.Equal(got[0].NetToVirtualGatewayLinks, []omi.NetToVirtualGatewayLink{{NetId: n2.NetId, State: "attached"}, {NetId: n1.NetId, State: "detached"}}) {
		t.Errorf("after a move: %+v", got)
	}
	if got := read(g.joe, service.FiltersVirtualGateway{LinkNetIds: []string{n1.NetId}, LinkStates: []string{"attached"}}); len(got) != 0 {
		t.Errorf("a detached link matched LinkStates attached: %+v", got)
	}
	_, err = g.svc.UnlinkVirtualGateway(ctx, g.joe, &service.UnlinkVirtualGatewayRequest{VirtualGatewayId: vgw.VirtualGatewayId, NetId: n2.NetId})
	g.must("UnlinkVirtualGateway from the second Net", err)
	_, err = g.svc.DeleteVirtualGateway(ctx, g.joe, &service.DeleteVirtualGatewayRequest{VirtualGatewayId: vgw.VirtualGatewayId})
	g.must("DeleteVirtualGateway", err)
	_, err = g.svc.DeleteVirtualGateway(ctx, g.joe, &service.DeleteVirtualGatewayRequest{VirtualGatewayId: vgw.VirtualGatewayId})
	nwCode(t, "delete a deleted gateway", err, "5068")
	_, err = g.svc.DeleteNet(ctx, g.joe, &service.DeleteNetRequest{NetId: n1.NetId})
	g.must("DeleteNet once the gateway is gone", err)

	// vpg_limit: 5 gateways, counted in ReadQuotas.
	for range 4 {
		create(g.joe)
	}
	_, err = g.svc.CreateVirtualGateway(ctx, g.joe, &service.CreateVirtualGatewayRequest{ConnectionType: "ipsec.1"})
	nwCode(t, "a sixth gateway", err, "10020")
	q, err := g.svc.ReadQuotas(ctx, g.joe, &service.ReadQuotasRequest{Filters: &service.FiltersQuota{QuotaNames: []string{"vpg_limit"}}})
	g.must("ReadQuotas", err)
	if len(q.QuotaTypes) != 1 || len(q.QuotaTypes[0].Quotas) != 1 || q.QuotaTypes[0].Quotas[0].UsedValue != 5 || q.QuotaTypes[0].Quotas[0].MaxValue != 5 {
		t.Errorf("vpg_limit %+v", q.QuotaTypes)
	}
}
