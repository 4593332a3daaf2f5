package omi

// Image states.
const (
	ImagePending   = "pending"
	ImageAvailable = "available"
	ImageFailed    = "failed"
)

// Image is an OMI. Every field is always written to the wire, because
// terraform-provider-outscale and the v3 SDK dereference them unchecked.
type Image struct {
	AccountAlias        string       `json:"AccountAlias"`
	AccountId           string       `json:"AccountId"`
	Architecture        string       `json:"Architecture"`
	BlockDeviceMappings []ImageBDM   `json:"BlockDeviceMappings"`
	BootModes           []string     `json:"BootModes"`
	CreationDate        string       `json:"CreationDate"`
	Description         string       `json:"Description"`
	FileLocation        string       `json:"FileLocation"`
	ImageId             string       `json:"ImageId"`
	ImageName           string       `json:"ImageName"`
	ImageType           string       `json:"ImageType"`
	PermissionsToLaunch Permissions  `json:"PermissionsToLaunch"`
	ProductCodes        []string     `json:"ProductCodes"`
	RootDeviceName      string       `json:"RootDeviceName"`
	RootDeviceType      string       `json:"RootDeviceType"`
	SecureBoot          bool         `json:"SecureBoot"`
	State               string       `json:"State"`
	StateComment        StateComment `json:"StateComment"`
	Tags                []Tag        `json:"Tags"`
	TpmMandatory        bool         `json:"TpmMandatory"`
}

// StateComment explains a failed image.
type StateComment struct {
	StateCode    string `json:"StateCode,omitempty"`
	StateMessage string `json:"StateMessage,omitempty"`
}

// ImageBDM is a block device mapping of an image (BlockDeviceMappingImage).
type ImageBDM struct {
	DeviceName        string    `json:"DeviceName,omitempty"`
	Bsu               *BsuImage `json:"Bsu,omitempty"`
	VirtualDeviceName string    `json:"VirtualDeviceName,omitempty"`
}

// BsuImage describes the volume created from a snapshot for one mapping
// (BsuToCreate in the API).
type BsuImage struct {
	DeleteOnVmDeletion *bool  `json:"DeleteOnVmDeletion,omitempty"`
	Iops               *int   `json:"Iops,omitempty"`
	SnapshotId         string `json:"SnapshotId,omitempty"`
	VolumeSize         *int   `json:"VolumeSize,omitempty"`
	VolumeType         string `json:"VolumeType,omitempty"`
}

func (i *Image) Kind() Kind         { return KindImage }
func (i *Image) ResourceID() string { return i.ImageId }
func (i *Image) Owner() string      { return i.AccountId }
func (i *Image) IndexName() string  { return i.ImageName }
func (i *Image) Visibility() (bool, []string) {
	return i.PermissionsToLaunch.GlobalPermission, i.PermissionsToLaunch.AccountIds
}

// Normalize replaces nil slices by empty ones so the wire form always has
// arrays where clients expect them.
func (i *Image) Normalize() {
	if i.BlockDeviceMappings == nil {
		i.BlockDeviceMappings = []ImageBDM{}
	}
	if i.BootModes == nil {
		i.BootModes = []string{}
	}
	if i.ProductCodes == nil {
		i.ProductCodes = []string{}
	}
	if i.Tags == nil {
		i.Tags = []Tag{}
	}
	if i.PermissionsToLaunch.AccountIds == nil {
		i.PermissionsToLaunch.AccountIds = []string{}
	}
}

// SnapshotIDs lists the snapshots the image's mappings refer to.
func (i *Image) SnapshotIDs() []string {
	var ids []string
	for _, m := range i.BlockDeviceMappings {
		if m.Bsu != nil && m.Bsu.SnapshotId != "" {
			ids = append(ids, m.Bsu.SnapshotId)
		}
	}
	return ids
}

// TagList implements Tagged.
func (i *Image) TagList() *[]Tag { return &i.Tags }

// Clone returns a deep copy of i: nothing of the copy (slices, mappings,
// their pointers) is shared with i, so either may be changed freely. The
// API read path decodes an OMI's stored document once and hands out
// clones (see service.readPage).
func (i *Image) Clone() *Image {
	c := *i
	c.BlockDeviceMappings = cloneSlice(i.BlockDeviceMappings)
	for k, m := range c.BlockDeviceMappings {
		if m.Bsu != nil {
			b := *m.Bsu
			b.DeleteOnVmDeletion = clonePtr(b.DeleteOnVmDeletion)
			b.Iops = clonePtr(b.Iops)
			b.VolumeSize = clonePtr(b.VolumeSize)
			c.BlockDeviceMappings[k].Bsu = &b
		}
	}
	c.BootModes = cloneSlice(i.BootModes)
	c.PermissionsToLaunch.AccountIds = cloneSlice(i.PermissionsToLaunch.AccountIds)
	c.ProductCodes = cloneSlice(i.ProductCodes)
	c.Tags = cloneSlice(i.Tags)
	return &c
}

// cloneSlice copies s, keeping nil nil (the wire form tells nil from
// empty until Normalize).
func cloneSlice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	return append(make([]T, 0, len(s)), s...)
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
