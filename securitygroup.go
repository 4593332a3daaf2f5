package omi

import "strings"

// KindSecurityGroup is the kind of stored security groups, named as the
// OUTSCALE tag vocabulary names them.
const KindSecurityGroup Kind = "security-group"

// PrefixSecurityGroup starts security group ids (sg-xxxxxxxx).
const PrefixSecurityGroup = "sg"

// Security group facts of the API.
const (
	// DefaultSecurityGroupName names the group every account has in the
	// public Cloud and in each of its Nets.
	DefaultSecurityGroupName = "default"
	MaxSecurityGroupName     = 255
	MaxSecurityGroupDesc     = 255
	// FlowInbound and FlowOutbound are the rule directions; outbound
	// rules exist only for groups in a Net.
	FlowInbound  = "Inbound"
	FlowOutbound = "Outbound"
	// ProtocolAll is the IpProtocol of a rule that covers every protocol.
	ProtocolAll = "-1"
)

// SecGroup is a security group: the API's SecurityGroup object (the name
// SecurityGroup is taken by the short reference a Vm carries). omi keeps
// groups and their rules as metadata; it filters no traffic.
type SecGroup struct {
	AccountId         string              `json:"AccountId"`
	Description       string              `json:"Description"`
	InboundRules      []SecurityGroupRule `json:"InboundRules"`
	NetId             string              `json:"NetId,omitempty"`
	OutboundRules     []SecurityGroupRule `json:"OutboundRules"`
	SecurityGroupId   string              `json:"SecurityGroupId"`
	SecurityGroupName string              `json:"SecurityGroupName"`
	Tags              []Tag               `json:"Tags"`
}

// SecurityGroupRule is one rule: traffic of a protocol and port range
// allowed from (or, outbound, to) IP ranges and other security groups.
// Ports are -1 when the protocol has none.
type SecurityGroupRule struct {
	FromPortRange         int                    `json:"FromPortRange"`
	IpProtocol            string                 `json:"IpProtocol"`
	IpRanges              []string               `json:"IpRanges,omitempty"`
	SecurityGroupsMembers []SecurityGroupsMember `json:"SecurityGroupsMembers,omitempty"`
	ToPortRange           int                    `json:"ToPortRange"`
}

// SecurityGroupsMember is a security group named as the source or the
// destination of a rule.
type SecurityGroupsMember struct {
	AccountId         string `json:"AccountId"`
	SecurityGroupId   string `json:"SecurityGroupId"`
	SecurityGroupName string `json:"SecurityGroupName,omitempty"`
}

func (g *SecGroup) Kind() Kind                   { return KindSecurityGroup }
func (g *SecGroup) ResourceID() string           { return g.SecurityGroupId }
func (g *SecGroup) Owner() string                { return g.AccountId }
func (g *SecGroup) IndexName() string            { return g.SecurityGroupName }
func (g *SecGroup) Visibility() (bool, []string) { return false, nil }

// TagList implements Tagged.
func (g *SecGroup) TagList() *[]Tag { return &g.Tags }

// Normalize replaces nil slices by empty ones, as clients expect arrays.
func (g *SecGroup) Normalize() {
	if g.InboundRules == nil {
		g.InboundRules = []SecurityGroupRule{}
	}
	if g.OutboundRules == nil {
		g.OutboundRules = []SecurityGroupRule{}
	}
	if g.Tags == nil {
		g.Tags = []Tag{}
	}
}

// Rules returns the rules of a flow (Inbound or Outbound).
func (g *SecGroup) Rules(flow string) *[]SecurityGroupRule {
	if flow == FlowOutbound {
		return &g.OutboundRules
	}
	return &g.InboundRules
}

// IsDefault reports whether g is a default group, which cannot be deleted.
func (g *SecGroup) IsDefault() bool { return g.SecurityGroupName == DefaultSecurityGroupName }

// sgNameChars are the characters the API allows in security group names
// besides letters and digits; descriptions also allow accented letters.
const sgNameChars = " _.-:/()#,@[]+=&;{}!$*"

// ValidSecurityGroupName checks the SecurityGroupName rule: 1 to 255
// characters among letters, digits, spaces and _.-:/()#,@[]+=&;{}!$*, not
// starting with sg-.
func ValidSecurityGroupName(name string) bool {
	if name == "" || len(name) > MaxSecurityGroupName || strings.HasPrefix(name, PrefixSecurityGroup+"-") {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(sgNameChars, c) >= 0) {
			return false
		}
	}
	return true
}

// ValidSecurityGroupDescription checks the Description rule: 1 to 255
// characters among letters (accented ones included), digits, spaces and
// _.-:/()#,@[]+=&;{}!$*.
func ValidSecurityGroupDescription(d string) bool {
	if d == "" || len(d) > MaxSecurityGroupDesc {
		return false
	}
	for _, r := range d {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r < 0x80 && strings.ContainsRune(sgNameChars, r):
		case r >= 0xC0 && r <= 0x24F && r != 0xD7 && r != 0xF7: // Latin-1 and Latin Extended letters
		default:
			return false
		}
	}
	return true
}
