package service

import (
	"context"
	"slices"
	"strings"

	"github.com/omiproject/omi"
)

const gib = 1 << 30

type CreateSnapshotRequest struct {
	Base
	ClientToken      string `json:"ClientToken"`
	Description      string `json:"Description"`
	FileLocation     string `json:"FileLocation"`
	SnapshotSize     *int64 `json:"SnapshotSize"`
	SourceRegionName string `json:"SourceRegionName"`
	SourceSnapshotId string `json:"SourceSnapshotId"`
	VolumeId         string `json:"VolumeId"`
}
type CreateSnapshotResponse struct {
	Snapshot *omi.Snapshot `json:"Snapshot"`
}

// CreateSnapshot freezes the content of a volume, or copies a snapshot the
// caller may use into the caller's account. Both cost metadata only: the
// new snapshot shares the blocks of its source.
func (s *Service) CreateSnapshot(ctx context.Context, c *omi.Caller, in *CreateSnapshotRequest) (*CreateSnapshotResponse, error) {
	modes := 0
	for _, set := range []bool{in.VolumeId != "", in.SourceSnapshotId != "", in.FileLocation != ""} {
		if set {
			modes++
		}
	}
	if modes != 1 {
		return nil, omi.Invalid(omi.CodeInvalidParamSet, "give exactly one of VolumeId, SourceSnapshotId (with SourceRegionName) or FileLocation (with SnapshotSize)")
	}
	if len(in.Description) > omi.MaxDescription {
		return nil, omi.Invalid(omi.CodeValueLength, "Description must be at most %d characters", omi.MaxDescription)
	}
	if in.FileLocation != "" {
		return s.importSnapshot(ctx, c, in)
	}
	if in.SourceSnapshotId != "" && in.SourceRegionName != s.cfg.Region {
		return nil, s.regionError(in.SourceRegionName)
	}
	snap := &omi.Snapshot{AccountId: c.AccountID(), AccountAlias: c.Account.Alias, SnapshotId: omi.NewID(omi.PrefixSnapshot),
		ClientToken: in.ClientToken, CreationDate: s.nowString(), Description: in.Description, State: omi.SnapshotPending}
	var copied bool
	err := s.update(ctx, func(tx omi.Tx) error {
		if in.ClientToken != "" {
			prev, err := s.snapshotByToken(tx, c, in.ClientToken)
			if err != nil || prev != nil {
				snap, copied = prev, true
				return err
			}
		}
		if in.VolumeId != "" {
			v, err := s.ownVolume(tx, c, in.VolumeId)
			if err != nil {
				return err
			}
			if v.State != omi.VolumeAvailable && v.State != omi.VolumeInUse {
				return omi.BadState(omi.CodeInvalidVolState, "volume %s is %s", v.VolumeId, v.State)
			}
			snap.VolumeId, snap.VolumeSize, snap.SizeBytes = v.VolumeId, v.Size, int64(v.Size)*gib
		} else {
			src, err := s.visibleSnapshot(tx, c, in.SourceSnapshotId)
			if err != nil {
				return err
			}
			if src.State != omi.SnapshotCompleted {
				return omi.BadState(omi.CodeInvalidState, "snapshot %s is %s, not completed", src.SnapshotId, src.State)
			}
			// A copy names no volume: the real cloud shows VolumeId ""
			// for it (the provider's recorded snapshot/TF-131 and
			// snapshot_copy/TF-133); its data comes from the source.
			snap.VolumeSize, snap.SizeBytes = src.VolumeSize, src.SizeBytes
			snap.SourceSnapshotId = src.SnapshotId
			if in.Description == "" {
				snap.Description = src.Description
			}
		}
		return insertNew(tx, snap, func() { snap.SnapshotId = omi.NewID(omi.PrefixSnapshot) })
	})
	if err != nil {
		return nil, err
	}
	if !copied {
		s.enqueue(ctx, omi.KindSnapshot, snap.SnapshotId)
	}
	return &CreateSnapshotResponse{Snapshot: snap.ForWire()}, nil
}

// regionError refuses a source region other than this one: copies stay in
// one region; crossing regions goes through export and import.
func (s *Service) regionError(name string) error {
	if name == "" {
		return omi.Invalid(omi.CodeInvalidParameter, "SourceRegionName is required when copying")
	}
	return omi.Invalid(omi.CodeInvalidValue, "SourceRegionName %q is not this region (%s): copies are made within a region; to copy across regions, export to a bucket and import the manifest", name, s.cfg.Region)
}

func (s *Service) snapshotByToken(tx omi.Tx, c *omi.Caller, token string) (*omi.Snapshot, error) {
	var found *omi.Snapshot
	err := omi.Scan(tx, omi.Query{Owners: []string{c.AccountID()}}, func(v *omi.Snapshot) (bool, error) {
		if v.ClientToken == token {
			found = v
			return false, nil
		}
		return true, nil
	})
	return found, err
}

