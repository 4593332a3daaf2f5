package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"

	"github.com/omiproject/omi"
)

// Every account has one Net, 10.0.0.0/16, with one Subnet per subregion.
// They are fixed: derived from the account id, not stored, so they exist
// for every account from the start and cost nothing. Their ids are hashes
// of the account id: stable across restarts and across the processes of a
// scaled-out region, and useless to another account, whose calls only ever
// look at its own Net.
const (
	defaultNetRange = "10.0.0.0/16"
	// subnetReserved is how many addresses of a subnet the cloud keeps
	// (network, gateway, DNS, future use, broadcast).
	subnetReserved = 5
)

// derivedID returns prefix-xxxxxxxx with the hex digits taken from a hash
// of the seed.
func derivedID(prefix, seed string) string {
	sum := sha256.Sum256([]byte("omi/" + prefix + "/" + seed))
	return prefix + "-" + hex.EncodeToString(sum[:4])
}

// defaultNetID is the id of the account's Net.
func defaultNetID(account string) string { return derivedID(omi.PrefixNet, account) }

// defaultNet returns the account's Net.
func (s *Service) defaultNet(account string) *omi.Net {
	return &omi.Net{AccountId: account, NetId: defaultNetID(account), IpRange: defaultNetRange,
		DhcpOptionsSetId: derivedID(omi.PrefixDhcpOptions, account), State: omi.NetAvailable, Tenancy: "default", Tags: []omi.Tag{}}
}

// defaultSubnets returns the account's subnets, one per subregion in
// subregion order, splitting the Net into equal blocks: /18s for up to four
// subregions (the spec's example subnet is a /18 with 16379 free IPs).
func (s *Service) defaultSubnets(account string) []*omi.Subnet {
	n := len(s.region.subregions)
	bits := 2
	for 1<<bits < n {
		bits++
	}
	prefixLen := 16 + bits
	size := 1 << (32 - prefixLen)
	base := netip.MustParsePrefix(defaultNetRange).Addr().As4()
	netID := defaultNetID(account)
	out := make([]*omi.Subnet, 0, n)
	for i, sr := range s.region.subregions {
		off := i * size
		a := base
		a[2] += byte(off >> 8)
		a[3] += byte(off)
		out = append(out, &omi.Subnet{AccountId: account, SubnetId: derivedID(omi.PrefixSubnet, account+"/"+sr.SubregionName),
			NetId: netID, SubregionName: sr.SubregionName, State: omi.NetAvailable, Tags: []omi.Tag{},
			IpRange:           fmt.Sprintf("%s/%d", netip.AddrFrom4(a), prefixLen),
			AvailableIpsCount: size - subnetReserved})
	}
	return out
}

type FiltersNet struct {
	tagFilter
	DhcpOptionsSetIds []string `json:"DhcpOptionsSetIds"`
	IpRanges          []string `json:"IpRanges"`
	IsDefault         *bool    `json:"IsDefault"`
	NetIds            []string `json:"NetIds"`
	States            []string `json:"States"`
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

// ReadNets lists the caller's Net, which is its default one.
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
	n := s.defaultNet(c.AccountID())
	if anyOf(f.DhcpOptionsSetIds, n.DhcpOptionsSetId) && anyOf(f.IpRanges, n.IpRange) && anyOf(f.NetIds, n.NetId) &&
		anyOf(f.States, n.State) && (f.IsDefault == nil || *f.IsDefault) && f.tagFilter.match(n.Tags) {
		out = append(out, n)
	}
	out, next, err := page(out, in.NextPageToken, in.ResultsPerPage)
	if err != nil {
		return nil, err
	}
	return &ReadNetsResponse{Nets: nonNil(out), NextPageToken: next}, nil
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

// ReadSubnets lists the subnets of the caller's Net.
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
	for _, sn := range s.defaultSubnets(c.AccountID()) {
		if anyOf(f.AvailableIpsCounts, sn.AvailableIpsCount) && anyOf(f.IpRanges, sn.IpRange) && anyOf(f.NetIds, sn.NetId) &&
			anyOf(f.States, sn.State) && anyOf(f.SubnetIds, sn.SubnetId) && anyOf(f.SubregionNames, sn.SubregionName) &&
			f.tagFilter.match(sn.Tags) {
			out = append(out, sn)
		}
	}
	out, next, err := page(out, in.NextPageToken, in.ResultsPerPage)
	if err != nil {
		return nil, err
	}
	return &ReadSubnetsResponse{Subnets: nonNil(out), NextPageToken: next}, nil
}
