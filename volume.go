package omi

// Volume states.
const (
	VolumeCreating  = "creating"
	VolumeAvailable = "available"
	VolumeInUse     = "in-use"
	VolumeDeleting  = "deleting"
	VolumeError     = "error"
)

// Volume types.
const (
	VolumeStandard = "standard"
	VolumeIO1      = "io1"
	VolumeGP2      = "gp2"
)

// Volume is a block storage unit (BSU) volume.
type Volume struct {
	AccountId     string         `json:"-"`
	ClientToken   string         `json:"ClientToken,omitempty"`
	CreationDate  string         `json:"CreationDate"`
	Iops          int            `json:"Iops,omitempty"`
	LinkedVolumes []LinkedVolume `json:"LinkedVolumes"`
	Size          int            `json:"Size"`
	SnapshotId    string         `json:"SnapshotId,omitempty"`
	State         string         `json:"State"`
	SubregionName string         `json:"SubregionName"`
	Tags          []Tag          `json:"Tags"`
	TaskId        string         `json:"TaskId,omitempty"`
	VolumeId      string         `json:"VolumeId"`
	VolumeType    string         `json:"VolumeType"`
}

// LinkedVolume is the attachment of a volume to a VM.
type LinkedVolume struct {
	DeleteOnVmDeletion bool   `json:"DeleteOnVmDeletion"`
	DeviceName         string `json:"DeviceName"`
	State              string `json:"State"`
	VmId               string `json:"VmId"`
	VolumeId           string `json:"VolumeId"`
}

func (v *Volume) Kind() Kind                   { return KindVolume }
func (v *Volume) ResourceID() string           { return v.VolumeId }
func (v *Volume) Owner() string                { return v.AccountId }
func (v *Volume) IndexName() string            { return "" }
func (v *Volume) Visibility() (bool, []string) { return false, nil }

// SetOwner restores the owner, which the API's Volume object does not carry
// and so is kept by the store beside the document.
func (v *Volume) SetOwner(id string) { v.AccountId = id }

// Normalize replaces nil slices by empty ones and fills in the Iops the
// API reports for the types whose IOPS are not chosen: the provider's
// recorded states (terraform-provider-outscale tests/data/oapi/volume*)
// show 150 for every standard volume and, for gp2, 3 per GiB within
// 100..16000 (100 for 12 GiB). The spec calls Iops io1-only; the real API
// reports it for all types. It is called on the way out only: the stored
// record keeps 0 for them, so a change of size or type recomputes it.
func (v *Volume) Normalize() {
	if v.Iops == 0 {
		switch v.VolumeType {
		case VolumeStandard:
			v.Iops = 150
		case VolumeGP2:
			v.Iops = min(max(3*v.Size, 100), 16000)
		}
	}
	if v.Tags == nil {
		v.Tags = []Tag{}
	}
	if v.LinkedVolumes == nil {
		v.LinkedVolumes = []LinkedVolume{}
	}
}

// TagList implements Tagged.
func (v *Volume) TagList() *[]Tag { return &v.Tags }
