package service

import (
	"context"
	"slices"

	"github.com/omiproject/omi"
)

// Virtual gateways (the Net side of a VPN) as metadata: created available,
// linked to one Net at a time, propagating routes into that Net's route
// tables when asked. The error codes are the 2019 catalogue's entries
// whose slug names the situation.
const (
	codeNoSuchVirtualGateway = "5068" // no-such-vpn-gateway
	codeInvalidVpnType       = "4080" // invalid-vpn-type
	codeVgwNotAttached       = "9026" // gateway-is-not-attached
	codeTooManyVgws          = "10020"
)

// vgwConnectionTypes are the connection types the API accepts.
var vgwConnectionTypes = []string{"ipsec.1"}

// maxVirtualGateways is vpg_limit, the real cloud's default quota.
const maxVirtualGateways = 5

func init() {
	taggedKinds = append(taggedKinds, omi.KindVirtualGateway)
	tagDecoders[omi.KindVirtualGateway] = decodeTagged[omi.VirtualGateway]
	extraNotFound[omi.KindVirtualGateway] = vgwNotFound
}

func vgwNotFound(id string) error {
	return omi.NotFound(codeNoSuchVirtualGateway, "The VirtualGatewayId '%s' doesn't exist.", id)
}

// ownVirtualGateway loads a virtual gateway the caller owns.
func ownVirtualGateway(tx omi.Tx, c *omi.Caller, id string) (*omi.VirtualGateway, error) {
	if !omi.ValidID(id, omi.PrefixVirtualGateway) {
		return nil, vgwNotFound(id)
	}
	g, err := omi.Get[omi.VirtualGateway](tx, id)
	if isNotFound(err) || (err == nil && g.AccountId != c.AccountID()) {
		return nil, vgwNotFound(id)
	}
	return g, err
}

// netVirtualGateway returns the virtual gateway attached to a Net, if any.
func netVirtualGateway(tx omi.Tx, account, netID string) (*omi.VirtualGateway, error) {
	var out *omi.VirtualGateway
	err := omi.Scan(tx, omi.Query{Owners: []string{account}}, func(g *omi.VirtualGateway) (bool, error) {
		if g.LinkedNet() == netID {
			out = g
			return false, nil
		}
		return true, nil
	})
	return out, err
}

type CreateVirtualGatewayRequest struct {
	Base
	ConnectionType string `json:"ConnectionType"`
}
type CreateVirtualGatewayResponse struct {
	VirtualGateway *omi.VirtualGateway `json:"VirtualGateway"`
}

// CreateVirtualGateway creates an available virtual gateway, linked to no
// Net.
func (s *Service) CreateVirtualGateway(ctx context.Context, c *omi.Caller, in *CreateVirtualGatewayRequest) (*CreateVirtualGatewayResponse, error) {
	if err := required("ConnectionType", in.ConnectionType); err != nil {
		return nil, err
	}
	if !slices.Contains(vgwConnectionTypes, in.ConnectionType) {
		return nil, omi.Invalid(codeInvalidVpnType, "ConnectionType '%s' is not one of %v.", in.ConnectionType, vgwConnectionTypes)
	}
	if omi.IsDryRun(ctx) {
		return &CreateVirtualGatewayResponse{}, nil
	}
	g := &omi.VirtualGateway{AccountId: c.AccountID(), VirtualGatewayId: omi.NewID(omi.PrefixVirtualGateway),
		ConnectionType: in.ConnectionType, State: omi.VirtualGatewayAvailable,
		NetToVirtualGatewayLinks: []omi.NetToVirtualGatewayLink{}, Tags: []omi.Tag{}}
	err := s.update(ctx, func(tx omi.Tx) error {
		n := 0
		if err := tx.Scan(omi.Query{Kind: omi.KindVirtualGateway, Owners: []string{c.AccountID()}}, func(omi.Record) (bool, error) {
			n++
			return true, nil
		}); err != nil {
			return err
		}
		if n >= maxVirtualGateways {
			return omi.Errorf(codeTooManyVgws, omi.TypeTooManyResources, "The account holds %d virtual gateways, its limit (vpg_limit).", n)
		}
		return insertNew(tx, g, func() { g.VirtualGatewayId = omi.NewID(omi.PrefixVirtualGateway) })
	})
	if err != nil {
		return nil, err
	}
	return &CreateVirtualGatewayResponse{VirtualGateway: g}, nil
}

type LinkVirtualGatewayRequest struct {
	Base
	NetId            string `json:"NetId"`
	VirtualGatewayId string `json:"VirtualGatewayId"`
}
type LinkVirtualGatewayResponse struct {
	NetToVirtualGatewayLink omi.NetToVirtualGatewayLink `json:"NetToVirtualGatewayLink"`
}

