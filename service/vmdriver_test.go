package service_test

import (
	"context"
	"encoding/base64"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/service"
)

// fakeDriver records what the service asks of a VM driver; a test makes
// machines exit with exit().
type fakeDriver struct {
	mu       sync.Mutex
	running  map[string]bool
	started  []service.VmSpec
	stops    []string // "id" or "id!" for a forced stop
	reboots  []string
	console  map[string][]byte
	startErr error
	notify   func(string, bool)
	// forwards is the last Forward spec of each running VM.
	forwards map[string]service.VmSpec
}

func newFakeDriver() *fakeDriver {
	return &fakeDriver{running: map[string]bool{}, console: map[string][]byte{}, forwards: map[string]service.VmSpec{}}
}

func (f *fakeDriver) Name() string { return "fake" }
func (f *fakeDriver) Start(_ context.Context, s service.VmSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startErr != nil {
		return f.startErr
	}
	if f.running[s.VmId] {
		return nil // as the interface says
	}
	f.started = append(f.started, s)
	f.running[s.VmId] = true
	delete(f.forwards, s.VmId)
	return nil
}
func (f *fakeDriver) Stop(id string, force bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if force {
		id += "!"
	}
	f.stops = append(f.stops, id)
	return nil
}
func (f *fakeDriver) Reboot(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reboots = append(f.reboots, id)
	return nil
}
func (f *fakeDriver) Running(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.running[id]
}
func (f *fakeDriver) List() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id, r := range f.running {
		if r {
			out = append(out, id)
		}
	}
	return out
}
func (f *fakeDriver) Console(id string) []byte     { return f.console[id] }
func (f *fakeDriver) Notify(fn func(string, bool)) { f.notify = fn }
func (f *fakeDriver) AddressPool() netip.Prefix    { return netip.MustParsePrefix("127.42.7.0/24") }
func (f *fakeDriver) Forward(s service.VmSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.running[s.VmId] {
		f.forwards[s.VmId] = s
	}
	return nil
}

// forwarded is what a running VM forwards now: the spec it started with,
// as Forward changed it since.
func (f *fakeDriver) forwarded(id string) service.VmSpec {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.forwards[id]; ok {
		return s
	}
	for i := len(f.started) - 1; i >= 0; i-- {
		if f.started[i].VmId == id {
			return f.started[i]
		}
	}
	return service.VmSpec{}
}

// exit makes a machine exit, as its process would.
func (f *fakeDriver) exit(id string, guest bool) {
	f.mu.Lock()
	f.running[id] = false
	f.mu.Unlock()
	f.notify(id, guest)
}

func (e *env) withDriver() *fakeDriver {
	d := newFakeDriver()
	e.svc.SetVmDriver(d)
	return d
}

