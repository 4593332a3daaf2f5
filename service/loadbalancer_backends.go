package service

import (
	"context"
	"net/netip"
	"slices"

	"github.com/omiproject/omi"
)

// Backends of load balancers (VMs and addresses), their health, and
// load balancer tags.

// backendVm checks a VM to register in a load balancer: a live VM of the
// caller, in the load balancer's Net (or, for a load balancer of the
// public Cloud, in no Net).
func (s *Service) backendVm(tx omi.Tx, c *omi.Caller, l *omi.LoadBalancer, id string) error {
	vm, err := s.ownVm(tx, c, id)
	if err != nil {
		return err
	}
	if vm.State == omi.VmTerminated || vm.State == omi.VmShuttingDown {
		return vmNotFound(id)
	}
	if vm.NetId != l.NetId {
		where := "the public Cloud"
		if l.NetId != "" {
			where = "the Net " + l.NetId
		}
		return omi.Invalid(omi.CodeInvalidParameter, "The VM '%s' is not in %s, where the load balancer '%s' is.", id, where, l.LoadBalancerName)
	}
	return nil
}

// vmOfPublicIP finds the live VM of the caller holding a public IP it was
// given at launch (not one of the account's public IPs).
func vmOfPublicIP(tx omi.Tx, c *omi.Caller, ip string) (string, error) {
	var id string
	err := omi.Scan(tx, omi.Query{Owners: []string{c.AccountID()}}, func(vm *omi.Vm) (bool, error) {
		if vm.PublicIp == ip && vm.State != omi.VmTerminated && vm.State != omi.VmShuttingDown {
			id = vm.VmId
			return false, nil
		}
		return true, nil
	})
	if err == nil && id == "" {
		err = omi.NotFound(codeNoSuchIP, "The PublicIp '%s' doesn't exist.", ip)
	}
	return id, err
}

// changeBackends registers (add) or deregisters backends, given by VM id
// or by public IP. An address that is one of the account's public IPs is
// registered as an address: the real cloud then lists it in BackendIps
// and not its VM in BackendVmIds (nets/TF-2, load_balancer_vms/TF-1 of the
// provider's recorded states), and so is the address a VM got at launch
// (load_balancer_vms/TF-11: VMs given by their public_ip leave
// BackendVmIds empty). Registering a backend twice, or deregistering one
// that is not registered, changes nothing.
func (s *Service) changeBackends(ctx context.Context, c *omi.Caller, name string, vmIDs, ips []string, add bool) error {
	if len(vmIDs) == 0 && len(ips) == 0 {
		return omi.Invalid(omi.CodeInvalidParameter, "BackendVmIds or BackendIps is required")
	}
	_, err := s.changeLoadBalancer(ctx, c, name, func(tx omi.Tx, l *omi.LoadBalancer) error {
		ids := append([]string{}, vmIDs...)
		var addrs []string
		for _, ip := range ips {
			if _, err := netip.ParseAddr(ip); err != nil {
				return omi.Invalid(codeInvalidIPAddress, "BackendIps: '%s' is not an IP address.", ip)
			}
			if _, err := ownPublicIP(tx, c, "", ip); err == nil {
				addrs = append(addrs, ip)
				continue
			} else if !isNotFoundErr(err) {
				return err
			}
			if !add && slices.Contains(l.BackendIps, ip) {
				addrs = append(addrs, ip)
				continue
			}
			if _, err := vmOfPublicIP(tx, c, ip); err != nil {
				return err
			}
			addrs = append(addrs, ip)
		}
		for _, id := range ids {
			if add {
				if err := s.backendVm(tx, c, l, id); err != nil {
					return err
				}
				if !slices.Contains(l.BackendVmIds, id) {
					l.BackendVmIds = append(l.BackendVmIds, id)
				}
			} else {
				if _, err := s.ownVm(tx, c, id); err != nil {
					return err
				}
				l.BackendVmIds = slices.DeleteFunc(l.BackendVmIds, func(v string) bool { return v == id })
			}
		}
		for _, ip := range addrs {
			if add && !slices.Contains(l.BackendIps, ip) {
				l.BackendIps = append(l.BackendIps, ip)
			}
			if !add {
				l.BackendIps = slices.DeleteFunc(l.BackendIps, func(v string) bool { return v == ip })
			}
		}
		return nil
	})
	return err
}

