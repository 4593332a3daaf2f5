package dataplane_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/catalog"
	"github.com/omiproject/omi/service"
)

// imageWithDisk registers an OMI whose root disk is built from spec.
func (s *stack) imageWithDisk(t *testing.T, name string, spec catalog.DiskSpec) string {
	t.Helper()
	ctx := context.Background()
	vol := s.volume1G()
	dev, err := s.plane.Maps().Open(ctx, vol.Volume.VolumeId)
	if err != nil {
		t.Fatal(err)
	}
	if err := catalog.BuildDisk(ctx, catalog.WriterAt(ctx, dev), spec); err != nil {
		t.Fatal(err)
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	snap, err := s.svc.CreateSnapshot(ctx, s.joe, &service.CreateSnapshotRequest{VolumeId: vol.Volume.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	s.settle()
	img, err := s.svc.CreateImage(ctx, s.joe, &service.CreateImageRequest{ImageName: name, RootDeviceName: "/dev/sda1",
		BlockDeviceMappings: []omi.ImageBDM{{DeviceName: "/dev/sda1", Bsu: &omi.BsuImage{SnapshotId: snap.Snapshot.SnapshotId}}}})
	if err != nil {
		t.Fatal(err)
	}
	s.settle()
	return img.Image.ImageId
}

func TestInspectionFindingsAndPublicRefusal(t *testing.T) {
	s := newStackWith(t, service.Config{Region: "eu-west-2", RefusePublicWithFindings: true})
	ctx := context.Background()
	deb, err := catalog.LookupPreset("Debian-12")
	if err != nil {
		t.Fatal(err)
	}
	clean := s.imageWithDisk(t, "clean-image", deb.Spec)
	dirtySpec := deb.Spec
	dirtySpec.Files = append(dirtySpec.Files,
		catalog.File{Path: "/root/.ssh/authorized_keys", Mode: 0o600,
			Data: []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl builder@ci\n")},
		catalog.File{Path: "/etc/shadow", Mode: 0o640,
			Data: []byte("root:$6$abcdefgh$Q1w2e3r4t5y6u7i8o9p0aSdFgHjKlZxCvBnM.1234567890abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV:19000:0:99999:7:::\n")})
	dirty := s.imageWithDisk(t, "dirty-image", dirtySpec)

	read := func(id string) service.Inspection {
		t.Helper()
		out, err := s.svc.ReadImageInspection(ctx, s.joe, &service.ReadImageInspectionRequest{ImageId: id})
		if err != nil {
			t.Fatal(err)
		}
		return out.ImageInspection
	}
	if got := read(clean); got.State != "done" || !got.Clean {
		t.Errorf("clean image inspection: %+v", got)
	}
	got := read(dirty)
	if got.State != "done" || got.Clean {
		t.Fatalf("dirty image inspection: %+v", got)
	}
	var report struct {
		Findings []struct{ Kind, Path, Fingerprint string }
	}
	if err := json.Unmarshal(got.Report, &report); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, f := range report.Findings {
		kinds[f.Kind] = true
		if f.Kind == "authorized_key" && (f.Path != "/root/.ssh/authorized_keys" || f.Fingerprint == "") {
			t.Errorf("key finding: %+v", f)
		}
	}
	if !kinds["authorized_key"] || !kinds["root_password"] {
		t.Errorf("findings %+v; want an authorized key and a root password", report.Findings)
	}
	// bob cannot read the inspection of joe's private OMI.
	if _, err := s.svc.ReadImageInspection(ctx, s.bob, &service.ReadImageInspectionRequest{ImageId: dirty}); err == nil {
		t.Error("bob read the inspection of joe's private OMI")
	}

	public := &omi.PermissionsChange{Additions: &omi.Permissions{GlobalPermission: true}}
	if _, err := s.svc.UpdateImage(ctx, s.joe, &service.UpdateImageRequest{ImageId: dirty, PermissionsToLaunch: public}); err == nil {
		t.Error("a dirty OMI was made public with RefusePublicWithFindings")
	} else if e := omi.AsError(err); e.Code != omi.CodeInvalidValue {
		t.Errorf("refusal code %s: %v", e.Code, err)
	}
	// Sharing with one account is still allowed; the clean one can go public.
	if _, err := s.svc.UpdateImage(ctx, s.joe, &service.UpdateImageRequest{ImageId: dirty,
		PermissionsToLaunch: &omi.PermissionsChange{Additions: &omi.Permissions{AccountIds: []string{"210987654321"}}}}); err != nil {
		t.Errorf("sharing a dirty OMI with one account: %v", err)
	}
	if _, err := s.svc.UpdateImage(ctx, s.joe, &service.UpdateImageRequest{ImageId: clean, PermissionsToLaunch: public}); err != nil {
		t.Errorf("making a clean OMI public: %v", err)
	}
}