func snapshotNotFound(id string) error {
	return omi.NotFound(omi.CodeNoSuchSnapshot, "The SnapshotId '%s' doesn't exist.", id)
}

// visibleSnapshot loads a snapshot the caller owns or may create volumes
// from; any other is reported as missing.
func (s *Service) visibleSnapshot(tx omi.Tx, c *omi.Caller, id string) (*omi.Snapshot, error) {
	snap, err := omi.Get[omi.Snapshot](tx, id)
	if isNotFound(err) || (err == nil && !snap.PermissionsToCreateVolume.Allows(snap.AccountId, c.AccountID())) {
		return nil, snapshotNotFound(id)
	}
	return snap, err
}

// ownSnapshot loads a snapshot for a change: missing or invisible ones are
// not found, visible ones of another account are refused.
func (s *Service) ownSnapshot(tx omi.Tx, c *omi.Caller, id string) (*omi.Snapshot, error) {
	snap, err := s.visibleSnapshot(tx, c, id)
	if err != nil {
		return nil, err
	}
	if snap.AccountId != c.AccountID() {
		return nil, notOwner("snapshot", id)
	}
	return snap, nil
}

// notOwner refuses a change to a resource the caller can see but does not
// own (shared or public).
func notOwner(what, id string) error {
	return omi.Errorf(omi.CodeNotAuthorized, omi.TypeAccessDenied, "You are not the owner of %s %s.", what, id)
}

type FiltersSnapshot struct {
	tagFilter
	AccountAliases                            []string `json:"AccountAliases"`
	AccountIds                                []string `json:"AccountIds"`
	ClientTokens                              []string `json:"ClientTokens"`
	Descriptions                              []string `json:"Descriptions"`
	FromCreationDate                          string   `json:"FromCreationDate"`
	ToCreationDate                            string   `json:"ToCreationDate"`
	PermissionsToCreateVolumeAccountIds       []string `json:"PermissionsToCreateVolumeAccountIds"`
	PermissionsToCreateVolumeGlobalPermission *bool    `json:"PermissionsToCreateVolumeGlobalPermission"`
	Progresses                                []int    `json:"Progresses"`
	SnapshotIds                               []string `json:"SnapshotIds"`
	States                                    []string `json:"States"`
	VolumeIds                                 []string `json:"VolumeIds"`
	VolumeSizes                               []int    `json:"VolumeSizes"`
}

type ReadSnapshotsRequest struct {
	Base
	Paging
	Filters *FiltersSnapshot `json:"Filters"`
}
type ReadSnapshotsResponse struct {
	Snapshots     []*omi.Snapshot `json:"Snapshots"`
	NextPageToken string          `json:"NextPageToken,omitempty"`
}

// ReadSnapshots lists the snapshots the caller owns or may create volumes
// from (shared with it or public).
func (s *Service) ReadSnapshots(ctx context.Context, c *omi.Caller, in *ReadSnapshotsRequest) (*ReadSnapshotsResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersSnapshot{}
	}
	from, to, err := dateRange(f.FromCreationDate, f.ToCreationDate)
	if err != nil {
		return nil, err
	}
	me := c.AccountID()
	keep := func(sn *omi.Snapshot) bool {
		perms := sn.PermissionsToCreateVolume
		return anyOf(f.AccountAliases, sn.AccountAlias) && anyOf(f.AccountIds, sn.AccountId) &&
			anyOf(f.ClientTokens, sn.ClientToken) && anyOf(f.Descriptions, sn.Description) &&
			anyOf(f.Progresses, sn.Progress) && anyOf(f.States, sn.State) && anyOf(f.VolumeIds, sn.VolumeId) &&
			anyOf(f.VolumeSizes, sn.VolumeSize) && f.tagFilter.match(sn.Tags) &&
			(f.PermissionsToCreateVolumeGlobalPermission == nil || *f.PermissionsToCreateVolumeGlobalPermission == perms.GlobalPermission) &&
			(len(f.PermissionsToCreateVolumeAccountIds) == 0 || (sn.AccountId == me && intersects(f.PermissionsToCreateVolumeAccountIds, perms.AccountIds))) &&
			inRange(sn.CreationDate, from, to)
	}
	out, next, err := readPage[omi.Snapshot](ctx, s, omi.Query{VisibleTo: me, IDs: f.SnapshotIds, Owners: f.AccountIds},
		in.Paging, omi.PrefixSnapshot, keep)
	if err != nil {
		return nil, err
	}
	for i, sn := range out {
		out[i] = hideShares(sn.ForWire(), me)
	}
	return &ReadSnapshotsResponse{Snapshots: out, NextPageToken: next}, nil
}

// hideShares removes the list of accounts a snapshot is shared with when the
// reader is not its owner: one account must not learn another's partners.
func hideShares(sn *omi.Snapshot, reader string) *omi.Snapshot {
	if sn.AccountId != reader {
		sn.PermissionsToCreateVolume.AccountIds = []string{}
	}
	return sn
}

