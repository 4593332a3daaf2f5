package service

import (
	"context"
	"strings"

	"github.com/omiproject/omi"
)

// NAT services. A NAT service sits in a public subnet (one whose route
// table sends some range to an internet service) and holds one of the
// account's public IPs, which nothing else may use meanwhile. A subnet has
// at most one NAT service.

// ownNatService loads a NAT service the caller owns.
func ownNatService(tx omi.Tx, c *omi.Caller, id string) (*omi.NatService, error) {
	n, err := omi.Get[omi.NatService](tx, id)
	if isNotFound(err) || (err == nil && n.AccountId != c.AccountID()) {
		return nil, natNotFound(id)
	}
	return n, err
}

// netNatServices lists the NAT services of a Net.
func netNatServices(tx omi.Tx, account, netID string) ([]*omi.NatService, error) {
	var out []*omi.NatService
	err := omi.Scan(tx, omi.Query{Owners: []string{account}}, func(n *omi.NatService) (bool, error) {
		if n.NetId == netID {
			out = append(out, n)
		}
		return true, nil
	})
	return out, err
}

// natOfPublicIP returns the NAT service holding a public IP, or nil.
func natOfPublicIP(tx omi.Tx, account, publicIPID string) (*omi.NatService, error) {
	var out *omi.NatService
	err := omi.Scan(tx, omi.Query{Owners: []string{account}}, func(n *omi.NatService) (bool, error) {
		for _, p := range n.PublicIps {
			if p.PublicIpId == publicIPID {
				out = n
				return false, nil
			}
		}
		return true, nil
	})
	return out, err
}

// PublicIPUsedByNat refuses a change to a public IP that a NAT service
// holds (LinkPublicIp and DeletePublicIp call it): the address is locked
// until the NAT service is deleted.
func PublicIPUsedByNat(tx omi.Tx, account string, p *omi.PublicIp) error {
	n, err := natOfPublicIP(tx, account, p.PublicIpId)
	if err != nil {
		return err
	}
	if n != nil {
		return omi.Conflict(codeLockedAddress, "The public IP %s is used by the NAT service '%s'.", p.PublicIp, n.NatServiceId)
	}
	return nil
}

type CreateNatServiceRequest struct {
	Base
	ClientToken string `json:"ClientToken"`
	PublicIpId  string `json:"PublicIpId"`
	SubnetId    string `json:"SubnetId"`
}
type CreateNatServiceResponse struct {
	NatService *omi.NatService `json:"NatService"`
}

// CreateNatService creates a NAT service in a public subnet with a free
// public IP. A repeated ClientToken returns the NAT service it created.
func (s *Service) CreateNatService(ctx context.Context, c *omi.Caller, in *CreateNatServiceRequest) (*CreateNatServiceResponse, error) {
	if err := required("PublicIpId", in.PublicIpId, "SubnetId", in.SubnetId); err != nil {
		return nil, err
	}
	var n *omi.NatService
	err := s.update(ctx, func(tx omi.Tx) error {
		if in.ClientToken != "" {
			err := omi.Scan(tx, omi.Query{Owners: []string{c.AccountID()}}, func(o *omi.NatService) (bool, error) {
				if o.ClientToken == in.ClientToken {
					n = o
					return false, nil
				}
				return true, nil
			})
			if err != nil {
				return err
			}
			if n != nil {
				if n.SubnetId != in.SubnetId || len(n.PublicIps) == 0 || n.PublicIps[0].PublicIpId != in.PublicIpId {
					return omi.Conflict(omi.CodeAlreadyExists, "The ClientToken '%s' was used for another NAT service (%s).", in.ClientToken, n.NatServiceId)
				}
				return nil
			}
		}
		sn, err := gwSubnet(tx, c, in.SubnetId)
		if err != nil {
			return err
		}
		p, err := ownPublicIP(tx, c, in.PublicIpId, "")
		if err != nil {
			return err
		}
		if p.VmId != "" || p.NicId != "" {
			return omi.Conflict(codeLockedAddress, "The public IP %s is linked to %s: unlink it first.", p.PublicIp, p.VmId+p.NicId)
		}
		if err := PublicIPUsedByNat(tx, c.AccountID(), p); err != nil {
			return err
		}
		var other *omi.NatService
		err = omi.Scan(tx, omi.Query{Owners: []string{c.AccountID()}, Names: []string{sn.SubnetId}}, func(o *omi.NatService) (bool, error) {
			other = o
			return false, nil
		})
		if err != nil {
			return err
		}
		if other != nil {
			return omi.Conflict(codeNatExists, "The subnet '%s' already has the NAT service '%s'.", sn.SubnetId, other.NatServiceId)
		}
		t, err := subnetRouteTable(tx, c.AccountID(), sn)
		if err != nil {
			return err
		}
		public := false
		if t != nil {
			for _, r := range t.Routes {
				public = public || strings.HasPrefix(r.GatewayId, omi.PrefixInternetService+"-")
			}
		}
		if !public {
			return omi.Conflict(codeNotPublicSubnet, "The subnet '%s' is not public: its route table has no route to an internet service.", sn.SubnetId)
		}
		n = &omi.NatService{AccountId: c.AccountID(), ClientToken: in.ClientToken, NatServiceId: omi.NewID(omi.PrefixNatService),
			NetId: sn.NetId, SubnetId: sn.SubnetId, State: omi.NatAvailable, Tags: []omi.Tag{},
			PublicIps: []omi.PublicIpLight{{PublicIp: p.PublicIp, PublicIpId: p.PublicIpId}}}
		return insertNew(tx, n, func() { n.NatServiceId = omi.NewID(omi.PrefixNatService) })
	})
	if err != nil {
		return nil, err
	}
	return &CreateNatServiceResponse{NatService: n}, nil
}

