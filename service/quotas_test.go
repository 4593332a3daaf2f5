package service_test

import (
	"context"
	"testing"

	"github.com/omiproject/omi/service"
)

// ReadQuotas reports the real quota names with what the account uses, and
// one account's resources never count in another's quotas.
func TestReadQuotasUsage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	img := e.image(e.joe, "quota-base")
	if _, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId, VmType: "tinav5.c2r4p2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateVolume(ctx, e.joe, &service.CreateVolumeRequest{Size: ptr(10), VolumeType: "io1", Iops: ptr(500), SubregionName: "eu-west-2a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreatePublicIp(ctx, e.joe, &service.CreatePublicIpRequest{}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	used := func(c any, f *service.FiltersQuota) map[string]int {
		t.Helper()
		r, err := e.svc.ReadQuotas(ctx, e.joe, &service.ReadQuotasRequest{Filters: f})
		if c != nil {
			r, err = e.svc.ReadQuotas(ctx, e.bob, &service.ReadQuotasRequest{Filters: f})
		}
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]int{}
		for _, qt := range r.QuotaTypes {
			if qt.QuotaType != "global" {
				t.Errorf("quota type %q, want global", qt.QuotaType)
			}
			for _, q := range qt.Quotas {
				m[q.Name] = q.UsedValue
			}
		}
		return m
	}
	m := used(nil, nil)
	// The image's root volume (2 GiB standard) is the VM's as well as
	// the one it was registered from: the VM's copy counts too.
	for name, want := range map[string]int{"vm_limit": 1, "core_limit": 2, "memory_limit": 4, "ip_limit": 1,
		"io1_volume_size_limit": 10, "iops_limit": 500, "snapshot_limit": 1} {
		if m[name] != want {
			t.Errorf("%s used %d, want %d (all: %v)", name, m[name], want, m)
		}
	}
	if m["volume_limit"] < 2 || m["volume_size_limit"] < 12 || len(m) < 20 {
		t.Errorf("volume_limit %d, volume_size_limit %d, %d quotas", m["volume_limit"], m["volume_size_limit"], len(m))
	}
	if b := used(true, nil); b["vm_limit"] != 0 || b["ip_limit"] != 0 || b["volume_limit"] != 0 {
		t.Errorf("bob's quotas count joe's resources: %v", b)
	}
	if f := used(nil, &service.FiltersQuota{Collections: []string{"Compute"}, QuotaNames: []string{"vm_limit", "ip_limit", "volume_limit"}}); len(f) != 2 {
		t.Errorf("Compute quotas among vm_limit, ip_limit, volume_limit: %v, want two", f)
	}
	if f := used(nil, &service.FiltersQuota{QuotaTypes: []string{"vpc-12345678"}}); len(f) != 0 {
		t.Errorf("quota type of a Net: %v, want none", f)
	}
}
