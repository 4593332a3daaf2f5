package e2e

import (
	"net/http"
	"testing"

	"github.com/omiproject/omi/apitest"
)

// TestNetCallsBadInput sends the Net, subnet and NIC calls bodies with
// wrong JSON types, missing fields and foreign ids over the wire: each is a
// 400 with an OUTSCALE code, never a 5xx, and nothing is created.
func TestNetCallsBadInput(t *testing.T) {
	e := apitest.Start(t)
	var net struct{ Net struct{ NetId string } }
	e.MustCall(t, e.Joe, "CreateNet", map[string]any{"IpRange": "10.0.0.0/16"}, &net)
	var sn struct{ Subnet struct{ SubnetId string } }
	e.MustCall(t, e.Joe, "CreateSubnet", map[string]any{"NetId": net.Net.NetId, "IpRange": "10.0.1.0/24"}, &sn)
	var nic struct{ Nic struct{ NicId string } }
	e.MustCall(t, e.Joe, "CreateNic", map[string]any{"SubnetId": sn.Subnet.SubnetId}, &nic)
	for _, c := range []struct {
		call string
		body map[string]any
	}{
		{"CreateNet", map[string]any{"IpRange": 16}},
		{"CreateNet", map[string]any{"IpRange": "10.0.0.0/16", "Tenancy": true}},
		{"CreateNet", map[string]any{"IpRange": []string{"10.0.0.0/16"}}},
		{"ReadNets", map[string]any{"Filters": map[string]any{"NetIds": "vpc-00000000"}}},
		{"ReadNets", map[string]any{"Filters": map[string]any{"IsDefault": "yes"}}},
		{"UpdateNet", map[string]any{"NetId": net.Net.NetId, "DhcpOptionsSetId": 1}},
		{"CreateSubnet", map[string]any{"NetId": net.Net.NetId, "IpRange": "10.0.2.0/24", "SubregionName": 7}},
		{"ReadSubnets", map[string]any{"Filters": map[string]any{"AvailableIpsCounts": []string{"many"}}}},
		{"UpdateSubnet", map[string]any{"SubnetId": sn.Subnet.SubnetId, "MapPublicIpOnLaunch": "true"}},
		{"CreateNic", map[string]any{"SubnetId": sn.Subnet.SubnetId, "PrivateIps": "10.0.1.9"}},
		{"CreateNic", map[string]any{"SubnetId": sn.Subnet.SubnetId, "SecurityGroupIds": "sg-00000000"}},
		{"ReadNics", map[string]any{"Filters": map[string]any{"LinkNicDeviceNumbers": []string{"one"}}}},
		{"ReadNics", map[string]any{"Filters": map[string]any{"PrivateIpsPrimaryIp": "yes"}}},
		{"UpdateNic", map[string]any{"NicId": nic.Nic.NicId, "Description": 5}},
		{"LinkNic", map[string]any{"NicId": nic.Nic.NicId, "VmId": "i-00000000", "DeviceNumber": "1"}},
		{"LinkPrivateIps", map[string]any{"NicId": nic.Nic.NicId, "SecondaryPrivateIpCount": "2"}},
		{"UnlinkPrivateIps", map[string]any{"NicId": nic.Nic.NicId, "PrivateIps": "10.0.1.4"}},
		{"DeleteNic", map[string]any{"NicId": 12}},
		{"DeleteSubnet", map[string]any{}},
		{"DeleteNet", map[string]any{"NetId": nil}},
	} {
		r := e.Call(t, e.Joe, c.call, c.body)
		if r.Status != http.StatusBadRequest || r.ErrorCode() == "" {
			t.Errorf("%s %v: %s, want 400 with a code", c.call, c.body, r)
		}
	}
	// Titi reaches none of joe's: each answers the kind's not-found code.
	for _, c := range []struct {
		call string
		body map[string]any
		code string
	}{
		{"DeleteNet", map[string]any{"NetId": net.Net.NetId}, "5065"},
		{"CreateSubnet", map[string]any{"NetId": net.Net.NetId, "IpRange": "10.0.9.0/24"}, "5065"},
		{"DeleteSubnet", map[string]any{"SubnetId": sn.Subnet.SubnetId}, "5057"},
		{"CreateNic", map[string]any{"SubnetId": sn.Subnet.SubnetId}, "5057"},
		{"DeleteNic", map[string]any{"NicId": nic.Nic.NicId}, "5036"},
		{"CreateTags", map[string]any{"ResourceIds": []string{nic.Nic.NicId}, "Tags": []map[string]string{{"Key": "k", "Value": "v"}}}, "5036"},
	} {
		wantError(t, "titi "+c.call, e.Call(t, e.Titi, c.call, c.body), c.code)
	}
	// Nothing was made by the refused calls.
	var nets struct{ Nets []any }
	e.MustCall(t, e.Joe, "ReadNets", map[string]any{}, &nets)
	var subs struct{ Subnets []any }
	e.MustCall(t, e.Joe, "ReadSubnets", map[string]any{}, &subs)
	var nics struct{ Nics []any }
	e.MustCall(t, e.Joe, "ReadNics", map[string]any{}, &nics)
	if len(nets.Nets) != 1 || len(subs.Subnets) != 1 || len(nics.Nics) != 1 {
		t.Errorf("after refused calls: %d nets, %d subnets, %d NICs, want 1 each", len(nets.Nets), len(subs.Subnets), len(nics.Nics))
	}
}
