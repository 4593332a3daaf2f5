package service

import (
	"context"
	"fmt"
	"slices"

	"github.com/omiproject/omi"
)

type CreateImageRequest struct {
	Base
	Architecture        string         `json:"Architecture"`
	BlockDeviceMappings []omi.ImageBDM `json:"BlockDeviceMappings"`
	BootModes           []string       `json:"BootModes"`
	Description         string         `json:"Description"`
	FileLocation        string         `json:"FileLocation"`
	ImageName           string         `json:"ImageName"`
	NoReboot            bool           `json:"NoReboot"`
	ProductCodes        []string       `json:"ProductCodes"`
	RootDeviceName      string         `json:"RootDeviceName"`
	SourceImageId       string         `json:"SourceImageId"`
	SourceRegionName    string         `json:"SourceRegionName"`
	TpmMandatory        bool           `json:"TpmMandatory"`
	VmId                string         `json:"VmId"`
}
type CreateImageResponse struct {
	Image *omi.Image `json:"Image"`
}

// CreateImage makes an OMI in one of four modes, chosen by which fields are
// set: VmId (from a VM), SourceImageId (a copy), FileLocation (an import
// from a bucket) or BlockDeviceMappings + RootDeviceName (registration
// from snapshots). Mixing modes is refused.
func (s *Service) CreateImage(ctx context.Context, c *omi.Caller, in *CreateImageRequest) (*CreateImageResponse, error) {
	modes := 0
	for _, set := range []bool{in.VmId != "", in.SourceImageId != "", in.FileLocation != "",
		len(in.BlockDeviceMappings) > 0 || in.RootDeviceName != ""} {
		if set {
			modes++
		}
	}
	if modes != 1 {
		return nil, omi.Invalid(omi.CodeInvalidParamSet, "give exactly one of VmId, SourceImageId (with SourceRegionName), FileLocation, or BlockDeviceMappings with RootDeviceName")
	}
	if err := s.checkImageCommon(in); err != nil {
		return nil, err
	}
	if err := s.checkProductCodes(c, in.ProductCodes); err != nil {
		return nil, err
	}
	switch {
	case in.VmId != "":
		return s.createImageFromVm(ctx, c, in)
	case in.SourceImageId != "":
		return s.copyImage(ctx, c, in)
	case in.FileLocation != "":
		return s.importImage(ctx, c, in)
	}
	return s.registerImage(ctx, c, in)
}

// checkImageCommon validates the fields shared by every mode.
func (s *Service) checkImageCommon(in *CreateImageRequest) error {
	if in.ImageName != "" && !omi.ValidImageName(in.ImageName) {
		return omi.Invalid(omi.CodeInvalidImageName, "ImageName must be 3 to 128 characters among letters, digits, spaces and _()/.-")
	}
	if len(in.Description) > omi.MaxDescription {
		return omi.Invalid(omi.CodeValueLength, "Description must be at most %d characters", omi.MaxDescription)
	}
	if in.Architecture != "" && in.Architecture != "x86_64" && in.Architecture != "i386" {
		return omi.Invalid(omi.CodeInvalidValue, "Architecture must be x86_64 or i386, not %q", in.Architecture)
	}
	for _, m := range in.BootModes {
		if m != "uefi" && m != "legacy" {
			return omi.Invalid(omi.CodeInvalidValue, "BootModes entries must be uefi or legacy, not %q", m)
		}
	}
	return nil
}

// checkProductCodes checks that every code is a product type of the region
// and that marketplace codes are set by their seller only.
func (s *Service) checkProductCodes(c *omi.Caller, codes []string) error {
	for _, code := range codes {
		if !s.knownProductCode(code) {
			return omi.Invalid(omi.CodeInvalidValue, "ProductCodes: %q is not a product type of this region (see ReadProductTypes)", code)
		}
		if seller, ok := s.region.sellers[code]; ok && seller != c.AccountID() {
			return omi.Invalid(omi.CodeInvalidValue, "ProductCodes: %q is a marketplace product of another account; only its seller can publish OMIs with it", code)
		}
	}
	return nil
}

