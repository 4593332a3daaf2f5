package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/omiproject/omi/apitest"
)

// parallel runs fn n times at once and returns the responses in order.
func parallel(n int, fn func(i int) *apitest.Response) []*apitest.Response {
	out := make([]*apitest.Response, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = fn(i)
		}()
	}
	wg.Wait()
	return out
}

// Concurrent writers never see a 5xx (no "database is locked" leaking out)
// and the rules that span resources hold under races.
func TestConcurrentWrites(t *testing.T) {
	e := apitest.Start(t)

	t.Run("many creates", func(t *testing.T) {
		rs := parallel(40, func(i int) *apitest.Response {
			acct := []apitest.Account{e.Joe, e.Titi}[i%2]
			return e.Call(t, acct, "CreateVolume", map[string]any{"SubregionName": "eu-west-2a", "Size": 1 + i%5})
		})
		ids := map[string]bool{}
		for _, r := range rs {
			var out struct{ Volume struct{ VolumeId string } }
			if r.Status != http.StatusOK || r.Decode(&out) != nil || out.Volume.VolumeId == "" {
				t.Errorf("CreateVolume: %s", r)
				continue
			}
			ids[out.Volume.VolumeId] = true
		}
		if len(ids) != 40 {
			t.Errorf("40 concurrent CreateVolume gave %d distinct ids", len(ids))
		}
	})

	t.Run("client token", func(t *testing.T) {
		rs := parallel(10, func(int) *apitest.Response {
			return e.Call(t, e.Joe, "CreateVolume", map[string]any{"SubregionName": "eu-west-2a", "Size": 2, "ClientToken": "same-token"})
		})
		ids := map[string]bool{}
		for _, r := range rs {
			var out struct{ Volume struct{ VolumeId string } }
			if r.Status != http.StatusOK || r.Decode(&out) != nil {
				t.Errorf("CreateVolume with ClientToken: %s", r)
				continue
			}
			ids[out.Volume.VolumeId] = true
		}
		var list struct{ Volumes []struct{ VolumeId string } }
		e.MustCall(t, e.Joe, "ReadVolumes", map[string]any{"Filters": map[string]any{"ClientTokens": []string{"same-token"}}}, &list)
		if len(ids) != 1 || len(list.Volumes) != 1 {
			t.Errorf("10 concurrent CreateVolume with one ClientToken: ids %v, %d volumes stored; want one", ids, len(list.Volumes))
		}
	})

	vol := newVolume(t, e, e.Joe, 1)
	snap := newSnapshot(t, e, e.Joe, vol)

	t.Run("same image name", func(t *testing.T) {
		rs := parallel(10, func(int) *apitest.Response {
			return e.Call(t, e.Joe, "CreateImage", map[string]any{"ImageName": "race-name", "RootDeviceName": "/dev/sda1",
				"BlockDeviceMappings": []map[string]any{{"DeviceName": "/dev/sda1", "Bsu": map[string]any{"SnapshotId": snap}}}})
		})
		ok := 0
		for _, r := range rs {
			switch {
			case r.Status == http.StatusOK:
				ok++
			case r.Status == http.StatusConflict && r.ErrorCode() == "9015":
			default:
				t.Errorf("concurrent CreateImage with one name: %s, want 200 or 409 9015", r)
			}
		}
		if ok != 1 {
			t.Errorf("%d of 10 concurrent CreateImage with one name succeeded, want exactly 1", ok)
		}
	})

	t.Run("tags", func(t *testing.T) {
		parallel(20, func(i int) *apitest.Response {
			r := e.Call(t, e.Joe, "CreateTags", map[string]any{"ResourceIds": []string{vol}, "Tags": []map[string]string{{"Key": fmt.Sprintf("k%02d", i), "Value": "v"}}})
			if r.Status != http.StatusOK {
				t.Errorf("CreateTags: %s", r)
			}
			return r
		})
		var out struct{ Tags []struct{ Key string } }
		e.MustCall(t, e.Joe, "ReadTags", map[string]any{"Filters": map[string]any{"ResourceIds": []string{vol}}}, &out)
		if len(out.Tags) != 20 {
			t.Errorf("20 concurrent CreateTags with distinct keys left %d tags: lost updates", len(out.Tags))
		}
	})

	// DeleteSnapshot racing CreateImage on the same snapshot: never both.
	t.Run("delete snapshot vs register", func(t *testing.T) {
		for round := 0; round < 8; round++ {
			s := newSnapshot(t, e, e.Joe, vol)
			rs := parallel(2, func(i int) *apitest.Response {
				if i == 0 {
					return e.Call(t, e.Joe, "DeleteSnapshot", map[string]any{"SnapshotId": s})
				}
				return e.Call(t, e.Joe, "CreateImage", map[string]any{"ImageName": fmt.Sprintf("race-%d", round), "RootDeviceName": "/dev/sda1",
					"BlockDeviceMappings": []map[string]any{{"DeviceName": "/dev/sda1", "Bsu": map[string]any{"SnapshotId": s}}}})
			})
			del, reg := rs[0], rs[1]
			if del.Status == http.StatusOK && reg.Status == http.StatusOK {
				t.Fatalf("round %d: snapshot %s deleted and an OMI registered on it", round, s)
			}
			if del.Status != http.StatusOK && reg.Status != http.StatusOK {
				t.Errorf("round %d: both failed: %s / %s", round, del, reg)
			}
		}
	})
}