type UpdateSnapshotRequest struct {
	Base
	PermissionsToCreateVolume *omi.PermissionsChange `json:"PermissionsToCreateVolume"`
	SnapshotId                string                 `json:"SnapshotId"`
}
type UpdateSnapshotResponse struct {
	Snapshot *omi.Snapshot `json:"Snapshot"`
}

// UpdateSnapshot shares a snapshot with accounts or everyone, or stops
// sharing it.
func (s *Service) UpdateSnapshot(ctx context.Context, c *omi.Caller, in *UpdateSnapshotRequest) (*UpdateSnapshotResponse, error) {
	if in.SnapshotId == "" || in.PermissionsToCreateVolume == nil {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "SnapshotId and PermissionsToCreateVolume are required")
	}
	if err := checkPermissionsChange(in.PermissionsToCreateVolume); err != nil {
		return nil, err
	}
	var snap *omi.Snapshot
	err := s.update(ctx, func(tx omi.Tx) error {
		var err error
		if snap, err = s.ownSnapshot(tx, c, in.SnapshotId); err != nil {
			return err
		}
		snap.PermissionsToCreateVolume = snap.PermissionsToCreateVolume.Apply(*in.PermissionsToCreateVolume)
		return omi.Put(tx, snap)
	})
	if err != nil {
		return nil, err
	}
	return &UpdateSnapshotResponse{Snapshot: snap.ForWire()}, nil
}

// checkPermissionsChange validates the account ids of a permissions change.
func checkPermissionsChange(p *omi.PermissionsChange) error {
	for _, perms := range []*omi.Permissions{p.Additions, p.Removals} {
		if perms == nil {
			continue
		}
		for _, id := range perms.AccountIds {
			if !omi.ValidAccountID(id) {
				return omi.Invalid("4050", "account id %q is not 12 digits", id)
			}
		}
	}
	return nil
}

type DeleteSnapshotRequest struct {
	Base
	SnapshotId string `json:"SnapshotId"`
}
type DeleteSnapshotResponse struct{}

// DeleteSnapshot deletes a snapshot no OMI uses.
func (s *Service) DeleteSnapshot(ctx context.Context, c *omi.Caller, in *DeleteSnapshotRequest) (*DeleteSnapshotResponse, error) {
	if in.SnapshotId == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "SnapshotId is required")
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		snap, err := s.ownSnapshot(tx, c, in.SnapshotId)
		if err != nil {
			return err
		}
		user, err := snapshotUser(tx, snap)
		if err != nil {
			return err
		}
		if user != "" {
			return omi.Conflict(omi.CodeDeviceInUse, "snapshot %s is used by OMI %s; delete the OMI first", snap.SnapshotId, user)
		}
		return retire(tx, omi.KindSnapshot, snap.SnapshotId)
	})
	if err != nil {
		return nil, err
	}
	s.released(ctx, omi.KindSnapshot, in.SnapshotId)
	return &DeleteSnapshotResponse{}, nil
}

// markUsed records (or forgets) that image uses each of snapshot ids, as
// one KindSnapshotUse record per pair, so that the cost of registering an
// OMI does not grow with the number of OMIs of its snapshot. Snapshots
// written by an older omi list their OMIs in UsedBy; an OMI leaving such
// a list is removed from it.
func markUsed(tx omi.Tx, imageID string, snapIDs []string, used bool) error {
	for _, id := range snapIDs {
		rec := omi.Record{Kind: omi.KindSnapshotUse, ID: id + "/" + imageID, Doc: []byte("{}")}
		if used {
			if _, err := tx.Get(omi.KindSnapshot, id); isNotFound(err) {
				continue
			} else if err != nil {
				return err
			}
			if err := tx.Put(rec); err != nil {
				return err
			}
			continue
		}
		if err := tx.Delete(rec.Kind, rec.ID); err != nil && !isNotFound(err) {
			return err
		}
		snap, err := omi.Get[omi.Snapshot](tx, id)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		if slices.Contains(snap.UsedBy, imageID) {
			snap.UsedBy = slices.DeleteFunc(snap.UsedBy, func(x string) bool { return x == imageID })
			if err := omi.Put(tx, snap); err != nil {
				return err
			}
		}
	}
	return nil
}

// snapshotUser returns an OMI that uses snap, or "" if none does: the
// first use record in id order after "<snapshot id>/", found by index.
func snapshotUser(tx omi.Tx, snap *omi.Snapshot) (string, error) {
	if len(snap.UsedBy) > 0 {
		return snap.UsedBy[0], nil
	}
	prefix := snap.SnapshotId + "/"
	user := ""
	err := tx.Scan(omi.Query{Kind: omi.KindSnapshotUse, AfterID: prefix, Limit: 1}, func(r omi.Record) (bool, error) {
		if img, ok := strings.CutPrefix(r.ID, prefix); ok {
			user = img
		}
		return false, nil
	})
	return user, err
}
