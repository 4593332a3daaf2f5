package service

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"github.com/omiproject/omi"
)

// Error codes of the public IP calls (2019 gateway error catalogue).
const (
	codeNoSuchNic         = "5036" // no-such-nic
	codeNoSuchIP          = "5025" // no-such-ip
	codeNoSuchIPLink      = "5026" // no-such-ip-association
	codeLockedAddress     = "9031" // locked-address: linked elsewhere, relink not allowed
	codeTooManyPublicIPs  = "10011"
	placementPublicCloud  = "standard"
	publicIPAllocAttempts = 16
)

// MaxPublicIpsPerAccount caps the addresses one account may hold.
const MaxPublicIpsPerAccount = 100

// publicIPPool is where omi draws addresses from: the shared address space
// of RFC 6598. omi routes nothing to them; a range that is not on the
// internet cannot be mistaken for someone's real address, and its 4 million
// addresses make random allocation collide rarely.
var publicIPPool = netip.MustParsePrefix("100.64.0.0/10")

// freePublicIP draws an address of publicIPPool that no public IP and no
// NIC holds.
func freePublicIP(tx omi.Tx) (string, error) {
	for range publicIPAllocAttempts {
		ip := randomPublicIP()
		taken, err := ipTaken(tx, ip)
		if err != nil || !taken {
			return ip, err
		}
	}
	return "", fmt.Errorf("no free public IP found in %d draws from %s", publicIPAllocAttempts, publicIPPool)
}

// randomPublicIP draws an address of the pool, avoiding the .0 and .255
// addresses that some tools treat as network or broadcast addresses.
func randomPublicIP() string {
	base := publicIPPool.Addr().As4()
	hostBits := 32 - publicIPPool.Bits()
	for {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			panic("omi: crypto/rand failed: " + err.Error()) // the OS entropy source is gone; nothing sane can continue
		}
		n := binary.BigEndian.Uint32(b[:]) & (1<<hostBits - 1)
		a := binary.BigEndian.Uint32(base[:]) | n
		if last := a & 0xff; last == 0 || last == 255 {
			continue
		}
		var out [4]byte
		binary.BigEndian.PutUint32(out[:], a)
		return netip.AddrFrom4(out).String()
	}
}

// ipTaken reports whether any account holds the address.
func ipTaken(tx omi.Tx, ip string) (bool, error) {
	taken := false
	err := tx.Scan(omi.Query{Kind: omi.KindPublicIp, Names: []string{ip}, Limit: 1}, func(omi.Record) (bool, error) {
		taken = true
		return false, nil
	})
	return taken, err
}

// liveLink brings the link of an address up to date: the address of a
// VM that is gone or terminated is released, and an address linked to a
// NIC follows the NIC (its VM, or nothing once the NIC or its private IP
// is gone). The VM and NIC records are the truth, so the link is corrected
// when read rather than by every VM and NIC call.
func liveLink(tx omi.Tx, p *omi.PublicIp) error {
	if p.NicId != "" {
		n, err := omi.Get[omi.Nic](tx, p.NicId)
		if isNotFound(err) || (err == nil && !slices.ContainsFunc(n.PrivateIps, func(x omi.NicPrivateIp) bool { return x.PrivateIp == p.PrivateIp })) {
			p.Unlink()
			return nil
		}
		if err != nil {
			return err
		}
		p.VmId = ""
		if n.LinkNic != nil {
			p.VmId = n.LinkNic.VmId
		}
		return nil
	}
	if p.VmId == "" {
		return nil
	}
	vm, err := omi.Get[omi.Vm](tx, p.VmId)
	if isNotFound(err) || (err == nil && (vm.State == omi.VmTerminated || vm.State == omi.VmShuttingDown || vm.AccountId != p.AccountId)) {
		p.Unlink()
		return nil
	}
	return err
}

// ownPublicIP loads the caller's address by allocation id or by address
// (both, if given, must name the same one), with its link brought up to
// date. Other accounts' addresses are reported exactly like missing ones.
func ownPublicIP(tx omi.Tx, c *omi.Caller, id, ip string) (*omi.PublicIp, error) {
	var p *omi.PublicIp
	if id != "" {
		got, err := omi.Get[omi.PublicIp](tx, id)
		if isNotFound(err) || (err == nil && (got.AccountId != c.AccountID() || ip != "" && got.PublicIp != ip)) {
			return nil, omi.NotFound(codeNoSuchIP, "The PublicIpId '%s' doesn't exist.", id)
		}
		if err != nil {
			return nil, err
		}
		p = got
	} else {
		err := omi.Scan(tx, omi.Query{Owners: []string{c.AccountID()}, Names: []string{ip}}, func(got *omi.PublicIp) (bool, error) {
			p = got
			return false, nil
		})
		if err != nil {
			return nil, err
		}
		if p == nil {
			return nil, omi.NotFound(codeNoSuchIP, "The PublicIp '%s' doesn't exist.", ip)
		}
	}
	return p, liveLink(tx, p)
}

