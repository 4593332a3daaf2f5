package service

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"

	"github.com/omiproject/omi"
)

// MaxVmsPerCall bounds MaxVmsCount.
const MaxVmsPerCall = 20

// BDMVmCreation is a block device mapping of CreateVms: it overrides the
// OMI's mapping of the same device, removes it (NoDevice), or adds a volume.
type BDMVmCreation struct {
	Bsu               *omi.BsuImage `json:"Bsu"`
	DeviceName        string        `json:"DeviceName"`
	NoDevice          *string       `json:"NoDevice"`
	VirtualDeviceName string        `json:"VirtualDeviceName"`
}

type CreateVmsRequest struct {
	Base
	ActionsOnNextBoot           *ActionsOnNextBoot `json:"ActionsOnNextBoot"`
	BlockDeviceMappings         []BDMVmCreation    `json:"BlockDeviceMappings"`
	BootMode                    string             `json:"BootMode"`
	BootOnCreation              *bool              `json:"BootOnCreation"`
	BsuOptimized                *bool              `json:"BsuOptimized"`
	NestedVirtualization        *bool              `json:"NestedVirtualization"`
	ClientToken                 string             `json:"ClientToken"`
	DeletionProtection          bool               `json:"DeletionProtection"`
	ImageId                     string             `json:"ImageId"`
	KeypairName                 string             `json:"KeypairName"`
	MaxVmsCount                 *int               `json:"MaxVmsCount"`
	MinVmsCount                 *int               `json:"MinVmsCount"`
	Performance                 string             `json:"Performance"`
	Nics                        []NicForVmCreation `json:"Nics"`
	Placement                   *omi.Placement     `json:"Placement"`
	PrivateIps                  []string           `json:"PrivateIps"`
	SecurityGroupIds            []string           `json:"SecurityGroupIds"`
	SecurityGroups              []string           `json:"SecurityGroups"`
	SubnetId                    string             `json:"SubnetId"`
	TpmEnabled                  *bool              `json:"TpmEnabled"`
	UserData                    string             `json:"UserData"`
	VmInitiatedShutdownBehavior string             `json:"VmInitiatedShutdownBehavior"`
	VmType                      string             `json:"VmType"`
	// ShutdownBehaviorConfiguration: see omi.Vm.
	ShutdownBehaviorConfiguration *omi.ShutdownBehaviorConfiguration `json:"ShutdownBehaviorConfiguration"`
}
type CreateVmsResponse struct {
	Vms []*omi.Vm `json:"Vms"`
}

// volumePlan is one volume a new VM gets.
type volumePlan struct {
	device    string
	snapshot  string
	size      int
	vtype     string
	iops      int
	deleteOnV bool
}

// CreateVms starts VMs from an OMI: each gets its own volumes, created from
// the OMI's snapshots (copy-on-write, so this costs metadata) plus the
// extra volumes asked for. The VMs are pending, then running.
func (s *Service) CreateVms(ctx context.Context, c *omi.Caller, in *CreateVmsRequest) (*CreateVmsResponse, error) {
	if in.ImageId == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "ImageId is required")
	}
	typeName := in.VmType
	if typeName == "" {
		typeName = omi.DefaultVmType
	}
	vt, err := omi.ParseVmType(typeName)
	if err != nil {
		return nil, omi.NotFound(omi.CodeNoSuchVmType, "The VmType '%s' doesn't exist: %v", typeName, err)
	}
	minN, maxN := 1, 1
	if in.MinVmsCount != nil {
		minN = *in.MinVmsCount
	}
	if in.MaxVmsCount != nil {
		maxN = *in.MaxVmsCount
	} else if minN > maxN {
		maxN = minN
	}
	if err := in.ActionsOnNextBoot.check(); err != nil {
		return nil, err
	}
	if minN < 1 || maxN < minN || maxN > MaxVmsPerCall {
		return nil, omi.Invalid(omi.CodeInvalidValue, "MinVmsCount and MaxVmsCount must satisfy 1 <= MinVmsCount <= MaxVmsCount <= %d", MaxVmsPerCall)
	}
	subregion := s.cfg.Region + "a"
	if in.Placement != nil && in.Placement.SubregionName != "" {
		subregion = in.Placement.SubregionName
	}
	if !s.validSubregion(subregion) {
		return nil, omi.NotFound(omi.CodeNoSuchAZ, "The SubregionName '%s' doesn't exist in region %s.", subregion, s.cfg.Region)
	}
	if in.BootMode != "" && in.BootMode != "uefi" && in.BootMode != "legacy" {
		return nil, omi.Invalid(omi.CodeInvalidValue, "BootMode must be uefi or legacy, not %q", in.BootMode)
	}
	shutdown := in.VmInitiatedShutdownBehavior
	if shutdown == "" {
		shutdown = "stop"
	}
	if shutdown != "stop" && shutdown != "restart" && shutdown != "terminate" {
		return nil, omi.Invalid(omi.CodeInvalidValue, "VmInitiatedShutdownBehavior must be stop, restart or terminate")
	}
	shutdownConf, err := shutdownConfiguration(in.ShutdownBehaviorConfiguration, nil, shutdown)
	if err != nil {
		return nil, err
	}
	shutdown = shutdownBehavior(shutdownConf, shutdown)
	if (len(in.PrivateIps) > 0 || slices.ContainsFunc(in.Nics, func(n NicForVmCreation) bool { return n.NicId != "" || len(n.PrivateIps) > 0 })) && maxN > 1 {
		return nil, omi.Invalid(omi.CodeInvalidParamSet, "PrivateIps and existing NICs name one VM's addresses: MaxVmsCount must be 1")
	}
	if p := in.Performance; p != "" && p != "medium" && p != "high" && p != "highest" {
		return nil, omi.Invalid(omi.CodeInvalidValue, "Performance must be medium, high or highest, not %q", p)
	}
	if len(in.UserData) > 500<<10 {
		return nil, omi.Invalid(omi.CodeValueLength, "UserData must be at most 500 KiB")
	}
	var vms []*omi.Vm
	reused := false
	err = s.update(ctx, func(tx omi.Tx) error {
		// A store may run this again after a serialisation failure:
		// nothing from an aborted attempt may survive into the next.
		vms, reused = nil, false
		if in.ClientToken != "" {
			prev, err := s.vmsByToken(tx, c, in.ClientToken)
			if err != nil || len(prev) > 0 {
				vms, reused = prev, true
				return err
			}
		}
		if in.KeypairName != "" {
			if k, err := s.keypairByName(tx, c, in.KeypairName); err != nil || k == nil {
				if err == nil {
					err = keypairNotFound(in.KeypairName)
				}
				return err
			}
		}
		img, err := s.visibleImage(tx, c, in.ImageId)
		if err != nil {
			return err
		}
		if img.State != omi.ImageAvailable {
			return omi.BadState(omi.CodeInvalidImageState, "OMI %s is %s, not available", img.ImageId, img.State)
		}
		if IsWindows(img.ProductCodes) && !vt.FitsWindows() {
			return omi.Invalid(omi.CodeInvalidValue, "OMI %s is a Windows OMI: its VMs need at least a generation %d processor, %d vCores and %d GiB of memory; %s is too small",
				img.ImageId, omi.WindowsMinimum.Generation, omi.WindowsMinimum.VCores, omi.WindowsMinimum.MemoryGiB, typeName)
		}
		tpm := img.TpmMandatory
		if in.TpmEnabled != nil {
			if img.TpmMandatory && !*in.TpmEnabled {
				return omi.Invalid(omi.CodeInvalidValue, "OMI %s requires a vTPM: TpmEnabled cannot be false", img.ImageId)
			}
			tpm = tpm || *in.TpmEnabled
		}
		plan, err := s.planVolumes(tx, c, img, in.BlockDeviceMappings)
		if err != nil {
			return err
		}
		where, err := s.vmNetwork(tx, c, in, subregion)
		if err != nil {
			return err
		}
		netID, subnetID, groups := where.netID, where.subnetID, where.groups
		if where.subregion != "" {
			subregion = where.subregion
		}
		bootMode := in.BootMode
		if bootMode == "" {
			bootMode = "legacy"
			if len(img.BootModes) > 0 {
				bootMode = img.BootModes[0]
			}
		} else if len(img.BootModes) > 0 && !slices.Contains(img.BootModes, bootMode) {
			return omi.Invalid(omi.CodeInvalidValue, "OMI %s does not support boot mode %s", img.ImageId, bootMode)
		}
		// IsSourceDestChecked is false below: the provider's recorded
		// states show false for VMs outside a Net; VMs of a Net show
		// true (set by createVmNics). They show BsuOptimized false for
		// tina types.
		taken, err := s.takenAddresses(tx)
		if err != nil {
			return err
		}
		reservation := omi.NewID(omi.PrefixReservation)
		now := s.nowString()
		perf := map[int]string{1: "highest", 2: "high", 3: "medium"}[vt.Performance]
		if in.Performance != "" {
			// Asked for, it wins over the type's (the provider's
			// recorded TF-178: tinav5.c2r2 with performance medium).
			perf = in.Performance
		}
		for i := 0; i < maxN; i++ {
			ip := fmt.Sprintf("10.0.%d.%d", rand.IntN(250)+1, rand.IntN(250)+4)
			vm := &omi.Vm{AccountId: c.AccountID(), VmId: omi.NewID(omi.PrefixVm), VmType: typeName, ImageId: img.ImageId,
				State: omi.VmPending, CreationDate: now, ClientToken: in.ClientToken, DeletionProtection: in.DeletionProtection,
				KeypairName: in.KeypairName, Architecture: img.Architecture, BootMode: bootMode, Hypervisor: "xen",
				LaunchNumber: i, Performance: perf, Placement: omi.Placement{SubregionName: subregion, Tenancy: "default"},
				PrivateIp: ip, PrivateDnsName: fmt.Sprintf("ip-%s.%s.compute.internal", dashes(ip), s.cfg.Region),
				ProductCodes: slices.Clone(img.ProductCodes), ReservationId: reservation, RootDeviceName: img.RootDeviceName,
				RootDeviceType: "ebs", TpmEnabled: tpm, UserData: in.UserData, VmInitiatedShutdownBehavior: shutdown,
				ShutdownBehaviorConfiguration: shutdownConf,
				IsSourceDestChecked:           false, BsuOptimized: false, NetId: netID, SubnetId: subnetID, SecurityGroups: groups}
			in.ActionsOnNextBoot.apply(vm)
			vm.BsuOptimized = in.BsuOptimized != nil && *in.BsuOptimized
			vm.NestedVirtualization = in.NestedVirtualization != nil && *in.NestedVirtualization
			// With a driver that runs machines, the public address is
			// the loopback address the VM's ports are forwarded on.
			if vm.PublicIp, err = s.poolAddress(tx, taken); err != nil {
				return err
			}
			vm.PublicDnsName = vm.PublicIp
			if vm.PublicIp == "" && netID == "" && !privateOnly(in.UserData) {
				// A VM of the public Cloud gets a public IP at launch
				// on the real cloud (not an account's public IP: it
				// is in no ReadPublicIps), so configurations that
				// register VMs by public_ip (load balancer backends)
				// or print it work as they do there. User data with
				// private_only=true in its OUTSCALE section asks for
				// none.
				if vm.PublicIp, err = freePublicIP(tx); err != nil {
					return err
				}
				vm.PublicDnsName = s.publicDnsName(vm.PublicIp)
			}
			s.placePrivateOnly(vm)
			if err := insertNew(tx, vm, func() { vm.VmId = omi.NewID(omi.PrefixVm) }); err != nil {
				return err
			}
			if err := s.createVmNics(tx, c, in, vm); err != nil {
				return err
			}
			for _, p := range plan {
				v := &omi.Volume{AccountId: vm.AccountId, VolumeId: omi.NewID(omi.PrefixVolume), CreationDate: now,
					Size: p.size, SnapshotId: p.snapshot, State: omi.VolumeCreating, SubregionName: subregion,
					VolumeType: p.vtype, Iops: p.iops,
					LinkedVolumes: []omi.LinkedVolume{{VmId: vm.VmId, VolumeId: "", DeviceName: p.device, State: "attached", DeleteOnVmDeletion: p.deleteOnV}}}
				if err := insertNew(tx, v, func() { v.VolumeId = omi.NewID(omi.PrefixVolume) }); err != nil {
					return err
				}
				v.LinkedVolumes[0].VolumeId = v.VolumeId
				if err := omi.Put(tx, v); err != nil {
					return err
				}
				vm.BlockDeviceMappings = append(vm.BlockDeviceMappings, omi.VmBDM{DeviceName: p.device,
					Bsu: omi.BsuLinked{VolumeId: v.VolumeId, State: "attached", LinkDate: now, DeleteOnVmDeletion: p.deleteOnV}})
			}
			if in.BootOnCreation != nil && !*in.BootOnCreation {
				vm.State = omi.VmStopped
			}
			if err := omi.Put(tx, vm); err != nil {
				return err
			}
			vms = append(vms, vm)
		}
		return s.showVmNics(tx, c.AccountID(), vms)
	})
	if err != nil {
		return nil, err
	}
	if !reused {
		s.enqueue(ctx, omi.KindVm, "")
	}
	out := make([]*omi.Vm, len(vms))
	for i, vm := range vms {
		out[i] = vm.ForWire()
	}
	return &CreateVmsResponse{Vms: out}, nil
}

