package dataplane_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"testing"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/service"
)

// BenchmarkCreateImageFromVm measures the time from CreateImage (from a VM,
// NoReboot) until the OMI is available, for a VM whose root volume holds
// 64 MiB and 8 GiB of written data. The snapshot copies block map entries,
// not data, so both should cost about the same. The 8 GiB case writes 8 GiB
// during setup; set OMI_BENCH_LARGE=1 to run it.
func BenchmarkCreateImageFromVm(b *testing.B) {
	for _, tc := range []struct {
		name    string
		written int64
	}{{"64MiB", 64 << 20}, {"8GiB", 8 << 30}} {
		b.Run(tc.name, func(b *testing.B) {
			if tc.written > 1<<30 && os.Getenv("OMI_BENCH_LARGE") == "" {
				b.Skip("set OMI_BENCH_LARGE=1 to write 8 GiB")
			}
			s := newStack(b)
			ctx := context.Background()
			vmID, rootID := s.vmWithRoot(b, 9)
			fill(b, s, rootID, tc.written)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				img, err := s.svc.CreateImage(ctx, s.joe, &service.CreateImageRequest{VmId: vmID, NoReboot: true,
					ImageName: fmt.Sprintf("bench-%d", i)})
				if err != nil {
					b.Fatal(err)
				}
				if err := s.svc.Settle(ctx); err != nil {
					b.Fatal(err)
				}
				got, err := s.svc.ReadImages(ctx, s.joe, &service.ReadImagesRequest{Filters: &service.FiltersImage{ImageIds: []string{img.Image.ImageId}}})
				if err != nil || got.Images[0].State != omi.ImageAvailable {
					b.Fatalf("image not available: %v", err)
				}
			}
		})
	}
}

// fill writes n bytes of distinct blocks (each 512 KiB block starts with
// its index) to a volume through its device, then flushes.
func fill(b *testing.B, s *stack, id string, n int64) {
	ctx := context.Background()
	dev, err := s.plane.Maps().Open(ctx, id)
	if err != nil {
		b.Fatal(err)
	}
	defer dev.Close()
	buf := make([]byte, 4<<20)
	for i := range buf {
		buf[i] = byte(i*7 + 1)
	}
	for off := int64(0); off < n; off += int64(len(buf)) {
		for blk := 0; blk < len(buf); blk += 512 << 10 {
			binary.LittleEndian.PutUint64(buf[blk:], uint64(off)+uint64(blk))
		}
		if err := dev.WriteAt(ctx, buf, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := dev.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}

// vmWithRoot starts a VM whose root volume is sizeGiB, returning its id and
// its root volume's id.
func (s *stack) vmWithRoot(b *testing.B, sizeGiB int) (string, string) {
	ctx := context.Background()
	vol, err := s.svc.CreateVolume(ctx, s.joe, &service.CreateVolumeRequest{Size: ptr(1), SubregionName: "eu-west-2a"})
	if err != nil {
		b.Fatal(err)
	}
	s.settle()
	snap, err := s.svc.CreateSnapshot(ctx, s.joe, &service.CreateSnapshotRequest{VolumeId: vol.Volume.VolumeId})
	if err != nil {
		b.Fatal(err)
	}
	s.settle()
	img, err := s.svc.CreateImage(ctx, s.joe, &service.CreateImageRequest{ImageName: "bench-base", RootDeviceName: "/dev/sda1",
		BlockDeviceMappings: []omi.ImageBDM{{DeviceName: "/dev/sda1", Bsu: &omi.BsuImage{SnapshotId: snap.Snapshot.SnapshotId, VolumeSize: ptr(sizeGiB)}}}})
	if err != nil {
		b.Fatal(err)
	}
	vms, err := s.svc.CreateVms(ctx, s.joe, &service.CreateVmsRequest{ImageId: img.Image.ImageId})
	if err != nil {
		b.Fatal(err)
	}
	s.settle()
	return vms.Vms[0].VmId, vms.Vms[0].BlockDeviceMappings[0].Bsu.VolumeId
}