type CreatePublicIpRequest struct{ Base }
type CreatePublicIpResponse struct {
	PublicIp *omi.PublicIp `json:"PublicIp"`
}

// CreatePublicIp allocates an address to the caller.
func (s *Service) CreatePublicIp(ctx context.Context, c *omi.Caller, in *CreatePublicIpRequest) (*CreatePublicIpResponse, error) {
	p := &omi.PublicIp{AccountId: c.AccountID(), PublicIpId: omi.NewID(omi.PrefixPublicIp), Tags: []omi.Tag{}}
	err := s.update(ctx, func(tx omi.Tx) error {
		n := 0
		if err := omi.Scan(tx, omi.Query{Owners: []string{c.AccountID()}}, func(*omi.PublicIp) (bool, error) {
			n++
			return true, nil
		}); err != nil {
			return err
		}
		if n >= MaxPublicIpsPerAccount {
			return omi.Errorf(codeTooManyPublicIPs, omi.TypeTooManyResources, "an account can hold at most %d public IPs", MaxPublicIpsPerAccount)
		}
		// Under a driver that runs machines, a public IP is an address
		// of its pool: the host answers on it, and the ports of the VM
		// it is linked to are forwarded there.
		if ip, err := s.poolPublicIP(tx); err != nil || ip != "" {
			if err != nil {
				return err
			}
			p.PublicIp = ip
			return insertNew(tx, p, func() { p.PublicIpId = omi.NewID(omi.PrefixPublicIp) })
		}
		ip, err := freePublicIP(tx)
		if err != nil {
			return err
		}
		p.PublicIp = ip
		return insertNew(tx, p, func() { p.PublicIpId = omi.NewID(omi.PrefixPublicIp) })
	})
	if err != nil {
		return nil, err
	}
	return &CreatePublicIpResponse{PublicIp: p}, nil
}

type LinkPublicIpRequest struct {
	Base
	AllowRelink bool   `json:"AllowRelink"`
	NicId       string `json:"NicId"`
	PrivateIp   string `json:"PrivateIp"`
	PublicIp    string `json:"PublicIp"`
	PublicIpId  string `json:"PublicIpId"`
	VmId        string `json:"VmId"`
}
type LinkPublicIpResponse struct {
	LinkPublicIpId string `json:"LinkPublicIpId"`
}