// vmPlace is where a new VM goes: the public Cloud (no Net), or a subnet
// of one of the caller's Nets, which also decides its subregion.
type vmPlace struct {
	netID, subnetID, subregion string
	groups                     []omi.SecurityGroup
}

// vmNetwork resolves where a new VM is placed: in the public Cloud, or in
// the subnet of its primary NIC (SubnetId, or the device 0 entry of Nics),
// with the security groups given by id or name, else the default group of
// its scope.
func (s *Service) vmNetwork(tx omi.Tx, c *omi.Caller, in *CreateVmsRequest, subregion string) (vmPlace, error) {
	me := c.AccountID()
	var out vmPlace
	subnet, groupIDs := in.SubnetId, in.SecurityGroupIds
	if len(in.Nics) > 0 {
		if in.SubnetId != "" || len(in.SecurityGroupIds) > 0 || len(in.SecurityGroups) > 0 || len(in.PrivateIps) > 0 {
			return out, omi.Invalid(omi.CodeInvalidParamSet, "with Nics, the subnet, security groups and private IPs are given in each NIC")
		}
		i := slices.IndexFunc(in.Nics, func(n NicForVmCreation) bool { return n.DeviceNumber != nil && *n.DeviceNumber == 0 })
		if i < 0 {
			return out, omi.Invalid(omi.CodeInvalidParameter, "one of Nics must be the primary NIC, with DeviceNumber 0")
		}
		primary := in.Nics[i]
		if primary.NicId != "" {
			n, err := ownNic(tx, c, primary.NicId)
			if err != nil {
				return out, err
			}
			out.groups = n.SecurityGroups
			subnet = n.SubnetId
		} else {
			if primary.SubnetId == "" {
				return out, omi.Invalid(omi.CodeInvalidParameter, "a new NIC in Nics needs a SubnetId")
			}
			subnet, groupIDs = primary.SubnetId, primary.SecurityGroupIds
		}
	}
	if subnet == "" {
		if len(in.PrivateIps) > 0 {
			return out, omi.Invalid(omi.CodeInvalidParamSet, "PrivateIps needs a SubnetId: VMs of the public Cloud get their address from the cloud")
		}
	} else {
		sn, err := ownSubnet(tx, c, subnet)
		if err != nil {
			return out, err
		}
		if sn.SubregionName != subregion && in.Placement != nil && in.Placement.SubregionName != "" {
			return out, omi.Invalid(omi.CodeInvalidZone, "subnet %s is in %s, not %s", sn.SubnetId, sn.SubregionName, subregion)
		}
		out.netID, out.subnetID, out.subregion = sn.NetId, sn.SubnetId, sn.SubregionName
	}
	if out.groups != nil {
		return out, nil
	}
	if err := ensureDefaultsTx(tx, me); err != nil {
		return out, err
	}
	add := func(g *omi.SecGroup) error {
		if g.NetId != out.netID {
			return omi.Invalid("4086", "security group %s is not in the VM's network", g.SecurityGroupId)
		}
		if !slices.ContainsFunc(out.groups, func(x omi.SecurityGroup) bool { return x.SecurityGroupId == g.SecurityGroupId }) {
			out.groups = append(out.groups, omi.SecurityGroup{SecurityGroupId: g.SecurityGroupId, SecurityGroupName: g.SecurityGroupName})
		}
		return nil
	}
	for _, id := range groupIDs {
		g, err := ownGroup(tx, c, id)
		if err != nil {
			return out, err
		}
		if err := add(g); err != nil {
			return out, err
		}
	}
	for _, name := range in.SecurityGroups {
		g, err := groupInScope(tx, me, name, out.netID)
		if err != nil {
			return out, err
		}
		if g == nil {
			return out, groupNotFound(name)
		}
		if err := add(g); err != nil {
			return out, err
		}
	}
	if len(out.groups) == 0 {
		g, err := groupInScope(tx, me, "default", out.netID)
		if err != nil {
			return out, err
		}
		if g != nil {
			out.groups = append(out.groups, omi.SecurityGroup{SecurityGroupId: g.SecurityGroupId, SecurityGroupName: g.SecurityGroupName})
		}
	}
	return out, nil
}

