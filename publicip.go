package omi

import "strings"

// KindPublicIp is the kind of stored public IPs, named as the OUTSCALE tag
// vocabulary names them.
const KindPublicIp Kind = "public-ip"

// Id prefixes of public IPs and of their links to VMs.
const (
	PrefixPublicIp     = "eipalloc"
	PrefixLinkPublicIp = "eipassoc"
)

// PublicIp is a public IP address allocated to an account, possibly linked
// to one of its VMs. The link lives on this record only: the VM record is
// not changed by LinkPublicIp. omi routes no traffic to the address.
type PublicIp struct {
	AccountId      string `json:"-"`
	LinkPublicIpId string `json:"LinkPublicIpId,omitempty"`
	NicAccountId   string `json:"NicAccountId,omitempty"`
	NicId          string `json:"NicId,omitempty"`
	PrivateIp      string `json:"PrivateIp,omitempty"`
	PublicIp       string `json:"PublicIp"`
	PublicIpId     string `json:"PublicIpId"`
	Tags           []Tag  `json:"Tags"`
	VmId           string `json:"VmId,omitempty"`
}

func (p *PublicIp) Kind() Kind         { return KindPublicIp }
func (p *PublicIp) ResourceID() string { return p.PublicIpId }
func (p *PublicIp) Owner() string      { return p.AccountId }

// IndexName is the address, so that the store finds an IP by address and
// allocation can check that no account holds it already.
func (p *PublicIp) IndexName() string            { return p.PublicIp }
func (p *PublicIp) Visibility() (bool, []string) { return false, nil }

// SetOwner restores the owner, which the API's PublicIp object does not
// carry.
func (p *PublicIp) SetOwner(id string) { p.AccountId = id }

// TagList implements Tagged.
func (p *PublicIp) TagList() *[]Tag { return &p.Tags }

// Normalize replaces a nil tag list by an empty one.
func (p *PublicIp) Normalize() {
	if p.Tags == nil {
		p.Tags = []Tag{}
	}
}

// ShownNic is the NIC the API reports for the link: the linked NIC, or,
// for a VM of the public Cloud (which has no NIC of its own in omi), the
// one the real cloud reports for it: its public IP links carry a NicId
// and NicAccountId too (terraform-provider-outscale's recorded TF-116),
// derived here from the VM id so that it is stable.
func (p *PublicIp) ShownNic() (nicID, account string) {
	if p.NicId != "" || p.VmId == "" {
		return p.NicId, p.NicAccountId
	}
	_, hex, _ := strings.Cut(p.VmId, "-")
	return PrefixNic + "-" + hex, p.AccountId
}

// Unlink clears the link of the address to a VM.
func (p *PublicIp) Unlink() {
	p.LinkPublicIpId, p.VmId, p.PrivateIp, p.NicId, p.NicAccountId = "", "", "", "", ""
}
