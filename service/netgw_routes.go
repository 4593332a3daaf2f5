package service

import (
	"context"
	"net/netip"
	"time"

	"github.com/omiproject/omi"
)

// Route tables. Every Net has a main route table, created with it and
// linked to the Net itself (a Main link); subnets without a link of their
// own use it. Every table holds the local route of its Net's range, which
// can be neither replaced nor deleted. The route tables of an account are
// few, so links are found by scanning them.

// ownRouteTable loads a route table the caller owns.
func ownRouteTable(tx omi.Tx, c *omi.Caller, id string) (*omi.RouteTable, error) {
	t, err := omi.Get[omi.RouteTable](tx, id)
	if isNotFound(err) || (err == nil && t.AccountId != c.AccountID()) {
		return nil, routeTableNotFound(id)
	}
	return t, err
}

// accountRouteTables lists an account's route tables, optionally only
// those of one Net.
func accountRouteTables(tx omi.Tx, account, netID string) ([]*omi.RouteTable, error) {
	q := omi.Query{Owners: []string{account}}
	if netID != "" {
		q.Names = []string{netID}
	}
	var out []*omi.RouteTable
	err := omi.Scan(tx, q, func(t *omi.RouteTable) (bool, error) {
		out = append(out, t)
		return true, nil
	})
	return out, err
}

// findLink finds the table holding a link, by link id.
func findLink(tx omi.Tx, c *omi.Caller, linkID string) (*omi.RouteTable, int, error) {
	tables, err := accountRouteTables(tx, c.AccountID(), "")
	if err != nil {
		return nil, 0, err
	}
	for _, t := range tables {
		for i, l := range t.LinkRouteTables {
			if l.LinkRouteTableId == linkID {
				return t, i, nil
			}
		}
	}
	return nil, 0, omi.NotFound(codeNoSuchRouteLink, "The LinkRouteTableId '%s' doesn't exist.", linkID)
}

// subnetRouteTable is the table that routes a subnet: the one linked to
// it, or else the main table of its Net (nil if the Net has none).
func subnetRouteTable(tx omi.Tx, account string, sn *omi.Subnet) (*omi.RouteTable, error) {
	tables, err := accountRouteTables(tx, account, sn.NetId)
	if err != nil {
		return nil, err
	}
	var main *omi.RouteTable
	for _, t := range tables {
		for _, l := range t.LinkRouteTables {
			if l.SubnetId == sn.SubnetId {
				return t, nil
			}
			if l.Main {
				main = t
			}
		}
	}
	return main, nil
}

// newRouteTable builds a table of a Net with its local route.
func newRouteTable(account string, n *omi.Net) *omi.RouteTable {
	return &omi.RouteTable{AccountId: account, NetId: n.NetId, RouteTableId: omi.NewID(omi.PrefixRouteTable),
		LinkRouteTables: []omi.LinkRouteTable{}, RoutePropagatingVirtualGateways: []omi.RoutePropagatingVirtualGateway{},
		Routes: []omi.Route{{CreationMethod: omi.RouteByTable, DestinationIpRange: n.IpRange, GatewayId: omi.LocalGateway, State: omi.RouteActive}},
		Tags:   []omi.Tag{}}
}

// createMainRouteTable creates the main route table of a new Net. The Net
// calls it from CreateNet, in the same transaction.
func (s *Service) createMainRouteTable(tx omi.Tx, account string, n *omi.Net) (*omi.RouteTable, error) {
	t := newRouteTable(account, n)
	t.LinkRouteTables = []omi.LinkRouteTable{{LinkRouteTableId: omi.NewID(omi.PrefixLinkRouteTable), Main: true, NetId: n.NetId, RouteTableId: t.RouteTableId}}
	err := insertNew(tx, t, func() {
		t.RouteTableId = omi.NewID(omi.PrefixRouteTable)
		t.LinkRouteTables[0].RouteTableId = t.RouteTableId
	})
	return t, err
}

