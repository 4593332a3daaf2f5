package service

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/omiproject/omi"
)

// Load balancers (LBU), kept as metadata with the real API's rules: no
// packet is balanced and no health check runs. A load balancer lives in
// the public Cloud (SubregionNames) or in one subnet of a Net (Subnets,
// with security groups); it listens on up to lb_listeners_limit ports,
// forwards to backend VMs of its scope, and holds a public IP when it
// faces the Internet.

// Error codes of the load balancer calls: the 2019 catalogue's slugs.
const (
	codeInvalidLBName        = "4036" // invalid-lb-name
	codeInvalidLBPort        = "4037" // invalid-lb-port
	codeInvalidLBProtocol    = "4053" // invalid-protocol
	codeInvalidPolicyCookie  = "4065" // invalid-sticky-policy-cookie_name
	codeInvalidPolicyName    = "4067" // invalid-sticky-policy-name
	codeWrongCertificateORN  = "4097" // wrong-certificate-orn
	codeNoSuchListener       = "5028" // no-such-listener
	codeNoSuchListenerRule   = "5029" // no-such-listener-rule
	codeNoSuchLoadBalancer   = "5030" // no-such-load-balancer
	codeNoSuchStickyPolicy   = "5056" // no-such-sticky-policy
	codeDuplicateListener    = "9012" // duplicate-listener
	codeDuplicateLBName      = "9013" // duplicate-loadbalancer-name
	codeDuplicatePolicyName  = "9021" // duplicate-sticky-policy-name
	codePriorityInUse        = "9047" // priority-already-in-use
	codeRuleNameInUse        = "9054" // rule-name-already-in-use
	codePolicyOnListener     = "9055" // sticky-policy-enabled-with-listeners
	codePolicyNeedsHTTP      = "9056" // sticky-policy-only-with-http-https
	codeTooManyListenerRules = "10012"
	codeTooManyListeners     = "10013"
	codeTooManyLBs           = "10014"
)

// Defaults the real cloud gives a new load balancer (the provider's
// recorded states: every load balancer created without a health check
// shows TCP, 30 s, 10 healthy, 2 unhealthy, 5 s; its port is the highest
// backend port of the listeners created with it, the only rule that fits
// all the records: listeners 80 and 8080 give 8080, 80 and 1024 give
// 1024), and access logs disabled with a 60-minute interval.
const (
	lbCheckInterval      = 30
	lbHealthyThreshold   = 10
	lbUnhealthyThreshold = 2
	lbCheckTimeout       = 5
	lbLogInterval        = 60
	// vmHealthPending is what ReadVmsHealth reports of a backend VM: no
	// health check runs in omi, and the real cloud reports a VM it has
	// not checked yet this way (load_balancer_vm_health/TF-92: State
	// "DOWN", which the spec's list of states does not have).
	vmHealthState       = "DOWN"
	vmHealthReason      = "ELB"
	vmHealthDescription = "Instance registration is pending"
)

var lbProtocols = []string{"HTTP", "HTTPS", "TCP", "SSL"}

func lbNotFound(name string) error {
	return omi.NotFound(codeNoSuchLoadBalancer, "The LoadBalancerName '%s' doesn't exist.", name)
}

// ownLoadBalancer loads a load balancer of the caller by name.
func ownLoadBalancer(tx omi.Tx, c *omi.Caller, name string) (*omi.LoadBalancer, error) {
	if name == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "LoadBalancerName is required")
	}
	l, err := omi.Get[omi.LoadBalancer](tx, omi.LoadBalancerID(c.AccountID(), name))
	if isNotFound(err) {
		return nil, lbNotFound(name)
	}
	return l, err
}

