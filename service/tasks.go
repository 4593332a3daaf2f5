package service

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/omiproject/omi"
)

// OsuApiKey is the object storage key pair of an export request.
type OsuApiKey struct {
	ApiKeyId  string `json:"ApiKeyId"`
	SecretKey string `json:"SecretKey"`
}

// OsuExportToCreate is the OsuExport of the export requests.
type OsuExportToCreate struct {
	DiskImageFormat string     `json:"DiskImageFormat"`
	OsuApiKey       *OsuApiKey `json:"OsuApiKey"`
	OsuBucket       string     `json:"OsuBucket"`
	OsuManifestUrl  string     `json:"OsuManifestUrl"`
	OsuPrefix       string     `json:"OsuPrefix"`
}

// ImageExportTaskOut is the API's ImageExportTask.
type ImageExportTaskOut struct {
	Comment   string        `json:"Comment"`
	ImageId   string        `json:"ImageId"`
	OsuExport omi.OsuExport `json:"OsuExport"`
	Progress  int           `json:"Progress"`
	State     string        `json:"State"`
	Tags      []omi.Tag     `json:"Tags"`
	TaskId    string        `json:"TaskId"`
}

// SnapshotExportTaskOut is the API's SnapshotExportTask.
type SnapshotExportTaskOut struct {
	Comment    string            `json:"Comment"`
	OsuExport  snapshotOsuExport `json:"OsuExport"`
	Progress   int               `json:"Progress"`
	SnapshotId string            `json:"SnapshotId"`
	State      string            `json:"State"`
	Tags       []omi.Tag         `json:"Tags"`
	TaskId     string            `json:"TaskId"`
}

type snapshotOsuExport struct {
	DiskImageFormat string `json:"DiskImageFormat"`
	OsuBucket       string `json:"OsuBucket"`
	OsuPrefix       string `json:"OsuPrefix"`
}

func imageTaskOut(t *omi.ExportTask) ImageExportTaskOut {
	return ImageExportTaskOut{Comment: t.Comment, ImageId: t.ImageId, OsuExport: t.OsuExport, Progress: t.Progress,
		State: t.State, Tags: nonNil(t.Tags), TaskId: t.TaskId}
}

func snapshotTaskOut(t *omi.ExportTask) SnapshotExportTaskOut {
	return SnapshotExportTaskOut{Comment: t.Comment, SnapshotId: t.SnapshotId, Progress: t.Progress, State: t.State,
		Tags: nonNil(t.Tags), TaskId: t.TaskId, OsuExport: snapshotOsuExport{DiskImageFormat: t.OsuExport.DiskImageFormat,
			OsuBucket: t.OsuExport.OsuBucket, OsuPrefix: t.OsuExport.OsuPrefix}}
}

// validBucket applies the bucket naming rule: 3-63 characters among
// lower-case letters, digits, dots and dashes, starting and ending with a
// letter or digit.
func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && !((c == '-' || c == '.') && i > 0 && i < len(b)-1) {
			return false
		}
	}
	return true
}

// newExportTask validates an OsuExport and builds the task.
func (s *Service) newExportTask(c *omi.Caller, o *OsuExportToCreate, prefix string) (*omi.ExportTask, error) {
	if s.xfer == nil {
		return nil, omi.Errorf("8018", omi.TypeNotSupported, "exports need object storage, which this server has not configured")
	}
	if o == nil {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "OsuExport is required")
	}
	if o.DiskImageFormat != omi.FormatQcow2 && o.DiskImageFormat != omi.FormatRaw {
		return nil, omi.Invalid(omi.CodeInvalidValue, "DiskImageFormat must be qcow2 or raw, not %q", o.DiskImageFormat)
	}
	if !validBucket(o.OsuBucket) {
		return nil, omi.Invalid(omi.CodeInvalidValue, "OsuBucket %q is not a valid bucket name", o.OsuBucket)
	}
	if len(o.OsuPrefix) > 512 || strings.Contains(o.OsuPrefix, "..") {
		return nil, omi.Invalid(omi.CodeInvalidValue, "OsuPrefix must be at most 512 characters and must not contain ..")
	}
	t := &omi.ExportTask{AccountId: c.AccountID(), State: omi.TaskPending, CreationDate: s.nowString(), AccessKeyId: c.AccessKeyID,
		OsuExport: omi.OsuExport{DiskImageFormat: o.DiskImageFormat, OsuBucket: o.OsuBucket, OsuPrefix: prefix}}
	if k := o.OsuApiKey; k != nil {
		if k.ApiKeyId == "" || k.SecretKey == "" {
			return nil, omi.Invalid(omi.CodeInvalidParameter, "OsuApiKey needs ApiKeyId and SecretKey")
		}
		t.ApiKeyId, t.SecretKey = k.ApiKeyId, k.SecretKey
	} else if c.AccessKeyID == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "OsuApiKey is required when the call is not signed with an access key")
	}
	return t, nil
}