// vmGroups resolves the SecurityGroupIds of UpdateVm: groups of the
// caller, in the VM's Net (or outside any Net, as the VM), at least one.
func (s *Service) vmGroups(tx omi.Tx, c *omi.Caller, netID string, ids []string) ([]omi.SecurityGroup, error) {
	if len(ids) == 0 {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "SecurityGroupIds must name at least one security group")
	}
	var groups []omi.SecurityGroup
	for _, id := range ids {
		g, err := ownGroup(tx, c, id)
		if err != nil {
			return nil, err
		}
		if g.NetId != netID {
			return nil, omi.Invalid("4086", "security group %s is not in the VM's network", g.SecurityGroupId)
		}
		if !slices.ContainsFunc(groups, func(x omi.SecurityGroup) bool { return x.SecurityGroupId == g.SecurityGroupId }) {
			groups = append(groups, omi.SecurityGroup{SecurityGroupId: g.SecurityGroupId, SecurityGroupName: g.SecurityGroupName})
		}
	}
	return groups, nil
}

func dashes(ip string) string {
	b := []byte(ip)
	for i := range b {
		if b[i] == '.' {
			b[i] = '-'
		}
	}
	return string(b)
}

// planVolumes merges the OMI's mappings with the request's overrides.
func (s *Service) planVolumes(tx omi.Tx, c *omi.Caller, img *omi.Image, overrides []BDMVmCreation) ([]volumePlan, error) {
	var plan []volumePlan
	byDevice := map[string]int{}
	for _, m := range img.BlockDeviceMappings {
		if m.Bsu == nil || m.Bsu.SnapshotId == "" {
			continue
		}
		p := volumePlan{device: m.DeviceName, snapshot: m.Bsu.SnapshotId, vtype: m.Bsu.VolumeType, deleteOnV: true}
		if p.vtype == "" {
			p.vtype = omi.VolumeStandard
		}
		if m.Bsu.VolumeSize != nil {
			p.size = *m.Bsu.VolumeSize
		}
		if m.Bsu.Iops != nil {
			p.iops = *m.Bsu.Iops
		}
		if m.Bsu.DeleteOnVmDeletion != nil {
			p.deleteOnV = *m.Bsu.DeleteOnVmDeletion
		}
		if p.size == 0 {
			sn, err := omi.Get[omi.Snapshot](tx, p.snapshot)
			if err != nil {
				return nil, omi.BadState(omi.CodeInvalidImageState, "OMI %s refers to snapshot %s, which is not available", img.ImageId, p.snapshot)
			}
			p.size = sn.VolumeSize
		}
		byDevice[p.device] = len(plan)
		plan = append(plan, p)
	}
	removed := map[string]bool{}
	for i, o := range overrides {
		if !omi.ValidDeviceName(o.DeviceName) {
			return nil, omi.Invalid(omi.CodeInvalidDeviceName, "BlockDeviceMappings[%d].DeviceName %q is not a valid device name", i, o.DeviceName)
		}
		if o.NoDevice != nil {
			if o.DeviceName == img.RootDeviceName {
				return nil, omi.Invalid(omi.CodeInvalidRootMap, "the root device %s cannot be removed", o.DeviceName)
			}
			removed[o.DeviceName] = true
			continue
		}
		if o.Bsu == nil {
			continue // ephemeral devices have no volume here
		}
		b := o.Bsu
		idx, ok := byDevice[o.DeviceName]
		if !ok {
			p := volumePlan{device: o.DeviceName, vtype: omi.VolumeStandard, deleteOnV: true}
			if b.SnapshotId != "" {
				sn, err := s.visibleSnapshot(tx, c, b.SnapshotId)
				if err != nil {
					return nil, err
				}
				if sn.State != omi.SnapshotCompleted {
					return nil, omi.BadState(omi.CodeInvalidState, "snapshot %s is %s, not completed", sn.SnapshotId, sn.State)
				}
				p.snapshot, p.size = sn.SnapshotId, sn.VolumeSize
			} else if b.VolumeSize == nil {
				return nil, omi.Invalid(omi.CodeInvalidBDM, "BlockDeviceMappings[%d] adds a volume: give Bsu.VolumeSize or Bsu.SnapshotId", i)
			}
			idx = len(plan)
			byDevice[o.DeviceName] = idx
			plan = append(plan, p)
		} else if b.SnapshotId != "" && b.SnapshotId != plan[idx].snapshot {
			return nil, omi.Invalid(omi.CodeInvalidBDM, "BlockDeviceMappings[%d] cannot replace the snapshot of OMI device %s", i, o.DeviceName)
		}
		p := &plan[idx]
		if b.VolumeSize != nil {
			if *b.VolumeSize < p.size {
				return nil, omi.Invalid(omi.CodeTooSmallVolume, "VolumeSize %d GiB of %s is smaller than its snapshot (%d GiB)", *b.VolumeSize, o.DeviceName, p.size)
			}
			p.size = *b.VolumeSize
		}
		if b.VolumeType != "" {
			p.vtype, p.iops = b.VolumeType, 0
		}
		if b.Iops != nil {
			p.iops = *b.Iops
		}
		if b.DeleteOnVmDeletion != nil {
			p.deleteOnV = *b.DeleteOnVmDeletion
		}
	}
	out := plan[:0]
	for _, p := range plan {
		if removed[p.device] {
			continue
		}
		var iops *int
		if p.vtype == omi.VolumeIO1 {
			iops = &p.iops
		}
		if e := omi.CheckVolumeSpec(p.vtype, p.size, iops); e != nil {
			return nil, e
		}
		out = append(out, p)
	}
	if len(out) == 0 || out[0].device != img.RootDeviceName && !slices.ContainsFunc(out, func(p volumePlan) bool { return p.device == img.RootDeviceName }) {
		return nil, omi.BadState(omi.CodeInvalidImageState, "OMI %s has no root volume mapping for %s", img.ImageId, img.RootDeviceName)
	}
	return out, nil
}

func (s *Service) vmsByToken(tx omi.Tx, c *omi.Caller, token string) ([]*omi.Vm, error) {
	var out []*omi.Vm
	err := omi.Scan(tx, omi.Query{Owners: []string{c.AccountID()}}, func(v *omi.Vm) (bool, error) {
		if v.ClientToken == token && v.State != omi.VmTerminated {
			out = append(out, v)
		}
		return true, nil
	})
	return out, err
}

func vmNotFound(id string) error {
	return omi.NotFound(omi.CodeNoSuchVm, "The VmId '%s' doesn't exist.", id)
}

// ownVm loads a VM of the caller; a terminated one is gone for changes.
func (s *Service) ownVm(tx omi.Tx, c *omi.Caller, id string) (*omi.Vm, error) {
	vm, err := omi.Get[omi.Vm](tx, id)
	if isNotFound(err) || (err == nil && vm.AccountId != c.AccountID()) {
		return nil, vmNotFound(id)
	}
	return vm, err
}

