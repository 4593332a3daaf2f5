package omi

// The gateways and routing of a Net: internet services, route tables, NAT
// services, Net peerings and DHCP options sets. omi keeps them as metadata
// with the real API's rules; no packet flows through them.

// Kinds of the Net gateway and routing resources, named as ReadTags names
// their ResourceType (the spec's list of resource types; the internet
// service, missing from that list, uses the name of its EC2 ancestor).
const (
	KindInternetService Kind = "internet-gateway"
	KindRouteTable      Kind = "route-table"
	KindNatService      Kind = "natgateway"
	KindNetPeering      Kind = "vpc-peering-connection"
	KindDhcpOptions     Kind = "dhcpoptions"
)

// Id prefixes of the Net gateway and routing resources. The spec's
// CreateTags prose names Net peerings vpcx-, but its examples and the real
// cloud use pcx-; the real cloud wins.
const (
	PrefixInternetService = "igw"
	PrefixRouteTable      = "rtb"
	PrefixLinkRouteTable  = "rtbassoc"
	PrefixNatService      = "nat"
	PrefixNetPeering      = "pcx"
)

// States and creation methods of the gateway resources.
const (
	// LinkAvailable is the State of a linked internet service.
	LinkAvailable = "available"
	// NatAvailable is the State of a NAT service: omi creates them ready.
	NatAvailable = "available"
	// RouteActive and RouteBlackhole are the States of a route: a route
	// whose target is gone (or a Net peering that is not active) is a
	// blackhole.
	RouteActive    = "active"
	RouteBlackhole = "blackhole"
	// RouteByTable is the CreationMethod of the local route every route
	// table gets; RouteByCall that of the routes CreateRoute adds.
	RouteByTable = "CreateRouteTable"
	RouteByCall  = "CreateRoute"
	// LocalGateway is the GatewayId of the local route. The spec's examples
	// omit it, but the real cloud writes "local" (the recorded terraform
	// states of the provider carry a non-empty gateway_id).
	LocalGateway = "local"
	// OutscaleProvidedDNS is the DomainNameServers entry meaning the
	// cloud's own resolvers.
	OutscaleProvidedDNS = "OutscaleProvidedDNS"
)

// States of a Net peering.
const (
	PeeringPending  = "pending-acceptance"
	PeeringActive   = "active"
	PeeringRejected = "rejected"
	PeeringFailed   = "failed"
	PeeringExpired  = "expired"
	PeeringDeleted  = "deleted"
)

// netgwKindOfID tells the kind of a gateway or routing resource id.
func netgwKindOfID(id string) (Kind, bool) {
	switch {
	case ValidID(id, PrefixInternetService):
		return KindInternetService, true
	case ValidID(id, PrefixRouteTable):
		return KindRouteTable, true
	case ValidID(id, PrefixNatService):
		return KindNatService, true
	case ValidID(id, PrefixNetPeering):
		return KindNetPeering, true
	case ValidID(id, PrefixDhcpOptions):
		return KindDhcpOptions, true
	case ValidID(id, PrefixVirtualGateway):
		return KindVirtualGateway, true
	case ValidID(id, PrefixNetAccessPoint):
		return KindNetAccessPoint, true
	}
	return "", false
}

// InternetService is a gateway between a Net and the Internet. NetId and
// State are absent while it is not linked to a Net (the real cloud's
// recorded states show them empty).
type InternetService struct {
	AccountId         string `json:"-"`
	InternetServiceId string `json:"InternetServiceId"`
	NetId             string `json:"NetId,omitempty"`
	State             string `json:"State,omitempty"`
	Tags              []Tag  `json:"Tags"`
}

func (g *InternetService) Kind() Kind                   { return KindInternetService }
func (g *InternetService) ResourceID() string           { return g.InternetServiceId }
func (g *InternetService) Owner() string                { return g.AccountId }
func (g *InternetService) IndexName() string            { return "" }
func (g *InternetService) Visibility() (bool, []string) { return false, nil }

// SetOwner restores the owner, which the API object does not carry.
func (g *InternetService) SetOwner(id string) { g.AccountId = id }

// TagList implements Tagged.
func (g *InternetService) TagList() *[]Tag { return &g.Tags }

