package service

import (
	"context"

	"github.com/omiproject/omi"
)

type CreateVolumeRequest struct {
	Base
	ClientToken   string `json:"ClientToken"`
	Iops          *int   `json:"Iops"`
	Size          *int   `json:"Size"`
	SnapshotId    string `json:"SnapshotId"`
	SubregionName string `json:"SubregionName"`
	VolumeType    string `json:"VolumeType"`
}
type CreateVolumeResponse struct {
	Volume *omi.Volume `json:"Volume"`
}

// CreateVolume creates an empty volume of Size GiB, or one that starts with
// the content of SnapshotId. The volume is creating, then available.
func (s *Service) CreateVolume(ctx context.Context, c *omi.Caller, in *CreateVolumeRequest) (*CreateVolumeResponse, error) {
	if in.SubregionName == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "SubregionName is required")
	}
	if !s.validSubregion(in.SubregionName) {
		return nil, omi.NotFound(omi.CodeNoSuchAZ, "The SubregionName '%s' doesn't exist in region %s.", in.SubregionName, s.cfg.Region)
	}
	if in.Size == nil && in.SnapshotId == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "Size is required when SnapshotId is not given")
	}
	vtype := in.VolumeType
	if vtype == "" {
		vtype = omi.VolumeStandard
	}
	v := &omi.Volume{AccountId: c.AccountID(), VolumeId: omi.NewID(omi.PrefixVolume), ClientToken: in.ClientToken,
		CreationDate: s.nowString(), SubregionName: in.SubregionName, VolumeType: vtype,
		State: omi.VolumeCreating, SnapshotId: in.SnapshotId}
	err := s.update(ctx, func(tx omi.Tx) error {
		if in.ClientToken != "" {
			if prev, err := s.volumeByToken(tx, c, in.ClientToken); err != nil || prev != nil {
				v = prev
				return err
			}
		}
		size := 0
		if in.Size != nil {
			size = *in.Size
		}
		if in.SnapshotId != "" {
			snap, err := s.visibleSnapshot(tx, c, in.SnapshotId)
			if err != nil {
				return err
			}
			if snap.State != omi.SnapshotCompleted {
				return omi.BadState(omi.CodeInvalidState, "snapshot %s is %s, not completed", snap.SnapshotId, snap.State)
			}
			if in.Size == nil {
				size = snap.VolumeSize
			} else if size < snap.VolumeSize {
				return omi.Invalid(omi.CodeTooSmallVolume, "Size %d GiB is smaller than snapshot %s (%d GiB)", size, snap.SnapshotId, snap.VolumeSize)
			}
		}
		if e := omi.CheckVolumeSpec(vtype, size, in.Iops); e != nil {
			return e
		}
		v.Size = size
		if in.Iops != nil {
			v.Iops = *in.Iops
		}
		return insertNew(tx, v, func() { v.VolumeId = omi.NewID(omi.PrefixVolume) })
	})
	if err != nil {
		return nil, err
	}
	s.enqueue(ctx, omi.KindVolume, v.VolumeId)
	v.Normalize()
	return &CreateVolumeResponse{Volume: v}, nil
}

// volumeByToken finds the caller's volume created with a client token, so
// that a retried CreateVolume returns it instead of making another.
func (s *Service) volumeByToken(tx omi.Tx, c *omi.Caller, token string) (*omi.Volume, error) {
	var found *omi.Volume
	err := omi.Scan(tx, omi.Query{Owners: []string{c.AccountID()}}, func(v *omi.Volume) (bool, error) {
		if v.ClientToken == token {
			found = v
			return false, nil
		}
		return true, nil
	})
	return found, err
}

// ownVolume loads a volume owned by the caller; other accounts' volumes are
// reported exactly like missing ones.
func (s *Service) ownVolume(tx omi.Tx, c *omi.Caller, id string) (*omi.Volume, error) {
	v, err := omi.Get[omi.Volume](tx, id)
	if isNotFound(err) || (err == nil && v.AccountId != c.AccountID()) {
		return nil, omi.NotFound(omi.CodeNoSuchVolume, "The VolumeId '%s' doesn't exist.", id)
	}
	return v, err
}