type DeleteNatServiceRequest struct {
	Base
	NatServiceId string `json:"NatServiceId"`
}
type DeleteNatServiceResponse struct{}

// DeleteNatService deletes a NAT service and frees its public IP (which
// stays the account's). Routes to it stay, as blackholes.
func (s *Service) DeleteNatService(ctx context.Context, c *omi.Caller, in *DeleteNatServiceRequest) (*DeleteNatServiceResponse, error) {
	if err := required("NatServiceId", in.NatServiceId); err != nil {
		return nil, err
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		n, err := ownNatService(tx, c, in.NatServiceId)
		if err != nil {
			return err
		}
		return retire(tx, omi.KindNatService, n.NatServiceId)
	})
	if err != nil {
		return nil, err
	}
	return &DeleteNatServiceResponse{}, nil
}

type FiltersNatService struct {
	tagFilter
	ClientTokens  []string `json:"ClientTokens"`
	NatServiceIds []string `json:"NatServiceIds"`
	NetIds        []string `json:"NetIds"`
	States        []string `json:"States"`
	SubnetIds     []string `json:"SubnetIds"`
}

func (f *FiltersNatService) match(n *omi.NatService) bool {
	return anyOf(f.ClientTokens, n.ClientToken) && anyOf(f.NetIds, n.NetId) && anyOf(f.States, n.State) &&
		anyOf(f.SubnetIds, n.SubnetId) && f.tagFilter.match(n.Tags)
}

type ReadNatServicesRequest struct {
	Base
	Paging
	Filters *FiltersNatService `json:"Filters"`
}
type ReadNatServicesResponse struct {
	NatServices   []*omi.NatService `json:"NatServices"`
	NextPageToken string            `json:"NextPageToken,omitempty"`
}

// ReadNatServices lists the caller's NAT services.
func (s *Service) ReadNatServices(ctx context.Context, c *omi.Caller, in *ReadNatServicesRequest) (*ReadNatServicesResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersNatService{}
	}
	if _, err := resultsPerPage(in.ResultsPerPage); err != nil {
		return nil, err
	}
	if omi.IsDryRun(ctx) {
		return &ReadNatServicesResponse{NatServices: []*omi.NatService{}}, nil
	}
	var out []*omi.NatService
	var next string
	err := s.view(ctx, func(tx omi.Tx) error {
		var err error
		q := omi.Query{Owners: []string{c.AccountID()}, IDs: f.NatServiceIds}
		out, next, err = listPage[omi.NatService](tx, q, in.Paging, omi.PrefixNatService, f.match)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, n := range out {
		if n.Tags == nil {
			n.Tags = []omi.Tag{}
		}
	}
	return &ReadNatServicesResponse{NatServices: out, NextPageToken: next}, nil
}
