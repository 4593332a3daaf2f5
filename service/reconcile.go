package service

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/omiproject/omi"
)

// DataPlane moves the bytes behind volumes and snapshots. The service calls
// it from the reconciler, outside any store transaction, and records the
// outcome in the resource's state. A nil DataPlane (the metadata-only mode)
// completes every transition at once.
type DataPlane interface {
	// CreateVolume makes the data of a new volume: size bytes of zeros, or
	// the content of snapshot fromSnapshot when it is not "".
	CreateVolume(ctx context.Context, volumeID string, size int64, fromSnapshot string) error
	// ResizeVolume grows a volume's data to size bytes.
	ResizeVolume(ctx context.Context, volumeID string, size int64) error
	// Snapshot freezes the current content of a volume as a snapshot.
	Snapshot(ctx context.Context, volumeID, snapshotID string) error
	// CopySnapshot gives dst the content of src (metadata only).
	CopySnapshot(ctx context.Context, src, dst string) error
	// Delete frees the data of a volume or snapshot; deleting what does not
	// exist is not an error.
	Delete(ctx context.Context, id string) error
}

// work is one pending transition of a resource.
type work struct {
	kind omi.Kind
	id   string
}

// Start runs the reconciler: it completes the transitions that requests
// leave pending (creating volumes, pending snapshots and images) and those
// found in the store at start, left by a previous process.
func (s *Service) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	s.jobs.mu.Lock()
	s.jobCtx = ctx
	s.jobs.mu.Unlock()
	if s.driver != nil {
		if err := s.recoverVms(ctx); err != nil {
			s.log.Error("recover VMs after start", "err", err)
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.loop(ctx)
	}()
	s.kickNow()
}

// Close stops the reconciler and waits for the transition in progress.
func (s *Service) Close() {
	s.closeOnce.Do(func() {
		if s.cancel != nil {
			s.cancel()
		}
		s.wg.Wait()
	})
}

// SetDataPlane attaches the data plane; call before Start.
func (s *Service) SetDataPlane(dp DataPlane) { s.data = dp }

// enqueue notes that resource id has a transition to run. It is cheap: the
// reconciler rescans the store for pending work on every wake-up, which also
// makes the queue survive restarts for free.
func (s *Service) enqueue(ctx context.Context, kind omi.Kind, id string) {
	if omi.IsDryRun(ctx) {
		return
	}
	s.kickNow()
}

func (s *Service) kickNow() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// released frees the data of a deleted volume or snapshot.
func (s *Service) released(ctx context.Context, kind omi.Kind, id string) {
	if omi.IsDryRun(ctx) || s.data == nil {
		return
	}
	if err := s.data.Delete(context.WithoutCancel(ctx), id); err != nil {
		s.log.Warn("free data", "kind", kind, "id", id, "err", err)
	}
}

