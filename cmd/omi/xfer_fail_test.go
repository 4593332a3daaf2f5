package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	s3api "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/omiproject/omi/s3x"
)

// volumeWithRandomData makes a 1 GiB volume holding size bytes of random
// data (incompressible, so exports take measurable time), snapshots it and
// registers an OMI; it returns the image and the volume ids.
func volumeWithRandomData(t *testing.T, p *proc, size int64, name string) (string, string) {
	t.Helper()
	raw := filepath.Join(t.TempDir(), "random.raw")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var vol struct{ Volume struct{ VolumeId string } }
	p.call(t, "CreateVolume", map[string]any{"Size": 1, "SubregionName": "eu-west-2a"}, &vol)
	waitState(t, p, "ReadVolumes", vol.Volume.VolumeId, "available")
	if out, err := exec.Command("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", raw, "nbd://"+p.nbd+"/"+vol.Volume.VolumeId).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	var snap struct{ Snapshot struct{ SnapshotId string } }
	p.call(t, "CreateSnapshot", map[string]any{"VolumeId": vol.Volume.VolumeId}, &snap)
	waitState(t, p, "ReadSnapshots", snap.Snapshot.SnapshotId, "completed")
	var img struct{ Image struct{ ImageId string } }
	p.call(t, "CreateImage", map[string]any{"ImageName": name, "RootDeviceName": "/dev/sda1",
		"BlockDeviceMappings": []map[string]any{{"DeviceName": "/dev/sda1", "Bsu": map[string]any{"SnapshotId": snap.Snapshot.SnapshotId}}}}, &img)
	return img.Image.ImageId, vol.Volume.VolumeId
}

type exportTask struct {
	State, Comment string
	Progress       int
	OsuExport      struct{ OsuManifestUrl string }
}

func readExport(t *testing.T, p *proc, id string) exportTask {
	t.Helper()
	var out struct{ ImageExportTasks []exportTask }
	p.call(t, "ReadImageExportTasks", map[string]any{"Filters": map[string]any{"TaskIds": []string{id}}}, &out)
	if len(out.ImageExportTasks) != 1 {
		t.Fatalf("export task %s not found", id)
	}
	return out.ImageExportTasks[0]
}

// bucketLeftovers lists the objects and the open multipart uploads under a
// prefix: what a cancelled or redone export must not leave.
func bucketLeftovers(t *testing.T, c *s3x.Client, bucket, prefix string) (objects []string, uploads int) {
	t.Helper()
	ctx := context.Background()
	out, err := c.S3().ListObjectsV2(ctx, &s3api.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		objects = append(objects, *o.Key)
	}
	mp, err := c.S3().ListMultipartUploads(ctx, &s3api.ListMultipartUploadsInput{Bucket: &bucket, Prefix: &prefix})
	if err != nil {
		t.Fatal(err)
	}
	return objects, len(mp.Uploads)
}