// liveRoutes sets the State of each route from its target: a route to a
// target that is gone, or to a Net peering that is not active, is a
// blackhole. Targets are looked up as stored, whoever owns them.
func (s *Service) liveRoutes(tx omi.Tx, t *omi.RouteTable) error {
	now := s.now()
	for i := range t.Routes {
		r := &t.Routes[i]
		ok := true
		var err error
		switch {
		case r.GatewayId != "" && r.GatewayId != omi.LocalGateway:
			var g *omi.InternetService
			g, err = omi.Get[omi.InternetService](tx, r.GatewayId)
			ok = err == nil && (g.NetId == "" || g.NetId == t.NetId)
		case r.NatServiceId != "":
			_, err = omi.Get[omi.NatService](tx, r.NatServiceId)
			ok = err == nil
		case r.NetPeeringId != "":
			var p *omi.NetPeering
			p, err = omi.Get[omi.NetPeering](tx, r.NetPeeringId)
			ok = err == nil && peeringState(p, now) == omi.PeeringActive
		case r.VmId != "":
			var vm *omi.Vm
			vm, err = omi.Get[omi.Vm](tx, r.VmId)
			ok = err == nil && vm.State != omi.VmTerminated && vm.State != omi.VmShuttingDown
		case r.NicId != "":
			ok, err = gwNicExists(tx, r.NicId)
		}
		if err != nil && !isNotFound(err) {
			return err
		}
		r.State = omi.RouteActive
		if !ok {
			r.State = omi.RouteBlackhole
		}
	}
	return nil
}

type CreateRouteTableRequest struct {
	Base
	NetId string `json:"NetId"`
}
type CreateRouteTableResponse struct {
	RouteTable *omi.RouteTable `json:"RouteTable"`
}

// CreateRouteTable creates a route table in a Net, with the local route.
func (s *Service) CreateRouteTable(ctx context.Context, c *omi.Caller, in *CreateRouteTableRequest) (*CreateRouteTableResponse, error) {
	if err := required("NetId", in.NetId); err != nil {
		return nil, err
	}
	var t *omi.RouteTable
	err := s.update(ctx, func(tx omi.Tx) error {
		n, err := gwNet(tx, c, in.NetId)
		if err != nil {
			return err
		}
		t = newRouteTable(c.AccountID(), n)
		return insertNew(tx, t, func() { t.RouteTableId = omi.NewID(omi.PrefixRouteTable) })
	})
	if err != nil {
		return nil, err
	}
	return &CreateRouteTableResponse{RouteTable: t}, nil
}

type DeleteRouteTableRequest struct {
	Base
	RouteTableId string `json:"RouteTableId"`
}
type DeleteRouteTableResponse struct{}

// DeleteRouteTable deletes a route table that is neither the main one nor
// linked to a subnet.
func (s *Service) DeleteRouteTable(ctx context.Context, c *omi.Caller, in *DeleteRouteTableRequest) (*DeleteRouteTableResponse, error) {
	if err := required("RouteTableId", in.RouteTableId); err != nil {
		return nil, err
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		t, err := ownRouteTable(tx, c, in.RouteTableId)
		if err != nil {
			return err
		}
		if t.MainLink() != nil {
			return omi.Conflict(codeNetAssociated, "The route table '%s' is the main route table of the Net '%s' and cannot be deleted.", t.RouteTableId, t.NetId)
		}
		if len(t.LinkRouteTables) > 0 {
			return omi.Conflict(codeTableHasSubnets, "The route table '%s' is linked to the subnet '%s': unlink it first.", t.RouteTableId, t.LinkRouteTables[0].SubnetId)
		}
		return retire(tx, omi.KindRouteTable, t.RouteTableId)
	})
	if err != nil {
		return nil, err
	}
	return &DeleteRouteTableResponse{}, nil
}

type LinkRouteTableRequest struct {
	Base
	RouteTableId string `json:"RouteTableId"`
	SubnetId     string `json:"SubnetId"`
}
type LinkRouteTableResponse struct {
	LinkRouteTableId string `json:"LinkRouteTableId"`
}

