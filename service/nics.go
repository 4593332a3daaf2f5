package service

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"slices"

	"github.com/omiproject/omi"
)

// NICs are the network interfaces of VMs in Nets. Each holds private IPs of
// its subnet (one primary, any number of secondary ones), a MAC address and
// security groups of its Net. A VM created in a subnet gets its primary NIC
// (device 0); more NICs are linked on devices 1 to 7. The public IP of a NIC
// is kept on the public IP (NicId, PrivateIp) and shown on the NIC when
// read, so that there is one truth for the link.

// Error codes of the NIC calls (2019 gateway error catalogue).
const (
	codeAddressInUse    = "9001"  // ambiguous-ip: the private IP is taken
	codeTooManyPrivIps  = "10021" // too-many-private-ips
	codeTooManyNics     = "10015" // too-many-network-interfaces
	codeNoSuchNicLink   = "5007"  // no-such-attachment
	maxNicDevice        = 7
	maxPrivateIpsPerNic = 30
)

func nicNotFound(id string) error {
	return omi.NotFound(codeNoSuchNic, "The NicId '%s' doesn't exist.", id)
}

// ownNic loads a NIC of the caller.
func ownNic(tx omi.Tx, c *omi.Caller, id string) (*omi.Nic, error) {
	n, err := omi.Get[omi.Nic](tx, id)
	if isNotFound(err) || (err == nil && n.AccountId != c.AccountID()) {
		return nil, nicNotFound(id)
	}
	return n, err
}

// netNics lists the NICs of a Net.
func netNics(tx omi.Tx, account, netID string) ([]*omi.Nic, error) {
	var out []*omi.Nic
	err := omi.Scan(tx, omi.Query{Owners: []string{account}, Names: []string{netID}}, func(n *omi.Nic) (bool, error) {
		out = append(out, n)
		return true, nil
	})
	return out, err
}

// vmNics lists the NICs linked to a VM, by device number.
func vmNics(tx omi.Tx, vm *omi.Vm) ([]*omi.Nic, error) {
	if vm.NetId == "" {
		return nil, nil
	}
	nics, err := netNics(tx, vm.AccountId, vm.NetId)
	nics = slices.DeleteFunc(nics, func(n *omi.Nic) bool { return n.LinkNic == nil || n.LinkNic.VmId != vm.VmId })
	slices.SortFunc(nics, func(a, b *omi.Nic) int { return a.LinkNic.DeviceNumber - b.LinkNic.DeviceNumber })
	return nics, err
}

// usedIps is the set of private IPs NICs hold in a subnet.
func usedIps(tx omi.Tx, sn *omi.Subnet) (map[netip.Addr]string, error) {
	nics, err := netNics(tx, sn.AccountId, sn.NetId)
	used := map[netip.Addr]string{}
	for _, n := range nics {
		if n.SubnetId != sn.SubnetId {
			continue
		}
		for _, ip := range n.PrivateIps {
			used[netip.MustParseAddr(ip.PrivateIp)] = n.NicId
		}
	}
	return used, err
}

// checkPrivateIp tells whether ip is an address of the subnet that a NIC
// may hold: inside the range and not one of the reserved addresses.
func checkPrivateIp(sn *omi.Subnet, ip string) (netip.Addr, error) {
	a, err := netip.ParseAddr(ip)
	p := netip.MustParsePrefix(sn.IpRange)
	if err != nil || !a.Is4() {
		return netip.Addr{}, omi.Invalid(codeInvalidIPAddress, "%q is not an IPv4 address", ip)
	}
	if !p.Contains(a) {
		return netip.Addr{}, omi.Invalid(codeInvalidIPAddress, "The private IP %s is not in the range %s of the subnet '%s'.", a, p, sn.SubnetId)
	}
	off := offsetIn(p, a)
	if off < 4 || off == rangeSize(p)-1 {
		return netip.Addr{}, omi.Invalid(codeInvalidIPAddress, "The private IP %s is reserved in the subnet '%s': the first four addresses and the last one are.", a, sn.SubnetId)
	}
	return a, nil
}

func offsetIn(p netip.Prefix, a netip.Addr) int {
	b, x := p.Addr().As4(), a.As4()
	return int(uint32(x[0])<<24|uint32(x[1])<<16|uint32(x[2])<<8|uint32(x[3])) - int(uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3]))
}