type FiltersVolume struct {
	tagFilter
	ClientTokens                 []string `json:"ClientTokens"`
	CreationDates                []string `json:"CreationDates"`
	LinkVolumeDeleteOnVmDeletion *bool    `json:"LinkVolumeDeleteOnVmDeletion"`
	LinkVolumeDeviceNames        []string `json:"LinkVolumeDeviceNames"`
	LinkVolumeLinkDates          []string `json:"LinkVolumeLinkDates"`
	LinkVolumeLinkStates         []string `json:"LinkVolumeLinkStates"`
	LinkVolumeVmIds              []string `json:"LinkVolumeVmIds"`
	SnapshotIds                  []string `json:"SnapshotIds"`
	SubregionNames               []string `json:"SubregionNames"`
	VolumeIds                    []string `json:"VolumeIds"`
	VolumeSizes                  []int    `json:"VolumeSizes"`
	VolumeStates                 []string `json:"VolumeStates"`
	VolumeTypes                  []string `json:"VolumeTypes"`
}

func (f *FiltersVolume) match(v *omi.Volume) bool {
	if !anyOf(f.ClientTokens, v.ClientToken) || !anyOf(f.SnapshotIds, v.SnapshotId) ||
		!anyOf(f.SubregionNames, v.SubregionName) || !anyOf(f.VolumeSizes, v.Size) ||
		!anyOf(f.VolumeStates, v.State) || !anyOf(f.VolumeTypes, v.VolumeType) || !f.tagFilter.match(v.Tags) {
		return false
	}
	if len(f.CreationDates) > 0 && !matchDates(f.CreationDates, v.CreationDate) {
		return false
	}
	needLink := f.LinkVolumeDeleteOnVmDeletion != nil || len(f.LinkVolumeDeviceNames) > 0 ||
		len(f.LinkVolumeLinkStates) > 0 || len(f.LinkVolumeVmIds) > 0 || len(f.LinkVolumeLinkDates) > 0
	if !needLink {
		return true
	}
	for _, l := range v.LinkedVolumes {
		if (f.LinkVolumeDeleteOnVmDeletion == nil || *f.LinkVolumeDeleteOnVmDeletion == l.DeleteOnVmDeletion) &&
			anyOf(f.LinkVolumeDeviceNames, l.DeviceName) && anyOf(f.LinkVolumeLinkStates, l.State) &&
			anyOf(f.LinkVolumeVmIds, l.VmId) {
			return true
		}
	}
	return false
}

// matchDates compares dates at the precision the filter gives: a date-only
// filter matches any time that day.
func matchDates(filters []string, date string) bool {
	for _, f := range filters {
		if len(f) <= len(date) && date[:len(f)] == f {
			return true
		}
		if t1, err := parseDate(f); err == nil {
			if t2, err := parseDate(date); err == nil && t1.Equal(t2) {
				return true
			}
		}
	}
	return false
}

type ReadVolumesRequest struct {
	Base
	Paging
	Filters *FiltersVolume `json:"Filters"`
}
type ReadVolumesResponse struct {
	Volumes       []*omi.Volume `json:"Volumes"`
	NextPageToken string        `json:"NextPageToken,omitempty"`
}

// ReadVolumes lists the caller's volumes.
func (s *Service) ReadVolumes(ctx context.Context, c *omi.Caller, in *ReadVolumesRequest) (*ReadVolumesResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersVolume{}
	}
	out, next, err := readPage[omi.Volume](ctx, s, omi.Query{Owners: []string{c.AccountID()}, IDs: f.VolumeIds},
		in.Paging, omi.PrefixVolume, f.match)
	if err != nil {
		return nil, err
	}
	for _, v := range out {
		v.Normalize()
	}
	return &ReadVolumesResponse{Volumes: out, NextPageToken: next}, nil
}

