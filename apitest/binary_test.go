package apitest_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"

	"github.com/omiproject/omi/apitest"
)

func buildOmi(t *testing.T) string { return apitest.BuildOmi(t) }

func startOmi(t *testing.T, bin, data string, args ...string) *apitest.OmiProc {
	return apitest.StartOmi(t, bin, data, args...)
}

// envLines parses the export OSC_X=value lines omi prints.
func envLines(out string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		line = strings.TrimPrefix(line, "export ")
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "OSC_") {
			m[k] = v
		}
	}
	return m
}

func readAccount(t *testing.T, e *apitest.Env, a apitest.Account) (string, error) {
	t.Helper()
	r, err := e.V3(a).ReadAccounts(context.Background(), oscv3.ReadAccountsRequest{})
	if err != nil {
		return "", err
	}
	if r.Accounts == nil || len(*r.Accounts) != 1 || (*r.Accounts)[0].AccountId == nil {
		t.Fatalf("ReadAccounts = %+v, want one account", r.Accounts)
	}
	return *(*r.Accounts)[0].AccountId, nil
}

func TestOmiBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the omi binary")
	}
	bin := buildOmi(t)

	t.Run("default account", func(t *testing.T) {
		data := t.TempDir()
		p := startOmi(t, bin, data)
		env := envLines(p.Stdout.String())
		for _, k := range []string{"OSC_ENDPOINT_API", "OSC_ACCESS_KEY", "OSC_SECRET_KEY", "OSC_REGION"} {
			if env[k] == "" {
				t.Fatalf("omi serve without --config printed no %s line; stdout:\n%s", k, p.Stdout)
			}
		}
		if env["OSC_ENDPOINT_API"] != p.URL+"/api/v1" || env["OSC_REGION"] != apitest.Region {
			t.Errorf("OSC_ENDPOINT_API=%s OSC_REGION=%s, want %s/api/v1 and %s", env["OSC_ENDPOINT_API"], env["OSC_REGION"], p.URL, apitest.Region)
		}
		if len(env["OSC_ACCESS_KEY"]) != 20 || len(env["OSC_SECRET_KEY"]) != 40 {
			t.Errorf("printed keys have %d/%d characters, want 20/40 (oapi-cli insists)", len(env["OSC_ACCESS_KEY"]), len(env["OSC_SECRET_KEY"]))
		}
		e := apitest.Attach(t, strings.TrimSuffix(env["OSC_ENDPOINT_API"], "/api/v1"))
		me := apitest.Account{Alias: "default", AccessKey: env["OSC_ACCESS_KEY"], SecretKey: env["OSC_SECRET_KEY"]}
		id, err := readAccount(t, e, me)
		if err != nil {
			t.Fatalf("printed credentials do not work: %v", err)
		}
		if _, err := readAccount(t, e, e.Joe); err == nil {
			t.Errorf("joe's keys work on a server started without --config")
		}
		vol, err := e.V3(me).CreateVolume(context.Background(), oscv3.CreateVolumeRequest{SubregionName: "eu-west-2a", Size: ptr(1)})
		if err != nil {
			t.Fatalf("CreateVolume: %v", err)
		}
		p.Stop(t)

		// Restart on the same data: same account, no new credentials, data kept.
		p2 := startOmi(t, bin, data)
		if again := envLines(p2.Stdout.String()); again["OSC_ACCESS_KEY"] != "" && again["OSC_ACCESS_KEY"] != env["OSC_ACCESS_KEY"] {
			t.Errorf("restart created new credentials %s", again["OSC_ACCESS_KEY"])
		}
		e2 := apitest.Attach(t, p2.URL)
		id2, err := readAccount(t, e2, me)
		if err != nil || id2 != id {
			t.Fatalf("after restart ReadAccounts = %q, %v; want %s", id2, err, id)
		}
		r, err := e2.V3(me).ReadVolumes(context.Background(), oscv3.ReadVolumesRequest{Filters: &oscv3.FiltersVolume{VolumeIds: &[]string{vol.Volume.VolumeId}}})
		if err != nil || r.Volumes == nil || len(*r.Volumes) != 1 {
			t.Errorf("volume %s after restart: %+v, %v", vol.Volume.VolumeId, r, err)
		}
		if fi, err := os.Stat(filepath.Join(data, "default-account.env")); err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("default-account.env: %v, mode %v; want it readable by the owner only", err, fi)
		}
	})

	t.Run("config", func(t *testing.T) {
		data := t.TempDir()
		p := startOmi(t, bin, data, "--config", apitest.ExampleAccountsFile())
		if env := envLines(p.Stdout.String()); env["OSC_ACCESS_KEY"] != "" {
			t.Errorf("with --config, omi created a default account: %v", env)
		}
		e := apitest.Attach(t, p.URL)
		for _, a := range []apitest.Account{e.Joe, e.Titi} {
			if id, err := readAccount(t, e, a); err != nil || id != a.AccountID {
				t.Errorf("%s's keys: ReadAccounts = %q, %v; want %s", a.Alias, id, err, a.AccountID)
			}
		}
		joe := e.V3(e.Joe)
		ctx := context.Background()
		vol, err := joe.CreateVolume(ctx, oscv3.CreateVolumeRequest{SubregionName: "eu-west-2a", Size: ptr(1)})
		if err != nil {
			t.Fatalf("CreateVolume: %v", err)
		}
		volID := vol.Volume.VolumeId
		waitState(t, func() (string, error) {
			r, err := joe.ReadVolumes(ctx, oscv3.ReadVolumesRequest{Filters: &oscv3.FiltersVolume{VolumeIds: &[]string{volID}}})
			if err != nil || r.Volumes == nil || len(*r.Volumes) == 0 {
				return "", err
			}
			return string((*r.Volumes)[0].State), nil
		}, "available")
		snap, err := joe.CreateSnapshot(ctx, oscv3.CreateSnapshotRequest{VolumeId: &volID})
		if err != nil {
			t.Fatalf("CreateSnapshot: %v", err)
		}
		snapID := snap.Snapshot.SnapshotId
		waitState(t, func() (string, error) {
			r, err := joe.ReadSnapshots(ctx, oscv3.ReadSnapshotsRequest{Filters: &oscv3.FiltersSnapshot{SnapshotIds: &[]string{snapID}}})
			if err != nil || r.Snapshots == nil || len(*r.Snapshots) == 0 {
				return "", err
			}
			return string((*r.Snapshots)[0].State), nil
		}, "completed")
		img, err := joe.CreateImage(ctx, oscv3.CreateImageRequest{ImageName: ptr("kept"), RootDeviceName: ptr("/dev/sda1"),
			BlockDeviceMappings: &[]oscv3.BlockDeviceMappingImage{{DeviceName: ptr("/dev/sda1"), Bsu: &oscv3.BsuToCreate{SnapshotId: &snapID}}}})
		if err != nil {
			t.Fatalf("CreateImage: %v", err)
		}
		imgID := img.Image.ImageId
		readImage := func(e *apitest.Env) (string, error) {
			r, err := e.V3(e.Joe).ReadImages(ctx, oscv3.ReadImagesRequest{Filters: &oscv3.FiltersImage{ImageIds: &[]string{imgID}}})
			if err != nil || r.Images == nil || len(*r.Images) == 0 {
				return "", err
			}
			return string((*r.Images)[0].State), nil
		}
		waitState(t, func() (string, error) { return readImage(e) }, "available")
		official := officialImages(t, e)
		p.Stop(t)

		p2 := startOmi(t, bin, data, "--config", apitest.ExampleAccountsFile())
		e2 := apitest.Attach(t, p2.URL)
		if st, err := readImage(e2); err != nil || st != "available" {
			t.Errorf("image %s after restart: state %q, %v; want available", imgID, st, err)
		}
		if id, err := readAccount(t, e2, e2.Joe); err != nil || id != e2.Joe.AccountID {
			t.Errorf("joe after restart: %q, %v", id, err)
		}
		if again := officialImages(t, e2); strings.Join(again, ",") != strings.Join(official, ",") {
			t.Errorf("official OMIs after restart = %v, want the same %v (published once)", again, official)
		}
	})
}

