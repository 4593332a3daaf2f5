// Package qemuvm runs omi's VMs as QEMU machines: one qemu-system-x86_64
// process per running VM, booting the VM's volumes from omi's own NBD
// server, with user networking that reaches nothing outside the host
// (restrict=on), the VM's ports forwarded on a loopback address of its
// own, and the metadata service at 169.254.169.254 answered by omi.
//
// Each machine has a directory DIR/<vm-id> holding qemu.pid, qmp.sock
// (the monitor), console.log (the serial port) and qemu.log (QEMU's own
// messages). Machines outlive omi: a new driver over the same directory
// adopts the ones still running, so an omi restart loses nothing.
package qemuvm

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/omiproject/omi/service"
)

// ConsoleMax is how much of the serial console ReadConsoleOutput returns,
// as the real API does.
const ConsoleMax = 64 << 10

// Options configure the driver.
type Options struct {
	// Dir holds a directory per machine and the metadata socket.
	Dir string
	// NBD is the host:port of omi's NBD server.
	NBD string
	// Pool is the range of loopback addresses VMs get (127.42.0.0/16).
	Pool netip.Prefix
	// MaxMemoryMiB and MaxVCores cap what a VM type asks for, so that a
	// small host runs several VMs (0: 1024 MiB and 2).
	MaxMemoryMiB, MaxVCores int
	// StopTimeout is how long a guest asked to power off has before its
	// machine is killed (0: 30 s).
	StopTimeout time.Duration
	// Metadata answers the guests' metadata requests (VmOf names the VM).
	Metadata http.Handler
	// ProxyCommand runs as QEMU's guestfwd command, followed by the
	// metadata socket and the VM id (default: this executable's
	// "imds-proxy" subcommand).
	ProxyCommand string
	// QEMU is the emulator (default qemu-system-x86_64 on PATH).
	QEMU string
	// OVMF is the UEFI firmware for BootMode uefi (default Debian's
	// /usr/share/OVMF/OVMF_CODE_4M.fd; legacy BIOS when missing).
	OVMF string
	Log  *slog.Logger
}

// Available reports whether QEMU is installed.
func Available() bool {
	_, err := exec.LookPath("qemu-system-x86_64")
	return err == nil
}

// Driver implements service.VmDriver with QEMU.
type Driver struct {
	opt   Options
	accel string
	// startMu serialises Start, so that two callers never start two
	// machines for one VM.
	startMu  sync.Mutex
	mu       sync.Mutex
	machines map[string]*machine
	notify   func(id string, guest bool)
	imds     *http.Server
}

// machine is one QEMU process.
type machine struct {
	id       string
	dir      string
	pid      int
	qmp      *qmp
	done     chan struct{} // closed once the process is gone
	guestOff bool          // a SHUTDOWN event came (the guest, or quit)
	stopping bool
	mu       sync.Mutex
}

// New starts the metadata socket and adopts the machines still running
// in opt.Dir (others' directories are cleaned up).
func New(opt Options) (*Driver, error) {
	if opt.QEMU == "" {
		opt.QEMU = "qemu-system-x86_64"
	}
	if opt.MaxMemoryMiB <= 0 {
		opt.MaxMemoryMiB = 1024
	}
	if opt.MaxVCores <= 0 {
		opt.MaxVCores = 2
	}
	if opt.StopTimeout <= 0 {
		opt.StopTimeout = 30 * time.Second
	}
	if opt.OVMF == "" {
		opt.OVMF = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	}
	if opt.Log == nil {
		opt.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opt.ProxyCommand == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		opt.ProxyCommand = self + " imds-proxy"
	}
	if !opt.Pool.IsValid() || !opt.Pool.Addr().Is4() || !opt.Pool.Addr().IsLoopback() {
		return nil, fmt.Errorf("the VM address pool %v is not an IPv4 range inside 127.0.0.0/8", opt.Pool)
	}
	if err := os.MkdirAll(opt.Dir, 0o700); err != nil {
		return nil, err
	}
	d := &Driver{opt: opt, machines: map[string]*machine{}, accel: "tcg"}
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err == nil {
		f.Close()
		d.accel = "kvm"
	}
	h := opt.Metadata
	if h == nil {
		h = http.NotFoundHandler()
	}
	srv, err := serveMetadata(d.metadataSocket(), h)
	if err != nil {
		return nil, fmt.Errorf("metadata socket: %w", err)
	}
	d.imds = srv
	d.adopt()
	return d, nil
}

