package e2e

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/omiproject/omi/apitest"
)

// A filter on a property no omi VM has (subnet, Net, security group) must
// match no VM, not be ignored: a script narrowing by subnet must not get
// unrelated VMs.
func TestUnsupportedVmFiltersMatchNothing(t *testing.T) {
	e := apitest.Start(t)
	vol := newVolume(t, e, e.Joe, 1)
	img := registerImage(t, e, e.Joe, "vm-base", newSnapshot(t, e, e.Joe, vol)).ImageId
	waitImage(t, e, e.Joe, img, "available")
	e.MustCall(t, e.Joe, "CreateVms", map[string]any{"ImageId": img}, nil)
	count := func(filters map[string]any) int {
		var out struct{ Vms []json.RawMessage }
		e.MustCall(t, e.Joe, "ReadVms", map[string]any{"Filters": filters}, &out)
		return len(out.Vms)
	}
	if n := count(map[string]any{}); n != 1 {
		t.Fatalf("ReadVms = %d VMs, want 1", n)
	}
	for _, f := range []map[string]any{
		{"SubnetIds": []string{"subnet-12345678"}},
		{"NetIds": []string{"vpc-12345678"}},
		{"SecurityGroupNames": []string{"web"}},
		{"NicNicIds": []string{"eni-12345678"}},
	} {
		if n := count(f); n != 0 {
			t.Errorf("ReadVms with %v = %d VMs, want 0", f, n)
		}
	}
	r := e.Call(t, e.Joe, "ReadVms", map[string]any{"Filters": map[string]any{"SubnetIds": map[string]any{"x": 1}}})
	if r.Status != http.StatusBadRequest || r.ErrorCode() != "4108" {
		t.Errorf("wrong-typed SubnetIds: %s, want 400 4108", r)
	}
}