// LinkVirtualGateway attaches a virtual gateway to a Net. A gateway is
// attached to one Net and a Net has at most one gateway.
func (s *Service) LinkVirtualGateway(ctx context.Context, c *omi.Caller, in *LinkVirtualGatewayRequest) (*LinkVirtualGatewayResponse, error) {
	if err := required("NetId", in.NetId, "VirtualGatewayId", in.VirtualGatewayId); err != nil {
		return nil, err
	}
	link := omi.NetToVirtualGatewayLink{NetId: in.NetId, State: omi.VgwLinkAttached}
	err := s.update(ctx, func(tx omi.Tx) error {
		g, err := ownVirtualGateway(tx, c, in.VirtualGatewayId)
		if err != nil {
			return err
		}
		if _, err := gwNet(tx, c, in.NetId); err != nil {
			return err
		}
		if net := g.LinkedNet(); net != "" {
			return omi.Conflict(codeGatewayAttached, "The virtual gateway '%s' is already linked to the Net '%s'.", g.VirtualGatewayId, net)
		}
		other, err := netVirtualGateway(tx, c.AccountID(), in.NetId)
		if err != nil {
			return err
		}
		if other != nil {
			return omi.Conflict(codeNetAlreadyAttached, "The Net '%s' already has the virtual gateway '%s'.", in.NetId, other.VirtualGatewayId)
		}
		if omi.IsDryRun(ctx) {
			return nil
		}
		// The attached link first, then the detached ones of other Nets.
		links := []omi.NetToVirtualGatewayLink{link}
		for _, l := range g.NetToVirtualGatewayLinks {
			if l.NetId != in.NetId {
				links = append(links, l)
			}
		}
		g.NetToVirtualGatewayLinks = links
		return omi.Put(tx, g)
	})
	if err != nil {
		return nil, err
	}
	return &LinkVirtualGatewayResponse{NetToVirtualGatewayLink: link}, nil
}

type UnlinkVirtualGatewayRequest struct {
	Base
	NetId            string `json:"NetId"`
	VirtualGatewayId string `json:"VirtualGatewayId"`
}
type UnlinkVirtualGatewayResponse struct{}

// UnlinkVirtualGateway detaches a virtual gateway from its Net: the link
// stays listed, detached, and the gateway stops propagating routes into
// the Net's route tables.
func (s *Service) UnlinkVirtualGateway(ctx context.Context, c *omi.Caller, in *UnlinkVirtualGatewayRequest) (*UnlinkVirtualGatewayResponse, error) {
	if err := required("NetId", in.NetId, "VirtualGatewayId", in.VirtualGatewayId); err != nil {
		return nil, err
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		g, err := ownVirtualGateway(tx, c, in.VirtualGatewayId)
		if err != nil {
			return err
		}
		if _, err := gwNet(tx, c, in.NetId); err != nil {
			return err
		}
		if g.LinkedNet() != in.NetId {
			return omi.Conflict(codeVgwNotAttached, "The virtual gateway '%s' is not linked to the Net '%s'.", g.VirtualGatewayId, in.NetId)
		}
		if omi.IsDryRun(ctx) {
			return nil
		}
		tables, err := accountRouteTables(tx, c.AccountID(), in.NetId)
		if err != nil {
			return err
		}
		for _, t := range tables {
			if setPropagation(t, g.VirtualGatewayId, false) {
				if err := omi.Put(tx, t); err != nil {
					return err
				}
			}
		}
		for i := range g.NetToVirtualGatewayLinks {
			if g.NetToVirtualGatewayLinks[i].NetId == in.NetId {
				g.NetToVirtualGatewayLinks[i].State = omi.VgwLinkDetached
			}
		}
		return omi.Put(tx, g)
	})
	if err != nil {
		return nil, err
	}
	return &UnlinkVirtualGatewayResponse{}, nil
}

type DeleteVirtualGatewayRequest struct {
	Base
	VirtualGatewayId string `json:"VirtualGatewayId"`
}
type DeleteVirtualGatewayResponse struct{}

// DeleteVirtualGateway deletes a virtual gateway linked to no Net.
func (s *Service) DeleteVirtualGateway(ctx context.Context, c *omi.Caller, in *DeleteVirtualGatewayRequest) (*DeleteVirtualGatewayResponse, error) {
	if err := required("VirtualGatewayId", in.VirtualGatewayId); err != nil {
		return nil, err
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		g, err := ownVirtualGateway(tx, c, in.VirtualGatewayId)
		if err != nil {
			return err
		}
		if net := g.LinkedNet(); net != "" {
			return omi.Conflict(codeGatewayAttached, "The virtual gateway '%s' is linked to the Net '%s': unlink it first.", g.VirtualGatewayId, net)
		}
		if omi.IsDryRun(ctx) {
			return nil
		}
		return retire(tx, omi.KindVirtualGateway, g.VirtualGatewayId)
	})
	if err != nil {
		return nil, err
	}
	return &DeleteVirtualGatewayResponse{}, nil
}

type FiltersVirtualGateway struct {
	tagFilter
	ConnectionTypes   []string `json:"ConnectionTypes"`
	LinkNetIds        []string `json:"LinkNetIds"`
	LinkStates        []string `json:"LinkStates"`
	States            []string `json:"States"`
	VirtualGatewayIds []string `json:"VirtualGatewayIds"`
}