// nextFreeIp returns the lowest address of the subnet that is neither
// reserved nor in used, and marks it used.
func nextFreeIp(sn *omi.Subnet, used map[netip.Addr]string, owner string) (netip.Addr, error) {
	p := netip.MustParsePrefix(sn.IpRange)
	a := p.Addr()
	for i := 0; i < rangeSize(p)-1; i++ {
		if i >= 4 {
			if _, taken := used[a]; !taken {
				used[a] = owner
				return a, nil
			}
		}
		a = a.Next()
	}
	return netip.Addr{}, omi.Errorf(codeTooManyPrivIps, omi.TypeTooManyResources, "The subnet '%s' has no free address left.", sn.SubnetId)
}

// randomMac returns a locally administered unicast MAC address.
func randomMac() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("omi: crypto/rand failed: " + err.Error()) // the OS entropy source is gone
	}
	b[0] = b[0]&0xfc | 0x02
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5])
}

func (s *Service) privateDnsName(ip string) string {
	return fmt.Sprintf("ip-%s.%s.compute.internal", dashes(ip), s.cfg.Region)
}

// netGroups resolves security group ids for a NIC of a Net; none gives the
// Net's default group.
func netGroups(tx omi.Tx, c *omi.Caller, netID string, ids []string) ([]omi.SecurityGroup, error) {
	var out []omi.SecurityGroup
	for _, id := range ids {
		g, err := ownGroup(tx, c, id)
		if err != nil {
			return nil, err
		}
		if g.NetId != netID {
			return nil, omi.Invalid(codeNetworkMismatch, "The security group '%s' is not in the Net '%s'.", id, netID)
		}
		if !slices.ContainsFunc(out, func(x omi.SecurityGroup) bool { return x.SecurityGroupId == id }) {
			out = append(out, omi.SecurityGroup{SecurityGroupId: g.SecurityGroupId, SecurityGroupName: g.SecurityGroupName})
		}
	}
	if len(out) == 0 {
		g, err := groupInScope(tx, c.AccountID(), omi.DefaultSecurityGroupName, netID)
		if err != nil {
			return nil, err
		}
		if g != nil {
			out = append(out, omi.SecurityGroup{SecurityGroupId: g.SecurityGroupId, SecurityGroupName: g.SecurityGroupName})
		}
	}
	return out, nil
}

// PrivateIpLight is a private IP asked for a new NIC.
type PrivateIpLight struct {
	IsPrimary bool   `json:"IsPrimary"`
	PrivateIp string `json:"PrivateIp"`
}

// nicSpec is what a new NIC is made of.
type nicSpec struct {
	subnetID    string
	description string
	groupIDs    []string
	privateIps  []PrivateIpLight
	secondaries int
}

// newNic creates and stores a NIC in a subnet of the caller.
func (s *Service) newNic(tx omi.Tx, c *omi.Caller, spec nicSpec) (*omi.Nic, error) {
	sn, err := ownSubnet(tx, c, spec.subnetID)
	if err != nil {
		return nil, err
	}
	if spec.secondaries < 0 || len(spec.privateIps)+spec.secondaries > maxPrivateIpsPerNic {
		return nil, omi.Errorf(codeTooManyPrivIps, omi.TypeTooManyResources, "a NIC holds at most %d private IPs", maxPrivateIpsPerNic)
	}
	groups, err := netGroups(tx, c, sn.NetId, spec.groupIDs)
	if err != nil {
		return nil, err
	}
	used, err := usedIps(tx, sn)
	if err != nil {
		return nil, err
	}
	n := &omi.Nic{AccountId: c.AccountID(), NicId: omi.NewID(omi.PrefixNic), Description: spec.description,
		IsSourceDestChecked: true, MacAddress: randomMac(), NetId: sn.NetId, SubnetId: sn.SubnetId,
		SubregionName: sn.SubregionName, SecurityGroups: groups, State: omi.NicAvailable, Tags: []omi.Tag{}}
	primaries := 0
	for _, p := range spec.privateIps {
		a, err := checkPrivateIp(sn, p.PrivateIp)
		if err != nil {
			return nil, err
		}
		if holder, taken := used[a]; taken {
			return nil, omi.Conflict(codeAddressInUse, "The private IP %s is already held by %s.", a, holder)
		}
		used[a] = n.NicId
		if p.IsPrimary {
			primaries++
		}
		n.PrivateIps = append(n.PrivateIps, omi.NicPrivateIp{IsPrimary: p.IsPrimary, PrivateIp: a.String(), PrivateDnsName: s.privateDnsName(a.String())})
	}
	if primaries > 1 {
		return nil, omi.Invalid(omi.CodeInvalidValue, "only one private IP of a NIC can be primary")
	}
	if primaries == 0 {
		a, err := nextFreeIp(sn, used, n.NicId)
		if err != nil {
			return nil, err
		}
		n.PrivateIps = append(n.PrivateIps, omi.NicPrivateIp{IsPrimary: true, PrivateIp: a.String(), PrivateDnsName: s.privateDnsName(a.String())})
	}
	for i := 0; i < spec.secondaries; i++ {
		a, err := nextFreeIp(sn, used, n.NicId)
		if err != nil {
			return nil, err
		}
		n.PrivateIps = append(n.PrivateIps, omi.NicPrivateIp{PrivateIp: a.String(), PrivateDnsName: s.privateDnsName(a.String())})
	}
	n.PrivateDnsName = n.PrimaryIp().PrivateDnsName
	if err := insertNew(tx, n, func() { n.NicId = omi.NewID(omi.PrefixNic) }); err != nil {
		return nil, err
	}
	return n, nil
}

