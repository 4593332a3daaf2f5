package dataplane_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/blockmap"
	"github.com/omiproject/omi/blockstore"
	"github.com/omiproject/omi/blockstore/local"
	"github.com/omiproject/omi/dataplane"
	"github.com/omiproject/omi/nbd"
	"github.com/omiproject/omi/service"
	"github.com/omiproject/omi/sqlite"
)

// stack is the service with its data plane and an NBD server on loopback.
type stack struct {
	t        testing.TB
	svc      *service.Service
	plane    *dataplane.Plane
	blocks   *local.Store
	nbdAddr  string
	joe, bob *omi.Caller
}

func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
}

func newStack(t testing.TB) *stack {
	t.Helper()
	return newStackWith(t, service.Config{Region: "eu-west-2"})
}

func newStackWith(t testing.TB, cfg service.Config) *stack {
	t.Helper()
	needTool(t, "qemu-io")
	needTool(t, "qemu-img")
	ctx := context.Background()
	dir := t.TempDir()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "omi.db"))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := local.Open(filepath.Join(dir, "blocks"))
	if err != nil {
		t.Fatal(err)
	}
	maps, err := blockmap.NewDirStore(filepath.Join(dir, "maps"))
	if err != nil {
		t.Fatal(err)
	}
	// As cmd/omi: writes acknowledged over NBD are logged until flushed.
	wlog := filepath.Join(dir, "wlog")
	if err := os.MkdirAll(wlog, 0o700); err != nil {
		t.Fatal(err)
	}
	plane := dataplane.New(blockmap.NewManager(blocks, maps, blockmap.WithWriteLog(wlog)), blocks, store)
	svc := service.New(store, cfg, nil)
	svc.SetDataPlane(plane)
	svc.SetInspector(plane)
	joe := service.AccountSpec{AccountID: "123456789012", Alias: "joe", Email: "joe@example.com"}
	bob := service.AccountSpec{AccountID: "210987654321", Alias: "bob", Email: "bob@example.com"}
	if err := svc.Provision(ctx, []service.AccountSpec{joe, bob}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := nbd.NewServer(plane)
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		blocks.Close()
		store.Close()
	})
	return &stack{t: t, svc: svc, plane: plane, blocks: blocks, nbdAddr: ln.Addr().String(),
		joe: &omi.Caller{Account: &omi.Account{AccountId: joe.AccountID, Alias: "joe"}},
		bob: &omi.Caller{Account: &omi.Account{AccountId: bob.AccountID, Alias: "bob"}}}
}

// volume1G creates a 1 GiB volume for joe and waits until it is available.
func (s *stack) volume1G() *service.CreateVolumeResponse {
	s.t.Helper()
	vol, err := s.svc.CreateVolume(context.Background(), s.joe, &service.CreateVolumeRequest{Size: ptr(1), SubregionName: "eu-west-2a"})
	if err != nil {
		s.t.Fatal(err)
	}
	s.settle()
	return vol
}

func (s *stack) settle() {
	s.t.Helper()
	if err := s.svc.Settle(context.Background()); err != nil {
		s.t.Fatal(err)
	}
}

func (s *stack) url(vol string) string { return "nbd://" + s.nbdAddr + "/" + vol }

// qemuIO runs qemu-io commands on a volume and fails the test on any error
// (qemu-io prints "Pattern verification failed" but exits 0, so the output
// is checked too).
func (s *stack) qemuIO(vol string, cmds ...string) {
	s.t.Helper()
	args := []string{"-f", "raw", s.url(vol)}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := exec.Command("qemu-io", args...).CombinedOutput()
	if err != nil || strings.Contains(string(out), "failed") || strings.Contains(string(out), "error") {
		s.t.Fatalf("qemu-io %v: %v\n%s", cmds, err, out)
	}
}

// blockCount counts the data blocks stored (not the chunk blocks of block
// maps).
func (s *stack) blockCount() int {
	s.t.Helper()
	return len(s.dataBlocks())
}

// storedBlocks returns the hashes of every stored block, data and chunk
// blocks.
func (s *stack) storedBlocks() []blockstore.Hash {
	s.t.Helper()
	var hs []blockstore.Hash
	err := s.blocks.Walk(context.Background(), func(h blockstore.Hash, _ time.Time) error { hs = append(hs, h); return nil })
	if err != nil {
		s.t.Fatal(err)
	}
	return hs
}