// LinkRouteTable links a route table to a subnet of the same Net. A
// subnet has at most one link; UpdateRouteTableLink moves it.
func (s *Service) LinkRouteTable(ctx context.Context, c *omi.Caller, in *LinkRouteTableRequest) (*LinkRouteTableResponse, error) {
	if err := required("RouteTableId", in.RouteTableId, "SubnetId", in.SubnetId); err != nil {
		return nil, err
	}
	var link string
	err := s.update(ctx, func(tx omi.Tx) error {
		t, err := ownRouteTable(tx, c, in.RouteTableId)
		if err != nil {
			return err
		}
		sn, err := gwSubnet(tx, c, in.SubnetId)
		if err != nil {
			return err
		}
		if sn.NetId != t.NetId {
			return omi.Invalid(codeNetworkMismatch, "The subnet '%s' is in the Net '%s', the route table '%s' in the Net '%s'.", sn.SubnetId, sn.NetId, t.RouteTableId, t.NetId)
		}
		tables, err := accountRouteTables(tx, c.AccountID(), t.NetId)
		if err != nil {
			return err
		}
		for _, o := range tables {
			for _, l := range o.LinkRouteTables {
				if l.SubnetId == sn.SubnetId {
					return omi.Conflict(omi.CodeAlreadyExists, "The subnet '%s' is already linked to the route table '%s' (%s).", sn.SubnetId, o.RouteTableId, l.LinkRouteTableId)
				}
			}
		}
		link = omi.NewID(omi.PrefixLinkRouteTable)
		t.LinkRouteTables = append(t.LinkRouteTables, omi.LinkRouteTable{LinkRouteTableId: link, RouteTableId: t.RouteTableId, SubnetId: sn.SubnetId})
		return omi.Put(tx, t)
	})
	if err != nil {
		return nil, err
	}
	return &LinkRouteTableResponse{LinkRouteTableId: link}, nil
}

type UnlinkRouteTableRequest struct {
	Base
	LinkRouteTableId string `json:"LinkRouteTableId"`
}
type UnlinkRouteTableResponse struct{}

// UnlinkRouteTable removes the link of a subnet, which then uses the main
// table. The main link itself only moves, with UpdateRouteTableLink.
func (s *Service) UnlinkRouteTable(ctx context.Context, c *omi.Caller, in *UnlinkRouteTableRequest) (*UnlinkRouteTableResponse, error) {
	if err := required("LinkRouteTableId", in.LinkRouteTableId); err != nil {
		return nil, err
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		t, i, err := findLink(tx, c, in.LinkRouteTableId)
		if err != nil {
			return err
		}
		if t.LinkRouteTables[i].Main {
			return omi.Invalid(omi.CodeInvalidValue, "The link '%s' makes '%s' the main route table: it can only be moved with UpdateRouteTableLink.", in.LinkRouteTableId, t.RouteTableId)
		}
		t.LinkRouteTables = append(t.LinkRouteTables[:i], t.LinkRouteTables[i+1:]...)
		return omi.Put(tx, t)
	})
	if err != nil {
		return nil, err
	}
	return &UnlinkRouteTableResponse{}, nil
}

type UpdateRouteTableLinkRequest struct {
	Base
	LinkRouteTableId string `json:"LinkRouteTableId"`
	RouteTableId     string `json:"RouteTableId"`
}
type UpdateRouteTableLinkResponse struct {
	LinkRouteTableId string `json:"LinkRouteTableId"`
}

