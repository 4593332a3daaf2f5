package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"

	"github.com/omiproject/omi"
)

// Nets and their subnets are stored resources an account creates, as on
// the real cloud: an account starts with none, and a VM created without a
// subnet is in the public Cloud. Nothing flows through them; what is real
// is their rules: address ranges, overlap, subregions, the addresses their
// NICs take, and what may be deleted while something depends on it.

// Error codes of the Net and subnet calls (2019 gateway error catalogue).
const (
	codeInvalidCidrSize = "4015" // invalid-cidr-size: a prefix outside /16../28
	codeNotInNetBlock   = "9044" // not-in-vpc-block: subnet outside its Net
	codeSubnetConflict  = "9058" // subnet-conflict: overlapping subnets
)

// Prefix lengths a Net may have; a subnet may be as small as a /29 (the
// API's documentation of CreateSubnet).
const (
	minNetPrefix    = 16
	maxNetPrefix    = 28
	maxSubnetPrefix = 29
	// subnetReserved is how many addresses of a subnet the cloud keeps:
	// the network address, the next three (gateway, DNS, future use) and
	// the broadcast address.
	subnetReserved = 5
)

// init registers Nets, subnets and NICs with CreateTags, DeleteTags and
// ReadTags.
func init() {
	taggedKinds = append(taggedKinds, omi.KindNet, omi.KindSubnet, omi.KindNic)
	tagDecoders[omi.KindNet] = decodeTagged[omi.Net]
	tagDecoders[omi.KindSubnet] = decodeTagged[omi.Subnet]
	tagDecoders[omi.KindNic] = decodeTagged[omi.Nic]
	extraNotFound[omi.KindNet] = netNotFound
	extraNotFound[omi.KindSubnet] = subnetNotFound
	extraNotFound[omi.KindNic] = nicNotFound
}

// derivedID returns prefix-xxxxxxxx with the hex digits taken from a hash
// of the seed: stable across restarts and across the nodes of a region.
func derivedID(prefix, seed string) string {
	sum := sha256.Sum256([]byte("omi/" + prefix + "/" + seed))
	return prefix + "-" + hex.EncodeToString(sum[:4])
}

// parseRange parses an IPv4 range in CIDR notation, as written by the
// caller: the address must be the range's first one (10.0.0.0/16, not
// 10.0.0.1/16), and its prefix between /16 and maxBits.
func parseRange(field, s string, maxBits int) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, omi.Invalid(codeInvalidIPAddress, "%s %q is not an IPv4 range in CIDR notation", field, s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, omi.Invalid(codeInvalidIPAddress, "%s %q is not the first address of its range (%s)", field, s, p.Masked())
	}
	if p.Bits() < minNetPrefix || p.Bits() > maxBits {
		return netip.Prefix{}, omi.Invalid(codeInvalidCidrSize, "%s %q must have a prefix between /%d and /%d", field, s, minNetPrefix, maxBits)
	}
	return p, nil
}

func netNotFound(id string) error {
	return omi.NotFound(codeNoSuchNet, "The NetId '%s' doesn't exist.", id)
}

func subnetNotFound(id string) error {
	return omi.NotFound(codeNoSuchSubnet, "The SubnetId '%s' doesn't exist.", id)
}

// ownNet loads a Net of the caller; other accounts' Nets are reported
// exactly like missing ones.
func ownNet(tx omi.Tx, c *omi.Caller, id string) (*omi.Net, error) {
	return netOf(tx, c.AccountID(), id)
}

// netOf loads a Net owned by account.
func netOf(tx omi.Tx, account, id string) (*omi.Net, error) {
	n, err := omi.Get[omi.Net](tx, id)
	if isNotFound(err) || (err == nil && n.AccountId != account) {
		return nil, netNotFound(id)
	}
	return n, err
}

// ownSubnet loads a subnet of the caller.
func ownSubnet(tx omi.Tx, c *omi.Caller, id string) (*omi.Subnet, error) {
	sn, err := omi.Get[omi.Subnet](tx, id)
	if isNotFound(err) || (err == nil && sn.AccountId != c.AccountID()) {
		return nil, subnetNotFound(id)
	}
	return sn, err
}