// dataBlocks returns the hashes of the stored data blocks, leaving out the
// chunk blocks of block maps.
func (s *stack) dataBlocks() []blockstore.Hash {
	s.t.Helper()
	ctx := context.Background()
	var hs []blockstore.Hash
	err := s.blocks.Walk(ctx, func(h blockstore.Hash, _ time.Time) error {
		data, err := s.blocks.Get(ctx, h, nil)
		if err != nil {
			return err
		}
		if !blockmap.IsChunkBlock(data) {
			hs = append(hs, h)
		}
		return nil
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return hs
}

func ptr[T any](v T) *T { return &v }

func TestVolumeSnapshotImageVmOverNBD(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	vol := s.volume1G()
	v1 := vol.Volume.VolumeId
	if len(s.storedBlocks()) != 0 {
		t.Fatal("an empty volume stored blocks")
	}
	s.qemuIO(v1, "write -P 0xab 0 1M", "write -P 0xcd 512M 4k")
	snap, err := s.svc.CreateSnapshot(ctx, s.joe, &service.CreateSnapshotRequest{VolumeId: v1})
	if err != nil {
		t.Fatal(err)
	}
	s.settle()
	// Writes after the snapshot do not reach it.
	s.qemuIO(v1, "write -P 0x11 0 1M")
	before := s.blockCount()

	// A bigger volume from the snapshot sees the snapshot's instant, zeros beyond.
	vol2, err := s.svc.CreateVolume(ctx, s.joe, &service.CreateVolumeRequest{SnapshotId: snap.Snapshot.SnapshotId, Size: ptr(2), SubregionName: "eu-west-2a"})
	if err != nil {
		t.Fatal(err)
	}
	s.settle()
	if s.blockCount() != before {
		t.Errorf("volume from snapshot wrote %d blocks; want none", s.blockCount()-before)
	}
	s.qemuIO(vol2.Volume.VolumeId, "read -P 0xab 0 1M", "read -P 0xcd 512M 4k", "read -P 0 1G 1M")
	s.qemuIO(v1, "read -P 0x11 0 1M")

	// qemu-img sees a sparse volume: the map reports holes.
	out, err := exec.Command("qemu-img", "map", "--output=json", s.url(vol2.Volume.VolumeId)).Output()
	if err != nil {
		t.Fatal(err)
	}
	var extents []struct {
		Start, Length int64
		Data          bool
	}
	if err := json.Unmarshal(out, &extents); err != nil {
		t.Fatal(err)
	}
	var data int64
	for _, e := range extents {
		if e.Data {
			data += e.Length
		}
	}
	if data > 2<<20 {
		t.Errorf("qemu-img map reports %d data bytes in a volume with 1 MiB + 4 KiB written", data)
	}

	// Register an OMI from the snapshot, start a VM: its root volume has the content.
	img, err := s.svc.CreateImage(ctx, s.joe, &service.CreateImageRequest{ImageName: "nbd-image", RootDeviceName: "/dev/sda1",
		BlockDeviceMappings: []omi.ImageBDM{{DeviceName: "/dev/sda1", Bsu: &omi.BsuImage{SnapshotId: snap.Snapshot.SnapshotId}}}})
	if err != nil {
		t.Fatal(err)
	}
	vms, err := s.svc.CreateVms(ctx, s.joe, &service.CreateVmsRequest{ImageId: img.Image.ImageId})
	if err != nil {
		t.Fatal(err)
	}
	s.settle()
	root := vms.Vms[0].BlockDeviceMappings[0].Bsu.VolumeId
	s.qemuIO(root, "read -P 0xab 0 1M", "write -P 0x77 4M 64k")

	// An OMI made from the running VM (NoReboot) captures that write.
	img2, err := s.svc.CreateImage(ctx, s.joe, &service.CreateImageRequest{VmId: vms.Vms[0].VmId, ImageName: "from-vm", NoReboot: true})
	if err != nil {
		t.Fatal(err)
	}
	s.settle()
	// Shared with bob, who copies it: the copy costs no block data.
	if _, err := s.svc.UpdateImage(ctx, s.joe, &service.UpdateImageRequest{ImageId: img2.Image.ImageId,
		PermissionsToLaunch: &omi.PermissionsChange{Additions: &omi.Permissions{AccountIds: []string{"210987654321"}}}}); err != nil {
		t.Fatal(err)
	}
	blocksBeforeCopy := s.blockCount()
	cp, err := s.svc.CreateImage(ctx, s.bob, &service.CreateImageRequest{SourceImageId: img2.Image.ImageId, SourceRegionName: "eu-west-2", ImageName: "bobs-copy"})
	if err != nil {
		t.Fatal(err)
	}
	s.settle()
	if n := s.blockCount(); n != blocksBeforeCopy {
		t.Errorf("copying an OMI stored %d new blocks", n-blocksBeforeCopy)
	}
	// The copy survives deregistration of its source.
	if _, err := s.svc.DeleteImage(ctx, s.joe, &service.DeleteImageRequest{ImageId: img2.Image.ImageId}); err != nil {
		t.Fatal(err)
	}
	bobVms, err := s.svc.CreateVms(ctx, s.bob, &service.CreateVmsRequest{ImageId: cp.Image.ImageId})
	if err != nil {
		t.Fatal(err)
	}
	s.settle()
	s.qemuIO(bobVms.Vms[0].BlockDeviceMappings[0].Bsu.VolumeId, "read -P 0xab 0 1M", "read -P 0x77 4M 64k", "read -P 0xcd 512M 4k")

	// Garbage collection frees nothing still referenced...
	if _, err := s.plane.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	s.qemuIO(bobVms.Vms[0].BlockDeviceMappings[0].Bsu.VolumeId, "read -P 0xab 0 1M", "read -P 0x77 4M 64k")
	s.qemuIO(v1, "read -P 0x11 0 1M")
}

func TestGarbageCollectionFreesDeletedData(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	vol := s.volume1G()
	id := vol.Volume.VolumeId
	// Four distinct blocks (equal blocks would be stored once).
	s.qemuIO(id, "write -P 0x41 0 512k", "write -P 0x42 512k 512k", "write -P 0x43 1M 512k", "write -P 0x44 1536k 512k")
	snap, err := s.svc.CreateSnapshot(ctx, s.joe, &service.CreateSnapshotRequest{VolumeId: id})
	if err != nil {
		t.Fatal(err)
	}
	s.settle()
	if s.blockCount() != 4 {
		t.Fatalf("4 distinct blocks written: %d blocks stored", s.blockCount())
	}
	// The snapshot keeps the blocks alive after the volume goes.
	if _, err := s.svc.DeleteVolume(ctx, s.joe, &service.DeleteVolumeRequest{VolumeId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.plane.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	if s.blockCount() != 4 {
		t.Fatalf("after deleting the volume: %d blocks, want the snapshot's 4", s.blockCount())
	}
	if _, err := s.svc.DeleteSnapshot(ctx, s.joe, &service.DeleteSnapshotRequest{SnapshotId: snap.Snapshot.SnapshotId}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.plane.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(s.storedBlocks()); n != 0 { // data and chunk blocks
		t.Fatalf("after deleting volume and snapshot: %d blocks left", n)
	}
}

func TestNBDRefusesUnknownAndCreatingVolumes(t *testing.T) {
	s := newStack(t)
	out, err := exec.Command("qemu-io", "-f", "raw", s.url("vol-00000000"), "-c", "read 0 4k").CombinedOutput()
	if err == nil && !strings.Contains(string(out), "export") {
		t.Fatalf("unknown export opened: %s", out)
	}
	names, err := s.plane.List(context.Background())
	if err != nil || len(names) != 0 {
		t.Fatalf("List on an empty store: %v %v", names, err)
	}
}

func TestQemuImgCompareAgainstSourceFile(t *testing.T) {
	s := newStack(t)
	vol := s.volume1G()
	// 8 MiB of random data with a hole in the middle.
	raw := filepath.Join(t.TempDir(), "disk.raw")
	buf := make([]byte, 8<<20)
	rand.Read(buf[:3<<20])
	rand.Read(buf[5<<20:])
	if err := os.WriteFile(raw, buf, 0o600); err != nil {
		t.Fatal(err)
	}
	id := vol.Volume.VolumeId
	if out, err := exec.Command("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", raw, s.url(id)).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert into the volume: %v\n%s", err, out)
	}
	// compare passes: the volume is the file followed by zeros...
	if out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "raw", raw, s.url(id)).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img compare: %v\n%s", err, out)
	}
	// ...and fails once one byte differs, so the check above means something.
	s.qemuIO(id, "write -P 0x01 4096 1")
	if out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "raw", raw, s.url(id)).CombinedOutput(); err == nil {
		t.Fatalf("qemu-img compare did not notice a changed byte:\n%s", out)
	}
}

func TestCorruptBlockIsAnErrorNotData(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	vol := s.volume1G()
	id := vol.Volume.VolumeId
	s.qemuIO(id, "write -P 0x3c 0 512k")
	hs := s.dataBlocks()
	if len(hs) != 1 {
		t.Fatalf("%d data blocks stored, want 1", len(hs))
	}
	h := hs[0]
	path := s.blocks.Path(h)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// A fresh manager, so no cached copy of the block can answer.
	maps, err := blockmap.NewDirStore(filepath.Join(filepath.Dir(s.blocks.Dir()), "maps"))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := blockmap.NewManager(s.blocks, maps).Open(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	p := make([]byte, 4096)
	err = dev.ReadAt(ctx, p, 0)
	if !errors.Is(err, blockstore.ErrCorrupt) {
		t.Fatalf("read of a corrupt block: err %v, data %x...", err, p[:8])
	}
}

func TestNothingLeftAfterDeletingEverything(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	vol := s.volume1G()
	s.qemuIO(vol.Volume.VolumeId, "write -P 0x61 0 512k", "write -P 0x62 1M 512k")
	snap, err := s.svc.CreateSnapshot(ctx, s.joe, &service.CreateSnapshotRequest{VolumeId: vol.Volume.VolumeId})
	if err != nil {
		t.Fatal(err)
	}
	s.settle()
	img, err := s.svc.CreateImage(ctx, s.joe, &service.CreateImageRequest{ImageName: "all-gone", RootDeviceName: "/dev/sda1",
		BlockDeviceMappings: []omi.ImageBDM{{DeviceName: "/dev/sda1", Bsu: &omi.BsuImage{SnapshotId: snap.Snapshot.SnapshotId}}}})
	if err != nil {
		t.Fatal(err)
	}
	vms, err := s.svc.CreateVms(ctx, s.joe, &service.CreateVmsRequest{ImageId: img.Image.ImageId,
		BlockDeviceMappings: []service.BDMVmCreation{{DeviceName: "/dev/sdb", Bsu: &omi.BsuImage{VolumeSize: ptr(1)}}}})
	if err != nil {
		t.Fatal(err)
	}
	s.settle()
	vm := vms.Vms[0]
	s.qemuIO(vm.BlockDeviceMappings[1].Bsu.VolumeId, "write -P 0x63 0 512k")
	img2, err := s.svc.CreateImage(ctx, s.joe, &service.CreateImageRequest{VmId: vm.VmId, ImageName: "all-gone-2"})
	if err != nil {
		t.Fatal(err)
	}
	s.settle()
	if s.blockCount() != 3 {
		t.Fatalf("%d blocks stored, want 3", s.blockCount())
	}
	// Delete it all: VM (its volumes go with it), images, snapshots, the first volume.
	if _, err := s.svc.DeleteVms(ctx, s.joe, &service.VmIdsRequest{VmIds: []string{vm.VmId}}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{img.Image.ImageId, img2.Image.ImageId} {
		if _, err := s.svc.DeleteImage(ctx, s.joe, &service.DeleteImageRequest{ImageId: id}); err != nil {
			t.Fatal(err)
		}
	}
	s.settle()
	snaps, err := s.svc.ReadSnapshots(ctx, s.joe, &service.ReadSnapshotsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, sn := range snaps.Snapshots {
		if _, err := s.svc.DeleteSnapshot(ctx, s.joe, &service.DeleteSnapshotRequest{SnapshotId: sn.SnapshotId}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.svc.DeleteVolume(ctx, s.joe, &service.DeleteVolumeRequest{VolumeId: vol.Volume.VolumeId}); err != nil {
		t.Fatal(err)
	}
	vols, _ := s.svc.ReadVolumes(ctx, s.joe, &service.ReadVolumesRequest{})
	if len(vols.Volumes) != 0 {
		t.Fatalf("volumes left: %+v", vols.Volumes)
	}
	st, err := s.plane.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(s.storedBlocks()); n != 0 { // data and chunk blocks
		t.Fatalf("%d blocks left after deleting everything (gc %+v)", n, st)
	}
}

// TestOrphanMapsAreReaped deletes a volume while its map is open (as when
// another node serves it over NBD): the service cannot free the map then,
// and ReapOrphans does once the map is idle and has had no record for the
// grace, after which a collection frees its blocks.
func TestOrphanMapsAreReaped(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	vol := s.volume1G()
	id := vol.Volume.VolumeId
	s.qemuIO(id, "write -P 0x71 0 1M")
	dev, err := s.plane.Maps().Open(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// The service retries freeing the map for a few seconds, then gives up.
	if _, err := s.svc.DeleteVolume(ctx, s.joe, &service.DeleteVolumeRequest{VolumeId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.plane.Maps().Size(ctx, id); err != nil {
		t.Fatalf("the open map was deleted under its device: %v", err)
	}
	s.plane.SetOrphanGrace(time.Hour)
	if n, err := s.plane.ReapOrphans(ctx); err != nil || n != 0 {
		t.Fatalf("reaped %d (%v) within the grace", n, err)
	}
	s.plane.SetOrphanGrace(0)
	if n, err := s.plane.ReapOrphans(ctx); err != nil || n != 0 {
		t.Fatalf("reaped %d (%v) while the map is open", n, err)
	}
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.plane.ReapOrphans(ctx); err != nil || n != 1 {
		t.Fatalf("reaped %d (%v), want the orphan", n, err)
	}
	if _, err := s.plane.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.blockCount(); n != 0 {
		t.Fatalf("%d blocks left after reaping the orphan", n)
	}
}
