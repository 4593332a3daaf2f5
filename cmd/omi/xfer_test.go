package main

import (
	"compress/gzip"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	s3api "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/omiproject/omi/s3x"
)

const (
	joeAK, joeSK   = "11112211111110000000", "0000001111112222223333334444445555555666"
	titiAK, titiSK = "11112211111110000333", "1000001111112222223333334444445555555666"
)

// startRegion starts omi serve for one region with its own data directory
// and object storage.
func startRegion(t *testing.T, bin, region string, extra ...string) *proc {
	t.Helper()
	p := launch(t, bin, nil, "", nil, append([]string{"--region", region, "--data", t.TempDir(), "--catalog=false"}, extra...)...)
	p.region = region // requests signed for another region are refused
	return p
}

func waitFor(t *testing.T, what string, fn func() bool) {
	t.Helper()
	for i := 0; i < 600; i++ {
		if fn() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestExportImportAcrossRegions exports an OMI in one region to its object
// storage, imports the manifest in another region under another account,
// and reads the exported bytes back through a VM of the imported OMI. The
// exported qcow2 passes qemu-img check and compares equal to the source.
func TestExportImportAcrossRegions(t *testing.T) {
	needTool(t, "qemu-io")
	needTool(t, "qemu-img")
	bin := buildOmi(t)
	a := startRegion(t, bin, "eu-west-2")
	b := startRegion(t, bin, "us-east-2", "--fetch-allow", a.oos)
	ctx := context.Background()

	// joe prepares a bucket in region A and an OMI with known content.
	s3 := s3x.NewClient("http://"+a.oos, "eu-west-2", joeAK, joeSK)
	if err := s3.CreateBucket(ctx, "exports"); err != nil {
		t.Fatal(err)
	}
	var vol struct{ Volume struct{ VolumeId string } }
	a.call(t, "CreateVolume", map[string]any{"Size": 1, "SubregionName": "eu-west-2a"}, &vol)
	waitState(t, a, "ReadVolumes", vol.Volume.VolumeId, "available")
	srcURL := "nbd://" + a.nbd + "/" + vol.Volume.VolumeId
	qemuIO(t, srcURL, "write -P 0x6b 0 2M", "write -P 0x21 300M 256k", "write -P 0x7e 1023M 1M")
	var snap struct{ Snapshot struct{ SnapshotId string } }
	a.call(t, "CreateSnapshot", map[string]any{"VolumeId": vol.Volume.VolumeId}, &snap)
	waitState(t, a, "ReadSnapshots", snap.Snapshot.SnapshotId, "completed")
	var img struct{ Image struct{ ImageId string } }
	a.call(t, "CreateImage", map[string]any{"ImageName": "exported-omi", "RootDeviceName": "/dev/sda1", "ProductCodes": []string{"0001"},
		"BlockDeviceMappings": []map[string]any{{"DeviceName": "/dev/sda1", "Bsu": map[string]any{"SnapshotId": snap.Snapshot.SnapshotId, "VolumeType": "gp2"}}}}, &img)

	var task struct {
		ImageExportTask struct {
			TaskId, State string
			OsuExport     struct{ OsuPrefix, OsuManifestUrl string }
		}
	}
	a.call(t, "CreateImageExportTask", map[string]any{"ImageId": img.Image.ImageId,
		"OsuExport": map[string]any{"DiskImageFormat": "qcow2", "OsuBucket": "exports", "OsuPrefix": "backups"}}, &task)
	if task.ImageExportTask.OsuExport.OsuPrefix != "backups/"+img.Image.ImageId+"/" {
		t.Errorf("OsuPrefix %q", task.ImageExportTask.OsuExport.OsuPrefix)
	}
	var manifestURL string
	waitFor(t, "the export", func() bool {
		var out struct {
			ImageExportTasks []struct {
				State, Comment string
				Progress       int
				OsuExport      struct{ OsuManifestUrl string }
			}
		}
		a.call(t, "ReadImageExportTasks", map[string]any{"Filters": map[string]any{"TaskIds": []string{task.ImageExportTask.TaskId}}}, &out)
		tk := out.ImageExportTasks[0]
		if tk.State == "failed" {
			t.Fatalf("export failed: %s", tk.Comment)
		}
		manifestURL = tk.OsuExport.OsuManifestUrl
		return tk.State == "completed" && tk.Progress == 100
	})

	// The exported object is a valid qcow2 equal to the source volume.
	objKey := ""
	out, err := s3.S3().ListObjectsV2(ctx, listInput("exports", "backups/"+img.Image.ImageId+"/"))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		if strings.HasSuffix(*o.Key, ".qcow2.gz") {
			objKey = *o.Key
		}
	}
	if objKey == "" || !strings.Contains(objKey, snap.Snapshot.SnapshotId+"-") {
		t.Fatalf("no %s-xxxxxxxx.qcow2.gz object among %d", snap.Snapshot.SnapshotId, len(out.Contents))
	}
	body, _, err := s3.Open(ctx, "exports", objKey)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(body)
	if err != nil {
		t.Fatal(err)
	}
	qcow := filepath.Join(t.TempDir(), "disk.qcow2")
	f, _ := os.Create(qcow)
	if _, err := io.Copy(f, zr); err != nil {
		t.Fatal(err)
	}
	f.Close()
	body.Close()
	if out, err := exec.Command("qemu-img", "check", "-f", "qcow2", qcow).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img check: %v\n%s", err, out)
	}
	if out, err := exec.Command("qemu-img", "compare", "-f", "qcow2", "-F", "raw", qcow, srcURL).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img compare exported qcow2 vs source volume: %v\n%s", err, out)
	}

	// titi imports the manifest in region B: a new OMI in titi's account.
	tb := b.as(titiAK, titiSK)
	if code := tb.callErr(t, "CreateImage", map[string]any{"ImageName": "evil", "FileLocation": "http://169.254.169.254/latest/meta-data"}); code != "4074" {
		t.Errorf("import from a host not on the allow-list: code %q", code)
	}
	var imp struct {
		Image struct {
			ImageId, State string
			ProductCodes   []string
		}
	}
	tb.call(t, "CreateImage", map[string]any{"ImageName": "imported-omi", "FileLocation": manifestURL}, &imp)
	if imp.Image.State != "pending" {
		t.Errorf("imported OMI starts %s", imp.Image.State)
	}
	var imported struct {
		Images []struct {
			State               string
			ProductCodes        []string
			AccountId           string
			StateComment        struct{ StateMessage string }
			BlockDeviceMappings []struct {
				DeviceName string
				Bsu        struct{ VolumeType string }
			}
		}
	}
	waitFor(t, "the import", func() bool {
		tb.call(t, "ReadImages", map[string]any{"Filters": map[string]any{"ImageIds": []string{imp.Image.ImageId}}}, &imported)
		if imported.Images[0].State == "failed" {
			t.Fatalf("import failed: %s", imported.Images[0].StateComment.StateMessage)
		}
		return imported.Images[0].State == "available"
	})
	got := imported.Images[0]
	if got.AccountId != "210987654321" || len(got.ProductCodes) != 1 || got.ProductCodes[0] != "0001" ||
		got.BlockDeviceMappings[0].DeviceName != "/dev/sda1" || got.BlockDeviceMappings[0].Bsu.VolumeType != "gp2" {
		t.Errorf("imported OMI: %+v", got)
	}
	var vms struct {
		Vms []struct {
			BlockDeviceMappings []struct{ Bsu struct{ VolumeId string } }
		}
	}
	tb.call(t, "CreateVms", map[string]any{"ImageId": imp.Image.ImageId}, &vms)
	root := vms.Vms[0].BlockDeviceMappings[0].Bsu.VolumeId
	waitState(t, tb, "ReadVolumes", root, "in-use")
	qemuIO(t, "nbd://"+b.nbd+"/"+root, "read -P 0x6b 0 2M", "read -P 0x21 300M 256k", "read -P 0x7e 1023M 1M", "read -P 0 500M 1M")
}