// RouteTable is a route table of a Net, with its routes and its links to
// subnets (and, for the main table, to the Net itself).
type RouteTable struct {
	AccountId                       string                           `json:"-"`
	LinkRouteTables                 []LinkRouteTable                 `json:"LinkRouteTables"`
	NetId                           string                           `json:"NetId"`
	RoutePropagatingVirtualGateways []RoutePropagatingVirtualGateway `json:"RoutePropagatingVirtualGateways"`
	RouteTableId                    string                           `json:"RouteTableId"`
	Routes                          []Route                          `json:"Routes"`
	Tags                            []Tag                            `json:"Tags"`
}

// LinkRouteTable links a route table to a subnet, or, with Main, makes it
// the main table of its Net (NetId set, SubnetId absent). Links are listed
// in the order they were made, as the real cloud lists them.
type LinkRouteTable struct {
	LinkRouteTableId string `json:"LinkRouteTableId"`
	Main             bool   `json:"Main"`
	NetId            string `json:"NetId,omitempty"`
	RouteTableId     string `json:"RouteTableId"`
	SubnetId         string `json:"SubnetId,omitempty"`
}

// RoutePropagatingVirtualGateway is a virtual gateway propagating routes
// into a table (UpdateRoutePropagation).
type RoutePropagatingVirtualGateway struct {
	VirtualGatewayId string `json:"VirtualGatewayId"`
}

// Route sends a destination range to one target: an internet service
// (GatewayId), a NAT service, a NIC, a VM or a Net peering.
type Route struct {
	CreationMethod       string `json:"CreationMethod"`
	DestinationIpRange   string `json:"DestinationIpRange"`
	DestinationServiceId string `json:"DestinationServiceId,omitempty"`
	GatewayId            string `json:"GatewayId,omitempty"`
	NatServiceId         string `json:"NatServiceId,omitempty"`
	NetAccessPointId     string `json:"NetAccessPointId,omitempty"`
	NetPeeringId         string `json:"NetPeeringId,omitempty"`
	NicId                string `json:"NicId,omitempty"`
	State                string `json:"State"`
	VmAccountId          string `json:"VmAccountId,omitempty"`
	VmId                 string `json:"VmId,omitempty"`
}

func (t *RouteTable) Kind() Kind                   { return KindRouteTable }
func (t *RouteTable) ResourceID() string           { return t.RouteTableId }
func (t *RouteTable) Owner() string                { return t.AccountId }
func (t *RouteTable) IndexName() string            { return t.NetId }
func (t *RouteTable) Visibility() (bool, []string) { return false, nil }

// SetOwner restores the owner, which the API object does not carry.
func (t *RouteTable) SetOwner(id string) { t.AccountId = id }

// TagList implements Tagged.
func (t *RouteTable) TagList() *[]Tag { return &t.Tags }

// MainLink returns the link that makes the table its Net's main one.
func (t *RouteTable) MainLink() *LinkRouteTable {
	for i := range t.LinkRouteTables {
		if t.LinkRouteTables[i].Main {
			return &t.LinkRouteTables[i]
		}
	}
	return nil
}

// Normalize replaces nil lists by empty ones, as the API writes them.
func (t *RouteTable) Normalize() {
	if t.LinkRouteTables == nil {
		t.LinkRouteTables = []LinkRouteTable{}
	}
	if t.RoutePropagatingVirtualGateways == nil {
		t.RoutePropagatingVirtualGateways = []RoutePropagatingVirtualGateway{}
	}
	if t.Routes == nil {
		t.Routes = []Route{}
	}
	if t.Tags == nil {
		t.Tags = []Tag{}
	}
}

// NatService translates the addresses of a Net's private subnets to one
// public IP. It lives in a public subnet.
type NatService struct {
	AccountId    string          `json:"-"`
	ClientToken  string          `json:"ClientToken,omitempty"`
	NatServiceId string          `json:"NatServiceId"`
	NetId        string          `json:"NetId"`
	PublicIps    []PublicIpLight `json:"PublicIps"`
	State        string          `json:"State"`
	SubnetId     string          `json:"SubnetId"`
	Tags         []Tag           `json:"Tags"`
}

// PublicIpLight names the public IP of a NAT service.
type PublicIpLight struct {
	PublicIp   string `json:"PublicIp"`
	PublicIpId string `json:"PublicIpId"`
}