// LinkPublicIp links one of the caller's addresses to one of its VMs or
// NICs. A VM of a Net, or a private IP of a NIC, has one public IP: linking
// another unlinks the previous one. An address linked elsewhere moves only
// with AllowRelink. Linking to a VM of a Net links its primary NIC.
func (s *Service) LinkPublicIp(ctx context.Context, c *omi.Caller, in *LinkPublicIpRequest) (*LinkPublicIpResponse, error) {
	if in.PublicIp == "" && in.PublicIpId == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "PublicIp or PublicIpId is required")
	}
	if in.NicId != "" && in.VmId != "" {
		return nil, omi.Invalid(omi.CodeInvalidParamSet, "give VmId or NicId, not both")
	}
	if in.VmId == "" && in.NicId == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "VmId or NicId is required")
	}
	var link string
	err := s.update(ctx, func(tx omi.Tx) error {
		p, err := ownPublicIP(tx, c, in.PublicIpId, in.PublicIp)
		if err != nil {
			return err
		}
		if err := PublicIPUsedByNat(tx, c.AccountID(), p); err != nil {
			return err
		}
		if err := PublicIPUsedByLoadBalancer(tx, c.AccountID(), p); err != nil {
			return err
		}
		// Where the address goes: a VM of the public Cloud (vmID, with
		// its private IP), or a private IP of a NIC (nic).
		var vmID, privateIp string
		var nic *omi.Nic
		if in.VmId != "" {
			vm, err := s.ownVm(tx, c, in.VmId)
			if err != nil {
				return err
			}
			if vm.State == omi.VmTerminated || vm.State == omi.VmShuttingDown {
				return omi.BadState(omi.CodeInvalidVmState, "VM %s is %s", vm.VmId, vm.State)
			}
			vmID, privateIp = vm.VmId, vm.PrivateIp
			if vm.NetId != "" {
				nics, err := vmNics(tx, vm)
				if err != nil {
					return err
				}
				if len(nics) == 0 || nics[0].LinkNic.DeviceNumber != 0 {
					return omi.BadState(omi.CodeInvalidVmState, "VM %s has no primary NIC", vm.VmId)
				}
				nic = nics[0]
			}
		} else {
			if nic, err = ownNic(tx, c, in.NicId); err != nil {
				return err
			}
		}
		if nic != nil {
			privateIp = nic.PrimaryIp().PrivateIp
			if in.PrivateIp != "" {
				if !slices.ContainsFunc(nic.PrivateIps, func(x omi.NicPrivateIp) bool { return x.PrivateIp == in.PrivateIp }) {
					return omi.Invalid(omi.CodeInvalidValue, "PrivateIp %s is not an address of the NIC %s", in.PrivateIp, nic.NicId)
				}
				privateIp = in.PrivateIp
			}
			vmID = ""
			if nic.LinkNic != nil {
				vmID = nic.LinkNic.VmId
			}
		} else if in.PrivateIp != "" && in.PrivateIp != privateIp {
			return omi.Invalid(omi.CodeInvalidValue, "PrivateIp %s is not an address of VM %s", in.PrivateIp, vmID)
		}
		same := func(o *omi.PublicIp) bool {
			if nic != nil {
				return o.NicId == nic.NicId && o.PrivateIp == privateIp
			}
			return o.NicId == "" && o.VmId == vmID
		}
		if same(p) {
			link = p.LinkPublicIpId
			return nil
		}
		if (p.VmId != "" || p.NicId != "") && !in.AllowRelink {
			return omi.Conflict(codeLockedAddress, "The public IP %s is linked to %s; set AllowRelink to move it.", p.PublicIp, p.VmId+p.NicId)
		}
		// The target's previous address, if any, comes off.
		var prev []*omi.PublicIp
		err = omi.Scan(tx, omi.Query{Owners: []string{c.AccountID()}}, func(o *omi.PublicIp) (bool, error) {
			if o.PublicIpId != p.PublicIpId && (o.VmId != "" || o.NicId != "") && same(o) {
				prev = append(prev, o)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, o := range prev {
			o.Unlink()
			if err := omi.Put(tx, o); err != nil {
				return err
			}
		}
		p.VmId, p.PrivateIp, p.NicId, p.NicAccountId = vmID, privateIp, "", ""
		if nic != nil {
			p.NicId, p.NicAccountId = nic.NicId, nic.AccountId
		}
		p.LinkPublicIpId = omi.NewID(omi.PrefixLinkPublicIp)
		link = p.LinkPublicIpId
		return omi.Put(tx, p)
	})
	if err != nil {
		return nil, err
	}
	s.applyForwards(ctx)
	return &LinkPublicIpResponse{LinkPublicIpId: link}, nil
}

type UnlinkPublicIpRequest struct {
	Base
	LinkPublicIpId string `json:"LinkPublicIpId"`
	PublicIp       string `json:"PublicIp"`
}
type UnlinkPublicIpResponse struct{}

// UnlinkPublicIp removes the link of an address, given by address or by
// link id.
func (s *Service) UnlinkPublicIp(ctx context.Context, c *omi.Caller, in *UnlinkPublicIpRequest) (*UnlinkPublicIpResponse, error) {
	if in.PublicIp == "" && in.LinkPublicIpId == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "PublicIp or LinkPublicIpId is required")
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		var p *omi.PublicIp
		if in.PublicIp != "" {
			got, err := ownPublicIP(tx, c, "", in.PublicIp)
			if err != nil {
				return err
			}
			p = got
		} else {
			err := omi.Scan(tx, omi.Query{Owners: []string{c.AccountID()}}, func(o *omi.PublicIp) (bool, error) {
				if o.LinkPublicIpId == in.LinkPublicIpId {
					p = o
					return false, nil
				}
				return true, nil
			})
			if err != nil {
				return err
			}
			if p != nil {
				if err := liveLink(tx, p); err != nil {
					return err
				}
			}
		}
		// An address linked to a NIC that no VM holds has a NicId and no
		// VmId: it is linked all the same.
		if p == nil || (p.VmId == "" && p.NicId == "") || in.LinkPublicIpId != "" && p.LinkPublicIpId != in.LinkPublicIpId {
			what := in.LinkPublicIpId
			if what == "" {
				what = in.PublicIp
			}
			return omi.NotFound(codeNoSuchIPLink, "The link '%s' doesn't exist: the public IP is not linked.", what)
		}
		p.Unlink()
		return omi.Put(tx, p)
	})
	if err != nil {
		return nil, err
	}
	s.applyForwards(ctx)
	return &UnlinkPublicIpResponse{}, nil
}

