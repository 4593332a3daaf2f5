package service

import (
	"context"

	"github.com/omiproject/omi"
)

// Quotas as the real cloud names and groups them (its recorded ReadQuotas
// answers). omi reports the usage of what it serves; the limits are those
// of a new account, and omi enforces the ones it checks at creation
// (vpc_limit here, ip_limit and the security group limits where those
// resources are created).

// quotaDef is one quota: its name, collection, descriptions and limit.
// perNet quotas are reported once per Net (QuotaType = the Net's id).
type quotaDef struct {
	name, collection, short, long string
	max                           int
	perNet                        bool
}

var quotaDefs = []quotaDef{
	{"vm_limit", "Compute", "VM Limit", "Maximum number of VM this user can own", 20, false},
	{"core_limit", "Compute", "Core Limit", "Maximum number of total cores (virtual core)", 80, false},
	{"memory_limit", "Compute", "Memory Limit", "Maximum number of total memory (GiB)", 320, false},
	{"ip_limit", "Compute", "IP Limit", "Maximum IP addresses the user can allocate", MaxPublicIpsPerAccount, false},
	{"gpu_limit", "Compute", "GPU Limit", "Maximum number of GPU the user can allocate", 0, false},
	{"dedicated_server_limit", "Compute", "Dedicated Server Limit", "Maximum number of dedicated servers", 0, false},
	{"volume_limit", "Storage", "Volume Limit", "Maximum number of BSU volumes", 200, false},
	{"volume_size_limit", "Storage", "Volume Size Limit", "Maximum cumulated size of BSU volumes (GiB)", 20000, false},
	{"standard_volume_size_limit", "Storage", "Standard Volume Size Limit", "Maximum cumulated size of standard volumes (GiB)", 20000, false},
	{"gp2_volume_size_limit", "Storage", "GP2 Volume Size Limit", "Maximum cumulated size of GP2 volumes (GiB)", 20000, false},
	{"io1_volume_size_limit", "Storage", "IO1 Volume Size Limit", "Maximum cumulated size of IO1 volumes (GiB)", 20000, false},
	{"iops_limit", "Storage", "Provisioned IOPS Limit", "Maximum number of IOPS delivered by provisioned IOPS volumes", 100000, false},
	{"snapshot_limit", "Storage", "Snapshot Limit", "Maximum number of snapshots", 500, false},
	{"image_export_limit", "Storage", "Image Exports Limit", "Maximum number of running image export tasks", 10, false},
	{"snapshot_export_limit", "Storage", "Snapshot Exports Limit", "Maximum number of running snapshot export tasks", 10, false},
	{"sg_limit", "Security Groups", "Security Groups Limit", "Maximum number of security groups", MaxSecurityGroups, false},
	{"sg_rule_limit", "Security Groups", "Security Groups Rules Limit", "Maximum number of rules per security groups", MaxRuleEntries, false},
	{"vm_sg_limit", "Security Groups", "VM Security Groups Limit", "Maximum number of groups assigned to a VM", 5, false},
	// A new account may hold 5 Nets on the real cloud; omi allows 10
	// so that test suites running configurations side by side in one
	// account fit.
	{"vpc_limit", "VPC", "VPC Limit", "Maximum number of VPC", 10, false},
	{"igw_limit", "VPC", "Internet Gateway Limit", "Maximum number of internet gateways", 10, false},
	{"nat_gateway_limit", "VPC", "Nat Gateway Limit", "Maximum number of NAT gateways", 10, false},
	{"os1_volume_size_limit", "Storage", "OS1 Volume Size Limit", "Maximum cumulated size of OS1 volumes (GiB)", 0, false},
	{"st1_volume_size_limit", "Storage", "ST1 Volume Size Limit", "Maximum cumulated size of ST1 volumes (GiB)", 0, false},
	{"sc1_volume_size_limit", "Storage", "SC1 Volume Size Limit", "Maximum cumulated size of SC1 volumes (GiB)", 0, false},
	{"concurrent_snapshot_limit", "Storage", "Concurrent Snapshot Limit", "Maximum number of active snapshots", 20, false},
	{"vpc_sg_rule_limit", "Security Groups", "VPC Security Groups Rules Limit", "Maximum number of rules per VPC security group", MaxRuleEntries, false},
	{"network_endpoint_limit", "VPC", "VPC Endpoint Limit", "Maximum number of VPC endpoints", maxNetAccessPoints, false},
	{"networklink_limit", "VPC", "Peering connection limit", "Maximum number of available peering connections per VPC", 50, false},
	{"networklink_request_limit", "VPC", "Peering requests limit", "Maximum number of peering connection in pending acceptance", 25, false},
	{"rtb_rule_limit", "VPC", "Route Limit", "Maximum number of route rules per route table", 50, false},
	{"bypass_vpc_limit", "VPC", "Bypass VPC limit", "Maximum number of firewall bypassing VPCs", 0, false},
	// Load balancers: lb_listeners_limit is reported once per load
	// balancer (QuotaType = its name), as the real cloud does
	// (quota/TF-185 of the provider's recorded states).
	{"lb_limit", "LBU", "Load Balancer Limit", "Maximum number of load balancers per region", 20, false},
	{"lb_listeners_limit", "LBU", "Load Balancer Listeners Limit", "Maximum number of listeners for load balancers", 5, false},
	{"lb_rules_limit", "LBU", "Load Balancer Listener Rules Limit", "Maximum number of listener rules for an account", 100, false},
	{"vpg_limit", "VPN", "VPN Gateway Limit", "Maximum number of VPN gateways", maxVirtualGateways, false},
	// Services omi does not serve yet: listed as the real cloud lists
	// them, nothing used.
	{"cgw_limit", "VPN", "Customer Gateway Limit", "Maximum number of CGW gateways", 5, false},
	{"vpnc_limit", "VPN", "VPN Connection Limit", "Maximum number of VPN connections per VPN gateway", 10, false},
	{"static_route_limit", "VPN", "Static Route Limit", "Maximum number of static routes per VPN connection", 50, false},
	{"bgp_route_limit", "VPN", "BGP Route Limit", "Maximum number BGP advertised routes per VPN connection", 100, false},
	{"dl_connection_limit", "Direct Link", "Direct Link Connection Limit", "Maximum number of Direct Link connections", 0, false},
	{"dl_interface_limit", "Direct Link", "Direct Link Interface Limit", "Maximum number Direct Link interfaces per connections", 0, false},
	{"prefix_list_limit", "Prefix Lists", "Prefix Lists Limit", "Maximum number of prefix lists is reached.", 0, false},
	{"prefix_list_entry_limit", "Prefix Lists", "Prefix Lists Entry Limit", "Maximum number of prefix list entries is reached.", 0, false},
	{"pty_limit", "Other", "Product Type Limit", "Maximum number of product types the user can own", 5, false},
	{"bypass_group_limit", "Other", "Bypass Group Limit", "Maximum number of bypass group the user can own", 0, false},
	{"bypass_group_size_limit", "Other", "Bypass Group Size Limit", "Maximum size of a bypass group", 0, false},
	{"subnet_limit", "VPC", "Subnet Limit", "Maximum number of subnets per VPC", 50, true},
	{"rtb_limit", "VPC", "Route Table Limit", "Maximum number of route tables per VPC", 50, true},
	{"vpc_sg_limit", "Security Groups", "VPC Security Groups Limit", "Maximum number of security groups per VPC", MaxSecurityGroups, true},
}