type BackendVmsRequest struct {
	Base
	BackendVmIds     []string `json:"BackendVmIds"`
	LoadBalancerName string   `json:"LoadBalancerName"`
}
type BackendVmsResponse struct{}

// RegisterVmsInLoadBalancer adds backend VMs by id.
func (s *Service) RegisterVmsInLoadBalancer(ctx context.Context, c *omi.Caller, in *BackendVmsRequest) (*BackendVmsResponse, error) {
	if len(in.BackendVmIds) == 0 {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "BackendVmIds is required")
	}
	if err := s.changeBackends(ctx, c, in.LoadBalancerName, in.BackendVmIds, nil, true); err != nil {
		return nil, err
	}
	return &BackendVmsResponse{}, nil
}

// DeregisterVmsInLoadBalancer removes backend VMs by id.
func (s *Service) DeregisterVmsInLoadBalancer(ctx context.Context, c *omi.Caller, in *BackendVmsRequest) (*BackendVmsResponse, error) {
	if len(in.BackendVmIds) == 0 {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "BackendVmIds is required")
	}
	if err := s.changeBackends(ctx, c, in.LoadBalancerName, in.BackendVmIds, nil, false); err != nil {
		return nil, err
	}
	return &BackendVmsResponse{}, nil
}

type BackendMachinesRequest struct {
	Base
	BackendIps       []string `json:"BackendIps"`
	BackendVmIds     []string `json:"BackendVmIds"`
	LoadBalancerName string   `json:"LoadBalancerName"`
}

// LinkLoadBalancerBackendMachines adds backend VMs by id or by public IP.
func (s *Service) LinkLoadBalancerBackendMachines(ctx context.Context, c *omi.Caller, in *BackendMachinesRequest) (*BackendVmsResponse, error) {
	if err := s.changeBackends(ctx, c, in.LoadBalancerName, in.BackendVmIds, in.BackendIps, true); err != nil {
		return nil, err
	}
	return &BackendVmsResponse{}, nil
}

// UnlinkLoadBalancerBackendMachines removes backend VMs by id or by
// public IP.
func (s *Service) UnlinkLoadBalancerBackendMachines(ctx context.Context, c *omi.Caller, in *BackendMachinesRequest) (*BackendVmsResponse, error) {
	if err := s.changeBackends(ctx, c, in.LoadBalancerName, in.BackendVmIds, in.BackendIps, false); err != nil {
		return nil, err
	}
	return &BackendVmsResponse{}, nil
}

type ReadVmsHealthRequest struct {
	Base
	BackendVmIds     []string `json:"BackendVmIds"`
	LoadBalancerName string   `json:"LoadBalancerName"`
}

// BackendVmHealth is the health of one backend VM.
type BackendVmHealth struct {
	Description string `json:"Description"`
	State       string `json:"State"`
	StateReason string `json:"StateReason"`
	VmId        string `json:"VmId"`
}
type ReadVmsHealthResponse struct {
	BackendVmHealth []BackendVmHealth `json:"BackendVmHealth"`
}

