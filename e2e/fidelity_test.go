package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/omiproject/omi/apitest"
)

// The differences terraform-provider-outscale's recorded states
// (tests/data/oapi/*/*.ref, terraform states taken against the real cloud)
// and its acceptance tests showed between omi and the real API (issue 11).

// wantError checks a refused call: status 400 and the OUTSCALE code.
func wantError(t *testing.T, what string, r *apitest.Response, code string) {
	t.Helper()
	if r.Status != http.StatusBadRequest || r.ErrorCode() != code {
		t.Errorf("%s: %s, want 400 %s", what, r, code)
	}
}

func TestFidelityVms(t *testing.T) {
	e := apitest.Start(t)
	vol := newVolume(t, e, e.Joe, 1)
	img := registerImage(t, e, e.Joe, "fidelity-base", newSnapshot(t, e, e.Joe, vol)).ImageId
	waitImage(t, e, e.Joe, img, "available")
	var sg1, sg2 struct {
		SecurityGroup struct{ SecurityGroupId string }
	}
	e.MustCall(t, e.Joe, "CreateSecurityGroup", map[string]any{"SecurityGroupName": "one", "Description": "one"}, &sg1)
	e.MustCall(t, e.Joe, "CreateSecurityGroup", map[string]any{"SecurityGroupName": "two", "Description": "two"}, &sg2)
	var created struct{ Vms []map[string]any }
	e.MustCall(t, e.Joe, "CreateVms", map[string]any{"ImageId": img, "SecurityGroupIds": []string{sg1.SecurityGroup.SecurityGroupId}}, &created)
	vmID := created.Vms[0]["VmId"].(string)
	readVm := func() map[string]any {
		var out struct{ Vms []map[string]any }
		e.MustCall(t, e.Joe, "ReadVms", map[string]any{"Filters": map[string]any{"VmIds": []string{vmID}}}, &out)
		if len(out.Vms) != 1 {
			t.Fatalf("ReadVms %s: %d VMs", vmID, len(out.Vms))
		}
		return out.Vms[0]
	}
	vm := readVm()
	// Recorded: actions_on_next_boot.secure_boot "none", bsu_optimized
	// and is_source_dest_checked false outside a Net.
	if a, _ := vm["ActionsOnNextBoot"].(map[string]any); a["SecureBoot"] != "none" {
		t.Errorf("ActionsOnNextBoot = %v, want SecureBoot none", vm["ActionsOnNextBoot"])
	}
	if vm["BsuOptimized"] != false || vm["IsSourceDestChecked"] != false {
		t.Errorf("BsuOptimized %v IsSourceDestChecked %v, want false false", vm["BsuOptimized"], vm["IsSourceDestChecked"])
	}

	// UpdateVm honours SecurityGroupIds and ActionsOnNextBoot.
	e.MustCall(t, e.Joe, "UpdateVm", map[string]any{"VmId": vmID, "SecurityGroupIds": []string{sg2.SecurityGroup.SecurityGroupId},
		"ActionsOnNextBoot": map[string]any{"SecureBoot": "enable"}}, nil)
	vm = readVm()
	groups, _ := json.Marshal(vm["SecurityGroups"])
	if !strings.Contains(string(groups), sg2.SecurityGroup.SecurityGroupId) || strings.Contains(string(groups), sg1.SecurityGroup.SecurityGroupId) {
		t.Errorf("after UpdateVm SecurityGroupIds=[%s]: SecurityGroups %s", sg2.SecurityGroup.SecurityGroupId, groups)
	}
	if a, _ := vm["ActionsOnNextBoot"].(map[string]any); a["SecureBoot"] != "enable" {
		t.Errorf("after UpdateVm: ActionsOnNextBoot = %v, want SecureBoot enable", vm["ActionsOnNextBoot"])
	}
	// The next boot carries the action out: none again once started.
	e.MustCall(t, e.Joe, "StopVms", map[string]any{"VmIds": []string{vmID}}, nil)
	apitest.WaitFor(t, time.Minute, "the VM stopped", func() (bool, error) { return readVm()["State"] == "stopped", nil })
	if a, _ := readVm()["ActionsOnNextBoot"].(map[string]any); a["SecureBoot"] != "enable" {
		t.Errorf("stopped: ActionsOnNextBoot = %v, want SecureBoot enable", a)
	}
	e.MustCall(t, e.Joe, "StartVms", map[string]any{"VmIds": []string{vmID}}, nil)
	if a, _ := readVm()["ActionsOnNextBoot"].(map[string]any); a["SecureBoot"] != "none" {
		t.Errorf("started: ActionsOnNextBoot = %v, want SecureBoot none", a)
	}
	var titiSG struct {
		SecurityGroup struct{ SecurityGroupId string }
	}
	e.MustCall(t, e.Titi, "CreateSecurityGroup", map[string]any{"SecurityGroupName": "titi", "Description": "titi"}, &titiSG)
	r := e.Call(t, e.Joe, "UpdateVm", map[string]any{"VmId": vmID, "SecurityGroupIds": []string{titiSG.SecurityGroup.SecurityGroupId}})
	if r.Status != http.StatusBadRequest {
		t.Errorf("UpdateVm with titi's security group: %s, want 400", r)
	}
	wantError(t, "UpdateVm with no security group", e.Call(t, e.Joe, "UpdateVm", map[string]any{"VmId": vmID, "SecurityGroupIds": []string{}}), "4045")

	// Wrong JSON types are refused (4108), not ignored.
	for _, body := range []map[string]any{
		{"VmId": vmID, "SecurityGroupIds": "sg-12345678"},
		{"VmId": vmID, "SecurityGroupIds": []any{1}},
		{"VmId": vmID, "BsuOptimized": "yes"},
		{"VmId": vmID, "NestedVirtualization": 1},
		{"VmId": vmID, "ActionsOnNextBoot": "enable"},
	} {
		wantError(t, "UpdateVm "+string(must(json.Marshal(body))), e.Call(t, e.Joe, "UpdateVm", body), "4108")
	}
	for _, body := range []map[string]any{
		{"ImageId": img, "BsuOptimized": "yes"},
		{"ImageId": img, "NestedVirtualization": "no"},
		{"ImageId": img, "ActionsOnNextBoot": []string{"x"}},
	} {
		wantError(t, "CreateVms "+string(must(json.Marshal(body))), e.Call(t, e.Joe, "CreateVms", body), "4108")
	}
	wantError(t, "UpdateVm with an unknown SecureBoot action",
		e.Call(t, e.Joe, "UpdateVm", map[string]any{"VmId": vmID, "ActionsOnNextBoot": map[string]any{"SecureBoot": "sometimes"}}), "4047")
	var all struct{ Vms []json.RawMessage }
	e.MustCall(t, e.Joe, "ReadVms", map[string]any{}, &all)
	if len(all.Vms) != 1 {
		t.Errorf("refused CreateVms made VMs: %d listed, want 1", len(all.Vms))
	}

	// ReadVms type-checks the items of the filters it has no data for.
	wantError(t, "ReadVms NicMacAddresses [1]", e.Call(t, e.Joe, "ReadVms", map[string]any{"Filters": map[string]any{"NicMacAddresses": []any{1}}}), "4108")
	wantError(t, "ReadVms StateReasonCodes [\"a\"]", e.Call(t, e.Joe, "ReadVms", map[string]any{"Filters": map[string]any{"StateReasonCodes": []any{"a"}}}), "4108")
	wantError(t, "ReadVms NicPrivateIpsPrimaryIp \"yes\"", e.Call(t, e.Joe, "ReadVms", map[string]any{"Filters": map[string]any{"NicPrivateIpsPrimaryIp": "yes"}}), "4108")
	e.MustCall(t, e.Joe, "ReadVms", map[string]any{"Filters": map[string]any{"StateReasonCodes": []int{1}}}, &all)
	if len(all.Vms) != 0 {
		t.Errorf("StateReasonCodes [1] matched %d VMs, want 0 (omi has no state reasons)", len(all.Vms))
	}

	// ReadVmsState: omi VMs have no maintenance events.
	states := func(f map[string]any) int {
		var out struct{ VmStates []json.RawMessage }
		e.MustCall(t, e.Joe, "ReadVmsState", map[string]any{"AllVms": true, "Filters": f}, &out)
		return len(out.VmStates)
	}
	if n := states(map[string]any{}); n != 1 {
		t.Errorf("ReadVmsState = %d, want 1", n)
	}
	for _, f := range []map[string]any{
		{"MaintenanceEventCodes": []string{"system-reboot"}},
		{"MaintenanceEventDescriptions": []string{"x"}},
		{"MaintenanceEventsNotBefore": []string{"2020-01-01"}},
		{"MaintenanceEventsNotAfter": []string{"2099-01-01"}},
	} {
		if n := states(f); n != 0 {
			t.Errorf("ReadVmsState %v = %d VMs, want 0", f, n)
		}
	}
	wantError(t, "ReadVmsState MaintenanceEventsNotAfter not a date",
		e.Call(t, e.Joe, "ReadVmsState", map[string]any{"Filters": map[string]any{"MaintenanceEventsNotAfter": []string{"soon"}}}), "4047")
	wantError(t, "ReadVmsState MaintenanceEventCodes [1]",
		e.Call(t, e.Joe, "ReadVmsState", map[string]any{"Filters": map[string]any{"MaintenanceEventCodes": []int{1}}}), "4108")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// The real API reports Iops for every volume type: 150 for standard, 3
// per GiB within 100..16000 for gp2, as given for io1.
func TestFidelityVolumeIops(t *testing.T) {
	e := apitest.Start(t)
	for _, c := range []struct {
		body map[string]any
		want float64
	}{
		{map[string]any{"Size": 10, "VolumeType": "standard"}, 150},
		{map[string]any{"Size": 12}, 150},
		{map[string]any{"Size": 12, "VolumeType": "gp2"}, 100},
		{map[string]any{"Size": 50, "VolumeType": "gp2"}, 150},
		{map[string]any{"Size": 10, "VolumeType": "io1", "Iops": 300}, 300},
	} {
		c.body["SubregionName"] = apitest.Region + "a"
		var out struct{ Volume map[string]any }
		e.MustCall(t, e.Joe, "CreateVolume", c.body, &out)
		id := out.Volume["VolumeId"].(string)
		var read struct{ Volumes []map[string]any }
		e.MustCall(t, e.Joe, "ReadVolumes", map[string]any{"Filters": map[string]any{"VolumeIds": []string{id}}}, &read)
		if out.Volume["Iops"] != c.want || len(read.Volumes) != 1 || read.Volumes[0]["Iops"] != c.want {
			t.Errorf("%v: Iops %v on create, %v on read; want %v", c.body, out.Volume["Iops"], read.Volumes, c.want)
		}
	}
}

// CreateKeypair takes a public key as it sits in a .pub file (terraform's
// public_key = file("id.pub")), as well as its Base64.
func TestFidelityKeypairPlainOpenSSH(t *testing.T) {
	e := apitest.Start(t)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " me@laptop\n"
	var out struct{ Keypair map[string]any }
	e.MustCall(t, e.Joe, "CreateKeypair", map[string]any{"KeypairName": "plain", "PublicKey": line}, &out)
	if out.Keypair["KeypairType"] != "ssh-ed25519" || out.Keypair["KeypairFingerprint"] != ssh.FingerprintLegacyMD5(sp) {
		t.Errorf("plain OpenSSH key: %v", out.Keypair)
	}
	wantError(t, "a PublicKey neither Base64 nor a key", e.Call(t, e.Joe, "CreateKeypair", map[string]any{"KeypairName": "bad", "PublicKey": "not a key!"}), "4083")
	wantError(t, "a truncated plain key", e.Call(t, e.Joe, "CreateKeypair", map[string]any{"KeypairName": "bad", "PublicKey": "ssh-ed25519 AAAA"}), "4083")
}

// CreateTags refuses a tag without Value (the spec requires it); an
// empty Value is a tag.
func TestFidelityTagWithoutValue(t *testing.T) {
	e := apitest.Start(t)
	vol := newVolume(t, e, e.Joe, 1)
	wantError(t, "CreateTags without Value", e.Call(t, e.Joe, "CreateTags", map[string]any{"ResourceIds": []string{vol},
		"Tags": []map[string]any{{"Key": "a", "Value": "1"}, {"Key": "b"}}}), "4045")
	wantError(t, "CreateTags with Value null", e.Call(t, e.Joe, "CreateTags", map[string]any{"ResourceIds": []string{vol},
		"Tags": []map[string]any{{"Key": "b", "Value": nil}}}), "4045")
	var tags struct{ Tags []json.RawMessage }
	e.MustCall(t, e.Joe, "ReadTags", map[string]any{"Filters": map[string]any{"ResourceIds": []string{vol}}}, &tags)
	if len(tags.Tags) != 0 {
		t.Errorf("a refused CreateTags left %d tags", len(tags.Tags))
	}
	e.MustCall(t, e.Joe, "CreateTags", map[string]any{"ResourceIds": []string{vol}, "Tags": []map[string]any{{"Key": "b", "Value": ""}}}, nil)
	e.MustCall(t, e.Joe, "ReadTags", map[string]any{"Filters": map[string]any{"ResourceIds": []string{vol}}}, &tags)
	if len(tags.Tags) != 1 {
		t.Errorf("CreateTags with an empty Value: %d tags, want 1", len(tags.Tags))
	}
}

// A tcp rule without ports is port 0: the SDKs omit a zero port, and
// packer's temporary security group for communicator "none" is made so.
func TestFidelityRuleWithoutPorts(t *testing.T) {
	e := apitest.Start(t)
	var sg struct {
		SecurityGroup struct{ SecurityGroupId string }
	}
	e.MustCall(t, e.Joe, "CreateSecurityGroup", map[string]any{"SecurityGroupName": "packer_osc_x", "Description": "Temporary group for Packer"}, &sg)
	var out struct {
		SecurityGroup struct{ InboundRules []map[string]any }
	}
	e.MustCall(t, e.Joe, "CreateSecurityGroupRule", map[string]any{"SecurityGroupId": sg.SecurityGroup.SecurityGroupId, "Flow": "Inbound",
		"Rules": []map[string]any{{"IpProtocol": "tcp", "IpRanges": []string{"0.0.0.0/0"}}}}, &out)
	rules := out.SecurityGroup.InboundRules
	if len(rules) != 1 || rules[0]["FromPortRange"] != 0.0 || rules[0]["ToPortRange"] != 0.0 {
		t.Errorf("rule without ports: %v, want port 0 to 0", rules)
	}
	wantError(t, "tcp from 22 without ToPortRange (22 > 0)", e.Call(t, e.Joe, "CreateSecurityGroupRule", map[string]any{"SecurityGroupId": sg.SecurityGroup.SecurityGroupId,
		"Flow": "Inbound", "IpProtocol": "tcp", "FromPortRange": 22, "IpRange": "10.0.0.0/8"}), "4051")
}

// Load balancers over the wire: the shape the real cloud answers (the
// provider's recorded states: empty lists rather than absent ones, the
// outscale-elb-sg source group of the public Cloud, the default health
// check), requests type-checked, and another account's load balancer
// reached by name neither seen nor changed. terraform also reads
// ReadLoadBalancers before deleting any security group.
func TestFidelityLoadBalancers(t *testing.T) {
	e := apitest.Start(t)
	listener := map[string]any{"LoadBalancerPort": 80, "LoadBalancerProtocol": "HTTP", "BackendPort": 8080, "BackendProtocol": "HTTP"}
	e.MustCall(t, e.Joe, "CreateLoadBalancer", map[string]any{"LoadBalancerName": "web", "Listeners": []any{listener}}, nil)
	var out struct{ LoadBalancers []map[string]any }
	e.MustCall(t, e.Joe, "ReadLoadBalancers", map[string]any{"Filters": map[string]any{"LoadBalancerNames": []string{"web"}}}, &out)
	if len(out.LoadBalancers) != 1 {
		t.Fatalf("ReadLoadBalancers = %v, want web", out.LoadBalancers)
	}
	lb := out.LoadBalancers[0]
	for _, k := range []string{"BackendVmIds", "BackendIps", "SecurityGroups", "Subnets", "Tags", "ApplicationStickyCookiePolicies", "LoadBalancerStickyCookiePolicies"} {
		if l, ok := lb[k].([]any); !ok || len(l) != 0 {
			t.Errorf("%s = %#v, want []", k, lb[k])
		}
	}
	if fmt.Sprint(lb["SourceSecurityGroup"]) != "map[SecurityGroupAccountId:outscale-elb SecurityGroupName:outscale-elb-sg]" ||
		fmt.Sprint(lb["HealthCheck"]) != "map[CheckInterval:30 HealthyThreshold:10 Port:8080 Protocol:TCP Timeout:5 UnhealthyThreshold:2]" ||
		lb["State"] != "active" || lb["LoadBalancerType"] != "internet-facing" {
		t.Errorf("load balancer %v", lb)
	}
	if l := lb["Listeners"].([]any); len(l) != 1 || fmt.Sprint(l[0].(map[string]any)["PolicyNames"]) != "[]" {
		t.Errorf("listeners %v", lb["Listeners"])
	}
	wantError(t, "LoadBalancerNames as a string", e.Call(t, e.Joe, "ReadLoadBalancers", map[string]any{"Filters": map[string]any{"LoadBalancerNames": "web"}}), "4108")
	wantError(t, "LoadBalancerPorts as strings", e.Call(t, e.Joe, "DeleteLoadBalancerListeners", map[string]any{"LoadBalancerName": "web", "LoadBalancerPorts": []any{"80"}}), "4108")
	wantError(t, "titi deletes joe's", e.Call(t, e.Titi, "DeleteLoadBalancer", map[string]any{"LoadBalancerName": "web"}), "5030")
	var titi struct{ LoadBalancers []json.RawMessage }
	e.MustCall(t, e.Titi, "ReadLoadBalancers", map[string]any{}, &titi)
	if titi.LoadBalancers == nil || len(titi.LoadBalancers) != 0 {
		t.Errorf("titi's ReadLoadBalancers = %s, want []", titi.LoadBalancers)
	}
}

// ReadTags answers ResourceType "vm" for a VM, as the real API (the spec
// says "instance"); the filter takes both names.
func TestFidelityTagResourceTypeVm(t *testing.T) {
	e := apitest.Start(t)
	vol := newVolume(t, e, e.Joe, 1)
	img := registerImage(t, e, e.Joe, "tag-base", newSnapshot(t, e, e.Joe, vol)).ImageId
	waitImage(t, e, e.Joe, img, "available")
	var vms struct{ Vms []map[string]any }
	e.MustCall(t, e.Joe, "CreateVms", map[string]any{"ImageId": img}, &vms)
	id := vms.Vms[0]["VmId"].(string)
	e.MustCall(t, e.Joe, "CreateTags", map[string]any{"ResourceIds": []string{id}, "Tags": []map[string]any{{"Key": "Name", "Value": "web"}}}, nil)
	for _, typ := range []string{"vm", "instance"} {
		var out struct{ Tags []map[string]any }
		e.MustCall(t, e.Joe, "ReadTags", map[string]any{"Filters": map[string]any{"ResourceTypes": []string{typ}}}, &out)
		if len(out.Tags) != 1 || out.Tags[0]["ResourceType"] != "vm" || out.Tags[0]["ResourceId"] != id {
			t.Errorf("ReadTags ResourceTypes [%s] = %v, want the VM's tag with ResourceType vm", typ, out.Tags)
		}
	}
}
