package omi

// Snapshot states. The API documents in-queue, pending, completed, error and
// deleting; its examples also show pending/queued and importing.
const (
	SnapshotPending   = "pending"
	SnapshotImporting = "importing"
	SnapshotCompleted = "completed"
	SnapshotError     = "error"
)

// Snapshot is a frozen copy of a volume's content.
type Snapshot struct {
	AccountAlias              string      `json:"AccountAlias"`
	AccountId                 string      `json:"AccountId"`
	ClientToken               string      `json:"ClientToken,omitempty"`
	CreationDate              string      `json:"CreationDate"`
	Description               string      `json:"Description"`
	PermissionsToCreateVolume Permissions `json:"PermissionsToCreateVolume"`
	Progress                  int         `json:"Progress"`
	SnapshotId                string      `json:"SnapshotId"`
	State                     string      `json:"State"`
	Tags                      []Tag       `json:"Tags"`
	VolumeId                  string      `json:"VolumeId"`
	// VolumeSize is the size in GiB of the source volume.
	VolumeSize int `json:"VolumeSize"`
	// SizeBytes is the exact size of the content in bytes; imported disks
	// need not be a whole number of GiB.
	SizeBytes int64 `json:"SizeBytes,omitempty"`
	// StateMessage says why a snapshot is in error (not in the API).
	StateMessage string `json:"StateMessage,omitempty"`
	// UsedBy lists the images whose block device mappings refer to this
	// snapshot; a snapshot in use cannot be deleted. Not in the API.
	UsedBy []string `json:"UsedBy,omitempty"`
	// SourceSnapshotId is the snapshot a copy was made from (not in the
	// API): the data plane copies its block map.
	SourceSnapshotId string `json:"SourceSnapshotId,omitempty"`
	// ImportURL and ImportSHA256 describe the disk an importing snapshot
	// is filled from (not in the API).
	ImportURL    string `json:"ImportURL,omitempty"`
	ImportSHA256 string `json:"ImportSHA256,omitempty"`
}

// ForWire returns a copy without the fields the API's Snapshot object does
// not have.
func (s *Snapshot) ForWire() *Snapshot {
	c := *s
	c.SizeBytes, c.StateMessage, c.UsedBy, c.SourceSnapshotId, c.ImportURL, c.ImportSHA256 = 0, "", nil, "", "", ""
	c.Normalize()
	return &c
}

func (s *Snapshot) Kind() Kind         { return KindSnapshot }
func (s *Snapshot) ResourceID() string { return s.SnapshotId }
func (s *Snapshot) Owner() string      { return s.AccountId }
func (s *Snapshot) IndexName() string  { return "" }
func (s *Snapshot) Visibility() (bool, []string) {
	return s.PermissionsToCreateVolume.GlobalPermission, s.PermissionsToCreateVolume.AccountIds
}

// Normalize replaces nil slices by empty ones.
func (s *Snapshot) Normalize() {
	if s.Tags == nil {
		s.Tags = []Tag{}
	}
	if s.PermissionsToCreateVolume.AccountIds == nil {
		s.PermissionsToCreateVolume.AccountIds = []string{}
	}
}

// TagList implements Tagged.
func (s *Snapshot) TagList() *[]Tag { return &s.Tags }
