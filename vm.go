package omi

// VM states, with the state codes ReadVmsState reports.
const (
	VmPending      = "pending"
	VmRunning      = "running"
	VmStopping     = "stopping"
	VmStopped      = "stopped"
	VmShuttingDown = "shutting-down"
	VmTerminated   = "terminated"
)

// Vm is a virtual machine. omi has no hypervisor: a VM's lifecycle is
// simulated, but its volumes are real and readable and writable over NBD.
// Every field of the API's Vm object is written, because the v3 SDK treats
// most of them as always present.
type Vm struct {
	AccountId                   string          `json:"-"`
	ActionsOnNextBoot           map[string]any  `json:"ActionsOnNextBoot"`
	Architecture                string          `json:"Architecture"`
	BlockDeviceMappings         []VmBDM         `json:"BlockDeviceMappings"`
	BootMode                    string          `json:"BootMode"`
	BsuOptimized                bool            `json:"BsuOptimized"`
	ClientToken                 string          `json:"ClientToken"`
	CreationDate                string          `json:"CreationDate"`
	DeletionProtection          bool            `json:"DeletionProtection"`
	Hypervisor                  string          `json:"Hypervisor"`
	ImageId                     string          `json:"ImageId"`
	IsSourceDestChecked         bool            `json:"IsSourceDestChecked"`
	KeypairName                 string          `json:"KeypairName"`
	LaunchNumber                int             `json:"LaunchNumber"`
	NestedVirtualization        bool            `json:"NestedVirtualization"`
	NetId                       string          `json:"NetId,omitempty"`
	Nics                        []VmNic         `json:"Nics"`
	OsFamily                    string          `json:"OsFamily"`
	Performance                 string          `json:"Performance"`
	Placement                   Placement       `json:"Placement"`
	PrivateDnsName              string          `json:"PrivateDnsName"`
	PrivateIp                   string          `json:"PrivateIp"`
	ProductCodes                []string        `json:"ProductCodes"`
	PublicDnsName               string          `json:"PublicDnsName"`
	PublicIp                    string          `json:"PublicIp"`
	ReservationId               string          `json:"ReservationId"`
	RootDeviceName              string          `json:"RootDeviceName"`
	RootDeviceType              string          `json:"RootDeviceType"`
	SecurityGroups              []SecurityGroup `json:"SecurityGroups"`
	State                       string          `json:"State"`
	StateReason                 string          `json:"StateReason"`
	SubnetId                    string          `json:"SubnetId,omitempty"`
	Tags                        []Tag           `json:"Tags"`
	TpmEnabled                  bool            `json:"TpmEnabled"`
	UserData                    string          `json:"UserData"`
	VmId                        string          `json:"VmId"`
	VmInitiatedShutdownBehavior string          `json:"VmInitiatedShutdownBehavior"`
	VmType                      string          `json:"VmType"`
	// ShutdownBehaviorConfiguration is what happens when the guest shuts
	// the VM down (GuestAction, mirrored by VmInitiatedShutdownBehavior)
	// and on a host failure (HostAction). The 1.40 spec lacks it; the real
	// API returns it on every VM ({"GuestAction": "stop", "HostAction":
	// "stop"} by default, in the provider's recorded states) and
	// osc-sdk-go v3's spec declares it. Nil on VMs stored before it
	// existed: Normalize derives it.
	ShutdownBehaviorConfiguration *ShutdownBehaviorConfiguration `json:"ShutdownBehaviorConfiguration,omitempty"`
	// TerminatedAt is when a terminated VM was deleted; it stays readable
	// for a while, as on the real cloud (not in the API).
	TerminatedAt string `json:"TerminatedAt,omitempty"`
	// ImagingFor is the image being created from this VM with a reboot:
	// the VM is stopped for the snapshots and started again once they are
	// taken (not in the API).
	ImagingFor string `json:"ImagingFor,omitempty"`
	// PrivateOnly is set for a VM of the public Cloud whose user data asks
	// for private_only=true: the real cloud then places it in a Net and a
	// subnet of the cloud's own, with a primary NIC, and shows them in
	// NetId, SubnetId and Nics (the provider's recorded states vm/TF-147,
	// and TF-178 where an update of the user data takes effect at the next
	// start). The Net is not the account's: no ReadNets, ReadSubnets or
	// ReadNics lists it, and the VM keeps the rules of the public Cloud
	// (its security groups are the public Cloud's). Not in the API.
	PrivateOnly *PrivatePlacement `json:"PrivateOnly,omitempty"`
}

// PrivatePlacement is the Net, subnet and primary NIC that the cloud keeps
// for a private-only VM of the public Cloud; ForWire shows them.
type PrivatePlacement struct {
	NetId      string `json:"NetId"`
	SubnetId   string `json:"SubnetId"`
	NicId      string `json:"NicId"`
	LinkNicId  string `json:"LinkNicId"`
	MacAddress string `json:"MacAddress"`
}

