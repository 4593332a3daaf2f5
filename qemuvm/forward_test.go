package qemuvm

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/omiproject/omi/service"
)

func TestHostForwards(t *testing.T) {
	out := "Hub -1 (n0):\r\n" +
		"  Protocol[State]    FD  Source Address  Port   Dest. Address  Port RecvQ SendQ\r\n" +
		"  TCP[HOST_FORWARD]  13     127.42.99.2  8080    169.254.0.15  8080     0     0\r\n" +
		"  TCP[HOST_FORWARD]   8     127.42.99.2    22    169.254.0.15    22     0     0\r\n" +
		"  TCP[ESTABLISHED]   21     127.42.99.2    22    169.254.0.15    22     0     0\r\n" +
		"  UDP[236 sec]       19    169.254.0.15    68   169.254.0.2     67     0     0\r\n"
	got := hostForwards(out)
	if len(got) != 2 || !got["127.42.99.2:8080"] || !got["127.42.99.2:22"] {
		t.Errorf("host forwards %v", got)
	}
}

// TestForwardLive starts a real QEMU machine (paused: no disk, no guest)
// the way the driver names its machines, lets a new driver adopt it, and
// changes its forwards while it runs: a port added is reachable on the
// host, a port or address removed refuses connections, and a port some
// other process holds is reported without undoing the rest.
func TestForwardLive(t *testing.T) {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("qemu-system-x86_64 is missing (Debian package qemu-system-x86)")
		}
		t.Skip("qemu-system-x86_64 is missing")
	}
	dir, err := os.MkdirTemp("", "qvm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	id := "i-f0f0f0f0"
	mdir := filepath.Join(dir, id)
	os.MkdirAll(mdir, 0o700)
	net3 := 200 + rand.IntN(50)
	addr := fmt.Sprintf("127.42.%d.%d", net3, 2+rand.IntN(100))
	addr2 := fmt.Sprintf("127.42.%d.%d", net3, 110+rand.IntN(100))
	addr3 := fmt.Sprintf("127.42.%d.%d", net3, 220+rand.IntN(30))
	p1, p2 := 20000+rand.IntN(20000), 40000+rand.IntN(20000)
	cmd := exec.Command("qemu-system-x86_64", "-name", "guest="+id+",debug-threads=off", "-machine", "pc,accel=tcg", "-S",
		"-nodefaults", "-display", "none", "-m", "64",
		"-qmp", "unix:"+filepath.Join(mdir, "qmp.sock")+",server=on,wait=off", "-pidfile", filepath.Join(mdir, "qemu.pid"),
		"-netdev", fmt.Sprintf("user,id=n0,restrict=on,net=169.254.0.0/16,hostfwd=tcp:%s:%d-:%d", addr, p1, p1),
		"-device", "virtio-net-pci,netdev=n0")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, e1 := os.Stat(filepath.Join(mdir, "qemu.pid"))
		_, e2 := os.Stat(filepath.Join(mdir, "qmp.sock"))
		if e1 == nil && e2 == nil {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("QEMU did not start: %s", out)
		}
	}
	d, err := New(Options{Dir: dir, Pool: netip.MustParsePrefix("127.42.0.0/16"), ProxyCommand: "/bin/true"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !d.Running(id) {
		t.Fatalf("the machine was not adopted")
	}
	reach := func(a string, p int) bool {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(a, strconv.Itoa(p)), 2*time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	if !reach(addr, p1) {
		t.Fatalf("the forward QEMU started with does not answer")
	}
	if err := d.Forward(service.VmSpec{VmId: id, PublicIps: []string{addr}, TCPPorts: []int{p2}}); err != nil {
		t.Fatal(err)
	}
	if reach(addr, p1) || !reach(addr, p2) {
		t.Errorf("after Forward(%d): port %d reachable %v, port %d reachable %v", p2, p1, reach(addr, p1), p2, reach(addr, p2))
	}
	// Forwards move to another address.
	if err := d.Forward(service.VmSpec{VmId: id, PublicIps: []string{addr2}, TCPPorts: []int{p2}}); err != nil {
		t.Fatal(err)
	}
	if reach(addr, p2) || !reach(addr2, p2) {
		t.Errorf("after moving to %s: old reachable %v, new %v", addr2, reach(addr, p2), reach(addr2, p2))
	}
	// An address and port held by someone else: an error naming it; the
	// other forwards stay.
	ln, err := net.Listen("tcp", net.JoinHostPort(addr3, strconv.Itoa(p2)))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = d.Forward(service.VmSpec{VmId: id, PublicIps: []string{addr2, addr3}, TCPPorts: []int{p2}})
	if err == nil || !strings.Contains(err.Error(), addr3) {
		t.Errorf("forwarding a taken port: %v", err)
	}
	if !reach(addr2, p2) {
		t.Errorf("a failed forward undid the others")
	}
	if err := d.Forward(service.VmSpec{VmId: "i-00000000", PublicIps: []string{addr}, TCPPorts: []int{22}}); err != nil {
		t.Errorf("Forward of a VM without a machine: %v", err)
	}
	d.Stop(id, true)
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Errorf("the machine did not quit")
	}
}
