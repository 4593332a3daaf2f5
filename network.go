package omi

// Kinds of the network resources, named as the OUTSCALE tag vocabulary
// names them. omi serves a fixed default Net per account with one Subnet
// per subregion; they are derived from the account, not stored.
const (
	KindNet    Kind = "vpc"
	KindSubnet Kind = "subnet"
)

// Id prefixes of the network resources.
const (
	PrefixNet         = "vpc"
	PrefixSubnet      = "subnet"
	PrefixDhcpOptions = "dopt"
)

// States of Nets and Subnets; omi's are always available.
const NetAvailable = "available"

// Net is a virtual private network (the API's Net object).
type Net struct {
	AccountId        string `json:"-"`
	DhcpOptionsSetId string `json:"DhcpOptionsSetId"`
	IpRange          string `json:"IpRange"`
	NetId            string `json:"NetId"`
	State            string `json:"State"`
	Tags             []Tag  `json:"Tags"`
	Tenancy          string `json:"Tenancy"`
}

func (n *Net) Kind() Kind                   { return KindNet }
func (n *Net) ResourceID() string           { return n.NetId }
func (n *Net) Owner() string                { return n.AccountId }
func (n *Net) IndexName() string            { return "" }
func (n *Net) Visibility() (bool, []string) { return false, nil }

// SetOwner restores the owner, which the API's Net object does not carry.
func (n *Net) SetOwner(id string) { n.AccountId = id }

// TagList implements Tagged.
func (n *Net) TagList() *[]Tag { return &n.Tags }

// Subnet is a subnet of a Net in one subregion (the API's Subnet object).
type Subnet struct {
	AccountId         string `json:"-"`
	AvailableIpsCount int    `json:"AvailableIpsCount"`
	IpRange           string `json:"IpRange"`
	// MapPublicIpOnLaunch gives the NICs created in the subnet a public IP.
	MapPublicIpOnLaunch bool   `json:"MapPublicIpOnLaunch"`
	NetId               string `json:"NetId"`
	State               string `json:"State"`
	SubnetId            string `json:"SubnetId"`
	SubregionName       string `json:"SubregionName"`
	Tags                []Tag  `json:"Tags"`
}

func (s *Subnet) Kind() Kind                   { return KindSubnet }
func (s *Subnet) ResourceID() string           { return s.SubnetId }
func (s *Subnet) Owner() string                { return s.AccountId }
func (s *Subnet) IndexName() string            { return "" }
func (s *Subnet) Visibility() (bool, []string) { return false, nil }

// SetOwner restores the owner, which the API's Subnet object does not carry.
func (s *Subnet) SetOwner(id string) { s.AccountId = id }

// TagList implements Tagged.
func (s *Subnet) TagList() *[]Tag { return &s.Tags }
