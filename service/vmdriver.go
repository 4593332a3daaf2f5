package service

import (
	"context"
	"net/netip"
	"slices"
	"strings"

	"github.com/omiproject/omi"
)

// VmDriver runs the VMs the API describes. The service decides the states
// (pending, running, stopping, ...); the driver runs or stops what backs
// them and reports when a VM's machine exits on its own. Two exist: the
// simulated one (SimDriver, nothing runs: states move at once) and a QEMU
// one (package qemuvm: one emulator process per running VM, booting its
// volumes from omi's NBD server).
type VmDriver interface {
	// Name is "sim" or "qemu", for logs.
	Name() string
	// Start runs the VM's machine; starting a running VM does nothing.
	// It returns once the machine runs (or failed to).
	Start(ctx context.Context, spec VmSpec) error
	// Stop asks the machine to stop and returns at once: with force it
	// is killed, else the guest is asked to power off (and killed after
	// the driver's timeout). The exit is reported through Notify.
	Stop(id string, force bool) error
	// Reboot resets a running machine.
	Reboot(id string) error
	// Running reports whether the VM's machine runs.
	Running(id string) bool
	// List names the VMs whose machines run.
	List() []string
	// Console is the tail (at most 64 KiB) of the VM's serial console.
	Console(id string) []byte
	// Notify registers fn, called once a machine has exited: guest is
	// true when the guest powered itself off (or was asked to), false
	// when the machine died (killed, crashed).
	Notify(fn func(id string, guest bool))
	// AddressPool is the pool of loopback addresses VMs get as their
	// public address (an invalid prefix: none, the VM keeps the
	// simulated addressing).
	AddressPool() netip.Prefix
}

// VmSpec is what a driver needs to run a VM.
type VmSpec struct {
	VmId      string
	VCores    int
	MemoryMiB int
	BootMode  string
	// Volumes are the VM's volume ids, the root volume first.
	Volumes []string
	// PublicIp is the loopback address the VM's ports are forwarded on.
	PublicIp string
	// TCPPorts are the guest TCP ports forwarded on PublicIp (22 and
	// those the VM's security groups open).
	TCPPorts []int
	// MAC is the address of its network card, the one the metadata
	// service reports.
	MAC string
	// Hostname is the guest's short host name (DHCP).
	Hostname string
}

// SimDriver is the simulated driver: nothing runs, so a VM is running as
// soon as its volumes are ready and stopped as soon as it is asked to.
type SimDriver struct{}

func (SimDriver) Name() string                        { return "sim" }
func (SimDriver) Start(context.Context, VmSpec) error { return nil }
func (SimDriver) Stop(string, bool) error             { return nil }
func (SimDriver) Reboot(string) error                 { return nil }
func (SimDriver) Running(string) bool                 { return false }
func (SimDriver) List() []string                      { return nil }
func (SimDriver) Console(string) []byte               { return nil }
func (SimDriver) Notify(func(string, bool))           {}
func (SimDriver) AddressPool() netip.Prefix           { return netip.Prefix{} }

// SetVmDriver chooses the driver (default SimDriver). Call it before
// Start: Start then reconciles the running machines with the store.
func (s *Service) SetVmDriver(d VmDriver) {
	s.driver = d
	d.Notify(s.vmExited)
}

// vmDriver is the driver in use.
func (s *Service) vmDriver() VmDriver {
	if s.driver == nil {
		return SimDriver{}
	}
	return s.driver
}

// maxForwardedPorts bounds the security-group ports forwarded per VM.
const maxForwardedPorts = 32

// vmSpec gathers what the driver needs to run vm.
func (s *Service) vmSpec(tx omi.Tx, vm *omi.Vm) (VmSpec, error) {
	spec := VmSpec{VmId: vm.VmId, VCores: 1, MemoryMiB: 1024, BootMode: vm.BootMode, PublicIp: vm.PublicIp, TCPPorts: []int{22},
		MAC: vmMAC(vm.VmId)}
	spec.Hostname, _, _ = strings.Cut(vm.PrivateDnsName, ".")
	if vt, err := omi.ParseVmType(vm.VmType); err == nil {
		spec.VCores, spec.MemoryMiB = vt.VCores, vt.MemoryGiB*1024
	}
	root := -1
	for i, m := range vm.BlockDeviceMappings {
		if m.DeviceName == vm.RootDeviceName {
			root = i
		}
	}
	if root >= 0 {
		spec.Volumes = append(spec.Volumes, vm.BlockDeviceMappings[root].Bsu.VolumeId)
	}
	for i, m := range vm.BlockDeviceMappings {
		if i != root {
			spec.Volumes = append(spec.Volumes, m.Bsu.VolumeId)
		}
	}
	for _, g := range vm.SecurityGroups {
		sg, err := omi.Get[omi.SecGroup](tx, g.SecurityGroupId)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return spec, err
		}
		for _, r := range sg.InboundRules {
			if r.IpProtocol != "tcp" && r.IpProtocol != "6" && r.IpProtocol != omi.ProtocolAll {
				continue
			}
			from, to := r.FromPortRange, r.ToPortRange
			if r.IpProtocol == omi.ProtocolAll || to-from >= maxForwardedPorts {
				continue // a whole range cannot be forwarded port by port
			}
			for p := from; p <= to && p > 0 && p < 65536; p++ {
				if !slices.Contains(spec.TCPPorts, p) && len(spec.TCPPorts) < maxForwardedPorts {
					spec.TCPPorts = append(spec.TCPPorts, p)
				}
			}
		}
	}
	slices.Sort(spec.TCPPorts)
	return spec, nil
}