// newImage fills the fields every mode sets the same way.
func (s *Service) newImage(c *omi.Caller, in *CreateImageRequest) *omi.Image {
	img := &omi.Image{AccountId: c.AccountID(), AccountAlias: c.Account.Alias, ImageId: omi.NewID(omi.PrefixImage),
		ImageName: in.ImageName, Description: in.Description, Architecture: in.Architecture,
		BootModes: in.BootModes, ProductCodes: in.ProductCodes, TpmMandatory: in.TpmMandatory,
		CreationDate: s.nowString(), ImageType: "machine", RootDeviceName: omi.RootDeviceName, RootDeviceType: "bsu"}
	if img.Architecture == "" {
		img.Architecture = "x86_64"
	}
	return img
}

// insertImage checks the name is free in the owner's account, records the
// snapshots the image uses, and stores it.
func insertImage(tx omi.Tx, img *omi.Image) error {
	if img.ImageName == "" {
		return omi.Invalid(omi.CodeInvalidParameter, "ImageName is required")
	}
	taken := false
	err := tx.Scan(omi.Query{Kind: omi.KindImage, Owners: []string{img.AccountId}, Names: []string{img.ImageName}, Limit: 1},
		func(omi.Record) (bool, error) { taken = true; return false, nil })
	if err != nil {
		return err
	}
	if taken {
		return omi.Conflict(omi.CodeDuplicateName, "an OMI named %q already exists in account %s", img.ImageName, img.AccountId)
	}
	img.FileLocation = img.AccountId + "/" + img.ImageName
	img.Normalize()
	if err := markUsed(tx, img.ImageId, img.SnapshotIDs(), true); err != nil {
		return err
	}
	return insertNew(tx, img, func() { img.ImageId = omi.NewID(omi.PrefixImage) })
}

// registerImage creates an OMI from snapshots. It is available at once when
// its snapshots are complete, else pending until they are.
func (s *Service) registerImage(ctx context.Context, c *omi.Caller, in *CreateImageRequest) (*CreateImageResponse, error) {
	if in.RootDeviceName == "" || len(in.BlockDeviceMappings) == 0 {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "registering an OMI needs RootDeviceName and BlockDeviceMappings")
	}
	if !omi.ValidDeviceName(in.RootDeviceName) {
		return nil, omi.Invalid(omi.CodeInvalidDeviceName, "RootDeviceName %q is not a valid device name", in.RootDeviceName)
	}
	img := s.newImage(c, in)
	img.RootDeviceName = in.RootDeviceName
	img.State = omi.ImageAvailable
	err := s.update(ctx, func(tx omi.Tx) error {
		bdms, err := s.checkImageBDMs(tx, c, in.BlockDeviceMappings, in.RootDeviceName)
		if err != nil {
			return err
		}
		img.BlockDeviceMappings = bdms
		for _, id := range img.SnapshotIDs() {
			if sn, err := omi.Get[omi.Snapshot](tx, id); err == nil && sn.State != omi.SnapshotCompleted {
				img.State = omi.ImagePending // available once its snapshots complete
			}
		}
		return insertImage(tx, img)
	})
	if err != nil {
		return nil, err
	}
	if img.State == omi.ImagePending {
		s.enqueue(ctx, omi.KindImage, img.ImageId)
	}
	return &CreateImageResponse{Image: img}, nil
}