// accountLoadBalancers lists an account's load balancers in creation order.
func accountLoadBalancers(tx omi.Tx, account string) ([]*omi.LoadBalancer, error) {
	var out []*omi.LoadBalancer
	err := omi.Scan(tx, omi.Query{Owners: []string{account}}, func(l *omi.LoadBalancer) (bool, error) {
		out = append(out, l)
		return true, nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, err
}

// validLBName checks a load balancer name: 1 to 32 letters, digits and
// dashes, not starting or ending with a dash.
func validLBName(name string) error {
	if name == "" {
		return omi.Invalid(omi.CodeInvalidParameter, "LoadBalancerName is required")
	}
	ok := len(name) <= 32 && name[0] != '-' && name[len(name)-1] != '-'
	for _, r := range name {
		ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-')
	}
	if !ok {
		return omi.Invalid(codeInvalidLBName, "Invalid LoadBalancerName '%s': up to 32 letters, digits and dashes, not starting or ending with a dash.", name)
	}
	return nil
}

// validPort checks a listener or health check port.
func validPort(what string, p int) error {
	if p < 1 || p > 65535 {
		return omi.Invalid(codeInvalidLBPort, "%s %d is not a port between 1 and 65535.", what, p)
	}
	return nil
}

// ListenerForCreation is a listener of CreateLoadBalancer and
// CreateLoadBalancerListeners.
type ListenerForCreation struct {
	BackendPort          *int   `json:"BackendPort"`
	BackendProtocol      string `json:"BackendProtocol"`
	LoadBalancerPort     *int   `json:"LoadBalancerPort"`
	LoadBalancerProtocol string `json:"LoadBalancerProtocol"`
	ServerCertificateId  string `json:"ServerCertificateId"`
}

// validCertificate checks the form of a server certificate ORN; whether
// the account has that certificate is checked in the transaction
// (certificateKnown).
func validCertificate(orn string) error {
	if !strings.HasPrefix(orn, "arn:") && !strings.HasPrefix(orn, "orn:") {
		return omi.Invalid(codeWrongCertificateORN, "ServerCertificateId '%s' is not the ORN of a server certificate.", orn)
	}
	return nil
}

// listener checks a listener to create and returns it. The backend
// protocol defaults to the load balancer's; HTTPS and SSL listeners need a
// server certificate, and the two protocols must be of one layer (HTTP or
// HTTPS both sides, or TCP or SSL both sides).
func (in ListenerForCreation) listener() (omi.Listener, error) {
	if in.BackendPort == nil || in.LoadBalancerPort == nil || in.LoadBalancerProtocol == "" {
		return omi.Listener{}, omi.Invalid(omi.CodeInvalidParameter, "Listeners: BackendPort, LoadBalancerPort and LoadBalancerProtocol are required")
	}
	l := omi.Listener{BackendPort: *in.BackendPort, BackendProtocol: strings.ToUpper(in.BackendProtocol), LoadBalancerPort: *in.LoadBalancerPort,
		LoadBalancerProtocol: strings.ToUpper(in.LoadBalancerProtocol), PolicyNames: []string{}, ServerCertificateId: in.ServerCertificateId}
	if l.BackendProtocol == "" {
		l.BackendProtocol = l.LoadBalancerProtocol
	}
	if err := validPort("LoadBalancerPort", l.LoadBalancerPort); err != nil {
		return l, err
	}
	if err := validPort("BackendPort", l.BackendPort); err != nil {
		return l, err
	}
	for _, p := range []string{l.LoadBalancerProtocol, l.BackendProtocol} {
		if !slices.Contains(lbProtocols, p) {
			return l, omi.Invalid(codeInvalidLBProtocol, "Invalid protocol '%s': HTTP, HTTPS, TCP or SSL.", p)
		}
	}
	web := func(p string) bool { return p == "HTTP" || p == "HTTPS" }
	if web(l.LoadBalancerProtocol) != web(l.BackendProtocol) {
		return l, omi.Invalid("4054", "The protocols %s and %s are not of one layer (HTTP/HTTPS or TCP/SSL).", l.LoadBalancerProtocol, l.BackendProtocol) // invalid-protocol-layer
	}
	secure := l.LoadBalancerProtocol == "HTTPS" || l.LoadBalancerProtocol == "SSL"
	switch {
	case secure && l.ServerCertificateId == "":
		return l, omi.Invalid(omi.CodeInvalidParameter, "ServerCertificateId is required for an %s listener.", l.LoadBalancerProtocol)
	case !secure && l.ServerCertificateId != "":
		return l, omi.Invalid(omi.CodeInvalidParameter, "ServerCertificateId is only for HTTPS and SSL listeners.")
	case secure:
		if err := validCertificate(l.ServerCertificateId); err != nil {
			return l, err
		}
	}
	return l, nil
}

// addListeners adds listeners to a load balancer: one per port, at most
// lb_listeners_limit.
func addListeners(l *omi.LoadBalancer, in []ListenerForCreation) error {
	for _, li := range in {
		nl, err := li.listener()
		if err != nil {
			return err
		}
		if slices.ContainsFunc(l.Listeners, func(o omi.Listener) bool { return o.LoadBalancerPort == nl.LoadBalancerPort }) {
			return omi.Conflict(codeDuplicateListener, "The load balancer '%s' already listens on port %d.", l.LoadBalancerName, nl.LoadBalancerPort)
		}
		l.Listeners = append(l.Listeners, nl)
	}
	if max := quotaMax("lb_listeners_limit"); len(l.Listeners) > max {
		return omi.Errorf(codeTooManyListeners, omi.TypeTooManyResources, "A load balancer has at most %d listeners.", max)
	}
	return nil
}

// validLBTags checks the tags given to a load balancer.
func validLBTags(tags []omi.Tag) error {
	for _, t := range tags {
		if t.Key == "" || len(t.Key) > 128 {
			return omi.Invalid(omi.CodeInvalidTagKey, "Invalid tag key '%s': between 1 and 128 characters.", t.Key)
		}
		if len(t.Value) > 255 {
			return omi.Invalid(omi.CodeInvalidTagValue, "Invalid value of the tag '%s': at most 255 characters.", t.Key)
		}
	}
	return nil
}

// setTag sets or replaces a tag by key.
func setTag(tags []omi.Tag, t omi.Tag) []omi.Tag {
	for i := range tags {
		if tags[i].Key == t.Key {
			tags[i].Value = t.Value
			return tags
		}
	}
	return append(tags, t)
}

// lbDNSName makes the DNS name of a load balancer as the real cloud shapes
// it: <name>-<number>.<region>.lbu.outscale.com, prefixed by "internal-"
// for an internal one.
func (s *Service) lbDNSName(name, typ string) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("omi: crypto/rand failed: " + err.Error()) // the OS entropy source is gone
	}
	n := binary.BigEndian.Uint32(b[:]) % 1000000000
	prefix := ""
	if typ == omi.LoadBalancerInternal {
		prefix = "internal-"
	}
	return fmt.Sprintf("%s%s-%09d.%s.lbu.outscale.com", prefix, name, n, s.cfg.Region)
}