type FiltersVm struct {
	tagFilter
	Architectures                        []string `json:"Architectures"`
	BlockDeviceMappingDeleteOnVmDeletion *bool    `json:"BlockDeviceMappingDeleteOnVmDeletion"`
	BlockDeviceMappingDeviceNames        []string `json:"BlockDeviceMappingDeviceNames"`
	BlockDeviceMappingStates             []string `json:"BlockDeviceMappingStates"`
	BlockDeviceMappingVolumeIds          []string `json:"BlockDeviceMappingVolumeIds"`
	BootModes                            []string `json:"BootModes"`
	ClientTokens                         []string `json:"ClientTokens"`
	ImageIds                             []string `json:"ImageIds"`
	KeypairNames                         []string `json:"KeypairNames"`
	LaunchNumbers                        []int    `json:"LaunchNumbers"`
	PrivateIps                           []string `json:"PrivateIps"`
	ProductCodes                         []string `json:"ProductCodes"`
	ReservationIds                       []string `json:"ReservationIds"`
	RootDeviceNames                      []string `json:"RootDeviceNames"`
	SubregionNames                       []string `json:"SubregionNames"`
	Tenancies                            []string `json:"Tenancies"`
	TpmEnabled                           *bool    `json:"TpmEnabled"`
	VmIds                                []string `json:"VmIds"`
	VmStateCodes                         []int    `json:"VmStateCodes"`
	VmStateNames                         []string `json:"VmStateNames"`
	VmTypes                              []string `json:"VmTypes"`
	NetIds                               []string `json:"NetIds"`
	SubnetIds                            []string `json:"SubnetIds"`
	SecurityGroupIds                     []string `json:"SecurityGroupIds"`
	SecurityGroupNames                   []string `json:"SecurityGroupNames"`

	// unsupported names filters of the spec about properties omi VMs
	// never have: a non-empty one matches nothing.
	unsupported []string
	// nic holds the Nic* filters, renamed to ReadNics' names: a VM
	// matches them when one of its NICs does (nicVms, filled by ReadVms).
	nic    *FiltersNic
	nicVms map[string]bool
	// vmGroupIds and vmGroupNames are VmSecurityGroupIds and
	// VmSecurityGroupNames: the groups of the VM itself.
	vmGroupIds, vmGroupNames []string
	// publicIps is PublicIps, matched against the address ReadVms shows
	// (publicIpOf, filled by ReadVms).
	publicIps  []string
	publicIpOf func(*omi.Vm) string
}

// vmNicFilters maps the Nic* filters of ReadVms to the ReadNics filter of
// the same meaning.
var vmNicFilters = map[string]string{
	"NicDescriptions": "Descriptions", "NicIsSourceDestChecked": "IsSourceDestCheck",
	"NicLinkNicDeleteOnVmDeletion": "LinkNicDeleteOnVmDeletion", "NicLinkNicDeviceNumbers": "LinkNicDeviceNumbers",
	"NicLinkNicLinkNicIds": "LinkNicLinkNicIds", "NicLinkNicStates": "LinkNicStates",
	"NicLinkNicVmAccountIds": "LinkNicVmAccountIds", "NicLinkNicVmIds": "LinkNicVmIds",
	"NicLinkPublicIpAccountIds": "LinkPublicIpAccountIds", "NicLinkPublicIpLinkPublicIpIds": "LinkPublicIpLinkPublicIpIds",
	"NicLinkPublicIpPublicIpIds": "LinkPublicIpPublicIpIds", "NicLinkPublicIpPublicIps": "LinkPublicIpPublicIps",
	"NicMacAddresses": "MacAddresses", "NicNetIds": "NetIds", "NicNicIds": "NicIds",
	"NicPrivateIpsLinkPublicIpAccountIds": "PrivateIpsLinkPublicIpAccountIds", "NicPrivateIpsPrimaryIp": "PrivateIpsPrimaryIp",
	"NicPrivateIpsPrivateIps": "PrivateIpsPrivateIps", "NicSecurityGroupIds": "SecurityGroupIds",
	"NicSecurityGroupNames": "SecurityGroupNames", "NicStates": "States", "NicSubnetIds": "SubnetIds",
	"NicSubregionNames": "SubregionNames",
}

// vmFilterNoData are the FiltersVm keys of the spec decoded by hand: the
// Nic* ones (matched through the VM's NICs), VmSecurityGroup*, and those
// omi VMs have no data for, which a VM never matches.
var vmFilterNoData = map[string]bool{}

func init() {
	for _, k := range []string{"BlockDeviceMappingLinkDates", "CreationDates", "IsSourceDestChecked", "Lifecycles",
		"NicAccountIds", "NicDescriptions", "NicIsSourceDestChecked", "NicLinkNicDeleteOnVmDeletion", "NicLinkNicDeviceNumbers",
		"NicLinkNicLinkNicDates", "NicLinkNicLinkNicIds", "NicLinkNicStates", "NicLinkNicVmAccountIds", "NicLinkNicVmIds",
		"NicLinkPublicIpAccountIds", "NicLinkPublicIpLinkPublicIpIds", "NicLinkPublicIpPublicIpIds", "NicLinkPublicIpPublicIps",
		"NicMacAddresses", "NicNetIds", "NicNicIds", "NicPrivateIpsLinkPublicIpAccountIds", "NicPrivateIpsLinkPublicIpIds",
		"NicPrivateIpsPrimaryIp", "NicPrivateIpsPrivateIps", "NicSecurityGroupIds", "NicSecurityGroupNames", "NicStates",
		"NicSubnetIds", "NicSubregionNames", "Platforms", "PublicIps", "RootDeviceTypes", "StateReasonCodes",
		"StateReasonMessages", "StateReasons", "VmSecurityGroupIds", "VmSecurityGroupNames"} {
		vmFilterNoData[k] = true
	}
}