// Accel is the accelerator machines run with: kvm or tcg.
func (d *Driver) Accel() string { return d.accel }

func (d *Driver) metadataSocket() string { return filepath.Join(d.opt.Dir, "imds.sock") }

// Close stops serving the metadata socket; the machines keep running
// (a later driver adopts them).
func (d *Driver) Close() error {
	d.mu.Lock()
	for _, m := range d.machines {
		if m.qmp != nil {
			m.qmp.close()
		}
	}
	d.mu.Unlock()
	return d.imds.Close()
}

func (d *Driver) Name() string              { return "qemu" }
func (d *Driver) AddressPool() netip.Prefix { return d.opt.Pool }

func (d *Driver) Notify(fn func(string, bool)) {
	d.mu.Lock()
	d.notify = fn
	d.mu.Unlock()
}

func (d *Driver) get(id string) *machine {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.machines[id]
	if m == nil {
		return nil
	}
	select {
	case <-m.done:
		return nil
	default:
		return m
	}
}

func (d *Driver) Running(id string) bool { return d.get(id) != nil }

func (d *Driver) List() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for id, m := range d.machines {
		select {
		case <-m.done:
		default:
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// Console returns the last ConsoleMax bytes of the VM's serial port; they
// stay readable after the machine stopped, until it starts again.
func (d *Driver) Console(id string) []byte {
	f, err := os.Open(filepath.Join(d.opt.Dir, id, "console.log"))
	if err != nil {
		return nil
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > ConsoleMax {
		f.Seek(st.Size()-ConsoleMax, io.SeekStart)
	}
	b, _ := io.ReadAll(io.LimitReader(f, ConsoleMax))
	return b
}

// args is QEMU's command line for spec.
func (d *Driver) args(spec service.VmSpec, dir string) ([]string, error) {
	mem := min(max(spec.MemoryMiB, 128), d.opt.MaxMemoryMiB)
	cores := min(max(spec.VCores, 1), d.opt.MaxVCores)
	sum := sha256.Sum256([]byte(spec.VmId))
	uuid := fmt.Sprintf("%x-%x-%x-%x-%x", sum[0:4], sum[4:6], sum[6:8], sum[8:10], sum[10:16])
	host, port, ok := strings.Cut(d.opt.NBD, ":")
	if !ok {
		return nil, fmt.Errorf("NBD address %q is not host:port", d.opt.NBD)
	}
	if i := strings.LastIndex(d.opt.NBD, ":"); i >= 0 {
		host, port = strings.Trim(d.opt.NBD[:i], "[]"), d.opt.NBD[i+1:]
	}
	a := []string{"-name", "guest=" + spec.VmId + ",debug-threads=off",
		"-machine", "pc,accel=" + d.accel, "-cpu", "max", "-smp", strconv.Itoa(cores), "-m", strconv.Itoa(mem),
		"-nodefaults", "-no-user-config", "-display", "none",
		"-chardev", "file,id=con,path=" + filepath.Join(dir, "console.log"), "-serial", "chardev:con",
		"-qmp", "unix:" + filepath.Join(dir, "qmp.sock") + ",server=on,wait=off",
		"-pidfile", filepath.Join(dir, "qemu.pid"),
		"-smbios", "type=1,manufacturer=3DS Outscale,product=3DS Outscale VM,uuid=" + uuid,
		"-device", "virtio-rng-pci"}
	if len(spec.Volumes) == 0 {
		return nil, errors.New("the VM has no volume to boot from")
	}
	for i, v := range spec.Volumes {
		bd, _ := json.Marshal(map[string]any{"driver": "nbd", "node-name": fmt.Sprintf("d%d", i),
			"server": map[string]string{"type": "inet", "host": host, "port": port}, "export": v,
			"reconnect-delay": 60, "cache": map[string]bool{"direct": false, "no-flush": false}})
		dev := fmt.Sprintf("virtio-blk-pci,drive=d%d", i)
		if i == 0 {
			dev += ",bootindex=0"
		}
		a = append(a, "-blockdev", string(bd), "-device", dev)
	}
	netdev := "user,id=n0,restrict=on,net=169.254.0.0/16,host=169.254.0.2,dhcpstart=169.254.0.15,dns=169.254.0.3"
	if spec.Hostname != "" && !strings.ContainsAny(spec.Hostname, ", ") {
		netdev += ",hostname=" + spec.Hostname
	}
	for _, a := range spec.PublicIps {
		for _, p := range spec.TCPPorts {
			netdev += fmt.Sprintf(",hostfwd=tcp:%s:%d-:%d", a, ForwardedPort(p), p)
		}
	}
	proxy := strings.ReplaceAll(fmt.Sprintf("%s %s %s", d.opt.ProxyCommand, d.metadataSocket(), spec.VmId), ",", ",,")
	netdev += ",guestfwd=tcp:169.254.169.254:80-cmd:" + proxy
	nic := "virtio-net-pci,netdev=n0"
	if spec.MAC != "" {
		nic += ",mac=" + spec.MAC
	}
	a = append(a, "-netdev", netdev, "-device", nic)
	if spec.BootMode == "uefi" {
		if code, err := os.ReadFile(strings.Replace(d.opt.OVMF, "CODE", "VARS", 1)); err == nil {
			vars := filepath.Join(dir, "vars.fd")
			if _, err := os.Stat(vars); err != nil {
				if err := os.WriteFile(vars, code, 0o600); err != nil {
					return nil, err
				}
			}
			a = append(a, "-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+d.opt.OVMF,
				"-drive", "if=pflash,format=raw,unit=1,file="+vars)
		} else {
			d.opt.Log.Warn("UEFI firmware missing: booting with the legacy BIOS", "ovmf", d.opt.OVMF)
		}
	}
	return a, nil
}

// Start runs the VM's machine and returns once its monitor answers.
func (d *Driver) Start(ctx context.Context, spec service.VmSpec) error {
	d.startMu.Lock()
	defer d.startMu.Unlock()
	if d.Running(spec.VmId) {
		return nil
	}
	if strings.ContainsAny(spec.VmId, "/.\x00") {
		return fmt.Errorf("bad VM id %q", spec.VmId)
	}
	dir := filepath.Join(d.opt.Dir, spec.VmId)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, f := range []string{"qmp.sock", "qemu.pid"} {
		os.Remove(filepath.Join(dir, f))
	}
	args, err := d.args(spec, dir)
	if err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "qemu.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "%s %s\n", d.opt.QEMU, strings.Join(args, " "))
	cmd := exec.Command(d.opt.QEMU, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: a signal to omi's process group (Ctrl-C) does not
	// reach the machines, which outlive omi.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start QEMU: %w", err)
	}
	m := &machine{id: spec.VmId, dir: dir, pid: cmd.Process.Pid, done: make(chan struct{})}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		q, err := dialQMP(filepath.Join(dir, "qmp.sock"), m.event)
		if err == nil {
			m.qmp = q
			break
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "qemu.log"))
			return fmt.Errorf("QEMU exited at start: %s", lastLine(string(b)))
		case <-ctx.Done():
			cmd.Process.Kill()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return errors.New("QEMU's monitor did not answer in 15 s")
		}
	}
	d.track(m, exited)
	if len(spec.PublicIps) > 0 {
		d.opt.Log.Info("vm machine running", "vm", spec.VmId, "ssh", net.JoinHostPort(spec.PublicIps[0], strconv.Itoa(ForwardedPort(22))), "pid", m.pid)
	}
	return nil
}

