package e2e

import (
	"os/exec"
	"strings"
	"testing"

	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"

	"github.com/omiproject/omi/apitest"
)

// qemuIO runs qemu-io commands on a volume served over NBD and fails the
// test if one fails (a read -P that finds other bytes fails).
func qemuIO(t *testing.T, e *apitest.Env, volumeID string, cmds ...string) {
	t.Helper()
	bin := apitest.NeedTool(t, "qemu-io")
	args := []string{"-f", "raw"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	args = append(args, "nbd://"+e.NBDAddr+"/"+volumeID)
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil || strings.Contains(string(out), "failed") || strings.Contains(string(out), "error") {
		t.Fatalf("qemu-io %v on %s: %v\n%s", cmds, volumeID, err, out)
	}
}

// Real bytes through the OMI lifecycle: data written with qemu-io into
// joe's volume is what titi reads back from a volume made from titi's copy
// of joe's shared OMI, and later writes to the source do not leak into it.
func TestImageDataRoundTrip(t *testing.T) {
	e := apitest.Start(t, apitest.WithDataPlane())
	if e.NBDAddr == "" {
		t.Fatal("WithDataPlane gave no NBD address")
	}
	joe, titi := e.V3(e.Joe), e.V3(e.Titi)
	ctx := t.Context()
	vol := newVolume(t, e, e.Joe, 1)
	qemuIO(t, e, vol, "write -P 0xab 0 1M", "write -P 0xcd 700M 64k")
	snap := newSnapshot(t, e, e.Joe, vol)
	// Writes after the snapshot belong to the volume only.
	qemuIO(t, e, vol, "write -P 0xee 0 4k")

	img := registerImage(t, e, e.Joe, "data-image", snap).ImageId
	waitImage(t, e, e.Joe, img, "available")
	if _, err := joe.UpdateImage(ctx, oscv3.UpdateImageRequest{ImageId: img, PermissionsToLaunch: &oscv3.PermissionsOnResourceCreation{
		Additions: &oscv3.PermissionsOnResource{AccountIds: &[]string{e.Titi.AccountID}}}}); err != nil {
		t.Fatalf("UpdateImage: %v", err)
	}
	cp, err := titi.CreateImage(ctx, oscv3.CreateImageRequest{SourceImageId: &img, SourceRegionName: ptr(apitest.Region), ImageName: ptr("data-copy")})
	if err != nil {
		t.Fatalf("titi copies: %v", err)
	}
	copyImg := waitImage(t, e, e.Titi, cp.Image.ImageId, "available")
	copySnap := deref((*copyImg.BlockDeviceMappings)[0].Bsu.SnapshotId)
	waitSnapshot(t, e, e.Titi, copySnap)
	// The source goes away entirely; the copy must not depend on it.
	if _, err := joe.DeleteImage(ctx, oscv3.DeleteImageRequest{ImageId: img}); err != nil {
		t.Fatalf("DeleteImage: %v", err)
	}
	if _, err := joe.DeleteSnapshot(ctx, oscv3.DeleteSnapshotRequest{SnapshotId: snap}); err != nil {
		t.Fatalf("DeleteSnapshot: %v", err)
	}
	if _, err := joe.DeleteVolume(ctx, oscv3.DeleteVolumeRequest{VolumeId: vol}); err != nil {
		t.Fatalf("DeleteVolume: %v", err)
	}

	v, err := titi.CreateVolume(ctx, oscv3.CreateVolumeRequest{SubregionName: "eu-west-2b", SnapshotId: &copySnap, Size: ptr(2)})
	if err != nil {
		t.Fatalf("titi CreateVolume from the copy: %v", err)
	}
	tv := v.Volume.VolumeId
	waitVolume(t, e, e.Titi, tv, "available")
	qemuIO(t, e, tv, "read -P 0xab 0 1M", "read -P 0xcd 700M 64k", "read -P 0 1M 1M", "read -P 0 1G 1M")
}