// quotaMax is the limit of a quota.
func quotaMax(name string) int {
	for _, q := range quotaDefs {
		if q.name == name {
			return q.max
		}
	}
	panic("omi: unknown quota " + name) // a typo in this package, caught by its tests
}

// Quota is one quota of an account with its usage.
type Quota struct {
	AccountId        string `json:"AccountId"`
	Description      string `json:"Description"`
	MaxValue         int    `json:"MaxValue"`
	Name             string `json:"Name"`
	QuotaCollection  string `json:"QuotaCollection"`
	ShortDescription string `json:"ShortDescription"`
	UsedValue        int    `json:"UsedValue"`
}

// QuotaTypes groups the quotas of one scope: "global", or a Net's id.
type QuotaTypes struct {
	QuotaType string  `json:"QuotaType"`
	Quotas    []Quota `json:"Quotas"`
}

type FiltersQuota struct {
	Collections       []string `json:"Collections"`
	QuotaNames        []string `json:"QuotaNames"`
	QuotaTypes        []string `json:"QuotaTypes"`
	ShortDescriptions []string `json:"ShortDescriptions"`
}

type ReadQuotasRequest struct {
	Base
	Paging
	Filters *FiltersQuota `json:"Filters"`
}
type ReadQuotasResponse struct {
	QuotaTypes    []QuotaTypes `json:"QuotaTypes"`
	NextPageToken string       `json:"NextPageToken,omitempty"`
}

