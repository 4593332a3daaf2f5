package service_test

import (
	"context"
	"testing"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/service"
)

// TestNetAccessPoints covers Net access points: the services of the
// region, creation and its checks, the route each puts in its tables (as
// the provider's recorded nets/TF-164 shows it), adding and removing
// tables, what a Net with an access point refuses, filters, the quota,
// and isolation between accounts.
func TestNetAccessPoints(t *testing.T) {
	g := newGwEnv(t)
	ctx := context.Background()
	svcs, err := g.svc.ReadNetAccessPointServices(ctx, nil, &service.ReadNetAccessPointServicesRequest{})
	g.must("ReadNetAccessPointServices", err)
	nwValid(t, "ReadNetAccessPointServices", svcs)
	var api service.NapService
	for _, s := range svcs.Services {
		if !omi.ValidID(s.ServiceId, "pl") || len(s.IpRanges) == 0 {
			t.Errorf("service %+v", s)
		}
		if s.ServiceName == "com.outscale.eu-west-2.api" {
			api = s
		}
	}
	if len(svcs.Services) != 9 || api.ServiceId == "" {
		t.Fatalf("services %+v", svcs.Services)
	}
	one, err := g.svc.ReadNetAccessPointServices(ctx, nil, &service.ReadNetAccessPointServicesRequest{Filters: &service.FiltersService{ServiceIds: []string{api.ServiceId}}})
	g.must("ReadNetAccessPointServices by id", err)
	if len(one.Services) != 1 || one.Services[0].ServiceName != api.ServiceName {
		t.Errorf("by id: %+v", one.Services)
	}

	n := g.net(g.joe, "10.8.0.0/16")
	rt := func() *omi.RouteTable {
		out, err := g.svc.CreateRouteTable(ctx, g.joe, &service.CreateRouteTableRequest{NetId: n.NetId})
		g.must("CreateRouteTable", err)
		return out.RouteTable
	}
	t1, t2, t3 := rt(), rt(), rt()
	elsewhere := g.mainTable(g.joe, g.net(g.joe, "10.9.0.0/16").NetId)

	_, err = g.svc.CreateNetAccessPoint(ctx, g.joe, &service.CreateNetAccessPointRequest{NetId: n.NetId})
	nwCode(t, "no ServiceName", err, "4045")
	_, err = g.svc.CreateNetAccessPoint(ctx, g.joe, &service.CreateNetAccessPointRequest{NetId: n.NetId, ServiceName: "com.outscale.eu-west-2.nope"})
	nwCode(t, "unknown service", err, "4047")
	_, err = g.svc.CreateNetAccessPoint(ctx, g.joe, &service.CreateNetAccessPointRequest{NetId: n.NetId, ServiceName: api.ServiceName, RouteTableIds: []string{t1.RouteTableId, elsewhere.RouteTableId}})
	nwCode(t, "a table of another Net", err, "4047")
	_, err = g.svc.CreateNetAccessPoint(ctx, g.bob, &service.CreateNetAccessPointRequest{NetId: n.NetId, ServiceName: api.ServiceName})
	nwCode(t, "bob on joe's Net", err, "5065")
	if p := g.table(g.joe, t1.RouteTableId); len(p.Routes) != 1 {
		t.Fatalf("a refused creation left routes: %+v", p.Routes)
	}

	out, err := g.svc.CreateNetAccessPoint(ctx, g.joe, &service.CreateNetAccessPointRequest{NetId: n.NetId, ServiceName: api.ServiceName, RouteTableIds: []string{t1.RouteTableId, t2.RouteTableId}})
	g.must("CreateNetAccessPoint", err)
	nwValid(t, "CreateNetAccessPoint", out)
	nap := out.NetAccessPoint
	if nap.State != "available" || len(nap.RouteTableIds) != 2 {
		t.Errorf("new access point %+v", nap)
	}
	napRoute := func(tableID string) *omi.Route {
		for _, r := range g.table(g.joe, tableID).Routes {
			if r.NetAccessPointId == nap.NetAccessPointId {
				return &r
			}
		}
		return nil
	}
	if r := napRoute(t1.RouteTableId); r == nil || *r != (omi.Route{CreationMethod: "CreateRoute", DestinationServiceId: api.ServiceId, NetAccessPointId: nap.NetAccessPointId, State: "active"}) {
		t.Errorf("route in %s: %+v", t1.RouteTableId, r)
	}
	_, err = g.svc.CreateNetAccessPoint(ctx, g.joe, &service.CreateNetAccessPointRequest{NetId: n.NetId, ServiceName: api.ServiceName})
	nwCode(t, "a second access point to the same service", err, "9038")

	up, err := g.svc.UpdateNetAccessPoint(ctx, g.joe, &service.UpdateNetAccessPointRequest{NetAccessPointId: nap.NetAccessPointId,
		AddRouteTableIds: []string{t3.RouteTableId}, RemoveRouteTableIds: []string{t1.RouteTableId}})
	g.must("UpdateNetAccessPoint", err)
	nwValid(t, "UpdateNetAccessPoint", up)
	if napRoute(t1.RouteTableId) != nil || napRoute(t3.RouteTableId) == nil || napRoute(t2.RouteTableId) == nil {
		t.Errorf("routes after update: access point tables %v", up.NetAccessPoint.RouteTableIds)
	}
	_, err = g.svc.UpdateNetAccessPoint(ctx, g.bob, &service.UpdateNetAccessPointRequest{NetAccessPointId: nap.NetAccessPointId, AddRouteTableIds: []string{t1.RouteTableId}})
	nwCode(t, "bob updates joe's access point", err, "5034")

	read, err := g.svc.ReadNetAccessPoints(ctx, g.joe, &service.ReadNetAccessPointsRequest{Filters: &service.FiltersNetAccessPoint{NetIds: []string{n.NetId}, ServiceNames: []string{api.ServiceName}, States: []string{"available"}}})
	g.must("ReadNetAccessPoints", err)
	nwValid(t, "ReadNetAccessPoints", read)
	if len(read.NetAccessPoints) != 1 || len(read.NetAccessPoints[0].RouteTableIds) != 2 {
		t.Errorf("read %+v", read.NetAccessPoints)
	}
	if r, _ := g.svc.ReadNetAccessPoints(ctx, g.bob, &service.ReadNetAccessPointsRequest{}); len(r.NetAccessPoints) != 0 {
		t.Errorf("bob reads %+v", r.NetAccessPoints)
	}

	_, err = g.svc.DeleteNet(ctx, g.joe, &service.DeleteNetRequest{NetId: n.NetId})
	nwCode(t, "delete a Net with an access point", err, "9066")
	_, err = g.svc.DeleteNetAccessPoint(ctx, g.bob, &service.DeleteNetAccessPointRequest{NetAccessPointId: nap.NetAccessPointId})
	nwCode(t, "bob deletes joe's access point", err, "5034")
	_, err = g.svc.DeleteNetAccessPoint(ctx, g.joe, &service.DeleteNetAccessPointRequest{NetAccessPointId: nap.NetAccessPointId})
	g.must("DeleteNetAccessPoint", err)
	if napRoute(t2.RouteTableId) != nil || napRoute(t3.RouteTableId) != nil {
		t.Error("routes left after DeleteNetAccessPoint")
	}
	_, err = g.svc.DeleteNetAccessPoint(ctx, g.joe, &service.DeleteNetAccessPointRequest{NetAccessPointId: nap.NetAccessPointId})
	nwCode(t, "delete a deleted access point", err, "5034")

	// network_endpoint_limit: 5 access points.
	for _, s := range svcs.Services[:5] {
		_, err := g.svc.CreateNetAccessPoint(ctx, g.joe, &service.CreateNetAccessPointRequest{NetId: n.NetId, ServiceName: s.ServiceName})
		g.must("CreateNetAccessPoint "+s.ServiceName, err)
	}
	_, err = g.svc.CreateNetAccessPoint(ctx, g.joe, &service.CreateNetAccessPointRequest{NetId: n.NetId, ServiceName: svcs.Services[5].ServiceName})
	nwCode(t, "a sixth access point", err, "10033")
}
