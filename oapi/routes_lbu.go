package oapi

import "github.com/omiproject/omi/service"

// lbuRoutes lists the load balancer (LBU) calls, kept as metadata with the
// real API's rules (issue 11). All of them authenticate with an access key.
func lbuRoutes(v *service.Service) map[string]call {
	return map[string]call{
		"CreateLoadBalancer":                op(authKey, v.CreateLoadBalancer),
		"ReadLoadBalancers":                 op(authKey, v.ReadLoadBalancers),
		"UpdateLoadBalancer":                op(authKey, v.UpdateLoadBalancer),
		"DeleteLoadBalancer":                op(authKey, v.DeleteLoadBalancer),
		"CreateLoadBalancerListeners":       op(authKey, v.CreateLoadBalancerListeners),
		"DeleteLoadBalancerListeners":       op(authKey, v.DeleteLoadBalancerListeners),
		"CreateLoadBalancerPolicy":          op(authKey, v.CreateLoadBalancerPolicy),
		"DeleteLoadBalancerPolicy":          op(authKey, v.DeleteLoadBalancerPolicy),
		"RegisterVmsInLoadBalancer":         op(authKey, v.RegisterVmsInLoadBalancer),
		"DeregisterVmsInLoadBalancer":       op(authKey, v.DeregisterVmsInLoadBalancer),
		"LinkLoadBalancerBackendMachines":   op(authKey, v.LinkLoadBalancerBackendMachines),
		"UnlinkLoadBalancerBackendMachines": op(authKey, v.UnlinkLoadBalancerBackendMachines),
		"ReadVmsHealth":                     op(authKey, v.ReadVmsHealth),
		"CreateLoadBalancerTags":            op(authKey, v.CreateLoadBalancerTags),
		"ReadLoadBalancerTags":              op(authKey, v.ReadLoadBalancerTags),
		"DeleteLoadBalancerTags":            op(authKey, v.DeleteLoadBalancerTags),
		"CreateListenerRule":                op(authKey, v.CreateListenerRule),
		"ReadListenerRules":                 op(authKey, v.ReadListenerRules),
		"UpdateListenerRule":                op(authKey, v.UpdateListenerRule),
		"DeleteListenerRule":                op(authKey, v.DeleteListenerRule),
	}
}

// vgwRoutes lists the virtual gateway calls (metadata, no tunnel).
func vgwRoutes(v *service.Service) map[string]call {
	return map[string]call{
		"CreateVirtualGateway":   op(authKey, v.CreateVirtualGateway),
		"ReadVirtualGateways":    op(authKey, v.ReadVirtualGateways),
		"DeleteVirtualGateway":   op(authKey, v.DeleteVirtualGateway),
		"LinkVirtualGateway":     op(authKey, v.LinkVirtualGateway),
		"UnlinkVirtualGateway":   op(authKey, v.UnlinkVirtualGateway),
		"UpdateRoutePropagation": op(authKey, v.UpdateRoutePropagation),
	}
}

// napRoutes lists the Net access point calls (metadata, no traffic).
func napRoutes(v *service.Service) map[string]call {
	return map[string]call{
		"CreateNetAccessPoint":       op(authKey, v.CreateNetAccessPoint),
		"ReadNetAccessPoints":        op(authKey, v.ReadNetAccessPoints),
		"UpdateNetAccessPoint":       op(authKey, v.UpdateNetAccessPoint),
		"DeleteNetAccessPoint":       op(authKey, v.DeleteNetAccessPoint),
		"ReadNetAccessPointServices": op(authNone, v.ReadNetAccessPointServices),
	}
}