// usage counts what an account holds, by quota name; per-Net counts are
// keyed by Net id.
type usage struct {
	global map[string]int
	perNet map[string]map[string]int
	nets   []string
	// perLB counts the listeners of each load balancer, in lbs' order.
	perLB map[string]map[string]int
	lbs   []string
}

// perLBQuotas are the quotas reported per load balancer.
var perLBQuotas = map[string]bool{"lb_listeners_limit": true}

func (s *Service) usage(tx omi.Tx, account string) (*usage, error) {
	u := &usage{global: map[string]int{}, perNet: map[string]map[string]int{}, perLB: map[string]map[string]int{}}
	own := omi.Query{Owners: []string{account}}
	net := func(id string) map[string]int {
		if u.perNet[id] == nil {
			u.perNet[id] = map[string]int{}
		}
		return u.perNet[id]
	}
	if err := omi.Scan(tx, own, func(n *omi.Net) (bool, error) {
		u.global["vpc_limit"]++
		u.nets = append(u.nets, n.NetId)
		net(n.NetId)
		return true, nil
	}); err != nil {
		return nil, err
	}
	if err := omi.Scan(tx, own, func(sn *omi.Subnet) (bool, error) {
		net(sn.NetId)["subnet_limit"]++
		return true, nil
	}); err != nil {
		return nil, err
	}
	if err := omi.Scan(tx, own, func(t *omi.RouteTable) (bool, error) {
		net(t.NetId)["rtb_limit"]++
		return true, nil
	}); err != nil {
		return nil, err
	}
	if err := omi.Scan(tx, own, func(g *omi.SecGroup) (bool, error) {
		if g.NetId != "" {
			net(g.NetId)["vpc_sg_limit"]++
		} else {
			u.global["sg_limit"]++
		}
		return true, nil
	}); err != nil {
		return nil, err
	}
	if err := omi.Scan(tx, own, func(vm *omi.Vm) (bool, error) {
		if vm.State == omi.VmTerminated || vm.State == omi.VmShuttingDown {
			return true, nil
		}
		u.global["vm_limit"]++
		if t, err := omi.ParseVmType(vm.VmType); err == nil {
			u.global["core_limit"] += t.VCores
			u.global["memory_limit"] += t.MemoryGiB
		}
		return true, nil
	}); err != nil {
		return nil, err
	}
	if err := omi.Scan(tx, own, func(v *omi.Volume) (bool, error) {
		u.global["volume_limit"]++
		u.global["volume_size_limit"] += v.Size
		switch v.VolumeType {
		case "standard", "gp2", "io1":
			u.global[v.VolumeType+"_volume_size_limit"] += v.Size
		}
		if v.VolumeType == "io1" {
			u.global["iops_limit"] += v.Iops
		}
		return true, nil
	}); err != nil {
		return nil, err
	}
	counts := []struct {
		kind omi.Kind
		name string
	}{{omi.KindSnapshot, "snapshot_limit"}, {omi.KindPublicIp, "ip_limit"}, {omi.KindInternetService, "igw_limit"}, {omi.KindNatService, "nat_gateway_limit"}, {omi.KindVirtualGateway, "vpg_limit"}, {omi.KindNetAccessPoint, "network_endpoint_limit"}}
	for _, k := range counts {
		if err := tx.Scan(omi.Query{Kind: k.kind, Owners: []string{account}}, func(omi.Record) (bool, error) {
			u.global[k.name]++
			return true, nil
		}); err != nil {
			return nil, err
		}
	}
	lbs, err := accountLoadBalancers(tx, account)
	if err != nil {
		return nil, err
	}
	for _, l := range lbs {
		u.global["lb_limit"]++
		u.lbs = append(u.lbs, l.LoadBalancerName)
		u.perLB[l.LoadBalancerName] = map[string]int{"lb_listeners_limit": len(l.Listeners)}
	}
	if err := omi.Scan(tx, own, func(*omi.ListenerRule) (bool, error) {
		u.global["lb_rules_limit"]++
		return true, nil
	}); err != nil {
		return nil, err
	}
	if err := omi.Scan(tx, own, func(t *omi.ExportTask) (bool, error) {
		if !t.Done() {
			if t.ImageId != "" {
				u.global["image_export_limit"]++
			} else {
				u.global["snapshot_export_limit"]++
			}
		}
		return true, nil
	}); err != nil {
		return nil, err
	}
	return u, nil
}