// TestSnapshotExportRawAndImport exports one snapshot as raw.gz and imports
// it with CreateSnapshot FileLocation + SnapshotSize, byte-exact.
func TestSnapshotExportRawAndImport(t *testing.T) {
	needTool(t, "qemu-io")
	bin := buildOmi(t)
	a := startRegion(t, bin, "eu-west-2")
	ctx := context.Background()
	s3 := s3x.NewClient("http://"+a.oos, "eu-west-2", joeAK, joeSK)
	if err := s3.CreateBucket(ctx, "snaps"); err != nil {
		t.Fatal(err)
	}
	var vol struct{ Volume struct{ VolumeId string } }
	a.call(t, "CreateVolume", map[string]any{"Size": 1, "SubregionName": "eu-west-2a"}, &vol)
	waitState(t, a, "ReadVolumes", vol.Volume.VolumeId, "available")
	qemuIO(t, "nbd://"+a.nbd+"/"+vol.Volume.VolumeId, "write -P 0x33 4M 3M")
	var snap struct{ Snapshot struct{ SnapshotId string } }
	a.call(t, "CreateSnapshot", map[string]any{"VolumeId": vol.Volume.VolumeId}, &snap)
	waitState(t, a, "ReadSnapshots", snap.Snapshot.SnapshotId, "completed")
	var task struct{ SnapshotExportTask struct{ TaskId string } }
	a.call(t, "CreateSnapshotExportTask", map[string]any{"SnapshotId": snap.Snapshot.SnapshotId,
		"OsuExport": map[string]any{"DiskImageFormat": "raw", "OsuBucket": "snaps", "OsuPrefix": "raw/"}}, &task)
	waitFor(t, "the snapshot export", func() bool {
		var out struct {
			SnapshotExportTasks []struct{ State, Comment string }
		}
		a.call(t, "ReadSnapshotExportTasks", map[string]any{"Filters": map[string]any{"TaskIds": []string{task.SnapshotExportTask.TaskId}}}, &out)
		if out.SnapshotExportTasks[0].State == "failed" {
			t.Fatalf("export failed: %s", out.SnapshotExportTasks[0].Comment)
		}
		return out.SnapshotExportTasks[0].State == "completed"
	})
	list, err := s3.S3().ListObjectsV2(ctx, listInput("snaps", "raw/"))
	if err != nil || len(list.Contents) != 1 || !strings.HasSuffix(*list.Contents[0].Key, ".raw.gz") {
		t.Fatalf("objects: %+v %v", list, err)
	}
	url, err := s3.Presign(ctx, "snaps", *list.Contents[0].Key, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// A declared size smaller than the disk is refused; the right one imports.
	var bad struct{ Snapshot struct{ SnapshotId string } }
	a.call(t, "CreateSnapshot", map[string]any{"FileLocation": url, "SnapshotSize": 1 << 20}, &bad)
	var imp struct {
		Snapshot struct{ SnapshotId, State string }
	}
	a.call(t, "CreateSnapshot", map[string]any{"FileLocation": url, "SnapshotSize": 1 << 30, "Description": "imported"}, &imp)
	if imp.Snapshot.State != "importing" {
		t.Errorf("imported snapshot starts %s", imp.Snapshot.State)
	}
	waitState(t, a, "ReadSnapshots", imp.Snapshot.SnapshotId, "completed")
	waitState(t, a, "ReadSnapshots", bad.Snapshot.SnapshotId, "error")
	var vol2 struct{ Volume struct{ VolumeId string } }
	a.call(t, "CreateVolume", map[string]any{"SnapshotId": imp.Snapshot.SnapshotId, "SubregionName": "eu-west-2a"}, &vol2)
	waitState(t, a, "ReadVolumes", vol2.Volume.VolumeId, "available")
	qemuIO(t, "nbd://"+a.nbd+"/"+vol2.Volume.VolumeId, "read -P 0 0 4M", "read -P 0x33 4M 3M", "read -P 0 7M 1M")
}

func listInput(bucket, prefix string) *s3api.ListObjectsV2Input {
	return &s3api.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix}
}