// NewPrivatePlacement draws the ids of a private-only VM's Net, subnet and
// primary NIC; mac is the NIC's MAC address.
func NewPrivatePlacement(mac string) *PrivatePlacement {
	return &PrivatePlacement{NetId: NewID(PrefixNet), SubnetId: NewID(PrefixSubnet), NicId: NewID(PrefixNic),
		LinkNicId: NewID(PrefixLinkNic), MacAddress: mac}
}

// Network returns the Net and subnet the VM shows: those of its primary
// NIC in a Net of the account, those the cloud keeps for a private-only
// VM, or none for a VM of the public Cloud.
func (v *Vm) Network() (netID, subnetID string) {
	if v.NetId == "" && v.PrivateOnly != nil {
		return v.PrivateOnly.NetId, v.PrivateOnly.SubnetId
	}
	return v.NetId, v.SubnetId
}

// ShutdownBehaviorConfiguration is the API's object of the same name.
type ShutdownBehaviorConfiguration struct {
	GuestAction string `json:"GuestAction"` // stop or terminate
	HostAction  string `json:"HostAction"`  // restart or stop
}

// ForWire returns a copy without the fields the API's Vm object lacks.
func (v *Vm) ForWire() *Vm {
	c := *v
	c.TerminatedAt, c.ImagingFor, c.PrivateOnly = "", "", nil
	if p := v.PrivateOnly; p != nil && v.NetId == "" && v.State != VmTerminated {
		c.NetId, c.SubnetId = p.NetId, p.SubnetId
		// The recorded NIC: the cloud's primary NIC description, not
		// source/dest checked (as the VM), the VM's security groups,
		// address and public IP.
		var public *LinkPublicIpLight
		if v.PublicIp != "" {
			public = &LinkPublicIpLight{PublicDnsName: v.PublicDnsName, PublicIp: v.PublicIp, PublicIpAccountId: v.AccountId}
		}
		c.Nics = []VmNic{{AccountId: v.AccountId, Description: "Primary network interface",
			LinkNic:      VmNicLink{DeleteOnVmDeletion: true, DeviceNumber: 0, LinkNicId: p.LinkNicId, State: "attached"},
			LinkPublicIp: public, MacAddress: p.MacAddress, NetId: p.NetId, NicId: p.NicId, PrivateDnsName: v.PrivateDnsName,
			PrivateIps:     []VmNicPrivateIp{{IsPrimary: true, LinkPublicIp: public, PrivateDnsName: v.PrivateDnsName, PrivateIp: v.PrivateIp}},
			SecurityGroups: append([]SecurityGroup{}, v.SecurityGroups...), State: "in-use", SubnetId: p.SubnetId}}
	}
	c.Normalize()
	return &c
}

// VmNic is a NIC as a VM shows it (the API's NicLight). It is derived from
// the NIC records when a VM is read, not stored with the VM.
type VmNic struct {
	AccountId           string             `json:"AccountId"`
	Description         string             `json:"Description"`
	IsSourceDestChecked bool               `json:"IsSourceDestChecked"`
	LinkNic             VmNicLink          `json:"LinkNic"`
	LinkPublicIp        *LinkPublicIpLight `json:"LinkPublicIp,omitempty"`
	MacAddress          string             `json:"MacAddress"`
	NetId               string             `json:"NetId"`
	NicId               string             `json:"NicId"`
	PrivateDnsName      string             `json:"PrivateDnsName"`
	PrivateIps          []VmNicPrivateIp   `json:"PrivateIps"`
	SecurityGroups      []SecurityGroup    `json:"SecurityGroups"`
	State               string             `json:"State"`
	SubnetId            string             `json:"SubnetId"`
}

// LinkPublicIpLight is the public IP of a NIC as a VM shows it
// (LinkPublicIpLightForVm): no link or allocation ids.
type LinkPublicIpLight struct {
	PublicDnsName     string `json:"PublicDnsName"`
	PublicIp          string `json:"PublicIp"`
	PublicIpAccountId string `json:"PublicIpAccountId"`
}

func lightLink(l *LinkPublicIp) *LinkPublicIpLight {
	if l == nil {
		return nil
	}
	return &LinkPublicIpLight{PublicDnsName: l.PublicDnsName, PublicIp: l.PublicIp, PublicIpAccountId: l.PublicIpAccountId}
}

// VmNicPrivateIp is a private IP of a NIC as a VM shows it
// (PrivateIpLightForVm).
type VmNicPrivateIp struct {
	IsPrimary      bool               `json:"IsPrimary"`
	LinkPublicIp   *LinkPublicIpLight `json:"LinkPublicIp,omitempty"`
	PrivateDnsName string             `json:"PrivateDnsName"`
	PrivateIp      string             `json:"PrivateIp"`
}

// VmNicLink is the link of a NIC as a VM shows it (LinkNicLight).
type VmNicLink struct {
	DeleteOnVmDeletion bool   `json:"DeleteOnVmDeletion"`
	DeviceNumber       int    `json:"DeviceNumber"`
	LinkNicId          string `json:"LinkNicId"`
	State              string `json:"State"`
}

// LightForVm returns the NIC as the VM it is linked to shows it.
func (n *Nic) LightForVm() VmNic {
	out := VmNic{AccountId: n.AccountId, Description: n.Description, IsSourceDestChecked: n.IsSourceDestChecked,
		LinkPublicIp: lightLink(n.LinkPublicIp), MacAddress: n.MacAddress, NetId: n.NetId, NicId: n.NicId,
		PrivateDnsName: n.PrivateDnsName, PrivateIps: []VmNicPrivateIp{}, SecurityGroups: n.SecurityGroups, State: n.State, SubnetId: n.SubnetId}
	for _, p := range n.PrivateIps {
		out.PrivateIps = append(out.PrivateIps, VmNicPrivateIp{IsPrimary: p.IsPrimary, LinkPublicIp: lightLink(p.LinkPublicIp),
			PrivateDnsName: p.PrivateDnsName, PrivateIp: p.PrivateIp})
	}
	if n.LinkNic != nil {
		out.LinkNic = VmNicLink{DeleteOnVmDeletion: n.LinkNic.DeleteOnVmDeletion, DeviceNumber: n.LinkNic.DeviceNumber,
			LinkNicId: n.LinkNic.LinkNicId, State: n.LinkNic.State}
	}
	return out
}

// VmBDM is a volume attached to a VM (BlockDeviceMappingCreated).
type VmBDM struct {
	DeviceName string    `json:"DeviceName"`
	Bsu        BsuLinked `json:"Bsu"`
}

// BsuLinked is the attachment of a volume (BsuCreated).
type BsuLinked struct {
	DeleteOnVmDeletion bool   `json:"DeleteOnVmDeletion"`
	LinkDate           string `json:"LinkDate"`
	State              string `json:"State"`
	VolumeId           string `json:"VolumeId"`
}

// Placement is where a VM runs.
type Placement struct {
	SubregionName string `json:"SubregionName"`
	Tenancy       string `json:"Tenancy"`
}

// SecurityGroup names a security group a VM belongs to.
type SecurityGroup struct {
	SecurityGroupId   string `json:"SecurityGroupId"`
	SecurityGroupName string `json:"SecurityGroupName"`
}

func (v *Vm) Kind() Kind                   { return KindVm }
func (v *Vm) ResourceID() string           { return v.VmId }
func (v *Vm) Owner() string                { return v.AccountId }
func (v *Vm) IndexName() string            { return "" }
func (v *Vm) Visibility() (bool, []string) { return false, nil }

// SetOwner restores the owner, which the API's Vm object does not carry.
func (v *Vm) SetOwner(id string) { v.AccountId = id }

// TagList implements Tagged.
func (v *Vm) TagList() *[]Tag { return &v.Tags }

// Normalize replaces nil slices and maps by empty ones.
func (v *Vm) Normalize() {
	if v.BlockDeviceMappings == nil {
		v.BlockDeviceMappings = []VmBDM{}
	}
	if v.Nics == nil {
		v.Nics = []VmNic{}
	}
	if v.ProductCodes == nil {
		v.ProductCodes = []string{}
	}
	if v.SecurityGroups == nil {
		v.SecurityGroups = []SecurityGroup{}
	}
	if v.Tags == nil {
		v.Tags = []Tag{}
	}
	// The real API answers {"SecureBoot": "none"} for a VM with no
	// pending secure boot action (the provider's recorded states,
	// tests/data/oapi/vm/*.ref: actions_on_next_boot.secure_boot "none").
	if len(v.ActionsOnNextBoot) == 0 {
		v.ActionsOnNextBoot = map[string]any{"SecureBoot": "none"}
	}
	if v.ShutdownBehaviorConfiguration == nil {
		c := &ShutdownBehaviorConfiguration{GuestAction: "stop", HostAction: "stop"}
		switch v.VmInitiatedShutdownBehavior {
		case "terminate":
			c.GuestAction = "terminate"
		case "restart":
			c.HostAction = "restart"
		}
		v.ShutdownBehaviorConfiguration = c
	}
}

// VmStateCode is the numeric code of a VM state.
func VmStateCode(state string) int {
	switch state {
	case VmPending:
		return 0
	case VmRunning:
		return 16
	case VmShuttingDown:
		return 32
	case VmTerminated:
		return 48
	case VmStopping:
		return 64
	case VmStopped:
		return 80
	}
	return -1
}
