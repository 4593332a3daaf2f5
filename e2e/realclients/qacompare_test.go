package realclients

import (
	"encoding/json"
	"testing"
)

// TestQACompareIDSets checks the QA comparison on a set of bare ids whose
// order disagrees with the reference's: the resources' own id attributes
// decide which id is which, so the states match; a genuinely different
// set does not.
func TestQACompareIDSets(t *testing.T) {
	parse := func(s string) any {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	// The load balancer lists its VMs first; the VMs' own ids come later.
	ref := parse(`{"lb": {"vms": ["##id-2##", "##id-1##"]}, "vm0": {"id": "##id-1##"}, "vm1": {"id": "##id-2##"}}`)
	got := parse(`{"lb": {"vms": ["##id-5##", "##id-6##"]}, "vm0": {"id": "##id-5##"}, "vm1": {"id": "##id-6##"}}`)
	compare := func(got, ref any) []string {
		ids := map[string]string{}
		qaCompareIDs("", got, ref, ids, true)
		return qaCompare("", got, ref, ids)
	}
	if d := compare(got, ref); len(d) != 0 {
		t.Errorf("same set in another order: %v", d)
	}
	// Each side numbers its ids in its own order, so the same masked
	// text on both sides says nothing: four VMs whose ids are rotated
	// (the provider's load_balancer_vms/TF-1 step 3, which differed in
	// one run of four when "##id-1##" here was taken for "##id-1##"
	// there).
	ref4 := parse(`{"lb": {"vms": ["##id-2##", "##id-1##", "##id-3##", "##id-0##"]},
		"vm0": {"id": "##id-2##"}, "vm1": {"id": "##id-3##"}, "vm2": {"id": "##id-0##"}, "vm3": {"id": "##id-1##"}}`)
	got4 := parse(`{"lb": {"vms": ["##id-0##", "##id-1##", "##id-2##", "##id-3##"]},
		"vm0": {"id": "##id-3##"}, "vm1": {"id": "##id-0##"}, "vm2": {"id": "##id-1##"}, "vm3": {"id": "##id-2##"}}`)
	if d := compare(got4, ref4); len(d) != 0 {
		t.Errorf("the same four VMs, numbered in another order: %v", d)
	}
	other := parse(`{"lb": {"vms": ["##id-5##", "##id-7##"]}, "vm0": {"id": "##id-5##"}, "vm1": {"id": "##id-6##"}}`)
	if d := compare(other, ref); len(d) == 0 {
		t.Error("a load balancer listing another VM matched")
	}
}