// poolAddress picks the first address of the driver's pool that no VM
// still holding one uses (in tx, so two CreateVms never share one).
func (s *Service) poolAddress(tx omi.Tx, taken map[string]bool) (string, error) {
	pool := s.vmDriver().AddressPool()
	if !pool.IsValid() {
		return "", nil
	}
	if taken == nil {
		return "", nil
	}
	// Skip the network address and .1 (127.x.0.1 may be in use).
	a := pool.Masked().Addr().Next().Next()
	for ; pool.Contains(a); a = a.Next() {
		if !taken[a.String()] && !strings.HasSuffix(a.String(), ".0") && !strings.HasSuffix(a.String(), ".255") {
			taken[a.String()] = true
			return a.String(), nil
		}
	}
	return "", omi.Errorf("10010", omi.TypeTooManyResources, "the pool of VM addresses %s is exhausted: delete VMs first", pool)
}

// takenAddresses lists the pool addresses VMs not terminated hold.
func (s *Service) takenAddresses(tx omi.Tx) (map[string]bool, error) {
	if !s.vmDriver().AddressPool().IsValid() {
		return nil, nil
	}
	taken := map[string]bool{}
	err := omi.Scan(tx, omi.Query{}, func(v *omi.Vm) (bool, error) {
		if v.State != omi.VmTerminated && v.PublicIp != "" {
			taken[v.PublicIp] = true
		}
		return true, nil
	})
	return taken, err
}

// volumeVmStopping reports whether a volume's VM is being stopped for an
// image (CreateImage with a reboot) and has not stopped yet.
func (s *Service) volumeVmStopping(tx omi.Tx, volumeID string) (bool, error) {
	if volumeID == "" {
		return false, nil
	}
	v, err := omi.Get[omi.Volume](tx, volumeID)
	if err != nil || len(v.LinkedVolumes) == 0 {
		return false, ignoreMissing(err)
	}
	vm, err := omi.Get[omi.Vm](tx, v.LinkedVolumes[0].VmId)
	if err != nil {
		return false, ignoreMissing(err)
	}
	return vm.ImagingFor != "" && vm.State == omi.VmStopping, nil
}

// vmExited is told by the driver that a VM's machine exited. A VM that
// was running stops, or terminates, as its VmInitiatedShutdownBehavior
// says when the guest powered off (restart: it boots again); when the
// machine died it is stopped with a StateReason. VMs that were being
// stopped or deleted are settled by the reconciler, woken here.
func (s *Service) vmExited(id string, guest bool) {
	s.jobs.mu.Lock()
	ctx := s.jobCtx
	s.jobs.mu.Unlock()
	if ctx == nil {
		ctx = context.Background()
	}
	err := s.transition(ctx, func(tx omi.Tx) error {
		vm, err := omi.Get[omi.Vm](tx, id)
		if err != nil {
			return err
		}
		if vm.State != omi.VmRunning && vm.State != omi.VmPending {
			return omi.Put(queueingTx{tx}, vm) // queue it: the reconciler settles it
		}
		switch {
		case !guest:
			vm.State, vm.StateReason = omi.VmStopped, "Server.InternalError: the VM's machine exited unexpectedly"
		case vm.VmInitiatedShutdownBehavior == "terminate":
			vm.State, vm.StateReason = omi.VmShuttingDown, "Client.InstanceInitiatedShutdown: Instance initiated shutdown"
		case vm.VmInitiatedShutdownBehavior == "restart":
			vm.State = omi.VmPending
		default:
			vm.State, vm.StateReason = omi.VmStopped, "Client.InstanceInitiatedShutdown: Instance initiated shutdown"
		}
		return omi.Put(queueingTx{tx}, vm)
	})
	if err != nil {
		s.log.Warn("vm exited", "vm", id, "err", err)
	}
	s.enqueue(ctx, omi.KindVm, "")
}

// recoverVms runs once at Start: VMs the store says run get their
// machine back (adopted by the driver if it survived, else started
// again through pending), and machines of VMs that should not run are
// stopped, so no process is left without a VM.
func (s *Service) recoverVms(ctx context.Context) error {
	d := s.vmDriver()
	want := map[string]bool{}
	err := s.store.Update(ctx, func(tx omi.Tx) error {
		var restart []*omi.Vm
		if err := omi.Scan(tx, omi.Query{}, func(v *omi.Vm) (bool, error) {
			switch v.State {
			case omi.VmRunning:
				want[v.VmId] = true
				if !d.Running(v.VmId) {
					restart = append(restart, v)
				}
			case omi.VmPending, omi.VmStopping, omi.VmShuttingDown:
				want[v.VmId] = true
				if err := omi.Put(queueingTx{tx}, v); err != nil {
					return false, err
				}
			}
			return true, nil
		}); err != nil {
			return err
		}
		for _, v := range restart {
			s.log.Info("vm machine not running after restart; starting it again", "vm", v.VmId)
			v.State = omi.VmPending
			if err := omi.Put(queueingTx{tx}, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range d.List() {
		if !want[id] {
			s.log.Info("stopping a VM machine whose VM should not run", "vm", id)
			d.Stop(id, true)
		}
	}
	s.enqueue(ctx, omi.KindVm, "")
	return nil
}