// link attaches a NIC to a VM on a device.
func link(n *omi.Nic, vm *omi.Vm, device int, deleteWithVm bool, date string) {
	n.LinkNic = &omi.LinkNic{DeleteOnVmDeletion: deleteWithVm, DeviceNumber: device, LinkNicId: omi.NewID(omi.PrefixLinkNic),
		State: omi.LinkNicAttached, VmAccountId: vm.AccountId, VmId: vm.VmId, LinkDate: date}
	n.State = omi.NicInUse
}

// showPublicIps fills the public IP links of NICs from the account's
// public IPs.
func (s *Service) showPublicIps(tx omi.Tx, account string, nics []*omi.Nic) error {
	if len(nics) == 0 {
		return nil
	}
	ips, err := nicPublicIps(tx, account)
	for _, n := range nics {
		s.showLinks(n, ips)
	}
	return err
}

// nicPublicIps lists the account's public IPs linked to NICs.
func nicPublicIps(tx omi.Tx, account string) ([]*omi.PublicIp, error) {
	var ips []*omi.PublicIp
	err := omi.Scan(tx, omi.Query{Owners: []string{account}}, func(p *omi.PublicIp) (bool, error) {
		if p.NicId != "" {
			ips = append(ips, p)
		}
		return true, nil
	})
	return ips, err
}

// showLinks sets the LinkPublicIp of a NIC and of its private IPs from the
// public IPs linked to it.
func (s *Service) showLinks(n *omi.Nic, ips []*omi.PublicIp) {
	n.LinkPublicIp = nil
	for i := range n.PrivateIps {
		n.PrivateIps[i].LinkPublicIp = nil
	}
	for _, p := range ips {
		if p.NicId != n.NicId {
			continue
		}
		l := &omi.LinkPublicIp{LinkPublicIpId: p.LinkPublicIpId, PublicIp: p.PublicIp, PublicIpId: p.PublicIpId,
			PublicIpAccountId: p.AccountId, PublicDnsName: s.publicDnsName(p.PublicIp)}
		for i := range n.PrivateIps {
			if n.PrivateIps[i].PrivateIp == p.PrivateIp {
				n.PrivateIps[i].LinkPublicIp = l
				if n.PrivateIps[i].IsPrimary {
					n.LinkPublicIp = l
				}
			}
		}
	}
	if n.MappedPublicIp != "" && n.LinkPublicIp == nil {
		if p := n.PrimaryIp(); p != nil {
			p.LinkPublicIp = &omi.LinkPublicIp{PublicIp: n.MappedPublicIp, PublicIpAccountId: n.AccountId,
				PublicDnsName: s.publicDnsName(n.MappedPublicIp)}
			n.LinkPublicIp = p.LinkPublicIp
		}
	}
}

// publicDnsName is the DNS name the cloud gives a public IP
// (ows-203-0-113-1.<region>.compute.outscale.com on the real cloud); an
// address of the VM driver's pool is its own name (no DNS resolves it,
// and Packer dials the name).
func (s *Service) publicDnsName(ip string) string {
	if s.inPool(ip) {
		return ip
	}
	return "ows-" + dashes(ip) + "." + s.cfg.Region + ".compute.outscale.com"
}

type CreateNicRequest struct {
	Base
	Description      string           `json:"Description"`
	PrivateIps       []PrivateIpLight `json:"PrivateIps"`
	SecurityGroupIds []string         `json:"SecurityGroupIds"`
	SubnetId         string           `json:"SubnetId"`
}
type CreateNicResponse struct {
	Nic *omi.Nic `json:"Nic"`
}

