package service

import (
	"context"
	"sort"

	"github.com/omiproject/omi"
)

// Error codes of the gateway and routing calls. The 2019 catalogue gives
// the slugs; where the real cloud's answer is known from the terraform
// provider (which branches on it), that code is used: 1007 and 1018 on
// UnlinkInternetService, 9045 on CreateNatService, 9095 on DeleteSubnet. (The provider also
// handles a 1004, "mapped public IPs", by unlinking the Net's public IPs;
// its own test of that unlink, which passes on the real cloud, shows the
// VM's public IP link kept, so omi does not refuse the unlink for it.) The others are the
// catalogue entries whose slug names the situation.
const (
	codeNoSuchDhcpOptions = "5018" // no-such-dhcpoptions
	codeNoSuchGateway     = "5019" // no-such-gateway (internet service)
	codeNoSuchNatService  = "5032" // no-such-nat-gateway
	codeNoSuchNet         = "5065" // no-such-vpc
	codeNoSuchRoute       = "5045" // no-such-route
	codeNoSuchRouteTable  = "5046" // no-such-route-table
	codeNoSuchRouteLink   = "5047" // no-such-rtb-assoc
	codeNoSuchSubnet      = "5057" // no-such-subnet
	// The catalogue has no slug for a missing Net peering: no-such-resource.
	codeNoSuchNetPeering = omi.CodeNoSuchResource

	codeGatewayNotLinked  = "1007" // UnlinkInternetService: not linked to that Net
	codeNetHasNatServices = "1018" // UnlinkInternetService: the Net has NAT services
	codeGatewayAttached   = "9024" // gateway-is-already-attached
	codeNatExists         = "9037" // nat-gateway-already-exists (one per subnet)
	codeNotPublicSubnet   = "9045" // not-public-subnet
	codeRouteExists       = "9052" // route-already-exists
	// DeleteSubnet of a subnet still used (NICs, a NAT service): the
	// terraform provider retries DeleteSubnet on 9095, the code the real
	// cloud answers while a subnet is in use (the 2019 catalogue, older,
	// has only 9057 subnet-already-in-use).
	codeSubnetInUse        = "9095"
	codeTableHasSubnets    = "9059" // subnet-is-associated
	codeNetAlreadyAttached = "9065" // vpc-already-attached: the Net has an internet service
	codeNetAssociated      = "9066" // vpc-is-associated: still used by a Net
	codePeeringExists      = "9067" // vpc-peering-connection-already-exists
)

// gwKinds are the kinds this file family adds to the tag calls.
var gwKinds = []omi.Kind{omi.KindInternetService, omi.KindRouteTable, omi.KindNatService, omi.KindNetPeering, omi.KindDhcpOptions}

// init registers the gateway kinds with CreateTags, DeleteTags and ReadTags.
func init() {
	taggedKinds = append(taggedKinds, gwKinds...)
	tagDecoders[omi.KindInternetService] = decodeTagged[omi.InternetService]
	tagDecoders[omi.KindRouteTable] = decodeTagged[omi.RouteTable]
	tagDecoders[omi.KindNatService] = decodeTagged[omi.NatService]
	tagDecoders[omi.KindNetPeering] = decodeTagged[omi.NetPeering]
	tagDecoders[omi.KindDhcpOptions] = decodeTagged[omi.DhcpOptionsSet]
	extraNotFound[omi.KindInternetService] = gatewayNotFound
	extraNotFound[omi.KindRouteTable] = routeTableNotFound
	extraNotFound[omi.KindNatService] = natNotFound
	extraNotFound[omi.KindNetPeering] = peeringNotFound
	extraNotFound[omi.KindDhcpOptions] = dhcpNotFound
	extraTagged[omi.KindDhcpOptions] = materializeDefaultDhcp
}

func gatewayNotFound(id string) error {
	return omi.NotFound(codeNoSuchGateway, "The InternetServiceId '%s' doesn't exist.", id)
}
func routeTableNotFound(id string) error {
	return omi.NotFound(codeNoSuchRouteTable, "The RouteTableId '%s' doesn't exist.", id)
}
func natNotFound(id string) error {
	return omi.NotFound(codeNoSuchNatService, "The NatServiceId '%s' doesn't exist.", id)
}
func peeringNotFound(id string) error {
	return omi.NotFound(codeNoSuchNetPeering, "The NetPeeringId '%s' doesn't exist.", id)
}
func dhcpNotFound(id string) error {
	return omi.NotFound(codeNoSuchDhcpOptions, "The DhcpOptionsSetId '%s' doesn't exist.", id)
}

