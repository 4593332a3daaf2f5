package service

import (
	"github.com/omiproject/omi"
)

// Hooks of the Net calls into the gateways and routing of a Net. CreateNet,
// DeleteNet and DeleteSubnet call them inside their own transaction. Their
// shape follows the net branch's NetHook (Created, Dependent, Deleted) and
// SubnetHook (Dependent, Deleted): the checks that may refuse a deletion
// come apart from the cleanup, so that every hook checks before any
// deletes.

// codeNetHasDependencies refuses DeleteNet while gateways or route tables
// of the Net remain (vpc-is-associated).
const codeNetHasDependencies = codeNetAssociated

// NetgwCreateNet gives a new Net the account's default DHCP options set
// (when it names none) and its main route table, holding the local route.
func (s *Service) NetgwCreateNet(tx omi.Tx, account string, n *omi.Net) error {
	if n.DhcpOptionsSetId == "" {
		id, err := s.ensureDefaultDhcp(tx, account)
		if err != nil {
			return err
		}
		n.DhcpOptionsSetId = id
	} else if n.DhcpOptionsSetId == defaultDhcpID(account) {
		if _, err := s.ensureDefaultDhcp(tx, account); err != nil {
			return err
		}
	}
	_, err := s.createMainRouteTable(tx, account, n)
	return err
}

// NetgwDeleteNet checks that nothing of the Net's gateways and routing is
// left but its main route table, then deletes that table and ends the Net
// peerings of the Net (as deleted).
func (s *Service) NetgwDeleteNet(tx omi.Tx, account, netID string) error {
	if err := s.NetgwNetDependents(tx, account, netID); err != nil {
		return err
	}
	return s.NetgwNetDeleted(tx, account, netID)
}

// NetgwNetDependents refuses the deletion of a Net that has an internet
// service or a virtual gateway linked, a Net access point, a NAT service, or a route table besides its main one.
func (s *Service) NetgwNetDependents(tx omi.Tx, account, netID string) error {
	g, err := netInternetService(tx, account, netID)
	if err != nil {
		return err
	}
	if g != nil {
		return omi.Conflict(codeNetHasDependencies, "The Net '%s' has the internet service '%s' linked: unlink it first.", netID, g.InternetServiceId)
	}
	naps, err := accountNetAccessPoints(tx, account, netID)
	if err != nil {
		return err
	}
	if len(naps) > 0 {
		return omi.Conflict(codeNetHasDependencies, "The Net '%s' has the Net access point '%s': delete it first.", netID, naps[0].NetAccessPointId)
	}
	vgw, err := netVirtualGateway(tx, account, netID)
	if err != nil {
		return err
	}
	if vgw != nil {
		return omi.Conflict(codeNetHasDependencies, "The Net '%s' has the virtual gateway '%s' linked: unlink it first.", netID, vgw.VirtualGatewayId)
	}
	nats, err := netNatServices(tx, account, netID)
	if err != nil {
		return err
	}
	if len(nats) > 0 {
		return omi.Conflict(codeNetHasDependencies, "The Net '%s' has the NAT service '%s': delete it first.", netID, nats[0].NatServiceId)
	}
	tables, err := accountRouteTables(tx, account, netID)
	if err != nil {
		return err
	}
	for _, t := range tables {
		if t.MainLink() == nil {
			return omi.Conflict(codeNetHasDependencies, "The Net '%s' has the route table '%s': delete it first.", netID, t.RouteTableId)
		}
	}
	return nil
}

// NetgwNetDeleted deletes the main route table of a Net that goes, and
// ends its live Net peerings (as deleted, by the Net's deletion).
func (s *Service) NetgwNetDeleted(tx omi.Tx, account, netID string) error {
	tables, err := accountRouteTables(tx, account, netID)
	if err != nil {
		return err
	}
	for _, t := range tables {
		if err := retire(tx, omi.KindRouteTable, t.RouteTableId); err != nil {
			return err
		}
	}
	var ended []*omi.NetPeering
	now := s.now()
	err = omi.Scan(tx, omi.Query{VisibleTo: account}, func(p *omi.NetPeering) (bool, error) {
		st := peeringState(p, now)
		if (p.SourceNet.NetId == netID || p.AccepterNet.NetId == netID) && (st == omi.PeeringActive || st == omi.PeeringPending) {
			ended = append(ended, p)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, p := range ended {
		s.setPeeringState(p, omi.PeeringDeleted, "Deleted with the Net "+netID)
		if err := omi.Put(tx, p); err != nil {
			return err
		}
	}
	return nil
}

// NetgwDeleteSubnet refuses to delete a subnet that holds a NAT service,
// and removes the subnet's route table link.
func (s *Service) NetgwDeleteSubnet(tx omi.Tx, account string, sn *omi.Subnet) error {
	if err := s.NetgwSubnetDependents(tx, account, sn); err != nil {
		return err
	}
	return s.NetgwSubnetDeleted(tx, account, sn)
}

// NetgwSubnetDependents refuses the deletion of a subnet holding a NAT
// service.
func (s *Service) NetgwSubnetDependents(tx omi.Tx, account string, sn *omi.Subnet) error {
	var nat *omi.NatService
	err := omi.Scan(tx, omi.Query{Owners: []string{account}, Names: []string{sn.SubnetId}}, func(n *omi.NatService) (bool, error) {
		nat = n
		return false, nil
	})
	if err != nil {
		return err
	}
	if nat != nil {
		return omi.Conflict(codeSubnetInUse, "The subnet '%s' holds the NAT service '%s': delete it first.", sn.SubnetId, nat.NatServiceId)
	}
	return nil
}

// NetgwSubnetDeleted removes the route table link of a subnet that goes.
func (s *Service) NetgwSubnetDeleted(tx omi.Tx, account string, sn *omi.Subnet) error {
	tables, err := accountRouteTables(tx, account, sn.NetId)
	if err != nil {
		return err
	}
	for _, t := range tables {
		for i, l := range t.LinkRouteTables {
			if l.SubnetId == sn.SubnetId {
				t.LinkRouteTables = append(t.LinkRouteTables[:i], t.LinkRouteTables[i+1:]...)
				return omi.Put(tx, t)
			}
		}
	}
	return nil
}
