package service

import (
	"context"

	"github.com/omiproject/omi"
)

type FiltersLoadBalancer struct {
	LoadBalancerNames []string `json:"LoadBalancerNames"`
	States            []string `json:"States"`
}
type ReadLoadBalancersRequest struct {
	Base
	Filters *FiltersLoadBalancer `json:"Filters"`
}
type ReadLoadBalancersResponse struct {
	LoadBalancers []struct{} `json:"LoadBalancers"`
}

// ReadLoadBalancers lists the caller's load balancers: none, since omi
// serves no load balancer (LBU) yet. It exists because
// terraform-provider-outscale reads the load balancers a security group is
// used by whenever it refreshes or deletes one (getLinkedResources in
// resource_security_group.go), so without it no configuration with a
// security group could be imported or destroyed. The filters are
// type-checked as the spec types them.
func (s *Service) ReadLoadBalancers(ctx context.Context, c *omi.Caller, in *ReadLoadBalancersRequest) (*ReadLoadBalancersResponse, error) {
	return &ReadLoadBalancersResponse{LoadBalancers: []struct{}{}}, nil
}
