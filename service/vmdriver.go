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
	// Forward brings a running machine's forwards to spec: exactly
	// spec.TCPPorts on each of spec.PublicIps, while the guest runs, so
	// that security group rules and public IP links apply at once. A VM
	// whose machine does not run is left alone.
	Forward(spec VmSpec) error
}

// VmSpec is what a driver needs to run a VM.
type VmSpec struct {
	VmId      string
	VCores    int
	MemoryMiB int
	BootMode  string
	// Volumes are the VM's volume ids, the root volume first.
	Volumes []string
	// PublicIps are the loopback addresses the VM's ports are forwarded
	// on: its pool address, or the public IPs of the pool linked to it
	// (LinkPublicIp moves the forwards there).
	PublicIps []string
	// TCPPorts are the guest TCP ports forwarded on each of PublicIps (22 and
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
func (SimDriver) Forward(VmSpec) error                { return nil }

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
	spec := VmSpec{VmId: vm.VmId, VCores: 1, MemoryMiB: 1024, BootMode: vm.BootMode, TCPPorts: []int{22},
		MAC: vmMAC(vm.VmId)}
	addrs, err := s.vmAddresses(tx, vm)
	if err != nil {
		return spec, err
	}
	spec.PublicIps = addrs
	// In a Net, the groups of a VM are those of its primary NIC.
	groups := vm.SecurityGroups
	if vm.NetId != "" {
		view := *vm
		if err := s.showVmNics(tx, vm.AccountId, []*omi.Vm{&view}); err != nil {
			return spec, err
		}
		groups = view.SecurityGroups
	}
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
	for _, g := range groups {
		sg, err := omi.Get[omi.SecGroup](tx, g.SecurityGroupId)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return spec, err
		}
		// A rule's ports are forwarded whatever its IpRanges and
		// SecurityGroupsMembers: every client is a process on this host
		// and slirp cannot filter by source (docs/vms.md, "Security-group
		// sources are not enforced").
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
// still holding one uses, and no public IP (in tx, so two CreateVms never
// share one). VMs take addresses from the bottom of the pool, public IPs
// (poolPublicIP) from the top.
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
		if usablePoolAddr(a) && !taken[a.String()] {
			taken[a.String()] = true
			return a.String(), nil
		}
	}
	return "", omi.Errorf("10010", omi.TypeTooManyResources, "the pool of VM addresses %s is exhausted: delete VMs first", pool)
}

// inPool reports whether ip is an address of the driver's pool.
func (s *Service) inPool(ip string) bool {
	a, err := netip.ParseAddr(ip)
	return err == nil && s.vmDriver().AddressPool().Contains(a)
}

// usablePoolAddr leaves out the .0 and .255 addresses that some tools
// take for network or broadcast addresses.
func usablePoolAddr(a netip.Addr) bool {
	b := a.As4()
	return b[3] != 0 && b[3] != 255
}

// poolPublicIP draws a public IP from the top of the driver's pool (an
// address of the host, so that it reaches the VMs it is linked to), or
// returns "" when the driver has no pool.
func (s *Service) poolPublicIP(tx omi.Tx) (string, error) {
	pool := s.vmDriver().AddressPool()
	if !pool.IsValid() {
		return "", nil
	}
	taken, err := s.takenAddresses(tx)
	if err != nil {
		return "", err
	}
	first := pool.Masked().Addr().Next().Next()
	// The last address of the pool, then downwards.
	b := pool.Masked().Addr().As4()
	host := uint32(1)<<(32-pool.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	for a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}); pool.Contains(a) && first.Compare(a) <= 0; a = a.Prev() {
		if usablePoolAddr(a) && !taken[a.String()] {
			return a.String(), nil
		}
	}
	return "", omi.Errorf(codeTooManyPublicIPs, omi.TypeTooManyResources, "the pool of VM addresses %s has no address left for a public IP: delete VMs or public IPs first", pool)
}

// takenAddresses lists the pool addresses VMs not terminated and public
// IPs hold.
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
	if err != nil {
		return nil, err
	}
	err = omi.Scan(tx, omi.Query{}, func(p *omi.PublicIp) (bool, error) {
		taken[p.PublicIp] = true
		return true, nil
	})
	return taken, err
}

// vmAddresses are the addresses a VM's ports are forwarded on under a
// driver with a pool: the public IPs of the pool linked to it (to the VM,
// or to one of its NICs), else its own pool address.
func (s *Service) vmAddresses(tx omi.Tx, vm *omi.Vm) ([]string, error) {
	pool := s.vmDriver().AddressPool()
	if !pool.IsValid() {
		return nil, nil
	}
	var linked []string
	err := omi.Scan(tx, omi.Query{Owners: []string{vm.AccountId}}, func(p *omi.PublicIp) (bool, error) {
		if p.VmId == "" && p.NicId == "" {
			return true, nil
		}
		if err := liveLink(tx, p); err != nil {
			return false, err
		}
		if p.VmId == vm.VmId && s.inPool(p.PublicIp) {
			linked = append(linked, p.PublicIp)
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if len(linked) > 0 {
		slices.Sort(linked)
		return linked, nil
	}
	if vm.PublicIp != "" {
		return []string{vm.PublicIp}, nil
	}
	return nil, nil
}

// applyForwards brings the forwards of running machines (those of ids,
// or all) to what the store says now: called after every change of
// security group rules, of a VM's or NIC's groups, and of public IP
// links, so they apply to running VMs at once. It holds fwdMu from the
// read to the last forward, so the last caller applies the latest state.
func (s *Service) applyForwards(ctx context.Context, ids ...string) {
	if omi.IsDryRun(ctx) {
		return
	}
	d := s.vmDriver()
	if len(ids) == 0 {
		ids = d.List()
	}
	if len(ids) == 0 {
		return
	}
	s.fwdMu.Lock()
	defer s.fwdMu.Unlock()
	var specs []VmSpec
	err := s.store.View(ctx, func(tx omi.Tx) error {
		specs = specs[:0]
		for _, id := range ids {
			vm, err := omi.Get[omi.Vm](tx, id)
			if isNotFound(err) {
				continue
			}
			if err != nil {
				return err
			}
			if vm.State != omi.VmRunning && vm.State != omi.VmPending {
				continue
			}
			spec, err := s.vmSpec(tx, vm)
			if err != nil {
				return err
			}
			specs = append(specs, spec)
		}
		return nil
	})
	if err != nil {
		s.log.Warn("vm forwards", "err", err)
		return
	}
	for _, spec := range specs {
		if err := d.Forward(spec); err != nil {
			s.log.Warn("vm forwards", "vm", spec.VmId, "err", err)
		}
	}
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
	// Rules or links may have changed while omi was down.
	s.applyForwards(ctx)
	s.enqueue(ctx, omi.KindVm, "")
	return nil
}