// netSubnets lists the subnets of a Net.
func netSubnets(tx omi.Tx, account, netID string) ([]*omi.Subnet, error) {
	var out []*omi.Subnet
	err := omi.Scan(tx, omi.Query{Owners: []string{account}, Names: []string{netID}}, func(sn *omi.Subnet) (bool, error) {
		out = append(out, sn)
		return true, nil
	})
	return out, err
}

type CreateNetRequest struct {
	Base
	IpRange string `json:"IpRange"`
	Tenancy string `json:"Tenancy"`
}
type CreateNetResponse struct {
	Net *omi.Net `json:"Net"`
}

// CreateNet creates a Net with its default security group, its main route
// table and the account's default DHCP options.
func (s *Service) CreateNet(ctx context.Context, c *omi.Caller, in *CreateNetRequest) (*CreateNetResponse, error) {
	if in.IpRange == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "IpRange is required")
	}
	p, err := parseRange("IpRange", in.IpRange, maxNetPrefix)
	if err != nil {
		return nil, err
	}
	tenancy := in.Tenancy
	if tenancy == "" {
		tenancy = "default"
	}
	if tenancy != "default" && tenancy != "dedicated" && tenancy != "dedicated group" {
		return nil, omi.Invalid(omi.CodeInvalidValue, "Tenancy must be default, dedicated or dedicated group, not %q", in.Tenancy)
	}
	me := c.AccountID()
	var n *omi.Net
	err = s.update(ctx, func(tx omi.Tx) error {
		n = &omi.Net{AccountId: me, NetId: omi.NewID(omi.PrefixNet), IpRange: p.String(), State: omi.NetAvailable,
			Tenancy: tenancy, Tags: []omi.Tag{}}
		count := 0
		if err := omi.Scan(tx, omi.Query{Owners: []string{me}}, func(*omi.Net) (bool, error) {
			count++
			return true, nil
		}); err != nil {
			return err
		}
		if max := quotaMax("vpc_limit"); count >= max {
			return omi.Errorf("10022", omi.TypeTooManyResources, "an account can hold at most %d Nets", max)
		}
		if err := insertNew(tx, n, func() { n.NetId = omi.NewID(omi.PrefixNet) }); err != nil {
			return err
		}
		if err := s.NetgwCreateNet(tx, me, n); err != nil {
			return err
		}
		g := newDefaultGroup(me, n.NetId)
		if err := insertNew(tx, g, func() { setDefaultID(g, omi.NewID(omi.PrefixSecurityGroup)) }); err != nil {
			return err
		}
		return omi.Put(tx, n)
	})
	if err != nil {
		return nil, err
	}
	return &CreateNetResponse{Net: n}, nil
}

type UpdateNetRequest struct {
	Base
	DhcpOptionsSetId string `json:"DhcpOptionsSetId"`
	NetId            string `json:"NetId"`
}
type UpdateNetResponse struct {
	Net *omi.Net `json:"Net"`
}

// UpdateNet associates a DHCP options set (or "default") with a Net.
func (s *Service) UpdateNet(ctx context.Context, c *omi.Caller, in *UpdateNetRequest) (*UpdateNetResponse, error) {
	if err := required("NetId", in.NetId, "DhcpOptionsSetId", in.DhcpOptionsSetId); err != nil {
		return nil, err
	}
	var n *omi.Net
	err := s.update(ctx, func(tx omi.Tx) error {
		var err error
		if n, err = ownNet(tx, c, in.NetId); err != nil {
			return err
		}
		if n.DhcpOptionsSetId, err = s.DhcpOptionsForNet(tx, c, in.DhcpOptionsSetId); err != nil {
			return err
		}
		return omi.Put(tx, n)
	})
	if err != nil {
		return nil, err
	}
	return &UpdateNetResponse{Net: n}, nil
}

type DeleteNetRequest struct {
	Base
	NetId string `json:"NetId"`
}
type DeleteNetResponse struct{}

