package dataplane_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

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
	vol := s.volume1G()
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

// BenchmarkQemuImgConvert copies a 128 MiB disk-like raw file into a
// volume over NBD, and back out of it, with qemu-img convert, next to
// qemu-img convert between two local files (the baseline), all in the same
// iteration. MB/s of each leg are reported as metrics.
func BenchmarkQemuImgConvert(b *testing.B) {
	s := newStack(b)
	vol := s.volume1G()
	dir := b.TempDir()
	src := filepath.Join(dir, "src.raw")
	const size = 128 << 20
	buf := make([]byte, size)
	for i := 0; i < size; i += 4096 {
		if (i/4096)%3 == 0 {
			rand.Read(buf[i : i+2048]) // a third of the pages partly random, the rest text-like
		}
		copy(buf[i+2048:i+4096], "the quick brown fox jumps over the lazy dog 0123456789 ")
	}
	if err := os.WriteFile(src, buf, 0o600); err != nil {
		b.Fatal(err)
	}
	url := s.url(vol.Volume.VolumeId)
	run := func(args ...string) float64 {
		start := time.Now()
		if out, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
			b.Fatalf("qemu-img %v: %v\n%s", args, err, out)
		}
		return float64(size) / time.Since(start).Seconds() / 1e6
	}
	var toVol, fromVol, fileToFile float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		toVol += run("convert", "-n", "-f", "raw", "-O", "raw", src, url)
		fromVol += run("convert", "-n", "-f", "raw", "--target-image-opts", url, "driver=null-co,size=1073741824")
		fileToFile += run("convert", "-f", "raw", "-O", "raw", src, filepath.Join(dir, fmt.Sprintf("copy%d.raw", i)))
		exec.Command("sync").Run()
	}
	n := float64(b.N)
	b.ReportMetric(toVol/n, "MB/s-into-volume")
	b.ReportMetric(fromVol/n, "MB/s-out-of-volume")
	b.ReportMetric(fileToFile/n, "MB/s-file-to-file")
}
