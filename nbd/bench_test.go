package nbd

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
)

// benchDiskSize is the export size the benchmarks cycle over.
const benchDiskSize = 64 << 20

// pipeline sends b.N requests of size bytes at sequential offsets with up to
// depth in flight, and checks every reply.
func pipeline(b *testing.B, c *testClient, typ uint16, size, depth int) {
	var payload []byte
	if typ == cmdWrite {
		payload = randBytes(size, 9)
	}
	slots := make(chan struct{}, depth)
	errc := make(chan error, 1)
	b.SetBytes(int64(size))
	b.ResetTimer()
	go func() {
		for i := 0; i < b.N; i++ {
			slots <- struct{}{}
			off := uint64(i*size) % benchDiskSize
			if err := c.request(0, typ, uint64(i), off, uint32(size), payload); err != nil {
				errc <- err
				return
			}
		}
	}()
	for i := 0; i < b.N; i++ {
		r, err := c.readReply()
		if err != nil {
			b.Fatal(err)
		}
		if r.errno != 0 {
			b.Fatalf("errno %d", r.errno)
		}
		if typ == cmdRead && len(r.data) != size {
			b.Fatalf("read %d bytes", len(r.data))
		}
		<-slots
	}
	b.StopTimer()
	select {
	case err := <-errc:
		b.Fatal(err)
	default:
	}
}

func benchServer(b *testing.B, filled bool) (string, *memDisk) {
	ex := newMemExports()
	d := ex.add("vol-bench", newMemDisk(benchDiskSize))
	if filled {
		d.fill(randBytes(benchDiskSize, 8), 0)
	}
	addr, _ := startServer(b, ex)
	return addr, d
}

// BenchmarkSeqRead: sequential reads of allocated data over loopback, Go
// client, 16 requests in flight, structured replies.
func BenchmarkSeqRead(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20, 4 << 20} {
		b.Run(fmt.Sprintf("req=%dKiB", size>>10), func(b *testing.B) {
			addr, _ := benchServer(b, true)
			c := connect(b, addr, "vol-bench", true, false)
			c.scratch = make([]byte, size)
			pipeline(b, c, cmdRead, size, 16)
		})
	}
}

// BenchmarkSeqWrite: sequential writes over loopback, Go client, 16 in flight.
func BenchmarkSeqWrite(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20, 4 << 20} {
		b.Run(fmt.Sprintf("req=%dKiB", size>>10), func(b *testing.B) {
			addr, _ := benchServer(b, false)
			c := connect(b, addr, "vol-bench", true, false)
			pipeline(b, c, cmdWrite, size, 16)
		})
	}
}

func benchTool(b *testing.B) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		b.Skip("qemu-img not installed")
	}
}

// BenchmarkQemuImgConvertFromExport: qemu-img convert of a fully allocated
// 64 MiB export into qemu's null driver, so that only the NBD side counts.
func BenchmarkQemuImgConvertFromExport(b *testing.B) {
	benchTool(b)
	addr, _ := benchServer(b, true)
	b.SetBytes(benchDiskSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if o, err := exec.Command("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", nbdURL(addr, "vol-bench"), "null-co://").CombinedOutput(); err != nil {
			b.Fatalf("%v\n%s", err, o)
		}
	}
}

// BenchmarkQemuImgConvertIntoExport: qemu-img convert -n of a 64 MiB raw
// file of random data into the export.
func BenchmarkQemuImgConvertIntoExport(b *testing.B) {
	benchTool(b)
	addr, d := benchServer(b, false)
	d.fill(randBytes(benchDiskSize, 8), 0)
	src := filepath.Join(b.TempDir(), "src.raw")
	// Write the source through the NBD export itself to keep setup simple.
	if o, err := exec.Command("qemu-img", "convert", "-f", "raw", "-O", "raw", nbdURL(addr, "vol-bench"), src).CombinedOutput(); err != nil {
		b.Fatalf("%v\n%s", err, o)
	}
	b.SetBytes(benchDiskSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if o, err := exec.Command("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src, nbdURL(addr, "vol-bench")).CombinedOutput(); err != nil {
			b.Fatalf("%v\n%s", err, o)
		}
	}
}
