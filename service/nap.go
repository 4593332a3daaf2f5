package service

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/omiproject/omi"
)

// Net access points as metadata: one per Net and service, each with a
// route (DestinationServiceId the service's prefix list, NetAccessPointId
// the access point, CreationMethod CreateRoute, no DestinationIpRange) in
// the route tables it is given, as the provider's recorded states
// nets/TF-163 and TF-164 show. The error codes are the 2019 catalogue's
// entries whose slug names the situation.
const (
	codeNoSuchNetAccessPoint = "5034"  // no-such-network-endpoint
	codeNetAccessPointExists = "9038"  // network-endpoint-already-exists
	codeTooManyAccessPoints  = "10033" // too-many-network-endpoints
)

// maxNetAccessPoints is network_endpoint_limit, the real cloud's default.
const maxNetAccessPoints = 5

// napServiceKinds are the services a Net access point reaches, in the
// order the real cloud lists them (net_access_point_services/TF-166).
var napServiceKinds = []string{"kms", "directlink", "fcu", "icu", "lbu", "eim", "api", "oos", "osu"}

func init() {
	taggedKinds = append(taggedKinds, omi.KindNetAccessPoint)
	tagDecoders[omi.KindNetAccessPoint] = decodeTagged[omi.NetAccessPoint]
	extraNotFound[omi.KindNetAccessPoint] = napNotFound
}

func napNotFound(id string) error {
	return omi.NotFound(codeNoSuchNetAccessPoint, "The NetAccessPointId '%s' doesn't exist.", id)
}

// NapService is a service Net access points reach.
type NapService struct {
	IpRanges    []string `json:"IpRanges"`
	ServiceId   string   `json:"ServiceId"`
	ServiceName string   `json:"ServiceName"`
}

// napServices lists the services of the region. Their ids are derived
// from their names, so they stay the same across restarts and nodes; their
// addresses are documentation addresses (RFC 5737): omi routes nothing.
func (s *Service) napServices() []NapService {
	out := make([]NapService, len(napServiceKinds))
	for i, k := range napServiceKinds {
		name := "com.outscale." + s.cfg.Region + "." + k
		h := fnv.New32a()
		h.Write([]byte(name))
		out[i] = NapService{ServiceName: name, ServiceId: fmt.Sprintf("%s-%08x", omi.PrefixServicePrefixList, h.Sum32()),
			IpRanges: []string{fmt.Sprintf("203.0.113.%d/32", i+1)}}
	}
	return out
}

// napService finds a service by name.
func (s *Service) napService(name string) (NapService, bool) {
	for _, svc := range s.napServices() {
		if svc.ServiceName == name {
			return svc, true
		}
	}
	return NapService{}, false
}

// ownNetAccessPoint loads a Net access point the caller owns.
func ownNetAccessPoint(tx omi.Tx, c *omi.Caller, id string) (*omi.NetAccessPoint, error) {
	if !omi.ValidID(id, omi.PrefixNetAccessPoint) {
		return nil, napNotFound(id)
	}
	p, err := omi.Get[omi.NetAccessPoint](tx, id)
	if isNotFound(err) || (err == nil && p.AccountId != c.AccountID()) {
		return nil, napNotFound(id)
	}
	return p, err
}

// accountNetAccessPoints lists an account's Net access points, optionally
// only those of one Net.
func accountNetAccessPoints(tx omi.Tx, account, netID string) ([]*omi.NetAccessPoint, error) {
	var out []*omi.NetAccessPoint
	err := omi.Scan(tx, omi.Query{Owners: []string{account}}, func(p *omi.NetAccessPoint) (bool, error) {
		if netID == "" || p.NetId == netID {
			out = append(out, p)
		}
		return true, nil
	})
	return out, err
}

// napTables loads the route tables given to an access point: the caller's,
// in the access point's Net.
func napTables(tx omi.Tx, c *omi.Caller, netID string, ids []string) ([]*omi.RouteTable, error) {
	var out []*omi.RouteTable
	for _, id := range ids {
		t, err := ownRouteTable(tx, c, id)
		if err != nil {
			return nil, err
		}
		if t.NetId != netID {
			return nil, omi.Invalid(omi.CodeInvalidValue, "The route table '%s' is not in the Net '%s'.", id, netID)
		}
		out = append(out, t)
	}
	return out, nil
}

// setNapRoute adds or removes the access point's route in a table and
// reports whether the table changed.
func setNapRoute(t *omi.RouteTable, p *omi.NetAccessPoint, serviceID string, on bool) bool {
	i := slices.IndexFunc(t.Routes, func(r omi.Route) bool { return r.NetAccessPointId == p.NetAccessPointId })
	switch {
	case on && i < 0:
		t.Routes = append(t.Routes, omi.Route{CreationMethod: omi.RouteByCall, DestinationServiceId: serviceID,
			NetAccessPointId: p.NetAccessPointId, State: omi.RouteActive})
		return true
	case !on && i >= 0:
		t.Routes = slices.Delete(t.Routes, i, i+1)
		return true
	}
	return false
}