// CreateNic creates a NIC in a subnet, with the private IPs asked for (a
// primary one is allocated when none is) and the Net's default security
// group when none is given.
func (s *Service) CreateNic(ctx context.Context, c *omi.Caller, in *CreateNicRequest) (*CreateNicResponse, error) {
	if err := required("SubnetId", in.SubnetId); err != nil {
		return nil, err
	}
	var n *omi.Nic
	err := s.update(ctx, func(tx omi.Tx) error {
		var err error
		n, err = s.newNic(tx, c, nicSpec{subnetID: in.SubnetId, description: in.Description, groupIDs: in.SecurityGroupIds, privateIps: in.PrivateIps})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &CreateNicResponse{Nic: n.ForWire()}, nil
}

// LinkNicToUpdate changes whether a linked NIC goes with its VM.
type LinkNicToUpdate struct {
	DeleteOnVmDeletion *bool  `json:"DeleteOnVmDeletion"`
	LinkNicId          string `json:"LinkNicId"`
}

type UpdateNicRequest struct {
	Base
	Description      *string          `json:"Description"`
	LinkNic          *LinkNicToUpdate `json:"LinkNic"`
	NicId            string           `json:"NicId"`
	SecurityGroupIds []string         `json:"SecurityGroupIds"`
}
type UpdateNicResponse struct {
	Nic *omi.Nic `json:"Nic"`
}

// UpdateNic changes a NIC's description, security groups, or whether it is
// deleted with its VM.
func (s *Service) UpdateNic(ctx context.Context, c *omi.Caller, in *UpdateNicRequest) (*UpdateNicResponse, error) {
	if err := required("NicId", in.NicId); err != nil {
		return nil, err
	}
	var n *omi.Nic
	err := s.update(ctx, func(tx omi.Tx) error {
		var err error
		if n, err = ownNic(tx, c, in.NicId); err != nil {
			return err
		}
		if in.Description != nil {
			n.Description = *in.Description
		}
		if in.SecurityGroupIds != nil {
			if len(in.SecurityGroupIds) == 0 {
				return omi.Invalid(omi.CodeInvalidParameter, "SecurityGroupIds must name at least one security group")
			}
			if n.SecurityGroups, err = netGroups(tx, c, n.NetId, in.SecurityGroupIds); err != nil {
				return err
			}
			if n.LinkNic != nil && n.LinkNic.DeviceNumber == 0 {
				// The VM's groups are those of its primary NIC.
				vm, err := omi.Get[omi.Vm](tx, n.LinkNic.VmId)
				if err != nil {
					return err
				}
				vm.SecurityGroups = slices.Clone(n.SecurityGroups)
				if err := omi.Put(tx, vm); err != nil {
					return err
				}
			}
		}
		if in.LinkNic != nil {
			if n.LinkNic == nil || in.LinkNic.LinkNicId != n.LinkNic.LinkNicId {
				return omi.NotFound(codeNoSuchNicLink, "The LinkNicId '%s' is not the link of the NIC '%s'.", in.LinkNic.LinkNicId, n.NicId)
			}
			if in.LinkNic.DeleteOnVmDeletion != nil {
				n.LinkNic.DeleteOnVmDeletion = *in.LinkNic.DeleteOnVmDeletion
			}
		}
		if err := omi.Put(tx, n); err != nil {
			return err
		}
		return s.showPublicIps(tx, c.AccountID(), []*omi.Nic{n})
	})
	if err != nil {
		return nil, err
	}
	s.applyForwards(ctx)
	return &UpdateNicResponse{Nic: n.ForWire()}, nil
}

type DeleteNicRequest struct {
	Base
	NicId string `json:"NicId"`
}
type DeleteNicResponse struct{}

// DeleteNic deletes a NIC that is not linked to a VM; public IPs linked to
// it are unlinked.
func (s *Service) DeleteNic(ctx context.Context, c *omi.Caller, in *DeleteNicRequest) (*DeleteNicResponse, error) {
	if err := required("NicId", in.NicId); err != nil {
		return nil, err
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		n, err := ownNic(tx, c, in.NicId)
		if err != nil {
			return err
		}
		if n.LinkNic != nil {
			return omi.Conflict(omi.CodeDeviceInUse, "The NIC '%s' is linked to the VM '%s': unlink it first.", n.NicId, n.LinkNic.VmId)
		}
		return deleteNic(tx, n)
	})
	if err != nil {
		return nil, err
	}
	return &DeleteNicResponse{}, nil
}

// deleteNic removes a NIC and the links of public IPs to it.
func deleteNic(tx omi.Tx, n *omi.Nic) error {
	var linked []*omi.PublicIp
	err := omi.Scan(tx, omi.Query{Owners: []string{n.AccountId}}, func(p *omi.PublicIp) (bool, error) {
		if p.NicId == n.NicId {
			linked = append(linked, p)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, p := range linked {
		p.Unlink()
		if err := omi.Put(tx, p); err != nil {
			return err
		}
	}
	return retire(tx, omi.KindNic, n.NicId)
}

type LinkNicRequest struct {
	Base
	DeviceNumber *int   `json:"DeviceNumber"`
	NicId        string `json:"NicId"`
	VmId         string `json:"VmId"`
}
type LinkNicResponse struct {
	LinkNicId string `json:"LinkNicId"`
}

// LinkNic links an available NIC to a VM of the same Net and subregion on
// device 1 to 7.
func (s *Service) LinkNic(ctx context.Context, c *omi.Caller, in *LinkNicRequest) (*LinkNicResponse, error) {
	if err := required("NicId", in.NicId, "VmId", in.VmId); err != nil {
		return nil, err
	}
	if in.DeviceNumber == nil {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "DeviceNumber is required")
	}
	if *in.DeviceNumber < 1 || *in.DeviceNumber > maxNicDevice {
		return nil, omi.Invalid(omi.CodeInvalidValue, "DeviceNumber must be between 1 and %d", maxNicDevice)
	}
	var id string
	err := s.update(ctx, func(tx omi.Tx) error {
		n, err := ownNic(tx, c, in.NicId)
		if err != nil {
			return err
		}
		vm, err := s.ownVm(tx, c, in.VmId)
		if err != nil {
			return err
		}
		if vm.State == omi.VmTerminated || vm.State == omi.VmShuttingDown {
			return omi.BadState(omi.CodeInvalidVmState, "VM %s is %s", vm.VmId, vm.State)
		}
		if n.LinkNic != nil {
			return omi.Conflict(omi.CodeDeviceInUse, "The NIC '%s' is already linked to the VM '%s'.", n.NicId, n.LinkNic.VmId)
		}
		if vm.NetId != n.NetId {
			return omi.Invalid(codeNetworkMismatch, "The NIC '%s' is in the Net '%s' and the VM '%s' is not.", n.NicId, n.NetId, vm.VmId)
		}
		if vm.Placement.SubregionName != n.SubregionName {
			return omi.Invalid(omi.CodeInvalidZone, "The NIC '%s' is in %s and the VM '%s' in %s.", n.NicId, n.SubregionName, vm.VmId, vm.Placement.SubregionName)
		}
		others, err := vmNics(tx, vm)
		if err != nil {
			return err
		}
		for _, o := range others {
			if o.LinkNic.DeviceNumber == *in.DeviceNumber {
				return omi.Conflict(omi.CodeDeviceInUse, "The device %d of the VM '%s' holds the NIC '%s'.", *in.DeviceNumber, vm.VmId, o.NicId)
			}
		}
		link(n, vm, *in.DeviceNumber, false, s.nowString())
		id = n.LinkNic.LinkNicId
		return omi.Put(tx, n)
	})
	if err != nil {
		return nil, err
	}
	s.applyForwards(ctx)
	return &LinkNicResponse{LinkNicId: id}, nil
}

type UnlinkNicRequest struct {
	Base
	LinkNicId string `json:"LinkNicId"`
}
type UnlinkNicResponse struct{}

// UnlinkNic unlinks a secondary NIC from its VM; the primary NIC (device
// 0) stays with its VM.
func (s *Service) UnlinkNic(ctx context.Context, c *omi.Caller, in *UnlinkNicRequest) (*UnlinkNicResponse, error) {
	if err := required("LinkNicId", in.LinkNicId); err != nil {
		return nil, err
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		var n *omi.Nic
		err := omi.Scan(tx, omi.Query{Owners: []string{c.AccountID()}}, func(x *omi.Nic) (bool, error) {
			if x.LinkNic != nil && x.LinkNic.LinkNicId == in.LinkNicId {
				n = x
				return false, nil
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		if n == nil {
			return omi.NotFound(codeNoSuchNicLink, "The LinkNicId '%s' doesn't exist.", in.LinkNicId)
		}
		if n.LinkNic.DeviceNumber == 0 {
			return omi.Invalid(omi.CodeInvalidValue, "The NIC '%s' is the primary NIC (device 0) of the VM '%s' and cannot be unlinked.", n.NicId, n.LinkNic.VmId)
		}
		n.LinkNic, n.State = nil, omi.NicAvailable
		return omi.Put(tx, n)
	})
	if err != nil {
		return nil, err
	}
	s.applyForwards(ctx)
	return &UnlinkNicResponse{}, nil
}

type LinkPrivateIpsRequest struct {
	Base
	AllowRelink             bool     `json:"AllowRelink"`
	NicId                   string   `json:"NicId"`
	PrivateIps              []string `json:"PrivateIps"`
	SecondaryPrivateIpCount *int     `json:"SecondaryPrivateIpCount"`
}
type LinkPrivateIpsResponse struct{}

// LinkPrivateIps adds secondary private IPs to a NIC: given ones, or a
// count of free ones. With AllowRelink an address held by another NIC of
// the subnet moves.
func (s *Service) LinkPrivateIps(ctx context.Context, c *omi.Caller, in *LinkPrivateIpsRequest) (*LinkPrivateIpsResponse, error) {
	if err := required("NicId", in.NicId); err != nil {
		return nil, err
	}
	count := 0
	if in.SecondaryPrivateIpCount != nil {
		count = *in.SecondaryPrivateIpCount
	}
	if (len(in.PrivateIps) == 0) == (count == 0) || count < 0 {
		return nil, omi.Invalid(omi.CodeInvalidParamSet, "give either PrivateIps or a positive SecondaryPrivateIpCount")
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		n, err := ownNic(tx, c, in.NicId)
		if err != nil {
			return err
		}
		if len(n.PrivateIps)+len(in.PrivateIps)+count > maxPrivateIpsPerNic {
			return omi.Errorf(codeTooManyPrivIps, omi.TypeTooManyResources, "a NIC holds at most %d private IPs", maxPrivateIpsPerNic)
		}
		sn, err := omi.Get[omi.Subnet](tx, n.SubnetId)
		if err != nil {
			return err
		}
		used, err := usedIps(tx, sn)
		if err != nil {
			return err
		}
		for _, ip := range in.PrivateIps {
			a, err := checkPrivateIp(sn, ip)
			if err != nil {
				return err
			}
			holder, taken := used[a]
			if taken && holder == n.NicId {
				continue
			}
			if taken {
				if !in.AllowRelink {
					return omi.Conflict(codeAddressInUse, "The private IP %s is held by the NIC '%s'; set AllowRelink to move it.", a, holder)
				}
				if err := takeIp(tx, c, holder, a.String()); err != nil {
					return err
				}
			}
			used[a] = n.NicId
			n.PrivateIps = append(n.PrivateIps, omi.NicPrivateIp{PrivateIp: a.String(), PrivateDnsName: s.privateDnsName(a.String())})
		}
		for i := 0; i < count; i++ {
			a, err := nextFreeIp(sn, used, n.NicId)
			if err != nil {
				return err
			}
			n.PrivateIps = append(n.PrivateIps, omi.NicPrivateIp{PrivateIp: a.String(), PrivateDnsName: s.privateDnsName(a.String())})
		}
		return omi.Put(tx, n)
	})
	if err != nil {
		return nil, err
	}
	return &LinkPrivateIpsResponse{}, nil
}

// takeIp removes a secondary private IP from the NIC that holds it, for a
// relink; a primary IP never moves.
func takeIp(tx omi.Tx, c *omi.Caller, nicID, ip string) error {
	o, err := ownNic(tx, c, nicID)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(o.PrivateIps, func(p omi.NicPrivateIp) bool { return p.PrivateIp == ip })
	if i >= 0 && o.PrivateIps[i].IsPrimary {
		return omi.Conflict(codeAddressInUse, "The private IP %s is the primary IP of the NIC '%s' and cannot move.", ip, o.NicId)
	}
	if i >= 0 {
		o.PrivateIps = slices.Delete(o.PrivateIps, i, i+1)
	}
	return omi.Put(tx, o)
}

type UnlinkPrivateIpsRequest struct {
	Base
	NicId      string   `json:"NicId"`
	PrivateIps []string `json:"PrivateIps"`
}
type UnlinkPrivateIpsResponse struct{}

// UnlinkPrivateIps removes secondary private IPs from a NIC.
func (s *Service) UnlinkPrivateIps(ctx context.Context, c *omi.Caller, in *UnlinkPrivateIpsRequest) (*UnlinkPrivateIpsResponse, error) {
	if err := required("NicId", in.NicId); err != nil {
		return nil, err
	}
	if len(in.PrivateIps) == 0 {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "PrivateIps is required")
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		n, err := ownNic(tx, c, in.NicId)
		if err != nil {
			return err
		}
		for _, ip := range in.PrivateIps {
			i := slices.IndexFunc(n.PrivateIps, func(p omi.NicPrivateIp) bool { return p.PrivateIp == ip })
			if i < 0 {
				return omi.Invalid(codeInvalidIPAddress, "The private IP %q is not an address of the NIC '%s'.", ip, n.NicId)
			}
			if n.PrivateIps[i].IsPrimary {
				return omi.Invalid(codeInvalidIPAddress, "The private IP %s is the primary IP of the NIC '%s' and stays with it.", ip, n.NicId)
			}
			n.PrivateIps = slices.Delete(n.PrivateIps, i, i+1)
		}
		return omi.Put(tx, n)
	})
	if err != nil {
		return nil, err
	}
	return &UnlinkPrivateIpsResponse{}, nil
}

type FiltersNic struct {
	tagFilter
	Descriptions                     []string `json:"Descriptions"`
	IsSourceDestCheck                *bool    `json:"IsSourceDestCheck"`
	LinkNicDeleteOnVmDeletion        *bool    `json:"LinkNicDeleteOnVmDeletion"`
	LinkNicDeviceNumbers             []int    `json:"LinkNicDeviceNumbers"`
	LinkNicLinkNicIds                []string `json:"LinkNicLinkNicIds"`
	LinkNicStates                    []string `json:"LinkNicStates"`
	LinkNicVmAccountIds              []string `json:"LinkNicVmAccountIds"`
	LinkNicVmIds                     []string `json:"LinkNicVmIds"`
	LinkPublicIpAccountIds           []string `json:"LinkPublicIpAccountIds"`
	LinkPublicIpLinkPublicIpIds      []string `json:"LinkPublicIpLinkPublicIpIds"`
	LinkPublicIpPublicDnsNames       []string `json:"LinkPublicIpPublicDnsNames"`
	LinkPublicIpPublicIpIds          []string `json:"LinkPublicIpPublicIpIds"`
	LinkPublicIpPublicIps            []string `json:"LinkPublicIpPublicIps"`
	MacAddresses                     []string `json:"MacAddresses"`
	NetIds                           []string `json:"NetIds"`
	NicIds                           []string `json:"NicIds"`
	PrivateDnsNames                  []string `json:"PrivateDnsNames"`
	PrivateIpsLinkPublicIpAccountIds []string `json:"PrivateIpsLinkPublicIpAccountIds"`
	PrivateIpsLinkPublicIpPublicIps  []string `json:"PrivateIpsLinkPublicIpPublicIps"`
	PrivateIpsPrimaryIp              *bool    `json:"PrivateIpsPrimaryIp"`
	PrivateIpsPrivateIps             []string `json:"PrivateIpsPrivateIps"`
	SecurityGroupIds                 []string `json:"SecurityGroupIds"`
	SecurityGroupNames               []string `json:"SecurityGroupNames"`
	States                           []string `json:"States"`
	SubnetIds                        []string `json:"SubnetIds"`
	SubregionNames                   []string `json:"SubregionNames"`

	// linkDates and privateIpsLinkPublicIpIds are ReadVms filters that
	// ReadNics does not have (NicLinkNicLinkNicDates,
	// NicPrivateIpsLinkPublicIpIds), matched through the VM's NICs.
	linkDates, privateIpsLinkPublicIpIds []string
}

// needsLink tells whether a filter reads the NIC's link to a VM: an
// unlinked NIC matches none of those.
func (f *FiltersNic) needsLink() bool {
	return f.LinkNicDeleteOnVmDeletion != nil || len(f.LinkNicDeviceNumbers) > 0 || len(f.LinkNicLinkNicIds) > 0 ||
		len(f.LinkNicStates) > 0 || len(f.LinkNicVmAccountIds) > 0 || len(f.LinkNicVmIds) > 0 || len(f.linkDates) > 0
}

func (f *FiltersNic) needsPublicIp() bool {
	return len(f.LinkPublicIpAccountIds) > 0 || len(f.LinkPublicIpLinkPublicIpIds) > 0 || len(f.LinkPublicIpPublicDnsNames) > 0 ||
		len(f.LinkPublicIpPublicIpIds) > 0 || len(f.LinkPublicIpPublicIps) > 0
}

func (f *FiltersNic) match(n *omi.Nic) bool {
	if !(anyOf(f.Descriptions, n.Description) && (f.IsSourceDestCheck == nil || *f.IsSourceDestCheck == n.IsSourceDestChecked) &&
		anyOf(f.MacAddresses, n.MacAddress) && anyOf(f.NetIds, n.NetId) && anyOf(f.NicIds, n.NicId) &&
		anyOf(f.PrivateDnsNames, n.PrivateDnsName) && anyOf(f.States, n.State) && anyOf(f.SubnetIds, n.SubnetId) &&
		anyOf(f.SubregionNames, n.SubregionName) && f.tagFilter.match(n.Tags)) {
		return false
	}
	if f.needsLink() {
		l := n.LinkNic
		if l == nil || len(f.linkDates) > 0 && !matchDates(f.linkDates, l.LinkDate) || !(anyOf(f.LinkNicDeviceNumbers, l.DeviceNumber) && anyOf(f.LinkNicLinkNicIds, l.LinkNicId) &&
			anyOf(f.LinkNicStates, l.State) && anyOf(f.LinkNicVmAccountIds, l.VmAccountId) && anyOf(f.LinkNicVmIds, l.VmId) &&
			(f.LinkNicDeleteOnVmDeletion == nil || *f.LinkNicDeleteOnVmDeletion == l.DeleteOnVmDeletion)) {
			return false
		}
	}
	if f.needsPublicIp() {
		l := n.LinkPublicIp
		if l == nil || !(anyOf(f.LinkPublicIpAccountIds, l.PublicIpAccountId) && anyOf(f.LinkPublicIpLinkPublicIpIds, l.LinkPublicIpId) &&
			anyOf(f.LinkPublicIpPublicDnsNames, l.PublicDnsName) && anyOf(f.LinkPublicIpPublicIpIds, l.PublicIpId) &&
			anyOf(f.LinkPublicIpPublicIps, l.PublicIp)) {
			return false
		}
	}
	if len(f.SecurityGroupIds) > 0 || len(f.SecurityGroupNames) > 0 {
		if !slices.ContainsFunc(n.SecurityGroups, func(g omi.SecurityGroup) bool {
			return anyOf(f.SecurityGroupIds, g.SecurityGroupId) && anyOf(f.SecurityGroupNames, g.SecurityGroupName)
		}) {
			return false
		}
	}
	if f.PrivateIpsPrimaryIp != nil || len(f.PrivateIpsPrivateIps) > 0 || len(f.PrivateIpsLinkPublicIpAccountIds) > 0 ||
		len(f.PrivateIpsLinkPublicIpPublicIps) > 0 || len(f.privateIpsLinkPublicIpIds) > 0 {
		return slices.ContainsFunc(n.PrivateIps, func(p omi.NicPrivateIp) bool {
			if !anyOf(f.PrivateIpsPrivateIps, p.PrivateIp) || (f.PrivateIpsPrimaryIp != nil && *f.PrivateIpsPrimaryIp != p.IsPrimary) {
				return false
			}
			if len(f.PrivateIpsLinkPublicIpAccountIds) > 0 || len(f.PrivateIpsLinkPublicIpPublicIps) > 0 || len(f.privateIpsLinkPublicIpIds) > 0 {
				return p.LinkPublicIp != nil && anyOf(f.PrivateIpsLinkPublicIpAccountIds, p.LinkPublicIp.PublicIpAccountId) &&
					anyOf(f.PrivateIpsLinkPublicIpPublicIps, p.LinkPublicIp.PublicIp) &&
					(len(f.privateIpsLinkPublicIpIds) == 0 || contains(f.privateIpsLinkPublicIpIds, p.LinkPublicIp.PublicIpId) ||
						contains(f.privateIpsLinkPublicIpIds, p.LinkPublicIp.PublicIp))
			}
			return true
		})
	}
	return true
}

type ReadNicsRequest struct {
	Base
	Paging
	Filters *FiltersNic `json:"Filters"`
}
type ReadNicsResponse struct {
	Nics          []*omi.Nic `json:"Nics"`
	NextPageToken string     `json:"NextPageToken,omitempty"`
}

// ReadNics lists the caller's NICs with every filter of the API.
func (s *Service) ReadNics(ctx context.Context, c *omi.Caller, in *ReadNicsRequest) (*ReadNicsResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersNic{}
	}
	if _, err := resultsPerPage(in.ResultsPerPage); err != nil {
		return nil, err
	}
	if omi.IsDryRun(ctx) {
		return &ReadNicsResponse{Nics: []*omi.Nic{}}, nil
	}
	var out []*omi.Nic
	var next string
	err := s.view(ctx, func(tx omi.Tx) error {
		// Public IP links live on the public IPs: load them once, then
		// filter with them in place.
		ips, err := nicPublicIps(tx, c.AccountID())
		if err != nil {
			return err
		}
		keep := func(n *omi.Nic) bool {
			s.showLinks(n, ips)
			return f.match(n)
		}
		out, next, err = listPage[omi.Nic](tx, omi.Query{Owners: []string{c.AccountID()}, IDs: f.NicIds, Names: f.NetIds}, in.Paging, omi.PrefixNic, keep)
		return err
	})
	if err != nil {
		return nil, err
	}
	for i, n := range out {
		out[i] = n.ForWire()
	}
	return &ReadNicsResponse{Nics: out, NextPageToken: next}, nil
}
