package service

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/omiproject/omi"
)

// Transfers moves disks between omi and object storage: exports to a
// bucket, imports from pre-signed URLs. The service records tasks and
// states; the implementation (package xfer) streams the bytes. Errors that
// are *omi.Error with a 4xxx code are the client's fault and are shown as
// such; anything else is reported as an internal failure.
type Transfers interface {
	// CheckURL refuses, without connecting, a URL omi may not fetch.
	CheckURL(rawURL string) error
	// ReadManifest fetches and validates an OMI export manifest.
	ReadManifest(ctx context.Context, rawURL string) (*ImportPlan, error)
	// ImportDisk fills the new snapshot snapshotID from the disk at rawURL,
	// refusing a disk larger than size bytes or whose SHA-256 differs from
	// sha256 (when not ""). On failure nothing of the snapshot's data stays.
	ImportDisk(ctx context.Context, rawURL, snapshotID string, size int64, sha256 string, progress func(pct int)) error
	// Export writes the snapshots of job to its bucket (and, for an OMI,
	// the manifest), returning the manifest's pre-signed URL for an OMI.
	// record is called with each object key before it is written, so a
	// cancelled or failed task can remove it.
	Export(ctx context.Context, job *ExportJob, record func(key string) error, progress func(pct int)) (manifestURL string, err error)
	// RemoveObjects deletes objects a task wrote.
	RemoveObjects(ctx context.Context, dest Destination, keys []string) error
}

// ImportPlan is what a manifest describes.
type ImportPlan struct {
	Name         string
	Description  string
	Architecture string
	ProductCodes []string
	Disks        []ImportDiskPlan
}

// ImportDiskPlan is one disk of a manifest.
type ImportDiskPlan struct {
	Device              string
	URL                 string
	Size                int64
	SHA256              string
	DeleteOnTermination bool
	VolumeType          string
	Iops                *int
}

// Destination is a bucket and the credentials to write it.
type Destination struct {
	Bucket    string
	AccessKey string
	SecretKey string
}

// ExportJob is the work of an export task.
type ExportJob struct {
	Task      *omi.ExportTask
	Dest      Destination
	Prefix    string          // object key prefix, ending with "/" or ""
	Image     *omi.Image      // for an OMI export
	Snapshots []*omi.Snapshot // the snapshots to export, in mapping order
}

// SetTaskObserver registers a function told about every finished
// background task (metrics): kind is "export" or "import".
func (s *Service) SetTaskObserver(fn func(kind, state string, d time.Duration)) { s.taskObserver = fn }

func (s *Service) observeTask(kind, state string, start time.Time) {
	if s.taskObserver != nil {
		s.taskObserver(kind, state, time.Since(start))
	}
}

// SetLeases makes the service share its background work with the other
// nodes of a cluster: the reconciler's transitions run on the node holding
// the lease "reconciler", each task on the node holding "job/<id>", and
// the store is rescanned every second for work queued through other
// nodes. Call before Start.
func (s *Service) SetLeases(l omi.Leases) {
	s.leases = l
	s.rescan = time.Second
}

// holds takes or confirms lease name; without leases it is always held.
func (s *Service) holds(ctx context.Context, name string) bool {
	if s.leases == nil {
		return true
	}
	ok, err := s.leases.Acquire(ctx, name)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("lease", "lease", name, "err", err)
		}
		return false
	}
	return ok
}

// nodeName names this node in task records ("" when alone).
func (s *Service) nodeName() string {
	if s.leases == nil {
		return ""
	}
	return s.leases.Node()
}

// SetTransfers attaches the transfer implementation; call before Start.
func (s *Service) SetTransfers(t Transfers) { s.xfer = t }

// jobs tracks the long-running tasks of this process.
type jobs struct {
	mu      sync.Mutex
	running map[string]context.CancelFunc
	slots   chan struct{}
}

func newJobs(n int) *jobs {
	return &jobs{running: map[string]context.CancelFunc{}, slots: make(chan struct{}, n)}
}

// start runs fn for id in the background unless it already runs here.
func (s *Service) startJob(id string, fn func(ctx context.Context)) {
	j := s.jobs
	j.mu.Lock()
	if _, ok := j.running[id]; ok || s.jobCtx == nil {
		j.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(s.jobCtx)
	j.running[id] = cancel
	j.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			j.mu.Lock()
			delete(j.running, id)
			j.mu.Unlock()
			cancel()
			s.kickNow()
		}()
		select {
		case j.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-j.slots }()
		if !s.holds(ctx, "job/"+id) {
			return // another node runs it
		}
		defer func() {
			// Handed back on success, failure and shutdown alike: a
			// task left unfinished is taken by the next node to look.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if s.leases != nil {
				s.leases.Release(rctx, "job/"+id)
			}
		}()
		fn(ctx)
	}()
}

// cancelJob stops the job of id if it runs here.
func (s *Service) cancelJob(id string) {
	s.jobs.mu.Lock()
	if cancel, ok := s.jobs.running[id]; ok {
		cancel()
	}
	s.jobs.mu.Unlock()
}

// jobsRunning counts the jobs running in this process (Settle waits for none).
func (s *Service) jobsRunning() int {
	s.jobs.mu.Lock()
	defer s.jobs.mu.Unlock()
	return len(s.jobs.running)
}

// clientMessage is the text of an error as a task comment or state
// message: the details of an *omi.Error, else the error text.
func clientMessage(err error) string {
	var e *omi.Error
	if errors.As(err, &e) && e.Type != omi.TypeInternal {
		return e.Details
	}
	return err.Error()
}
