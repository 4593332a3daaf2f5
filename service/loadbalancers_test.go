package service_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/service"
)

// The tests of this file cover load balancers (LBU): their defaults as the
// real cloud shows them, the rules and error codes of every call, what
// they lock (security groups, subnets, public IPs), quotas and isolation
// between accounts. Responses are checked against the OpenAPI description.

func listener(lbPort int, proto string, backend int) service.ListenerForCreation {
	return service.ListenerForCreation{LoadBalancerPort: ptr(lbPort), LoadBalancerProtocol: proto, BackendPort: ptr(backend), BackendProtocol: proto}
}

func (g *gwEnv) readLB(c *omi.Caller, name string) *omi.LoadBalancerAPI {
	g.t.Helper()
	out, err := g.svc.ReadLoadBalancers(context.Background(), c, &service.ReadLoadBalancersRequest{Filters: &service.FiltersLoadBalancer{LoadBalancerNames: []string{name}}})
	if err != nil || len(out.LoadBalancers) != 1 {
		g.t.Fatalf("ReadLoadBalancers %s: %v %+v", name, err, out)
	}
	nwValid(g.t, "ReadLoadBalancers", out)
	return out.LoadBalancers[0]
}

func (g *gwEnv) countLBs(c *omi.Caller) int {
	g.t.Helper()
	out, err := g.svc.ReadLoadBalancers(context.Background(), c, &service.ReadLoadBalancersRequest{})
	if err != nil {
		g.t.Fatal(err)
	}
	return len(out.LoadBalancers)
}

// publicVm runs a VM of c in the public Cloud.
func (g *gwEnv) publicVm(c *omi.Caller) *omi.Vm {
	g.t.Helper()
	img := g.images[c.AccountID()]
	if img == nil {
		img = g.image(c, "lb-image-"+c.AccountID())
		g.images[c.AccountID()] = img
	}
	out, err := g.svc.CreateVms(context.Background(), c, &service.CreateVmsRequest{ImageId: img.ImageId, VmType: "tinav5.c2r4p2"})
	if err != nil {
		g.t.Fatal(err)
	}
	g.settle()
	return out.Vms[0]
}