type CreateNetAccessPointRequest struct {
	Base
	NetId         string   `json:"NetId"`
	RouteTableIds []string `json:"RouteTableIds"`
	ServiceName   string   `json:"ServiceName"`
}
type NetAccessPointResponse struct {
	NetAccessPoint *omi.NetAccessPoint `json:"NetAccessPoint"`
}

// CreateNetAccessPoint creates an available access point from a Net to a
// service, with its route in each table given.
func (s *Service) CreateNetAccessPoint(ctx context.Context, c *omi.Caller, in *CreateNetAccessPointRequest) (*NetAccessPointResponse, error) {
	if err := required("NetId", in.NetId, "ServiceName", in.ServiceName); err != nil {
		return nil, err
	}
	svc, ok := s.napService(in.ServiceName)
	if !ok {
		return nil, omi.Invalid(omi.CodeInvalidValue, "The service '%s' does not exist in the region %s (ReadNetAccessPointServices lists them).", in.ServiceName, s.cfg.Region)
	}
	p := &omi.NetAccessPoint{AccountId: c.AccountID(), NetAccessPointId: omi.NewID(omi.PrefixNetAccessPoint), NetId: in.NetId,
		ServiceName: svc.ServiceName, State: omi.NetAccessPointAvailable, RouteTableIds: []string{}, Tags: []omi.Tag{}}
	err := s.update(ctx, func(tx omi.Tx) error {
		if _, err := gwNet(tx, c, in.NetId); err != nil {
			return err
		}
		tables, err := napTables(tx, c, in.NetId, in.RouteTableIds)
		if err != nil {
			return err
		}
		all, err := accountNetAccessPoints(tx, c.AccountID(), "")
		if err != nil {
			return err
		}
		for _, o := range all {
			if o.NetId == in.NetId && o.ServiceName == svc.ServiceName {
				return omi.Conflict(codeNetAccessPointExists, "The Net '%s' already has the access point '%s' to %s.", in.NetId, o.NetAccessPointId, svc.ServiceName)
			}
		}
		if len(all) >= maxNetAccessPoints {
			return omi.Errorf(codeTooManyAccessPoints, omi.TypeTooManyResources, "The account holds %d Net access points, its limit (network_endpoint_limit).", len(all))
		}
		if omi.IsDryRun(ctx) {
			return nil
		}
		if err := insertNew(tx, p, func() { p.NetAccessPointId = omi.NewID(omi.PrefixNetAccessPoint) }); err != nil {
			return err
		}
		for _, t := range tables {
			if setNapRoute(t, p, svc.ServiceId, true) {
				p.RouteTableIds = append(p.RouteTableIds, t.RouteTableId)
				if err := omi.Put(tx, t); err != nil {
					return err
				}
			}
		}
		return omi.Put(tx, p)
	})
	if err != nil {
		return nil, err
	}
	return &NetAccessPointResponse{NetAccessPoint: p}, nil
}

type UpdateNetAccessPointRequest struct {
	Base
	AddRouteTableIds    []string `json:"AddRouteTableIds"`
	NetAccessPointId    string   `json:"NetAccessPointId"`
	RemoveRouteTableIds []string `json:"RemoveRouteTableIds"`
}

// UpdateNetAccessPoint adds the access point's route to route tables of
// its Net, or removes it.
func (s *Service) UpdateNetAccessPoint(ctx context.Context, c *omi.Caller, in *UpdateNetAccessPointRequest) (*NetAccessPointResponse, error) {
	if err := required("NetAccessPointId", in.NetAccessPointId); err != nil {
		return nil, err
	}
	var p *omi.NetAccessPoint
	err := s.update(ctx, func(tx omi.Tx) error {
		var err error
		if p, err = ownNetAccessPoint(tx, c, in.NetAccessPointId); err != nil {
			return err
		}
		add, err := napTables(tx, c, p.NetId, in.AddRouteTableIds)
		if err != nil {
			return err
		}
		remove, err := napTables(tx, c, p.NetId, in.RemoveRouteTableIds)
		if err != nil {
			return err
		}
		svc, _ := s.napService(p.ServiceName)
		if omi.IsDryRun(ctx) {
			return nil
		}
		for _, t := range remove {
			if setNapRoute(t, p, svc.ServiceId, false) {
				if err := omi.Put(tx, t); err != nil {
					return err
				}
			}
			p.RouteTableIds = slices.DeleteFunc(p.RouteTableIds, func(id string) bool { return id == t.RouteTableId })
		}
		for _, t := range add {
			if setNapRoute(t, p, svc.ServiceId, true) {
				if err := omi.Put(tx, t); err != nil {
					return err
				}
			}
			if !slices.Contains(p.RouteTableIds, t.RouteTableId) {
				p.RouteTableIds = append(p.RouteTableIds, t.RouteTableId)
			}
		}
		return omi.Put(tx, p)
	})
	if err != nil {
		return nil, err
	}
	return &NetAccessPointResponse{NetAccessPoint: p}, nil
}

