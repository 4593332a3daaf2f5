// Package e2e tests the whole omi API server through clients nobody on the
// team wrote: the official OUTSCALE Go SDKs v2 and v3, curl, and raw signed
// HTTP. Every response is also checked by the apitest harness (no 5xx,
// JSON envelope, OpenAPI conformance).
package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"testing"
	"time"

	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"

	"github.com/omiproject/omi/apitest"
)

func ptr[T any](v T) *T { return &v }

// wait bounds the polls for asynchronous transitions. The reconciler of a
// metadata-only server completes them in milliseconds.
const wait = 15 * time.Second

// newVolume creates a volume as a with the v3 SDK and waits until it is
// available.
func newVolume(t *testing.T, e *apitest.Env, a apitest.Account, size int) string {
	t.Helper()
	c := e.V3(a)
	resp, err := c.CreateVolume(t.Context(), oscv3.CreateVolumeRequest{SubregionName: apitest.Region + "a", Size: ptr(size)})
	if err != nil {
		t.Fatalf("CreateVolume: %v", err)
	}
	id := resp.Volume.VolumeId
	if resp.Volume.State != "creating" && resp.Volume.State != "available" {
		t.Fatalf("new volume state %q, want creating or available", resp.Volume.State)
	}
	waitVolume(t, e, a, id, "available")
	return id
}

func waitVolume(t *testing.T, e *apitest.Env, a apitest.Account, id, state string) {
	t.Helper()
	c := e.V3(a)
	apitest.WaitFor(t, wait, "volume "+id+" "+state, func() (bool, error) {
		r, err := c.ReadVolumes(t.Context(), oscv3.ReadVolumesRequest{Filters: &oscv3.FiltersVolume{VolumeIds: &[]string{id}}})
		if err != nil {
			return false, err
		}
		if r.Volumes == nil || len(*r.Volumes) != 1 {
			return false, nil
		}
		return string((*r.Volumes)[0].State) == state, nil
	})
}

// newSnapshot snapshots a volume and waits until the snapshot is completed.
func newSnapshot(t *testing.T, e *apitest.Env, a apitest.Account, volumeID string) string {
	t.Helper()
	c := e.V3(a)
	resp, err := c.CreateSnapshot(t.Context(), oscv3.CreateSnapshotRequest{VolumeId: &volumeID, Description: ptr("e2e")})
	if err != nil {
		t.Fatalf("CreateSnapshot: %v", err)
	}
	id := resp.Snapshot.SnapshotId
	if resp.Snapshot.VolumeId != volumeID {
		t.Errorf("snapshot VolumeId = %q, want %q", resp.Snapshot.VolumeId, volumeID)
	}
	waitSnapshot(t, e, a, id)
	return id
}

func waitSnapshot(t *testing.T, e *apitest.Env, a apitest.Account, id string) {
	t.Helper()
	c := e.V3(a)
	apitest.WaitFor(t, wait, "snapshot "+id+" completed", func() (bool, error) {
		r, err := c.ReadSnapshots(t.Context(), oscv3.ReadSnapshotsRequest{Filters: &oscv3.FiltersSnapshot{SnapshotIds: &[]string{id}}})
		if err != nil {
			return false, err
		}
		if r.Snapshots == nil || len(*r.Snapshots) != 1 {
			return false, nil
		}
		return string((*r.Snapshots)[0].State) == "completed", nil
	})
}

// registerImage registers an OMI from a snapshot as a and returns it.
func registerImage(t *testing.T, e *apitest.Env, a apitest.Account, name, snapID string) oscv3.Image {
	t.Helper()
	resp, err := e.V3(a).CreateImage(t.Context(), oscv3.CreateImageRequest{
		ImageName:      &name,
		RootDeviceName: ptr("/dev/sda1"),
		BlockDeviceMappings: &[]oscv3.BlockDeviceMappingImage{{
			DeviceName: ptr("/dev/sda1"),
			Bsu:        &oscv3.BsuToCreate{SnapshotId: &snapID, VolumeType: ptr(oscv3.VolumeType("standard"))},
		}},
	})
	if err != nil {
		t.Fatalf("CreateImage %s: %v", name, err)
	}
	return *resp.Image
}

// waitImage waits until the OMI reaches state as seen by a.
func waitImage(t *testing.T, e *apitest.Env, a apitest.Account, id, state string) oscv3.Image {
	t.Helper()
	c := e.V3(a)
	var img oscv3.Image
	apitest.WaitFor(t, wait, "image "+id+" "+state, func() (bool, error) {
		r, err := c.ReadImages(t.Context(), oscv3.ReadImagesRequest{Filters: &oscv3.FiltersImage{ImageIds: &[]string{id}}})
		if err != nil {
			return false, err
		}
		if r.Images == nil || len(*r.Images) != 1 {
			return false, nil
		}
		img = (*r.Images)[0]
		return string(img.State) == state, nil
	})
	return img
}

// imageIDs lists the OMIs a sees through ReadImages with filters f.
func imageIDs(t *testing.T, e *apitest.Env, a apitest.Account, f *oscv3.FiltersImage) []string {
	t.Helper()
	r, err := e.V3(a).ReadImages(t.Context(), oscv3.ReadImagesRequest{Filters: f})
	if err != nil {
		t.Fatalf("ReadImages as %s: %v", a.Alias, err)
	}
	ids := []string{}
	if r.Images != nil {
		for _, img := range *r.Images {
			ids = append(ids, img.ImageId)
		}
	}
	return ids
}

func has(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// wantCode fails unless err is an API error with that code and HTTP status.
func wantCode(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: succeeded, want HTTP %d code %s", what, status, code)
		return
	}
	if got := apitest.Status(err); got != status || !apitest.HasCode(err, code) {
		t.Errorf("%s: HTTP %d codes %v (%v), want HTTP %d code %s", what, got, apitest.ErrorCodes(err), err, status, code)
	}
}

// ctxTimeout is a context for a single SDK call.
func ctxTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var _ = http.StatusOK

// basic is an Authorization header for login/password.
func basic(login, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(login+":"+password))
}

func readCloser(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }
