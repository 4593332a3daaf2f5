package omi

import "time"

// Export task states. The first state of a task is pending; "active" while
// its data is being written.
const (
	TaskPending   = "pending"
	TaskActive    = "active"
	TaskCompleted = "completed"
	TaskFailed    = "failed"
	TaskCancelled = "cancelled"
)

// Disk image formats of exports.
const (
	FormatQcow2 = "qcow2"
	FormatRaw   = "raw"
)

// ExportTask is an export of an OMI (ImageId set) or of one snapshot
// (SnapshotId set) to a bucket. The API shows it as an ImageExportTask or a
// SnapshotExportTask; the credentials used to write the bucket never leave
// the server.
type ExportTask struct {
	AccountId  string    `json:"-"`
	TaskId     string    `json:"TaskId"`
	ImageId    string    `json:"ImageId,omitempty"`
	SnapshotId string    `json:"SnapshotId,omitempty"`
	OsuExport  OsuExport `json:"OsuExport"`
	Progress   int       `json:"Progress"`
	State      string    `json:"State"`
	Comment    string    `json:"Comment"`
	Tags       []Tag     `json:"Tags"`

	// AccessKeyId is the caller's key, used when no OsuApiKey was given.
	AccessKeyId string `json:"AccessKeyId,omitempty"`
	// ApiKeyId and SecretKey are the OsuApiKey of the request.
	ApiKeyId  string `json:"ApiKeyId,omitempty"`
	SecretKey string `json:"SecretKey,omitempty"`
	// Objects are the object keys written so far, removed on cancel or
	// failure so that nothing half-made stays in the bucket.
	Objects []string `json:"Objects,omitempty"`
	// CreationDate orders tasks.
	CreationDate string `json:"CreationDate"`
	// Runs records each attempt at the work, by which node: more than one
	// only when a node stopped or died during it and another (or the
	// same, restarted) took it over.
	Runs []TaskRun `json:"Runs,omitempty"`
}

// TaskRun is one attempt at a task's work.
type TaskRun struct {
	Node  string    `json:"Node"`
	Start time.Time `json:"Start"`
	// End is zero while the run goes on, and stays zero when the run was
	// interrupted.
	End time.Time `json:"End,omitzero"`
}

// OsuExport says where and how a task exports.
type OsuExport struct {
	DiskImageFormat string `json:"DiskImageFormat"`
	OsuBucket       string `json:"OsuBucket"`
	OsuManifestUrl  string `json:"OsuManifestUrl,omitempty"`
	OsuPrefix       string `json:"OsuPrefix"`
}

func (t *ExportTask) Kind() Kind                   { return KindTask }
func (t *ExportTask) ResourceID() string           { return t.TaskId }
func (t *ExportTask) Owner() string                { return t.AccountId }
func (t *ExportTask) IndexName() string            { return "" }
func (t *ExportTask) Visibility() (bool, []string) { return false, nil }

// SetOwner restores the owner.
func (t *ExportTask) SetOwner(id string) { t.AccountId = id }

// TagList implements Tagged.
func (t *ExportTask) TagList() *[]Tag { return &t.Tags }

// Done reports whether the task reached a final state.
func (t *ExportTask) Done() bool {
	return t.State == TaskCompleted || t.State == TaskFailed || t.State == TaskCancelled
}
