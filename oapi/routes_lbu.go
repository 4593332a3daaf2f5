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
		// Server certificates are EIM's; the listeners above use them.
		"CreateServerCertificate": op(authKey, v.CreateServerCertificate),
		"ReadServerCertificates":  op(authKey, v.ReadServerCertificates),
		"UpdateServerCertificate": op(authKey, v.UpdateServerCertificate),
		"DeleteServerCertificate": op(authKey, v.DeleteServerCertificate),
	}
}
