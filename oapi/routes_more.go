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

		// The default Net and its subnets.
		"ReadNets":    op(authKey, v.ReadNets),
		"ReadSubnets": op(authKey, v.ReadSubnets),

		// Public IPs.
		"CreatePublicIp": op(authKey, v.CreatePublicIp),
		"ReadPublicIps":  op(authKey, v.ReadPublicIps),
		"LinkPublicIp":   op(authKey, v.LinkPublicIp),
		"UnlinkPublicIp": op(authKey, v.UnlinkPublicIp),
		"DeletePublicIp": op(authKey, v.DeletePublicIp),

		// VM console and administrator password.
		"ReadConsoleOutput": op(authKey, v.ReadConsoleOutput),
		"ReadAdminPassword": op(authKey, v.ReadAdminPassword),
	}
}