// lbGroups checks the security groups given to a load balancer of a Net:
// groups of the caller in that Net. None given means the Net's default
// group, as the spec says.
func lbGroups(tx omi.Tx, c *omi.Caller, netID string, ids []string) ([]*omi.SecGroup, error) {
	var out []*omi.SecGroup
	if len(ids) == 0 {
		gs, err := groupsNamed(tx, c.AccountID(), omi.DefaultSecurityGroupName)
		if err != nil {
			return nil, err
		}
		for _, g := range gs {
			if g.NetId == netID {
				out = append(out, g)
			}
		}
		return out, nil
	}
	for _, id := range ids {
		g, err := ownGroup(tx, c, id)
		if err != nil {
			return nil, err
		}
		if g.NetId != netID {
			return nil, omi.Invalid(codeNetworkMismatch, "The security group '%s' is not in the Net '%s' of the load balancer.", id, netID)
		}
		if !slices.ContainsFunc(out, func(o *omi.SecGroup) bool { return o.SecurityGroupId == g.SecurityGroupId }) {
			out = append(out, g)
		}
	}
	return out, nil
}

// setGroups sets the security groups of a load balancer of a Net and its
// SourceSecurityGroup, the first of them.
func setGroups(l *omi.LoadBalancer, gs []*omi.SecGroup) {
	l.SecurityGroups = []string{}
	for _, g := range gs {
		l.SecurityGroups = append(l.SecurityGroups, g.SecurityGroupId)
	}
	if len(gs) > 0 {
		l.SourceSecurityGroup = omi.SourceSecurityGroup{SecurityGroupAccountId: gs[0].AccountId, SecurityGroupName: gs[0].SecurityGroupName}
	}
}

// lbPublicIP takes an address of the account for an internet-facing load
// balancer: it must be free (no VM, NIC, NAT service or other load
// balancer holds it).
func lbPublicIP(tx omi.Tx, c *omi.Caller, ip, self string) (*omi.PublicIp, error) {
	p, err := ownPublicIP(tx, c, "", ip)
	if err != nil {
		return nil, err
	}
	if p.VmId != "" || p.NicId != "" {
		return nil, omi.Conflict(codeLockedAddress, "The public IP %s is linked to %s: unlink it first.", p.PublicIp, p.VmId+p.NicId)
	}
	if err := PublicIPUsedByNat(tx, c.AccountID(), p); err != nil {
		return nil, err
	}
	if other, err := lbOfPublicIP(tx, c.AccountID(), p.PublicIpId); err != nil || (other != nil && other.LoadBalancerName != self) {
		if err != nil {
			return nil, err
		}
		return nil, omi.Conflict(codeLockedAddress, "The public IP %s is used by the load balancer '%s'.", p.PublicIp, other.LoadBalancerName)
	}
	return p, nil
}