type CreateImageExportTaskRequest struct {
	Base
	ImageId   string             `json:"ImageId"`
	OsuExport *OsuExportToCreate `json:"OsuExport"`
}
type CreateImageExportTaskResponse struct {
	ImageExportTask ImageExportTaskOut `json:"ImageExportTask"`
}

// CreateImageExportTask exports an OMI the caller owns to a bucket: one
// gzip-compressed disk per snapshot and a manifest under
// <OsuPrefix>/<ImageId>/.
func (s *Service) CreateImageExportTask(ctx context.Context, c *omi.Caller, in *CreateImageExportTaskRequest) (*CreateImageExportTaskResponse, error) {
	if in.ImageId == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "ImageId is required")
	}
	var prefix string
	if in.OsuExport != nil {
		prefix = strings.Trim(in.OsuExport.OsuPrefix, "/")
		if prefix != "" {
			prefix += "/"
		}
		prefix += in.ImageId + "/"
	}
	t, err := s.newExportTask(c, in.OsuExport, prefix)
	if err != nil {
		return nil, err
	}
	t.ImageId, t.TaskId = in.ImageId, omi.NewID(omi.PrefixImageExport)
	t.Comment = "Export of image " + in.ImageId
	err = s.update(ctx, func(tx omi.Tx) error {
		img, err := s.ownImage(tx, c, in.ImageId)
		if err != nil {
			return err
		}
		if img.State != omi.ImageAvailable {
			return omi.BadState(omi.CodeInvalidImageState, "OMI %s is %s, not available", img.ImageId, img.State)
		}
		return insertNew(tx, t, func() { t.TaskId = omi.NewID(omi.PrefixImageExport) })
	})
	if err != nil {
		return nil, err
	}
	s.enqueue(ctx, omi.KindTask, t.TaskId)
	return &CreateImageExportTaskResponse{ImageExportTask: imageTaskOut(t)}, nil
}

type CreateSnapshotExportTaskRequest struct {
	Base
	OsuExport  *OsuExportToCreate `json:"OsuExport"`
	SnapshotId string             `json:"SnapshotId"`
}
type CreateSnapshotExportTaskResponse struct {
	SnapshotExportTask SnapshotExportTaskOut `json:"SnapshotExportTask"`
}

// CreateSnapshotExportTask exports one snapshot the caller owns to a
// bucket, under OsuPrefix as given (no manifest, no product codes).
func (s *Service) CreateSnapshotExportTask(ctx context.Context, c *omi.Caller, in *CreateSnapshotExportTaskRequest) (*CreateSnapshotExportTaskResponse, error) {
	if in.SnapshotId == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "SnapshotId is required")
	}
	prefix := ""
	if in.OsuExport != nil {
		prefix = in.OsuExport.OsuPrefix
	}
	t, err := s.newExportTask(c, in.OsuExport, prefix)
	if err != nil {
		return nil, err
	}
	t.SnapshotId, t.TaskId = in.SnapshotId, omi.NewID(omi.PrefixSnapExport)
	t.Comment = "Export of snapshot " + in.SnapshotId
	err = s.update(ctx, func(tx omi.Tx) error {
		snap, err := s.ownSnapshot(tx, c, in.SnapshotId)
		if err != nil {
			return err
		}
		if snap.State != omi.SnapshotCompleted {
			return omi.BadState(omi.CodeInvalidState, "snapshot %s is %s, not completed", snap.SnapshotId, snap.State)
		}
		return insertNew(tx, t, func() { t.TaskId = omi.NewID(omi.PrefixSnapExport) })
	})
	if err != nil {
		return nil, err
	}
	s.enqueue(ctx, omi.KindTask, t.TaskId)
	return &CreateSnapshotExportTaskResponse{SnapshotExportTask: snapshotTaskOut(t)}, nil
}

