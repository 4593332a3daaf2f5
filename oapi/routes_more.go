package oapi

import "github.com/omiproject/omi/service"

// moreRoutes lists the calls around images that Terraform and Packer flows
// need: keypairs, security groups and their rules, the default Net and its
// subnets, public IPs, and the console and password of VMs. All of them
// authenticate with an access key.
func moreRoutes(v *service.Service) map[string]call {
	return map[string]call{
		// Keypairs.
		"CreateKeypair": op(authKey, v.CreateKeypair),
		"ReadKeypairs":  op(authKey, v.ReadKeypairs),
		"DeleteKeypair": op(authKey, v.DeleteKeypair),

		// Security groups and rules.
		"CreateSecurityGroup":     op(authKey, v.CreateSecurityGroup),
		"ReadSecurityGroups":      op(authKey, v.ReadSecurityGroups),
		"DeleteSecurityGroup":     op(authKey, v.DeleteSecurityGroup),
		"CreateSecurityGroupRule": op(authKey, v.CreateSecurityGroupRule),
		"DeleteSecurityGroupRule": op(authKey, v.DeleteSecurityGroupRule),

		// Nets and their subnets.
		"CreateNet":    op(authKey, v.CreateNet),
		"ReadNets":     op(authKey, v.ReadNets),
		"UpdateNet":    op(authKey, v.UpdateNet),
		"DeleteNet":    op(authKey, v.DeleteNet),
		"CreateSubnet": op(authKey, v.CreateSubnet),
		"ReadSubnets":  op(authKey, v.ReadSubnets),
		"UpdateSubnet": op(authKey, v.UpdateSubnet),
		"DeleteSubnet": op(authKey, v.DeleteSubnet),

		// NICs.
		"CreateNic":        op(authKey, v.CreateNic),
		"ReadNics":         op(authKey, v.ReadNics),
		"UpdateNic":        op(authKey, v.UpdateNic),
		"DeleteNic":        op(authKey, v.DeleteNic),
		"LinkNic":          op(authKey, v.LinkNic),
		"UnlinkNic":        op(authKey, v.UnlinkNic),
		"LinkPrivateIps":   op(authKey, v.LinkPrivateIps),
		"UnlinkPrivateIps": op(authKey, v.UnlinkPrivateIps),

		// Quotas.
		"ReadQuotas": op(authKey, v.ReadQuotas),

		// Public IPs.
		"CreatePublicIp": op(authKey, v.CreatePublicIp),
		"ReadPublicIps":  op(authKey, v.ReadPublicIps),
		"LinkPublicIp":   op(authKey, v.LinkPublicIp),
		"UnlinkPublicIp": op(authKey, v.UnlinkPublicIp),
		"DeletePublicIp": op(authKey, v.DeletePublicIp),

		// Net gateways and routing: internet services, route tables and
		// routes, NAT services, Net peerings, DHCP options sets.
		"CreateInternetService": op(authKey, v.CreateInternetService),
		"ReadInternetServices":  op(authKey, v.ReadInternetServices),
		"DeleteInternetService": op(authKey, v.DeleteInternetService),
		"LinkInternetService":   op(authKey, v.LinkInternetService),
		"UnlinkInternetService": op(authKey, v.UnlinkInternetService),
		"CreateRouteTable":      op(authKey, v.CreateRouteTable),
		"ReadRouteTables":       op(authKey, v.ReadRouteTables),
		"DeleteRouteTable":      op(authKey, v.DeleteRouteTable),
		"LinkRouteTable":        op(authKey, v.LinkRouteTable),
		"UnlinkRouteTable":      op(authKey, v.UnlinkRouteTable),
		"UpdateRouteTableLink":  op(authKey, v.UpdateRouteTableLink),
		"CreateRoute":           op(authKey, v.CreateRoute),
		"UpdateRoute":           op(authKey, v.UpdateRoute),
		"DeleteRoute":           op(authKey, v.DeleteRoute),
		"CreateNatService":      op(authKey, v.CreateNatService),
		"ReadNatServices":       op(authKey, v.ReadNatServices),
		"DeleteNatService":      op(authKey, v.DeleteNatService),
		"CreateNetPeering":      op(authKey, v.CreateNetPeering),
		"AcceptNetPeering":      op(authKey, v.AcceptNetPeering),
		"RejectNetPeering":      op(authKey, v.RejectNetPeering),
		"ReadNetPeerings":       op(authKey, v.ReadNetPeerings),
		"DeleteNetPeering":      op(authKey, v.DeleteNetPeering),
		"CreateDhcpOptions":     op(authKey, v.CreateDhcpOptions),
		"ReadDhcpOptions":       op(authKey, v.ReadDhcpOptions),
		"DeleteDhcpOptions":     op(authKey, v.DeleteDhcpOptions),

		// VM console and administrator password.
		"ReadConsoleOutput": op(authKey, v.ReadConsoleOutput),
		"ReadAdminPassword": op(authKey, v.ReadAdminPassword),
	}
}