// UpdateRouteTableLink moves a link (of a subnet, or the main link of a
// Net) to another table of the same Net. The moved link gets a new id, as
// a replaced association does on the real cloud.
func (s *Service) UpdateRouteTableLink(ctx context.Context, c *omi.Caller, in *UpdateRouteTableLinkRequest) (*UpdateRouteTableLinkResponse, error) {
	if err := required("LinkRouteTableId", in.LinkRouteTableId, "RouteTableId", in.RouteTableId); err != nil {
		return nil, err
	}
	var link string
	err := s.update(ctx, func(tx omi.Tx) error {
		from, i, err := findLink(tx, c, in.LinkRouteTableId)
		if err != nil {
			return err
		}
		to, err := ownRouteTable(tx, c, in.RouteTableId)
		if err != nil {
			return err
		}
		if to.NetId != from.NetId {
			return omi.Invalid(codeNetworkMismatch, "The route table '%s' is in the Net '%s', the link '%s' in the Net '%s'.", to.RouteTableId, to.NetId, in.LinkRouteTableId, from.NetId)
		}
		if to.RouteTableId == from.RouteTableId {
			link = in.LinkRouteTableId
			return nil
		}
		l := from.LinkRouteTables[i]
		from.LinkRouteTables = append(from.LinkRouteTables[:i], from.LinkRouteTables[i+1:]...)
		l.LinkRouteTableId = omi.NewID(omi.PrefixLinkRouteTable)
		l.RouteTableId = to.RouteTableId
		to.LinkRouteTables = append(to.LinkRouteTables, l)
		link = l.LinkRouteTableId
		if err := omi.Put(tx, from); err != nil {
			return err
		}
		return omi.Put(tx, to)
	})
	if err != nil {
		return nil, err
	}
	return &UpdateRouteTableLinkResponse{LinkRouteTableId: link}, nil
}

// RouteRequest holds the destination and target of CreateRoute and
// UpdateRoute.
type RouteRequest struct {
	Base
	DestinationIpRange string `json:"DestinationIpRange"`
	GatewayId          string `json:"GatewayId"`
	NatServiceId       string `json:"NatServiceId"`
	NetPeeringId       string `json:"NetPeeringId"`
	NicId              string `json:"NicId"`
	RouteTableId       string `json:"RouteTableId"`
	VmId               string `json:"VmId"`
}

type CreateRouteRequest = RouteRequest
type UpdateRouteRequest = RouteRequest
type CreateRouteResponse struct {
	RouteTable *omi.RouteTable `json:"RouteTable"`
}
type UpdateRouteResponse = CreateRouteResponse

// parseDestination checks a destination: an IPv4 range in CIDR notation
// with no bits set past its prefix.
func parseDestination(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, omi.Invalid(codeInvalidIPAddress, "DestinationIpRange %q is not an IPv4 range in CIDR notation", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, omi.Invalid(codeInvalidIPAddress, "DestinationIpRange %q has bits set past its prefix (%s)", s, p.Masked())
	}
	return p, nil
}

