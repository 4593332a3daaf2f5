package service

import (
	"context"
	"encoding/json"

	"github.com/omiproject/omi"
)

// quotaDef is one quota of the real API: its name, collection and
// descriptions as the provider's recorded ReadQuotas shows them
// (terraform-provider-outscale tests/data/oapi/quotas), and the maximum omi
// reports. omi does not enforce these maxima: they are what a default
// OUTSCALE account is given, so that scripts that read them find them.
type quotaDef struct {
	name, collection, short, description string
	max                                  int
}

var quotaDefs = []quotaDef{
	{"vm_limit", "Compute", "VM Limit", "Maximum number of VM this user can own", 20},
	{"core_limit", "Compute", "Core Limit", "Maximum number of total cores (virtual core)", 80},
	{"memory_limit", "Compute", "Memory Limit", "Maximum number of total memory (GiB)", 320},
	{"ip_limit", "Compute", "IP Limit", "Maximum IP addresses the user can allocate", 10},
	{"gpu_limit", "Compute", "GPU Limit", "Maximum number of GPU the user can allocate", 0},
	{"dedicated_server_limit", "Compute", "Dedicated Server Limit", "Maximum number of dedicated servers", 0},
	{"volume_limit", "Storage", "Volume Limit", "Maximum number of BSU volumes", 100},
	{"volume_size_limit", "Storage", "Volume Size Limit", "Maximum cumulated size of BSU volumes (GiB)", 10240},
	{"io1_volume_size_limit", "Storage", "IO1 Volume Size Limit", "Maximum cumulated size of IO1 volumes (GiB)", 10240},
	{"os1_volume_size_limit", "Storage", "OS1 Volume Size Limit", "Maximum cumulated size of OS1 volumes (GiB)", 0},
	{"gp2_volume_size_limit", "Storage", "GP2 Volume Size Limit", "Maximum cumulated size of GP2 volumes (GiB)", 10240},
	{"st1_volume_size_limit", "Storage", "ST1 Volume Size Limit", "Maximum cumulated size of ST1 volumes (GiB)", 0},
	{"sc1_volume_size_limit", "Storage", "SC1 Volume Size Limit", "Maximum cumulated size of SC1 volumes (GiB)", 0},
	{"standard_volume_size_limit", "Storage", "Standard Volume Size Limit", "Maximum cumulated size of standard volumes (GiB)", 10240},
	{"snapshot_limit", "Storage", "Snapshot Limit", "Maximum number of snapshots", 200},
	{"concurrent_snapshot_limit", "Storage", "Concurrent Snapshot Limit", "Maximum number of active snapshots", 20},
	{"snapshot_export_limit", "Storage", "Snapshot Exports Limit", "Maximum number of running snapshot export tasks", 5},
	{"image_export_limit", "Storage", "Image Exports Limit", "Maximum number of running image export tasks", 5},
	{"iops_limit", "Storage", "Provisioned IOPS Limit", "Maximum number of IOPS delivered by provisioned IOPS volumes", 100000},
	{"prefix_list_limit", "Prefix Lists", "Prefix Lists Limit", "Maximum number of prefix lists is reached.", 0},
	{"prefix_list_entry_limit", "Prefix Lists", "Prefix Lists Entry Limit", "Maximum number of prefix list entries is reached.", 0},
	{"sg_limit", "Security Groups", "Security Groups Limit", "Maximum number of security groups", 100},
	{"sg_rule_limit", "Security Groups", "Security Groups Rules Limit", "Maximum number of rules per security groups", 100},
	{"vm_sg_limit", "Security Groups", "VM Security Groups Limit", "Maximum number of groups assigned to a VM", 5},
	{"vpc_sg_limit", "Security Groups", "VPC Security Groups Limit", "Maximum number of security groups per VPC", 100},
	{"vpc_sg_rule_limit", "Security Groups", "VPC Security Groups Rules Limit", "Maximum number of rules per VPC security group", 50},
	{"vpc_limit", "VPC", "VPC Limit", "Maximum number of VPC", 5},
	{"subnet_limit", "VPC", "Subnet Limit", "Maximum number of subnets per VPC", 20},
	{"igw_limit", "VPC", "Internet Gateway Limit", "Maximum number of internet gateways", 5},
	{"rtb_limit", "VPC", "Route Table Limit", "Maximum number of route tables per VPC", 20},
	{"rtb_rule_limit", "VPC", "Route Limit", "Maximum number of route rules per route table", 50},
	{"bypass_vpc_limit", "VPC", "Bypass VPC limit", "Maximum number of firewall bypassing VPCs", 0},
	{"networklink_request_limit", "VPC", "Peering requests limit", "Maximum number of peering connection in pending acceptance", 25},
	{"networklink_limit", "VPC", "Peering connection limit", "Maximum number of available peering connections per VPC", 50},
	{"network_endpoint_limit", "VPC", "VPC Endpoint Limit", "Maximum number of VPC endpoints", 20},
	{"nat_gateway_limit", "VPC", "Nat Gateway Limit", "Maximum number of NAT gateways", 5},
	{"vpg_limit", "VPN", "VPN Gateway Limit", "Maximum number of VPN gateways", 5},
	{"cgw_limit", "VPN", "Customer Gateway Limit", "Maximum number of CGW gateways", 50},
	{"vpnc_limit", "VPN", "VPN Connection Limit", "Maximum number of VPN connections per VPN gateway", 10},
	{"bgp_route_limit", "VPN", "BGP Route Limit", "Maximum number BGP advertised routes per VPN connection", 100},
	{"static_route_limit", "VPN", "Static Route Limit", "Maximum number of static routes per VPN connection", 50},
	{"lb_limit", "LBU", "Load Balancer Limit", "Maximum number of load balancers per region", 20},
	{"lb_listeners_limit", "LBU", "Load Balancer Listeners Limit", "Maximum number of listeners for load balancers", 100},
	{"lb_rules_limit", "LBU", "Load Balancer Listener Rules Limit", "Maximum number of listener rules for an account", 100},
	{"dl_connection_limit", "Direct Link", "Direct Link Connection Limit", "Maximum number of Direct Link connections", 5},
	{"dl_interface_limit", "Direct Link", "Direct Link Interface Limit", "Maximum number Direct Link interfaces per connections", 5},
	{"bypass_group_limit", "Other", "Bypass Group Limit", "Maximum number of bypass group the user can own", 0},
	{"bypass_group_size_limit", "Other", "Bypass Group Size Limit", "Maximum size of a bypass group", 0},
	{"pty_limit", "Other", "Product Type Limit", "Maximum number of product types the user can own", 10},
}