// Settle runs the reconciler until no transition is pending and no
// background job runs (tests and tools that want to observe final states).
// Without Start, jobs run under ctx.
func (s *Service) Settle(ctx context.Context) error {
	s.jobs.mu.Lock()
	if s.jobCtx == nil {
		s.jobCtx = ctx
	}
	s.jobs.mu.Unlock()
	for {
		n, err := s.reconcileOnce(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		if s.jobsRunning() == 0 {
			// A job that just finished may have left a transition.
			if n, err = s.reconcileOnce(ctx); err != nil || (n == 0 && s.jobsRunning() == 0) {
				return err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *Service) loop(ctx context.Context) {
	// A periodic rescan picks up work enqueued by other processes sharing
	// the store and retries transitions that failed transiently.
	tick := time.NewTicker(s.rescan)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-tick.C:
		}
		if _, err := s.reconcileOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("reconcile", "err", err)
		}
	}
}

// reconcileOnce finds resources in a transitional state and moves them on,
// returning how many transitions it made. The order matters: VMs stop
// before their volumes are snapshotted, snapshots complete before the
// images that use them, and imaged VMs start again last.
func (s *Service) reconcileOnce(ctx context.Context) (int, error) {
	var vms []*omi.Vm
	var todo []work
	var imports, exports, inspections []string
	// Only resources with a work record are looked at: every write of a
	// volume, snapshot, image, VM or task in an API transaction queues one
	// (see queueingTx), and it is removed once the resource is at rest, so
	// a pass costs the pending work, not the size of the store.
	var queued []work
	err := s.store.View(ctx, func(tx omi.Tx) error {
		if err := tx.Scan(omi.Query{Kind: omi.KindWork}, func(rec omi.Record) (bool, error) {
			queued = append(queued, work{workKind(rec), rec.ID})
			return true, nil
		}); err != nil {
			return err
		}
		for _, w := range queued {
			var err error
			switch w.kind {
			case omi.KindVm:
				var v *omi.Vm
				if v, err = omi.Get[omi.Vm](tx, w.id); err == nil {
					switch v.State {
					case omi.VmPending, omi.VmStopping, omi.VmShuttingDown, omi.VmTerminated:
						vms = append(vms, v)
					case omi.VmStopped:
						if v.ImagingFor != "" {
							vms = append(vms, v)
						}
					}
				}
			case omi.KindVolume:
				var v *omi.Volume
				if v, err = omi.Get[omi.Volume](tx, w.id); err == nil && v.State == omi.VolumeCreating {
					todo = append(todo, w)
				}
			case omi.KindSnapshot:
				var v *omi.Snapshot
				if v, err = omi.Get[omi.Snapshot](tx, w.id); err == nil {
					switch v.State {
					case omi.SnapshotPending:
						todo = append(todo, w)
					case omi.SnapshotImporting:
						imports = append(imports, w.id)
					}
				}
			case omi.KindTask:
				var t *omi.ExportTask
				if t, err = omi.Get[omi.ExportTask](tx, w.id); err == nil && (t.State == omi.TaskPending || t.State == omi.TaskActive) {
					exports = append(exports, w.id)
				}
			case omi.KindImage:
				var v *omi.Image
				if v, err = omi.Get[omi.Image](tx, w.id); err == nil {
					switch v.State {
					case omi.ImagePending:
						todo = append(todo, w)
					case omi.ImageAvailable:
						if s.inspector != nil {
							var done bool
							if done, err = inspected(tx, w.id); err == nil && !done {
								inspections = append(inspections, w.id)
							}
						}
					}
				}
			}
			if err != nil && !isNotFound(err) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	defer s.dequeueFinished(ctx, queued)
	changed := 0
	var errs []error
	count := func(did bool, err error) {
		if did {
			changed++
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if !s.holds(ctx, "reconciler") {
		// Another node runs the transitions; this one still takes its
		// share of the jobs, each under its own lease.
		vms, todo = nil, nil
	}
	for _, vm := range vms {
		if vm.State == omi.VmStopping || vm.State == omi.VmShuttingDown || vm.State == omi.VmTerminated {
			count(s.settleVmDown(ctx, vm.VmId))
		}
	}
	for _, w := range todo {
		if ctx.Err() != nil {
			return changed, ctx.Err()
		}
		count(s.complete(ctx, w))
	}
	for _, vm := range vms {
		if vm.State == omi.VmPending || vm.State == omi.VmStopped {
			count(s.settleVmUp(ctx, vm.VmId))
		}
	}
	for _, id := range inspections {
		s.startJob("inspect/"+id, func(ctx context.Context) { s.runInspect(ctx, id) })
	}
	if s.xfer != nil {
		for _, id := range imports {
			s.startJob(id, func(ctx context.Context) { s.runImport(ctx, id) })
		}
		for _, id := range exports {
			s.startJob(id, func(ctx context.Context) { s.runExport(ctx, id) })
		}
	}
	return changed, errors.Join(errs...)
}

// complete runs one transition: the data work first, then the state change
// in a transaction that re-checks the resource is still pending.
func (s *Service) complete(ctx context.Context, w work) (bool, error) {
	switch w.kind {
	case omi.KindVolume:
		return s.completeVolume(ctx, w.id)
	case omi.KindSnapshot:
		return s.completeSnapshot(ctx, w.id)
	case omi.KindImage:
		return s.completeImage(ctx, w.id)
	}
	return false, nil
}

// TerminatedRetention is how long a terminated VM stays readable.
const TerminatedRetention = time.Hour

// settleVmDown moves a VM down: stopping to stopped, shutting-down to
// terminated (deleting or detaching its volumes), and forgets terminated
// VMs after TerminatedRetention.
func (s *Service) settleVmDown(ctx context.Context, id string) (bool, error) {
	did := false
	var freed []string
	err := s.transition(ctx, func(tx omi.Tx) error {
		vm, err := omi.Get[omi.Vm](tx, id)
		if err != nil {
			return err
		}
		switch vm.State {
		case omi.VmStopping:
			if d := s.vmDriver(); d.Running(id) {
				// Its machine powers off (or is killed after the
				// driver's timeout); its exit wakes the reconciler.
				return d.Stop(id, false)
			}
			vm.State, did = omi.VmStopped, true
		case omi.VmShuttingDown:
			if d := s.vmDriver(); d.Running(id) {
				return d.Stop(id, true)
			}
			for _, m := range vm.BlockDeviceMappings {
				v, err := omi.Get[omi.Volume](tx, m.Bsu.VolumeId)
				if isNotFound(err) {
					continue
				}
				if err != nil {
					return err
				}
				if m.Bsu.DeleteOnVmDeletion {
					if err := retire(tx, omi.KindVolume, v.VolumeId); err != nil {
						return err
					}
					freed = append(freed, v.VolumeId)
					continue
				}
				v.LinkedVolumes, v.State = nil, omi.VolumeAvailable
				if err := omi.Put(tx, v); err != nil {
					return err
				}
			}
			vm.State, vm.BlockDeviceMappings, vm.TerminatedAt, did = omi.VmTerminated, nil, s.nowString(), true
		case omi.VmTerminated:
			t, err := parseDate(vm.TerminatedAt)
			if err == nil && s.now().Sub(t) < TerminatedRetention {
				return nil
			}
			did = true
			return retire(tx, omi.KindVm, id)
		default:
			return nil
		}
		return omi.Put(tx, vm)
	})
	for _, v := range freed {
		s.released(ctx, omi.KindVolume, v)
	}
	return did, err
}

// settleVmUp starts a pending VM once its volumes are ready, and restarts a
// VM stopped for an image once the image's snapshots are taken. The VM is
// running once the driver runs its machine; a machine that fails to start
// leaves the VM stopped, with the reason.
func (s *Service) settleVmUp(ctx context.Context, id string) (bool, error) {
	var spec *VmSpec
	if err := s.store.View(ctx, func(tx omi.Tx) error {
		vm, err := omi.Get[omi.Vm](tx, id)
		if err != nil || vm.State != omi.VmPending {
			return err
		}
		for _, m := range vm.BlockDeviceMappings {
			v, err := omi.Get[omi.Volume](tx, m.Bsu.VolumeId)
			if err != nil && !isNotFound(err) {
				return err
			}
			if err == nil && v.State == omi.VolumeCreating {
				return nil
			}
		}
		sp, err := s.vmSpec(tx, vm)
		spec = &sp
		return err
	}); err != nil {
		return false, ignoreMissing(err)
	}
	var startErr error
	if spec != nil {
		if startErr = s.vmDriver().Start(ctx, *spec); startErr != nil {
			s.log.Error("start VM", "vm", id, "err", startErr)
		} else {
			// A rule or link that changed while the machine started.
			s.applyForwards(ctx, id)
		}
	}
	did := false
	err := s.transition(ctx, func(tx omi.Tx) error {
		vm, err := omi.Get[omi.Vm](tx, id)
		if err != nil {
			return err
		}
		switch {
		case vm.State == omi.VmStopped && vm.ImagingFor != "":
			img, err := omi.Get[omi.Image](tx, vm.ImagingFor)
			if err == nil && img.State == omi.ImagePending {
				for _, sid := range img.SnapshotIDs() {
					if sn, err := omi.Get[omi.Snapshot](tx, sid); err == nil && sn.State == omi.SnapshotPending {
						return nil // snapshots still being taken
					}
				}
			} else if err != nil && !isNotFound(err) {
				return err
			}
			vm.State, vm.ImagingFor = omi.VmPending, ""
		case vm.State == omi.VmPending:
			for _, m := range vm.BlockDeviceMappings {
				v, err := omi.Get[omi.Volume](tx, m.Bsu.VolumeId)
				if err != nil && !isNotFound(err) {
					return err
				}
				if err == nil && v.State == omi.VolumeCreating {
					return nil
				}
			}
			switch {
			case spec == nil:
				return nil // its volumes were not ready when looked at
			case startErr != nil:
				vm.State, vm.StateReason = omi.VmStopped, "Server.InternalError: the VM could not start: "+startErr.Error()
			default:
				vm.State, vm.StateReason = omi.VmRunning, ""
			}
		default:
			return nil
		}
		did = true
		return omi.Put(tx, vm)
	})
	return did, err
}

func (s *Service) completeVolume(ctx context.Context, id string) (bool, error) {
	var v *omi.Volume
	if err := s.store.View(ctx, func(tx omi.Tx) (err error) {
		v, err = omi.Get[omi.Volume](tx, id)
		return err
	}); err != nil {
		return false, ignoreMissing(err)
	}
	state := omi.VolumeAvailable
	if s.data != nil {
		if err := s.data.CreateVolume(ctx, id, int64(v.Size)*gib, v.SnapshotId); err != nil {
			s.log.Error("create volume data", "volume", id, "err", err)
			state = omi.VolumeError
		}
	}
	did := false
	err := s.transition(ctx, func(tx omi.Tx) error {
		v, err := omi.Get[omi.Volume](tx, id)
		if err != nil || v.State != omi.VolumeCreating {
			return err
		}
		v.State, did = state, true
		if state == omi.VolumeAvailable && len(v.LinkedVolumes) > 0 {
			v.State = omi.VolumeInUse
		}
		return omi.Put(tx, v)
	})
	return did, err
}

func (s *Service) completeSnapshot(ctx context.Context, id string) (bool, error) {
	var sn *omi.Snapshot
	wait := false
	if err := s.store.View(ctx, func(tx omi.Tx) (err error) {
		if sn, err = omi.Get[omi.Snapshot](tx, id); err != nil {
			return err
		}
		wait, err = s.volumeVmStopping(tx, sn.VolumeId)
		return err
	}); err != nil {
		return false, ignoreMissing(err)
	}
	if wait {
		// CreateImage stops the VM first: its guest is still powering
		// off, and the snapshot is taken once its machine has exited.
		return false, nil
	}
	state, msg := omi.SnapshotCompleted, ""
	if s.data != nil {
		var err error
		if sn.SourceSnapshotId != "" {
			err = s.data.CopySnapshot(ctx, sn.SourceSnapshotId, id)
		} else {
			err = s.data.Snapshot(ctx, sn.VolumeId, id)
		}
		if err != nil {
			s.log.Error("snapshot data", "snapshot", id, "err", err)
			state, msg = omi.SnapshotError, err.Error()
		}
	}
	did := false
	err := s.transition(ctx, func(tx omi.Tx) error {
		sn, err := omi.Get[omi.Snapshot](tx, id)
		if err != nil || sn.State != omi.SnapshotPending {
			return err
		}
		did = true
		sn.State, sn.StateMessage = state, msg
		if state == omi.SnapshotCompleted {
			sn.Progress = 100
		}
		return omi.Put(tx, sn)
	})
	return did, err
}

// completeImage makes a pending image available once every snapshot it
// maps is completed, or failed when one is in error or gone.
func (s *Service) completeImage(ctx context.Context, id string) (bool, error) {
	did := false
	var freed []string // set only by the attempt that commits
	err := s.transition(ctx, func(tx omi.Tx) error {
		freed = nil
		img, err := omi.Get[omi.Image](tx, id)
		if err != nil || img.State != omi.ImagePending {
			return err
		}
		for _, sid := range img.SnapshotIDs() {
			sn, err := omi.Get[omi.Snapshot](tx, sid)
			switch {
			case isNotFound(err):
				img.State, did = omi.ImageFailed, true
				img.StateComment = omi.StateComment{StateCode: "Server.SnapshotMissing", StateMessage: "snapshot " + sid + " no longer exists"}
				return omi.Put(tx, img)
			case err != nil:
				return err
			case sn.State == omi.SnapshotError:
				img.State, did = omi.ImageFailed, true
				img.StateComment = omi.StateComment{StateCode: "Server.SnapshotError", StateMessage: "snapshot " + sid + ": " + sn.StateMessage}
				if sn.ImportURL != "" {
					img.StateComment.StateCode = "Server.ImportFailed"
					img.StateComment.StateMessage = "disk " + deviceOf(img, sid) + ": " + sn.StateMessage
				}
				// Wait for the other disks of an import, then drop every
				// snapshot it made: a failed import leaves nothing behind.
				for _, other := range img.SnapshotIDs() {
					if o, err := omi.Get[omi.Snapshot](tx, other); err == nil && o.State == omi.SnapshotImporting {
						did = false
						return nil
					}
				}
				gone, err := s.discardImported(tx, img)
				if err != nil {
					return err
				}
				freed = append(freed, gone...)
				img.BlockDeviceMappings = []omi.ImageBDM{}
				if err := markUsed(tx, img.ImageId, gone, false); err != nil {
					return err
				}
				return omi.Put(tx, img)
			case sn.State != omi.SnapshotCompleted:
				return nil // not yet; a later pass finishes it
			}
		}
		img.State = omi.ImageAvailable
		did = true
		return omi.Put(tx, img)
	})
	if err == nil {
		for _, sid := range freed {
			s.released(ctx, omi.KindSnapshot, sid)
		}
	}
	return did, err
}

// transition runs a state change; a resource deleted meanwhile is fine.
func (s *Service) transition(ctx context.Context, fn func(omi.Tx) error) error {
	return ignoreMissing(s.store.Update(ctx, fn))
}

func ignoreMissing(err error) error {
	if isNotFound(err) {
		return nil
	}
	return err
}

// dateRange parses the From/To creation date filters.
func dateRange(from, to string) (time.Time, time.Time, error) {
	var f, t time.Time
	var err error
	if from != "" {
		if f, err = parseDate(from); err != nil {
			return f, t, omi.Invalid(omi.CodeInvalidValue, "FromCreationDate %q is not a date", from)
		}
	}
	if to != "" {
		if t, err = parseDate(to); err != nil {
			return f, t, omi.Invalid(omi.CodeInvalidValue, "ToCreationDate %q is not a date", to)
		}
	}
	return f, t, nil
}

// inRange reports whether date lies within [from, to]; zero bounds are open.
func inRange(date string, from, to time.Time) bool {
	if from.IsZero() && to.IsZero() {
		return true
	}
	d, err := parseDate(date)
	if err != nil {
		return false
	}
	return (from.IsZero() || !d.Before(from)) && (to.IsZero() || !d.After(to))
}

// deviceOf names the device an image maps a snapshot to.
func deviceOf(img *omi.Image, snapID string) string {
	for _, m := range img.BlockDeviceMappings {
		if m.Bsu != nil && m.Bsu.SnapshotId == snapID {
			return m.DeviceName
		}
	}
	return snapID
}

// workKind reads the resource kind a work record is about.
func workKind(rec omi.Record) omi.Kind {
	var doc struct{ Kind omi.Kind }
	if json.Unmarshal(rec.Doc, &doc) == nil && doc.Kind != "" {
		return doc.Kind
	}
	k, _ := omi.KindOfID(rec.ID)
	return k
}

// queueingTx queues a work record for every write of a resource that may
// have a transition to run, in the transaction of the write, so that work
// is never lost between a commit and a crash.
type queueingTx struct{ omi.Tx }

func (q queueingTx) Put(rec omi.Record) error {
	if err := q.Tx.Put(rec); err != nil {
		return err
	}
	return queueWork(q.Tx, rec)
}

func (q queueingTx) Insert(rec omi.Record) error {
	if err := q.Tx.Insert(rec); err != nil {
		return err
	}
	return queueWork(q.Tx, rec)
}

func queueWork(tx omi.Tx, rec omi.Record) error {
	switch rec.Kind {
	case omi.KindVolume, omi.KindSnapshot, omi.KindImage, omi.KindVm, omi.KindTask:
		return tx.Put(omi.Record{Kind: omi.KindWork, ID: rec.ID, Doc: []byte(`{"Kind":"` + string(rec.Kind) + `"}`)})
	}
	return nil
}

// atRest reports whether a resource has no transition left to run.
func (s *Service) atRest(tx omi.Tx, w work) (bool, error) {
	var err error
	rest := true
	switch w.kind {
	case omi.KindVolume:
		var v *omi.Volume
		if v, err = omi.Get[omi.Volume](tx, w.id); err == nil {
			rest = v.State != omi.VolumeCreating
		}
	case omi.KindSnapshot:
		var v *omi.Snapshot
		if v, err = omi.Get[omi.Snapshot](tx, w.id); err == nil {
			rest = v.State != omi.SnapshotPending && v.State != omi.SnapshotImporting
		}
	case omi.KindImage:
		var v *omi.Image
		if v, err = omi.Get[omi.Image](tx, w.id); err == nil {
			rest = v.State != omi.ImagePending
			if rest && v.State == omi.ImageAvailable && s.inspector != nil {
				rest, err = inspected(tx, w.id)
			}
		}
	case omi.KindVm:
		var v *omi.Vm
		if v, err = omi.Get[omi.Vm](tx, w.id); err == nil {
			rest = v.State == omi.VmRunning || (v.State == omi.VmStopped && v.ImagingFor == "")
		}
	case omi.KindTask:
		var t *omi.ExportTask
		if t, err = omi.Get[omi.ExportTask](tx, w.id); err == nil {
			rest = t.Done()
		}
	}
	if isNotFound(err) {
		return true, nil
	}
	return rest, err
}

// dequeueFinished removes the work records of resources now at rest. Each
// removal re-checks in its transaction, so work queued meanwhile stays.
func (s *Service) dequeueFinished(ctx context.Context, items []work) {
	for _, w := range items {
		err := s.store.Update(ctx, func(tx omi.Tx) error {
			rest, err := s.atRest(tx, w)
			if err != nil || !rest {
				return err
			}
			return ignoreMissing(tx.Delete(omi.KindWork, w.id))
		})
		if err != nil && ctx.Err() == nil {
			s.log.Warn("dequeue work", "id", w.id, "err", err)
		}
	}
}