// routeTarget checks the single target of a route request against the
// table's Net and returns the route it makes.
func (s *Service) routeTarget(tx omi.Tx, c *omi.Caller, t *omi.RouteTable, in *RouteRequest) (omi.Route, error) {
	r := omi.Route{DestinationIpRange: in.DestinationIpRange, State: omi.RouteActive}
	n := 0
	for _, v := range []string{in.GatewayId, in.NatServiceId, in.NetPeeringId, in.NicId, in.VmId} {
		if v != "" {
			n++
		}
	}
	if n == 0 {
		return r, omi.Invalid(omi.CodeInvalidParameter, "give one target: GatewayId, NatServiceId, NetPeeringId, NicId or VmId")
	}
	if n > 1 {
		return r, omi.Invalid(omi.CodeInvalidParamSet, "give only one target among GatewayId, NatServiceId, NetPeeringId, NicId and VmId")
	}
	mismatch := func(what, id, net string) error {
		return omi.Invalid(codeNetworkMismatch, "The %s '%s' is in the Net '%s', not in the Net '%s' of the route table.", what, id, net, t.NetId)
	}
	switch {
	case in.GatewayId != "":
		if !omi.ValidID(in.GatewayId, omi.PrefixInternetService) {
			return r, gatewayNotFound(in.GatewayId)
		}
		g, err := ownInternetService(tx, c, in.GatewayId)
		if err != nil {
			return r, err
		}
		// An internet service not linked yet is accepted: terraform
		// configurations create the route and the link in parallel.
		if g.NetId != "" && g.NetId != t.NetId {
			return r, mismatch("internet service", g.InternetServiceId, g.NetId)
		}
		r.GatewayId = g.InternetServiceId
	case in.NatServiceId != "":
		nat, err := ownNatService(tx, c, in.NatServiceId)
		if err != nil {
			return r, err
		}
		if nat.NetId != t.NetId {
			return r, mismatch("NAT service", nat.NatServiceId, nat.NetId)
		}
		r.NatServiceId = nat.NatServiceId
	case in.NetPeeringId != "":
		p, err := s.visiblePeering(tx, c, in.NetPeeringId)
		if err != nil {
			return r, err
		}
		if p.SourceNet.NetId != t.NetId && p.AccepterNet.NetId != t.NetId {
			return r, mismatch("Net peering", p.NetPeeringId, p.SourceNet.NetId+"/"+p.AccepterNet.NetId)
		}
		// A peering waiting for acceptance is accepted: the route is a
		// blackhole until the peering is active.
		if st := peeringState(p, s.now()); st != omi.PeeringActive && st != omi.PeeringPending {
			return r, omi.BadState(omi.CodeInvalidState, "The Net peering '%s' is %s.", p.NetPeeringId, st)
		}
		r.NetPeeringId = p.NetPeeringId
	case in.VmId != "":
		vm, err := s.ownVm(tx, c, in.VmId)
		if err != nil {
			return r, err
		}
		if vm.State == omi.VmTerminated || vm.State == omi.VmShuttingDown {
			return r, omi.BadState(omi.CodeInvalidVmState, "The VM '%s' is %s.", vm.VmId, vm.State)
		}
		if vm.NetId == "" {
			return r, omi.Conflict("9062", "The VM '%s' is not in a Net.", vm.VmId)
		}
		if vm.NetId != t.NetId {
			return r, mismatch("VM", vm.VmId, vm.NetId)
		}
		r.VmId, r.VmAccountId, r.NicId = vm.VmId, vm.AccountId, gwVmNic(tx, vm)
	case in.NicId != "":
		netID, vmID, err := gwNic(tx, c, in.NicId)
		if err != nil {
			return r, err
		}
		if netID != t.NetId {
			return r, mismatch("NIC", in.NicId, netID)
		}
		r.NicId = in.NicId
		if vmID != "" {
			r.VmId, r.VmAccountId = vmID, c.AccountID()
		}
	}
	return r, nil
}

// CreateRoute adds a route to a table. Its destination must be new in the
// table.
func (s *Service) CreateRoute(ctx context.Context, c *omi.Caller, in *CreateRouteRequest) (*CreateRouteResponse, error) {
	return s.putRoute(ctx, c, in, false)
}

// UpdateRoute replaces the target of an existing route.
func (s *Service) UpdateRoute(ctx context.Context, c *omi.Caller, in *UpdateRouteRequest) (*UpdateRouteResponse, error) {
	return s.putRoute(ctx, c, in, true)
}

