package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	s3api "github.com/aws/aws-sdk-go-v2/service/s3"
	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"

	"github.com/omiproject/omi/apitest"
	"github.com/omiproject/omi/s3x"
)

// realServer is an `omi serve` process with its API, NBD and object
// storage on loopback ports, for the flows the in-process harness cannot
// run (imports and exports need object storage).
type realServer struct {
	*apitest.Env
	OOS string // host:port of the object storage
}

// startRealServer builds cmd/omi into the test's temporary directory and
// starts it with the example accounts and no official catalogue.
func startRealServer(t *testing.T) *realServer {
	t.Helper()
	goBin := apitest.NeedTool(t, "go")
	bin := filepath.Join(t.TempDir(), "omi")
	build := exec.Command(goBin, "build", "-o", bin, "./cmd/omi")
	build.Dir = apitest.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/omi: %v\n%s", err, out)
	}
	api, nbd, oos := loopbackPort(t), loopbackPort(t), loopbackPort(t)
	cmd := exec.Command(bin, "serve", "--listen", api, "--nbd-listen", nbd, "--oos-listen", oos, "--data", t.TempDir(),
		"--config", apitest.ExampleAccountsFile(), "--catalog=false", "--vm-driver", "sim", "--log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start omi serve: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(15 * time.Second)
	for !dials(api) || !dials(nbd) || !dials(oos) {
		if time.Now().After(deadline) {
			t.Fatal("omi serve did not listen within 15 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &realServer{Env: apitest.Attach(t, "http://"+api), OOS: oos}
}

func loopbackPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func dials(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// bucket creates a bucket in the server's object storage as a.
func (s *realServer) bucket(t *testing.T, a apitest.Account, name string) *s3x.Client {
	t.Helper()
	c := s3x.NewClient("http://"+s.OOS, apitest.Region, a.AccessKey, a.SecretKey)
	if err := c.CreateBucket(t.Context(), name); err != nil {
		t.Fatalf("create bucket %s as %s: %v", name, a.Alias, err)
	}
	return c
}

// exportImage exports an OMI as a into bucket and returns the manifest URL
// from ReadImageExportTasks once the task is completed.
func exportImage(t *testing.T, e *apitest.Env, a apitest.Account, imageID, bucket string) string {
	t.Helper()
	c := e.V3(a)
	task, err := c.CreateImageExportTask(t.Context(), oscv3.CreateImageExportTaskRequest{ImageId: imageID,
		OsuExport: oscv3.OsuExportToCreate{DiskImageFormat: "qcow2", OsuBucket: bucket, OsuPrefix: ptr("omis")}})
	if err != nil {
		t.Fatalf("CreateImageExportTask %s: %v", imageID, err)
	}
	taskID := deref(task.ImageExportTask.TaskId)
	url := ""
	apitest.WaitFor(t, 3*wait, "export task "+taskID, func() (bool, error) {
		r, err := c.ReadImageExportTasks(t.Context(), oscv3.ReadImageExportTasksRequest{Filters: &oscv3.FiltersReadImageExportTask{TaskIds: &[]string{taskID}}})
		if err != nil || len(deref(r.ImageExportTasks)) != 1 {
			return false, err
		}
		tk := deref(r.ImageExportTasks)[0]
		if deref(tk.State) == "failed" {
			t.Fatalf("export %s failed: %s", taskID, deref(tk.Comment))
		}
		if tk.OsuExport != nil {
			url = deref(tk.OsuExport.OsuManifestUrl)
		}
		return deref(tk.State) == "completed", nil
	})
	if url == "" {
		t.Fatalf("completed export %s has no OsuManifestUrl", taskID)
	}
	return url
}

// exportSnapshot exports a snapshot as a into bucket (raw) and returns a
// pre-signed URL of the object.
func exportSnapshot(t *testing.T, s *realServer, s3 *s3x.Client, a apitest.Account, snapID, bucket string) string {
	t.Helper()
	c := s.V3(a)
	task, err := c.CreateSnapshotExportTask(t.Context(), oscv3.CreateSnapshotExportTaskRequest{SnapshotId: snapID,
		OsuExport: oscv3.OsuExportToCreate{DiskImageFormat: "raw", OsuBucket: bucket, OsuPrefix: ptr("snaps/")}})
	if err != nil {
		t.Fatalf("CreateSnapshotExportTask %s: %v", snapID, err)
	}
	taskID := task.SnapshotExportTask.TaskId
	apitest.WaitFor(t, 3*wait, "snapshot export "+taskID, func() (bool, error) {
		r, err := c.ReadSnapshotExportTasks(t.Context(), oscv3.ReadSnapshotExportTasksRequest{Filters: &oscv3.FiltersSnapshotExportTask{TaskIds: &[]string{taskID}}})
		if err != nil || len(deref(r.SnapshotExportTasks)) != 1 {
			return false, err
		}
		tk := deref(r.SnapshotExportTasks)[0]
		if tk.State == "failed" {
			t.Fatalf("snapshot export %s failed: %s", taskID, tk.Comment)
		}
		return tk.State == "completed", nil
	})
	list, err := s3.S3().ListObjectsV2(t.Context(), &s3api.ListObjectsV2Input{Bucket: &bucket, Prefix: ptr("snaps/")})
	if err != nil {
		t.Fatalf("list exported snapshot: %v", err)
	}
	key := ""
	for _, o := range list.Contents {
		if strings.Contains(*o.Key, snapID) {
			key = *o.Key
		}
	}
	if key == "" {
		t.Fatalf("no object for %s under snaps/ (%d objects)", snapID, len(list.Contents))
	}
	url, err := s3.Presign(t.Context(), bucket, key, time.Hour)
	if err != nil {
		t.Fatalf("presign %s: %v", key, err)
	}
	return url
}

// productCodes returns the product codes of an OMI as a sees it, once
// available.
func productCodes(t *testing.T, e *apitest.Env, a apitest.Account, id string) []string {
	t.Helper()
	img := tfWait(t, e.V3(a), id, []string{"pending"}, []string{"available"})
	return sorted(append([]string{}, deref(img.ProductCodes)...))
}

// Two flows that need object storage, on one real omi serve process: the
// terraform "Import an image" example, and product codes through copies,
// OMI exports and snapshot exports.
func TestRealServerImageFlows(t *testing.T) {
	t.Parallel()
	s := startRealServer(t)

	// Example "Import an image": joe exports an OMI; titi's configuration
	// has description, image_name and file_location = the manifest URL.
	t.Run("terraform import from manifest", func(t *testing.T) {
		e := s.Env
		vol := newVolume(t, e, e.Joe, 1)
		snap := newSnapshot(t, e, e.Joe, vol)
		src, err := e.V3(e.Joe).CreateImage(t.Context(), oscv3.CreateImageRequest{ImageName: ptr("tf-export-source"),
			RootDeviceName: ptr("/dev/sda1"), BlockDeviceMappings: &[]oscv3.BlockDeviceMappingImage{{DeviceName: ptr("/dev/sda1"),
				Bsu: &oscv3.BsuToCreate{SnapshotId: &snap, VolumeType: ptr(oscv3.VolumeType("gp2")), DeleteOnVmDeletion: ptr(false)}}}})
		if err != nil {
			t.Fatalf("CreateImage source: %v", err)
		}
		waitImage(t, e, e.Joe, src.Image.ImageId, "available")
		s.bucket(t, e.Joe, "tf-exports")
		url := exportImage(t, e, e.Joe, src.Image.ImageId, "tf-exports")

		want := tfImage{Owner: e.Titi, Name: "terraform-omi-register", Description: "Terraform register OMI", FileLocation: url,
			Mappings: []oscv3.BlockDeviceMappingImage{{DeviceName: ptr("/dev/sda1"),
				Bsu: &oscv3.BsuToCreate{VolumeSize: ptr(1), VolumeType: ptr(oscv3.VolumeType("gp2")), DeleteOnVmDeletion: ptr(false)}}}}
		img := tfCreate(t, e, want, oscv3.CreateImageRequest{Description: ptr(want.Description), ImageName: ptr(want.Name), FileLocation: &url})
		if s := deref(deref(img.BlockDeviceMappings)[0].Bsu.SnapshotId); s == snap {
			t.Errorf("imported OMI maps joe's snapshot %s", s)
		}
		tfImport(t, e, want, img.ImageId)
		tfDestroy(t, e, e.Titi, img.ImageId)
	})

	// The seller publishes a marketplace OMI with its product type 0100:
	// a copy and an OMI export + import keep 0100; a snapshot export +
	// import registered as an OMI does not.
	t.Run("product codes across export and import", func(t *testing.T) {
		e := s.Env
		seller := e.V3(e.Marketplace)
		vol := newVolume(t, e, e.Marketplace, 1)
		snap := newSnapshot(t, e, e.Marketplace, vol)
		reg, err := seller.CreateImage(t.Context(), oscv3.CreateImageRequest{ImageName: ptr("Example-Appliance-1.0"),
			ProductCodes: &[]string{"0100"}, RootDeviceName: ptr("/dev/sda1"),
			BlockDeviceMappings: &[]oscv3.BlockDeviceMappingImage{{DeviceName: ptr("/dev/sda1"), Bsu: &oscv3.BsuToCreate{SnapshotId: &snap}}}})
		if err != nil {
			t.Fatalf("seller registers the marketplace OMI: %v", err)
		}
		mkt := reg.Image.ImageId
		if got := productCodes(t, e, e.Marketplace, mkt); !equalStrings(got, []string{"0100"}) {
			t.Fatalf("marketplace OMI product codes %v, want [0100]", got)
		}
		if _, err := seller.UpdateImage(t.Context(), oscv3.UpdateImageRequest{ImageId: mkt, PermissionsToLaunch: &oscv3.PermissionsOnResourceCreation{
			Additions: &oscv3.PermissionsOnResource{GlobalPermission: ptr(true)}}}); err != nil {
			t.Fatalf("seller makes the OMI public: %v", err)
		}
		// Product types list 0100 for anyone.
		pt, err := e.V3Anonymous().ReadProductTypes(t.Context(), oscv3.ReadProductTypesRequest{})
		if err != nil {
			t.Fatalf("ReadProductTypes: %v", err)
		}
		found := false
		for _, p := range deref(pt.ProductTypes) {
			found = found || deref(p.ProductTypeId) == "0100"
		}
		if !found {
			t.Errorf("ReadProductTypes does not list 0100")
		}

		// Another account copies it: the copy keeps 0100, and so do its VMs.
		cp, err := e.V3(e.Titi).CreateImage(t.Context(), oscv3.CreateImageRequest{ImageName: ptr("appliance-copy"),
			SourceImageId: &mkt, SourceRegionName: ptr(apitest.Region)})
		if err != nil {
			t.Fatalf("titi copies the public marketplace OMI: %v", err)
		}
		if got := productCodes(t, e, e.Titi, cp.Image.ImageId); !equalStrings(got, []string{"0100"}) {
			t.Errorf("copy product codes %v, want [0100]", got)
		}
		vms, err := e.V3(e.Titi).CreateVms(t.Context(), oscv3.CreateVmsRequest{ImageId: cp.Image.ImageId})
		if err != nil || len(deref(vms.Vms)) != 1 {
			t.Fatalf("CreateVms from the copy: %v", err)
		}
		if vm := waitVm(t, e.V3(e.Titi), deref(vms.Vms)[0].VmId, "running"); !equalStrings(vm.ProductCodes, []string{"0100"}) {
			t.Errorf("VM from the copy has product codes %v, want [0100]", vm.ProductCodes)
		}
		// Nobody else may publish 0100.
		if _, err := e.V3(e.Joe).CreateImage(t.Context(), oscv3.CreateImageRequest{ImageName: ptr("fake-appliance"), ProductCodes: &[]string{"0100"},
			RootDeviceName: ptr("/dev/sda1"), BlockDeviceMappings: &[]oscv3.BlockDeviceMappingImage{{DeviceName: ptr("/dev/sda1"),
				Bsu: &oscv3.BsuToCreate{SnapshotId: ptr(newSnapshot(t, e, e.Joe, newVolume(t, e, e.Joe, 1)))}}}}); err == nil {
			t.Errorf("joe registered an OMI with the seller's product code 0100")
		} else if st := apitest.Status(err); st < 400 || st > 499 {
			t.Errorf("joe registering 0100: HTTP %d (%v), want 4xx", st, err)
		}

		// OMI export by the seller, import by joe: keeps 0100.
		s3 := s.bucket(t, e.Marketplace, "appliance-exports")
		url := exportImage(t, e, e.Marketplace, mkt, "appliance-exports")
		imp, err := e.V3(e.Joe).CreateImage(t.Context(), oscv3.CreateImageRequest{ImageName: ptr("appliance-imported"), FileLocation: &url})
		if err != nil {
			t.Fatalf("joe imports the marketplace OMI's manifest: %v", err)
		}
		if got := productCodes(t, e, e.Joe, imp.Image.ImageId); !equalStrings(got, []string{"0100"}) {
			t.Errorf("OMI imported from an OMI export has product codes %v, want [0100]", got)
		}

		// Snapshot export by the seller, snapshot import and registration
		// by joe: no product code.
		snapURL := exportSnapshot(t, s, s3, e.Marketplace, snap, "appliance-exports")
		isnap, err := e.V3(e.Joe).CreateSnapshot(t.Context(), oscv3.CreateSnapshotRequest{FileLocation: &snapURL, SnapshotSize: ptr(int64(1 << 30)),
			Description: ptr("appliance disk")})
		if err != nil {
			t.Fatalf("joe imports the exported snapshot: %v", err)
		}
		waitSnapshot(t, e, e.Joe, isnap.Snapshot.SnapshotId)
		fromSnap := registerImage(t, e, e.Joe, "appliance-from-snapshot", isnap.Snapshot.SnapshotId)
		if got := productCodes(t, e, e.Joe, fromSnap.ImageId); len(got) != 0 {
			t.Errorf("OMI registered from a snapshot export has product codes %v, want none", got)
		}
	})
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
