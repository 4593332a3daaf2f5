package vmboot

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/omiproject/omi/osimage"
)

// BenchmarkBootToSSH measures, per VM of the small official OMI, the time
// from CreateVms to SSH answering on its public address (an SSH session
// opened with the keypair), and the resident memory of its QEMU process
// once it answers (-vm-max-memory 256, 1 vCPU; KVM when /dev/kvm is
// usable, else TCG).
//
//	go test ./e2e/vmboot -run '^$' -bench BootToSSH -benchtime 3x
func BenchmarkBootToSSH(b *testing.B) {
	s := newServer(b)
	small := s.image(osimage.SmallFamily)
	signer := s.keypair("bench")
	var total time.Duration
	var rss float64
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		vm := s.createVm(small, "bench", "")
		c := dial(b, *vm.PublicIp, signer, bootWithin)
		d := time.Since(t0)
		total += d
		c.Close()
		rss += rssMiB(s.machines()[vm.VmId])
		b.Logf("VM %d: CreateVms -> SSH %v", i, d.Round(100*time.Millisecond))
		b.StopTimer()
		s.deleteVms(vm.VmId)
		b.StartTimer()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-to-ssh/op")
	b.ReportMetric(rss/float64(b.N), "MiB-rss/vm")
}

// rssMiB is the resident memory of a process.
func rssMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	return 0
}
