package service

// Lookups the gateway and routing calls make into the Nets, subnets and
// NICs of nets.go, networks.go and nics.go.

import (
	"github.com/omiproject/omi"
)

// gwNet loads a Net the caller owns.
func gwNet(tx omi.Tx, c *omi.Caller, id string) (*omi.Net, error) { return ownNet(tx, c, id) }

// gwNetOf loads a Net owned by account (the accepter of a Net peering may
// be another account).
func gwNetOf(tx omi.Tx, account, id string) (*omi.Net, error) { return netOf(tx, account, id) }

// gwSubnet loads a subnet the caller owns.
func gwSubnet(tx omi.Tx, c *omi.Caller, id string) (*omi.Subnet, error) { return ownSubnet(tx, c, id) }

// gwNic finds a NIC the caller owns and tells its Net and the VM it is
// linked to ("" when unlinked).
func gwNic(tx omi.Tx, c *omi.Caller, id string) (netID, vmID string, err error) {
	n, err := ownNic(tx, c, id)
	if err != nil {
		return "", "", err
	}
	if n.LinkNic != nil {
		vmID = n.LinkNic.VmId
	}
	return n.NetId, vmID, nil
}

// gwVmNic is the primary NIC of a VM, shown beside VmId in a route to a VM
// ("" when it has none).
func gwVmNic(tx omi.Tx, vm *omi.Vm) string {
	nics, err := vmNics(tx, vm)
	if err != nil || len(nics) == 0 || nics[0].LinkNic.DeviceNumber != 0 {
		return ""
	}
	return nics[0].NicId
}

// gwNicExists tells whether a NIC is still there (routes to a deleted NIC
// are blackholes).
func gwNicExists(tx omi.Tx, id string) (bool, error) {
	_, err := omi.Get[omi.Nic](tx, id)
	if isNotFound(err) {
		return false, nil
	}
	return err == nil, err
}