type UpdateVolumeRequest struct {
	Base
	Iops       *int   `json:"Iops"`
	Size       *int   `json:"Size"`
	VolumeId   string `json:"VolumeId"`
	VolumeType string `json:"VolumeType"`
}
type UpdateVolumeResponse struct {
	Volume *omi.Volume `json:"Volume"`
}

// UpdateVolume grows a volume or changes its type and IOPS. The change is
// applied at once: growing a volume only extends its block map.
func (s *Service) UpdateVolume(ctx context.Context, c *omi.Caller, in *UpdateVolumeRequest) (*UpdateVolumeResponse, error) {
	if in.VolumeId == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "VolumeId is required")
	}
	var v *omi.Volume
	err := s.update(ctx, func(tx omi.Tx) error {
		var err error
		if v, err = s.ownVolume(tx, c, in.VolumeId); err != nil {
			return err
		}
		if v.State != omi.VolumeAvailable && v.State != omi.VolumeInUse {
			return omi.BadState(omi.CodeInvalidVolState, "volume %s is %s", v.VolumeId, v.State)
		}
		size, vtype, iops := v.Size, v.VolumeType, in.Iops
		if in.Size != nil {
			if *in.Size < v.Size {
				return omi.Invalid(omi.CodeInvalidVolumeSize, "Size %d GiB is smaller than the current %d GiB; volumes only grow", *in.Size, v.Size)
			}
			size = *in.Size
		}
		if in.VolumeType != "" {
			vtype = in.VolumeType
		}
		if iops == nil && vtype == omi.VolumeIO1 && v.Iops > 0 {
			iops = &v.Iops
		}
		if e := omi.CheckVolumeSpec(vtype, size, iops); e != nil {
			return e
		}
		v.Size, v.VolumeType, v.Iops = size, vtype, 0
		if iops != nil {
			v.Iops = *iops
		}
		return omi.Put(tx, v)
	})
	if err != nil {
		return nil, err
	}
	if s.data != nil && !omi.IsDryRun(ctx) {
		// The record already holds the new size. Should growing the map
		// fail, the caller gets an error and retrying UpdateVolume with the
		// same size grows it: ResizeVolume is idempotent.
		if err := s.data.ResizeVolume(ctx, v.VolumeId, int64(v.Size)*gib); err != nil {
			s.log.Error("resize volume data", "volume", v.VolumeId, "err", err)
			return nil, omi.Internal(err)
		}
	}
	v.Normalize()
	return &UpdateVolumeResponse{Volume: v}, nil
}

type DeleteVolumeRequest struct {
	Base
	VolumeId string `json:"VolumeId"`
}
type DeleteVolumeResponse struct{}

// DeleteVolume deletes a volume that is not attached to a VM.
func (s *Service) DeleteVolume(ctx context.Context, c *omi.Caller, in *DeleteVolumeRequest) (*DeleteVolumeResponse, error) {
	if in.VolumeId == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "VolumeId is required")
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		v, err := s.ownVolume(tx, c, in.VolumeId)
		if err != nil {
			return err
		}
		if len(v.LinkedVolumes) > 0 {
			return omi.BadState(omi.CodeInvalidVolState, "volume %s is attached to VM %s; unlink it first", v.VolumeId, v.LinkedVolumes[0].VmId)
		}
		if v.State != omi.VolumeAvailable && v.State != omi.VolumeError {
			return omi.BadState(omi.CodeInvalidVolState, "volume %s is %s; only available volumes can be deleted", v.VolumeId, v.State)
		}
		return retire(tx, omi.KindVolume, v.VolumeId)
	})
	if err != nil {
		return nil, err
	}
	s.released(ctx, omi.KindVolume, in.VolumeId)
	return &DeleteVolumeResponse{}, nil
}