func TestLoadBalancerPublicDefaultsAndBadInput(t *testing.T) {
	g := newGwEnv(t)
	ctx := context.Background()
	out, err := g.svc.CreateLoadBalancer(ctx, g.joe, &service.CreateLoadBalancerRequest{LoadBalancerName: "web-1",
		Listeners: []service.ListenerForCreation{listener(80, "TCP", 80), listener(8080, "HTTP", 8080)},
		Tags:      []omi.Tag{{Key: "name", Value: "web"}}})
	g.must("CreateLoadBalancer", err)
	nwValid(t, "CreateLoadBalancer", out)
	l := g.readLB(g.joe, "web-1")
	want := omi.HealthCheck{CheckInterval: 30, HealthyThreshold: 10, Port: 8080, Protocol: "TCP", Timeout: 5, UnhealthyThreshold: 2}
	if l.HealthCheck != want {
		t.Errorf("health check %+v, want %+v", l.HealthCheck, want)
	}
	if l.SourceSecurityGroup != (omi.SourceSecurityGroup{SecurityGroupAccountId: "outscale-elb", SecurityGroupName: "outscale-elb-sg"}) {
		t.Errorf("source security group %+v", l.SourceSecurityGroup)
	}
	if l.State != "active" || l.LoadBalancerType != "internet-facing" || l.PublicIp == "" || l.NetId != "" ||
		len(l.SubregionNames) != 1 || l.SubregionNames[0] != "eu-west-2a" || len(l.SecurityGroups) != 0 ||
		!strings.HasPrefix(l.DnsName, "web-1-") || !strings.HasSuffix(l.DnsName, ".eu-west-2.lbu.outscale.com") ||
		l.AccessLog.PublicationInterval != 60 || l.AccessLog.IsEnabled || len(l.Listeners) != 2 || len(l.Tags) != 1 {
		t.Errorf("load balancer %+v", l)
	}

	// Bad input: the right code, and nothing made.
	bad := []struct {
		what string
		in   service.CreateLoadBalancerRequest
		code string
	}{
		{"no name", service.CreateLoadBalancerRequest{Listeners: []service.ListenerForCreation{listener(80, "TCP", 80)}}, "4045"},
		{"bad name", service.CreateLoadBalancerRequest{LoadBalancerName: "-web", Listeners: []service.ListenerForCreation{listener(80, "TCP", 80)}}, "4036"},
		{"long name", service.CreateLoadBalancerRequest{LoadBalancerName: strings.Repeat("a", 33), Listeners: []service.ListenerForCreation{listener(80, "TCP", 80)}}, "4036"},
		{"no listener", service.CreateLoadBalancerRequest{LoadBalancerName: "x"}, "4045"},
		{"port 0", service.CreateLoadBalancerRequest{LoadBalancerName: "x", Listeners: []service.ListenerForCreation{listener(0, "TCP", 80)}}, "4037"},
		{"backend port", service.CreateLoadBalancerRequest{LoadBalancerName: "x", Listeners: []service.ListenerForCreation{listener(80, "TCP", 70000)}}, "4037"},
		{"protocol", service.CreateLoadBalancerRequest{LoadBalancerName: "x", Listeners: []service.ListenerForCreation{listener(80, "UDP", 80)}}, "4053"},
		{"layers", service.CreateLoadBalancerRequest{LoadBalancerName: "x", Listeners: []service.ListenerForCreation{{LoadBalancerPort: ptr(80), LoadBalancerProtocol: "HTTP", BackendPort: ptr(80), BackendProtocol: "TCP"}}}, "4054"},
		{"https without certificate", service.CreateLoadBalancerRequest{LoadBalancerName: "x", Listeners: []service.ListenerForCreation{listener(443, "HTTPS", 443)}}, "4045"},
		{"duplicate port", service.CreateLoadBalancerRequest{LoadBalancerName: "x", Listeners: []service.ListenerForCreation{listener(80, "TCP", 80), listener(80, "HTTP", 81)}}, "9012"},
		{"too many listeners", service.CreateLoadBalancerRequest{LoadBalancerName: "x", Listeners: []service.ListenerForCreation{listener(1, "TCP", 1), listener(2, "TCP", 2),
			listener(3, "TCP", 3), listener(4, "TCP", 4), listener(5, "TCP", 5), listener(6, "TCP", 6)}}, "10013"},
		{"subnets and subregions", service.CreateLoadBalancerRequest{LoadBalancerName: "x", Listeners: []service.ListenerForCreation{listener(80, "TCP", 80)},
			Subnets: []string{"subnet-12345678"}, SubregionNames: []string{"eu-west-2a"}}, "4046"},
		{"internal in the public Cloud", service.CreateLoadBalancerRequest{LoadBalancerName: "x", Listeners: []service.ListenerForCreation{listener(80, "TCP", 80)}, LoadBalancerType: "internal"}, "4046"},
		{"bad type", service.CreateLoadBalancerRequest{LoadBalancerName: "x", Listeners: []service.ListenerForCreation{listener(80, "TCP", 80)}, LoadBalancerType: "public"}, "4047"},
		{"unknown subregion", service.CreateLoadBalancerRequest{LoadBalancerName: "x", Listeners: []service.ListenerForCreation{listener(80, "TCP", 80)}, SubregionNames: []string{"eu-west-2z"}}, "5009"},
		{"unknown subnet", service.CreateLoadBalancerRequest{LoadBalancerName: "x", Listeners: []service.ListenerForCreation{listener(80, "TCP", 80)}, Subnets: []string{"subnet-12345678"}}, "5057"},
		{"groups in the public Cloud", service.CreateLoadBalancerRequest{LoadBalancerName: "x", Listeners: []service.ListenerForCreation{listener(80, "TCP", 80)}, SecurityGroups: []string{"sg-12345678"}}, "4046"},
		{"not my public IP", service.CreateLoadBalancerRequest{LoadBalancerName: "x", Listeners: []service.ListenerForCreation{listener(80, "TCP", 80)}, PublicIp: "100.64.1.1"}, "5025"},
		{"empty tag key", service.CreateLoadBalancerRequest{LoadBalancerName: "x", Listeners: []service.ListenerForCreation{listener(80, "TCP", 80)}, Tags: []omi.Tag{{Value: "v"}}}, "4069"},
		{"taken name", service.CreateLoadBalancerRequest{LoadBalancerName: "web-1", Listeners: []service.ListenerForCreation{listener(80, "TCP", 80)}}, "9013"},
	}
	for _, b := range bad {
		_, err := g.svc.CreateLoadBalancer(ctx, g.joe, &b.in)
		nwCode(t, b.what, err, b.code)
	}
	if n := g.countLBs(g.joe); n != 1 {
		t.Errorf("%d load balancers after refused creations, want 1", n)
	}

	// Another account sees nothing of it, may use the same name, and
	// cannot reach joe's by name.
	if n := g.countLBs(g.bob); n != 0 {
		t.Errorf("bob sees %d load balancers", n)
	}
	_, err = g.svc.UpdateLoadBalancer(ctx, g.bob, &service.UpdateLoadBalancerRequest{LoadBalancerName: "web-1", SecuredCookies: ptr(true)})
	nwCode(t, "bob updates joe's", err, "5030")
	_, err = g.svc.DeleteLoadBalancer(ctx, g.bob, &service.DeleteLoadBalancerRequest{LoadBalancerName: "web-1"})
	nwCode(t, "bob deletes joe's", err, "5030")
	_, err = g.svc.CreateLoadBalancerTags(ctx, g.bob, &service.CreateLoadBalancerTagsRequest{LoadBalancerNames: []string{"web-1"}, Tags: []omi.Tag{{Key: "k", Value: "v"}}})
	nwCode(t, "bob tags joe's", err, "5030")
	_, err = g.svc.ReadVmsHealth(ctx, g.bob, &service.ReadVmsHealthRequest{LoadBalancerName: "web-1"})
	nwCode(t, "bob reads joe's health", err, "5030")
	_, err = g.svc.CreateLoadBalancer(ctx, g.bob, &service.CreateLoadBalancerRequest{LoadBalancerName: "web-1", Listeners: []service.ListenerForCreation{listener(80, "TCP", 80)}})
	g.must("bob's web-1", err)
	if l := g.readLB(g.joe, "web-1"); len(l.Listeners) != 2 || len(l.Tags) != 1 {
		t.Errorf("joe's web-1 changed by bob: %+v", l)
	}

	// Tags.
	g.must("CreateLoadBalancerTags", func() error {
		_, err := g.svc.CreateLoadBalancerTags(ctx, g.joe, &service.CreateLoadBalancerTagsRequest{LoadBalancerNames: []string{"web-1"},
			Tags: []omi.Tag{{Key: "name", Value: "web2"}, {Key: "env", Value: "prod"}}})
		return err
	}())
	tags, err := g.svc.ReadLoadBalancerTags(ctx, g.joe, &service.ReadLoadBalancerTagsRequest{LoadBalancerNames: []string{"web-1"}})
	g.must("ReadLoadBalancerTags", err)
	nwValid(t, "ReadLoadBalancerTags", tags)
	if len(tags.Tags) != 2 || tags.Tags[0] != (service.LoadBalancerTag{Key: "name", LoadBalancerName: "web-1", Value: "web2"}) {
		t.Errorf("tags %+v", tags.Tags)
	}
	_, err = g.svc.CreateLoadBalancerTags(ctx, g.joe, &service.CreateLoadBalancerTagsRequest{LoadBalancerNames: []string{"web-1", "nope"}, Tags: []omi.Tag{{Key: "x", Value: "y"}}})
	nwCode(t, "tags on a missing load balancer", err, "5030")
	if l := g.readLB(g.joe, "web-1"); len(l.Tags) != 2 {
		t.Errorf("a refused CreateLoadBalancerTags tagged anyway: %+v", l.Tags)
	}
	g.must("DeleteLoadBalancerTags", func() error {
		_, err := g.svc.DeleteLoadBalancerTags(ctx, g.joe, &service.DeleteLoadBalancerTagsRequest{LoadBalancerNames: []string{"web-1"},
			Tags: []struct {
				Key string `json:"Key"`
			}{{Key: "env"}}})
		return err
	}())
	if l := g.readLB(g.joe, "web-1"); len(l.Tags) != 1 || l.Tags[0].Key != "name" {
		t.Errorf("tags after delete %+v", l.Tags)
	}

	// Listeners.
	_, err = g.svc.CreateLoadBalancerListeners(ctx, g.joe, &service.CreateLoadBalancerListenersRequest{LoadBalancerName: "web-1", Listeners: []service.ListenerForCreation{listener(8080, "TCP", 1)}})
	nwCode(t, "listener on a taken port", err, "9012")
	lo, err := g.svc.CreateLoadBalancerListeners(ctx, g.joe, &service.CreateLoadBalancerListenersRequest{LoadBalancerName: "web-1", Listeners: []service.ListenerForCreation{listener(1024, "TCP", 1024)}})
	g.must("CreateLoadBalancerListeners", err)
	nwValid(t, "CreateLoadBalancerListeners", lo)
	_, err = g.svc.DeleteLoadBalancerListeners(ctx, g.joe, &service.DeleteLoadBalancerListenersRequest{LoadBalancerName: "web-1", LoadBalancerPorts: []int{1024, 9999}})
	nwCode(t, "delete a missing listener", err, "5028")
	if l := g.readLB(g.joe, "web-1"); len(l.Listeners) != 3 {
		t.Errorf("a refused DeleteLoadBalancerListeners deleted: %+v", l.Listeners)
	}
	_, err = g.svc.DeleteLoadBalancerListeners(ctx, g.joe, &service.DeleteLoadBalancerListenersRequest{LoadBalancerName: "web-1", LoadBalancerPorts: []int{1024}})
	g.must("DeleteLoadBalancerListeners", err)

	// Health check and access logs.
	hc := &service.HealthCheckSpec{CheckInterval: ptr(1), HealthyThreshold: ptr(3), Port: ptr(80), Protocol: "TCP", Timeout: ptr(5), UnhealthyThreshold: ptr(3)}
	_, err = g.svc.UpdateLoadBalancer(ctx, g.joe, &service.UpdateLoadBalancerRequest{LoadBalancerName: "web-1", HealthCheck: hc})
	nwCode(t, "check interval 1", err, "4045")
	hc.CheckInterval, hc.Protocol = ptr(15), "HTTP"
	_, err = g.svc.UpdateLoadBalancer(ctx, g.joe, &service.UpdateLoadBalancerRequest{LoadBalancerName: "web-1", HealthCheck: hc})
	nwCode(t, "HTTP check without a path", err, "4045")
	_, err = g.svc.UpdateLoadBalancer(ctx, g.joe, &service.UpdateLoadBalancerRequest{LoadBalancerName: "web-1", AccessLog: &omi.AccessLog{IsEnabled: true, PublicationInterval: 5}})
	nwCode(t, "access logs without a bucket", err, "4045")
	hc.Path = "/health"
	up, err := g.svc.UpdateLoadBalancer(ctx, g.joe, &service.UpdateLoadBalancerRequest{LoadBalancerName: "web-1", HealthCheck: hc,
		AccessLog: &omi.AccessLog{IsEnabled: true, OsuBucketName: "logs", PublicationInterval: 5}})
	g.must("UpdateLoadBalancer", err)
	nwValid(t, "UpdateLoadBalancer", up)
	if l := g.readLB(g.joe, "web-1"); l.HealthCheck.Path != "/health" || l.HealthCheck.CheckInterval != 15 || !l.AccessLog.IsEnabled || l.AccessLog.OsuBucketName != "logs" {
		t.Errorf("after update %+v %+v", l.HealthCheck, l.AccessLog)
	}

	// Security groups are for load balancers of a Net; an empty list
	// (what terraform sends every load balancer when it deletes a group)
	// changes nothing.
	_, err = g.svc.UpdateLoadBalancer(ctx, g.joe, &service.UpdateLoadBalancerRequest{LoadBalancerName: "web-1", SecurityGroups: []string{}})
	g.must("UpdateLoadBalancer with no security group", err)
	_, err = g.svc.UpdateLoadBalancer(ctx, g.joe, &service.UpdateLoadBalancerRequest{LoadBalancerName: "web-1", SecurityGroups: []string{"sg-12345678"}})
	nwCode(t, "security group on a public load balancer", err, "4046")

	// Sticky policies.
	_, err = g.svc.CreateLoadBalancerPolicy(ctx, g.joe, &service.CreateLoadBalancerPolicyRequest{LoadBalancerName: "web-1", PolicyName: "app1", PolicyType: "app"})
	nwCode(t, "app policy without a cookie", err, "4065")
	_, err = g.svc.CreateLoadBalancerPolicy(ctx, g.joe, &service.CreateLoadBalancerPolicyRequest{LoadBalancerName: "web-1", PolicyName: "bad_name", PolicyType: "load_balancer"})
	nwCode(t, "bad policy name", err, "4067")
	po, err := g.svc.CreateLoadBalancerPolicy(ctx, g.joe, &service.CreateLoadBalancerPolicyRequest{LoadBalancerName: "web-1", PolicyName: "sticky", PolicyType: "load_balancer"})
	g.must("CreateLoadBalancerPolicy", err)
	nwValid(t, "CreateLoadBalancerPolicy", po)
	if p := po.LoadBalancer.LoadBalancerStickyCookiePolicies; len(p) != 1 || p[0].CookieExpirationPeriod != 1 {
		t.Errorf("policies %+v", p)
	}
	_, err = g.svc.CreateLoadBalancerPolicy(ctx, g.joe, &service.CreateLoadBalancerPolicyRequest{LoadBalancerName: "web-1", PolicyName: "sticky", PolicyType: "app", CookieName: "c"})
	nwCode(t, "duplicate policy", err, "9021")
	_, err = g.svc.UpdateLoadBalancer(ctx, g.joe, &service.UpdateLoadBalancerRequest{LoadBalancerName: "web-1", LoadBalancerPort: ptr(80), PolicyNames: &[]string{"sticky"}})
	nwCode(t, "policy on a TCP listener", err, "9056")
	_, err = g.svc.UpdateLoadBalancer(ctx, g.joe, &service.UpdateLoadBalancerRequest{LoadBalancerName: "web-1", LoadBalancerPort: ptr(8080), PolicyNames: &[]string{"nope"}})
	nwCode(t, "unknown policy", err, "5056")
	_, err = g.svc.UpdateLoadBalancer(ctx, g.joe, &service.UpdateLoadBalancerRequest{LoadBalancerName: "web-1", LoadBalancerPort: ptr(81), PolicyNames: &[]string{"sticky"}})
	nwCode(t, "policy on a missing listener", err, "5028")
	_, err = g.svc.UpdateLoadBalancer(ctx, g.joe, &service.UpdateLoadBalancerRequest{LoadBalancerName: "web-1", LoadBalancerPort: ptr(8080), PolicyNames: &[]string{"sticky"}})
	g.must("enable policy", err)
	_, err = g.svc.DeleteLoadBalancerPolicy(ctx, g.joe, &service.DeleteLoadBalancerPolicyRequest{LoadBalancerName: "web-1", PolicyName: "sticky"})
	nwCode(t, "delete an enabled policy", err, "9055")
	_, err = g.svc.UpdateLoadBalancer(ctx, g.joe, &service.UpdateLoadBalancerRequest{LoadBalancerName: "web-1", LoadBalancerPort: ptr(8080), PolicyNames: &[]string{}})
	g.must("disable policy", err)
	_, err = g.svc.DeleteLoadBalancerPolicy(ctx, g.joe, &service.DeleteLoadBalancerPolicyRequest{LoadBalancerName: "web-1", PolicyName: "sticky"})
	g.must("DeleteLoadBalancerPolicy", err)
	_, err = g.svc.DeleteLoadBalancerPolicy(ctx, g.joe, &service.DeleteLoadBalancerPolicyRequest{LoadBalancerName: "web-1", PolicyName: "sticky"})
	nwCode(t, "delete a deleted policy", err, "5056")

	// Backend VMs: VMs of the public Cloud only, health as the real cloud
	// reports a VM not checked yet.
	vm := g.publicVm(g.joe)
	n := g.net(g.joe, "10.1.0.0/16")
	netVm := g.vmIn(g.joe, n, g.subnet(g.joe, n, "10.1.1.0/24"))
	_, err = g.svc.RegisterVmsInLoadBalancer(ctx, g.joe, &service.BackendVmsRequest{LoadBalancerName: "web-1", BackendVmIds: []string{vm.VmId, netVm.VmId}})
	nwCode(t, "register a VM of a Net in a public load balancer", err, "4045")
	bobVm := g.publicVm(g.bob)
	_, err = g.svc.RegisterVmsInLoadBalancer(ctx, g.joe, &service.BackendVmsRequest{LoadBalancerName: "web-1", BackendVmIds: []string{bobVm.VmId}})
	nwCode(t, "register bob's VM", err, "5063")
	_, err = g.svc.RegisterVmsInLoadBalancer(ctx, g.joe, &service.BackendVmsRequest{LoadBalancerName: "web-1", BackendVmIds: []string{vm.VmId, vm.VmId}})
	g.must("RegisterVmsInLoadBalancer", err)
	if l := g.readLB(g.joe, "web-1"); len(l.BackendVmIds) != 1 || l.BackendVmIds[0] != vm.VmId {
		t.Errorf("backends %v", l.BackendVmIds)
	}
	h, err := g.svc.ReadVmsHealth(ctx, g.joe, &service.ReadVmsHealthRequest{LoadBalancerName: "web-1"})
	g.must("ReadVmsHealth", err)
	nwValid(t, "ReadVmsHealth", h)
	if len(h.BackendVmHealth) != 1 || h.BackendVmHealth[0] != (service.BackendVmHealth{VmId: vm.VmId, State: "DOWN", StateReason: "ELB", Description: "Instance registration is pending"}) {
		t.Errorf("health %+v", h.BackendVmHealth)
	}
	_, err = g.svc.LinkLoadBalancerBackendMachines(ctx, g.joe, &service.BackendMachinesRequest{LoadBalancerName: "web-1", BackendIps: []string{"nope"}})
	nwCode(t, "backend IP that is no address", err, "4030")
	ip, err := g.svc.CreatePublicIp(ctx, g.joe, &service.CreatePublicIpRequest{})
	g.must("CreatePublicIp", err)
	_, err = g.svc.LinkLoadBalancerBackendMachines(ctx, g.joe, &service.BackendMachinesRequest{LoadBalancerName: "web-1", BackendIps: []string{ip.PublicIp.PublicIp}})
	g.must("LinkLoadBalancerBackendMachines", err)
	// BackendIps lists the registered address, then the registered VM's
	// own (its launch address).
	if l := g.readLB(g.joe, "web-1"); !slices.Equal(l.BackendIps, []string{ip.PublicIp.PublicIp, vm.PublicIp}) || vm.PublicIp == "" || len(l.BackendVmIds) != 1 {
		t.Errorf("backend IPs %v, VMs %v", l.BackendIps, l.BackendVmIds)
	}
	_, err = g.svc.UnlinkLoadBalancerBackendMachines(ctx, g.joe, &service.BackendMachinesRequest{LoadBalancerName: "web-1", BackendIps: []string{ip.PublicIp.PublicIp}, BackendVmIds: []string{vm.VmId}})
	g.must("UnlinkLoadBalancerBackendMachines", err)
	if l := g.readLB(g.joe, "web-1"); len(l.BackendIps) != 0 || len(l.BackendVmIds) != 0 {
		t.Errorf("after unlink: backend IPs %v, VMs %v", l.BackendIps, l.BackendVmIds)
	}

	// Quotas: one lb_listeners_limit per load balancer.
	q, err := g.svc.ReadQuotas(ctx, g.joe, &service.ReadQuotasRequest{Filters: &service.FiltersQuota{QuotaTypes: []string{"web-1"}}})
	g.must("ReadQuotas", err)
	nwValid(t, "ReadQuotas", q)
	if len(q.QuotaTypes) != 1 || len(q.QuotaTypes[0].Quotas) != 1 || q.QuotaTypes[0].Quotas[0].Name != "lb_listeners_limit" || q.QuotaTypes[0].Quotas[0].UsedValue != 2 {
		t.Errorf("quotas of web-1: %+v", q.QuotaTypes)
	}
	q, err = g.svc.ReadQuotas(ctx, g.joe, &service.ReadQuotasRequest{Filters: &service.FiltersQuota{QuotaNames: []string{"lb_limit"}}})
	if err != nil || len(q.QuotaTypes) != 1 || q.QuotaTypes[0].Quotas[0].UsedValue != 1 {
		t.Errorf("lb_limit: %+v %v", q, err)
	}

	// Delete: gone, and the name is free.
	_, err = g.svc.DeleteLoadBalancer(ctx, g.joe, &service.DeleteLoadBalancerRequest{LoadBalancerName: "web-1"})
	g.must("DeleteLoadBalancer", err)
	_, err = g.svc.DeleteLoadBalancer(ctx, g.joe, &service.DeleteLoadBalancerRequest{LoadBalancerName: "web-1"})
	nwCode(t, "delete twice", err, "5030")
	if n := g.countLBs(g.joe); n != 0 {
		t.Errorf("%d load balancers after delete", n)
	}
	if n := g.countLBs(g.bob); n != 1 {
		t.Errorf("bob's load balancer went with joe's: %d", n)
	}
}

