package qemuvm

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omiproject/omi/service"
)

// proxyEnv makes the test binary the imds-proxy command (QEMU is not
// needed for that: the test runs it as QEMU would, stdin and stdout
// being the guest's connection).
const proxyEnv = "QEMUVM_TEST_PROXY"

func TestMain(m *testing.M) {
	if os.Getenv(proxyEnv) == "1" {
		os.Exit(Proxy(os.Args[1], os.Args[2]))
	}
	os.Exit(m.Run())
}

func newDriver(t *testing.T, h http.Handler) *Driver {
	t.Helper()
	// A short directory: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "qvm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d, err := New(Options{Dir: dir, NBD: "127.0.0.1:10809", Pool: netip.MustParsePrefix("127.42.0.0/16"),
		MaxMemoryMiB: 512, MaxVCores: 1, Metadata: h, ProxyCommand: "/bin/true"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestArgs(t *testing.T) {
	d := newDriver(t, nil)
	spec := service.VmSpec{VmId: "i-12345678", VCores: 4, MemoryMiB: 16384, BootMode: "legacy",
		Volumes: []string{"vol-aaaaaaaa", "vol-bbbbbbbb"}, PublicIps: []string{"127.42.0.9"}, TCPPorts: []int{22, 80},
		MAC: "aa:ce:01:02:03:04", Hostname: "ip-10-0-1-5"}
	args, err := d.args(spec, filepath.Join(d.opt.Dir, spec.VmId))
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{
		"-cpu max", "-smp 1", "-m 512", // capped
		"accel=" + d.accel,
		`"export":"vol-aaaaaaaa"`, `"port":"10809"`, `"host":"127.0.0.1"`, `"reconnect-delay":60`,
		"virtio-blk-pci,drive=d0,bootindex=0", "virtio-blk-pci,drive=d1 ",
		"restrict=on", "net=169.254.0.0/16",
		fmt.Sprintf("hostfwd=tcp:127.42.0.9:%d-:22", ForwardedPort(22)), fmt.Sprintf("hostfwd=tcp:127.42.0.9:%d-:80", ForwardedPort(80)),
		"guestfwd=tcp:169.254.169.254:80-cmd:/bin/true " + d.metadataSocket() + " i-12345678",
		"mac=aa:ce:01:02:03:04", "hostname=ip-10-0-1-5",
		"manufacturer=3DS Outscale,product=3DS Outscale VM,uuid=",
		"-serial chardev:con", "guest=i-12345678,",
	} {
		if !strings.Contains(line+" ", want) {
			t.Errorf("command line lacks %q:\n%s", want, line)
		}
	}
	if strings.Contains(line, "bootindex=0 -device virtio-blk-pci,drive=d1,bootindex") {
		t.Errorf("two boot disks")
	}
	if _, err := d.args(service.VmSpec{VmId: "i-1"}, d.opt.Dir); err == nil {
		t.Errorf("a VM without volumes got a command line")
	}
}

func TestNewRefusesBadPool(t *testing.T) {
	for _, p := range []string{"10.0.0.0/8", "::1/128"} {
		if _, err := New(Options{Dir: t.TempDir(), Pool: netip.MustParsePrefix(p)}); err == nil {
			t.Errorf("pool %s accepted", p)
		}
	}
}

// TestMetadataProxy runs the proxy command as QEMU's guestfwd does, and
// checks the request reaches the handler with the VM's id.
func TestMetadataProxy(t *testing.T) {
	var seen string
	d := newDriver(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = VmOf(r) + " " + r.URL.Path
		io.WriteString(w, "i-feedbeef")
	}))
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, d.metadataSocket(), "i-feedbeef")
	cmd.Env = append(os.Environ(), proxyEnv+"=1")
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(out), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	in.Close()
	cmd.Wait()
	if resp.StatusCode != 200 || string(body) != "i-feedbeef" || seen != "i-feedbeef /latest/meta-data/instance-id" {
		t.Errorf("status %d body %q seen %q", resp.StatusCode, body, seen)
	}
	// A connection that names no VM is dropped.
	c, err := net.Dial("unix", d.metadataSocket())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("\n"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, _ := c.Read(make([]byte, 1)); n != 0 {
		t.Errorf("a connection without a VM id got an answer")
	}
	c.Close()
}

func TestConsoleTail(t *testing.T) {
	d := newDriver(t, nil)
	os.MkdirAll(filepath.Join(d.opt.Dir, "i-1"), 0o700)
	big := strings.Repeat("x", ConsoleMax) + "Linux version 6.1"
	os.WriteFile(filepath.Join(d.opt.Dir, "i-1", "console.log"), []byte(big), 0o600)
	got := d.Console("i-1")
	if len(got) != ConsoleMax || !strings.HasSuffix(string(got), "Linux version 6.1") {
		t.Errorf("console tail: %d bytes ending %q", len(got), got[len(got)-20:])
	}
	if d.Console("i-none") != nil {
		t.Errorf("console of an unknown VM")
	}
}

// TestAdoptCleansDeadPidfiles: a pidfile whose process is gone (or is not
// that VM's QEMU) is removed, nothing is adopted.
func TestAdoptCleansDeadPidfiles(t *testing.T) {
	dir, _ := os.MkdirTemp("", "qvm")
	defer os.RemoveAll(dir)
	os.MkdirAll(filepath.Join(dir, "i-1"), 0o700)
	pidfile := filepath.Join(dir, "i-1", "qemu.pid")
	os.WriteFile(pidfile, []byte("1\n"), 0o600) // pid 1 is not i-1's QEMU
	d, err := New(Options{Dir: dir, Pool: netip.MustParsePrefix("127.42.0.0/16"), ProxyCommand: "/bin/true"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Running("i-1") || len(d.List()) != 0 {
		t.Errorf("adopted a machine that is not one")
	}
	if _, err := os.Stat(pidfile); err == nil {
		t.Errorf("stale pidfile kept")
	}
}