type FiltersExportTask struct {
	ImageIds    []string `json:"ImageIds"`
	SnapshotIds []string `json:"SnapshotIds"`
	TaskIds     []string `json:"TaskIds"`
}
type ReadExportTasksRequest struct {
	Base
	Paging
	Filters *FiltersExportTask `json:"Filters"`
}
type ReadImageExportTasksResponse struct {
	ImageExportTasks []ImageExportTaskOut `json:"ImageExportTasks"`
	NextPageToken    string               `json:"NextPageToken,omitempty"`
}
type ReadSnapshotExportTasksResponse struct {
	SnapshotExportTasks []SnapshotExportTaskOut `json:"SnapshotExportTasks"`
	NextPageToken       string                  `json:"NextPageToken,omitempty"`
}

func (s *Service) readTasks(ctx context.Context, c *omi.Caller, in *ReadExportTasksRequest, prefix string, keep func(*omi.ExportTask, *FiltersExportTask) bool) ([]*omi.ExportTask, string, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersExportTask{}
	}
	var out []*omi.ExportTask
	var next string
	err := s.view(ctx, func(tx omi.Tx) error {
		var err error
		out, next, err = listPage[omi.ExportTask](tx, omi.Query{Owners: []string{c.AccountID()}, IDs: f.TaskIds}, in.Paging, prefix,
			func(t *omi.ExportTask) bool { return strings.HasPrefix(t.TaskId, prefix+"-") && keep(t, f) })
		return err
	})
	return out, next, err
}

// ReadImageExportTasks lists the caller's OMI export tasks.
func (s *Service) ReadImageExportTasks(ctx context.Context, c *omi.Caller, in *ReadExportTasksRequest) (*ReadImageExportTasksResponse, error) {
	tasks, next, err := s.readTasks(ctx, c, in, omi.PrefixImageExport, func(t *omi.ExportTask, f *FiltersExportTask) bool {
		return anyOf(f.ImageIds, t.ImageId)
	})
	if err != nil {
		return nil, err
	}
	out := make([]ImageExportTaskOut, len(tasks))
	for i, t := range tasks {
		out[i] = imageTaskOut(t)
	}
	return &ReadImageExportTasksResponse{ImageExportTasks: out, NextPageToken: next}, nil
}

// ReadSnapshotExportTasks lists the caller's snapshot export tasks.
func (s *Service) ReadSnapshotExportTasks(ctx context.Context, c *omi.Caller, in *ReadExportTasksRequest) (*ReadSnapshotExportTasksResponse, error) {
	tasks, next, err := s.readTasks(ctx, c, in, omi.PrefixSnapExport, func(t *omi.ExportTask, f *FiltersExportTask) bool {
		return anyOf(f.SnapshotIds, t.SnapshotId)
	})
	if err != nil {
		return nil, err
	}
	out := make([]SnapshotExportTaskOut, len(tasks))
	for i, t := range tasks {
		out[i] = snapshotTaskOut(t)
	}
	return &ReadSnapshotExportTasksResponse{SnapshotExportTasks: out, NextPageToken: next}, nil
}

type DeleteExportTaskRequest struct {
	Base
	ExportTaskId string `json:"ExportTaskId"`
}
type DeleteExportTaskResponse struct{}