type DeletePublicIpRequest struct {
	Base
	PublicIp   string `json:"PublicIp"`
	PublicIpId string `json:"PublicIpId"`
}
type DeletePublicIpResponse struct{}

// DeletePublicIp releases an address, unlinking it first if it is linked
// (as releasing an address does in the public Cloud).
func (s *Service) DeletePublicIp(ctx context.Context, c *omi.Caller, in *DeletePublicIpRequest) (*DeletePublicIpResponse, error) {
	if in.PublicIp == "" && in.PublicIpId == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "PublicIp or PublicIpId is required")
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		p, err := ownPublicIP(tx, c, in.PublicIpId, in.PublicIp)
		if err != nil {
			return err
		}
		if err := PublicIPUsedByNat(tx, c.AccountID(), p); err != nil {
			return err
		}
		if err := PublicIPUsedByLoadBalancer(tx, c.AccountID(), p); err != nil {
			return err
		}
		return retire(tx, omi.KindPublicIp, p.PublicIpId)
	})
	if err != nil {
		return nil, err
	}
	s.applyForwards(ctx)
	return &DeletePublicIpResponse{}, nil
}

type FiltersPublicIp struct {
	tagFilter
	LinkPublicIpIds []string `json:"LinkPublicIpIds"`
	NicAccountIds   []string `json:"NicAccountIds"`
	NicIds          []string `json:"NicIds"`
	Placements      []string `json:"Placements"`
	PrivateIps      []string `json:"PrivateIps"`
	PublicIpIds     []string `json:"PublicIpIds"`
	PublicIps       []string `json:"PublicIps"`
	VmIds           []string `json:"VmIds"`
}

func (f *FiltersPublicIp) match(p *omi.PublicIp) bool {
	placement := placementPublicCloud
	if p.NicId != "" {
		placement = "vpc"
	}
	nicID, nicAccount := p.ShownNic()
	return anyOf(f.LinkPublicIpIds, p.LinkPublicIpId) && anyOf(f.NicAccountIds, nicAccount) && anyOf(f.NicIds, nicID) &&
		anyOf(f.Placements, placement) && anyOf(f.PrivateIps, p.PrivateIp) && anyOf(f.VmIds, p.VmId) &&
		f.tagFilter.match(p.Tags)
}

type ReadPublicIpsRequest struct {
	Base
	Paging
	Filters *FiltersPublicIp `json:"Filters"`
}
type ReadPublicIpsResponse struct {
	PublicIps     []*omi.PublicIp `json:"PublicIps"`
	NextPageToken string          `json:"NextPageToken,omitempty"`
}

// ReadPublicIps lists the caller's addresses. Every address is a public
// Cloud one (Placements "standard").
func (s *Service) ReadPublicIps(ctx context.Context, c *omi.Caller, in *ReadPublicIpsRequest) (*ReadPublicIpsResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersPublicIp{}
	}
	if _, err := resultsPerPage(in.ResultsPerPage); err != nil {
		return nil, err
	}
	if omi.IsDryRun(ctx) {
		return &ReadPublicIpsResponse{PublicIps: []*omi.PublicIp{}}, nil
	}
	var out []*omi.PublicIp
	var next string
	err := s.view(ctx, func(tx omi.Tx) error {
		var err error
		var linkErr error
		q := omi.Query{Owners: []string{c.AccountID()}, IDs: f.PublicIpIds, Names: f.PublicIps}
		out, next, err = listPage[omi.PublicIp](tx, q, in.Paging, omi.PrefixPublicIp, func(p *omi.PublicIp) bool {
			if err := liveLink(tx, p); err != nil && linkErr == nil {
				linkErr = err
			}
			return f.match(p)
		})
		if err == nil {
			err = linkErr
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, p := range out {
		p.Normalize()
		p.NicId, p.NicAccountId = p.ShownNic()
	}
	return &ReadPublicIpsResponse{PublicIps: out, NextPageToken: next}, nil
}
