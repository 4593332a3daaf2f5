package e2e

import (
	"fmt"
	"net/http"
	"testing"

	oscv2 "github.com/outscale/osc-sdk-go/v2"
	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"

	"github.com/omiproject/omi/apitest"
)

// Paging with ResultsPerPage/NextPageToken returns every item exactly once,
// for each Read call, with page sizes that do and do not divide the total.
func TestPagination(t *testing.T) {
	e := apitest.Start(t)
	c := e.V3(e.Joe)
	ctx := t.Context()
	const n = 23
	vol := newVolume(t, e, e.Joe, 1)
	snap := newSnapshot(t, e, e.Joe, vol)
	var images, volumes, snapshots []string
	volumes = append(volumes, vol)
	snapshots = append(snapshots, snap)
	for i := 0; i < n; i++ {
		images = append(images, registerImage(t, e, e.Joe, fmt.Sprintf("page-%02d", i), snap).ImageId)
		v, err := c.CreateVolume(ctx, oscv3.CreateVolumeRequest{SubregionName: apitest.Region + "b", Size: ptr(1)})
		if err != nil {
			t.Fatalf("CreateVolume: %v", err)
		}
		volumes = append(volumes, v.Volume.VolumeId)
	}
	for i := 0; i < 4; i++ {
		snapshots = append(snapshots, newSnapshot(t, e, e.Joe, vol))
	}
	// Other accounts' resources must not leak into joe's pages.
	tv := newVolume(t, e, e.Titi, 1)
	registerImage(t, e, e.Titi, "page-titi", newSnapshot(t, e, e.Titi, tv))
	if _, err := c.CreateTags(ctx, oscv3.CreateTagsRequest{ResourceIds: images, Tags: []oscv3.ResourceTag{{Key: "page", Value: "yes"}}}); err != nil {
		t.Fatalf("CreateTags: %v", err)
	}

	for _, per := range []int{1, 5, 23, 100} {
		t.Run(fmt.Sprintf("per=%d", per), func(t *testing.T) {
			got := collect(t, func(tok *string) ([]string, *string, error) {
				r, err := c.ReadImages(ctx, oscv3.ReadImagesRequest{ResultsPerPage: &per, NextPageToken: tok,
					Filters: &oscv3.FiltersImage{ImageNames: &[]string{"page-*"}}})
				if err != nil {
					return nil, nil, err
				}
				var ids []string
				for _, img := range deref(r.Images) {
					ids = append(ids, img.ImageId)
				}
				return ids, r.NextPageToken, nil
			}, per)
			exactlyOnce(t, "ReadImages", got, images)

			got = collect(t, func(tok *string) ([]string, *string, error) {
				r, err := c.ReadVolumes(ctx, oscv3.ReadVolumesRequest{ResultsPerPage: &per, NextPageToken: tok})
				if err != nil {
					return nil, nil, err
				}
				var ids []string
				for _, v := range deref(r.Volumes) {
					ids = append(ids, v.VolumeId)
				}
				return ids, r.NextPageToken, nil
			}, per)
			exactlyOnce(t, "ReadVolumes", got, volumes)

			got = collect(t, func(tok *string) ([]string, *string, error) {
				r, err := c.ReadSnapshots(ctx, oscv3.ReadSnapshotsRequest{ResultsPerPage: &per, NextPageToken: tok})
				if err != nil {
					return nil, nil, err
				}
				var ids []string
				for _, s := range deref(r.Snapshots) {
					ids = append(ids, s.SnapshotId)
				}
				return ids, r.NextPageToken, nil
			}, per)
			exactlyOnce(t, "ReadSnapshots", got, snapshots)

			got = collect(t, func(tok *string) ([]string, *string, error) {
				r, err := c.ReadTags(ctx, oscv3.ReadTagsRequest{ResultsPerPage: &per, NextPageToken: tok,
					Filters: &oscv3.FiltersTag{Keys: &[]string{"page"}}})
				if err != nil {
					return nil, nil, err
				}
				var ids []string
				for _, tg := range deref(r.Tags) {
					ids = append(ids, tg.ResourceId)
				}
				return ids, r.NextPageToken, nil
			}, per)
			exactlyOnce(t, "ReadTags", got, images)
		})
	}

	t.Run("v2", func(t *testing.T) {
		v2, v2ctx := e.V2(e.Joe)
		got := collect(t, func(tok *string) ([]string, *string, error) {
			req := oscv2.ReadImagesRequest{ResultsPerPage: ptr(int32(7)), NextPageToken: tok,
				Filters: &oscv2.FiltersImage{TagKeys: &[]string{"page"}}}
			r, _, err := v2.ImageApi.ReadImages(v2ctx).ReadImagesRequest(req).Execute()
			if err != nil {
				return nil, nil, err
			}
			var ids []string
			for _, img := range r.GetImages() {
				ids = append(ids, img.GetImageId())
			}
			return ids, r.NextPageToken, nil
		}, 7)
		exactlyOnce(t, "v2 ReadImages", got, images)
	})

	// Resources created and deleted between pages: every image present
	// from the first page to the last is returned exactly once, the
	// deleted one at most once.
	t.Run("changes between pages", func(t *testing.T) {
		per := 4
		var got []string
		var tok *string
		var added []string
		deleted := images[n-1]
		for page := 0; ; page++ {
			r, err := c.ReadImages(ctx, oscv3.ReadImagesRequest{ResultsPerPage: &per, NextPageToken: tok, Filters: &oscv3.FiltersImage{ImageNames: &[]string{"page-*"}}})
			if err != nil {
				t.Fatalf("page %d: %v", page, err)
			}
			for _, img := range deref(r.Images) {
				got = append(got, img.ImageId)
			}
			if page == 1 {
				if _, err := c.DeleteImage(ctx, oscv3.DeleteImageRequest{ImageId: deleted}); err != nil {
					t.Fatalf("DeleteImage: %v", err)
				}
				for i := 0; i < 3; i++ {
					added = append(added, registerImage(t, e, e.Joe, fmt.Sprintf("page-new-%d", i), snap).ImageId)
				}
			}
			if r.NextPageToken == nil || *r.NextPageToken == "" {
				break
			}
			tok = r.NextPageToken
		}
		seen := map[string]int{}
		for _, id := range got {
			seen[id]++
		}
		for _, id := range images[:n-1] {
			if seen[id] != 1 {
				t.Errorf("%s present throughout, returned %d times", id, seen[id])
			}
		}
		for id, k := range seen {
			if k > 1 {
				t.Errorf("%s returned %d times", id, k)
			}
		}
	})

	t.Run("bad token", func(t *testing.T) {
		for _, tok := range []string{"not base64!", "dm9sLTEyMzQ1Njc4", "AAAA"} {
			r := e.Call(t, e.Joe, "ReadImages", map[string]any{"NextPageToken": tok})
			if r.Status != http.StatusBadRequest || r.ErrorCode() != "4117" {
				t.Errorf("NextPageToken %q: %s, want 400 4117", tok, r)
			}
		}
	})
	t.Run("bad ResultsPerPage", func(t *testing.T) {
		for _, per := range []int{0, -1, 1001} {
			r := e.Call(t, e.Joe, "ReadImages", map[string]any{"ResultsPerPage": per})
			if r.Status != http.StatusBadRequest {
				t.Errorf("ResultsPerPage %d: %s, want 400", per, r)
			}
		}
	})
}

// collect follows NextPageToken until it is absent, checking page sizes.
func collect(t *testing.T, page func(tok *string) ([]string, *string, error), per int) []string {
	t.Helper()
	var all []string
	var tok *string
	for i := 0; ; i++ {
		ids, next, err := page(tok)
		if err != nil {
			t.Fatalf("page %d: %v", i, err)
		}
		if len(ids) > per {
			t.Fatalf("page %d has %d items, ResultsPerPage is %d", i, len(ids), per)
		}
		all = append(all, ids...)
		if next == nil || *next == "" {
			return all
		}
		if len(ids) == 0 {
			t.Fatalf("page %d is empty but has a NextPageToken", i)
		}
		if i > 200 {
			t.Fatalf("more than 200 pages: the token does not advance")
		}
		tok = next
	}
}

// exactlyOnce checks that got holds each of want exactly once and nothing
// else.
func exactlyOnce(t *testing.T, what string, got, want []string) {
	t.Helper()
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
	}
	for _, id := range want {
		if seen[id] != 1 {
			t.Errorf("%s: %s returned %d times, want once", what, id, seen[id])
		}
		delete(seen, id)
	}
	for id, n := range seen {
		t.Errorf("%s: unexpected %s (%d times)", what, id, n)
	}
}