type DeleteNetAccessPointRequest struct {
	Base
	NetAccessPointId string `json:"NetAccessPointId"`
}
type DeleteNetAccessPointResponse struct{}

// DeleteNetAccessPoint deletes an access point and its routes.
func (s *Service) DeleteNetAccessPoint(ctx context.Context, c *omi.Caller, in *DeleteNetAccessPointRequest) (*DeleteNetAccessPointResponse, error) {
	if err := required("NetAccessPointId", in.NetAccessPointId); err != nil {
		return nil, err
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		p, err := ownNetAccessPoint(tx, c, in.NetAccessPointId)
		if err != nil {
			return err
		}
		if omi.IsDryRun(ctx) {
			return nil
		}
		tables, err := accountRouteTables(tx, c.AccountID(), p.NetId)
		if err != nil {
			return err
		}
		for _, t := range tables {
			if setNapRoute(t, p, "", false) {
				if err := omi.Put(tx, t); err != nil {
					return err
				}
			}
		}
		return retire(tx, omi.KindNetAccessPoint, p.NetAccessPointId)
	})
	if err != nil {
		return nil, err
	}
	return &DeleteNetAccessPointResponse{}, nil
}

type FiltersNetAccessPoint struct {
	tagFilter
	NetAccessPointIds []string `json:"NetAccessPointIds"`
	NetIds            []string `json:"NetIds"`
	ServiceNames      []string `json:"ServiceNames"`
	States            []string `json:"States"`
}

func (f *FiltersNetAccessPoint) match(p *omi.NetAccessPoint) bool {
	return anyOf(f.NetIds, p.NetId) && anyOf(f.ServiceNames, p.ServiceName) && anyOf(f.States, p.State) && f.tagFilter.match(p.Tags)
}

type ReadNetAccessPointsRequest struct {
	Base
	Paging
	Filters *FiltersNetAccessPoint `json:"Filters"`
}
type ReadNetAccessPointsResponse struct {
	NetAccessPoints []*omi.NetAccessPoint `json:"NetAccessPoints"`
	NextPageToken   string                `json:"NextPageToken,omitempty"`
}

// ReadNetAccessPoints lists the caller's Net access points. A route table
// deleted since is no longer listed among an access point's tables.
func (s *Service) ReadNetAccessPoints(ctx context.Context, c *omi.Caller, in *ReadNetAccessPointsRequest) (*ReadNetAccessPointsResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersNetAccessPoint{}
	}
	if _, err := resultsPerPage(in.ResultsPerPage); err != nil {
		return nil, err
	}
	if omi.IsDryRun(ctx) {
		return &ReadNetAccessPointsResponse{NetAccessPoints: []*omi.NetAccessPoint{}}, nil
	}
	var out []*omi.NetAccessPoint
	var next string
	err := s.view(ctx, func(tx omi.Tx) error {
		var err error
		q := omi.Query{Owners: []string{c.AccountID()}, IDs: f.NetAccessPointIds}
		out, next, err = listPage[omi.NetAccessPoint](tx, q, in.Paging, omi.PrefixNetAccessPoint, f.match)
		if err != nil {
			return err
		}
		for _, p := range out {
			kept := []string{}
			for _, id := range p.RouteTableIds {
				if _, err := omi.Get[omi.RouteTable](tx, id); err == nil {
					kept = append(kept, id)
				} else if !isNotFound(err) {
					return err
				}
			}
			p.RouteTableIds = kept
			if p.Tags == nil {
				p.Tags = []omi.Tag{}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &ReadNetAccessPointsResponse{NetAccessPoints: out, NextPageToken: next}, nil
}

type FiltersService struct {
	ServiceIds   []string `json:"ServiceIds"`
	ServiceNames []string `json:"ServiceNames"`
}
type ReadNetAccessPointServicesRequest struct {
	Base
	Paging
	Filters *FiltersService `json:"Filters"`
}
type ReadNetAccessPointServicesResponse struct {
	Services      []NapService `json:"Services"`
	NextPageToken string       `json:"NextPageToken,omitempty"`
}

// ReadNetAccessPointServices lists the services of the region an access
// point can reach. It is a public call, as on the real API.
func (s *Service) ReadNetAccessPointServices(ctx context.Context, c *omi.Caller, in *ReadNetAccessPointServicesRequest) (*ReadNetAccessPointServicesResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersService{}
	}
	if _, err := resultsPerPage(in.ResultsPerPage); err != nil {
		return nil, err
	}
	out := []NapService{}
	for _, svc := range s.napServices() {
		if anyOf(f.ServiceIds, svc.ServiceId) && anyOf(f.ServiceNames, svc.ServiceName) {
			out = append(out, svc)
		}
	}
	return &ReadNetAccessPointServicesResponse{Services: out}, nil
}