// DeleteNet deletes a Net once nothing is left in it but its default
// security group and main route table, which go with it.
func (s *Service) DeleteNet(ctx context.Context, c *omi.Caller, in *DeleteNetRequest) (*DeleteNetResponse, error) {
	if err := required("NetId", in.NetId); err != nil {
		return nil, err
	}
	me := c.AccountID()
	err := s.update(ctx, func(tx omi.Tx) error {
		n, err := ownNet(tx, c, in.NetId)
		if err != nil {
			return err
		}
		subnets, err := netSubnets(tx, me, n.NetId)
		if err != nil {
			return err
		}
		if len(subnets) > 0 {
			return omi.Conflict(codeNetAssociated, "The Net '%s' has the subnet '%s': delete it first.", n.NetId, subnets[0].SubnetId)
		}
		var groups []*omi.SecGroup
		err = omi.Scan(tx, omi.Query{Owners: []string{me}}, func(g *omi.SecGroup) (bool, error) {
			if g.NetId == n.NetId {
				groups = append(groups, g)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, g := range groups {
			if g.SecurityGroupName != omi.DefaultSecurityGroupName {
				return omi.Conflict(codeNetAssociated, "The Net '%s' has the security group '%s': delete it first.", n.NetId, g.SecurityGroupId)
			}
		}
		if err := s.NetgwDeleteNet(tx, me, n.NetId); err != nil {
			return err
		}
		for _, g := range groups {
			if err := retire(tx, omi.KindSecurityGroup, g.SecurityGroupId); err != nil {
				return err
			}
		}
		return retire(tx, omi.KindNet, n.NetId)
	})
	if err != nil {
		return nil, err
	}
	return &DeleteNetResponse{}, nil
}

type FiltersNet struct {
	tagFilter
	DhcpOptionsSetIds []string `json:"DhcpOptionsSetIds"`
	IpRanges          []string `json:"IpRanges"`
	IsDefault         *bool    `json:"IsDefault"`
	NetIds            []string `json:"NetIds"`
	States            []string `json:"States"`
}

func (f *FiltersNet) match(n *omi.Net) bool {
	// omi has no default Net: IsDefault true keeps none.
	return anyOf(f.DhcpOptionsSetIds, n.DhcpOptionsSetId) && anyOf(f.IpRanges, n.IpRange) && anyOf(f.NetIds, n.NetId) &&
		anyOf(f.States, n.State) && (f.IsDefault == nil || !*f.IsDefault) && f.tagFilter.match(n.Tags)
}

type ReadNetsRequest struct {
	Base
	Paging
	Filters *FiltersNet `json:"Filters"`
}
type ReadNetsResponse struct {
	Nets          []*omi.Net `json:"Nets"`
	NextPageToken string     `json:"NextPageToken,omitempty"`
}

// ReadNets lists the caller's Nets.
func (s *Service) ReadNets(ctx context.Context, c *omi.Caller, in *ReadNetsRequest) (*ReadNetsResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersNet{}
	}
	if _, err := resultsPerPage(in.ResultsPerPage); err != nil {
		return nil, err
	}
	if omi.IsDryRun(ctx) {
		return &ReadNetsResponse{Nets: []*omi.Net{}}, nil
	}
	var out []*omi.Net
	var next string
	err := s.view(ctx, func(tx omi.Tx) error {
		var err error
		out, next, err = listPage[omi.Net](tx, omi.Query{Owners: []string{c.AccountID()}, IDs: f.NetIds}, in.Paging, omi.PrefixNet, f.match)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &ReadNetsResponse{Nets: out, NextPageToken: next}, nil
}

type CreateSubnetRequest struct {
	Base
	IpRange       string `json:"IpRange"`
	NetId         string `json:"NetId"`
	SubregionName string `json:"SubregionName"`
}
type CreateSubnetResponse struct {
	Subnet *omi.Subnet `json:"Subnet"`
}

// CreateSubnet creates a subnet in one subregion, inside its Net's range
// and overlapping none of the Net's other subnets.
func (s *Service) CreateSubnet(ctx context.Context, c *omi.Caller, in *CreateSubnetRequest) (*CreateSubnetResponse, error) {
	if err := required("NetId", in.NetId, "IpRange", in.IpRange); err != nil {
		return nil, err
	}
	p, err := parseRange("IpRange", in.IpRange, maxSubnetPrefix)
	if err != nil {
		return nil, err
	}
	subregion := in.SubregionName
	if subregion == "" {
		subregion = s.cfg.Region + "a"
	}
	if !s.validSubregion(subregion) {
		return nil, omi.NotFound(omi.CodeNoSuchAZ, "The SubregionName '%s' doesn't exist in region %s.", subregion, s.cfg.Region)
	}
	me := c.AccountID()
	var sn *omi.Subnet
	err = s.update(ctx, func(tx omi.Tx) error {
		n, err := ownNet(tx, c, in.NetId)
		if err != nil {
			return err
		}
		np := netip.MustParsePrefix(n.IpRange)
		if !np.Contains(p.Addr()) || p.Bits() < np.Bits() {
			return omi.Conflict(codeNotInNetBlock, "The IpRange %s is not inside the range %s of the Net '%s'.", p, np, n.NetId)
		}
		siblings, err := netSubnets(tx, me, n.NetId)
		if err != nil {
			return err
		}
		for _, o := range siblings {
			if netip.MustParsePrefix(o.IpRange).Overlaps(p) {
				return omi.Conflict(codeSubnetConflict, "The IpRange %s overlaps the subnet '%s' (%s).", p, o.SubnetId, o.IpRange)
			}
		}
		sn = &omi.Subnet{AccountId: me, SubnetId: omi.NewID(omi.PrefixSubnet), NetId: n.NetId, IpRange: p.String(),
			SubregionName: subregion, State: omi.NetAvailable, Tags: []omi.Tag{}, AvailableIpsCount: rangeSize(p) - subnetReserved}
		return insertNew(tx, sn, func() { sn.SubnetId = omi.NewID(omi.PrefixSubnet) })
	})
	if err != nil {
		return nil, err
	}
	return &CreateSubnetResponse{Subnet: sn}, nil
}

// rangeSize is the number of addresses of an IPv4 range.
func rangeSize(p netip.Prefix) int { return 1 << (32 - p.Bits()) }

type UpdateSubnetRequest struct {
	Base
	MapPublicIpOnLaunch *bool  `json:"MapPublicIpOnLaunch"`
	SubnetId            string `json:"SubnetId"`
}
type UpdateSubnetResponse struct {
	Subnet *omi.Subnet `json:"Subnet"`
}

// UpdateSubnet sets whether NICs created in the subnet get a public IP.
func (s *Service) UpdateSubnet(ctx context.Context, c *omi.Caller, in *UpdateSubnetRequest) (*UpdateSubnetResponse, error) {
	if in.SubnetId == "" || in.MapPublicIpOnLaunch == nil {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "SubnetId and MapPublicIpOnLaunch are required")
	}
	var sn *omi.Subnet
	err := s.update(ctx, func(tx omi.Tx) error {
		var err error
		if sn, err = ownSubnet(tx, c, in.SubnetId); err != nil {
			return err
		}
		sn.MapPublicIpOnLaunch = *in.MapPublicIpOnLaunch
		if err := omi.Put(tx, sn); err != nil {
			return err
		}
		return s.countAvailableIps(tx, sn.AccountId, sn.NetId, []*omi.Subnet{sn})
	})
	if err != nil {
		return nil, err
	}
	return &UpdateSubnetResponse{Subnet: sn}, nil
}

type DeleteSubnetRequest struct {
	Base
	SubnetId string `json:"SubnetId"`
}
type DeleteSubnetResponse struct{}

// DeleteSubnet deletes a subnet that no NIC (and so no VM) uses.
func (s *Service) DeleteSubnet(ctx context.Context, c *omi.Caller, in *DeleteSubnetRequest) (*DeleteSubnetResponse, error) {
	if err := required("SubnetId", in.SubnetId); err != nil {
		return nil, err
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		sn, err := ownSubnet(tx, c, in.SubnetId)
		if err != nil {
			return err
		}
		nics, err := netNics(tx, sn.AccountId, sn.NetId)
		if err != nil {
			return err
		}
		for _, n := range nics {
			if n.SubnetId == sn.SubnetId {
				return omi.Conflict(codeSubnetInUse, "The subnet '%s' holds the NIC '%s': delete it (or its VM) first.", sn.SubnetId, n.NicId)
			}
		}
		if err := subnetUsedByLoadBalancer(tx, sn.AccountId, sn.SubnetId); err != nil {
			return err
		}
		if err := s.NetgwDeleteSubnet(tx, sn.AccountId, sn); err != nil {
			return err
		}
		return retire(tx, omi.KindSubnet, sn.SubnetId)
	})
	if err != nil {
		return nil, err
	}
	return &DeleteSubnetResponse{}, nil
}

// countAvailableIps sets AvailableIpsCount of subnets of one Net from the
// private IPs its NICs hold.
func (s *Service) countAvailableIps(tx omi.Tx, account, netID string, subnets []*omi.Subnet) error {
	nics, err := netNics(tx, account, netID)
	if err != nil {
		return err
	}
	used := map[string]int{}
	for _, n := range nics {
		used[n.SubnetId] += len(n.PrivateIps)
	}
	for _, sn := range subnets {
		sn.AvailableIpsCount = rangeSize(netip.MustParsePrefix(sn.IpRange)) - subnetReserved - used[sn.SubnetId]
	}
	return nil
}

type FiltersSubnet struct {
	tagFilter
	AvailableIpsCounts []int    `json:"AvailableIpsCounts"`
	IpRanges           []string `json:"IpRanges"`
	NetIds             []string `json:"NetIds"`
	States             []string `json:"States"`
	SubnetIds          []string `json:"SubnetIds"`
	SubregionNames     []string `json:"SubregionNames"`
}

type ReadSubnetsRequest struct {
	Base
	Paging
	Filters *FiltersSubnet `json:"Filters"`
}
type ReadSubnetsResponse struct {
	Subnets       []*omi.Subnet `json:"Subnets"`
	NextPageToken string        `json:"NextPageToken,omitempty"`
}

// ReadSubnets lists the caller's subnets, with the addresses still free in
// each.
func (s *Service) ReadSubnets(ctx context.Context, c *omi.Caller, in *ReadSubnetsRequest) (*ReadSubnetsResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersSubnet{}
	}
	if _, err := resultsPerPage(in.ResultsPerPage); err != nil {
		return nil, err
	}
	if omi.IsDryRun(ctx) {
		return &ReadSubnetsResponse{Subnets: []*omi.Subnet{}}, nil
	}
	var out []*omi.Subnet
	var next string
	err := s.view(ctx, func(tx omi.Tx) error {
		// The free address count depends on the NICs: it is counted for
		// each candidate only when a filter reads it, and per Net for the
		// page returned.
		var countErr error
		keep := func(sn *omi.Subnet) bool {
			if !(anyOf(f.IpRanges, sn.IpRange) && anyOf(f.NetIds, sn.NetId) && anyOf(f.States, sn.State) &&
				anyOf(f.SubregionNames, sn.SubregionName) && f.tagFilter.match(sn.Tags)) {
				return false
			}
			if len(f.AvailableIpsCounts) == 0 {
				return true
			}
			if err := s.countAvailableIps(tx, sn.AccountId, sn.NetId, []*omi.Subnet{sn}); err != nil && countErr == nil {
				countErr = err
			}
			return anyOf(f.AvailableIpsCounts, sn.AvailableIpsCount)
		}
		var err error
		out, next, err = listPage[omi.Subnet](tx, omi.Query{Owners: []string{c.AccountID()}, IDs: f.SubnetIds}, in.Paging, omi.PrefixSubnet, keep)
		if err != nil {
			return err
		}
		if countErr != nil {
			return countErr
		}
		byNet := map[string][]*omi.Subnet{}
		for _, sn := range out {
			byNet[sn.NetId] = append(byNet[sn.NetId], sn)
		}
		for netID, sns := range byNet {
			if err := s.countAvailableIps(tx, c.AccountID(), netID, sns); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &ReadSubnetsResponse{Subnets: out, NextPageToken: next}, nil
}
