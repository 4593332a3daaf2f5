package oapi

import "github.com/omiproject/omi/service"

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