type Quota struct {
	AccountId        string `json:"AccountId"`
	Description      string `json:"Description"`
	MaxValue         int    `json:"MaxValue"`
	Name             string `json:"Name"`
	QuotaCollection  string `json:"QuotaCollection"`
	ShortDescription string `json:"ShortDescription"`
	UsedValue        int    `json:"UsedValue"`
}
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

// ReadQuotas lists the account's quotas of type "global" with the real
// API's names, and what the account uses of each from its stored
// resources (VMs not terminated and their cores and memory, public IPs,
// volumes by count, size, type and IOPS, snapshots, running exports,
// security groups, Nets, internet services, NAT services, keypairs are not
// a quota). The real API also lists per-Net quota types; omi does not.
func (s *Service) ReadQuotas(ctx context.Context, c *omi.Caller, in *ReadQuotasRequest) (*ReadQuotasResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersQuota{}
	}
	used := map[string]int{}
	me := c.AccountID()
	count := func(tx omi.Tx, kind omi.Kind, each func(doc []byte)) error {
		return tx.Scan(omi.Query{Kind: kind, Owners: []string{me}}, func(r omi.Record) (bool, error) {
			each(r.Doc)
			return true, nil
		})
	}
	err := s.view(ctx, func(tx omi.Tx) error {
		if err := count(tx, omi.KindVm, func(doc []byte) {
			var v omi.Vm
			if json.Unmarshal(doc, &v) != nil || v.State == omi.VmTerminated {
				return
			}
			used["vm_limit"]++
			if t, err := omi.ParseVmType(v.VmType); err == nil {
				used["core_limit"] += t.VCores
				used["memory_limit"] += t.MemoryGiB
			}
		}); err != nil {
			return err
		}
		if err := count(tx, omi.KindVolume, func(doc []byte) {
			var v omi.Volume
			if json.Unmarshal(doc, &v) != nil {
				return
			}
			used["volume_limit"]++
			used["volume_size_limit"] += v.Size
			used[v.VolumeType+"_volume_size_limit"] += v.Size
			if v.VolumeType == omi.VolumeIO1 {
				used["iops_limit"] += v.Iops
			}
		}); err != nil {
			return err
		}
		if err := count(tx, omi.KindSnapshot, func(doc []byte) {
			var sn omi.Snapshot
			if json.Unmarshal(doc, &sn) != nil {
				return
			}
			used["snapshot_limit"]++
			if sn.State != omi.SnapshotCompleted && sn.State != "error" {
				used["concurrent_snapshot_limit"]++
			}
		}); err != nil {
			return err
		}
		if err := count(tx, omi.KindTask, func(doc []byte) {
			var t omi.ExportTask
			if json.Unmarshal(doc, &t) != nil || t.Done() {
				return
			}
			if t.ImageId != "" {
				used["image_export_limit"]++
			} else if t.SnapshotId != "" {
				used["snapshot_export_limit"]++
			}
		}); err != nil {
			return err
		}
		for kind, name := range map[omi.Kind]string{omi.KindPublicIp: "ip_limit", omi.KindSecurityGroup: "sg_limit",
			omi.KindNet: "vpc_limit", omi.KindInternetService: "igw_limit", omi.KindNatService: "nat_gateway_limit"} {
			if err := count(tx, kind, func([]byte) { used[name]++ }); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var quotas []Quota
	for _, q := range quotaDefs {
		if anyOf(f.Collections, q.collection) && anyOf(f.QuotaNames, q.name) && anyOf(f.ShortDescriptions, q.short) {
			quotas = append(quotas, Quota{AccountId: me, Description: q.description, MaxValue: q.max, Name: q.name,
				QuotaCollection: q.collection, ShortDescription: q.short, UsedValue: used[q.name]})
		}
	}
	var types []QuotaTypes
	if len(quotas) > 0 && anyOf(f.QuotaTypes, "global") {
		types = append(types, QuotaTypes{QuotaType: "global", Quotas: quotas})
	}
	types, next, err := page(types, in.NextPageToken, in.ResultsPerPage)
	if err != nil {
		return nil, err
	}
	return &ReadQuotasResponse{QuotaTypes: nonNil(types), NextPageToken: next}, nil
}