func (f *FiltersQuota) match(q Quota, scope string) bool {
	return anyOf(f.Collections, q.QuotaCollection) && anyOf(f.QuotaNames, q.Name) && anyOf(f.QuotaTypes, scope) &&
		anyOf(f.ShortDescriptions, q.ShortDescription)
}

// ReadQuotas lists the caller's quotas and what it uses of each: the
// global ones, then those of each of its Nets.
func (s *Service) ReadQuotas(ctx context.Context, c *omi.Caller, in *ReadQuotasRequest) (*ReadQuotasResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersQuota{}
	}
	if _, err := resultsPerPage(in.ResultsPerPage); err != nil {
		return nil, err
	}
	if omi.IsDryRun(ctx) {
		return &ReadQuotasResponse{QuotaTypes: []QuotaTypes{}}, nil
	}
	var u *usage
	if err := s.view(ctx, func(tx omi.Tx) error {
		var err error
		u, err = s.usage(tx, c.AccountID())
		return err
	}); err != nil {
		return nil, err
	}
	me := c.AccountID()
	scope := func(name string, used map[string]int, perNet, perLB bool) QuotaTypes {
		qt := QuotaTypes{QuotaType: name, Quotas: []Quota{}}
		for _, d := range quotaDefs {
			if perLBQuotas[d.name] != perLB {
				continue
			}
			q := Quota{AccountId: me, Description: d.long, MaxValue: d.max, Name: d.name, QuotaCollection: d.collection,
				ShortDescription: d.short, UsedValue: used[d.name]}
			// The global scope lists the per-Net quotas too, as the real
			// cloud does (quotas/TF-186's recorded "global" answer has
			// subnet_limit, rtb_limit and vpc_sg_limit), with the usage of
			// the Net closest to its limit.
			inScope := d.perNet == perNet || (!perNet && !perLB)
			if d.perNet && !perNet {
				q.UsedValue = 0
				for _, id := range u.nets {
					q.UsedValue = max(q.UsedValue, u.perNet[id][d.name])
				}
			}
			if inScope && f.match(q, name) {
				qt.Quotas = append(qt.Quotas, q)
			}
		}
		return qt
	}
	var all []QuotaTypes
	if g := scope("global", u.global, false, false); len(g.Quotas) > 0 {
		all = append(all, g)
	}
	for _, id := range u.nets {
		if n := scope(id, u.perNet[id], true, false); len(n.Quotas) > 0 {
			all = append(all, n)
		}
	}
	for _, name := range u.lbs {
		if l := scope(name, u.perLB[name], false, true); len(l.Quotas) > 0 {
			all = append(all, l)
		}
	}
	out, next, err := page(all, in.NextPageToken, in.ResultsPerPage)
	if err != nil {
		return nil, err
	}
	return &ReadQuotasResponse{QuotaTypes: nonNil(out), NextPageToken: next}, nil
}