func (s *Service) putRoute(ctx context.Context, c *omi.Caller, in *RouteRequest, replace bool) (*CreateRouteResponse, error) {
	if err := required("RouteTableId", in.RouteTableId, "DestinationIpRange", in.DestinationIpRange); err != nil {
		return nil, err
	}
	if _, err := parseDestination(in.DestinationIpRange); err != nil {
		return nil, err
	}
	var t *omi.RouteTable
	err := s.update(ctx, func(tx omi.Tx) error {
		var err error
		t, err = ownRouteTable(tx, c, in.RouteTableId)
		if err != nil {
			return err
		}
		r, err := s.routeTarget(tx, c, t, in)
		if err != nil {
			return err
		}
		at := -1
		for i, old := range t.Routes {
			if old.DestinationIpRange == in.DestinationIpRange {
				at = i
			}
		}
		switch {
		case at >= 0 && t.Routes[at].CreationMethod == omi.RouteByTable:
			return omi.Invalid(omi.CodeInvalidValue, "The local route %s of the route table '%s' cannot be changed.", in.DestinationIpRange, t.RouteTableId)
		case !replace && at >= 0:
			return omi.Conflict(codeRouteExists, "The route table '%s' already has a route to %s.", t.RouteTableId, in.DestinationIpRange)
		case replace && at < 0:
			return omi.NotFound(codeNoSuchRoute, "The route table '%s' has no route to %s.", t.RouteTableId, in.DestinationIpRange)
		case replace:
			r.CreationMethod = t.Routes[at].CreationMethod
			t.Routes[at] = r
		default:
			r.CreationMethod = omi.RouteByCall
			t.Routes = append(t.Routes, r)
		}
		if err := omi.Put(tx, t); err != nil {
			return err
		}
		return s.liveRoutes(tx, t)
	})
	if err != nil {
		return nil, err
	}
	t.Normalize()
	return &CreateRouteResponse{RouteTable: t}, nil
}

type DeleteRouteRequest struct {
	Base
	DestinationIpRange string `json:"DestinationIpRange"`
	RouteTableId       string `json:"RouteTableId"`
}
type DeleteRouteResponse struct {
	RouteTable *omi.RouteTable `json:"RouteTable"`
}

// DeleteRoute removes a route; the local route stays.
func (s *Service) DeleteRoute(ctx context.Context, c *omi.Caller, in *DeleteRouteRequest) (*DeleteRouteResponse, error) {
	if err := required("RouteTableId", in.RouteTableId, "DestinationIpRange", in.DestinationIpRange); err != nil {
		return nil, err
	}
	if _, err := parseDestination(in.DestinationIpRange); err != nil {
		return nil, err
	}
	var t *omi.RouteTable
	err := s.update(ctx, func(tx omi.Tx) error {
		var err error
		t, err = ownRouteTable(tx, c, in.RouteTableId)
		if err != nil {
			return err
		}
		for i, r := range t.Routes {
			if r.DestinationIpRange != in.DestinationIpRange {
				continue
			}
			if r.CreationMethod == omi.RouteByTable {
				return omi.Invalid(omi.CodeInvalidValue, "The local route %s of the route table '%s' cannot be deleted.", r.DestinationIpRange, t.RouteTableId)
			}
			t.Routes = append(t.Routes[:i], t.Routes[i+1:]...)
			if err := omi.Put(tx, t); err != nil {
				return err
			}
			return s.liveRoutes(tx, t)
		}
		return omi.NotFound(codeNoSuchRoute, "The route table '%s' has no route to %s.", t.RouteTableId, in.DestinationIpRange)
	})
	if err != nil {
		return nil, err
	}
	t.Normalize()
	return &DeleteRouteResponse{RouteTable: t}, nil
}

type FiltersRouteTable struct {
	tagFilter
	LinkRouteTableIds               []string `json:"LinkRouteTableIds"`
	LinkRouteTableLinkRouteTableIds []string `json:"LinkRouteTableLinkRouteTableIds"`
	LinkRouteTableMain              *bool    `json:"LinkRouteTableMain"`
	LinkSubnetIds                   []string `json:"LinkSubnetIds"`
	NetIds                          []string `json:"NetIds"`
	RouteCreationMethods            []string `json:"RouteCreationMethods"`
	RouteDestinationIpRanges        []string `json:"RouteDestinationIpRanges"`
	RouteDestinationServiceIds      []string `json:"RouteDestinationServiceIds"`
	RouteGatewayIds                 []string `json:"RouteGatewayIds"`
	RouteNatServiceIds              []string `json:"RouteNatServiceIds"`
	RouteNetPeeringIds              []string `json:"RouteNetPeeringIds"`
	RouteStates                     []string `json:"RouteStates"`
	RouteTableIds                   []string `json:"RouteTableIds"`
	RouteVmIds                      []string `json:"RouteVmIds"`
}