// UnprivilegedPortOffset is added to the guest ports below 1024 when omi
// may not bind them (not root, no CAP_NET_BIND_SERVICE): SSH is then on
// PublicIp:10022.
const UnprivilegedPortOffset = 10000

var (
	lowPortsOnce sync.Once
	lowPortsOK   bool
)

// ForwardedPort is the host port a guest TCP port is forwarded on: the
// same port, or port+UnprivilegedPortOffset for ports below 1024 when
// this process may not bind them.
func ForwardedPort(p int) int {
	lowPortsOnce.Do(func() {
		for _, try := range []int{1023, 1022, 1021, 1020, 1019} {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(try)))
			if err == nil {
				ln.Close()
				lowPortsOK = true
				return
			}
			if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
				return
			}
		}
		lowPortsOK = true // in use, so bindable by someone: assume allowed
	})
	if p < 1024 && !lowPortsOK {
		return p + UnprivilegedPortOffset
	}
	return p
}

// track records a running machine and reports its exit.
func (d *Driver) track(m *machine, exited <-chan struct{}) {
	d.mu.Lock()
	d.machines[m.id] = m
	d.mu.Unlock()
	go func() {
		<-m.qmp.closed
		<-exited
		m.qmp.close()
		close(m.done)
		m.mu.Lock()
		guest := m.guestOff
		m.mu.Unlock()
		d.opt.Log.Info("vm machine exited", "vm", m.id, "guest_shutdown", guest)
		d.mu.Lock()
		fn := d.notify
		if d.machines[m.id] == m {
			delete(d.machines, m.id)
		}
		d.mu.Unlock()
		os.Remove(filepath.Join(m.dir, "qemu.pid"))
		if fn != nil {
			fn(m.id, guest)
		}
	}()
}

