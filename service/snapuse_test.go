package service_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/service"
)

// TestSnapshotUsedByManyImages checks the per-pair use records that
// replaced the snapshot's UsedBy list: a snapshot stays undeletable while
// any of its OMIs exists, whichever order they go in, another snapshot's
// uses do not count (ids that share a prefix included), and it can be
// deleted once the last one is gone.
func TestSnapshotUsedByManyImages(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	first := e.image(e.joe, "first")
	snapID := first.BlockDeviceMappings[0].Bsu.SnapshotId
	other := e.image(e.joe, "other") // a second snapshot, used too
	register := func(name string) string {
		img, err := e.svc.CreateImage(ctx, e.joe, &service.CreateImageRequest{ImageName: name, RootDeviceName: "/dev/sda1",
			BlockDeviceMappings: []omi.ImageBDM{{DeviceName: "/dev/sda1", Bsu: &omi.BsuImage{SnapshotId: snapID}}}})
		if err != nil {
			t.Fatal(err)
		}
		return img.Image.ImageId
	}
	ids := []string{first.ImageId}
	for i := range 4 {
		ids = append(ids, register(fmt.Sprint("more-", i)))
	}
	del := func(id string) error {
		_, err := e.svc.DeleteSnapshot(ctx, e.joe, &service.DeleteSnapshotRequest{SnapshotId: id})
		return err
	}
	// Delete the OMIs from the middle outwards: the snapshot stays in use
	// until the last one is gone.
	for _, i := range []int{2, 0, 4, 1, 3} {
		if err := del(snapID); code(err) != omi.CodeDeviceInUse {
			t.Fatalf("DeleteSnapshot with %d OMIs using it: %v, want %s", len(ids), err, omi.CodeDeviceInUse)
		}
		if _, err := e.svc.DeleteImage(ctx, e.joe, &service.DeleteImageRequest{ImageId: ids[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := del(snapID); err != nil {
		t.Fatalf("DeleteSnapshot once no OMI uses it: %v", err)
	}
	if err := del(other.BlockDeviceMappings[0].Bsu.SnapshotId); code(err) != omi.CodeDeviceInUse {
		t.Fatalf("DeleteSnapshot of the other OMI's snapshot: %v, want %s", err, omi.CodeDeviceInUse)
	}
}