// lbOfPublicIP returns the load balancer holding an account's public IP.
func lbOfPublicIP(tx omi.Tx, account, publicIPID string) (*omi.LoadBalancer, error) {
	var out *omi.LoadBalancer
	err := omi.Scan(tx, omi.Query{Owners: []string{account}}, func(l *omi.LoadBalancer) (bool, error) {
		if l.PublicIpId == publicIPID {
			out = l
			return false, nil
		}
		return true, nil
	})
	return out, err
}

// PublicIPUsedByLoadBalancer refuses a change to a public IP that a load
// balancer holds (LinkPublicIp and DeletePublicIp call it).
func PublicIPUsedByLoadBalancer(tx omi.Tx, account string, p *omi.PublicIp) error {
	l, err := lbOfPublicIP(tx, account, p.PublicIpId)
	if err != nil {
		return err
	}
	if l != nil {
		return omi.Conflict(codeLockedAddress, "The public IP %s is used by the load balancer '%s'.", p.PublicIp, l.LoadBalancerName)
	}
	return nil
}

// lbUsing returns the name of the first of the account's load balancers
// whose list (as picked by field) holds id, or "".
func lbUsing(tx omi.Tx, account, id string, field func(*omi.LoadBalancer) []string) (string, error) {
	var name string
	err := omi.Scan(tx, omi.Query{Owners: []string{account}}, func(l *omi.LoadBalancer) (bool, error) {
		if slices.Contains(field(l), id) {
			name = l.LoadBalancerName
			return false, nil
		}
		return true, nil
	})
	return name, err
}

// groupUsedByLoadBalancer refuses the deletion of a security group that a
// load balancer uses, with the real cloud's 9085 (on which the terraform
// provider removes the group from the load balancer and retries).
func groupUsedByLoadBalancer(tx omi.Tx, account, id string) error {
	name, err := lbUsing(tx, account, id, func(l *omi.LoadBalancer) []string { return l.SecurityGroups })
	if err == nil && name != "" {
		err = omi.Conflict(codeGroupInUse, "The security group %s is used by the load balancer '%s'.", id, name)
	}
	return err
}

// subnetUsedByLoadBalancer refuses the deletion of a subnet holding a load
// balancer, with the code of a subnet in use.
func subnetUsedByLoadBalancer(tx omi.Tx, account, id string) error {
	name, err := lbUsing(tx, account, id, func(l *omi.LoadBalancer) []string { return l.Subnets })
	if err == nil && name != "" {
		err = omi.Conflict(codeSubnetInUse, "The subnet '%s' holds the load balancer '%s': delete it first.", id, name)
	}
	return err
}

type CreateLoadBalancerRequest struct {
	Base
	Listeners        []ListenerForCreation `json:"Listeners"`
	LoadBalancerName string                `json:"LoadBalancerName"`
	LoadBalancerType string                `json:"LoadBalancerType"`
	PublicIp         string                `json:"PublicIp"`
	SecurityGroups   []string              `json:"SecurityGroups"`
	Subnets          []string              `json:"Subnets"`
	SubregionNames   []string              `json:"SubregionNames"`
	Tags             []omi.Tag             `json:"Tags"`
}
type LoadBalancerResponse struct {
	LoadBalancer *omi.LoadBalancerAPI `json:"LoadBalancer"`
}