func (f *FiltersVirtualGateway) match(g *omi.VirtualGateway) bool {
	if !anyOf(f.ConnectionTypes, g.ConnectionType) || !anyOf(f.States, g.State) || !f.tagFilter.match(g.Tags) {
		return false
	}
	if len(f.LinkNetIds) == 0 && len(f.LinkStates) == 0 {
		return true
	}
	return slices.ContainsFunc(g.NetToVirtualGatewayLinks, func(l omi.NetToVirtualGatewayLink) bool {
		return anyOf(f.LinkNetIds, l.NetId) && anyOf(f.LinkStates, l.State)
	})
}

type ReadVirtualGatewaysRequest struct {
	Base
	Paging
	Filters *FiltersVirtualGateway `json:"Filters"`
}
type ReadVirtualGatewaysResponse struct {
	VirtualGateways []*omi.VirtualGateway `json:"VirtualGateways"`
	NextPageToken   string                `json:"NextPageToken,omitempty"`
}

// ReadVirtualGateways lists the caller's virtual gateways.
func (s *Service) ReadVirtualGateways(ctx context.Context, c *omi.Caller, in *ReadVirtualGatewaysRequest) (*ReadVirtualGatewaysResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersVirtualGateway{}
	}
	if _, err := resultsPerPage(in.ResultsPerPage); err != nil {
		return nil, err
	}
	if omi.IsDryRun(ctx) {
		return &ReadVirtualGatewaysResponse{VirtualGateways: []*omi.VirtualGateway{}}, nil
	}
	var out []*omi.VirtualGateway
	var next string
	err := s.view(ctx, func(tx omi.Tx) error {
		var err error
		q := omi.Query{Owners: []string{c.AccountID()}, IDs: f.VirtualGatewayIds}
		out, next, err = listPage[omi.VirtualGateway](tx, q, in.Paging, omi.PrefixVirtualGateway, f.match)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, g := range out {
		if g.Tags == nil {
			g.Tags = []omi.Tag{}
		}
		if g.NetToVirtualGatewayLinks == nil {
			g.NetToVirtualGatewayLinks = []omi.NetToVirtualGatewayLink{}
		}
	}
	return &ReadVirtualGatewaysResponse{VirtualGateways: out, NextPageToken: next}, nil
}

type UpdateRoutePropagationRequest struct {
	Base
	Enable           *bool  `json:"Enable"`
	RouteTableId     string `json:"RouteTableId"`
	VirtualGatewayId string `json:"VirtualGatewayId"`
}
type UpdateRoutePropagationResponse struct {
	RouteTable *omi.RouteTable `json:"RouteTable"`
}

// UpdateRoutePropagation makes a virtual gateway propagate its routes into
// a route table, or stop. Enabling needs the gateway attached to the
// table's Net; disabling is always accepted (terraform destroys the
// propagation before the link, but also after a link that is already gone).
func (s *Service) UpdateRoutePropagation(ctx context.Context, c *omi.Caller, in *UpdateRoutePropagationRequest) (*UpdateRoutePropagationResponse, error) {
	if in.Enable == nil {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "Enable is required")
	}
	if err := required("RouteTableId", in.RouteTableId, "VirtualGatewayId", in.VirtualGatewayId); err != nil {
		return nil, err
	}
	var out *omi.RouteTable
	err := s.update(ctx, func(tx omi.Tx) error {
		t, err := ownRouteTable(tx, c, in.RouteTableId)
		if err != nil {
			return err
		}
		g, err := ownVirtualGateway(tx, c, in.VirtualGatewayId)
		if err != nil {
			return err
		}
		if *in.Enable && g.LinkedNet() != t.NetId {
			return omi.Conflict(codeVgwNotAttached, "The virtual gateway '%s' is not linked to the Net '%s' of the route table '%s'.", g.VirtualGatewayId, t.NetId, t.RouteTableId)
		}
		if !omi.IsDryRun(ctx) && setPropagation(t, g.VirtualGatewayId, *in.Enable) {
			if err := omi.Put(tx, t); err != nil {
				return err
			}
		}
		out = t
		return s.liveRoutes(tx, t)
	})
	if err != nil {
		return nil, err
	}
	out.Normalize()
	return &UpdateRoutePropagationResponse{RouteTable: out}, nil
}

// setPropagation adds or removes a gateway among the table's propagating
// gateways and reports whether the table changed.
func setPropagation(t *omi.RouteTable, vgw string, on bool) bool {
	has := slices.ContainsFunc(t.RoutePropagatingVirtualGateways, func(p omi.RoutePropagatingVirtualGateway) bool { return p.VirtualGatewayId == vgw })
	switch {
	case on && !has:
		t.RoutePropagatingVirtualGateways = append(t.RoutePropagatingVirtualGateways, omi.RoutePropagatingVirtualGateway{VirtualGatewayId: vgw})
		return true
	case !on && has:
		t.RoutePropagatingVirtualGateways = slices.DeleteFunc(t.RoutePropagatingVirtualGateways, func(p omi.RoutePropagatingVirtualGateway) bool { return p.VirtualGatewayId == vgw })
		return true
	}
	return false
}