// DeleteExportTask cancels a pending or active export; the objects it
// wrote are removed.
func (s *Service) DeleteExportTask(ctx context.Context, c *omi.Caller, in *DeleteExportTaskRequest) (*DeleteExportTaskResponse, error) {
	if in.ExportTaskId == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "ExportTaskId is required")
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		t, err := omi.Get[omi.ExportTask](tx, in.ExportTaskId)
		if isNotFound(err) || (err == nil && t.AccountId != c.AccountID()) {
			return notFoundFor(omi.KindTask, in.ExportTaskId)
		}
		if err != nil {
			return err
		}
		if t.Done() {
			return omi.BadState(omi.CodeInvalidState, "export task %s is %s and can no longer be cancelled", t.TaskId, t.State)
		}
		t.State, t.Comment = omi.TaskCancelled, "Cancelled by the user"
		s.endRun(t) // the run stops at its next report, wherever it is
		return omi.Put(tx, t)
	})
	if err != nil {
		return nil, err
	}
	if !omi.IsDryRun(ctx) {
		s.cancelJob(in.ExportTaskId)
		s.startJob(in.ExportTaskId+"/cleanup", func(ctx context.Context) { s.cleanupTask(ctx, in.ExportTaskId) })
	}
	return &DeleteExportTaskResponse{}, nil
}

// endRun dates the end of the current run of t.
func (s *Service) endRun(t *omi.ExportTask) {
	if n := len(t.Runs); n > 0 && t.Runs[n-1].End.IsZero() {
		t.Runs[n-1].End = s.now().UTC()
	}
}

// loadTask reads a task outside any transaction.
func (s *Service) loadTask(ctx context.Context, id string) (*omi.ExportTask, error) {
	var t *omi.ExportTask
	err := s.store.View(ctx, func(tx omi.Tx) (err error) {
		t, err = omi.Get[omi.ExportTask](tx, id)
		return err
	})
	return t, err
}

// updateTask changes a task unless it reached a final state meanwhile
// (a cancel wins over a late progress report).
func (s *Service) updateTask(ctx context.Context, id string, fn func(t *omi.ExportTask) error) (*omi.ExportTask, error) {
	var out *omi.ExportTask
	err := s.store.Update(ctx, func(tx omi.Tx) error {
		t, err := omi.Get[omi.ExportTask](tx, id)
		if err != nil {
			return err
		}
		out = t
		if t.Done() {
			return nil
		}
		if err := fn(t); err != nil {
			return err
		}
		return omi.Put(tx, t)
	})
	return out, err
}

func (s *Service) destination(ctx context.Context, t *omi.ExportTask) (Destination, error) {
	d := Destination{Bucket: t.OsuExport.OsuBucket, AccessKey: t.ApiKeyId, SecretKey: t.SecretKey}
	if d.AccessKey != "" {
		return d, nil
	}
	key, _, err := s.LookupAccessKey(ctx, t.AccessKeyId)
	if err != nil {
		return d, omi.Invalid(omi.CodeInvalidParameter, "the access key %s that created this export can no longer be used: %s", t.AccessKeyId, clientMessage(err))
	}
	d.AccessKey, d.SecretKey = key.AccessKeyId, key.SecretKey
	return d, nil
}

// runExport does an export task. A task interrupted by a shutdown stays
// active and is redone from the start by the next process.
func (s *Service) runExport(ctx context.Context, id string) {
	// A cancel through another node is seen in the task record, at the
	// next progress report: it stops this run like a local cancel.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	t, err := s.updateTask(ctx, id, func(t *omi.ExportTask) error {
		t.State, t.Progress = omi.TaskActive, 0
		t.Runs = append(t.Runs, omi.TaskRun{Node: s.nodeName(), Start: s.now().UTC()})
		return nil
	})
	if err != nil || t.Done() {
		if err != nil && ctx.Err() == nil {
			s.log.Error("export task", "task", id, "err", err)
		}
		return
	}
	if len(t.Objects) > 0 {
		// A previous attempt was interrupted (the process stopped or
		// died): remove what it wrote, then redo the export from the start.
		s.removeObjects(ctx, id)
		if t, err = s.loadTask(ctx, id); err != nil || t.Done() {
			return
		}
	}
	start := time.Now()
	url, err := s.export(ctx, t, stop)
	if ctx.Err() != nil {
		// Cancelled by DeleteExportTask (its cleanup job removes the
		// objects, and so does this run when the cancel came through
		// another node) or by a shutdown (the task is redone on restart
		// or by another node).
		if t, err := s.loadTask(context.WithoutCancel(ctx), id); err == nil && t.State == omi.TaskCancelled {
			s.removeObjects(context.WithoutCancel(ctx), id)
		}
		return
	}
	if err != nil {
		s.log.Warn("export task failed", "task", id, "err", err)
		t, _ = s.updateTask(ctx, id, func(t *omi.ExportTask) error {
			t.State, t.Comment = omi.TaskFailed, "Export failed: "+clientMessage(err)
			s.endRun(t)
			return nil
		})
		s.removeObjects(ctx, id)
		s.observeTask("export", omi.TaskFailed, start)
		return
	}
	s.updateTask(ctx, id, func(t *omi.ExportTask) error {
		t.State, t.Progress, t.OsuExport.OsuManifestUrl = omi.TaskCompleted, 100, url
		s.endRun(t)
		return nil
	})
	s.observeTask("export", omi.TaskCompleted, start)
}

