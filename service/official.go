package service

import (
	"context"
	"fmt"
	"strings"

	"github.com/omiproject/omi"
)

// SupersededTag marks an official OMI replaced by a newer version. Its
// value is the id of the newer OMI. Superseded OMIs stay launchable by id
// but ReadImages lists them only when asked for by ImageIds, as the real
// cloud keeps old official OMIs usable without advertising them.
const SupersededTag = "omi:superseded-by"

// OfficialSpec describes a version of an official OMI to publish.
type OfficialSpec struct {
	// Family is the name prefix shared by every version (Debian-12); the
	// published name adds the date and a build number.
	Family       string
	Description  string
	ProductCodes []string
	SizeBytes    int64
	// Fill writes the root disk into a fresh, zeroed volume.
	Fill func(ctx context.Context, volumeID string) error
	// Import, when set, replaces Fill and SizeBytes: it writes the root
	// disk straight into the block map of the new snapshot (for instance a
	// built qcow2 file, through transfer.ImportReaderAt) and returns the
	// disk's size in bytes.
	Import func(ctx context.Context, snapshotID string) (int64, error)
	// BootModes are the firmware the disk boots with (legacy, uefi); empty
	// means both, as the real cloud's official OMIs list.
	BootModes []string
	// Tags are set on the published OMI, e.g. OfficialSourceTag.
	Tags []omi.Tag
}

// OfficialSourceTag records, on an official OMI published from a built
// image file, "built:" and the file's SHA-256, so that omi serve publishes
// a new version only when a different file is available.
const OfficialSourceTag = "omi:source"

// provider returns the account that owns official OMIs.
func (s *Service) provider(ctx context.Context) (*omi.Account, error) {
	var out *omi.Account
	err := s.view(ctx, func(tx omi.Tx) error {
		return omi.Scan(tx, omi.Query{}, func(a *omi.Account) (bool, error) {
			if a.Provider {
				out = a
				return false, nil
			}
			return true, nil
		})
	})
	if err == nil && out == nil {
		err = fmt.Errorf("no provider account is configured")
	}
	return out, err
}

// HasOfficial reports whether the provider owns any version of a family.
func (s *Service) HasOfficial(ctx context.Context, family string) (bool, error) {
	p, err := s.provider(ctx)
	if err != nil {
		return false, err
	}
	found := false
	err = s.view(ctx, func(tx omi.Tx) error {
		return tx.Scan(omi.Query{Kind: omi.KindImage, Owners: []string{p.AccountId}, NamePatterns: []string{family + "-*"}, Limit: 1},
			func(omi.Record) (bool, error) { found = true; return false, nil })
	})
	return found, err
}

// LatestOfficial returns the current version of an official family: the
// provider's OMI named family-YYYY.MM.DD-N that no newer version
// superseded, or nil when there is none.
func (s *Service) LatestOfficial(ctx context.Context, family string) (*omi.Image, error) {
	p, err := s.provider(ctx)
	if err != nil {
		return nil, err
	}
	var out *omi.Image
	err = s.view(ctx, func(tx omi.Tx) error {
		return omi.Scan(tx, omi.Query{Owners: []string{p.AccountId}, NamePatterns: []string{family + "-*"}}, func(img *omi.Image) (bool, error) {
			if isVersionOf(img.ImageName, family) && !hasTag(img.Tags, SupersededTag) &&
				(out == nil || img.CreationDate > out.CreationDate) {
				out = img
			}
			return true, nil
		})
	})
	return out, err
}

