package service

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/omiproject/omi"
)

// Error codes of the security group calls (2019 gateway error catalogue).
const (
	codeInvalidEndPort      = "4021" // invalid-end-port
	codeInvalidIPAddress    = "4030" // invalid-ip-address (IpRange)
	codeInvalidPortSpec     = "4051" // invalid-port-specification
	codeInvalidProtocol     = "4053" // invalid-protocol
	codeInvalidStartPort    = "4064" // invalid-start-port
	codeNetworkMismatch     = "4086" // network-mismatch: group of another Net
	codeNoSuchAuthorization = "5008" // no-such-authorization: the rule to delete
	codeNoSuchGroup         = "5020" // no-such-group
	codeNoSuchVpc           = "5065" // no-such-vpc
	codeBusy                = "9002" // busy: group still used
	// codeGroupInUse is the real API's code for a group still on a VM or
	// a NIC: terraform-provider-outscale deletes a group, and on 9085
	// (only) removes it from its VMs and NICs and deletes it again
	// (resource_security_group.go, Delete).
	codeGroupInUse     = "9085"
	codeDuplicateGroup = "9008" // duplicate-group: name taken in the scope
	codeReservedGroup  = "9051" // reserved-group: default groups stay
	codeTooManyRules   = "10017"
	codeTooManyGroups  = "10038"
)

// Security group limits: the API documents 500 groups in the public Cloud
// and 500 per Net; MaxRuleEntries bounds the IP ranges plus member groups
// of one flow of one group.
const (
	MaxSecurityGroups = 500
	MaxRuleEntries    = 100
)

// defaultGroupDescription is the description of the default groups.
const defaultGroupDescription = "default group"

func groupNotFound(what string) error {
	return omi.NotFound(codeNoSuchGroup, "The security group '%s' doesn't exist.", what)
}

// allTraffic is the rule that allows every protocol to and from anywhere:
// the outbound rule of a new group in a Net.
func allTraffic() omi.SecurityGroupRule {
	return omi.SecurityGroupRule{IpProtocol: omi.ProtocolAll, FromPortRange: -1, ToPortRange: -1, IpRanges: []string{"0.0.0.0/0"}}
}

// newDefaultGroup builds the default group of an account in the public
// Cloud (netID "") or in a Net: its inbound rule lets the group's members
// reach each other, as the API documents.
func newDefaultGroup(me, netID string) *omi.SecGroup {
	g := &omi.SecGroup{AccountId: me, SecurityGroupName: omi.DefaultSecurityGroupName,
		Description: defaultGroupDescription, NetId: netID, Tags: []omi.Tag{}}
	g.InboundRules = []omi.SecurityGroupRule{{IpProtocol: omi.ProtocolAll, FromPortRange: -1, ToPortRange: -1,
		SecurityGroupsMembers: []omi.SecurityGroupsMember{{AccountId: me, SecurityGroupName: omi.DefaultSecurityGroupName}}}}
	if netID != "" {
		g.OutboundRules = []omi.SecurityGroupRule{allTraffic()}
	}
	setDefaultID(g, omi.NewID(omi.PrefixSecurityGroup))
	return g
}

func setDefaultID(g *omi.SecGroup, id string) {
	g.SecurityGroupId = id
	g.InboundRules[0].SecurityGroupsMembers[0].SecurityGroupId = id
}

// missingDefaults lists the scopes whose default group the account lacks:
// the public Cloud (""), as a Net gets its own default group at CreateNet.
func missingDefaults(tx omi.Tx, me string) ([]string, error) {
	want := []string{""}
	err := omi.Scan(tx, omi.Query{Owners: []string{me}, Names: []string{omi.DefaultSecurityGroupName}}, func(g *omi.SecGroup) (bool, error) {
		want = slices.DeleteFunc(want, func(n string) bool { return n == g.NetId })
		return true, nil
	})
	return want, err
}

// ensureDefaultsTx creates the account's default groups inside a write
// transaction if they do not exist yet. Creating them on first use rather
// than with the account keeps accounts provisioned before this code
// existed working the same way.
func ensureDefaultsTx(tx omi.Tx, me string) error {
	missing, err := missingDefaults(tx, me)
	if err != nil {
		return err
	}
	for _, netID := range missing {
		g := newDefaultGroup(me, netID)
		if err := insertNew(tx, g, func() { setDefaultID(g, omi.NewID(omi.PrefixSecurityGroup)) }); err != nil {
			return err
		}
	}
	return nil
}

// ensureDefaults makes sure the caller's default groups exist before a read.
// The check is a read; only the first call of an account writes. Store
// updates are serialisable, so two first calls create one set of groups.
func (s *Service) ensureDefaults(ctx context.Context, c *omi.Caller) error {
	var missing []string
	if err := s.view(ctx, func(tx omi.Tx) error {
		var err error
		missing, err = missingDefaults(tx, c.AccountID())
		return err
	}); err != nil || len(missing) == 0 {
		return err
	}
	return wrapStoreErr(s.store.Update(ctx, func(tx omi.Tx) error { return ensureDefaultsTx(tx, c.AccountID()) }))
}

