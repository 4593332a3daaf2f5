package vmboot

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"
	"golang.org/x/crypto/ssh"

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

// BenchmarkVmsAtOnce measures how many VMs of the small official OMI run
// at once on this host: it starts OMI_BENCH_VMS VMs (default 4), two at a
// time (each batch waits for its SSH), with --vm-max-memory
// OMI_BENCH_VM_MEMORY MiB (default 256), then checks that every one still
// answers an SSH command, and reports how many do, the QEMU RSS per VM,
// the CPU an idle VM takes (over 20 s), the host's available memory and
// load average. Run it once: -benchtime 1x.
//
//	OMI_BENCH_VMS=8 go test ./e2e/vmboot -run '^$' -bench VmsAtOnce -benchtime 1x -timeout 60m
func BenchmarkVmsAtOnce(b *testing.B) {
	n := envInt("OMI_BENCH_VMS", 4)
	mem := envInt("OMI_BENCH_VM_MEMORY", 256)
	s := newServerWith(b, serverOpts{memoryMiB: mem})
	small := s.image(osimage.SmallFamily)
	signer := s.keypair("many")
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		var vms []string
		addr := map[string]string{}
		for len(vms) < n {
			batch := min(2, n-len(vms))
			tb := time.Now()
			r, err := s.c.CreateVms(context.Background(), oscv3.CreateVmsRequest{ImageId: small, VmType: ptr("tinav5.c1r1p2"),
				KeypairName: ptr("many"), MinVmsCount: ptr(batch), MaxVmsCount: ptr(batch)})
			if err != nil || r.Vms == nil {
				b.Fatalf("CreateVms of %d: %v", batch, err)
			}
			for _, vm := range *r.Vms {
				dial(b, *vm.PublicIp, signer, 2*bootWithin).Close()
				b.Logf("VM %d (%s): SSH %v after its batch's CreateVms, %v after the first", len(vms)+1, vm.VmId,
					time.Since(tb).Round(100*time.Millisecond), time.Since(t0).Round(time.Second))
				vms = append(vms, vm.VmId)
				addr[vm.VmId] = *vm.PublicIp
			}
		}
		allUp := time.Since(t0)
		// Every VM still answers, with all of them running.
		answering := 0
		for _, id := range vms {
			c := dial(b, addr[id], signer, time.Minute)
			if out, err := run(c, "cat /proc/uptime"); err == nil && out != "" {
				answering++
			}
			c.Close()
		}
		// Idle CPU and memory, with all of them up.
		pids := s.machines()
		cpu0 := map[string]float64{}
		for _, id := range vms {
			cpu0[id] = cpuSeconds(pids[id])
		}
		time.Sleep(20 * time.Second)
		var rss, cpu float64
		for _, id := range vms {
			rss += rssMiB(pids[id])
			cpu += cpuSeconds(pids[id]) - cpu0[id]
		}
		load, _ := os.ReadFile("/proc/loadavg")
		b.Logf("%d VMs started, %d answer SSH; all up in %v; RSS %.0f MiB per VM (%.0f MiB in all); idle CPU %.1f%% of a core per VM; MemAvailable %s; load average %s",
			n, answering, allUp.Round(time.Second), rss/float64(n), rss, 100*cpu/20/float64(n), memAvailable(), strings.TrimSpace(string(load)))
		b.ReportMetric(float64(answering), "vms-answering")
		b.ReportMetric(rss/float64(n), "MiB-rss/vm")
		b.ReportMetric(100*cpu/20/float64(n), "%cpu-idle/vm")
		b.ReportMetric(allUp.Seconds(), "s-all-up")
		b.StopTimer()
		s.deleteVms(vms...)
		b.StartTimer()
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// run runs a command over SSH.
func run(c *ssh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return string(out), err
}

// cpuSeconds is the user and system CPU time a process has used.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// memAvailable is the host's MemAvailable line of /proc/meminfo.
func memAvailable() string {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "MemAvailable:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