// UnmarshalJSON decodes the implemented filters and type-checks the ones
// omi VMs have no data for, noting those given so they match nothing.
func (f *FiltersVm) UnmarshalJSON(b []byte) error {
	type plain FiltersVm
	if err := json.Unmarshal(b, (*plain)(f)); err != nil {
		return err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	nf := map[string]json.RawMessage{}
	for k, v := range raw {
		if !vmFilterNoData[k] || string(v) == "null" {
			continue
		}
		// Each is decoded as the spec types it (booleans, lists of
		// integers, lists of strings), so a wrong type of item is a 4108
		// as for the filters omi implements.
		var n int
		switch k {
		case "IsSourceDestChecked", "NicIsSourceDestChecked", "NicLinkNicDeleteOnVmDeletion", "NicPrivateIpsPrimaryIp":
			var flag bool
			if json.Unmarshal(v, &flag) != nil {
				return &json.UnmarshalTypeError{Value: "value", Type: reflect.TypeOf(flag), Field: "Filters." + k}
			}
			n = 1
		case "NicLinkNicDeviceNumbers", "StateReasonCodes":
			var ints []int
			if json.Unmarshal(v, &ints) != nil {
				return &json.UnmarshalTypeError{Value: "value", Type: reflect.TypeOf(ints), Field: "Filters." + k}
			}
			n = len(ints)
		default:
			var strs []string
			if json.Unmarshal(v, &strs) != nil {
				return &json.UnmarshalTypeError{Value: "value", Type: reflect.TypeOf(strs), Field: "Filters." + k}
			}
			n = len(strs)
		}
		if n == 0 {
			continue
		}
		switch {
		case vmNicFilters[k] != "":
			nf[vmNicFilters[k]] = v
		case k == "NicAccountIds":
			// A NIC of a VM belongs to the VM's owner, the caller.
			nf["LinkNicVmAccountIds"] = v
		case k == "VmSecurityGroupIds":
			_ = json.Unmarshal(v, &f.vmGroupIds)
		case k == "VmSecurityGroupNames":
			_ = json.Unmarshal(v, &f.vmGroupNames)
		case k == "PublicIps":
			_ = json.Unmarshal(v, &f.publicIps)
		case k == "NicLinkNicLinkNicDates":
			// The spec's name (sic): the dates the VMs' NICs were linked.
			if f.nic == nil {
				f.nic = &FiltersNic{}
			}
			_ = json.Unmarshal(v, &f.nic.linkDates)
		case k == "NicPrivateIpsLinkPublicIpIds":
			// The spec describes them as "the public IPs associated with
			// the private IPs": a public IP's id or its address matches.
			if f.nic == nil {
				f.nic = &FiltersNic{}
			}
			_ = json.Unmarshal(v, &f.nic.privateIpsLinkPublicIpIds)
		default:
			f.unsupported = append(f.unsupported, k)
		}
	}
	if len(nf) > 0 {
		b, err := json.Marshal(nf)
		if err != nil {
			return err
		}
		if f.nic == nil {
			f.nic = &FiltersNic{}
		}
		if err := json.Unmarshal(b, f.nic); err != nil {
			return err
		}
	}
	return nil
}

// vmsOfNics lists the VMs with a NIC that matches the Nic* filters.
func (s *Service) vmsOfNics(tx omi.Tx, account string, f *FiltersNic) (map[string]bool, error) {
	ips, err := nicPublicIps(tx, account)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	err = omi.Scan(tx, omi.Query{Owners: []string{account}}, func(n *omi.Nic) (bool, error) {
		if n.LinkNic == nil {
			return true, nil
		}
		s.showLinks(n, ips)
		if f.match(n) {
			out[n.LinkNic.VmId] = true
		}
		return true, nil
	})
	return out, err
}

func (f *FiltersVm) match(v *omi.Vm) bool {
	if f.nic != nil && !f.nicVms[v.VmId] {
		return false
	}
	if len(f.publicIps) > 0 && (f.publicIpOf == nil || !contains(f.publicIps, f.publicIpOf(v))) {
		return false
	}
	if len(f.vmGroupIds) > 0 && !slices.ContainsFunc(v.SecurityGroups, func(g omi.SecurityGroup) bool { return contains(f.vmGroupIds, g.SecurityGroupId) }) ||
		len(f.vmGroupNames) > 0 && !slices.ContainsFunc(v.SecurityGroups, func(g omi.SecurityGroup) bool { return contains(f.vmGroupNames, g.SecurityGroupName) }) {
		return false
	}
	netID, subnetID := v.Network()
	if len(f.unsupported) > 0 || !anyOf(f.NetIds, netID) || !anyOf(f.SubnetIds, subnetID) ||
		(len(f.SecurityGroupIds) > 0 && !slices.ContainsFunc(v.SecurityGroups, func(g omi.SecurityGroup) bool { return contains(f.SecurityGroupIds, g.SecurityGroupId) })) ||
		(len(f.SecurityGroupNames) > 0 && !slices.ContainsFunc(v.SecurityGroups, func(g omi.SecurityGroup) bool { return contains(f.SecurityGroupNames, g.SecurityGroupName) })) {
		return false
	}
	if !anyOf(f.Architectures, v.Architecture) || !anyOf(f.BootModes, v.BootMode) || !anyOf(f.ClientTokens, v.ClientToken) ||
		!anyOf(f.ImageIds, v.ImageId) || !anyOf(f.KeypairNames, v.KeypairName) || !anyOf(f.LaunchNumbers, v.LaunchNumber) ||
		!anyOf(f.PrivateIps, v.PrivateIp) || !intersects(f.ProductCodes, v.ProductCodes) || !anyOf(f.ReservationIds, v.ReservationId) ||
		!anyOf(f.RootDeviceNames, v.RootDeviceName) || !anyOf(f.SubregionNames, v.Placement.SubregionName) ||
		!anyOf(f.Tenancies, v.Placement.Tenancy) || !anyOf(f.VmStateCodes, omi.VmStateCode(v.State)) ||
		!anyOf(f.VmStateNames, v.State) || !anyOf(f.VmTypes, v.VmType) || !f.tagFilter.match(v.Tags) ||
		(f.TpmEnabled != nil && *f.TpmEnabled != v.TpmEnabled) {
		return false
	}
	need := f.BlockDeviceMappingDeleteOnVmDeletion != nil || len(f.BlockDeviceMappingDeviceNames) > 0 ||
		len(f.BlockDeviceMappingStates) > 0 || len(f.BlockDeviceMappingVolumeIds) > 0
	return !need || slices.ContainsFunc(v.BlockDeviceMappings, func(m omi.VmBDM) bool {
		return anyOf(f.BlockDeviceMappingDeviceNames, m.DeviceName) && anyOf(f.BlockDeviceMappingStates, m.Bsu.State) &&
			anyOf(f.BlockDeviceMappingVolumeIds, m.Bsu.VolumeId) &&
			(f.BlockDeviceMappingDeleteOnVmDeletion == nil || *f.BlockDeviceMappingDeleteOnVmDeletion == m.Bsu.DeleteOnVmDeletion)
	})
}

// vmPublicIps returns what ReadVms shows as a VM's PublicIp: the public
// IP of its primary NIC, else a public IP linked to the VM itself, else
// its own address.
func (s *Service) vmPublicIps(tx omi.Tx, account string) (func(*omi.Vm) string, error) {
	ips, err := nicPublicIps(tx, account)
	if err != nil {
		return nil, err
	}
	ofNic, direct := map[string]string{}, map[string]string{}
	err = omi.Scan(tx, omi.Query{Owners: []string{account}}, func(n *omi.Nic) (bool, error) {
		if n.LinkNic != nil && n.LinkNic.DeviceNumber == 0 {
			s.showLinks(n, ips)
			if n.LinkPublicIp != nil {
				ofNic[n.LinkNic.VmId] = n.LinkPublicIp.PublicIp
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	err = omi.Scan(tx, omi.Query{Owners: []string{account}}, func(ip *omi.PublicIp) (bool, error) {
		if ip.VmId != "" && ip.NicId == "" {
			direct[ip.VmId] = ip.PublicIp
		}
		return true, nil
	})
	return func(v *omi.Vm) string {
		switch {
		case v.State == omi.VmTerminated:
			return ""
		case ofNic[v.VmId] != "":
			return ofNic[v.VmId]
		case direct[v.VmId] != "" && (v.PublicIp == "" || s.inPool(direct[v.VmId]) || !s.inPool(v.PublicIp)):
			// As ReadVms shows it: a linked address replaces the
			// VM's own, except one outside the pool of a driver
			// with a pool.
			return direct[v.VmId]
		}
		return v.PublicIp
	}, err
}

type ReadVmsRequest struct {
	Base
	Paging
	Filters *FiltersVm `json:"Filters"`
}
type ReadVmsResponse struct {
	Vms           []*omi.Vm `json:"Vms"`
	NextPageToken string    `json:"NextPageToken,omitempty"`
}

// ReadVms lists the caller's VMs; terminated ones stay listed for an hour.
func (s *Service) ReadVms(ctx context.Context, c *omi.Caller, in *ReadVmsRequest) (*ReadVmsResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersVm{}
	}
	var out []*omi.Vm
	var next string
	err := s.view(ctx, func(tx omi.Tx) error {
		var err error
		if f.nic != nil {
			if f.nicVms, err = s.vmsOfNics(tx, c.AccountID(), f.nic); err != nil {
				return err
			}
		}
		if len(f.publicIps) > 0 {
			if f.publicIpOf, err = s.vmPublicIps(tx, c.AccountID()); err != nil {
				return err
			}
		}
		out, next, err = listPage[omi.Vm](tx, omi.Query{Owners: []string{c.AccountID()}, IDs: f.VmIds}, in.Paging, omi.PrefixVm, f.match)
		if err != nil || len(out) == 0 {
			return err
		}
		// The link of a public IP is kept on the public IP: show it on
		// the VM, where Packer and Terraform read the address to connect.
		linked := map[string]string{}
		err = omi.Scan(tx, omi.Query{Owners: []string{c.AccountID()}}, func(ip *omi.PublicIp) (bool, error) {
			if ip.VmId != "" && ip.NicId == "" {
				linked[ip.VmId] = ip.PublicIp
			}
			return true, nil
		})
		for _, vm := range out {
			// A linked public IP replaces the VM's own address, as in
			// the cloud (under a driver with a pool, the forwards move
			// to it: applyForwards); one outside the pool reaches
			// nothing, and the VM keeps its pool address.
			if addr, ok := linked[vm.VmId]; ok && vm.State != omi.VmTerminated && (vm.PublicIp == "" || s.inPool(addr) || !s.inPool(vm.PublicIp)) {
				vm.PublicIp = addr
				vm.PublicDnsName = s.publicDnsName(addr)
			}
		}
		if err != nil {
			return err
		}
		return s.showVmNics(tx, c.AccountID(), out)
	})
	if err != nil {
		return nil, err
	}
	for i, vm := range out {
		out[i] = vm.ForWire()
	}
	return &ReadVmsResponse{Vms: out, NextPageToken: next}, nil
}

// VmStateChange is an item of the Start/Stop/Delete/Reboot responses.
type VmStateChange struct {
	CurrentState  string `json:"CurrentState"`
	PreviousState string `json:"PreviousState"`
	VmId          string `json:"VmId"`
}

type VmIdsRequest struct {
	Base
	ForceStop bool     `json:"ForceStop"`
	VmIds     []string `json:"VmIds"`
}
type VmStatesResponse struct {
	Vms []VmStateChange `json:"Vms"`
}

// changeVms applies a state change to each of the caller's VMs, all or
// none.
func (s *Service) changeVms(ctx context.Context, c *omi.Caller, ids []string, fn func(tx omi.Tx, vm *omi.Vm) error) (*VmStatesResponse, error) {
	if len(ids) == 0 {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "VmIds is required")
	}
	var out []VmStateChange
	err := s.update(ctx, func(tx omi.Tx) error {
		out = out[:0]
		for _, id := range ids {
			vm, err := s.ownVm(tx, c, id)
			if err != nil {
				return err
			}
			prev := vm.State
			if err := fn(tx, vm); err != nil {
				return err
			}
			if err := omi.Put(tx, vm); err != nil {
				return err
			}
			out = append(out, VmStateChange{VmId: vm.VmId, PreviousState: prev, CurrentState: vm.State})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.enqueue(ctx, omi.KindVm, "")
	return &VmStatesResponse{Vms: nonNil(out)}, nil
}

// StopVms stops running VMs (stopping, then stopped once their machine
// has exited: the guest is asked to power off, and with ForceStop, or
// after the driver's timeout, the machine is killed).
func (s *Service) StopVms(ctx context.Context, c *omi.Caller, in *VmIdsRequest) (*VmStatesResponse, error) {
	out, err := s.changeVms(ctx, c, in.VmIds, func(_ omi.Tx, vm *omi.Vm) error {
		switch vm.State {
		case omi.VmRunning, omi.VmPending:
			vm.State = omi.VmStopping
		case omi.VmStopping, omi.VmStopped:
		default:
			return omi.BadState(omi.CodeInvalidVmState, "VM %s is %s and cannot be stopped", vm.VmId, vm.State)
		}
		return nil
	})
	if err == nil && !omi.IsDryRun(ctx) {
		d := s.vmDriver()
		for _, ch := range out.Vms {
			if d.Running(ch.VmId) {
				d.Stop(ch.VmId, in.ForceStop)
			}
		}
	}
	return out, err
}

// StartVms starts stopped VMs (pending, then running).
func (s *Service) StartVms(ctx context.Context, c *omi.Caller, in *VmIdsRequest) (*VmStatesResponse, error) {
	return s.changeVms(ctx, c, in.VmIds, func(tx omi.Tx, vm *omi.Vm) error {
		switch vm.State {
		case omi.VmStopped:
			vm.State = omi.VmPending
			// The boot carries out the action asked for the next one:
			// the real API shows SecureBoot "none" again once the VM
			// runs (the provider's recorded TF-206, steps 2 and 3).
			vm.ActionsOnNextBoot = nil
			// User data changed while the VM was stopped takes effect
			// now (the provider's recorded TF-178, step 8).
			if err := s.replacePrivateOnly(tx, vm); err != nil {
				return err
			}
		case omi.VmRunning, omi.VmPending:
		default:
			return omi.BadState(omi.CodeInvalidVmState, "VM %s is %s and cannot be started", vm.VmId, vm.State)
		}
		return nil
	})
}

type RebootVmsResponse struct{}

// RebootVms reboots running VMs: their machines are reset (the simulated
// driver only checks the states).
func (s *Service) RebootVms(ctx context.Context, c *omi.Caller, in *VmIdsRequest) (*RebootVmsResponse, error) {
	_, err := s.changeVms(ctx, c, in.VmIds, func(_ omi.Tx, vm *omi.Vm) error {
		if vm.State != omi.VmRunning {
			return omi.BadState(omi.CodeInvalidVmState, "VM %s is %s; only running VMs can be rebooted", vm.VmId, vm.State)
		}
		vm.ActionsOnNextBoot = nil // carried out by this boot, as by StartVms'
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !omi.IsDryRun(ctx) {
		for _, id := range in.VmIds {
			if err := s.vmDriver().Reboot(id); err != nil {
				s.log.Warn("reboot VM", "vm", id, "err", err)
			}
		}
	}
	return &RebootVmsResponse{}, nil
}

// DeleteVms terminates VMs (shutting-down, then terminated). Volumes marked
// DeleteOnVmDeletion go with the VM; the others are detached. Terminating
// a terminated VM succeeds; a VM with DeletionProtection is refused.
func (s *Service) DeleteVms(ctx context.Context, c *omi.Caller, in *VmIdsRequest) (*VmStatesResponse, error) {
	return s.changeVms(ctx, c, in.VmIds, func(tx omi.Tx, vm *omi.Vm) error {
		switch {
		case vm.State == omi.VmTerminated || vm.State == omi.VmShuttingDown:
			return nil
		case vm.DeletionProtection:
			return omi.BadState(omi.CodeInvalidState, "VM %s has DeletionProtection: disable it with UpdateVm before deleting the VM", vm.VmId)
		case vm.ImagingFor != "":
			return omi.BadState(omi.CodeInvalidVmState, "VM %s is being imaged into %s; delete it once the OMI is created", vm.VmId, vm.ImagingFor)
		}
		vm.State = omi.VmShuttingDown
		return releaseVmNics(tx, vm)
	})
}

type UpdateVmBDM struct {
	DeviceName string `json:"DeviceName"`
	Bsu        *struct {
		DeleteOnVmDeletion *bool  `json:"DeleteOnVmDeletion"`
		VolumeId           string `json:"VolumeId"`
	} `json:"Bsu"`
}

// UpdateVmRequest lists every property of the spec, so that each is
// type-checked (4108) rather than ignored when unknown.
type UpdateVmRequest struct {
	Base
	ActionsOnNextBoot           *ActionsOnNextBoot `json:"ActionsOnNextBoot"`
	BlockDeviceMappings         []UpdateVmBDM      `json:"BlockDeviceMappings"`
	BsuOptimized                *bool              `json:"BsuOptimized"`
	DeletionProtection          *bool              `json:"DeletionProtection"`
	IsSourceDestChecked         *bool              `json:"IsSourceDestChecked"`
	KeypairName                 *string            `json:"KeypairName"`
	NestedVirtualization        *bool              `json:"NestedVirtualization"`
	Performance                 string             `json:"Performance"`
	SecurityGroupIds            []string           `json:"SecurityGroupIds"`
	UserData                    *string            `json:"UserData"`
	VmId                        string             `json:"VmId"`
	VmInitiatedShutdownBehavior string             `json:"VmInitiatedShutdownBehavior"`
	VmType                      string             `json:"VmType"`
	// ShutdownBehaviorConfiguration: see omi.Vm.
	ShutdownBehaviorConfiguration *omi.ShutdownBehaviorConfiguration `json:"ShutdownBehaviorConfiguration"`
}

// shutdownConfiguration checks a ShutdownBehaviorConfiguration of a
// request and completes it from the VM's current one (prev, nil on
// creation) or from VmInitiatedShutdownBehavior, as the real API answers
// (the provider's recorded TF-178 and TF-220): stop is stop/stop, restart
// is stop/restart, terminate sets the guest action.
func shutdownConfiguration(in, prev *omi.ShutdownBehaviorConfiguration, behavior string) (*omi.ShutdownBehaviorConfiguration, error) {
	out := &omi.ShutdownBehaviorConfiguration{GuestAction: "stop", HostAction: "stop"}
	if prev != nil {
		*out = *prev
	}
	switch behavior {
	case "terminate":
		out.GuestAction = "terminate"
	case "restart":
		out.GuestAction, out.HostAction = "stop", "restart"
	case "stop":
		out.GuestAction, out.HostAction = "stop", "stop"
	}
	if in == nil {
		return out, nil
	}
	switch in.GuestAction {
	case "":
	case "stop", "terminate":
		out.GuestAction = in.GuestAction
	default:
		return nil, omi.Invalid(omi.CodeInvalidValue, "ShutdownBehaviorConfiguration.GuestAction must be stop or terminate, not %q", in.GuestAction)
	}
	switch in.HostAction {
	case "":
	case "restart", "stop":
		out.HostAction = in.HostAction
	default:
		return nil, omi.Invalid(omi.CodeInvalidValue, "ShutdownBehaviorConfiguration.HostAction must be restart or stop, not %q", in.HostAction)
	}
	return out, nil
}

// shutdownBehavior is the VmInitiatedShutdownBehavior that goes with a
// configuration: terminate for a guest action terminate, else restart
// for a host action restart, else stop.
func shutdownBehavior(conf *omi.ShutdownBehaviorConfiguration, _ string) string {
	switch {
	case conf.GuestAction == "terminate":
		return "terminate"
	case conf.HostAction == "restart":
		return "restart"
	}
	return "stop"
}

// ActionsOnNextBoot is the spec's object of the same name.
type ActionsOnNextBoot struct {
	SecureBoot string `json:"SecureBoot"`
}

// check validates SecureBoot against the spec's SecureBootAction enum.
func (a *ActionsOnNextBoot) check() error {
	if a == nil {
		return nil
	}
	switch a.SecureBoot {
	case "", "enable", "disable", "setup-mode", "none":
		return nil
	}
	return omi.Invalid(omi.CodeInvalidValue, "ActionsOnNextBoot.SecureBoot must be enable, disable, setup-mode or none, not %q", a.SecureBoot)
}

// apply records a secure boot action for the VM's next boot.
func (a *ActionsOnNextBoot) apply(vm *omi.Vm) {
	if a != nil && a.SecureBoot != "" {
		vm.ActionsOnNextBoot = map[string]any{"SecureBoot": a.SecureBoot}
	}
}

type UpdateVmResponse struct {
	Vm *omi.Vm `json:"Vm"`
}

// UpdateVm changes a VM's attributes; the VM type, performance and user
// data only while it is stopped.
func (s *Service) UpdateVm(ctx context.Context, c *omi.Caller, in *UpdateVmRequest) (*UpdateVmResponse, error) {
	if in.VmId == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "VmId is required")
	}
	var vm *omi.Vm
	err := s.update(ctx, func(tx omi.Tx) error {
		var err error
		if vm, err = s.ownVm(tx, c, in.VmId); err != nil {
			return err
		}
		if vm.State == omi.VmTerminated || vm.State == omi.VmShuttingDown {
			return omi.BadState(omi.CodeInvalidVmState, "VM %s is %s", vm.VmId, vm.State)
		}
		needStopped := in.VmType != "" || in.Performance != "" || in.UserData != nil
		if needStopped && vm.State != omi.VmStopped {
			return omi.BadState(omi.CodeInvalidVmState, "VM %s is %s: stop it to change its type, performance or user data", vm.VmId, vm.State)
		}
		if in.VmType != "" {
			vt, err := omi.ParseVmType(in.VmType)
			if err != nil {
				return omi.NotFound(omi.CodeNoSuchVmType, "The VmType '%s' doesn't exist: %v", in.VmType, err)
			}
			if IsWindows(vm.ProductCodes) && !vt.FitsWindows() {
				return omi.Invalid(omi.CodeInvalidValue, "VM %s runs a Windows OMI: %s is below the minimum (generation %d, %d vCores, %d GiB)",
					vm.VmId, in.VmType, omi.WindowsMinimum.Generation, omi.WindowsMinimum.VCores, omi.WindowsMinimum.MemoryGiB)
			}
			vm.VmType = in.VmType
		}
		if in.Performance != "" {
			if in.Performance != "medium" && in.Performance != "high" && in.Performance != "highest" {
				return omi.Invalid(omi.CodeInvalidValue, "Performance must be medium, high or highest")
			}
			vm.Performance = in.Performance
		}
		if in.UserData != nil {
			vm.UserData = *in.UserData
		}
		if in.DeletionProtection != nil {
			vm.DeletionProtection = *in.DeletionProtection
		}
		if in.KeypairName != nil {
			if *in.KeypairName != "" {
				if k, err := s.keypairByName(tx, c, *in.KeypairName); err != nil || k == nil {
					if err == nil {
						err = keypairNotFound(*in.KeypairName)
					}
					return err
				}
			}
			vm.KeypairName = *in.KeypairName
		}
		if in.IsSourceDestChecked != nil {
			vm.IsSourceDestChecked = *in.IsSourceDestChecked
		}
		if err := in.ActionsOnNextBoot.check(); err != nil {
			return err
		}
		in.ActionsOnNextBoot.apply(vm)
		if in.BsuOptimized != nil {
			vm.BsuOptimized = *in.BsuOptimized
		}
		if in.NestedVirtualization != nil {
			vm.NestedVirtualization = *in.NestedVirtualization
		}
		if in.SecurityGroupIds != nil {
			if vm.SecurityGroups, err = s.vmGroups(tx, c, vm.NetId, in.SecurityGroupIds); err != nil {
				return err
			}
			if err := setPrimaryNicGroups(tx, vm); err != nil {
				return err
			}
		}
		if b := in.VmInitiatedShutdownBehavior; b != "" {
			if b != "stop" && b != "restart" && b != "terminate" {
				return omi.Invalid(omi.CodeInvalidValue, "VmInitiatedShutdownBehavior must be stop, restart or terminate")
			}
			vm.VmInitiatedShutdownBehavior = b
		}
		if in.VmInitiatedShutdownBehavior != "" || in.ShutdownBehaviorConfiguration != nil {
			prev := vm.ShutdownBehaviorConfiguration
			if prev == nil {
				// A VM stored before the field: what it showed.
				w := vm.ForWire()
				prev = w.ShutdownBehaviorConfiguration
			}
			conf, err := shutdownConfiguration(in.ShutdownBehaviorConfiguration, prev, in.VmInitiatedShutdownBehavior)
			if err != nil {
				return err
			}
			vm.ShutdownBehaviorConfiguration = conf
			vm.VmInitiatedShutdownBehavior = shutdownBehavior(conf, vm.VmInitiatedShutdownBehavior)
		}
		for _, m := range in.BlockDeviceMappings {
			if m.Bsu == nil || m.Bsu.DeleteOnVmDeletion == nil {
				continue
			}
			i := slices.IndexFunc(vm.BlockDeviceMappings, func(b omi.VmBDM) bool { return b.DeviceName == m.DeviceName })
			if i < 0 {
				return omi.Invalid(omi.CodeInvalidDeviceName, "VM %s has no device %s", vm.VmId, m.DeviceName)
			}
			vm.BlockDeviceMappings[i].Bsu.DeleteOnVmDeletion = *m.Bsu.DeleteOnVmDeletion
			if err := setLinkDelete(tx, vm.BlockDeviceMappings[i].Bsu.VolumeId, *m.Bsu.DeleteOnVmDeletion); err != nil {
				return err
			}
		}
		return omi.Put(tx, vm)
	})
	if err != nil {
		return nil, err
	}
	s.applyForwards(ctx, vm.VmId) // its groups decide the ports it forwards
	return &UpdateVmResponse{Vm: vm.ForWire()}, nil
}

func setLinkDelete(tx omi.Tx, volumeID string, del bool) error {
	v, err := omi.Get[omi.Volume](tx, volumeID)
	if err != nil {
		return ignoreMissing(err)
	}
	for i := range v.LinkedVolumes {
		v.LinkedVolumes[i].DeleteOnVmDeletion = del
	}
	return omi.Put(tx, v)
}

// FiltersVmsState holds every filter of the spec. omi has no maintenance
// events (MaintenanceEvents is always empty), so a non-empty Maintenance*
// filter matches no VM; the dates must still be dates.
type FiltersVmsState struct {
	MaintenanceEventCodes        []string `json:"MaintenanceEventCodes"`
	MaintenanceEventDescriptions []string `json:"MaintenanceEventDescriptions"`
	MaintenanceEventsNotAfter    []string `json:"MaintenanceEventsNotAfter"`
	MaintenanceEventsNotBefore   []string `json:"MaintenanceEventsNotBefore"`
	SubregionNames               []string `json:"SubregionNames"`
	VmIds                        []string `json:"VmIds"`
	VmStates                     []string `json:"VmStates"`
}

// maintenance reports whether a Maintenance* filter is given (it then
// matches nothing), after checking that its dates are dates.
func (f *FiltersVmsState) maintenance() (bool, error) {
	for _, d := range append(slices.Clone(f.MaintenanceEventsNotAfter), f.MaintenanceEventsNotBefore...) {
		if _, err := parseDate(d); err != nil {
			return false, omi.Invalid(omi.CodeInvalidValue, "MaintenanceEventsNotAfter/NotBefore take dates (YYYY-MM-DD), not %q", d)
		}
	}
	return len(f.MaintenanceEventCodes)+len(f.MaintenanceEventDescriptions)+len(f.MaintenanceEventsNotAfter)+len(f.MaintenanceEventsNotBefore) > 0, nil
}

type ReadVmsStateRequest struct {
	Base
	Paging
	AllVms  bool             `json:"AllVms"`
	Filters *FiltersVmsState `json:"Filters"`
}
type VmStatesOut struct {
	MaintenanceEvents []any  `json:"MaintenanceEvents"`
	SubregionName     string `json:"SubregionName"`
	VmId              string `json:"VmId"`
	VmState           string `json:"VmState"`
}
type ReadVmsStateResponse struct {
	VmStates      []VmStatesOut `json:"VmStates"`
	NextPageToken string        `json:"NextPageToken,omitempty"`
}

// ReadVmsState lists VM states: running VMs, or all with AllVms.
func (s *Service) ReadVmsState(ctx context.Context, c *omi.Caller, in *ReadVmsStateRequest) (*ReadVmsStateResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersVmsState{}
	}
	none, err := f.maintenance()
	if err != nil {
		return nil, err
	}
	var vms []*omi.Vm
	var next string
	err = s.view(ctx, func(tx omi.Tx) error {
		var err error
		vms, next, err = listPage[omi.Vm](tx, omi.Query{Owners: []string{c.AccountID()}, IDs: f.VmIds}, in.Paging, omi.PrefixVm, func(v *omi.Vm) bool {
			return !none && (in.AllVms || v.State == omi.VmRunning) && anyOf(f.SubregionNames, v.Placement.SubregionName) && anyOf(f.VmStates, v.State)
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	out := make([]VmStatesOut, len(vms))
	for i, v := range vms {
		out[i] = VmStatesOut{MaintenanceEvents: []any{}, SubregionName: v.Placement.SubregionName, VmId: v.VmId, VmState: v.State}
	}
	return &ReadVmsStateResponse{VmStates: out, NextPageToken: next}, nil
}

type LinkVolumeRequest struct {
	Base
	DeviceName string `json:"DeviceName"`
	VmId       string `json:"VmId"`
	VolumeId   string `json:"VolumeId"`
}
type LinkVolumeResponse struct{}

// LinkVolume attaches an available volume to a VM as a device.
func (s *Service) LinkVolume(ctx context.Context, c *omi.Caller, in *LinkVolumeRequest) (*LinkVolumeResponse, error) {
	if in.DeviceName == "" || in.VmId == "" || in.VolumeId == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "DeviceName, VmId and VolumeId are required")
	}
	if !omi.ValidDeviceName(in.DeviceName) || in.DeviceName == omi.RootDeviceName {
		return nil, omi.Invalid(omi.CodeInvalidDeviceName, "DeviceName %q is not a valid data device name (/dev/sdX or /dev/xvdX, X in b-z)", in.DeviceName)
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		vm, err := s.ownVm(tx, c, in.VmId)
		if err != nil {
			return err
		}
		v, err := s.ownVolume(tx, c, in.VolumeId)
		if err != nil {
			return err
		}
		if vm.State != omi.VmRunning && vm.State != omi.VmStopped {
			return omi.BadState(omi.CodeInvalidVmState, "VM %s is %s; volumes link to running or stopped VMs", vm.VmId, vm.State)
		}
		if v.State != omi.VolumeAvailable {
			return omi.BadState(omi.CodeInvalidVolState, "volume %s is %s, not available", v.VolumeId, v.State)
		}
		if v.SubregionName != vm.Placement.SubregionName {
			return omi.Invalid(omi.CodeInvalidZone, "volume %s is in %s and VM %s in %s", v.VolumeId, v.SubregionName, vm.VmId, vm.Placement.SubregionName)
		}
		if slices.ContainsFunc(vm.BlockDeviceMappings, func(b omi.VmBDM) bool { return b.DeviceName == in.DeviceName }) {
			return omi.Conflict("9003", "device %s of VM %s is already used", in.DeviceName, vm.VmId)
		}
		now := s.nowString()
		v.State = omi.VolumeInUse
		v.LinkedVolumes = []omi.LinkedVolume{{VmId: vm.VmId, VolumeId: v.VolumeId, DeviceName: in.DeviceName, State: "attached"}}
		vm.BlockDeviceMappings = append(vm.BlockDeviceMappings, omi.VmBDM{DeviceName: in.DeviceName,
			Bsu: omi.BsuLinked{VolumeId: v.VolumeId, State: "attached", LinkDate: now}})
		if err := omi.Put(tx, v); err != nil {
			return err
		}
		return omi.Put(tx, vm)
	})
	if err != nil {
		return nil, err
	}
	return &LinkVolumeResponse{}, nil
}

type UnlinkVolumeRequest struct {
	Base
	ForceUnlink bool   `json:"ForceUnlink"`
	VolumeId    string `json:"VolumeId"`
}
type UnlinkVolumeResponse struct{}

// UnlinkVolume detaches a volume from its VM. The root volume only leaves
// a stopped VM.
func (s *Service) UnlinkVolume(ctx context.Context, c *omi.Caller, in *UnlinkVolumeRequest) (*UnlinkVolumeResponse, error) {
	if in.VolumeId == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "VolumeId is required")
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		v, err := s.ownVolume(tx, c, in.VolumeId)
		if err != nil {
			return err
		}
		if len(v.LinkedVolumes) == 0 {
			return omi.Conflict("9063", "volume %s is not linked to a VM", v.VolumeId)
		}
		link := v.LinkedVolumes[0]
		vm, err := omi.Get[omi.Vm](tx, link.VmId)
		if err != nil && !isNotFound(err) {
			return err
		}
		if vm != nil {
			if link.DeviceName == vm.RootDeviceName && vm.State != omi.VmStopped && vm.State != omi.VmTerminated {
				return omi.BadState(omi.CodeInvalidVmState, "volume %s is the root of VM %s, which is %s: stop the VM first", v.VolumeId, vm.VmId, vm.State)
			}
			vm.BlockDeviceMappings = slices.DeleteFunc(vm.BlockDeviceMappings, func(b omi.VmBDM) bool { return b.Bsu.VolumeId == v.VolumeId })
			if err := omi.Put(tx, vm); err != nil {
				return err
			}
		}
		v.LinkedVolumes, v.State = nil, omi.VolumeAvailable
		return omi.Put(tx, v)
	})
	if err != nil {
		return nil, err
	}
	return &UnlinkVolumeResponse{}, nil
}
