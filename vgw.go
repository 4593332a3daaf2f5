package omi

// Virtual gateways are the Net side of a VPN: omi keeps them as metadata
// with the real API's rules (link to one Net, route propagation into the
// Net's route tables); no tunnel is set up and no packet flows.

// KindVirtualGateway is named as ReadTags names the resource type.
const KindVirtualGateway Kind = "virtual-private-gateway"

// PrefixVirtualGateway is the id prefix of virtual gateways.
const PrefixVirtualGateway = "vgw"

// States of a virtual gateway and of its links to Nets. omi creates
// gateways available and links them attached at once. An unlinked link
// stays listed, detached, as on the real cloud (terraform-provider-outscale's
// acceptance tests expect it after an unlink, and two links, the old one
// detached, after a move to another Net); linking to that Net again
// reattaches it.
const (
	VirtualGatewayAvailable = "available"
	VgwLinkAttached         = "attached"
	VgwLinkDetached         = "detached"
)

// VirtualGateway is a virtual gateway and the Net it is linked to, if any.
type VirtualGateway struct {
	AccountId                string                    `json:"-"`
	ConnectionType           string                    `json:"ConnectionType"`
	NetToVirtualGatewayLinks []NetToVirtualGatewayLink `json:"NetToVirtualGatewayLinks"`
	State                    string                    `json:"State"`
	Tags                     []Tag                     `json:"Tags"`
	VirtualGatewayId         string                    `json:"VirtualGatewayId"`
}

// NetToVirtualGatewayLink is the link of a virtual gateway to a Net.
type NetToVirtualGatewayLink struct {
	NetId string `json:"NetId"`
	State string `json:"State"`
}

func (g *VirtualGateway) Kind() Kind                   { return KindVirtualGateway }
func (g *VirtualGateway) ResourceID() string           { return g.VirtualGatewayId }
func (g *VirtualGateway) Owner() string                { return g.AccountId }
func (g *VirtualGateway) IndexName() string            { return "" }
func (g *VirtualGateway) Visibility() (bool, []string) { return false, nil }

// SetOwner restores the owner, which the API object does not carry.
func (g *VirtualGateway) SetOwner(id string) { g.AccountId = id }

// TagList implements Tagged.
func (g *VirtualGateway) TagList() *[]Tag { return &g.Tags }

// LinkedNet returns the Net the gateway is attached to, or "".
func (g *VirtualGateway) LinkedNet() string {
	for _, l := range g.NetToVirtualGatewayLinks {
		if l.State == VgwLinkAttached {
			return l.NetId
		}
	}
	return ""
}