// export does the work of task t; stop cancels it, called when the task
// is found finished (cancelled) at a progress report.
func (s *Service) export(ctx context.Context, t *omi.ExportTask, stop func()) (string, error) {
	dest, err := s.destination(ctx, t)
	if err != nil {
		return "", err
	}
	job := &ExportJob{Task: t, Dest: dest, Prefix: t.OsuExport.OsuPrefix}
	err = s.store.View(ctx, func(tx omi.Tx) error {
		ids := []string{t.SnapshotId}
		if t.ImageId != "" {
			img, err := omi.Get[omi.Image](tx, t.ImageId)
			if err != nil {
				if isNotFound(err) {
					return omi.NotFound(omi.CodeNoSuchImage, "OMI %s was deleted during the export", t.ImageId)
				}
				return err
			}
			job.Image, ids = img, img.SnapshotIDs()
		}
		for _, sid := range ids {
			sn, err := omi.Get[omi.Snapshot](tx, sid)
			if err != nil {
				if isNotFound(err) {
					return snapshotNotFound(sid)
				}
				return err
			}
			job.Snapshots = append(job.Snapshots, sn)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	last := -1
	progress := func(pct int) {
		if pct <= last || pct >= 100 {
			return
		}
		last = pct
		if cur, err := s.updateTask(ctx, t.TaskId, func(t *omi.ExportTask) error { t.Progress = pct; return nil }); err == nil && cur.Done() {
			stop()
		}
	}
	record := func(key string) error {
		cur, err := s.updateTask(ctx, t.TaskId, func(t *omi.ExportTask) error {
			if !slices.Contains(t.Objects, key) {
				t.Objects = append(t.Objects, key)
			}
			return nil
		})
		if err == nil && cur.Done() {
			stop()
			return context.Canceled
		}
		return err
	}
	return s.xfer.Export(ctx, job, record, progress)
}

// cleanupTask removes the objects of a cancelled or failed task, waiting
// for its job to stop first.
func (s *Service) cleanupTask(ctx context.Context, id string) {
	s.waitJob(ctx, id)
	s.removeObjects(ctx, id)
}

// waitJob waits until the job of id no longer runs in this process.
func (s *Service) waitJob(ctx context.Context, id string) {
	for {
		s.jobs.mu.Lock()
		_, running := s.jobs.running[id]
		s.jobs.mu.Unlock()
		if !running {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// removeObjects deletes the objects a task recorded and forgets them. The
// export job calls it directly; others go through cleanupTask.
func (s *Service) removeObjects(ctx context.Context, id string) {
	t, err := s.loadTask(ctx, id)
	if err != nil || len(t.Objects) == 0 {
		return
	}
	dest, err := s.destination(ctx, t)
	if err == nil {
		err = s.xfer.RemoveObjects(ctx, dest, t.Objects)
	}
	if err != nil {
		s.log.Warn("remove objects of export task", "task", id, "err", err)
		return
	}
	s.store.Update(ctx, func(tx omi.Tx) error {
		t, err := omi.Get[omi.ExportTask](tx, id)
		if err != nil {
			return err
		}
		t.Objects = nil
		return omi.Put(tx, t)
	})
}

// importImage is CreateImage with FileLocation: the manifest is fetched and
// checked now, so a bad one is a 4xx; the disks are imported in the
// background into new snapshots, and the OMI is pending until they are in.
func (s *Service) importImage(ctx context.Context, c *omi.Caller, in *CreateImageRequest) (*CreateImageResponse, error) {
	if s.xfer == nil {
		return nil, omi.Errorf("8018", omi.TypeNotSupported, "imports need object storage, which this server has not configured")
	}
	if err := s.xfer.CheckURL(in.FileLocation); err != nil {
		return nil, err
	}
	plan, err := s.xfer.ReadManifest(ctx, in.FileLocation)
	if err != nil {
		return nil, err
	}
	if len(plan.Disks) == 0 {
		return nil, omi.Invalid("4040", "the manifest lists no snapshot")
	}
	img := s.newImage(c, in)
	img.State = omi.ImagePending
	if img.ImageName == "" {
		img.ImageName = plan.Name
	}
	if img.Description == "" {
		img.Description = plan.Description
	}
	if in.Architecture == "" && plan.Architecture != "" {
		img.Architecture = plan.Architecture
	}
	if len(in.ProductCodes) == 0 {
		img.ProductCodes = slices.Clone(plan.ProductCodes)
	}
	rootSeen := false
	for i, d := range plan.Disks {
		if !omi.ValidDeviceName(d.Device) {
			return nil, omi.Invalid("4041", "manifest snapshot %d: %q is not a valid device name", i, d.Device)
		}
		if d.Device == omi.RootDeviceName {
			rootSeen = true
		}
		if d.Size <= 0 || d.Size > int64(omi.MaxVolumeSizeGiB)*gib {
			return nil, omi.Invalid("4041", "manifest snapshot %d: Size %d is out of range", i, d.Size)
		}
		if err := s.xfer.CheckURL(d.URL); err != nil {
			return nil, err
		}
	}
	if !rootSeen {
		return nil, omi.Invalid(omi.CodeInvalidRootMap, "the manifest has no snapshot for the root device %s", omi.RootDeviceName)
	}
	err = s.update(ctx, func(tx omi.Tx) error {
		img.BlockDeviceMappings = nil
		for _, d := range plan.Disks {
			gibs := int((d.Size + gib - 1) / gib)
			sn := &omi.Snapshot{AccountId: img.AccountId, AccountAlias: img.AccountAlias, SnapshotId: omi.NewID(omi.PrefixSnapshot),
				CreationDate: img.CreationDate, Description: "Imported for " + img.ImageId + " from " + d.Device,
				State: omi.SnapshotImporting, VolumeSize: gibs, SizeBytes: d.Size, ImportURL: d.URL, ImportSHA256: d.SHA256,
				VolumeId: "vol-00000000"}
			if err := insertNew(tx, sn, func() { sn.SnapshotId = omi.NewID(omi.PrefixSnapshot) }); err != nil {
				return err
			}
			vtype := d.VolumeType
			if vtype == "" {
				vtype = omi.VolumeStandard
			}
			del := d.DeleteOnTermination
			b := &omi.BsuImage{SnapshotId: sn.SnapshotId, VolumeSize: &gibs, VolumeType: vtype, DeleteOnVmDeletion: &del}
			if vtype == omi.VolumeIO1 && d.Iops != nil {
				b.Iops = d.Iops
			}
			img.BlockDeviceMappings = append(img.BlockDeviceMappings, omi.ImageBDM{DeviceName: d.Device, Bsu: b})
		}
		if err := insertImage(tx, img); err != nil {
			return err
		}
		img.FileLocation = in.FileLocation
		return omi.Put(tx, img)
	})
	if err != nil {
		return nil, err
	}
	s.enqueue(ctx, omi.KindImage, img.ImageId)
	return &CreateImageResponse{Image: img}, nil
}

// importSnapshot is CreateSnapshot with FileLocation and SnapshotSize.
func (s *Service) importSnapshot(ctx context.Context, c *omi.Caller, in *CreateSnapshotRequest) (*CreateSnapshotResponse, error) {
	if s.xfer == nil {
		return nil, omi.Errorf("8018", omi.TypeNotSupported, "imports need object storage, which this server has not configured")
	}
	if in.SnapshotSize == nil || *in.SnapshotSize <= 0 || *in.SnapshotSize > int64(omi.MaxVolumeSizeGiB)*gib {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "SnapshotSize (bytes, at least the size of the disk) is required with FileLocation")
	}
	if err := s.xfer.CheckURL(in.FileLocation); err != nil {
		return nil, err
	}
	size := *in.SnapshotSize
	gibs := int((size + gib - 1) / gib)
	snap := &omi.Snapshot{AccountId: c.AccountID(), AccountAlias: c.Account.Alias, SnapshotId: omi.NewID(omi.PrefixSnapshot),
		ClientToken: in.ClientToken, CreationDate: s.nowString(), Description: in.Description, State: omi.SnapshotImporting,
		VolumeSize: gibs, SizeBytes: size, ImportURL: in.FileLocation, VolumeId: "vol-00000000"}
	err := s.update(ctx, func(tx omi.Tx) error {
		return insertNew(tx, snap, func() { snap.SnapshotId = omi.NewID(omi.PrefixSnapshot) })
	})
	if err != nil {
		return nil, err
	}
	s.enqueue(ctx, omi.KindSnapshot, snap.SnapshotId)
	return &CreateSnapshotResponse{Snapshot: snap.ForWire()}, nil
}

// runImport fills an importing snapshot from its URL.
func (s *Service) runImport(ctx context.Context, id string) {
	var sn *omi.Snapshot
	if err := s.store.View(ctx, func(tx omi.Tx) (err error) {
		sn, err = omi.Get[omi.Snapshot](tx, id)
		return err
	}); err != nil || sn.State != omi.SnapshotImporting {
		return
	}
	last := -1
	progress := func(pct int) {
		if pct <= last || pct >= 100 {
			return
		}
		last = pct
		s.store.Update(ctx, func(tx omi.Tx) error {
			sn, err := omi.Get[omi.Snapshot](tx, id)
			if err != nil || sn.State != omi.SnapshotImporting {
				return err
			}
			sn.Progress = pct
			return omi.Put(tx, sn)
		})
	}
	// A snapshot still importing has no complete data: drop what an
	// interrupted attempt may have left, and import from the start.
	if s.data != nil {
		if err := s.data.Delete(ctx, id); err != nil {
			s.log.Warn("drop partial import", "snapshot", id, "err", err)
			return
		}
	}
	start := time.Now()
	err := s.xfer.ImportDisk(ctx, sn.ImportURL, id, sn.SizeBytes, sn.ImportSHA256, progress)
	if ctx.Err() != nil {
		return // shutdown: the import is redone by the next process
	}
	if err != nil {
		s.log.Warn("import failed", "snapshot", id, "err", err)
		s.observeTask("import", omi.TaskFailed, start)
	} else {
		s.observeTask("import", omi.TaskCompleted, start)
	}
	s.store.Update(ctx, func(tx omi.Tx) error {
		sn, err2 := omi.Get[omi.Snapshot](tx, id)
		if err2 != nil || sn.State != omi.SnapshotImporting {
			return ignoreMissing(err2)
		}
		if err != nil {
			sn.State, sn.StateMessage = omi.SnapshotError, "import failed: "+clientMessage(err)
		} else {
			sn.State, sn.Progress = omi.SnapshotCompleted, 100
		}
		return omi.Put(tx, sn)
	})
}

// discardImported deletes the snapshots a failed import made, so that a
// failed OMI leaves nothing half-made behind.
func (s *Service) discardImported(tx omi.Tx, img *omi.Image) ([]string, error) {
	var gone []string
	for _, sid := range img.SnapshotIDs() {
		sn, err := omi.Get[omi.Snapshot](tx, sid)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if sn.ImportURL == "" || sn.State == omi.SnapshotImporting {
			continue
		}
		if err := retire(tx, omi.KindSnapshot, sid); err != nil {
			return nil, err
		}
		gone = append(gone, sid)
	}
	return gone, nil
}
