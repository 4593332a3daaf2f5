package service

import (
	"context"
	"fmt"
	"slices"

	"github.com/omiproject/omi"
)

// LocalImageSpec describes a disk image file an operator publishes as an
// OMI with omi image import (omi serve stopped).
type LocalImageSpec struct {
	// AccountID owns the OMI; empty means the provider account, whose OMIs
	// are the official ones.
	AccountID string
	// Name is the OMI name, unique in the owner's account.
	Name        string
	Description string
	// Public gives every account launch permission. Provider OMIs are
	// always public.
	Public bool
	// BootModes are the firmware the disk boots with (legacy, uefi).
	BootModes []string
	// Import writes the disk into the block map of the new snapshot and
	// returns the disk's size in bytes (transfer.ImportReaderAt).
	Import func(ctx context.Context, snapshotID string) (int64, error)
}

// PublishImage imports a local disk image as an OMI and its root
// snapshot, both owned by the account. The name is checked first and the
// disk written before any record exists, so a failure leaves nothing
// visible (the written blocks become garbage for the next collection).
func (s *Service) PublishImage(ctx context.Context, spec LocalImageSpec) (*omi.Image, error) {
	if s.data == nil {
		return nil, fmt.Errorf("importing an OMI needs the data plane")
	}
	if spec.Name == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "an OMI name is required")
	}
	for _, m := range spec.BootModes {
		if m != "legacy" && m != "uefi" {
			return nil, omi.Invalid(omi.CodeInvalidValue, "boot modes must be legacy or uefi, not %q", m)
		}
	}
	var owner *omi.Account
	var err error
	if spec.AccountID == "" {
		if owner, err = s.provider(ctx); err != nil {
			return nil, err
		}
	} else {
		err = s.view(ctx, func(tx omi.Tx) error {
			a, err := omi.Get[omi.Account](tx, spec.AccountID)
			owner = a
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("account %s: %w", spec.AccountID, err)
		}
	}
	// Refuse a taken name before writing gigabytes.
	err = s.view(ctx, func(tx omi.Tx) error {
		return tx.Scan(omi.Query{Kind: omi.KindImage, Owners: []string{owner.AccountId}, Names: []string{spec.Name}, Limit: 1},
			func(omi.Record) (bool, error) {
				return false, omi.Conflict(omi.CodeDuplicateName, "an OMI named %q already exists in account %s", spec.Name, owner.AccountId)
			})
	})
	if err != nil {
		return nil, err
	}
	snapID := omi.NewID(omi.PrefixSnapshot)
	size, err := spec.Import(ctx, snapID)
	if err != nil {
		return nil, err
	}
	gibs := int((size + gib - 1) / gib)
	caller := &omi.Caller{Account: owner}
	var img *omi.Image
	err = s.update(ctx, func(tx omi.Tx) error {
		now := s.nowString()
		sn := &omi.Snapshot{AccountId: owner.AccountId, AccountAlias: owner.Alias, SnapshotId: snapID, CreationDate: now,
			Description: "Root disk of " + spec.Name, State: omi.SnapshotCompleted, Progress: 100,
			VolumeId: "vol-00000000", VolumeSize: gibs, SizeBytes: size}
		if err := omi.Insert(tx, sn); err != nil {
			return err
		}
		del := true
		img = s.newImage(caller, &CreateImageRequest{ImageName: spec.Name, Description: spec.Description,
			BootModes: slices.Clone(spec.BootModes)})
		img.State = omi.ImageAvailable
		img.PermissionsToLaunch.GlobalPermission = spec.Public || owner.Provider
		img.BlockDeviceMappings = []omi.ImageBDM{{DeviceName: omi.RootDeviceName, Bsu: &omi.BsuImage{SnapshotId: snapID,
			VolumeSize: &gibs, VolumeType: omi.VolumeStandard, DeleteOnVmDeletion: &del}}}
		if err := insertImage(tx, img); err != nil {
			return err
		}
		if owner.Provider {
			img.FileLocation = owner.Alias + "/" + img.ImageName
			return omi.Put(tx, img)
		}
		return nil
	})
	if err != nil {
		s.data.Delete(context.WithoutCancel(ctx), snapID)
		return nil, err
	}
	s.kickNow()
	return img, nil
}