func (m *machine) event(name string, data json.RawMessage) {
	if name == "SHUTDOWN" {
		m.mu.Lock()
		m.guestOff = true
		m.mu.Unlock()
	}
}

// Stop asks the guest to power off (ACPI power button) and kills the
// machine after StopTimeout; with force it quits at once.
func (d *Driver) Stop(id string, force bool) error {
	m := d.get(id)
	if m == nil {
		return nil
	}
	m.mu.Lock()
	first := !m.stopping
	m.stopping = true
	m.mu.Unlock()
	if force {
		if err := m.qmp.exec("quit", nil); err != nil {
			syscall.Kill(m.pid, syscall.SIGKILL)
		}
		return nil
	}
	if !first {
		return nil
	}
	if err := m.qmp.exec("system_powerdown", nil); err != nil {
		d.opt.Log.Warn("power button", "vm", id, "err", err)
	}
	go func() {
		select {
		case <-m.done:
			return
		case <-time.After(d.opt.StopTimeout):
		}
		d.opt.Log.Warn("the guest did not power off in time: stopping its machine", "vm", id, "timeout", d.opt.StopTimeout)
		if err := m.qmp.exec("quit", nil); err != nil {
			syscall.Kill(m.pid, syscall.SIGKILL)
		}
		select {
		case <-m.done:
		case <-time.After(5 * time.Second):
			syscall.Kill(m.pid, syscall.SIGKILL)
		}
	}()
	return nil
}

// Reboot resets the machine (a hard reset, as the real RebootVms).
func (d *Driver) Reboot(id string) error {
	m := d.get(id)
	if m == nil {
		return nil
	}
	return m.qmp.exec("system_reset", nil)
}

// adopt takes over the machines a previous omi left running, and kills
// those it cannot control.
func (d *Driver) adopt() {
	ents, _ := os.ReadDir(d.opt.Dir)
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(d.opt.Dir, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, "qemu.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || !alive(pid, e.Name()) {
			os.Remove(filepath.Join(dir, "qemu.pid"))
			continue
		}
		m := &machine{id: e.Name(), dir: dir, pid: pid, done: make(chan struct{})}
		q, err := dialQMP(filepath.Join(dir, "qmp.sock"), m.event)
		if err != nil {
			d.opt.Log.Warn("a VM machine left running cannot be controlled: killing it", "vm", m.id, "pid", pid, "err", err)
			syscall.Kill(pid, syscall.SIGKILL)
			continue
		}
		m.qmp = q
		exited := make(chan struct{})
		go func() {
			for alive(pid, m.id) {
				time.Sleep(200 * time.Millisecond)
			}
			close(exited)
		}()
		d.opt.Log.Info("adopted a running VM machine", "vm", m.id, "pid", pid)
		d.track(m, exited)
	}
}

// alive reports whether pid is a live (not zombie) QEMU of VM id.
func alive(pid int, id string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), "guest="+id+",") {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	return true
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