// ReadVmsHealth reports the health of the backend VMs (all, or those
// asked for, which must be registered): no check runs in omi, so each is
// reported as the real cloud reports a VM not checked yet.
func (s *Service) ReadVmsHealth(ctx context.Context, c *omi.Caller, in *ReadVmsHealthRequest) (*ReadVmsHealthResponse, error) {
	out := []BackendVmHealth{}
	err := s.view(ctx, func(tx omi.Tx) error {
		l, err := ownLoadBalancer(tx, c, in.LoadBalancerName)
		if err != nil {
			return err
		}
		v, err := lbView(tx, l)
		if err != nil {
			return err
		}
		ids := v.BackendVmIds
		if len(in.BackendVmIds) > 0 {
			for _, id := range in.BackendVmIds {
				if !slices.Contains(v.BackendVmIds, id) {
					return omi.Invalid(omi.CodeInvalidParameter, "The VM '%s' is not registered in the load balancer '%s'.", id, l.LoadBalancerName)
				}
			}
			ids = in.BackendVmIds
		}
		for _, id := range ids {
			out = append(out, BackendVmHealth{Description: vmHealthDescription, State: vmHealthState, StateReason: vmHealthReason, VmId: id})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &ReadVmsHealthResponse{BackendVmHealth: out}, nil
}

type CreateLoadBalancerTagsRequest struct {
	Base
	LoadBalancerNames []string  `json:"LoadBalancerNames"`
	Tags              []omi.Tag `json:"Tags"`
}
type LoadBalancerTagsResponse struct{}

// retagLoadBalancers changes the tags of several load balancers, all or
// none.
func (s *Service) retagLoadBalancers(ctx context.Context, c *omi.Caller, names []string, change func(l *omi.LoadBalancer)) error {
	if len(names) == 0 {
		return omi.Invalid(omi.CodeInvalidParameter, "LoadBalancerNames is required")
	}
	return s.update(ctx, func(tx omi.Tx) error {
		for _, n := range names {
			l, err := ownLoadBalancer(tx, c, n)
			if err != nil {
				return err
			}
			change(l)
			if err := omi.Put(tx, l); err != nil {
				return err
			}
		}
		return nil
	})
}

// CreateLoadBalancerTags adds or replaces tags of load balancers.
func (s *Service) CreateLoadBalancerTags(ctx context.Context, c *omi.Caller, in *CreateLoadBalancerTagsRequest) (*LoadBalancerTagsResponse, error) {
	if len(in.Tags) == 0 {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "Tags is required")
	}
	if err := validLBTags(in.Tags); err != nil {
		return nil, err
	}
	err := s.retagLoadBalancers(ctx, c, in.LoadBalancerNames, func(l *omi.LoadBalancer) {
		for _, t := range in.Tags {
			l.Tags = setTag(l.Tags, t)
		}
	})
	if err != nil {
		return nil, err
	}
	return &LoadBalancerTagsResponse{}, nil
}

type DeleteLoadBalancerTagsRequest struct {
	Base
	LoadBalancerNames []string `json:"LoadBalancerNames"`
	Tags              []struct {
		Key string `json:"Key"`
	} `json:"Tags"`
}

// DeleteLoadBalancerTags removes tags of load balancers by key.
func (s *Service) DeleteLoadBalancerTags(ctx context.Context, c *omi.Caller, in *DeleteLoadBalancerTagsRequest) (*LoadBalancerTagsResponse, error) {
	if len(in.Tags) == 0 {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "Tags is required")
	}
	for _, t := range in.Tags {
		if t.Key == "" {
			return nil, omi.Invalid(omi.CodeInvalidTagKey, "tag key must not be empty")
		}
	}
	err := s.retagLoadBalancers(ctx, c, in.LoadBalancerNames, func(l *omi.LoadBalancer) {
		l.Tags = slices.DeleteFunc(l.Tags, func(t omi.Tag) bool {
			return slices.ContainsFunc(in.Tags, func(k struct {
				Key string `json:"Key"`
			}) bool {
				return k.Key == t.Key
			})
		})
	})
	if err != nil {
		return nil, err
	}
	return &LoadBalancerTagsResponse{}, nil
}

type ReadLoadBalancerTagsRequest struct {
	Base
	LoadBalancerNames []string `json:"LoadBalancerNames"`
}

// LoadBalancerTag is a tag with the load balancer it is on.
type LoadBalancerTag struct {
	Key              string `json:"Key"`
	LoadBalancerName string `json:"LoadBalancerName"`
	Value            string `json:"Value"`
}
type ReadLoadBalancerTagsResponse struct {
	Tags []LoadBalancerTag `json:"Tags"`
}

// ReadLoadBalancerTags lists the tags of some load balancers of the
// caller; a name that is not one of its load balancers is refused.
func (s *Service) ReadLoadBalancerTags(ctx context.Context, c *omi.Caller, in *ReadLoadBalancerTagsRequest) (*ReadLoadBalancerTagsResponse, error) {
	if len(in.LoadBalancerNames) == 0 {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "LoadBalancerNames is required")
	}
	out := []LoadBalancerTag{}
	err := s.view(ctx, func(tx omi.Tx) error {
		for _, n := range in.LoadBalancerNames {
			l, err := ownLoadBalancer(tx, c, n)
			if err != nil {
				return err
			}
			for _, t := range l.Tags {
				out = append(out, LoadBalancerTag{Key: t.Key, LoadBalancerName: l.LoadBalancerName, Value: t.Value})
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &ReadLoadBalancerTagsResponse{Tags: out}, nil
}
