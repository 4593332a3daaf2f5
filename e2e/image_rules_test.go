package e2e

import (
	"net/http"
	"strings"
	"testing"

	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"

	"github.com/omiproject/omi/apitest"
)

func registerBody(name, snap string, extra map[string]any) map[string]any {
	b := map[string]any{"ImageName": name, "RootDeviceName": "/dev/sda1",
		"BlockDeviceMappings": []map[string]any{{"DeviceName": "/dev/sda1", "Bsu": map[string]any{"SnapshotId": snap}}}}
	for k, v := range extra {
		b[k] = v
	}
	return b
}

// Names, product codes and mapping rules of CreateImage/UpdateImage.
func TestImageRules(t *testing.T) {
	e := apitest.Start(t)
	vol := newVolume(t, e, e.Joe, 2)
	snap := newSnapshot(t, e, e.Joe, vol)

	t.Run("names", func(t *testing.T) {
		e.MustCall(t, e.Joe, "CreateImage", registerBody("dup-name", snap, nil), nil)
		if r := e.Call(t, e.Joe, "CreateImage", registerBody("dup-name", snap, nil)); r.Status != http.StatusConflict || r.ErrorCode() != "9015" {
			t.Errorf("second image named dup-name: %s, want 409 9015", r)
		}
		// Names are per account: titi may use it (on its own snapshot).
		tv := newVolume(t, e, e.Titi, 1)
		ts := newSnapshot(t, e, e.Titi, tv)
		if r := e.Call(t, e.Titi, "CreateImage", registerBody("dup-name", ts, nil)); r.Status != http.StatusOK {
			t.Errorf("titi's image named like joe's: %s, want 200", r)
		}
		for _, bad := range []string{"ab", strings.Repeat("n", 129), "semi;colon", "quote'", "tab\tname"} {
			if r := e.Call(t, e.Joe, "CreateImage", registerBody(bad, snap, nil)); r.Status != http.StatusBadRequest || r.ErrorCode() != "4026" {
				t.Errorf("ImageName %q: %s, want 400 4026", bad, r)
			}
		}
		for _, good := range []string{"abc", "Name with spaces (v1.2)/x_y-z", strings.Repeat("n", 128)} {
			if r := e.Call(t, e.Joe, "CreateImage", registerBody(good, snap, nil)); r.Status != http.StatusOK {
				t.Errorf("ImageName %q: %s, want 200", good, r)
			}
		}
	})

	t.Run("mappings", func(t *testing.T) {
		cases := []map[string]any{
			{"ImageName": "no-root", "RootDeviceName": "/dev/sda1", "BlockDeviceMappings": []map[string]any{{"DeviceName": "/dev/sdb", "Bsu": map[string]any{"SnapshotId": snap}}}},
			{"ImageName": "bad-device", "RootDeviceName": "/dev/sda1", "BlockDeviceMappings": []map[string]any{{"DeviceName": "/dev/hda", "Bsu": map[string]any{"SnapshotId": snap}}}},
			{"ImageName": "twice", "RootDeviceName": "/dev/sda1", "BlockDeviceMappings": []map[string]any{
				{"DeviceName": "/dev/sda1", "Bsu": map[string]any{"SnapshotId": snap}}, {"DeviceName": "/dev/sda1", "Bsu": map[string]any{"SnapshotId": snap}}}},
			{"ImageName": "too-small", "RootDeviceName": "/dev/sda1", "BlockDeviceMappings": []map[string]any{{"DeviceName": "/dev/sda1", "Bsu": map[string]any{"SnapshotId": snap, "VolumeSize": 1}}}},
			{"ImageName": "iops-standard", "RootDeviceName": "/dev/sda1", "BlockDeviceMappings": []map[string]any{{"DeviceName": "/dev/sda1", "Bsu": map[string]any{"SnapshotId": snap, "Iops": 100}}}},
			{"ImageName": "no-snapshot", "RootDeviceName": "/dev/sda1", "BlockDeviceMappings": []map[string]any{{"DeviceName": "/dev/sda1", "Bsu": map[string]any{}}}},
			{"ImageName": "root-ephemeral", "RootDeviceName": "/dev/sda1", "BlockDeviceMappings": []map[string]any{{"DeviceName": "/dev/sda1", "VirtualDeviceName": "ephemeral0"}}},
			{"ImageName": "no-mappings", "RootDeviceName": "/dev/sda1"},
			{"ImageName": "two-modes", "SourceImageId": "ami-12345678", "SourceRegionName": apitest.Region, "RootDeviceName": "/dev/sda1",
				"BlockDeviceMappings": []map[string]any{{"DeviceName": "/dev/sda1", "Bsu": map[string]any{"SnapshotId": snap}}}},
			{"ImageName": "no-mode"},
			{"ImageName": "bad-arch", "Architecture": "arm64", "RootDeviceName": "/dev/sda1", "BlockDeviceMappings": []map[string]any{{"DeviceName": "/dev/sda1", "Bsu": map[string]any{"SnapshotId": snap}}}},
			{"ImageName": "bad-boot", "BootModes": []string{"bios"}, "RootDeviceName": "/dev/sda1", "BlockDeviceMappings": []map[string]any{{"DeviceName": "/dev/sda1", "Bsu": map[string]any{"SnapshotId": snap}}}},
		}
		for _, c := range cases {
			if r := e.Call(t, e.Joe, "CreateImage", c); r.Status != http.StatusBadRequest {
				t.Errorf("CreateImage %v: %s, want 400", c["ImageName"], r)
			}
		}
		// A valid extra data disk and an ephemeral device.
		r := e.Call(t, e.Joe, "CreateImage", map[string]any{"ImageName": "two-disks", "RootDeviceName": "/dev/sda1", "BlockDeviceMappings": []map[string]any{
			{"DeviceName": "/dev/sda1", "Bsu": map[string]any{"SnapshotId": snap}},
			{"DeviceName": "/dev/sdb", "Bsu": map[string]any{"SnapshotId": snap, "VolumeSize": 50, "VolumeType": "io1", "Iops": 1000}},
			{"DeviceName": "/dev/xvdc", "VirtualDeviceName": "ephemeral0"}}})
		var out struct {
			Image struct{ BlockDeviceMappings []map[string]any }
		}
		if r.Status != http.StatusOK || r.Decode(&out) != nil || len(out.Image.BlockDeviceMappings) != 3 {
			t.Errorf("image with a data disk and an ephemeral device: %s", r)
		}
	})

	t.Run("product codes", func(t *testing.T) {
		c := e.V3(e.Joe)
		ctx := t.Context()
		var out struct{ Image struct{ ImageId string } }
		e.MustCall(t, e.Joe, "CreateImage", registerBody("licensed", snap, map[string]any{"ProductCodes": []string{"0001"}}), &out)
		id := out.Image.ImageId
		if ids := imageIDs(t, e, e.Joe, &oscv3.FiltersImage{ProductCodes: &[]string{"0001"}}); !has(ids, id) {
			t.Errorf("ProductCodes filter 0001 misses the image")
		}
		if _, err := c.UpdateImage(ctx, oscv3.UpdateImageRequest{ImageId: id, ProductCodes: &[]string{"0004"}}); err != nil {
			t.Fatalf("UpdateImage ProductCodes: %v", err)
		}
		img := waitImage(t, e, e.Joe, id, "available")
		if pc := deref(img.ProductCodes); len(pc) != 1 || pc[0] != "0004" {
			t.Errorf("ProductCodes after UpdateImage [0004] = %v, want it replaced", pc)
		}
		if ids := imageIDs(t, e, e.Joe, &oscv3.FiltersImage{ProductCodeNames: &[]string{"Red Hat*"}}); !has(ids, id) {
			t.Errorf("ProductCodeNames Red Hat* misses the image with 0004")
		}
		if r := e.Call(t, e.Joe, "UpdateImage", map[string]any{"ImageId": id, "ProductCodes": []string{"9999"}}); r.Status != http.StatusBadRequest {
			t.Errorf("unknown product code: %s, want 400", r)
		}
		// A copy keeps the product codes and may not set its own.
		if _, err := c.UpdateImage(ctx, oscv3.UpdateImageRequest{ImageId: id, PermissionsToLaunch: &oscv3.PermissionsOnResourceCreation{
			Additions: &oscv3.PermissionsOnResource{AccountIds: &[]string{e.Titi.AccountID}}}}); err != nil {
			t.Fatal(err)
		}
		cp, err := e.V3(e.Titi).CreateImage(ctx, oscv3.CreateImageRequest{SourceImageId: &id, SourceRegionName: ptr(apitest.Region)})
		if err != nil {
			t.Fatalf("titi copies the licensed image: %v", err)
		}
		if pc := deref(cp.Image.ProductCodes); len(pc) != 1 || pc[0] != "0004" {
			t.Errorf("copy's ProductCodes = %v, want the source's [0004]", pc)
		}
		if deref(cp.Image.ImageName) != "licensed" {
			t.Errorf("copy without ImageName is named %q, want the source's name", deref(cp.Image.ImageName))
		}
		if deref(cp.Image.TpmMandatory) {
			t.Errorf("copy of an OMI without vTPM is TpmMandatory")
		}
		// TpmMandatory asked for on a copy is kept.
		tpm, err := e.V3(e.Titi).CreateImage(ctx, oscv3.CreateImageRequest{SourceImageId: &id, SourceRegionName: ptr(apitest.Region), ImageName: ptr("with-tpm"), TpmMandatory: ptr(true)})
		if err != nil || !deref(tpm.Image.TpmMandatory) {
			t.Errorf("copy with TpmMandatory: %+v, %v; want TpmMandatory true", tpm, err)
		}
		r := e.Call(t, e.Titi, "CreateImage", map[string]any{"SourceImageId": id, "SourceRegionName": apitest.Region, "ImageName": "relabel", "ProductCodes": []string{"0001"}})
		if r.Status != http.StatusBadRequest {
			t.Errorf("copy that sets ProductCodes: %s, want 400", r)
		}
	})

	t.Run("description", func(t *testing.T) {
		var out struct{ Image struct{ ImageId string } }
		e.MustCall(t, e.Joe, "CreateImage", registerBody("described", snap, map[string]any{"Description": "v1"}), &out)
		e.MustCall(t, e.Joe, "UpdateImage", map[string]any{"ImageId": out.Image.ImageId, "Description": ""}, nil)
		img := waitImage(t, e, e.Joe, out.Image.ImageId, "available")
		if deref(img.Description) != "" {
			t.Errorf("Description after UpdateImage \"\" = %q, want cleared", deref(img.Description))
		}
		if r := e.Call(t, e.Joe, "UpdateImage", map[string]any{"ImageId": out.Image.ImageId}); r.Status != http.StatusBadRequest {
			t.Errorf("UpdateImage with nothing to change: %s, want 400", r)
		}
		if r := e.Call(t, e.Joe, "UpdateImage", map[string]any{"ImageId": out.Image.ImageId, "Description": strings.Repeat("d", 300)}); r.Status != http.StatusBadRequest {
			t.Errorf("UpdateImage with a 300-character description: %s, want 400", r)
		}
	})
}
