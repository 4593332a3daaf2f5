package service

import (
	"slices"

	"github.com/omiproject/omi"
)

// NicForVmCreation is a NIC of a VM being created: an existing NIC of the
// caller (NicId), or a new one in SubnetId.
type NicForVmCreation struct {
	DeleteOnVmDeletion      *bool            `json:"DeleteOnVmDeletion"`
	Description             string           `json:"Description"`
	DeviceNumber            *int             `json:"DeviceNumber"`
	NicId                   string           `json:"NicId"`
	PrivateIps              []PrivateIpLight `json:"PrivateIps"`
	SecondaryPrivateIpCount *int             `json:"SecondaryPrivateIpCount"`
	SecurityGroupIds        []string         `json:"SecurityGroupIds"`
	SubnetId                string           `json:"SubnetId"`
}

// createVmNics gives a new VM of a Net its NICs: those of the request, or
// one primary NIC in its subnet with its security groups and the private
// IPs asked for. The primary NIC's address becomes the VM's private IP.
func (s *Service) createVmNics(tx omi.Tx, c *omi.Caller, in *CreateVmsRequest, vm *omi.Vm) error {
	if vm.NetId == "" {
		return nil
	}
	entries := in.Nics
	// The primary NIC the cloud makes for a VM created with SubnetId is
	// described "Primary network interface"; a VM of a Net and its NICs
	// are source/dest checked (the provider's recorded states:
	// tests/data/oapi/nets/TF-109, TF-111, TF-144, vm/TF-212 to TF-214).
	made := len(entries) == 0
	vm.IsSourceDestChecked = true
	if made {
		zero, yes := 0, true
		e := NicForVmCreation{DeviceNumber: &zero, DeleteOnVmDeletion: &yes, SubnetId: vm.SubnetId, Description: primaryNicDescription}
		for _, g := range vm.SecurityGroups {
			e.SecurityGroupIds = append(e.SecurityGroupIds, g.SecurityGroupId)
		}
		for i, ip := range in.PrivateIps {
			e.PrivateIps = append(e.PrivateIps, PrivateIpLight{PrivateIp: ip, IsPrimary: i == 0})
		}
		entries = []NicForVmCreation{e}
	}
	devices := map[int]bool{}
	for _, e := range entries {
		if e.DeviceNumber == nil || *e.DeviceNumber < 0 || *e.DeviceNumber > maxNicDevice {
			return omi.Invalid(omi.CodeInvalidValue, "each of Nics needs a DeviceNumber between 0 and %d", maxNicDevice)
		}
		dev := *e.DeviceNumber
		if devices[dev] {
			return omi.Invalid(omi.CodeInvalidValue, "two of Nics use the device %d", dev)
		}
		devices[dev] = true
		var n *omi.Nic
		if e.NicId != "" {
			// terraform-provider-outscale sends every field of the
			// block for an existing NIC too (an empty SubnetId and
			// PrivateIps, DeleteOnVmDeletion from its default), and the
			// real API takes it: only fields that would change the NIC
			// are refused.
			if len(e.PrivateIps) > 0 || len(e.SecurityGroupIds) > 0 || e.SecondaryPrivateIpCount != nil && *e.SecondaryPrivateIpCount > 0 {
				return omi.Invalid(omi.CodeInvalidParamSet, "an existing NIC (NicId) takes no PrivateIps, SecondaryPrivateIpCount or SecurityGroupIds")
			}
			var err error
			if n, err = ownNic(tx, c, e.NicId); err != nil {
				return err
			}
			if e.SubnetId != "" && e.SubnetId != n.SubnetId {
				return omi.Invalid(omi.CodeInvalidParamSet, "the NIC '%s' is in the subnet '%s', not '%s'", n.NicId, n.SubnetId, e.SubnetId)
			}
			if n.LinkNic != nil {
				return omi.Conflict(omi.CodeDeviceInUse, "The NIC '%s' is already linked to the VM '%s'.", n.NicId, n.LinkNic.VmId)
			}
			link(n, vm, dev, e.DeleteOnVmDeletion != nil && *e.DeleteOnVmDeletion, vm.CreationDate)
		} else {
			if e.SubnetId == "" {
				return omi.Invalid(omi.CodeInvalidParameter, "a new NIC in Nics needs a SubnetId")
			}
			secondaries := 0
			if e.SecondaryPrivateIpCount != nil {
				secondaries = *e.SecondaryPrivateIpCount
			}
			var err error
			n, err = s.newNic(tx, c, nicSpec{subnetID: e.SubnetId, description: e.Description, groupIDs: e.SecurityGroupIds,
				privateIps: e.PrivateIps, secondaries: secondaries})
			if err != nil {
				return err
			}
			del := true
			if e.DeleteOnVmDeletion != nil {
				del = *e.DeleteOnVmDeletion
			}
			link(n, vm, dev, del, vm.CreationDate)
			if dev == 0 {
				if err := s.mapPublicIp(tx, c, n); err != nil {
					return err
				}
			}
		}
		if n.NetId != vm.NetId {
			return omi.Invalid(codeNetworkMismatch, "The NIC '%s' is in the Net '%s', not in the VM's Net '%s'.", n.NicId, n.NetId, vm.NetId)
		}
		if n.SubregionName != vm.Placement.SubregionName {
			return omi.Invalid(omi.CodeInvalidZone, "The NIC '%s' is in %s, not in the VM's subregion %s.", n.NicId, n.SubregionName, vm.Placement.SubregionName)
		}
		if err := omi.Put(tx, n); err != nil {
			return err
		}
		if dev == 0 {
			ip := n.PrimaryIp().PrivateIp
			vm.PrivateIp, vm.PrivateDnsName, vm.SubnetId = ip, s.privateDnsName(ip), n.SubnetId
			vm.SecurityGroups = slices.Clone(n.SecurityGroups)
		}
	}
	return omi.Put(tx, vm)
}

