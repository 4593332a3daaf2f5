package service

// NETGW TEMPORARY LOOKUPS — to reconcile with the net branch.
//
// The gateway and routing calls need to find the caller's Nets, subnets and
// NICs. The net branch turns Nets and subnets into stored records with its
// own lookups; until it is merged these minimal ones read the omi.Net and
// omi.Subnet records directly. The lead replaces them by the net branch's
// helpers (same contract: the caller's resource, or the kind's not-found
// error, another account's resource being reported exactly like a missing
// one).

import (
	"github.com/omiproject/omi"
)

// gwNet loads a Net the caller owns.
func gwNet(tx omi.Tx, c *omi.Caller, id string) (*omi.Net, error) {
	return gwNetOf(tx, c.AccountID(), id)
}

// gwNetOf loads a Net owned by account (the accepter of a Net peering may
// be another account).
func gwNetOf(tx omi.Tx, account, id string) (*omi.Net, error) {
	n, err := omi.Get[omi.Net](tx, id)
	if isNotFound(err) || (err == nil && n.AccountId != account) {
		return nil, omi.NotFound(codeNoSuchNet, "The NetId '%s' doesn't exist.", id)
	}
	return n, err
}

// gwSubnet loads a subnet the caller owns.
func gwSubnet(tx omi.Tx, c *omi.Caller, id string) (*omi.Subnet, error) {
	sn, err := omi.Get[omi.Subnet](tx, id)
	if isNotFound(err) || (err == nil && sn.AccountId != c.AccountID()) {
		return nil, omi.NotFound(codeNoSuchSubnet, "The SubnetId '%s' doesn't exist.", id)
	}
	return sn, err
}

// gwNic finds a NIC the caller owns and tells its Net and the VM it is
// linked to ("" when unlinked). Without stored NICs every id is unknown.
func gwNic(tx omi.Tx, c *omi.Caller, id string) (netID, vmID string, err error) {
	return "", "", omi.NotFound(codeNoSuchNic, "The NicId '%s' doesn't exist.", id)
}

// gwVmNic is the primary NIC of a VM, shown beside VmId in a route to a VM
// ("" when unknown).
func gwVmNic(tx omi.Tx, vm *omi.Vm) string { return "" }

// gwNicExists tells whether a NIC is still there (routes to a deleted NIC
// are blackholes).
func gwNicExists(tx omi.Tx, id string) (bool, error) { return false, nil }