// officialImages waits for the official catalogue (public OMIs of the
// provider, alias Outscale) that omi serve publishes on first start, checks
// that joe can use but not change them, and returns their ids.
func officialImages(t *testing.T, e *apitest.Env) []string {
	t.Helper()
	ctx := context.Background()
	joe := e.V3(e.Joe)
	var imgs []oscv3.Image
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := joe.ReadImages(ctx, oscv3.ReadImagesRequest{Filters: &oscv3.FiltersImage{AccountAliases: &[]string{"Outscale"},
			States: &[]oscv3.ImageState{"available"}}})
		if err != nil {
			t.Fatalf("ReadImages of the official OMIs: %v", err)
		}
		if r.Images != nil && len(*r.Images) >= 4 {
			imgs = *r.Images
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("official OMIs not available within 60 s: %+v", r.Images)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var ids []string
	for _, img := range imgs {
		ids = append(ids, img.ImageId)
		if img.AccountId == e.Joe.AccountID || img.PermissionsToLaunch == nil || img.PermissionsToLaunch.GlobalPermission == nil || !*img.PermissionsToLaunch.GlobalPermission {
			t.Errorf("official OMI %s: owner %s, permissions %+v; want a public OMI of the provider", img.ImageId, img.AccountId, img.PermissionsToLaunch)
		}
	}
	// terraform's most_recent lookup by name pattern, then a copy.
	r, err := e.V3(e.Titi).ReadImages(ctx, oscv3.ReadImagesRequest{Filters: &oscv3.FiltersImage{ImageNames: &[]string{"Ubuntu*"}, AccountAliases: &[]string{"Outscale"}}})
	if err != nil || r.Images == nil || len(*r.Images) == 0 {
		t.Fatalf("titi finds no Ubuntu* official OMI: %+v, %v", r, err)
	}
	src := (*r.Images)[0].ImageId
	if _, err := joe.UpdateImage(ctx, oscv3.UpdateImageRequest{ImageId: src, Description: ptr("mine")}); err == nil {
		t.Errorf("joe changed the official OMI %s", src)
	}
	if _, err := joe.DeleteImage(ctx, oscv3.DeleteImageRequest{ImageId: src}); err == nil {
		t.Errorf("joe deleted the official OMI %s", src)
	}
	cp, err := e.V3(e.Titi).CreateImage(ctx, oscv3.CreateImageRequest{SourceImageId: &src, SourceRegionName: ptr(apitest.Region), ImageName: ptr(fmt.Sprintf("my-ubuntu-%d", time.Now().UnixNano()))})
	if err != nil {
		t.Fatalf("titi copies the official %s: %v", src, err)
	}
	if cp.Image.AccountId != e.Titi.AccountID {
		t.Errorf("copy of an official OMI owned by %s, want titi", cp.Image.AccountId)
	}
	sort.Strings(ids)
	return ids
}

func ptr[T any](v T) *T { return &v }

func waitState(t *testing.T, read func() (string, error), want string) {
	t.Helper()
	var got string
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got, err = read(); err == nil && got == want {
			return
		}
	}
	t.Fatalf("state %q (%v), want %q", got, err, want)
}