// checkImageBDMs validates the block device mappings of a registration and
// fills their defaults: each maps a device to one snapshot the caller may
// use, or to an ephemeral device; the root device maps a snapshot.
func (s *Service) checkImageBDMs(tx omi.Tx, c *omi.Caller, in []omi.ImageBDM, root string) ([]omi.ImageBDM, error) {
	seen := map[string]bool{}
	rootOK := false
	out := make([]omi.ImageBDM, 0, len(in))
	for i, m := range in {
		if !omi.ValidDeviceName(m.DeviceName) {
			return nil, omi.Invalid(omi.CodeInvalidDeviceName, "BlockDeviceMappings[%d].DeviceName %q is not a valid device name", i, m.DeviceName)
		}
		if seen[m.DeviceName] {
			return nil, omi.Invalid(omi.CodeInvalidBDM, "device %s is mapped twice", m.DeviceName)
		}
		seen[m.DeviceName] = true
		if (m.Bsu == nil) == (m.VirtualDeviceName == "") {
			return nil, omi.Invalid(omi.CodeInvalidBDM, "BlockDeviceMappings[%d] needs exactly one of Bsu or VirtualDeviceName", i)
		}
		if m.Bsu == nil {
			if !omi.ValidVirtualDeviceName(m.VirtualDeviceName) {
				return nil, omi.Invalid(omi.CodeInvalidBDM, "VirtualDeviceName %q is not ephemeralN", m.VirtualDeviceName)
			}
			if m.DeviceName == root {
				return nil, omi.Invalid(omi.CodeInvalidRootMap, "the root device %s must map a snapshot, not an ephemeral device", root)
			}
			out = append(out, omi.ImageBDM{DeviceName: m.DeviceName, VirtualDeviceName: m.VirtualDeviceName})
			continue
		}
		b := *m.Bsu
		if b.SnapshotId == "" {
			return nil, omi.Invalid(omi.CodeInvalidBDM, "BlockDeviceMappings[%d].Bsu.SnapshotId is required", i)
		}
		snap, err := s.visibleSnapshot(tx, c, b.SnapshotId)
		if err != nil {
			return nil, err
		}
		if snap.State != omi.SnapshotCompleted && snap.State != omi.SnapshotPending {
			return nil, omi.BadState(omi.CodeInvalidState, "snapshot %s is %s", snap.SnapshotId, snap.State)
		}
		size := snap.VolumeSize
		if b.VolumeSize != nil {
			if *b.VolumeSize < snap.VolumeSize {
				return nil, omi.Invalid(omi.CodeTooSmallVolume, "VolumeSize %d GiB is smaller than snapshot %s (%d GiB)", *b.VolumeSize, snap.SnapshotId, snap.VolumeSize)
			}
			size = *b.VolumeSize
		}
		if b.VolumeType == "" {
			b.VolumeType = omi.VolumeStandard
		}
		if e := omi.CheckVolumeSpec(b.VolumeType, size, b.Iops); e != nil {
			return nil, e
		}
		b.VolumeSize = &size
		if b.DeleteOnVmDeletion == nil {
			t := true
			b.DeleteOnVmDeletion = &t
		}
		if m.DeviceName == root {
			rootOK = true
		}
		out = append(out, omi.ImageBDM{DeviceName: m.DeviceName, Bsu: &b})
	}
	if !rootOK {
		return nil, omi.Invalid(omi.CodeInvalidRootMap, "no block device mapping gives a snapshot for the root device %s", root)
	}
	return out, nil
}