// TestBlocksOnS3 runs omi with its block store in a bucket of another
// omi's object storage (any S3 service would do): volume data written over
// NBD, snapshotted and cloned, reads back, and the objects are in the bucket.
func TestBlocksOnS3(t *testing.T) {
	needTool(t, "qemu-io")
	bin := buildOmi(t)
	s3svc := startRegion(t, bin, "eu-west-2")
	ctx := context.Background()
	c := s3x.NewClient("http://"+s3svc.oos, "eu-west-2", titiAK, titiSK)
	if err := c.CreateBucket(ctx, "omi-blocks"); err != nil {
		t.Fatal(err)
	}
	p := launch(t, bin, nil, "", []string{"OMI_BLOCKSTORE_S3_ACCESS_KEY=" + titiAK, "OMI_BLOCKSTORE_S3_SECRET_KEY=" + titiSK},
		"--data", t.TempDir(), "--catalog=false",
		"--blockstore", "s3", "--blockstore-s3-endpoint", "http://"+s3svc.oos, "--blockstore-s3-bucket", "omi-blocks")
	var vol struct{ Volume struct{ VolumeId string } }
	p.call(t, "CreateVolume", map[string]any{"Size": 1, "SubregionName": "eu-west-2a"}, &vol)
	waitState(t, p, "ReadVolumes", vol.Volume.VolumeId, "available")
	qemuIO(t, "nbd://"+p.nbd+"/"+vol.Volume.VolumeId, "write -P 0x52 0 1M", "write -P 0x53 600M 512k")
	var snap struct{ Snapshot struct{ SnapshotId string } }
	p.call(t, "CreateSnapshot", map[string]any{"VolumeId": vol.Volume.VolumeId}, &snap)
	waitState(t, p, "ReadSnapshots", snap.Snapshot.SnapshotId, "completed")
	var vol2 struct{ Volume struct{ VolumeId string } }
	p.call(t, "CreateVolume", map[string]any{"SnapshotId": snap.Snapshot.SnapshotId, "SubregionName": "eu-west-2a"}, &vol2)
	waitState(t, p, "ReadVolumes", vol2.Volume.VolumeId, "available")
	qemuIO(t, "nbd://"+p.nbd+"/"+vol2.Volume.VolumeId, "read -P 0x52 0 1M", "read -P 0x53 600M 512k", "read -P 0 1M 1M")
	objs, _ := bucketLeftovers(t, c, "omi-blocks", "blocks/")
	if len(objs) < 2 {
		t.Fatalf("the bucket holds %d block objects; want the volume's blocks", len(objs))
	}
}