// TestExportCancelAndBadManifests cancels a running export (nothing stays
// in the bucket), then feeds broken manifests to CreateImage: a manifest
// that is not JSON or of version 2 is a 4xx at once; one pointing to a
// missing object, lying about a size or a digest ends as a failed OMI with
// a StateComment and leaves no snapshot behind.
func TestExportCancelAndBadManifests(t *testing.T) {
	needTool(t, "qemu-img")
	bin := buildOmi(t)
	p := startRegion(t, bin, "eu-west-2")
	ctx := context.Background()
	s3 := s3x.NewClient("http://"+p.oos, "eu-west-2", joeAK, joeSK)
	if err := s3.CreateBucket(ctx, "cancel"); err != nil {
		t.Fatal(err)
	}
	imageID, _ := volumeWithRandomData(t, p, 96<<20, "to-cancel")

	// Cancel while running.
	var task struct{ ImageExportTask struct{ TaskId string } }
	p.call(t, "CreateImageExportTask", map[string]any{"ImageId": imageID,
		"OsuExport": map[string]any{"DiskImageFormat": "qcow2", "OsuBucket": "cancel", "OsuPrefix": "c"}}, &task)
	id := task.ImageExportTask.TaskId
	waitFor(t, "the export to start", func() bool { return readExport(t, p, id).State == "active" })
	var none struct{}
	p.call(t, "DeleteExportTask", map[string]any{"ExportTaskId": id}, &none)
	if got := readExport(t, p, id); got.State != "cancelled" {
		t.Fatalf("cancelled export is %s", got.State)
	}
	waitFor(t, "the cancelled export's objects to go", func() bool {
		objs, ups := bucketLeftovers(t, s3, "cancel", "c/")
		return len(objs) == 0 && ups == 0
	})
	if code := p.callErr(t, "DeleteExportTask", map[string]any{"ExportTaskId": id}); code != "6003" {
		t.Errorf("cancelling a cancelled task: code %q", code)
	}

	// A good export gives a manifest to break.
	p.call(t, "CreateImageExportTask", map[string]any{"ImageId": imageID,
		"OsuExport": map[string]any{"DiskImageFormat": "qcow2", "OsuBucket": "cancel", "OsuPrefix": "good"}}, &task)
	var manifestURL string
	waitFor(t, "the export", func() bool {
		got := readExport(t, p, task.ImageExportTask.TaskId)
		manifestURL = got.OsuExport.OsuManifestUrl
		return got.State == "completed"
	})
	resp, err := http.Get(manifestURL)
	if err != nil {
		t.Fatal(err)
	}
	var manifest map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&manifest); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	put := func(key string, body []byte) string {
		t.Helper()
		if _, err := s3.Upload(ctx, "cancel", key, strings.NewReader(string(body)), nil); err != nil {
			t.Fatal(err)
		}
		u, err := s3.Presign(ctx, "cancel", key, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	mutate := func(fn func(snap map[string]any)) []byte {
		var m map[string]any
		b, _ := json.Marshal(manifest)
		json.Unmarshal(b, &m)
		fn(m["Image"].(map[string]any)["Snapshots"].([]any)[0].(map[string]any))
		out, _ := json.Marshal(m)
		return out
	}
	// Refused at once.
	if code := p.callErr(t, "CreateImage", map[string]any{"ImageName": "bad-json", "FileLocation": put("bad/notjson", []byte("<html>oops</html>"))}); code != "4041" {
		t.Errorf("manifest that is not JSON: code %q", code)
	}
	v2 := mutate(func(map[string]any) {})
	v2 = []byte(strings.Replace(string(v2), `"Version":1`, `"Version":2`, 1))
	if code := p.callErr(t, "CreateImage", map[string]any{"ImageName": "bad-version", "FileLocation": put("bad/v2", v2)}); code != "4094" {
		t.Errorf("manifest of version 2: code %q", code)
	}
	snapsBefore := countSnapshots(t, p)
	// Accepted, then failed with a reason, leaving no snapshot.
	for name, m := range map[string][]byte{
		"missing-object": mutate(func(s map[string]any) { s["PreSignedUrl"] = presignMissing(t, s3) }),
		"lying-size":     mutate(func(s map[string]any) { s["Size"] = 64 << 20 }),
		"wrong-digest":   mutate(func(s map[string]any) { s["OmiDiskSha256"] = strings.Repeat("ab", 32) }),
	} {
		var img struct{ Image struct{ ImageId string } }
		p.call(t, "CreateImage", map[string]any{"ImageName": name, "FileLocation": put("bad/"+name, m)}, &img)
		var failed struct {
			Images []struct {
				State        string
				StateComment struct{ StateCode, StateMessage string }
			}
		}
		waitFor(t, name+" to fail", func() bool {
			p.call(t, "ReadImages", map[string]any{"Filters": map[string]any{"ImageIds": []string{img.Image.ImageId}}}, &failed)
			if failed.Images[0].State == "available" {
				t.Fatalf("%s: the import succeeded", name)
			}
			return failed.Images[0].State == "failed"
		})
		if failed.Images[0].StateComment.StateMessage == "" {
			t.Errorf("%s: failed without a StateComment", name)
		}
		t.Logf("%s: %+v", name, failed.Images[0].StateComment)
	}
	if n := countSnapshots(t, p); n != snapsBefore {
		t.Errorf("failed imports left %d snapshots behind", n-snapsBefore)
	}
}

func presignMissing(t *testing.T, c *s3x.Client) string {
	u, err := c.Presign(context.Background(), "cancel", "bad/does-not-exist.qcow2.gz", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func countSnapshots(t *testing.T, p *proc) int {
	t.Helper()
	var out struct{ Snapshots []struct{ SnapshotId string } }
	p.call(t, "ReadSnapshots", map[string]any{"Filters": map[string]any{"AccountIds": []string{"123456789012"}}}, &out)
	return len(out.Snapshots)
}

// TestExportSurvivesKill9 kills omi with SIGKILL in the middle of an export:
// after a restart the task is redone and completes, the bucket holds one
// disk object and the manifest, and no multipart upload is left open.
func TestExportSurvivesKill9(t *testing.T) {
	needTool(t, "qemu-img")
	bin := buildOmi(t)
	data := t.TempDir()
	p := startRegionData(t, bin, data)
	ctx := context.Background()
	s3 := s3x.NewClient("http://"+p.oos, "eu-west-2", joeAK, joeSK)
	if err := s3.CreateBucket(ctx, "crash"); err != nil {
		t.Fatal(err)
	}
	imageID, volID := volumeWithRandomData(t, p, 192<<20, "to-crash")
	var task struct{ ImageExportTask struct{ TaskId string } }
	p.call(t, "CreateImageExportTask", map[string]any{"ImageId": imageID,
		"OsuExport": map[string]any{"DiskImageFormat": "qcow2", "OsuBucket": "crash", "OsuPrefix": "k"}}, &task)
	id := task.ImageExportTask.TaskId
	waitFor(t, "the export to be under way", func() bool {
		got := readExport(t, p, id)
		return got.State == "active" && got.Progress > 0 || got.State == "completed"
	})
	if got := readExport(t, p, id); got.State == "completed" {
		t.Skip("the export finished before it could be interrupted")
	}
	p.cmd.Process.Kill()
	p.cmd.Wait()

	p2 := startRegionData(t, bin, data, p)
	waitFor(t, "the export to complete after the restart", func() bool {
		got := readExport(t, p2, id)
		if got.State == "failed" {
			t.Fatalf("export failed after restart: %s", got.Comment)
		}
		return got.State == "completed"
	})
	s3b := s3x.NewClient("http://"+p2.oos, "eu-west-2", joeAK, joeSK)
	objs, uploads := bucketLeftovers(t, s3b, "crash", "k/")
	disks := 0
	for _, o := range objs {
		if strings.HasSuffix(o, ".qcow2.gz") {
			disks++
		}
	}
	if disks != 1 || len(objs) != 2 || uploads != 0 {
		t.Fatalf("after the redone export: objects %v, %d open uploads; want one disk, the manifest and no upload", objs, uploads)
	}
	_ = volID
}

// startRegionData is startRegion on a given data directory; after a
// restart, pass the previous process to keep its ports.
func startRegionData(t *testing.T, bin, data string, prev ...*proc) *proc {
	t.Helper()
	var p *proc
	if len(prev) > 0 {
		p = prev[0]
	}
	return launch(t, bin, p, "", nil, "--data", data, "--catalog=false")
}

// TestImportSurvivesKill9 kills omi in the middle of a snapshot import:
// after a restart the import is redone from the start and the snapshot's
// content is exactly the exported disk.
func TestImportSurvivesKill9(t *testing.T) {
	needTool(t, "qemu-img")
	bin := buildOmi(t)
	data := t.TempDir()
	p := startRegionData(t, bin, data)
	ctx := context.Background()
	s3 := s3x.NewClient("http://"+p.oos, "eu-west-2", joeAK, joeSK)
	if err := s3.CreateBucket(ctx, "imp"); err != nil {
		t.Fatal(err)
	}
	imageID, volID := volumeWithRandomData(t, p, 192<<20, "to-import")
	var task struct{ ImageExportTask struct{ TaskId string } }
	p.call(t, "CreateImageExportTask", map[string]any{"ImageId": imageID,
		"OsuExport": map[string]any{"DiskImageFormat": "raw", "OsuBucket": "imp", "OsuPrefix": "i"}}, &task)
	var manifestURL string
	waitFor(t, "the export", func() bool {
		got := readExport(t, p, task.ImageExportTask.TaskId)
		manifestURL = got.OsuExport.OsuManifestUrl
		return got.State == "completed"
	})
	var img struct{ Image struct{ ImageId string } }
	p.call(t, "CreateImage", map[string]any{"ImageName": "imported", "FileLocation": manifestURL}, &img)
	var snapID string
	waitFor(t, "the import to be under way", func() bool {
		var out struct {
			Images []struct {
				BlockDeviceMappings []struct{ Bsu struct{ SnapshotId string } }
			}
		}
		p.call(t, "ReadImages", map[string]any{"Filters": map[string]any{"ImageIds": []string{img.Image.ImageId}}}, &out)
		snapID = out.Images[0].BlockDeviceMappings[0].Bsu.SnapshotId
		var snaps struct {
			Snapshots []struct {
				State    string
				Progress int
			}
		}
		p.call(t, "ReadSnapshots", map[string]any{"Filters": map[string]any{"SnapshotIds": []string{snapID}}}, &snaps)
		return snaps.Snapshots[0].State == "importing" && snaps.Snapshots[0].Progress > 0 || snaps.Snapshots[0].State == "completed"
	})
	p.cmd.Process.Kill()
	p.cmd.Wait()

	p2 := startRegionData(t, bin, data, p)
	waitFor(t, "the import to complete after the restart", func() bool {
		var snaps struct{ Snapshots []struct{ State string } }
		p2.call(t, "ReadSnapshots", map[string]any{"Filters": map[string]any{"SnapshotIds": []string{snapID}}}, &snaps)
		if snaps.Snapshots[0].State == "error" {
			t.Fatal("the import failed after the restart")
		}
		return snaps.Snapshots[0].State == "completed"
	})
	var vol struct{ Volume struct{ VolumeId string } }
	p2.call(t, "CreateVolume", map[string]any{"SnapshotId": snapID, "SubregionName": "eu-west-2a"}, &vol)
	waitState(t, p2, "ReadVolumes", vol.Volume.VolumeId, "available")
	if out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "raw",
		"nbd://"+p2.nbd+"/"+volID, "nbd://"+p2.nbd+"/"+vol.Volume.VolumeId).CombinedOutput(); err != nil {
		t.Fatalf("imported volume differs from the source: %v\n%s", err, out)
	}
}