func (e *env) createVm(img, shutdown string) *omi.Vm {
	e.t.Helper()
	out, err := e.svc.CreateVms(context.Background(), e.joe, &service.CreateVmsRequest{ImageId: img, VmType: "tinav5.c2r4p2",
		VmInitiatedShutdownBehavior: shutdown, UserData: base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho hi\n"))})
	if err != nil {
		e.t.Fatal(err)
	}
	e.settle()
	return out.Vms[0]
}

func TestVmDriverLifecycle(t *testing.T) {
	e := newEnv(t)
	d := e.withDriver()
	img := e.image(e.joe, "boot")
	ctx := context.Background()
	vm := e.createVm(img.ImageId, "")
	if vm.PublicIp != "127.42.7.2" || vm.PublicDnsName != vm.PublicIp {
		t.Errorf("first VM's public address %q (%q), want the pool's first, 127.42.7.2", vm.PublicIp, vm.PublicDnsName)
	}
	if got := e.vm(e.joe, vm.VmId); got.State != omi.VmRunning || got.PublicIp != vm.PublicIp {
		t.Fatalf("VM is %s at %s, want running at %s", got.State, got.PublicIp, vm.PublicIp)
	}
	if len(d.started) != 1 {
		t.Fatalf("driver started %d machines, want 1", len(d.started))
	}
	spec := d.started[0]
	if spec.VmId != vm.VmId || spec.VCores != 2 || spec.MemoryMiB != 4096 || len(spec.Volumes) != 1 ||
		spec.Volumes[0] != vm.BlockDeviceMappings[0].Bsu.VolumeId || !slices.Contains(spec.TCPPorts, 22) || !slices.Equal(spec.PublicIps, []string{vm.PublicIp}) {
		t.Errorf("spec %+v", spec)
	}
	vm2 := e.createVm(img.ImageId, "")
	if vm2.PublicIp == vm.PublicIp {
		t.Errorf("two VMs got %s", vm.PublicIp)
	}

	// StopVms: stopping until the machine has exited.
	if _, err := e.svc.StopVms(ctx, e.joe, &service.VmIdsRequest{VmIds: []string{vm.VmId}}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	if got := e.vm(e.joe, vm.VmId).State; got != omi.VmStopping {
		t.Errorf("VM whose machine still runs is %s, want stopping", got)
	}
	if !slices.Contains(d.stops, vm.VmId) {
		t.Errorf("stops %v: no power-off asked for %s", d.stops, vm.VmId)
	}
	d.exit(vm.VmId, true)
	e.settle()
	if got := e.vm(e.joe, vm.VmId).State; got != omi.VmStopped {
		t.Errorf("VM whose machine exited is %s, want stopped", got)
	}

	// ForceStop reaches the driver; RebootVms resets.
	if _, err := e.svc.RebootVms(ctx, e.joe, &service.VmIdsRequest{VmIds: []string{vm2.VmId}}); err != nil || !slices.Contains(d.reboots, vm2.VmId) {
		t.Errorf("RebootVms: %v, reboots %v", err, d.reboots)
	}
	if _, err := e.svc.StopVms(ctx, e.joe, &service.VmIdsRequest{VmIds: []string{vm2.VmId}, ForceStop: true}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(d.stops, vm2.VmId+"!") {
		t.Errorf("ForceStop did not reach the driver: %v", d.stops)
	}
	d.exit(vm2.VmId, false)
	e.settle()
	if got := e.vm(e.joe, vm2.VmId).State; got != omi.VmStopped {
		t.Errorf("force-stopped VM is %s", got)
	}

	// The console is the driver's, base64.
	d.console[vm.VmId] = []byte("Linux version 6.1\n")
	out, err := e.svc.ReadConsoleOutput(ctx, e.joe, &service.ReadConsoleOutputRequest{VmId: vm.VmId})
	if err != nil || out.ConsoleOutput != base64.StdEncoding.EncodeToString(d.console[vm.VmId]) {
		t.Errorf("ReadConsoleOutput %+v, %v", out, err)
	}

	// DeleteVms of a running VM kills its machine, then terminates it.
	if _, err := e.svc.StartVms(ctx, e.joe, &service.VmIdsRequest{VmIds: []string{vm.VmId}}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	if got := e.vm(e.joe, vm.VmId).State; got != omi.VmRunning {
		t.Fatalf("restarted VM is %s", got)
	}
	if _, err := e.svc.DeleteVms(ctx, e.joe, &service.VmIdsRequest{VmIds: []string{vm.VmId}}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	if got := e.vm(e.joe, vm.VmId).State; got != omi.VmShuttingDown || !slices.Contains(d.stops, vm.VmId+"!") {
		t.Errorf("deleted VM with a running machine is %s, stops %v", got, d.stops)
	}
	d.exit(vm.VmId, true)
	e.settle()
	if got := e.vm(e.joe, vm.VmId).State; got != omi.VmTerminated {
		t.Errorf("deleted VM is %s after its machine exited", got)
	}
	// Its address is free again.
	vm3 := e.createVm(img.ImageId, "")
	if vm3.PublicIp != vm.PublicIp {
		t.Errorf("new VM got %s, want the freed %s", vm3.PublicIp, vm.PublicIp)
	}
}

func TestVmDriverGuestShutdownAndFailures(t *testing.T) {
	e := newEnv(t)
	d := e.withDriver()
	img := e.image(e.joe, "boot")
	for _, tc := range []struct {
		behaviour, want string
		guest           bool
	}{
		{"stop", omi.VmStopped, true},
		{"terminate", omi.VmTerminated, true},
		{"restart", omi.VmRunning, true},
		{"stop", omi.VmStopped, false}, // the machine died
	} {
		vm := e.createVm(img.ImageId, tc.behaviour)
		n := len(d.started)
		d.exit(vm.VmId, tc.guest)
		e.settle()
		got := e.vm(e.joe, vm.VmId)
		if got.State != tc.want {
			t.Errorf("%s, guest %v: VM is %s, want %s", tc.behaviour, tc.guest, got.State, tc.want)
		}
		if tc.behaviour == "restart" && len(d.started) != n+1 {
			t.Errorf("restart: machine started %d more times, want 1", len(d.started)-n)
		}
		if !tc.guest && !strings.Contains(got.StateReason, "unexpectedly") {
			t.Errorf("dead machine: StateReason %q", got.StateReason)
		}
	}

	// A machine that cannot start leaves the VM stopped, with the reason.
	d.startErr = errString("QEMU exited at start: could not bind")
	out, err := e.svc.CreateVms(context.Background(), e.joe, &service.CreateVmsRequest{ImageId: img.ImageId})
	if err != nil {
		t.Fatal(err)
	}
	e.settle()
	if got := e.vm(e.joe, out.Vms[0].VmId); got.State != omi.VmStopped || !strings.Contains(got.StateReason, "could not bind") {
		t.Errorf("VM whose machine failed to start: %s %q", got.State, got.StateReason)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// TestVmDriverRecovery: at Start, running VMs without a machine are
// started again, machines without a running VM are stopped.
func TestVmDriverRecovery(t *testing.T) {
	e := newEnv(t)
	d := e.withDriver()
	img := e.image(e.joe, "boot")
	lost := e.createVm(img.ImageId, "")
	kept := e.createVm(img.ImageId, "")
	d.mu.Lock()
	d.running[lost.VmId] = false   // its machine died with the host
	d.running["i-0badf00d"] = true // a machine no VM owns
	d.mu.Unlock()
	n := len(d.started)
	ctx, cancel := context.WithCancel(context.Background())
	e.svc.Start(ctx)
	e.settle()
	cancel()
	e.svc.Close()
	if len(d.started) != n+1 || d.started[n].VmId != lost.VmId {
		t.Errorf("after Start, machines started: %d more, want 1 for %s", len(d.started)-n, lost.VmId)
	}
	if !slices.Contains(d.stops, "i-0badf00d!") || slices.Contains(d.stops, kept.VmId+"!") {
		t.Errorf("stops after Start: %v; want only the orphan", d.stops)
	}
	if got := e.vm(e.joe, lost.VmId).State; got != omi.VmRunning {
		t.Errorf("recovered VM is %s", got)
	}
}

func TestVmMetadata(t *testing.T) {
	e := newEnv(t)
	e.withDriver()
	ctx := context.Background()
	img := e.image(e.joe, "boot")
	k, err := e.svc.CreateKeypair(ctx, e.joe, &service.CreateKeypairRequest{KeypairName: "mdkey"})
	if err != nil {
		t.Fatal(err)
	}
	_ = k
	out, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId, KeypairName: "mdkey",
		UserData: base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\necho hi\n"))})
	if err != nil {
		t.Fatal(err)
	}
	vm := out.Vms[0]
	get := func(path string) (string, bool) {
		t.Helper()
		body, ok, err := e.svc.VmMetadata(ctx, vm.VmId, path)
		if err != nil {
			t.Fatal(err)
		}
		return body, ok
	}
	for path, want := range map[string]string{
		"/latest/meta-data/instance-id":                 vm.VmId,
		"/2009-04-04/meta-data/instance-id":             vm.VmId,
		"/latest/meta-data/ami-id":                      img.ImageId,
		"/latest/meta-data/public-ipv4":                 vm.PublicIp,
		"/latest/meta-data/local-ipv4":                  vm.PrivateIp,
		"/latest/meta-data/instance-type":               vm.VmType,
		"/latest/meta-data/placement/availability-zone": "eu-west-2a",
		"/latest/user-data":                             "#!/bin/sh\necho hi\n",
		"/latest/meta-data/public-keys/":                "0=mdkey\n",
	} {
		if got, ok := get(path); !ok || got != want {
			t.Errorf("%s = %q, %v; want %q", path, got, ok, want)
		}
	}
	if got, ok := get("/latest/meta-data/public-keys/0/openssh-key"); !ok || !strings.HasPrefix(got, "ssh-") {
		t.Errorf("openssh-key %q", got)
	}
	if got, ok := get("/latest/meta-data/"); !ok || !strings.Contains(got, "instance-id\n") || !strings.Contains(got, "placement/\n") {
		t.Errorf("meta-data listing %q", got)
	}
	if got, ok := get("/"); !ok || !strings.Contains(got, "2009-04-04\n") || !strings.Contains(got, "latest") {
		t.Errorf("versions %q", got)
	}
	for _, p := range []string{"/latest/meta-data/nothing", "/nope/meta-data/instance-id", "/latest/meta-data/../user-data"} {
		if _, ok := get(p); ok {
			t.Errorf("%s exists", p)
		}
	}
	if _, ok, err := e.svc.VmMetadata(ctx, "i-00000000", "/latest/meta-data/instance-id"); ok || err != nil {
		t.Errorf("unknown VM: %v %v", ok, err)
	}
}

// TestVmDriverImageWithReboot: CreateImage of a running VM takes the
// snapshots only once the machine has exited, then starts it again.
func TestVmDriverImageWithReboot(t *testing.T) {
	e := newEnv(t)
	d := e.withDriver()
	ctx := context.Background()
	vm := e.createVm(e.image(e.joe, "boot").ImageId, "")
	out, err := e.svc.CreateImage(ctx, e.joe, &service.CreateImageRequest{VmId: vm.VmId, ImageName: "from-vm"})
	if err != nil {
		t.Fatal(err)
	}
	e.settle()
	snap := out.Image.BlockDeviceMappings[0].Bsu.SnapshotId
	sn, err := e.svc.ReadSnapshots(ctx, e.joe, &service.ReadSnapshotsRequest{Filters: &service.FiltersSnapshot{SnapshotIds: []string{snap}}})
	if err != nil || len(sn.Snapshots) != 1 {
		t.Fatal(err)
	}
	if sn.Snapshots[0].State != omi.SnapshotPending || e.vm(e.joe, vm.VmId).State != omi.VmStopping {
		t.Fatalf("while the guest powers off: snapshot %s, VM %s; want pending and stopping", sn.Snapshots[0].State, e.vm(e.joe, vm.VmId).State)
	}
	n := len(d.started)
	d.exit(vm.VmId, true)
	e.settle()
	sn, _ = e.svc.ReadSnapshots(ctx, e.joe, &service.ReadSnapshotsRequest{Filters: &service.FiltersSnapshot{SnapshotIds: []string{snap}}})
	if sn.Snapshots[0].State != omi.SnapshotCompleted || e.vm(e.joe, vm.VmId).State != omi.VmRunning || len(d.started) != n+1 {
		t.Errorf("after the machine exited: snapshot %s, VM %s, %d more starts", sn.Snapshots[0].State, e.vm(e.joe, vm.VmId).State, len(d.started)-n)
	}
}

// TestVmDriverLiveForwards: security group rules, a VM's groups and public
// IP links change what a running VM forwards at once (the driver's
// Forward), and a public IP under a driver with a pool is an address of
// the pool that ReadVms and the metadata service then report.
func TestVmDriverLiveForwards(t *testing.T) {
	e := newEnv(t)
	d := e.withDriver()
	ctx := context.Background()
	img := e.image(e.joe, "boot")
	group := func(name string) string {
		g, err := e.svc.CreateSecurityGroup(ctx, e.joe, &service.CreateSecurityGroupRequest{SecurityGroupName: name, Description: "d"})
		if err != nil {
			t.Fatal(err)
		}
		return g.SecurityGroup.SecurityGroupId
	}
	web := group("web")
	out, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId, VmType: "tinav5.c1r1p2", SecurityGroupIds: []string{web}})
	if err != nil {
		t.Fatal(err)
	}
	e.settle()
	vm := out.Vms[0]
	other := e.createVm(img.ImageId, "")
	ports := func(id string) []int { return d.forwarded(id).TCPPorts }
	if got := ports(vm.VmId); !slices.Equal(got, []int{22}) {
		t.Fatalf("a VM of an empty group forwards %v, want [22]", got)
	}

	rule := service.RuleRequest{IpProtocol: "tcp", FromPortRange: ptr(8080), ToPortRange: ptr(8081), IpRanges: []string{"0.0.0.0/0"}}
	if _, err := e.svc.CreateSecurityGroupRule(ctx, e.joe, &service.CreateSecurityGroupRuleRequest{SecurityGroupId: web, Flow: "Inbound",
		Rules: []service.RuleRequest{rule}}); err != nil {
		t.Fatal(err)
	}
	if got := ports(vm.VmId); !slices.Equal(got, []int{22, 8080, 8081}) {
		t.Errorf("after CreateSecurityGroupRule the running VM forwards %v, want [22 8080 8081]", got)
	}
	if got := ports(other.VmId); slices.Contains(got, 8080) {
		t.Errorf("a VM of another group forwards %v", got)
	}
	if _, err := e.svc.DeleteSecurityGroupRule(ctx, e.joe, &service.DeleteSecurityGroupRuleRequest{SecurityGroupId: web, Flow: "Inbound",
		Rules: []service.RuleRequest{rule}}); err != nil {
		t.Fatal(err)
	}
	if got := ports(vm.VmId); !slices.Equal(got, []int{22}) {
		t.Errorf("after DeleteSecurityGroupRule the running VM forwards %v, want [22]", got)
	}
	db := group("db")
	if _, err := e.svc.CreateSecurityGroupRule(ctx, e.joe, &service.CreateSecurityGroupRuleRequest{SecurityGroupId: db, Flow: "Inbound",
		IpProtocol: "tcp", FromPortRange: ptr(5432), ToPortRange: ptr(5432), IpRange: "10.0.0.0/8"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.UpdateVm(ctx, e.joe, &service.UpdateVmRequest{VmId: vm.VmId, SecurityGroupIds: []string{db}}); err != nil {
		t.Fatal(err)
	}
	if got := ports(vm.VmId); !slices.Equal(got, []int{22, 5432}) {
		t.Errorf("after UpdateVm SecurityGroupIds the running VM forwards %v, want [22 5432]", got)
	}

	// A public IP is drawn from the top of the pool; linked, the VM's
	// forwards move to it, and back when it is unlinked.
	ip, err := e.svc.CreatePublicIp(ctx, e.joe, &service.CreatePublicIpRequest{})
	if err != nil {
		t.Fatal(err)
	}
	addr := ip.PublicIp.PublicIp
	if addr != "127.42.7.254" {
		t.Errorf("first public IP under a pool driver is %s, want 127.42.7.254", addr)
	}
	if _, err := e.svc.LinkPublicIp(ctx, e.joe, &service.LinkPublicIpRequest{PublicIp: addr, VmId: vm.VmId}); err != nil {
		t.Fatal(err)
	}
	if got := d.forwarded(vm.VmId).PublicIps; !slices.Equal(got, []string{addr}) {
		t.Errorf("linked VM forwards on %v, want [%s]", got, addr)
	}
	if got := e.vm(e.joe, vm.VmId); got.PublicIp != addr || got.PublicDnsName != addr {
		t.Errorf("ReadVms of the linked VM: %s (%s), want %s", got.PublicIp, got.PublicDnsName, addr)
	}
	if body, ok, err := e.svc.VmMetadata(ctx, vm.VmId, "/latest/meta-data/public-ipv4"); err != nil || !ok || body != addr {
		t.Errorf("metadata public-ipv4 %q %v %v, want %s", body, ok, err, addr)
	}
	if got := d.forwarded(other.VmId).PublicIps; !slices.Equal(got, []string{other.PublicIp}) {
		t.Errorf("the other VM forwards on %v", got)
	}
	if _, err := e.svc.UnlinkPublicIp(ctx, e.joe, &service.UnlinkPublicIpRequest{PublicIp: addr}); err != nil {
		t.Fatal(err)
	}
	if got := d.forwarded(vm.VmId).PublicIps; !slices.Equal(got, []string{vm.PublicIp}) {
		t.Errorf("unlinked VM forwards on %v, want its own %s", got, vm.PublicIp)
	}
	if got := e.vm(e.joe, vm.VmId); got.PublicIp != vm.PublicIp {
		t.Errorf("ReadVms after the unlink: %s, want %s", got.PublicIp, vm.PublicIp)
	}
	// Addresses are never shared between VMs and public IPs.
	ip2, err := e.svc.CreatePublicIp(ctx, e.joe, &service.CreatePublicIpRequest{})
	if err != nil || ip2.PublicIp.PublicIp == addr || ip2.PublicIp.PublicIp == vm.PublicIp || ip2.PublicIp.PublicIp == other.PublicIp {
		t.Errorf("second public IP %+v, %v", ip2, err)
	}
	// A stopped VM is left alone (its forwards are set when it starts).
	if _, err := e.svc.StopVms(ctx, e.joe, &service.VmIdsRequest{VmIds: []string{vm.VmId}, ForceStop: true}); err != nil {
		t.Fatal(err)
	}
	d.exit(vm.VmId, false)
	e.settle()
	if _, err := e.svc.LinkPublicIp(ctx, e.joe, &service.LinkPublicIpRequest{PublicIp: addr, VmId: vm.VmId}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.StartVms(ctx, e.joe, &service.VmIdsRequest{VmIds: []string{vm.VmId}}); err != nil {
		t.Fatal(err)
	}
	e.settle()
	if got := d.forwarded(vm.VmId).PublicIps; !slices.Equal(got, []string{addr}) {
		t.Errorf("VM started with a linked public IP forwards on %v, want [%s]", got, addr)
	}
}

// Under a driver with an address pool, a VM created in a subnet with
// MapPublicIpOnLaunch shows its own pool address as its PublicIp: the
// address its ports are forwarded on, so that Packer and SSH reach it.
func TestVmDriverMapPublicIpOnLaunch(t *testing.T) {
	e := newEnv(t)
	d := e.withDriver()
	ctx := context.Background()
	img := e.image(e.joe, "boot")
	net, err := e.svc.CreateNet(ctx, e.joe, &service.CreateNetRequest{IpRange: "10.0.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := e.svc.CreateSubnet(ctx, e.joe, &service.CreateSubnetRequest{NetId: net.Net.NetId, IpRange: "10.0.1.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.UpdateSubnet(ctx, e.joe, &service.UpdateSubnetRequest{SubnetId: sub.Subnet.SubnetId, MapPublicIpOnLaunch: ptr(true)}); err != nil {
		t.Fatal(err)
	}
	out, err := e.svc.CreateVms(ctx, e.joe, &service.CreateVmsRequest{ImageId: img.ImageId, VmType: "tinav5.c1r1p2", SubnetId: sub.Subnet.SubnetId})
	if err != nil {
		t.Fatal(err)
	}
	e.settle()
	id := out.Vms[0].VmId
	read, err := e.svc.ReadVms(ctx, e.joe, &service.ReadVmsRequest{Filters: &service.FiltersVm{VmIds: []string{id}}})
	if err != nil || len(read.Vms) != 1 {
		t.Fatalf("ReadVms: %v %v", read, err)
	}
	ip := read.Vms[0].PublicIp
	if !netip.MustParsePrefix("127.42.7.0/24").Contains(netip.MustParseAddr(ip)) {
		t.Fatalf("PublicIp %s is outside the driver's pool", ip)
	}
	if fwd := d.forwarded(id).PublicIps; !slices.Equal(fwd, []string{ip}) {
		t.Fatalf("the VM's ports are forwarded on %v, ReadVms shows %s", fwd, ip)
	}
}
