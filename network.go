package omi

// Kinds of the network resources, named as the OUTSCALE tag vocabulary
// names them.
const (
	KindNet    Kind = "vpc"
	KindSubnet Kind = "subnet"
	KindNic    Kind = "network-interface"
)

// Id prefixes of the network resources.
const (
	PrefixNet         = "vpc"
	PrefixSubnet      = "subnet"
	PrefixDhcpOptions = "dopt"
	PrefixNic         = "eni"
	PrefixLinkNic     = "eni-attach"
)

// States of Nets and Subnets: omi creates them available at once, as no
// packet ever flows through them.
const NetAvailable = "available"

// States of a NIC and of its link to a VM.
const (
	NicAvailable    = "available"
	NicInUse        = "in-use"
	LinkNicAttached = "attached"
)

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
// AvailableIpsCount is derived when read, from the NICs of the subnet.
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

func (s *Subnet) Kind() Kind         { return KindSubnet }
func (s *Subnet) ResourceID() string { return s.SubnetId }
func (s *Subnet) Owner() string      { return s.AccountId }

// IndexName is the Net, so that the subnets of a Net are found without a
// scan of the account's others.
func (s *Subnet) IndexName() string            { return s.NetId }
func (s *Subnet) Visibility() (bool, []string) { return false, nil }

// SetOwner restores the owner, which the API's Subnet object does not carry.
func (s *Subnet) SetOwner(id string) { s.AccountId = id }

// TagList implements Tagged.
func (s *Subnet) TagList() *[]Tag { return &s.Tags }

// Nic is a network interface card of a Net (the API's Nic object). A NIC
// holds one primary private IP of its subnet and any number of secondary
// ones, belongs to security groups of its Net, and is linked to at most
// one VM.
type Nic struct {
	AccountId           string          `json:"AccountId"`
	Description         string          `json:"Description"`
	IsSourceDestChecked bool            `json:"IsSourceDestChecked"`
	LinkNic             *LinkNic        `json:"LinkNic,omitempty"`
	LinkPublicIp        *LinkPublicIp   `json:"LinkPublicIp,omitempty"`
	MacAddress          string          `json:"MacAddress"`
	NetId               string          `json:"NetId"`
	NicId               string          `json:"NicId"`
	PrivateDnsName      string          `json:"PrivateDnsName"`
	PrivateIps          []NicPrivateIp  `json:"PrivateIps"`
	SecurityGroups      []SecurityGroup `json:"SecurityGroups"`
	State               string          `json:"State"`
	SubnetId            string          `json:"SubnetId"`
	SubregionName       string          `json:"SubregionName"`
	Tags                []Tag           `json:"Tags"`
	// MappedPublicIp is the address a subnet with MapPublicIpOnLaunch
	// gave the NIC its VM was created with: shown as the public IP of
	// its primary private IP while no public IP of the account is linked
	// there, gone with the NIC, and not an account's public IP
	// (ReadPublicIps does not list it). Kept off the wire (ForWire).
	MappedPublicIp string `json:"MappedPublicIp,omitempty"`
}

// LinkNic is the link of a NIC to a VM.
type LinkNic struct {
	DeleteOnVmDeletion bool   `json:"DeleteOnVmDeletion"`
	DeviceNumber       int    `json:"DeviceNumber"`
	LinkNicId          string `json:"LinkNicId"`
	State              string `json:"State"`
	VmAccountId        string `json:"VmAccountId"`
	VmId               string `json:"VmId"`
	// LinkDate is when the link was made: stored for ReadVms'
	// NicLinkNicLinkNicDates filter, not part of the API's LinkNic (see
	// Nic.ForWire).
	LinkDate string `json:"LinkDate,omitempty"`
}

// LinkPublicIp is the public IP linked to a NIC or to one of its private
// IPs.
type LinkPublicIp struct {
	LinkPublicIpId    string `json:"LinkPublicIpId,omitempty"`
	PublicDnsName     string `json:"PublicDnsName"`
	PublicIp          string `json:"PublicIp"`
	PublicIpAccountId string `json:"PublicIpAccountId"`
	PublicIpId        string `json:"PublicIpId,omitempty"`
}

// NicPrivateIp is one private IP of a NIC.
type NicPrivateIp struct {
	IsPrimary      bool          `json:"IsPrimary"`
	LinkPublicIp   *LinkPublicIp `json:"LinkPublicIp,omitempty"`
	PrivateDnsName string        `json:"PrivateDnsName"`
	PrivateIp      string        `json:"PrivateIp"`
}

func (n *Nic) Kind() Kind         { return KindNic }
func (n *Nic) ResourceID() string { return n.NicId }
func (n *Nic) Owner() string      { return n.AccountId }

// IndexName is the Net, so that the NICs of a Net (and through them the
// addresses taken in its subnets and the NICs of its VMs) are found
// without a scan of the account's others.
func (n *Nic) IndexName() string            { return n.NetId }
func (n *Nic) Visibility() (bool, []string) { return false, nil }

// TagList implements Tagged.
func (n *Nic) TagList() *[]Tag { return &n.Tags }

// PrimaryIp returns the primary private IP of the NIC.
func (n *Nic) PrimaryIp() *NicPrivateIp {
	for i := range n.PrivateIps {
		if n.PrivateIps[i].IsPrimary {
			return &n.PrivateIps[i]
		}
	}
	return nil
}

// ForWire returns the NIC as the API shows it: a copy without what omi
// stores for itself (the link date) and with arrays for nil slices.
func (n *Nic) ForWire() *Nic {
	c := *n
	c.MappedPublicIp = ""
	if c.LinkNic != nil {
		l := *c.LinkNic
		l.LinkDate = ""
		c.LinkNic = &l
	}
	c.Normalize()
	return &c
}

// Normalize replaces nil slices by empty ones, as clients expect arrays.
func (n *Nic) Normalize() {
	if n.PrivateIps == nil {
		n.PrivateIps = []NicPrivateIp{}
	}
	if n.SecurityGroups == nil {
		n.SecurityGroups = []SecurityGroup{}
	}
	if n.Tags == nil {
		n.Tags = []Tag{}
	}
}