func (n *NatService) Kind() Kind                   { return KindNatService }
func (n *NatService) ResourceID() string           { return n.NatServiceId }
func (n *NatService) Owner() string                { return n.AccountId }
func (n *NatService) IndexName() string            { return n.SubnetId }
func (n *NatService) Visibility() (bool, []string) { return false, nil }

// SetOwner restores the owner, which the API object does not carry.
func (n *NatService) SetOwner(id string) { n.AccountId = id }

// TagList implements Tagged.
func (n *NatService) TagList() *[]Tag { return &n.Tags }

// NetPeering connects two Nets, possibly of two accounts. The requester
// owns it; the accepter's account sees it too (it is shared with it) and
// alone may accept or reject it.
type NetPeering struct {
	AccountId      string          `json:"-"`
	AccepterNet    PeeringNet      `json:"AccepterNet"`
	ExpirationDate *string         `json:"ExpirationDate"`
	NetPeeringId   string          `json:"NetPeeringId"`
	SourceNet      PeeringNet      `json:"SourceNet"`
	State          NetPeeringState `json:"State"`
	Tags           []Tag           `json:"Tags"`
	// EndedAt is when the peering was deleted, rejected or failed: such a
	// peering stays readable for a while, as on the real cloud (not in the
	// API; ForWire drops it).
	EndedAt string `json:"EndedAt,omitempty"`
}

// PeeringNet is one side of a Net peering (AccepterNet and SourceNet).
type PeeringNet struct {
	AccountId string `json:"AccountId"`
	IpRange   string `json:"IpRange"`
	NetId     string `json:"NetId"`
}

// NetPeeringState is the state of a Net peering with its explanation.
type NetPeeringState struct {
	Message string `json:"Message"`
	Name    string `json:"Name"`
}

func (p *NetPeering) Kind() Kind         { return KindNetPeering }
func (p *NetPeering) ResourceID() string { return p.NetPeeringId }
func (p *NetPeering) Owner() string      { return p.AccountId }
func (p *NetPeering) IndexName() string  { return "" }

// Visibility shares the peering with the accepter's account.
func (p *NetPeering) Visibility() (bool, []string) {
	if p.AccepterNet.AccountId != "" && p.AccepterNet.AccountId != p.AccountId {
		return false, []string{p.AccepterNet.AccountId}
	}
	return false, nil
}

// SetOwner restores the owner, which the API object does not carry.
func (p *NetPeering) SetOwner(id string) { p.AccountId = id }

// TagList implements Tagged.
func (p *NetPeering) TagList() *[]Tag { return &p.Tags }

// ForWire returns a copy without the fields the API object lacks.
func (p *NetPeering) ForWire() *NetPeering {
	c := *p
	c.EndedAt = ""
	if c.Tags == nil {
		c.Tags = []Tag{}
	}
	return &c
}

// DhcpOptionsSet is a set of DHCP options that Nets hand to their VMs.
// Every account has a default set (Default true) that new Nets use.
type DhcpOptionsSet struct {
	AccountId         string   `json:"-"`
	Default           bool     `json:"Default"`
	DhcpOptionsSetId  string   `json:"DhcpOptionsSetId"`
	DomainName        string   `json:"DomainName"`
	DomainNameServers []string `json:"DomainNameServers"`
	LogServers        []string `json:"LogServers"`
	NtpServers        []string `json:"NtpServers"`
	Tags              []Tag    `json:"Tags"`
}

func (d *DhcpOptionsSet) Kind() Kind                   { return KindDhcpOptions }
func (d *DhcpOptionsSet) ResourceID() string           { return d.DhcpOptionsSetId }
func (d *DhcpOptionsSet) Owner() string                { return d.AccountId }
func (d *DhcpOptionsSet) IndexName() string            { return "" }
func (d *DhcpOptionsSet) Visibility() (bool, []string) { return false, nil }

// SetOwner restores the owner, which the API object does not carry.
func (d *DhcpOptionsSet) SetOwner(id string) { d.AccountId = id }

// TagList implements Tagged.
func (d *DhcpOptionsSet) TagList() *[]Tag { return &d.Tags }

// Normalize replaces nil lists by empty ones, as the API writes them.
func (d *DhcpOptionsSet) Normalize() {
	for _, l := range []*[]string{&d.DomainNameServers, &d.LogServers, &d.NtpServers} {
		if *l == nil {
			*l = []string{}
		}
	}
	if d.Tags == nil {
		d.Tags = []Tag{}
	}
}