// required fails with 4045 when a required parameter is empty.
func required(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return omi.Invalid(omi.CodeInvalidParameter, "%s is required", pairs[i])
		}
	}
	return nil
}

// ownInternetService loads an internet service the caller owns.
func ownInternetService(tx omi.Tx, c *omi.Caller, id string) (*omi.InternetService, error) {
	g, err := omi.Get[omi.InternetService](tx, id)
	if isNotFound(err) || (err == nil && g.AccountId != c.AccountID()) {
		return nil, gatewayNotFound(id)
	}
	return g, err
}

// netInternetService returns the internet service linked to a Net, if any.
func netInternetService(tx omi.Tx, account, netID string) (*omi.InternetService, error) {
	var out *omi.InternetService
	err := omi.Scan(tx, omi.Query{Owners: []string{account}}, func(g *omi.InternetService) (bool, error) {
		if g.NetId == netID {
			out = g
			return false, nil
		}
		return true, nil
	})
	return out, err
}

type CreateInternetServiceRequest struct{ Base }
type CreateInternetServiceResponse struct {
	InternetService *omi.InternetService `json:"InternetService"`
}

// CreateInternetService creates an internet service, not linked to any Net.
func (s *Service) CreateInternetService(ctx context.Context, c *omi.Caller, in *CreateInternetServiceRequest) (*CreateInternetServiceResponse, error) {
	g := &omi.InternetService{AccountId: c.AccountID(), InternetServiceId: omi.NewID(omi.PrefixInternetService), Tags: []omi.Tag{}}
	err := s.update(ctx, func(tx omi.Tx) error {
		return insertNew(tx, g, func() { g.InternetServiceId = omi.NewID(omi.PrefixInternetService) })
	})
	if err != nil {
		return nil, err
	}
	return &CreateInternetServiceResponse{InternetService: g}, nil
}

type LinkInternetServiceRequest struct {
	Base
	InternetServiceId string `json:"InternetServiceId"`
	NetId             string `json:"NetId"`
}
type LinkInternetServiceResponse struct{}

// LinkInternetService links an internet service to a Net. A service links
// to one Net and a Net has at most one service.
func (s *Service) LinkInternetService(ctx context.Context, c *omi.Caller, in *LinkInternetServiceRequest) (*LinkInternetServiceResponse, error) {
	if err := required("InternetServiceId", in.InternetServiceId, "NetId", in.NetId); err != nil {
		return nil, err
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		g, err := ownInternetService(tx, c, in.InternetServiceId)
		if err != nil {
			return err
		}
		if _, err := gwNet(tx, c, in.NetId); err != nil {
			return err
		}
		if g.NetId != "" {
			return omi.Conflict(codeGatewayAttached, "The internet service '%s' is already linked to the Net '%s'.", g.InternetServiceId, g.NetId)
		}
		other, err := netInternetService(tx, c.AccountID(), in.NetId)
		if err != nil {
			return err
		}
		if other != nil {
			return omi.Conflict(codeNetAlreadyAttached, "The Net '%s' already has the internet service '%s'.", in.NetId, other.InternetServiceId)
		}
		g.NetId, g.State = in.NetId, omi.LinkAvailable
		return omi.Put(tx, g)
	})
	if err != nil {
		return nil, err
	}
	return &LinkInternetServiceResponse{}, nil
}

type UnlinkInternetServiceRequest struct {
	Base
	InternetServiceId string `json:"InternetServiceId"`
	NetId             string `json:"NetId"`
}
type UnlinkInternetServiceResponse struct{}