// ownGroup loads a security group of the caller by id; other accounts'
// groups are reported exactly like missing ones.
func ownGroup(tx omi.Tx, c *omi.Caller, id string) (*omi.SecGroup, error) {
	g, err := omi.Get[omi.SecGroup](tx, id)
	if isNotFound(err) || (err == nil && g.AccountId != c.AccountID()) {
		return nil, groupNotFound(id)
	}
	return g, err
}

// groupsNamed lists the caller's groups of that name, public Cloud first.
func groupsNamed(tx omi.Tx, me, name string) ([]*omi.SecGroup, error) {
	var out []*omi.SecGroup
	err := omi.Scan(tx, omi.Query{Owners: []string{me}, Names: []string{name}}, func(g *omi.SecGroup) (bool, error) {
		if g.SecurityGroupName == name {
			out = append(out, g)
		}
		return true, nil
	})
	slices.SortStableFunc(out, func(a, b *omi.SecGroup) int { return strings.Compare(a.NetId, b.NetId) })
	return out, err
}

// groupInScope finds the caller's group of that name in the public Cloud
// (netID "") or in a Net, or nil: names are unique per scope.
func groupInScope(tx omi.Tx, me, name, netID string) (*omi.SecGroup, error) {
	gs, err := groupsNamed(tx, me, name)
	for _, g := range gs {
		if g.NetId == netID {
			return g, err
		}
	}
	return nil, err
}

type CreateSecurityGroupRequest struct {
	Base
	Description       string `json:"Description"`
	NetId             string `json:"NetId"`
	SecurityGroupName string `json:"SecurityGroupName"`
}
type CreateSecurityGroupResponse struct {
	SecurityGroup *omi.SecGroup `json:"SecurityGroup"`
}

