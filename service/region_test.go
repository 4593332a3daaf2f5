package service_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/omiproject/omi/service"
	"github.com/omiproject/omi/sqlite"
)

func regionService(t *testing.T, cfg service.Config) *service.Service {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "omi.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return service.New(store, cfg, nil)
}

// ReadRegions describes the deployment (every configured region, the
// served one added when missing, sorted by name); ReadSubregions gives a, b
// and c by default, with eu-west-2's location codes.
func TestRegionsOfTheDeployment(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r, err := e.svc.ReadRegions(ctx, e.joe, &service.ReadRegionsRequest{})
	if err != nil || len(r.Regions) != 1 || r.Regions[0].RegionName != "eu-west-2" || r.Regions[0].Endpoint != "api.eu-west-2.outscale.com" {
		t.Fatalf("default ReadRegions = %+v, %v; want eu-west-2 only", r, err)
	}
	sr, err := e.svc.ReadSubregions(ctx, e.joe, &service.ReadSubregionsRequest{})
	if err != nil || len(sr.Subregions) != 3 {
		t.Fatalf("default ReadSubregions = %+v, %v; want three", sr, err)
	}
	for i, want := range []struct{ name, code string }{{"eu-west-2a", "PAR1"}, {"eu-west-2b", "PAR4"}, {"eu-west-2c", "PAR7"}} {
		if got := sr.Subregions[i]; got.SubregionName != want.name || got.LocationCode != want.code || got.State != "available" || got.RegionName != "eu-west-2" {
			t.Errorf("subregion %d = %+v, want %s at %s", i, got, want.name, want.code)
		}
	}
	if _, err := e.svc.CreateVolume(ctx, e.joe, &service.CreateVolumeRequest{SubregionName: "eu-west-2c", Size: ptr(1)}); err != nil {
		t.Errorf("CreateVolume in eu-west-2c: %v", err)
	}
	if _, err := e.svc.CreateVolume(ctx, e.joe, &service.CreateVolumeRequest{SubregionName: "eu-west-2d", Size: ptr(1)}); code(err) != "5009" {
		t.Errorf("CreateVolume in eu-west-2d: %v, want 5009", err)
	}

	svc := regionService(t, service.Config{Region: "us-east-2", Endpoint: "127.0.0.1:3000", Subregions: []string{"a", "b"},
		Regions: []service.Region{{RegionName: "eu-west-2", Endpoint: "omi.paris.example.com"}, {RegionName: "cloudgouv-eu-west-1", Endpoint: "omi.gouv.example.com"}}})
	r, err = svc.ReadRegions(ctx, e.joe, &service.ReadRegionsRequest{})
	if err != nil || len(r.Regions) != 3 {
		t.Fatalf("configured ReadRegions = %+v, %v; want three", r, err)
	}
	for i, want := range []service.Region{{RegionName: "cloudgouv-eu-west-1", Endpoint: "omi.gouv.example.com"},
		{RegionName: "eu-west-2", Endpoint: "omi.paris.example.com"}, {RegionName: "us-east-2", Endpoint: "127.0.0.1:3000"}} {
		if r.Regions[i] != want {
			t.Errorf("region %d = %+v, want %+v", i, r.Regions[i], want)
		}
	}
	sr, err = svc.ReadSubregions(ctx, e.joe, &service.ReadSubregionsRequest{})
	if err != nil || len(sr.Subregions) != 2 || sr.Subregions[1].SubregionName != "us-east-2b" {
		t.Errorf("configured ReadSubregions = %+v, %v; want us-east-2a and b", sr, err)
	}
}

// ReadVmTypes lists m3.large as the real cloud describes it (and
// m3.xlarge, mv3.xlarge).
func TestLegacyVmTypeAsRecorded(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r, err := e.svc.ReadVmTypes(ctx, e.joe, &service.ReadVmTypesRequest{Filters: &service.FiltersVmType{VmTypeNames: []string{"m3.large"}}})
	if err != nil || len(r.VmTypes) != 1 {
		t.Fatalf("ReadVmTypes m3.large = %+v, %v", r, err)
	}
	if got := r.VmTypes[0]; got.VcoreCount != 2 || got.MemorySize != 8 || got.MaxPrivateIps != 10 || got.BsuOptimized || got.VolumeCount != 1 || got.VolumeSize != 32 {
		t.Errorf("m3.large = %+v", got)
	}
}