// CreateLoadBalancer creates a load balancer, active at once. In the
// public Cloud it sits in one subregion (the region's first by default)
// and its source security group is OUTSCALE's outscale-elb-sg; in a Net
// it sits in one subnet, with the given security groups (the Net's
// default one if none), the first of them being its source group.
func (s *Service) CreateLoadBalancer(ctx context.Context, c *omi.Caller, in *CreateLoadBalancerRequest) (*LoadBalancerResponse, error) {
	if err := validLBName(in.LoadBalancerName); err != nil {
		return nil, err
	}
	if len(in.Listeners) == 0 {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "Listeners is required")
	}
	if err := validLBTags(in.Tags); err != nil {
		return nil, err
	}
	switch {
	case len(in.Subnets) > 0 && len(in.SubregionNames) > 0:
		return nil, omi.Invalid(omi.CodeInvalidParamSet, "Subnets and SubregionNames cannot be given together.")
	case len(in.Subnets) > 1:
		return nil, omi.Invalid(omi.CodeInvalidParameter, "Subnets: a load balancer sits in one subnet.")
	case len(in.SubregionNames) > 1:
		return nil, omi.Invalid(omi.CodeInvalidParameter, "SubregionNames: a load balancer sits in one subregion.")
	case len(in.Subnets) == 0 && len(in.SecurityGroups) > 0:
		return nil, omi.Invalid(omi.CodeInvalidParamSet, "SecurityGroups are only for a load balancer in a Net (Subnets).")
	}
	typ := in.LoadBalancerType
	switch typ {
	case "":
		typ = omi.LoadBalancerInternet
	case omi.LoadBalancerInternet:
	case omi.LoadBalancerInternal:
		if len(in.Subnets) == 0 {
			return nil, omi.Invalid(omi.CodeInvalidParamSet, "An internal load balancer is only in a Net (Subnets).")
		}
	default:
		return nil, omi.Invalid(omi.CodeInvalidValue, "Invalid LoadBalancerType '%s': internet-facing or internal.", typ)
	}
	if typ == omi.LoadBalancerInternal && in.PublicIp != "" {
		return nil, omi.Invalid(omi.CodeInvalidParamSet, "PublicIp is only for an internet-facing load balancer.")
	}
	l := &omi.LoadBalancer{AccountId: c.AccountID(), Seq: time.Now().UnixNano()}
	l.LoadBalancerName = in.LoadBalancerName
	l.LoadBalancerType = typ
	l.State = omi.LoadBalancerActive
	l.AccessLog = omi.AccessLog{PublicationInterval: lbLogInterval}
	l.Tags = []omi.Tag{}
	for _, t := range in.Tags {
		l.Tags = setTag(l.Tags, t)
	}
	if err := addListeners(l, in.Listeners); err != nil {
		return nil, err
	}
	port := 0
	for _, li := range l.Listeners {
		port = max(port, li.BackendPort)
	}
	l.HealthCheck = omi.HealthCheck{CheckInterval: lbCheckInterval, HealthyThreshold: lbHealthyThreshold, Port: port, Protocol: "TCP",
		Timeout: lbCheckTimeout, UnhealthyThreshold: lbUnhealthyThreshold}
	l.DnsName = s.lbDNSName(l.LoadBalancerName, typ)
	err := s.update(ctx, func(tx omi.Tx) error {
		if err := listenerCertificatesKnown(tx, c.AccountID(), l); err != nil {
			return err
		}
		if len(in.Subnets) > 0 {
			sn, err := ownSubnet(tx, c, in.Subnets[0])
			if err != nil {
				return err
			}
			l.NetId, l.Subnets, l.SubregionNames = sn.NetId, []string{sn.SubnetId}, []string{sn.SubregionName}
			gs, err := lbGroups(tx, c, sn.NetId, in.SecurityGroups)
			if err != nil {
				return err
			}
			setGroups(l, gs)
		} else {
			sr := s.region.subregions[0].SubregionName
			if len(in.SubregionNames) > 0 {
				sr = in.SubregionNames[0]
				if !s.validSubregion(sr) {
					return omi.NotFound(omi.CodeNoSuchAZ, "The SubregionName '%s' doesn't exist.", sr)
				}
			}
			l.SubregionNames = []string{sr}
			l.SourceSecurityGroup = omi.SourceSecurityGroup{SecurityGroupAccountId: omi.ElbSecurityGroupAccount, SecurityGroupName: omi.ElbSecurityGroupName}
		}
		if typ == omi.LoadBalancerInternet {
			if in.PublicIp != "" {
				p, err := lbPublicIP(tx, c, in.PublicIp, "")
				if err != nil {
					return err
				}
				l.PublicIp, l.PublicIpId = p.PublicIp, p.PublicIpId
			} else {
				ip, err := freePublicIP(tx)
				if err != nil {
					return err
				}
				l.PublicIp = ip
			}
		}
		all, err := accountLoadBalancers(tx, c.AccountID())
		if err != nil {
			return err
		}
		if max := quotaMax("lb_limit"); len(all) >= max {
			return omi.Errorf(codeTooManyLBs, omi.TypeTooManyResources, "An account has at most %d load balancers.", max)
		}
		l.Normalize()
		err = omi.Insert(tx, l)
		if err != nil && isExists(err) {
			return omi.Conflict(codeDuplicateLBName, "The load balancer '%s' already exists.", l.LoadBalancerName)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return &LoadBalancerResponse{LoadBalancer: &l.LoadBalancerAPI}, nil
}

// lbView completes a stored load balancer for output: its backend VMs
// that still exist, and in BackendIps the addresses registered as such
// followed by the public IPs of those VMs (a linked public IP, else the
// address the VM got at launch).
func lbView(tx omi.Tx, l *omi.LoadBalancer) (*omi.LoadBalancerAPI, error) {
	l.Normalize()
	out := l.LoadBalancerAPI
	out.BackendVmIds, out.BackendIps = []string{}, slices.Clone(l.BackendIps)
	if len(l.BackendVmIds) == 0 {
		return &out, nil
	}
	// The account's public IPs linked to VMs (directly or by a NIC).
	linked := map[string]string{}
	err := omi.Scan(tx, omi.Query{Owners: []string{l.AccountId}}, func(p *omi.PublicIp) (bool, error) {
		if err := liveLink(tx, p); err != nil {
			return false, err
		}
		if p.VmId != "" {
			linked[p.VmId] = p.PublicIp
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	for _, id := range l.BackendVmIds {
		vm, err := omi.Get[omi.Vm](tx, id)
		if isNotFound(err) || (err == nil && (vm.State == omi.VmTerminated || vm.AccountId != l.AccountId)) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out.BackendVmIds = append(out.BackendVmIds, id)
		if ip := cmp.Or(linked[id], vm.PublicIp); ip != "" && !slices.Contains(out.BackendIps, ip) {
			out.BackendIps = append(out.BackendIps, ip)
		}
	}
	return &out, nil
}

type FiltersLoadBalancer struct {
	LoadBalancerNames []string `json:"LoadBalancerNames"`
	States            []string `json:"States"`
}
type ReadLoadBalancersRequest struct {
	Base
	Filters *FiltersLoadBalancer `json:"Filters"`
}
type ReadLoadBalancersResponse struct {
	LoadBalancers []*omi.LoadBalancerAPI `json:"LoadBalancers"`
}

// ReadLoadBalancers lists the caller's load balancers in creation order.
// terraform-provider-outscale also reads them whenever it refreshes or
// deletes a security group (the load balancers using it).
func (s *Service) ReadLoadBalancers(ctx context.Context, c *omi.Caller, in *ReadLoadBalancersRequest) (*ReadLoadBalancersResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersLoadBalancer{}
	}
	out := []*omi.LoadBalancerAPI{}
	if omi.IsDryRun(ctx) {
		return &ReadLoadBalancersResponse{LoadBalancers: out}, nil
	}
	err := s.view(ctx, func(tx omi.Tx) error {
		all, err := accountLoadBalancers(tx, c.AccountID())
		if err != nil {
			return err
		}
		for _, l := range all {
			if !anyOf(f.LoadBalancerNames, l.LoadBalancerName) || !anyOf(f.States, l.State) {
				continue
			}
			v, err := lbView(tx, l)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &ReadLoadBalancersResponse{LoadBalancers: out}, nil
}

// changeLoadBalancer applies fn to a load balancer of the caller and
// returns it as it then is.
func (s *Service) changeLoadBalancer(ctx context.Context, c *omi.Caller, name string, fn func(tx omi.Tx, l *omi.LoadBalancer) error) (*LoadBalancerResponse, error) {
	var out *omi.LoadBalancerAPI
	err := s.update(ctx, func(tx omi.Tx) error {
		l, err := ownLoadBalancer(tx, c, name)
		if err != nil {
			return err
		}
		if err := fn(tx, l); err != nil {
			return err
		}
		if out, err = lbView(tx, l); err != nil {
			return err
		}
		return omi.Put(tx, l)
	})
	if err != nil {
		return nil, err
	}
	return &LoadBalancerResponse{LoadBalancer: out}, nil
}

type UpdateLoadBalancerRequest struct {
	Base
	AccessLog           *omi.AccessLog   `json:"AccessLog"`
	HealthCheck         *HealthCheckSpec `json:"HealthCheck"`
	LoadBalancerName    string           `json:"LoadBalancerName"`
	LoadBalancerPort    *int             `json:"LoadBalancerPort"`
	PolicyNames         *[]string        `json:"PolicyNames"`
	PublicIp            string           `json:"PublicIp"`
	SecuredCookies      *bool            `json:"SecuredCookies"`
	SecurityGroups      []string         `json:"SecurityGroups"`
	ServerCertificateId string           `json:"ServerCertificateId"`
}

// HealthCheckSpec is the HealthCheck of UpdateLoadBalancer: every field
// but Path is required.
type HealthCheckSpec struct {
	CheckInterval      *int   `json:"CheckInterval"`
	HealthyThreshold   *int   `json:"HealthyThreshold"`
	Path               string `json:"Path"`
	Port               *int   `json:"Port"`
	Protocol           string `json:"Protocol"`
	Timeout            *int   `json:"Timeout"`
	UnhealthyThreshold *int   `json:"UnhealthyThreshold"`
}

// check validates a health check against the spec's ranges.
func (h *HealthCheckSpec) check() (omi.HealthCheck, error) {
	if h.CheckInterval == nil || h.HealthyThreshold == nil || h.Port == nil || h.Protocol == "" || h.Timeout == nil || h.UnhealthyThreshold == nil {
		return omi.HealthCheck{}, omi.Invalid(omi.CodeInvalidParameter, "HealthCheck: CheckInterval, HealthyThreshold, Port, Protocol, Timeout and UnhealthyThreshold are required")
	}
	out := omi.HealthCheck{CheckInterval: *h.CheckInterval, HealthyThreshold: *h.HealthyThreshold, Path: h.Path, Port: *h.Port,
		Protocol: strings.ToUpper(h.Protocol), Timeout: *h.Timeout, UnhealthyThreshold: *h.UnhealthyThreshold}
	ranges := []struct {
		name      string
		v, lo, hi int
	}{{"CheckInterval", out.CheckInterval, 5, 600}, {"HealthyThreshold", out.HealthyThreshold, 2, 10},
		{"Timeout", out.Timeout, 2, 60}, {"UnhealthyThreshold", out.UnhealthyThreshold, 2, 10}}
	for _, r := range ranges {
		if r.v < r.lo || r.v > r.hi {
			return out, omi.Invalid(omi.CodeInvalidParameter, "HealthCheck.%s %d is not between %d and %d.", r.name, r.v, r.lo, r.hi)
		}
	}
	if err := validPort("HealthCheck.Port", out.Port); err != nil {
		return out, err
	}
	if !slices.Contains(lbProtocols, out.Protocol) {
		return out, omi.Invalid(codeInvalidLBProtocol, "Invalid HealthCheck.Protocol '%s': HTTP, HTTPS, TCP or SSL.", h.Protocol)
	}
	web := out.Protocol == "HTTP" || out.Protocol == "HTTPS"
	switch {
	case web && !strings.HasPrefix(out.Path, "/"):
		return out, omi.Invalid(omi.CodeInvalidParameter, "HealthCheck.Path must start with a slash for an %s check.", out.Protocol)
	case !web && out.Path != "":
		return out, omi.Invalid(omi.CodeInvalidParameter, "HealthCheck.Path is only for HTTP and HTTPS checks.")
	}
	return out, nil
}

// listenerAt returns the listener of a port.
func listenerAt(l *omi.LoadBalancer, port int) (*omi.Listener, error) {
	for i := range l.Listeners {
		if l.Listeners[i].LoadBalancerPort == port {
			return &l.Listeners[i], nil
		}
	}
	return nil, omi.NotFound(codeNoSuchListener, "The load balancer '%s' has no listener on port %d.", l.LoadBalancerName, port)
}

// hasPolicy tells whether a load balancer has a sticky policy of a name.
func hasPolicy(l *omi.LoadBalancer, name string) bool {
	return slices.ContainsFunc(l.ApplicationStickyCookiePolicies, func(p omi.ApplicationStickyCookiePolicy) bool { return p.PolicyName == name }) ||
		slices.ContainsFunc(l.LoadBalancerStickyCookiePolicies, func(p omi.LoadBalancerStickyCookiePolicy) bool { return p.PolicyName == name })
}

// UpdateLoadBalancer changes what is given: access logs, health check,
// the policies or certificate of one listener (LoadBalancerPort),
// security groups (in a Net), public IP (internet-facing), secure cookies.
// Everything is checked before anything changes.
func (s *Service) UpdateLoadBalancer(ctx context.Context, c *omi.Caller, in *UpdateLoadBalancerRequest) (*LoadBalancerResponse, error) {
	var hc omi.HealthCheck
	if in.HealthCheck != nil {
		var err error
		if hc, err = in.HealthCheck.check(); err != nil {
			return nil, err
		}
	}
	if a := in.AccessLog; a != nil {
		if a.PublicationInterval == 0 {
			a.PublicationInterval = lbLogInterval
		}
		if a.PublicationInterval != 5 && a.PublicationInterval != 60 {
			return nil, omi.Invalid(omi.CodeInvalidParameter, "AccessLog.PublicationInterval is 5 or 60 (minutes), not %d.", a.PublicationInterval)
		}
		if a.IsEnabled && a.OsuBucketName == "" {
			return nil, omi.Invalid(omi.CodeInvalidParameter, "AccessLog.OsuBucketName is required to enable access logs.")
		}
	}
	if (in.PolicyNames != nil || in.ServerCertificateId != "") && in.LoadBalancerPort == nil {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "LoadBalancerPort is required to change the policies or the certificate of a listener.")
	}
	if in.ServerCertificateId != "" {
		if err := validCertificate(in.ServerCertificateId); err != nil {
			return nil, err
		}
	}
	return s.changeLoadBalancer(ctx, c, in.LoadBalancerName, func(tx omi.Tx, l *omi.LoadBalancer) error {
		if in.LoadBalancerPort != nil {
			li, err := listenerAt(l, *in.LoadBalancerPort)
			if err != nil {
				return err
			}
			if in.PolicyNames != nil {
				for _, p := range *in.PolicyNames {
					if !hasPolicy(l, p) {
						return omi.NotFound(codeNoSuchStickyPolicy, "The load balancer '%s' has no policy '%s'.", l.LoadBalancerName, p)
					}
				}
				if len(*in.PolicyNames) > 0 && li.LoadBalancerProtocol != "HTTP" && li.LoadBalancerProtocol != "HTTPS" {
					return omi.Conflict(codePolicyNeedsHTTP, "Sticky policies are only for HTTP and HTTPS listeners (port %d is %s).", li.LoadBalancerPort, li.LoadBalancerProtocol)
				}
				li.PolicyNames = append([]string{}, *in.PolicyNames...)
			}
			if in.ServerCertificateId != "" {
				if li.LoadBalancerProtocol != "HTTPS" && li.LoadBalancerProtocol != "SSL" {
					return omi.Invalid(omi.CodeInvalidParameter, "ServerCertificateId is only for HTTPS and SSL listeners (port %d is %s).", li.LoadBalancerPort, li.LoadBalancerProtocol)
				}
				if err := certificateKnown(tx, c.AccountID(), in.ServerCertificateId); err != nil {
					return err
				}
				li.ServerCertificateId = in.ServerCertificateId
			}
		}
		switch {
		case in.SecurityGroups != nil && l.NetId == "" && len(in.SecurityGroups) == 0:
			// An empty list for a load balancer of the public Cloud
			// changes nothing: terraform-provider-outscale sends each of
			// the account's load balancers its groups minus the one it
			// deletes (resource_security_group.go, unlink), the empty
			// list to those of the public Cloud.
		case in.SecurityGroups != nil && l.NetId == "":
			return omi.Invalid(omi.CodeInvalidParamSet, "SecurityGroups are only for a load balancer in a Net.")
		case in.SecurityGroups != nil:
			if len(in.SecurityGroups) == 0 {
				return omi.Invalid(omi.CodeInvalidParameter, "SecurityGroups: a load balancer of a Net keeps at least one security group.")
			}
			gs, err := lbGroups(tx, c, l.NetId, in.SecurityGroups)
			if err != nil {
				return err
			}
			setGroups(l, gs)
		}
		if in.PublicIp != "" && in.PublicIp != l.PublicIp {
			if l.LoadBalancerType != omi.LoadBalancerInternet {
				return omi.Invalid(omi.CodeInvalidParamSet, "PublicIp is only for an internet-facing load balancer.")
			}
			p, err := lbPublicIP(tx, c, in.PublicIp, l.LoadBalancerName)
			if err != nil {
				return err
			}
			l.PublicIp, l.PublicIpId = p.PublicIp, p.PublicIpId
		}
		if in.HealthCheck != nil {
			l.HealthCheck = hc
		}
		if in.AccessLog != nil {
			l.AccessLog = *in.AccessLog
		}
		if in.SecuredCookies != nil {
			l.SecuredCookies = *in.SecuredCookies
		}
		return nil
	})
}

type DeleteLoadBalancerRequest struct {
	Base
	LoadBalancerName string `json:"LoadBalancerName"`
}
type DeleteLoadBalancerResponse struct{}

// DeleteLoadBalancer deletes a load balancer and its listener rules; its
// public IP, if the account's, is free again.
func (s *Service) DeleteLoadBalancer(ctx context.Context, c *omi.Caller, in *DeleteLoadBalancerRequest) (*DeleteLoadBalancerResponse, error) {
	err := s.update(ctx, func(tx omi.Tx) error {
		l, err := ownLoadBalancer(tx, c, in.LoadBalancerName)
		if err != nil {
			return err
		}
		rules, err := lbRules(tx, c.AccountID(), l.LoadBalancerName)
		if err != nil {
			return err
		}
		for _, r := range rules {
			if err := tx.Delete(omi.KindListenerRule, r.ResourceID()); err != nil {
				return err
			}
		}
		return tx.Delete(omi.KindLoadBalancer, l.ResourceID())
	})
	if err != nil {
		return nil, err
	}
	return &DeleteLoadBalancerResponse{}, nil
}

// isExists tells whether a store insert failed on an id clash.
func isExists(err error) bool { return errors.Is(err, omi.ErrExists) }