// CreateSecurityGroup creates a group in the public Cloud or, with NetId,
// in the caller's Net. A group in a Net starts with an outbound rule that
// allows all traffic; every group starts without inbound rules.
func (s *Service) CreateSecurityGroup(ctx context.Context, c *omi.Caller, in *CreateSecurityGroupRequest) (*CreateSecurityGroupResponse, error) {
	if in.SecurityGroupName == "" || in.Description == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "SecurityGroupName and Description are required")
	}
	if !omi.ValidSecurityGroupName(in.SecurityGroupName) {
		return nil, omi.Invalid(omi.CodeInvalidValue, "SecurityGroupName must be 1 to %d characters among letters, digits, spaces and _.-:/()#,@[]+=&;{}!$*, and must not start with sg-", omi.MaxSecurityGroupName)
	}
	if !omi.ValidSecurityGroupDescription(in.Description) {
		return nil, omi.Invalid(omi.CodeInvalidValue, "Description must be 1 to %d characters among letters, digits, spaces and _.-:/()#,@[]+=&;{}!$*", omi.MaxSecurityGroupDesc)
	}
	me := c.AccountID()
	g := &omi.SecGroup{AccountId: me, SecurityGroupId: omi.NewID(omi.PrefixSecurityGroup), SecurityGroupName: in.SecurityGroupName,
		Description: in.Description, NetId: in.NetId, Tags: []omi.Tag{}}
	if in.NetId != "" {
		g.OutboundRules = []omi.SecurityGroupRule{allTraffic()}
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		if err := ensureDefaultsTx(tx, me); err != nil {
			return err
		}
		if in.NetId != "" {
			if _, err := ownNet(tx, c, in.NetId); err != nil {
				return err
			}
		}
		prev, err := groupInScope(tx, me, in.SecurityGroupName, in.NetId)
		if err != nil {
			return err
		}
		if prev != nil {
			return omi.Conflict(codeDuplicateGroup, "The security group '%s' already exists.", in.SecurityGroupName)
		}
		n := 0
		err = omi.Scan(tx, omi.Query{Owners: []string{me}}, func(o *omi.SecGroup) (bool, error) {
			if o.NetId == in.NetId {
				n++
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		if n >= MaxSecurityGroups {
			return omi.Errorf(codeTooManyGroups, omi.TypeTooManyResources, "at most %d security groups can exist in the public Cloud or in one Net", MaxSecurityGroups)
		}
		return insertNew(tx, g, func() { g.SecurityGroupId = omi.NewID(omi.PrefixSecurityGroup) })
	})
	if err != nil {
		return nil, err
	}
	g.Normalize()
	return &CreateSecurityGroupResponse{SecurityGroup: g}, nil
}

type FiltersSecurityGroup struct {
	tagFilter
	Descriptions                   []string `json:"Descriptions"`
	InboundRuleAccountIds          []string `json:"InboundRuleAccountIds"`
	InboundRuleFromPortRanges      []int    `json:"InboundRuleFromPortRanges"`
	InboundRuleIpRanges            []string `json:"InboundRuleIpRanges"`
	InboundRuleProtocols           []string `json:"InboundRuleProtocols"`
	InboundRuleSecurityGroupIds    []string `json:"InboundRuleSecurityGroupIds"`
	InboundRuleSecurityGroupNames  []string `json:"InboundRuleSecurityGroupNames"`
	InboundRuleToPortRanges        []int    `json:"InboundRuleToPortRanges"`
	NetIds                         []string `json:"NetIds"`
	OutboundRuleAccountIds         []string `json:"OutboundRuleAccountIds"`
	OutboundRuleFromPortRanges     []int    `json:"OutboundRuleFromPortRanges"`
	OutboundRuleIpRanges           []string `json:"OutboundRuleIpRanges"`
	OutboundRuleProtocols          []string `json:"OutboundRuleProtocols"`
	OutboundRuleSecurityGroupIds   []string `json:"OutboundRuleSecurityGroupIds"`
	OutboundRuleSecurityGroupNames []string `json:"OutboundRuleSecurityGroupNames"`
	OutboundRuleToPortRanges       []int    `json:"OutboundRuleToPortRanges"`
	SecurityGroupIds               []string `json:"SecurityGroupIds"`
	SecurityGroupNames             []string `json:"SecurityGroupNames"`
}

// ruleFilter is the rule part of FiltersSecurityGroup for one flow.
type ruleFilter struct {
	accountIDs, ipRanges, protocols, groupIDs, groupNames []string
	from, to                                              []int
}

func (f ruleFilter) empty() bool {
	return len(f.accountIDs)+len(f.ipRanges)+len(f.protocols)+len(f.groupIDs)+len(f.groupNames)+len(f.from)+len(f.to) == 0
}

// match reports whether one rule of g satisfies every rule filter given.
// The account, group id and group name filters match the rule's members
// (as the spec describes them) and also the group that holds the rule:
// the real cloud answers so (terraform-provider-outscale's recorded
// TF-125 finds a group by InboundRuleSecurityGroupIds and Names naming the
// group itself, whose rule grants another group; TF-129 by
// InboundRuleAccountIds on a rule with only an IP range).
func (f ruleFilter) match(g *omi.SecGroup, rules []omi.SecurityGroupRule) bool {
	if f.empty() {
		return true
	}
	return slices.ContainsFunc(rules, func(r omi.SecurityGroupRule) bool {
		accts, ids, names := []string{g.AccountId}, []string{g.SecurityGroupId}, []string{g.SecurityGroupName}
		for _, m := range r.SecurityGroupsMembers {
			accts, ids, names = append(accts, m.AccountId), append(ids, m.SecurityGroupId), append(names, m.SecurityGroupName)
		}
		return anyOf(f.from, r.FromPortRange) && anyOf(f.to, r.ToPortRange) && anyOf(f.protocols, r.IpProtocol) &&
			intersects(f.ipRanges, r.IpRanges) && intersects(f.accountIDs, accts) && intersects(f.groupIDs, ids) &&
			intersects(f.groupNames, names)
	})
}

func (f *FiltersSecurityGroup) match(g *omi.SecGroup) bool {
	in := ruleFilter{f.InboundRuleAccountIds, f.InboundRuleIpRanges, f.InboundRuleProtocols, f.InboundRuleSecurityGroupIds,
		f.InboundRuleSecurityGroupNames, f.InboundRuleFromPortRanges, f.InboundRuleToPortRanges}
	out := ruleFilter{f.OutboundRuleAccountIds, f.OutboundRuleIpRanges, f.OutboundRuleProtocols, f.OutboundRuleSecurityGroupIds,
		f.OutboundRuleSecurityGroupNames, f.OutboundRuleFromPortRanges, f.OutboundRuleToPortRanges}
	return anyOf(f.Descriptions, g.Description) && anyOf(f.NetIds, g.NetId) && anyOf(f.SecurityGroupNames, g.SecurityGroupName) &&
		f.tagFilter.match(g.Tags) && in.match(g, g.InboundRules) && out.match(g, g.OutboundRules)
}

type ReadSecurityGroupsRequest struct {
	Base
	Paging
	Filters *FiltersSecurityGroup `json:"Filters"`
}
type ReadSecurityGroupsResponse struct {
	SecurityGroups []*omi.SecGroup `json:"SecurityGroups"`
	NextPageToken  string          `json:"NextPageToken,omitempty"`
}

// ReadSecurityGroups lists the caller's security groups, default groups
// included (they are created on the first call that needs them).
func (s *Service) ReadSecurityGroups(ctx context.Context, c *omi.Caller, in *ReadSecurityGroupsRequest) (*ReadSecurityGroupsResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersSecurityGroup{}
	}
	if _, err := resultsPerPage(in.ResultsPerPage); err != nil {
		return nil, err
	}
	if omi.IsDryRun(ctx) {
		return &ReadSecurityGroupsResponse{SecurityGroups: []*omi.SecGroup{}}, nil
	}
	if err := s.ensureDefaults(ctx, c); err != nil {
		return nil, err
	}
	var out []*omi.SecGroup
	var next string
	err := s.view(ctx, func(tx omi.Tx) error {
		var err error
		q := omi.Query{Owners: []string{c.AccountID()}, IDs: f.SecurityGroupIds, Names: f.SecurityGroupNames}
		out, next, err = listPage[omi.SecGroup](tx, q, in.Paging, omi.PrefixSecurityGroup, f.match)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, g := range out {
		g.Normalize()
	}
	return &ReadSecurityGroupsResponse{SecurityGroups: out, NextPageToken: next}, nil
}

type DeleteSecurityGroupRequest struct {
	Base
	SecurityGroupId   string `json:"SecurityGroupId"`
	SecurityGroupName string `json:"SecurityGroupName"`
}
type DeleteSecurityGroupResponse struct{}

// DeleteSecurityGroup deletes a group given by id or by name (a name finds
// the public Cloud group first). Default groups cannot be deleted, nor a
// group that a VM uses or that another group's rules name.
func (s *Service) DeleteSecurityGroup(ctx context.Context, c *omi.Caller, in *DeleteSecurityGroupRequest) (*DeleteSecurityGroupResponse, error) {
	if in.SecurityGroupId == "" && in.SecurityGroupName == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "SecurityGroupId or SecurityGroupName is required")
	}
	me := c.AccountID()
	err := s.update(ctx, func(tx omi.Tx) error {
		if err := ensureDefaultsTx(tx, me); err != nil {
			return err
		}
		var g *omi.SecGroup
		if in.SecurityGroupId != "" {
			var err error
			if g, err = ownGroup(tx, c, in.SecurityGroupId); err != nil {
				return err
			}
			if in.SecurityGroupName != "" && g.SecurityGroupName != in.SecurityGroupName {
				return groupNotFound(in.SecurityGroupName)
			}
		} else {
			gs, err := groupsNamed(tx, me, in.SecurityGroupName)
			if err != nil {
				return err
			}
			if len(gs) == 0 {
				return groupNotFound(in.SecurityGroupName)
			}
			g = gs[0]
		}
		if g.IsDefault() {
			return omi.Conflict(codeReservedGroup, "The default security group %s cannot be deleted.", g.SecurityGroupId)
		}
		if err := groupUnused(tx, me, g.SecurityGroupId); err != nil {
			return err
		}
		return retire(tx, omi.KindSecurityGroup, g.SecurityGroupId)
	})
	if err != nil {
		return nil, err
	}
	return &DeleteSecurityGroupResponse{}, nil
}

