package service

import (
	"context"
	"encoding/json"

	"github.com/omiproject/omi"
)

// KindInspection records the hygiene inspection of an OMI's root disk. It
// is kept beside the image, never in it: the Image object of the API does
// not change.
const KindInspection omi.Kind = "inspection"

// Inspector reads the root disk of an OMI and reports what a user should
// know before launching it: SSH keys, a root password, host private keys.
type Inspector interface {
	// InspectSnapshot returns the report (JSON) and whether the disk was
	// read and found clean. A disk that cannot be read is not clean.
	InspectSnapshot(ctx context.Context, snapshotID string) (report json.RawMessage, clean bool, err error)
}

// SetInspector attaches the inspector; call before Start. With one set,
// every OMI that becomes available is inspected.
func (s *Service) SetInspector(in Inspector) { s.inspector = in }

// Inspection is the stored result for one OMI, and the payload of the
// ReadImageInspection extension call.
type Inspection struct {
	ImageId     string          `json:"ImageId"`
	State       string          `json:"State"` // pending, done, failed
	Clean       bool            `json:"Clean"`
	InspectedAt string          `json:"InspectedAt,omitempty"`
	Comment     string          `json:"Comment,omitempty"`
	Report      json.RawMessage `json:"Report,omitempty"`
}

// inspected reports whether an inspection record exists for an image.
func inspected(tx omi.Tx, imageID string) (bool, error) {
	_, err := tx.Get(KindInspection, imageID)
	if isNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// runInspect inspects the root disk of an available OMI and stores the
// result.
func (s *Service) runInspect(ctx context.Context, imageID string) {
	var img *omi.Image
	err := s.store.View(ctx, func(tx omi.Tx) (err error) {
		img, err = omi.Get[omi.Image](tx, imageID)
		return err
	})
	if err != nil || img.State != omi.ImageAvailable {
		return
	}
	out := Inspection{ImageId: imageID, State: "done", InspectedAt: s.nowString()}
	root := ""
	for _, m := range img.BlockDeviceMappings {
		if m.DeviceName == img.RootDeviceName && m.Bsu != nil {
			root = m.Bsu.SnapshotId
		}
	}
	if root == "" {
		out.State, out.Comment = "failed", "the OMI maps no snapshot to its root device"
	} else {
		report, clean, err := s.inspector.InspectSnapshot(ctx, root)
		if ctx.Err() != nil {
			return // shutdown: inspected again by the next process
		}
		if err != nil {
			out.State, out.Comment = "failed", "the root disk could not be read: "+err.Error()
		}
		out.Clean, out.Report = clean, report
	}
	doc, err := json.Marshal(out)
	if err != nil {
		return
	}
	err = s.store.Update(ctx, func(tx omi.Tx) error {
		if _, err := omi.Get[omi.Image](tx, imageID); err != nil {
			return ignoreMissing(err)
		}
		return tx.Put(omi.Record{Kind: KindInspection, ID: imageID, Owner: img.AccountId, Doc: doc})
	})
	if err != nil && ctx.Err() == nil {
		s.log.Error("store inspection", "image", imageID, "err", err)
	}
}

type ReadImageInspectionRequest struct {
	Base
	ImageId string `json:"ImageId"`
}
type ReadImageInspectionResponse struct {
	ImageInspection Inspection `json:"ImageInspection"`
}

// ReadImageInspection is an omi extension call: the hygiene inspection of
// an OMI the caller may launch (its own, shared with it, or public).
func (s *Service) ReadImageInspection(ctx context.Context, c *omi.Caller, in *ReadImageInspectionRequest) (*ReadImageInspectionResponse, error) {
	if in.ImageId == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "ImageId is required")
	}
	out := Inspection{ImageId: in.ImageId, State: "pending"}
	err := s.view(ctx, func(tx omi.Tx) error {
		img, err := s.visibleImage(tx, c, in.ImageId)
		if err != nil {
			return err
		}
		rec, err := tx.Get(KindInspection, img.ImageId)
		if isNotFound(err) {
			if s.inspector == nil {
				out.State, out.Comment = "failed", "this server does not inspect OMIs"
			}
			return nil
		}
		if err != nil {
			return err
		}
		return json.Unmarshal(rec.Doc, &out)
	})
	if err != nil {
		return nil, err
	}
	return &ReadImageInspectionResponse{ImageInspection: out}, nil
}

// checkPublishable enforces RefusePublicWithFindings: an OMI is made public
// only when its inspection found it clean.
func (s *Service) checkPublishable(tx omi.Tx, img *omi.Image) error {
	if !s.cfg.RefusePublicWithFindings {
		return nil
	}
	rec, err := tx.Get(KindInspection, img.ImageId)
	if isNotFound(err) {
		return omi.Invalid(omi.CodeInvalidValue, "OMI %s cannot be made public before its hygiene inspection ends (see ReadImageInspection)", img.ImageId)
	}
	if err != nil {
		return err
	}
	var ins Inspection
	if err := json.Unmarshal(rec.Doc, &ins); err != nil {
		return err
	}
	if !ins.Clean {
		why := "its root disk holds SSH keys, a root password or host keys"
		if ins.State == "failed" || !inspectedOK(ins.Report) {
			why = "its root disk could not be inspected"
		}
		return omi.Invalid(omi.CodeInvalidValue, "OMI %s cannot be made public: %s (see ReadImageInspection); this server refuses public OMIs that are not clean", img.ImageId, why)
	}
	return nil
}

// inspectedOK reads the Inspected flag of a report.
func inspectedOK(report json.RawMessage) bool {
	var r struct{ Inspected bool }
	return json.Unmarshal(report, &r) == nil && r.Inspected
}