// match applies the filters: a link filter keeps a table with some link
// matching it, a route filter one with some route matching it. Route
// states are only checked with withStates (they need the live states).
func (f *FiltersRouteTable) match(t *omi.RouteTable, withStates bool) bool {
	var states []string
	if withStates {
		states = f.RouteStates
	}
	if f.LinkRouteTableMain != nil && (t.MainLink() != nil) != *f.LinkRouteTableMain {
		return false
	}
	if !anyOf(f.NetIds, t.NetId) || !f.tagFilter.match(t.Tags) {
		return false
	}
	var linkTables, linkIDs, linkSubnets []string
	for _, l := range t.LinkRouteTables {
		linkTables = append(linkTables, l.RouteTableId)
		linkIDs = append(linkIDs, l.LinkRouteTableId)
		if l.SubnetId != "" {
			linkSubnets = append(linkSubnets, l.SubnetId)
		}
	}
	if !intersects(f.LinkRouteTableIds, linkTables) || !intersects(f.LinkRouteTableLinkRouteTableIds, linkIDs) || !intersects(f.LinkSubnetIds, linkSubnets) {
		return false
	}
	routeFilters := [][]string{f.RouteCreationMethods, f.RouteDestinationIpRanges, f.RouteDestinationServiceIds, f.RouteGatewayIds,
		f.RouteNatServiceIds, f.RouteNetPeeringIds, states, f.RouteVmIds}
	for k, want := range routeFilters {
		if len(want) == 0 {
			continue
		}
		hit := false
		for _, r := range t.Routes {
			have := [...]string{r.CreationMethod, r.DestinationIpRange, r.DestinationServiceId, r.GatewayId,
				r.NatServiceId, r.NetPeeringId, r.State, r.VmId}[k]
			if have != "" && contains(want, have) {
				hit = true
				break
			}
		}
		if !hit {
			return false
		}
	}
	return true
}

type ReadRouteTablesRequest struct {
	Base
	Paging
	Filters *FiltersRouteTable `json:"Filters"`
}
type ReadRouteTablesResponse struct {
	RouteTables   []*omi.RouteTable `json:"RouteTables"`
	NextPageToken string            `json:"NextPageToken,omitempty"`
}

// ReadRouteTables lists the caller's route tables, with the states of
// their routes as their targets stand now.
func (s *Service) ReadRouteTables(ctx context.Context, c *omi.Caller, in *ReadRouteTablesRequest) (*ReadRouteTablesResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersRouteTable{}
	}
	if _, err := resultsPerPage(in.ResultsPerPage); err != nil {
		return nil, err
	}
	if omi.IsDryRun(ctx) {
		return &ReadRouteTablesResponse{RouteTables: []*omi.RouteTable{}}, nil
	}
	var out []*omi.RouteTable
	var next string
	err := s.view(ctx, func(tx omi.Tx) error {
		var err error
		var liveErr error
		// Tables are indexed by Net: the NetIds filter narrows the scan.
		q := omi.Query{Owners: []string{c.AccountID()}, IDs: f.RouteTableIds, Names: f.NetIds}
		out, next, err = listPage[omi.RouteTable](tx, q, in.Paging, omi.PrefixRouteTable, func(t *omi.RouteTable) bool {
			if !f.match(t, false) {
				return false
			}
			if err := s.liveRoutes(tx, t); err != nil && liveErr == nil {
				liveErr = err
			}
			return f.match(t, true)
		})
		if err == nil {
			err = liveErr
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, t := range out {
		t.Normalize()
	}
	return &ReadRouteTablesResponse{RouteTables: out, NextPageToken: next}, nil
}

// peeringState is the state of a Net peering now: a request left pending
// past its expiration date has expired.
func peeringState(p *omi.NetPeering, now time.Time) string {
	if p.State.Name == omi.PeeringPending && p.ExpirationDate != nil {
		if t, err := time.Parse(omi.TimeFormat, *p.ExpirationDate); err == nil && now.After(t) {
			return omi.PeeringExpired
		}
	}
	return p.State.Name
}