// PublishOfficial builds a new version of an official OMI, owned by the
// provider account and public: a new id and a dated name; the previous
// versions of the family are tagged as superseded (still launchable by
// id). The disk is written before any record exists, so a failure leaves
// nothing visible.
func (s *Service) PublishOfficial(ctx context.Context, spec OfficialSpec) (*omi.Image, error) {
	if s.data == nil {
		return nil, fmt.Errorf("publishing an official OMI needs the data plane")
	}
	p, err := s.provider(ctx)
	if err != nil {
		return nil, err
	}
	snapID := omi.NewID(omi.PrefixSnapshot)
	var size int64
	if spec.Import != nil {
		if size, err = spec.Import(ctx, snapID); err != nil {
			return nil, fmt.Errorf("import %s disk: %w", spec.Family, err)
		}
	} else {
		size = (spec.SizeBytes + gib - 1) / gib * gib
		tmp := omi.NewID(omi.PrefixVolume)
		if err := s.data.CreateVolume(ctx, tmp, size, ""); err != nil {
			return nil, err
		}
		defer s.data.Delete(context.WithoutCancel(ctx), tmp)
		if err := spec.Fill(ctx, tmp); err != nil {
			return nil, fmt.Errorf("build %s disk: %w", spec.Family, err)
		}
		if err := s.data.Snapshot(ctx, tmp, snapID); err != nil {
			return nil, err
		}
	}
	caller := &omi.Caller{Account: p}
	date := s.now().UTC().Format("2006.01.02")
	gibs := int((size + gib - 1) / gib)
	var img *omi.Image
	err = s.update(ctx, func(tx omi.Tx) error {
		build := 0
		if err := tx.Scan(omi.Query{Kind: omi.KindImage, Owners: []string{p.AccountId}, NamePatterns: []string{spec.Family + "-" + date + "-*"}},
			func(omi.Record) (bool, error) { build++; return true, nil }); err != nil {
			return err
		}
		now := s.nowString()
		sn := &omi.Snapshot{AccountId: p.AccountId, AccountAlias: p.Alias, SnapshotId: snapID, CreationDate: now,
			Description: "Root disk of " + spec.Family, State: omi.SnapshotCompleted, Progress: 100,
			VolumeId: "vol-00000000", VolumeSize: gibs, SizeBytes: size}
		if err := omi.Insert(tx, sn); err != nil {
			return err
		}
		del := true
		img = s.newImage(caller, &CreateImageRequest{ImageName: fmt.Sprintf("%s-%s-%d", spec.Family, date, build),
			Description: spec.Description, ProductCodes: spec.ProductCodes})
		img.State = omi.ImageAvailable
		// The real cloud's official OMIs accept uefi (their BootModes list
		// it, alone or with legacy: the provider's recorded states), and
		// users write boot_mode = "uefi" against them; legacy stays first
		// so that a VM without BootMode keeps booting legacy.
		img.BootModes = []string{"legacy", "uefi"}
		if len(spec.BootModes) > 0 {
			img.BootModes = append([]string(nil), spec.BootModes...)
		}
		for _, t := range spec.Tags {
			img.Tags = omi.SetTag(img.Tags, t.Key, t.Value)
		}
		img.PermissionsToLaunch.GlobalPermission = true
		img.BlockDeviceMappings = []omi.ImageBDM{{DeviceName: omi.RootDeviceName, Bsu: &omi.BsuImage{SnapshotId: snapID,
			VolumeSize: &gibs, VolumeType: omi.VolumeStandard, DeleteOnVmDeletion: &del}}}
		if err := insertImage(tx, img); err != nil {
			return err
		}
		img.FileLocation = p.Alias + "/" + img.ImageName
		if err := omi.Put(tx, img); err != nil {
			return err
		}
		// Supersede the previous versions of the family.
		return omi.Scan(tx, omi.Query{Owners: []string{p.AccountId}, NamePatterns: []string{spec.Family + "-*"}}, func(old *omi.Image) (bool, error) {
			if old.ImageId == img.ImageId || !isVersionOf(old.ImageName, spec.Family) || hasTag(old.Tags, SupersededTag) {
				return true, nil
			}
			old.Tags = omi.SetTag(old.Tags, SupersededTag, img.ImageId)
			return true, omi.Put(tx, old)
		})
	})
	if err != nil {
		s.data.Delete(context.WithoutCancel(ctx), snapID)
		return nil, err
	}
	s.kickNow()
	return img, nil
}

// isVersionOf reports whether name is family-YYYY.MM.DD-N.
func isVersionOf(name, family string) bool {
	rest, ok := strings.CutPrefix(name, family+"-")
	if !ok || len(rest) < len("2006.01.02-0") {
		return false
	}
	return rest[4] == '.' && rest[7] == '.' && rest[10] == '-'
}

func hasTag(tags []omi.Tag, key string) bool {
	for _, t := range tags {
		if t.Key == key {
			return true
		}
	}
	return false
}