func TestLoadBalancerInNetLocksWhatItUses(t *testing.T) {
	g := newGwEnv(t)
	ctx := context.Background()
	n := g.net(g.joe, "10.0.0.0/16")
	sn := g.subnet(g.joe, n, "10.0.1.0/24")
	sg := func(c *omi.Caller, name, netID string) string {
		out, err := g.svc.CreateSecurityGroup(ctx, c, &service.CreateSecurityGroupRequest{SecurityGroupName: name, Description: "lb", NetId: netID})
		g.must("CreateSecurityGroup", err)
		return out.SecurityGroup.SecurityGroupId
	}
	sg1, sg2 := sg(g.joe, "lb-1", n.NetId), sg(g.joe, "lb-2", n.NetId)
	other := g.net(g.joe, "10.2.0.0/16")
	sgOther := sg(g.joe, "lb-other", other.NetId)
	l80 := []service.ListenerForCreation{listener(80, "HTTP", 80)}

	// No group given: the Net's default one.
	_, err := g.svc.CreateLoadBalancer(ctx, g.joe, &service.CreateLoadBalancerRequest{LoadBalancerName: "in-default", Listeners: l80, Subnets: []string{sn.SubnetId}, LoadBalancerType: "internal"})
	g.must("CreateLoadBalancer in a Net", err)
	l := g.readLB(g.joe, "in-default")
	if l.NetId != n.NetId || len(l.Subnets) != 1 || l.Subnets[0] != sn.SubnetId || len(l.SecurityGroups) != 1 ||
		l.SourceSecurityGroup.SecurityGroupName != "default" || l.SourceSecurityGroup.SecurityGroupAccountId != g.joe.AccountID() ||
		l.PublicIp != "" || l.LoadBalancerType != "internal" || !strings.HasPrefix(l.DnsName, "internal-in-default-") || l.SubregionNames[0] != "eu-west-2a" {
		t.Errorf("internal load balancer %+v", l)
	}
	_, err = g.svc.DeleteLoadBalancer(ctx, g.joe, &service.DeleteLoadBalancerRequest{LoadBalancerName: "in-default"})
	g.must("DeleteLoadBalancer", err)

	_, err = g.svc.CreateLoadBalancer(ctx, g.joe, &service.CreateLoadBalancerRequest{LoadBalancerName: "in-net", Listeners: l80, Subnets: []string{sn.SubnetId}, SecurityGroups: []string{sg1, sgOther}})
	nwCode(t, "group of another Net", err, "4086")
	_, err = g.svc.CreateLoadBalancer(ctx, g.bob, &service.CreateLoadBalancerRequest{LoadBalancerName: "in-net", Listeners: l80, Subnets: []string{sn.SubnetId}})
	nwCode(t, "bob in joe's subnet", err, "5057")
	ip, err := g.svc.CreatePublicIp(ctx, g.joe, &service.CreatePublicIpRequest{})
	g.must("CreatePublicIp", err)
	_, err = g.svc.CreateLoadBalancer(ctx, g.joe, &service.CreateLoadBalancerRequest{LoadBalancerName: "in-net", Listeners: l80, Subnets: []string{sn.SubnetId},
		SecurityGroups: []string{sg1}, PublicIp: ip.PublicIp.PublicIp})
	g.must("CreateLoadBalancer with a public IP", err)
	l = g.readLB(g.joe, "in-net")
	if l.PublicIp != ip.PublicIp.PublicIp || l.SourceSecurityGroup.SecurityGroupName != "lb-1" || len(l.SecurityGroups) != 1 || l.SecurityGroups[0] != sg1 {
		t.Errorf("load balancer %+v", l)
	}

	// What it uses cannot go.
	_, err = g.svc.DeleteSecurityGroup(ctx, g.joe, &service.DeleteSecurityGroupRequest{SecurityGroupId: sg1})
	nwCode(t, "delete a group of a load balancer", err, "9085")
	_, err = g.svc.DeleteSubnet(ctx, g.joe, &service.DeleteSubnetRequest{SubnetId: sn.SubnetId})
	nwCode(t, "delete the subnet of a load balancer", err, "9095")
	_, err = g.svc.DeletePublicIp(ctx, g.joe, &service.DeletePublicIpRequest{PublicIpId: ip.PublicIp.PublicIpId})
	nwCode(t, "delete the public IP of a load balancer", err, "9031")
	_, err = g.svc.CreateLoadBalancer(ctx, g.joe, &service.CreateLoadBalancerRequest{LoadBalancerName: "second", Listeners: l80, Subnets: []string{sn.SubnetId},
		SecurityGroups: []string{sg1}, PublicIp: ip.PublicIp.PublicIp})
	nwCode(t, "a public IP two load balancers", err, "9031")

	// Groups change; the one left is free.
	_, err = g.svc.UpdateLoadBalancer(ctx, g.joe, &service.UpdateLoadBalancerRequest{LoadBalancerName: "in-net", SecurityGroups: []string{sgOther}})
	nwCode(t, "update to a group of another Net", err, "4086")
	_, err = g.svc.UpdateLoadBalancer(ctx, g.joe, &service.UpdateLoadBalancerRequest{LoadBalancerName: "in-net", SecurityGroups: []string{sg2}})
	g.must("UpdateLoadBalancer SecurityGroups", err)
	if l := g.readLB(g.joe, "in-net"); len(l.SecurityGroups) != 1 || l.SecurityGroups[0] != sg2 || l.SourceSecurityGroup.SecurityGroupName != "lb-2" {
		t.Errorf("groups after update %+v %+v", l.SecurityGroups, l.SourceSecurityGroup)
	}
	_, err = g.svc.DeleteSecurityGroup(ctx, g.joe, &service.DeleteSecurityGroupRequest{SecurityGroupId: sg1})
	g.must("delete the group no longer used", err)

	// Backend VMs of the Net only.
	vm := g.vmIn(g.joe, n, sn)
	_, err = g.svc.RegisterVmsInLoadBalancer(ctx, g.joe, &service.BackendVmsRequest{LoadBalancerName: "in-net", BackendVmIds: []string{g.publicVm(g.joe).VmId}})
	nwCode(t, "a public VM in a load balancer of a Net", err, "4045")
	_, err = g.svc.RegisterVmsInLoadBalancer(ctx, g.joe, &service.BackendVmsRequest{LoadBalancerName: "in-net", BackendVmIds: []string{vm.VmId}})
	g.must("RegisterVmsInLoadBalancer", err)

	// Listener rules.
	rule := func(name string, prio int) *service.CreateListenerRuleRequest {
		return &service.CreateListenerRuleRequest{Listener: &service.LoadBalancerLight{LoadBalancerName: "in-net", LoadBalancerPort: ptr(80)},
			ListenerRule: &service.ListenerRuleForCreation{ListenerRuleName: name, Priority: ptr(prio), PathPattern: "/api/*"}, VmIds: []string{vm.VmId}}
	}
	ro, err := g.svc.CreateListenerRule(ctx, g.joe, rule("api", 10))
	g.must("CreateListenerRule", err)
	nwValid(t, "CreateListenerRule", ro)
	_, err = g.svc.CreateListenerRule(ctx, g.joe, rule("api", 11))
	nwCode(t, "rule name taken", err, "9054")
	_, err = g.svc.CreateListenerRule(ctx, g.joe, rule("api2", 10))
	nwCode(t, "priority taken", err, "9047")
	bad := rule("api3", 12)
	bad.Listener.LoadBalancerPort = ptr(81)
	_, err = g.svc.CreateListenerRule(ctx, g.joe, bad)
	nwCode(t, "rule on a missing listener", err, "5028")
	bad = rule("api3", 20000)
	_, err = g.svc.CreateListenerRule(ctx, g.joe, bad)
	nwCode(t, "priority 20000", err, "4045")
	uo, err := g.svc.UpdateListenerRule(ctx, g.joe, &service.UpdateListenerRuleRequest{ListenerRuleName: "api", HostPattern: ptr("*.example.com")})
	g.must("UpdateListenerRule", err)
	nwValid(t, "UpdateListenerRule", uo)
	rr, err := g.svc.ReadListenerRules(ctx, g.joe, &service.ReadListenerRulesRequest{})
	g.must("ReadListenerRules", err)
	nwValid(t, "ReadListenerRules", rr)
	if len(rr.ListenerRules) != 1 || rr.ListenerRules[0].HostNamePattern != "*.example.com" || rr.ListenerRules[0].PathPattern != "/api/*" || rr.ListenerRules[0].Action != "forward" {
		t.Errorf("rules %+v", rr.ListenerRules)
	}
	if rb, _ := g.svc.ReadListenerRules(ctx, g.bob, &service.ReadListenerRulesRequest{}); len(rb.ListenerRules) != 0 {
		t.Errorf("bob sees joe's rules")
	}
	_, err = g.svc.DeleteListenerRule(ctx, g.bob, &service.DeleteListenerRuleRequest{ListenerRuleName: "api"})
	nwCode(t, "bob deletes joe's rule", err, "5029")

	// Deleting the load balancer takes its rules and frees what it used.
	_, err = g.svc.DeleteLoadBalancer(ctx, g.joe, &service.DeleteLoadBalancerRequest{LoadBalancerName: "in-net"})
	g.must("DeleteLoadBalancer", err)
	if rr, _ := g.svc.ReadListenerRules(ctx, g.joe, &service.ReadListenerRulesRequest{}); len(rr.ListenerRules) != 0 {
		t.Errorf("rules left after their load balancer: %+v", rr.ListenerRules)
	}
	_, err = g.svc.DeletePublicIp(ctx, g.joe, &service.DeletePublicIpRequest{PublicIpId: ip.PublicIp.PublicIpId})
	g.must("DeletePublicIp after the load balancer", err)
	_, err = g.svc.DeleteSecurityGroup(ctx, g.joe, &service.DeleteSecurityGroupRequest{SecurityGroupId: sg2})
	g.must("DeleteSecurityGroup after the load balancer", err)
}

func TestLoadBalancerDryRun(t *testing.T) {
	g := newGwEnv(t)
	_, err := g.svc.CreateLoadBalancer(dry(), g.joe, &service.CreateLoadBalancerRequest{LoadBalancerName: "dry", Listeners: []service.ListenerForCreation{listener(80, "TCP", 80)}})
	g.must("dry CreateLoadBalancer", err)
	if n := g.countLBs(g.joe); n != 0 {
		t.Errorf("a dry run created %d load balancers", n)
	}
}