// groupUnused fails if a live VM or a NIC of the account is in the group,
// or a rule of another of its groups names it.
func groupUnused(tx omi.Tx, me, id string) error {
	var nicID string
	err := omi.Scan(tx, omi.Query{Owners: []string{me}}, func(n *omi.Nic) (bool, error) {
		if slices.ContainsFunc(n.SecurityGroups, func(sg omi.SecurityGroup) bool { return sg.SecurityGroupId == id }) {
			nicID = n.NicId
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if nicID != "" {
		return omi.Conflict(codeGroupInUse, "The security group %s is used by the NIC %s.", id, nicID)
	}
	var vmID string
	err = omi.Scan(tx, omi.Query{Owners: []string{me}}, func(vm *omi.Vm) (bool, error) {
		if vm.State != omi.VmTerminated && slices.ContainsFunc(vm.SecurityGroups, func(sg omi.SecurityGroup) bool { return sg.SecurityGroupId == id }) {
			vmID = vm.VmId
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if vmID != "" {
		return omi.Conflict(codeGroupInUse, "The security group %s is used by VM %s.", id, vmID)
	}
	if err := groupUsedByLoadBalancer(tx, me, id); err != nil {
		return err
	}
	var refBy string
	err = omi.Scan(tx, omi.Query{Owners: []string{me}}, func(g *omi.SecGroup) (bool, error) {
		if g.SecurityGroupId == id {
			return true, nil
		}
		for _, r := range append(slices.Clone(g.InboundRules), g.OutboundRules...) {
			if slices.ContainsFunc(r.SecurityGroupsMembers, func(m omi.SecurityGroupsMember) bool { return m.SecurityGroupId == id }) {
				refBy = g.SecurityGroupId
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if refBy != "" {
		return omi.Conflict(codeBusy, "The security group %s is named in the rules of security group %s.", id, refBy)
	}
	return nil
}

// RuleRequest is a rule of the Rules parameter of CreateSecurityGroupRule
// and DeleteSecurityGroupRule. Ports are pointers so that an absent port
// differs from port 0.
type RuleRequest struct {
	FromPortRange         *int            `json:"FromPortRange"`
	IpProtocol            string          `json:"IpProtocol"`
	IpRanges              []string        `json:"IpRanges"`
	SecurityGroupsMembers []MemberRequest `json:"SecurityGroupsMembers"`
	ServiceIds            []string        `json:"ServiceIds"`
	ToPortRange           *int            `json:"ToPortRange"`
}

// MemberRequest names a source or destination group of a rule.
type MemberRequest struct {
	AccountId         string `json:"AccountId"`
	SecurityGroupId   string `json:"SecurityGroupId"`
	SecurityGroupName string `json:"SecurityGroupName"`
}

type CreateSecurityGroupRuleRequest struct {
	Base
	Flow                         string        `json:"Flow"`
	FromPortRange                *int          `json:"FromPortRange"`
	IpProtocol                   string        `json:"IpProtocol"`
	IpRange                      string        `json:"IpRange"`
	Rules                        []RuleRequest `json:"Rules"`
	SecurityGroupAccountIdToLink string        `json:"SecurityGroupAccountIdToLink"`
	SecurityGroupId              string        `json:"SecurityGroupId"`
	SecurityGroupNameToLink      string        `json:"SecurityGroupNameToLink"`
	ToPortRange                  *int          `json:"ToPortRange"`
}
type CreateSecurityGroupRuleResponse struct {
	SecurityGroup *omi.SecGroup `json:"SecurityGroup"`
}

// CreateSecurityGroupRule adds rules to a group: either one rule given by
// IpProtocol, ports, IpRange and/or a group to link, or several in Rules.
// Rules of the same protocol and ports merge, as on the real API; adding
// an IP range or group that a rule already has is a conflict.
func (s *Service) CreateSecurityGroupRule(ctx context.Context, c *omi.Caller, in *CreateSecurityGroupRuleRequest) (*CreateSecurityGroupRuleResponse, error) {
	rules, err := foldRules(in.Flow, in.SecurityGroupId, in.Rules, in.IpProtocol, in.FromPortRange, in.ToPortRange, in.IpRange,
		in.SecurityGroupAccountIdToLink, in.SecurityGroupNameToLink, true)
	if err != nil {
		return nil, err
	}
	var g *omi.SecGroup
	err = s.update(ctx, func(tx omi.Tx) error {
		if g, err = s.ruleTarget(tx, c, in.SecurityGroupId, in.Flow); err != nil {
			return err
		}
		for _, rr := range rules {
			r, err := resolveRule(tx, c, g, rr, true)
			if err != nil {
				return err
			}
			if err := addRule(g.Rules(in.Flow), r); err != nil {
				return err
			}
		}
		if n := ruleEntries(*g.Rules(in.Flow)); n > MaxRuleEntries {
			return omi.Errorf(codeTooManyRules, omi.TypeTooManyResources, "a security group can hold at most %d %s IP ranges and groups, not %d", MaxRuleEntries, strings.ToLower(in.Flow), n)
		}
		return omi.Put(tx, g)
	})
	if err != nil {
		return nil, err
	}
	s.applyForwards(ctx) // the ports running VMs of the group forward
	g.Normalize()
	return &CreateSecurityGroupRuleResponse{SecurityGroup: g}, nil
}

type DeleteSecurityGroupRuleRequest struct {
	Base
	Flow                           string        `json:"Flow"`
	FromPortRange                  *int          `json:"FromPortRange"`
	IpProtocol                     string        `json:"IpProtocol"`
	IpRange                        string        `json:"IpRange"`
	Rules                          []RuleRequest `json:"Rules"`
	SecurityGroupAccountIdToUnlink string        `json:"SecurityGroupAccountIdToUnlink"`
	SecurityGroupId                string        `json:"SecurityGroupId"`
	SecurityGroupNameToUnlink      string        `json:"SecurityGroupNameToUnlink"`
	ToPortRange                    *int          `json:"ToPortRange"`
}
type DeleteSecurityGroupRuleResponse struct {
	SecurityGroup *omi.SecGroup `json:"SecurityGroup"`
}

// DeleteSecurityGroupRule removes IP ranges and groups from the rules of a
// group; a rule left with neither disappears. A Rules entry without IP
// ranges or groups removes the whole rule of that protocol and ports.
// Removing something the group does not have fails and changes nothing.
func (s *Service) DeleteSecurityGroupRule(ctx context.Context, c *omi.Caller, in *DeleteSecurityGroupRuleRequest) (*DeleteSecurityGroupRuleResponse, error) {
	rules, err := foldRules(in.Flow, in.SecurityGroupId, in.Rules, in.IpProtocol, in.FromPortRange, in.ToPortRange, in.IpRange,
		in.SecurityGroupAccountIdToUnlink, in.SecurityGroupNameToUnlink, false)
	if err != nil {
		return nil, err
	}
	var g *omi.SecGroup
	err = s.update(ctx, func(tx omi.Tx) error {
		if g, err = s.ruleTarget(tx, c, in.SecurityGroupId, in.Flow); err != nil {
			return err
		}
		for _, rr := range rules {
			r, err := resolveRule(tx, c, g, rr, false)
			if err != nil {
				return err
			}
			if err := removeRule(g.Rules(in.Flow), r); err != nil {
				return err
			}
		}
		return omi.Put(tx, g)
	})
	if err != nil {
		return nil, err
	}
	s.applyForwards(ctx)
	g.Normalize()
	return &DeleteSecurityGroupRuleResponse{SecurityGroup: g}, nil
}

// foldRules checks the parameters shared by the two rule calls and returns
// the rules they describe: Rules, or the one rule of the flat parameters.
func foldRules(flow, groupID string, rules []RuleRequest, proto string, from, to *int, ipRange, linkAccount, linkName string, creating bool) ([]RuleRequest, error) {
	if groupID == "" || flow == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "SecurityGroupId and Flow are required")
	}
	if flow != omi.FlowInbound && flow != omi.FlowOutbound {
		return nil, omi.Invalid(omi.CodeInvalidValue, "Flow must be Inbound or Outbound, not %q", flow)
	}
	flat := proto != "" || from != nil || to != nil || ipRange != "" || linkAccount != "" || linkName != ""
	if len(rules) > 0 {
		if flat {
			return nil, omi.Invalid(omi.CodeInvalidParamSet, "Rules cannot be combined with IpProtocol, FromPortRange, ToPortRange, IpRange or a security group to link")
		}
		if len(rules) > MaxRuleEntries {
			return nil, omi.Invalid(omi.CodeInvalidValue, "at most %d Rules per call", MaxRuleEntries)
		}
		return rules, nil
	}
	if ipRange == "" && linkName == "" {
		if creating {
			return nil, omi.Invalid(omi.CodeInvalidParameter, "give IpRange, SecurityGroupNameToLink or Rules")
		}
		return nil, omi.Invalid(omi.CodeInvalidParameter, "give IpRange, SecurityGroupNameToUnlink or Rules")
	}
	if linkAccount != "" && linkName == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "a security group account id needs the name or id of the group to link")
	}
	r := RuleRequest{IpProtocol: proto, FromPortRange: from, ToPortRange: to}
	if ipRange != "" {
		r.IpRanges = []string{ipRange}
	}
	if linkName != "" {
		r.SecurityGroupsMembers = []MemberRequest{{AccountId: linkAccount, SecurityGroupName: linkName}}
	}
	return []RuleRequest{r}, nil
}

// ruleTarget loads the group whose rules change and checks the flow.
func (s *Service) ruleTarget(tx omi.Tx, c *omi.Caller, id, flow string) (*omi.SecGroup, error) {
	// Rules may name the default group of the scope: make sure it exists.
	if err := ensureDefaultsTx(tx, c.AccountID()); err != nil {
		return nil, err
	}
	g, err := ownGroup(tx, c, id)
	if err != nil {
		return nil, err
	}
	if flow == omi.FlowOutbound && g.NetId == "" {
		return nil, omi.Invalid(omi.CodeInvalidValue, "security group %s is in the public Cloud: outbound rules exist only for groups in a Net", id)
	}
	return g, nil
}

// resolveRule validates a requested rule against its group and resolves
// the member groups to the caller's groups.
func resolveRule(tx omi.Tx, c *omi.Caller, g *omi.SecGroup, rr RuleRequest, creating bool) (omi.SecurityGroupRule, error) {
	if len(rr.ServiceIds) > 0 {
		return omi.SecurityGroupRule{}, omi.Invalid(omi.CodeInvalidParameter, "ServiceIds (Net access points) are not supported")
	}
	proto, from, to, err := checkProtocolPorts(rr.IpProtocol, rr.FromPortRange, rr.ToPortRange, g.NetId != "")
	if err != nil {
		return omi.SecurityGroupRule{}, err
	}
	r := omi.SecurityGroupRule{IpProtocol: proto, FromPortRange: from, ToPortRange: to}
	if creating && len(rr.IpRanges) == 0 && len(rr.SecurityGroupsMembers) == 0 {
		return r, omi.Invalid(omi.CodeInvalidParameter, "each rule needs IpRanges or SecurityGroupsMembers")
	}
	for _, ip := range rr.IpRanges {
		p, err := netip.ParsePrefix(ip)
		if err != nil || !p.Addr().Is4() {
			return r, omi.Invalid(codeInvalidIPAddress, "IP range %q is not an IPv4 range in CIDR notation", ip)
		}
		if slices.Contains(r.IpRanges, ip) {
			return r, omi.Invalid(omi.CodeInvalidValue, "IP range %s is given twice", ip)
		}
		r.IpRanges = append(r.IpRanges, ip)
	}
	for _, mr := range rr.SecurityGroupsMembers {
		m, err := resolveMember(tx, c, g, mr)
		if err != nil {
			return r, err
		}
		if slices.ContainsFunc(r.SecurityGroupsMembers, func(o omi.SecurityGroupsMember) bool { return o.SecurityGroupId == m.SecurityGroupId }) {
			return r, omi.Invalid(omi.CodeInvalidValue, "security group %s is given twice", m.SecurityGroupId)
		}
		r.SecurityGroupsMembers = append(r.SecurityGroupsMembers, m)
	}
	return r, nil
}

// checkProtocolPorts validates a protocol and its ports and returns them
// as stored: protocol names in lower case (6, 17 and 1 become tcp, udp and
// icmp), ports -1 where the protocol has none. Other protocol numbers are
// accepted for groups in a Net only, as the API documents.
func checkProtocolPorts(proto string, from, to *int, inNet bool) (string, int, int, error) {
	proto = strings.ToLower(proto)
	switch proto {
	case "", "-1":
		return omi.ProtocolAll, -1, -1, nil
	case "6":
		proto = "tcp"
	case "17":
		proto = "udp"
	case "1":
		proto = "icmp"
	}
	switch proto {
	case "tcp", "udp":
		// An absent port is port 0, as the real API takes it: the SDKs
		// (osc-sdk-go v3 before rc.4, used by packer-plugin-outscale
		// 1.6.1) declare the ports `int` with omitempty, so port 0 is
		// never sent, and the plugin's temporary security group for
		// communicator "none" asks for port 0 that way. The spec marks
		// neither port as required.
		zero := 0
		if from == nil {
			from = &zero
		}
		if to == nil {
			to = &zero
		}
		if *from < 0 || *from > 65535 {
			return "", 0, 0, omi.Invalid(codeInvalidStartPort, "FromPortRange must be a port from 0 to 65535, not %d", *from)
		}
		if *to < 0 || *to > 65535 {
			return "", 0, 0, omi.Invalid(codeInvalidEndPort, "ToPortRange must be a port from 0 to 65535, not %d", *to)
		}
		if *from > *to {
			return "", 0, 0, omi.Invalid(codeInvalidPortSpec, "FromPortRange %d is after ToPortRange %d", *from, *to)
		}
		return proto, *from, *to, nil
	case "icmp":
		// FromPortRange is the ICMP type and ToPortRange the code; -1
		// means any.
		f, t := -1, -1
		if from != nil {
			f = *from
		}
		if to != nil {
			t = *to
		}
		if f < -1 || f > 255 {
			return "", 0, 0, omi.Invalid(codeInvalidStartPort, "FromPortRange (ICMP type) must be from -1 to 255, not %d", f)
		}
		if t < -1 || t > 255 {
			return "", 0, 0, omi.Invalid(codeInvalidEndPort, "ToPortRange (ICMP code) must be from -1 to 255, not %d", t)
		}
		return proto, f, t, nil
	}
	n, err := strconv.Atoi(proto)
	if err != nil || n < 0 || n > 255 {
		return "", 0, 0, omi.Invalid(codeInvalidProtocol, "IpProtocol must be tcp, udp, icmp, -1 or (in a Net) a protocol number, not %q", proto)
	}
	if !inNet {
		return "", 0, 0, omi.Invalid(codeInvalidProtocol, "protocol numbers are allowed only for security groups in a Net; use tcp, udp, icmp or -1")
	}
	return strconv.Itoa(n), -1, -1, nil
}

// resolveMember finds the group a rule names. Only the caller's own groups
// can be named: a group of another account is reported as missing, so that
// rules reveal nothing about other accounts. SecurityGroupNameToLink may
// hold a group id, as the API documents.
func resolveMember(tx omi.Tx, c *omi.Caller, g *omi.SecGroup, m MemberRequest) (omi.SecurityGroupsMember, error) {
	me := c.AccountID()
	what := m.SecurityGroupId
	if what == "" {
		what = m.SecurityGroupName
	}
	if what == "" {
		return omi.SecurityGroupsMember{}, omi.Invalid(omi.CodeInvalidParameter, "a member group needs SecurityGroupId or SecurityGroupName")
	}
	if m.AccountId != "" && m.AccountId != me {
		return omi.SecurityGroupsMember{}, groupNotFound(what)
	}
	id, name := m.SecurityGroupId, m.SecurityGroupName
	if id == "" && strings.HasPrefix(name, omi.PrefixSecurityGroup+"-") {
		id, name = name, ""
	}
	var ref *omi.SecGroup
	var err error
	if id != "" {
		if ref, err = ownGroup(tx, c, id); err != nil {
			return omi.SecurityGroupsMember{}, err
		}
		if name != "" && ref.SecurityGroupName != name {
			return omi.SecurityGroupsMember{}, groupNotFound(name)
		}
	} else {
		if ref, err = groupInScope(tx, me, name, g.NetId); err != nil {
			return omi.SecurityGroupsMember{}, err
		}
		if ref == nil {
			return omi.SecurityGroupsMember{}, groupNotFound(name)
		}
	}
	if ref.NetId != g.NetId {
		return omi.SecurityGroupsMember{}, omi.Invalid(codeNetworkMismatch, "security group %s is not in the same network as %s", ref.SecurityGroupId, g.SecurityGroupId)
	}
	return omi.SecurityGroupsMember{AccountId: me, SecurityGroupId: ref.SecurityGroupId, SecurityGroupName: ref.SecurityGroupName}, nil
}

func sameKey(a, b omi.SecurityGroupRule) bool {
	return a.IpProtocol == b.IpProtocol && a.FromPortRange == b.FromPortRange && a.ToPortRange == b.ToPortRange
}

func hasMember(r omi.SecurityGroupRule, id string) bool {
	return slices.ContainsFunc(r.SecurityGroupsMembers, func(m omi.SecurityGroupsMember) bool { return m.SecurityGroupId == id })
}

// addRule merges r into the rule of the same protocol and ports.
func addRule(rules *[]omi.SecurityGroupRule, r omi.SecurityGroupRule) error {
	i := slices.IndexFunc(*rules, func(o omi.SecurityGroupRule) bool { return sameKey(o, r) })
	if i < 0 {
		*rules = append(*rules, omi.SecurityGroupRule{IpProtocol: r.IpProtocol, FromPortRange: r.FromPortRange, ToPortRange: r.ToPortRange})
		i = len(*rules) - 1
	}
	dst := &(*rules)[i]
	for _, ip := range r.IpRanges {
		if slices.Contains(dst.IpRanges, ip) {
			return omi.Conflict(omi.CodeAlreadyExists, "the rule %s %d-%d from %s already exists", r.IpProtocol, r.FromPortRange, r.ToPortRange, ip)
		}
		dst.IpRanges = append(dst.IpRanges, ip)
	}
	for _, m := range r.SecurityGroupsMembers {
		if hasMember(*dst, m.SecurityGroupId) {
			return omi.Conflict(omi.CodeAlreadyExists, "the rule %s %d-%d from security group %s already exists", r.IpProtocol, r.FromPortRange, r.ToPortRange, m.SecurityGroupId)
		}
		dst.SecurityGroupsMembers = append(dst.SecurityGroupsMembers, m)
	}
	return nil
}

// removeRule takes r's IP ranges and groups out of the rule of the same
// protocol and ports.
func removeRule(rules *[]omi.SecurityGroupRule, r omi.SecurityGroupRule) error {
	i := slices.IndexFunc(*rules, func(o omi.SecurityGroupRule) bool { return sameKey(o, r) })
	if i < 0 {
		return omi.NotFound(codeNoSuchAuthorization, "the security group has no %s rule for ports %d-%d", r.IpProtocol, r.FromPortRange, r.ToPortRange)
	}
	dst := &(*rules)[i]
	whole := len(r.IpRanges) == 0 && len(r.SecurityGroupsMembers) == 0
	for _, ip := range r.IpRanges {
		j := slices.Index(dst.IpRanges, ip)
		if j < 0 {
			return omi.NotFound(codeNoSuchAuthorization, "the security group has no %s rule for ports %d-%d from %s", r.IpProtocol, r.FromPortRange, r.ToPortRange, ip)
		}
		dst.IpRanges = slices.Delete(dst.IpRanges, j, j+1)
	}
	for _, m := range r.SecurityGroupsMembers {
		if !hasMember(*dst, m.SecurityGroupId) {
			return omi.NotFound(codeNoSuchAuthorization, "the security group has no %s rule for ports %d-%d from security group %s", r.IpProtocol, r.FromPortRange, r.ToPortRange, m.SecurityGroupId)
		}
		dst.SecurityGroupsMembers = slices.DeleteFunc(dst.SecurityGroupsMembers, func(o omi.SecurityGroupsMember) bool { return o.SecurityGroupId == m.SecurityGroupId })
	}
	if whole || len(dst.IpRanges) == 0 && len(dst.SecurityGroupsMembers) == 0 {
		*rules = slices.Delete(*rules, i, i+1)
	}
	return nil
}

// ruleEntries counts the IP ranges and groups of a flow's rules.
func ruleEntries(rules []omi.SecurityGroupRule) int {
	n := 0
	for _, r := range rules {
		n += len(r.IpRanges) + len(r.SecurityGroupsMembers)
	}
	return n
}