// createImageFromVm makes an OMI from a VM: a snapshot of the root volume
// and of every other attached volume, and mappings that describe them. With
// NoReboot false (the default) the VM is stopped for the snapshots and
// started again afterwards; with NoReboot true it is snapshotted running.
// Snapshots share the volumes' blocks, so this costs metadata only.
func (s *Service) createImageFromVm(ctx context.Context, c *omi.Caller, in *CreateImageRequest) (*CreateImageResponse, error) {
	img := s.newImage(c, in)
	img.State = omi.ImagePending
	err := s.update(ctx, func(tx omi.Tx) error {
		img.BlockDeviceMappings = nil // from an aborted attempt (a retry)
		vm, err := s.ownVm(tx, c, in.VmId)
		if err != nil {
			return err
		}
		if vm.State != omi.VmRunning && vm.State != omi.VmStopped {
			return omi.BadState(omi.CodeInvalidVmState, "VM %s is %s; OMIs are created from running or stopped VMs", vm.VmId, vm.State)
		}
		if vm.ImagingFor != "" {
			return omi.BadState(omi.CodeInvalidVmState, "VM %s is already being imaged into %s", vm.VmId, vm.ImagingFor)
		}
		src, _ := omi.Get[omi.Image](tx, vm.ImageId)
		if in.Architecture == "" {
			img.Architecture = vm.Architecture
		}
		if len(in.ProductCodes) == 0 {
			img.ProductCodes = slices.Clone(vm.ProductCodes)
		}
		if len(in.BootModes) == 0 {
			img.BootModes = []string{vm.BootMode}
		}
		if src != nil && !in.TpmMandatory {
			img.TpmMandatory = src.TpmMandatory
		}
		img.RootDeviceName = vm.RootDeviceName
		for _, m := range vm.BlockDeviceMappings {
			v, err := omi.Get[omi.Volume](tx, m.Bsu.VolumeId)
			if err != nil {
				return err
			}
			sn := &omi.Snapshot{AccountId: img.AccountId, AccountAlias: img.AccountAlias, SnapshotId: omi.NewID(omi.PrefixSnapshot),
				CreationDate: img.CreationDate, Description: fmt.Sprintf("Created by CreateImage(%s) for %s from %s", vm.VmId, img.ImageId, v.VolumeId),
				State: omi.SnapshotPending, VolumeId: v.VolumeId, VolumeSize: v.Size, SizeBytes: int64(v.Size) * gib}
			if err := insertNew(tx, sn, func() { sn.SnapshotId = omi.NewID(omi.PrefixSnapshot) }); err != nil {
				return err
			}
			size, del := v.Size, m.Bsu.DeleteOnVmDeletion
			b := &omi.BsuImage{SnapshotId: sn.SnapshotId, VolumeSize: &size, VolumeType: v.VolumeType, DeleteOnVmDeletion: &del}
			if v.VolumeType == omi.VolumeIO1 {
				iops := v.Iops
				b.Iops = &iops
			}
			img.BlockDeviceMappings = append(img.BlockDeviceMappings, omi.ImageBDM{DeviceName: m.DeviceName, Bsu: b})
		}
		if err := insertImage(tx, img); err != nil {
			return err
		}
		if !in.NoReboot && vm.State == omi.VmRunning {
			vm.State, vm.ImagingFor = omi.VmStopping, img.ImageId
			return omi.Put(tx, vm)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.enqueue(ctx, omi.KindImage, img.ImageId)
	return &CreateImageResponse{Image: img}, nil
}

// copyImage copies an OMI the caller may launch into the caller's account:
// a new id, new snapshots that share the source's blocks, the source's
// product codes. The copy is independent of its source.
func (s *Service) copyImage(ctx context.Context, c *omi.Caller, in *CreateImageRequest) (*CreateImageResponse, error) {
	if in.SourceRegionName != s.cfg.Region {
		return nil, s.regionError(in.SourceRegionName)
	}
	if len(in.ProductCodes) > 0 {
		return nil, omi.Invalid(omi.CodeInvalidParamSet, "a copy keeps the product codes of its source; ProductCodes cannot be set")
	}
	img := s.newImage(c, in)
	var snaps []*omi.Snapshot
	err := s.update(ctx, func(tx omi.Tx) error {
		img.BlockDeviceMappings, snaps = nil, nil // from an aborted attempt (a retry)
		src, err := s.visibleImage(tx, c, in.SourceImageId)
		if err != nil {
			return err
		}
		if src.State != omi.ImageAvailable {
			return omi.BadState(omi.CodeInvalidImageState, "OMI %s is %s, not available", src.ImageId, src.State)
		}
		if img.ImageName == "" {
			img.ImageName = src.ImageName
		}
		if img.Description == "" {
			img.Description = src.Description
		}
		img.Architecture, img.BootModes, img.ProductCodes = src.Architecture, src.BootModes, src.ProductCodes
		// TpmMandatory asked for on a copy is kept (the provider's
		// recorded vm/TF-210 copies an OMI with tpm_mandatory true).
		img.TpmMandatory, img.SecureBoot, img.RootDeviceName = src.TpmMandatory || in.TpmMandatory, src.SecureBoot, src.RootDeviceName
		img.State = omi.ImagePending
		for _, m := range src.BlockDeviceMappings {
			if m.Bsu == nil || m.Bsu.SnapshotId == "" {
				img.BlockDeviceMappings = append(img.BlockDeviceMappings, m)
				continue
			}
			from, err := omi.Get[omi.Snapshot](tx, m.Bsu.SnapshotId)
			if err != nil {
				if isNotFound(err) {
					return omi.BadState(omi.CodeInvalidImageState, "OMI %s refers to snapshot %s, which no longer exists", src.ImageId, m.Bsu.SnapshotId)
				}
				return err
			}
			sn := &omi.Snapshot{AccountId: img.AccountId, AccountAlias: img.AccountAlias, SnapshotId: omi.NewID(omi.PrefixSnapshot),
				CreationDate: img.CreationDate, Description: fmt.Sprintf("Copy of %s for %s", from.SnapshotId, img.ImageId),
				State: omi.SnapshotPending, VolumeId: from.VolumeId, VolumeSize: from.VolumeSize, SizeBytes: from.SizeBytes,
				SourceSnapshotId: from.SnapshotId}
			if err := insertNew(tx, sn, func() { sn.SnapshotId = omi.NewID(omi.PrefixSnapshot) }); err != nil {
				return err
			}
			snaps = append(snaps, sn)
			b := *m.Bsu
			b.SnapshotId = sn.SnapshotId
			img.BlockDeviceMappings = append(img.BlockDeviceMappings, omi.ImageBDM{DeviceName: m.DeviceName, Bsu: &b})
		}
		return insertImage(tx, img)
	})
	if err != nil {
		return nil, err
	}
	s.enqueue(ctx, omi.KindImage, img.ImageId)
	return &CreateImageResponse{Image: img}, nil
}

func imageNotFound(id string) error {
	return omi.NotFound(omi.CodeNoSuchImage, "The ImageId '%s' doesn't exist.", id)
}

// visibleImage loads an OMI the caller may launch; others are missing.
func (s *Service) visibleImage(tx omi.Tx, c *omi.Caller, id string) (*omi.Image, error) {
	img, err := omi.Get[omi.Image](tx, id)
	if isNotFound(err) || (err == nil && !img.PermissionsToLaunch.Allows(img.AccountId, c.AccountID())) {
		return nil, imageNotFound(id)
	}
	return img, err
}

// ownImage loads an OMI for a change by its owner.
func (s *Service) ownImage(tx omi.Tx, c *omi.Caller, id string) (*omi.Image, error) {
	img, err := s.visibleImage(tx, c, id)
	if err != nil {
		return nil, err
	}
	if img.AccountId != c.AccountID() {
		return nil, notOwner("OMI", id)
	}
	return img, nil
}

type FiltersImage struct {
	tagFilter
	AccountAliases                       []string `json:"AccountAliases"`
	AccountIds                           []string `json:"AccountIds"`
	Architectures                        []string `json:"Architectures"`
	BlockDeviceMappingDeleteOnVmDeletion *bool    `json:"BlockDeviceMappingDeleteOnVmDeletion"`
	BlockDeviceMappingDeviceNames        []string `json:"BlockDeviceMappingDeviceNames"`
	BlockDeviceMappingSnapshotIds        []string `json:"BlockDeviceMappingSnapshotIds"`
	BlockDeviceMappingVolumeSizes        []int    `json:"BlockDeviceMappingVolumeSizes"`
	BlockDeviceMappingVolumeTypes        []string `json:"BlockDeviceMappingVolumeTypes"`
	BootModes                            []string `json:"BootModes"`
	Descriptions                         []string `json:"Descriptions"`
	FileLocations                        []string `json:"FileLocations"`
	Hypervisors                          []string `json:"Hypervisors"`
	ImageIds                             []string `json:"ImageIds"`
	ImageNames                           []string `json:"ImageNames"`
	PermissionsToLaunchAccountIds        []string `json:"PermissionsToLaunchAccountIds"`
	PermissionsToLaunchGlobalPermission  *bool    `json:"PermissionsToLaunchGlobalPermission"`
	ProductCodeNames                     []string `json:"ProductCodeNames"`
	ProductCodes                         []string `json:"ProductCodes"`
	RootDeviceNames                      []string `json:"RootDeviceNames"`
	RootDeviceTypes                      []string `json:"RootDeviceTypes"`
	SecureBoot                           *bool    `json:"SecureBoot"`
	States                               []string `json:"States"`
	TpmMandatory                         *bool    `json:"TpmMandatory"`
	VirtualizationTypes                  []string `json:"VirtualizationTypes"`
}

// match applies the filters that the store does not (ids, owners and names
// are pushed into the store query).
func (s *Service) matchImage(f *FiltersImage, me string, img *omi.Image) bool {
	perms := img.PermissionsToLaunch
	if !anyOf(f.AccountAliases, img.AccountAlias) || !anyOf(f.Architectures, img.Architecture) ||
		!anyOf(f.Descriptions, img.Description) || !anyOf(f.FileLocations, img.FileLocation) ||
		!anyOf(f.Hypervisors, "xen") || !anyOf(f.VirtualizationTypes, "hvm") ||
		!anyOf(f.RootDeviceNames, img.RootDeviceName) || !anyOf(f.States, img.State) ||
		!intersects(f.BootModes, img.BootModes) || !intersects(f.ProductCodes, img.ProductCodes) ||
		!f.tagFilter.match(img.Tags) {
		return false
	}
	if len(f.RootDeviceTypes) > 0 && !contains(f.RootDeviceTypes, "bsu") && !contains(f.RootDeviceTypes, "ebs") {
		return false
	}
	if f.PermissionsToLaunchGlobalPermission != nil && *f.PermissionsToLaunchGlobalPermission != perms.GlobalPermission {
		return false
	}
	if len(f.PermissionsToLaunchAccountIds) > 0 && (img.AccountId != me || !intersects(f.PermissionsToLaunchAccountIds, perms.AccountIds)) {
		return false
	}
	if (f.SecureBoot != nil && *f.SecureBoot != img.SecureBoot) || (f.TpmMandatory != nil && *f.TpmMandatory != img.TpmMandatory) {
		return false
	}
	if len(f.ProductCodeNames) > 0 && !slices.ContainsFunc(img.ProductCodes, func(code string) bool {
		return slices.ContainsFunc(s.region.productTypes, func(p ProductType) bool {
			return p.ProductTypeId == code && anyPattern(f.ProductCodeNames, p.Description)
		})
	}) {
		return false
	}
	needBDM := f.BlockDeviceMappingDeleteOnVmDeletion != nil || len(f.BlockDeviceMappingDeviceNames) > 0 ||
		len(f.BlockDeviceMappingSnapshotIds) > 0 || len(f.BlockDeviceMappingVolumeSizes) > 0 || len(f.BlockDeviceMappingVolumeTypes) > 0
	if !needBDM {
		return true
	}
	return slices.ContainsFunc(img.BlockDeviceMappings, func(m omi.ImageBDM) bool {
		if !anyOf(f.BlockDeviceMappingDeviceNames, m.DeviceName) {
			return false
		}
		b := m.Bsu
		if b == nil {
			return f.BlockDeviceMappingDeleteOnVmDeletion == nil && len(f.BlockDeviceMappingSnapshotIds) == 0 &&
				len(f.BlockDeviceMappingVolumeSizes) == 0 && len(f.BlockDeviceMappingVolumeTypes) == 0
		}
		size := 0
		if b.VolumeSize != nil {
			size = *b.VolumeSize
		}
		return anyOf(f.BlockDeviceMappingSnapshotIds, b.SnapshotId) && anyOf(f.BlockDeviceMappingVolumeSizes, size) &&
			anyOf(f.BlockDeviceMappingVolumeTypes, b.VolumeType) &&
			(f.BlockDeviceMappingDeleteOnVmDeletion == nil || (b.DeleteOnVmDeletion != nil && *b.DeleteOnVmDeletion == *f.BlockDeviceMappingDeleteOnVmDeletion))
	})
}

type ReadImagesRequest struct {
	Base
	Paging
	Filters *FiltersImage `json:"Filters"`
}
type ReadImagesResponse struct {
	Images        []*omi.Image `json:"Images"`
	NextPageToken string       `json:"NextPageToken,omitempty"`
}

// ReadImages lists the OMIs the caller may launch: its own, those shared
// with it and public ones. Another account's sharing list is not shown.
func (s *Service) ReadImages(ctx context.Context, c *omi.Caller, in *ReadImagesRequest) (*ReadImagesResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersImage{}
	}
	me := c.AccountID()
	q := omi.Query{VisibleTo: me, IDs: f.ImageIds, Owners: f.AccountIds}
	for _, n := range f.ImageNames {
		if n == "" {
			continue
		}
		q.NamePatterns = append(q.NamePatterns, n)
	}
	if len(f.ImageNames) > 0 && len(q.NamePatterns) == 0 {
		return &ReadImagesResponse{Images: []*omi.Image{}}, nil
	}
	out, next, err := readPage[omi.Image](ctx, s, q, in.Paging, omi.PrefixImage, func(img *omi.Image) bool {
		if len(f.ImageIds) == 0 && hasTag(img.Tags, SupersededTag) {
			return false // an older official version: listed only when asked for by id
		}
		return s.matchImage(f, me, img)
	})
	if err != nil {
		return nil, err
	}
	for _, img := range out {
		img.Normalize()
		if img.AccountId != me {
			img.PermissionsToLaunch.AccountIds = []string{}
		}
	}
	return &ReadImagesResponse{Images: out, NextPageToken: next}, nil
}

type UpdateImageRequest struct {
	Base
	Description         *string                `json:"Description"`
	ImageId             string                 `json:"ImageId"`
	PermissionsToLaunch *omi.PermissionsChange `json:"PermissionsToLaunch"`
	ProductCodes        *[]string              `json:"ProductCodes"`
}
type UpdateImageResponse struct {
	Image *omi.Image `json:"Image"`
}

// UpdateImage changes the description, launch permissions (sharing) or
// product codes of an OMI the caller owns. ProductCodes replaces the list.
func (s *Service) UpdateImage(ctx context.Context, c *omi.Caller, in *UpdateImageRequest) (*UpdateImageResponse, error) {
	if in.ImageId == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "ImageId is required")
	}
	if in.Description == nil && in.PermissionsToLaunch == nil && in.ProductCodes == nil {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "give at least one of Description, PermissionsToLaunch or ProductCodes")
	}
	if in.Description != nil && len(*in.Description) > omi.MaxDescription {
		return nil, omi.Invalid(omi.CodeValueLength, "Description must be at most %d characters", omi.MaxDescription)
	}
	if in.PermissionsToLaunch != nil {
		if err := checkPermissionsChange(in.PermissionsToLaunch); err != nil {
			return nil, err
		}
	}
	if in.ProductCodes != nil {
		if err := s.checkProductCodes(c, *in.ProductCodes); err != nil {
			return nil, err
		}
	}
	var img *omi.Image
	err := s.update(ctx, func(tx omi.Tx) error {
		var err error
		if img, err = s.ownImage(tx, c, in.ImageId); err != nil {
			return err
		}
		if in.Description != nil {
			img.Description = *in.Description
		}
		if in.PermissionsToLaunch != nil {
			if a := in.PermissionsToLaunch.Additions; a != nil && a.GlobalPermission && !img.PermissionsToLaunch.GlobalPermission {
				if err := s.checkPublishable(tx, img); err != nil {
					return err
				}
			}
			img.PermissionsToLaunch = img.PermissionsToLaunch.Apply(*in.PermissionsToLaunch)
		}
		if in.ProductCodes != nil {
			img.ProductCodes = append([]string{}, *in.ProductCodes...)
		}
		img.Normalize()
		return omi.Put(tx, img)
	})
	if err != nil {
		return nil, err
	}
	return &UpdateImageResponse{Image: img}, nil
}

type DeleteImageRequest struct {
	Base
	ImageId string `json:"ImageId"`
}
type DeleteImageResponse struct{}

// DeleteImage deregisters an OMI. Its snapshots stay (and become
// deletable); VMs started from it keep running.
func (s *Service) DeleteImage(ctx context.Context, c *omi.Caller, in *DeleteImageRequest) (*DeleteImageResponse, error) {
	if in.ImageId == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "ImageId is required")
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		img, err := s.ownImage(tx, c, in.ImageId)
		if err != nil {
			return err
		}
		if err := markUsed(tx, img.ImageId, img.SnapshotIDs(), false); err != nil {
			return err
		}
		if err := tx.Delete(KindInspection, img.ImageId); err != nil && !isNotFound(err) {
			return err
		}
		return retire(tx, omi.KindImage, img.ImageId)
	})
	if err != nil {
		return nil, err
	}
	return &DeleteImageResponse{}, nil
}