// UnlinkInternetService unlinks an internet service from its Net. The Net
// must have no NAT service, as on the real cloud (the terraform provider
// retries on 1018 while its NAT services are deleted); public IPs linked
// to the Net's VMs stay linked.
func (s *Service) UnlinkInternetService(ctx context.Context, c *omi.Caller, in *UnlinkInternetServiceRequest) (*UnlinkInternetServiceResponse, error) {
	if err := required("InternetServiceId", in.InternetServiceId, "NetId", in.NetId); err != nil {
		return nil, err
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		g, err := ownInternetService(tx, c, in.InternetServiceId)
		if err != nil {
			return err
		}
		if _, err := gwNet(tx, c, in.NetId); err != nil {
			return err
		}
		if g.NetId != in.NetId {
			return omi.Errorf(codeGatewayNotLinked, omi.TypeDependencyProblem, "The internet service '%s' is not linked to the Net '%s'.", g.InternetServiceId, in.NetId)
		}
		nats, err := netNatServices(tx, c.AccountID(), in.NetId)
		if err != nil {
			return err
		}
		if len(nats) > 0 {
			return omi.Errorf(codeNetHasNatServices, omi.TypeDependencyProblem, "The Net '%s' has the NAT service '%s': delete it first.", in.NetId, nats[0].NatServiceId)
		}
		g.NetId, g.State = "", ""
		return omi.Put(tx, g)
	})
	if err != nil {
		return nil, err
	}
	return &UnlinkInternetServiceResponse{}, nil
}

type DeleteInternetServiceRequest struct {
	Base
	InternetServiceId string `json:"InternetServiceId"`
}
type DeleteInternetServiceResponse struct{}

// DeleteInternetService deletes an unlinked internet service. Routes to it
// stay, as blackholes.
func (s *Service) DeleteInternetService(ctx context.Context, c *omi.Caller, in *DeleteInternetServiceRequest) (*DeleteInternetServiceResponse, error) {
	if err := required("InternetServiceId", in.InternetServiceId); err != nil {
		return nil, err
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		g, err := ownInternetService(tx, c, in.InternetServiceId)
		if err != nil {
			return err
		}
		if g.NetId != "" {
			return omi.Conflict(codeGatewayAttached, "The internet service '%s' is linked to the Net '%s': unlink it first.", g.InternetServiceId, g.NetId)
		}
		return retire(tx, omi.KindInternetService, g.InternetServiceId)
	})
	if err != nil {
		return nil, err
	}
	return &DeleteInternetServiceResponse{}, nil
}

type FiltersInternetService struct {
	tagFilter
	InternetServiceIds []string `json:"InternetServiceIds"`
	LinkNetIds         []string `json:"LinkNetIds"`
	LinkStates         []string `json:"LinkStates"`
}

func (f *FiltersInternetService) match(g *omi.InternetService) bool {
	return anyOf(f.LinkNetIds, g.NetId) && anyOf(f.LinkStates, g.State) && f.tagFilter.match(g.Tags)
}

type ReadInternetServicesRequest struct {
	Base
	Paging
	Filters *FiltersInternetService `json:"Filters"`
}
type ReadInternetServicesResponse struct {
	InternetServices []*omi.InternetService `json:"InternetServices"`
	NextPageToken    string                 `json:"NextPageToken,omitempty"`
}

// ReadInternetServices lists the caller's internet services.
func (s *Service) ReadInternetServices(ctx context.Context, c *omi.Caller, in *ReadInternetServicesRequest) (*ReadInternetServicesResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersInternetService{}
	}
	if _, err := resultsPerPage(in.ResultsPerPage); err != nil {
		return nil, err
	}
	if omi.IsDryRun(ctx) {
		return &ReadInternetServicesResponse{InternetServices: []*omi.InternetService{}}, nil
	}
	var out []*omi.InternetService
	var next string
	err := s.view(ctx, func(tx omi.Tx) error {
		var err error
		q := omi.Query{Owners: []string{c.AccountID()}, IDs: f.InternetServiceIds}
		out, next, err = listPage[omi.InternetService](tx, q, in.Paging, omi.PrefixInternetService, f.match)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, g := range out {
		if g.Tags == nil {
			g.Tags = []omi.Tag{}
		}
	}
	return &ReadInternetServicesResponse{InternetServices: out, NextPageToken: next}, nil
}

// sortByID sorts resources by id, the order of every listing.
func sortByID[T any](items []T, id func(T) string) {
	sort.Slice(items, func(i, j int) bool { return id(items[i]) < id(items[j]) })
}