// mapPublicIp gives the primary NIC a VM is created with a public IP when
// its subnet has MapPublicIpOnLaunch, as the real cloud does: the VM shows
// it as its PublicIp (drawn from the pool of CreatePublicIp, away from the
// accounts' public IPs). Under a driver with an address pool the VM's own
// pool address, where its ports are forwarded, already is that public IP.
func (s *Service) mapPublicIp(tx omi.Tx, c *omi.Caller, n *omi.Nic) error {
	if s.vmDriver().AddressPool().IsValid() {
		return nil
	}
	sn, err := ownSubnet(tx, c, n.SubnetId)
	if err != nil || !sn.MapPublicIpOnLaunch {
		return err
	}
	n.MappedPublicIp, err = freePublicIP(tx)
	return err
}

// primaryNicDescription is the description of the NIC the cloud makes for
// a VM created in a subnet.
const primaryNicDescription = "Primary network interface"

// releaseVmNics runs when a VM is deleted: its NICs marked
// DeleteOnVmDeletion go with it, the others are unlinked and stay.
func releaseVmNics(tx omi.Tx, vm *omi.Vm) error {
	nics, err := vmNics(tx, vm)
	if err != nil {
		return err
	}
	for _, n := range nics {
		if n.LinkNic.DeleteOnVmDeletion {
			if err := deleteNic(tx, n); err != nil {
				return err
			}
			continue
		}
		n.LinkNic, n.State = nil, omi.NicAvailable
		if err := omi.Put(tx, n); err != nil {
			return err
		}
	}
	return nil
}

// showVmNics fills the Nics of VMs in Nets from their NIC records, and
// their private IP, security groups and public IP from the primary NIC.
func (s *Service) showVmNics(tx omi.Tx, account string, vms []*omi.Vm) error {
	var ips []*omi.PublicIp
	loaded := false
	nicsOf := map[string][]*omi.Nic{}
	for _, vm := range vms {
		if vm.NetId == "" || vm.State == omi.VmTerminated {
			continue
		}
		if !loaded {
			var err error
			if ips, err = nicPublicIps(tx, account); err != nil {
				return err
			}
			loaded = true
		}
		if _, ok := nicsOf[vm.NetId]; !ok {
			nics, err := netNics(tx, account, vm.NetId)
			if err != nil {
				return err
			}
			nicsOf[vm.NetId] = nics
		}
		vm.Nics = nil
		var linked []*omi.Nic
		for _, n := range nicsOf[vm.NetId] {
			if n.LinkNic != nil && n.LinkNic.VmId == vm.VmId {
				linked = append(linked, n)
			}
		}
		slices.SortFunc(linked, func(a, b *omi.Nic) int { return a.LinkNic.DeviceNumber - b.LinkNic.DeviceNumber })
		for _, n := range linked {
			s.showLinks(n, ips)
			n.Normalize()
			vm.Nics = append(vm.Nics, n.LightForVm())
			if n.LinkNic.DeviceNumber == 0 {
				vm.PrivateIp, vm.PrivateDnsName, vm.SubnetId = n.PrimaryIp().PrivateIp, n.PrivateDnsName, n.SubnetId
				vm.SecurityGroups = slices.Clone(n.SecurityGroups)
				if n.LinkPublicIp != nil {
					vm.PublicIp, vm.PublicDnsName = n.LinkPublicIp.PublicIp, n.LinkPublicIp.PublicDnsName
				}
			}
		}
	}
	return nil
}

// setPrimaryNicGroups gives a VM's primary NIC the VM's security groups:
// in a Net, the groups of a VM are those of its primary NIC.
func setPrimaryNicGroups(tx omi.Tx, vm *omi.Vm) error {
	nics, err := vmNics(tx, vm)
	if err != nil || len(nics) == 0 || nics[0].LinkNic.DeviceNumber != 0 {
		return err
	}
	nics[0].SecurityGroups = slices.Clone(vm.SecurityGroups)
	return omi.Put(tx, nics[0])
}
