package omi

// Net access points give a Net private access to one of the cloud's
// services (the API, object storage, ...) through routes in its route
// tables. omi keeps them as metadata; no packet flows.

// KindNetAccessPoint is named as ReadTags names the resource type.
const KindNetAccessPoint Kind = "vpc-endpoint"

// PrefixNetAccessPoint is the id prefix of Net access points;
// PrefixServicePrefixList that of the services they reach (the
// DestinationServiceId of their routes).
const (
	PrefixNetAccessPoint    = "vpce"
	PrefixServicePrefixList = "pl"
)

// NetAccessPointAvailable is the State of a Net access point: omi creates
// them ready.
const NetAccessPointAvailable = "available"

// NetAccessPoint is a Net access point and the route tables it has a
// route in.
type NetAccessPoint struct {
	AccountId        string   `json:"-"`
	NetAccessPointId string   `json:"NetAccessPointId"`
	NetId            string   `json:"NetId"`
	RouteTableIds    []string `json:"RouteTableIds"`
	ServiceName      string   `json:"ServiceName"`
	State            string   `json:"State"`
	Tags             []Tag    `json:"Tags"`
}

func (p *NetAccessPoint) Kind() Kind                   { return KindNetAccessPoint }
func (p *NetAccessPoint) ResourceID() string           { return p.NetAccessPointId }
func (p *NetAccessPoint) Owner() string                { return p.AccountId }
func (p *NetAccessPoint) IndexName() string            { return "" }
func (p *NetAccessPoint) Visibility() (bool, []string) { return false, nil }

// SetOwner restores the owner, which the API object does not carry.
func (p *NetAccessPoint) SetOwner(id string) { p.AccountId = id }

// TagList implements Tagged.
func (p *NetAccessPoint) TagList() *[]Tag { return &p.Tags }
