package main

import (
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The tests of this file run three omi nodes on loopback as one region
// (issue 6): one PostgreSQL schema, blocks and exports in buckets of a
// fourth, storage-only omi. Each starts its own region.

const titiAccount = "210987654321"

// clusterVolume creates a 1 GiB volume through p and waits until it is
// available as seen through q.
func clusterVolume(t *testing.T, p, q *proc) string {
	t.Helper()
	var vol struct{ Volume struct{ VolumeId string } }
	p.call(t, "CreateVolume", map[string]any{"Size": 1, "SubregionName": "eu-west-2a"}, &vol)
	if err := awaitState(q, "volume", vol.Volume.VolumeId, "available", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	return vol.Volume.VolumeId
}

// clusterSnapshot snapshots a volume through p and waits until the
// snapshot is completed as seen through q.
func clusterSnapshot(t *testing.T, p, q *proc, volID string) string {
	t.Helper()
	var snap struct{ Snapshot struct{ SnapshotId string } }
	p.call(t, "CreateSnapshot", map[string]any{"VolumeId": volID}, &snap)
	if err := awaitState(q, "snapshot", snap.Snapshot.SnapshotId, "completed", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	return snap.Snapshot.SnapshotId
}

// registerBody is the CreateImage request registering an OMI from one
// snapshot.
func registerBody(name, snapID string) map[string]any {
	return map[string]any{"ImageName": name, "RootDeviceName": "/dev/sda1",
		"BlockDeviceMappings": []map[string]any{{"DeviceName": "/dev/sda1", "Bsu": map[string]any{"SnapshotId": snapID}}}}
}

type clusterImage struct {
	ImageId, ImageName, State, AccountId string
	PermissionsToLaunch                  struct {
		AccountIds       []string
		GlobalPermission bool
	}
	BlockDeviceMappings []struct{ Bsu struct{ SnapshotId string } }
}

// readImage reads one OMI by id through p; ok is false when p does not
// list it.
func readImage(t *testing.T, p *proc, id string) (clusterImage, bool) {
	t.Helper()
	var out struct{ Images []clusterImage }
	p.call(t, "ReadImages", map[string]any{"Filters": map[string]any{"ImageIds": []string{id}}}, &out)
	if len(out.Images) != 1 {
		return clusterImage{}, false
	}
	return out.Images[0], true
}

// awaitImage waits until OMI id is available through p.
func awaitImage(t *testing.T, p *proc, id string) clusterImage {
	t.Helper()
	var img clusterImage
	waitUntil(t, 30*time.Second, "OMI "+id+" to be available", func() bool {
		var ok bool
		img, ok = readImage(t, p, id)
		if ok && img.State == "failed" {
			t.Fatalf("OMI %s failed", id)
		}
		return ok && img.State == "available"
	})
	return img
}

// TestClusterMetadataAcrossNodes runs the register, share and
// create-from-VM flows with each step through another node: every answer
// is visible through every node at once (no polling for visibility): with
// several live nodes no node serves from its record cache (package
// cluster, "Record caches").
func TestClusterMetadataAcrossNodes(t *testing.T) {
	c := startCluster(t, clusterOpts{nodes: 3})
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]

	vol := clusterVolume(t, n1, n2)
	snap := clusterSnapshot(t, n2, n3, vol)
	var reg struct{ Image struct{ ImageId string } }
	n3.call(t, "CreateImage", registerBody("registered-on-3", snap), &reg)
	id := reg.Image.ImageId
	for i, p := range []*proc{n1, n2, n3} {
		img, ok := readImage(t, p, id)
		if !ok || img.ImageName != "registered-on-3" || len(img.BlockDeviceMappings) != 1 || img.BlockDeviceMappings[0].Bsu.SnapshotId != snap {
			t.Fatalf("node %d right after registration on node 3: found %v, %+v", i+1, ok, img)
		}
	}
	// The snapshot knows it is used, whichever node asks to delete it.
	if code := n1.callErr(t, "DeleteSnapshot", map[string]any{"SnapshotId": snap}); code == "" {
		t.Fatal("deleting a snapshot in use succeeded")
	}

	// Shared with titi through node 2; titi sees it through node 3 and
	// not before.
	titi3 := n3.as(titiAK, titiSK)
	if _, ok := readImage(t, titi3, id); ok {
		t.Fatal("titi sees joe's OMI before it is shared")
	}
	var none struct{}
	n2.call(t, "UpdateImage", map[string]any{"ImageId": id,
		"PermissionsToLaunch": map[string]any{"Additions": map[string]any{"AccountIds": []string{titiAccount}}}}, &none)
	if _, ok := readImage(t, titi3, id); !ok {
		t.Fatal("titi does not see the OMI through node 3 right after it was shared through node 2")
	}
	// Only the owner sees whom an OMI is shared with.
	if img, _ := readImage(t, n1, id); !slices.Contains(img.PermissionsToLaunch.AccountIds, titiAccount) {
		t.Fatalf("joe through node 1 right after sharing through node 2: %+v", img)
	}

	// titi starts a VM from it through node 3 and makes an OMI of the VM
	// through node 1; joe unshares through node 1 and titi keeps her own.
	var vms struct {
		Vms []struct {
			VmId                string
			BlockDeviceMappings []struct{ Bsu struct{ VolumeId string } }
		}
	}
	titi3.call(t, "CreateVms", map[string]any{"ImageId": id}, &vms)
	if len(vms.Vms) != 1 {
		t.Fatalf("CreateVms: %+v", vms)
	}
	vmID := vms.Vms[0].VmId
	titi1, titi2 := n1.as(titiAK, titiSK), n2.as(titiAK, titiSK)
	var vmsRead struct {
		Vms []struct{ VmId, State string }
	}
	titi2.call(t, "ReadVms", map[string]any{"Filters": map[string]any{"VmIds": []string{vmID}}}, &vmsRead)
	if len(vmsRead.Vms) != 1 {
		t.Fatalf("node 2 does not list the VM created through node 3: %+v", vmsRead)
	}
	waitUntil(t, 20*time.Second, "the VM to run", func() bool {
		titi2.call(t, "ReadVms", map[string]any{"Filters": map[string]any{"VmIds": []string{vmID}}}, &vmsRead)
		return vmsRead.Vms[0].State == "running"
	})
	var fromVM struct{ Image struct{ ImageId string } }
	titi1.call(t, "CreateImage", map[string]any{"VmId": vmID, "ImageName": "titi-from-vm", "NoReboot": true}, &fromVM)
	got := awaitImage(t, titi2, fromVM.Image.ImageId)
	if got.AccountId != titiAccount || got.ImageName != "titi-from-vm" {
		t.Fatalf("OMI from VM through node 2: %+v", got)
	}
	n1.call(t, "UpdateImage", map[string]any{"ImageId": id,
		"PermissionsToLaunch": map[string]any{"Removals": map[string]any{"AccountIds": []string{titiAccount}}}}, &none)
	if _, ok := readImage(t, titi2, id); ok {
		t.Fatal("titi still sees joe's OMI through node 2 after it was unshared through node 1")
	}
	if _, ok := readImage(t, titi3, fromVM.Image.ImageId); !ok {
		t.Fatal("titi's own OMI is not listed through node 3")
	}
	// Sharing and unsharing through each node in turn, read through the
	// next one right after: never the previous state.
	nodes := []*proc{n1, n2, n3}
	for i := range 30 {
		w, r := nodes[i%3], nodes[(i+1)%3].as(titiAK, titiSK)
		change := "Additions"
		if i%2 == 1 {
			change = "Removals"
		}
		w.call(t, "UpdateImage", map[string]any{"ImageId": id,
			"PermissionsToLaunch": map[string]any{change: map[string]any{"AccountIds": []string{titiAccount}}}}, &none)
		if _, ok := readImage(t, r, id); ok != (i%2 == 0) {
			t.Fatalf("round %d: titi through node %d right after %s through node %d: listed %v", i, (i+1)%3+1, change, i%3+1, ok)
		}
	}
	// A deletion through one node is seen at once through the others.
	n2.call(t, "DeleteImage", map[string]any{"ImageId": id}, &none)
	for i, p := range []*proc{n1, n2, n3} {
		if _, ok := readImage(t, p, id); ok {
			t.Fatalf("node %d still lists the OMI deleted through node 2", i+1)
		}
	}
}

// TestClusterDataAcrossNodes writes a volume over NBD through one node
// and reads it, its snapshot, an OMI's VM and the OMI's export through the
// others; the export runs once, on one node.
func TestClusterDataAcrossNodes(t *testing.T) {
	needTool(t, "qemu-io")
	needTool(t, "qemu-img")
	c := startCluster(t, clusterOpts{nodes: 3})
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]

	vol := clusterVolume(t, n1, n1)
	qemuIO(t, "nbd://"+n1.nbd+"/"+vol, "write -P 0x6b 0 2M", "write -P 0x21 300M 256k", "write -P 0x7e 1023M 1M")
	// Once the writer disconnected, another node serves the same volume
	// with the data.
	var err error
	waitUntil(t, 10*time.Second, "node 2 to serve the volume written through node 1", func() bool {
		err = qemuIOErr("nbd://"+n2.nbd+"/"+vol, "read -P 0x6b 0 2M", "read -P 0x21 300M 256k", "read -P 0x7e 1023M 1M", "read -P 0 500M 1M")
		return err == nil
	})
	snap := clusterSnapshot(t, n2, n3, vol)
	var reg struct{ Image struct{ ImageId string } }
	n3.call(t, "CreateImage", registerBody("data-omi", snap), &reg)
	var vms struct {
		Vms []struct {
			VmId                string
			BlockDeviceMappings []struct{ Bsu struct{ VolumeId string } }
		}
	}
	n1.call(t, "CreateVms", map[string]any{"ImageId": reg.Image.ImageId}, &vms)
	root := vms.Vms[0].BlockDeviceMappings[0].Bsu.VolumeId
	if err := awaitState(n2, "volume", root, "in-use", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	qemuIO(t, "nbd://"+n3.nbd+"/"+root, "read -P 0x6b 0 2M", "read -P 0x21 300M 256k", "write -P 0x44 10M 1M")
	// An OMI of the VM made through node 2 carries node 3's write.
	var fromVM struct{ Image struct{ ImageId string } }
	n2.call(t, "CreateImage", map[string]any{"VmId": vms.Vms[0].VmId, "ImageName": "data-from-vm", "NoReboot": true}, &fromVM)
	awaitImage(t, n1, fromVM.Image.ImageId)
	var vms2 struct {
		Vms []struct {
			BlockDeviceMappings []struct{ Bsu struct{ VolumeId string } }
		}
	}
	n3.call(t, "CreateVms", map[string]any{"ImageId": fromVM.Image.ImageId}, &vms2)
	root2 := vms2.Vms[0].BlockDeviceMappings[0].Bsu.VolumeId
	if err := awaitState(n1, "volume", root2, "in-use", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	qemuIO(t, "nbd://"+n1.nbd+"/"+root2, "read -P 0x6b 0 2M", "read -P 0x44 10M 1M", "read -P 0x7e 1023M 1M")

	// Export through node 1, watched through node 2, checked against the
	// source read through node 3.
	var task struct{ ImageExportTask struct{ TaskId string } }
	n1.call(t, "CreateImageExportTask", map[string]any{"ImageId": reg.Image.ImageId,
		"OsuExport": map[string]any{"DiskImageFormat": "qcow2", "OsuBucket": clusterExportBucket, "OsuPrefix": "data"}}, &task)
	id := task.ImageExportTask.TaskId
	var manifest string
	waitUntil(t, 60*time.Second, "the export", func() bool {
		got := readExport(t, n2, id)
		if got.State == "failed" {
			t.Fatalf("export failed: %s", got.Comment)
		}
		manifest = got.OsuExport.OsuManifestUrl
		return got.State == "completed"
	})
	qcow := fetchExport(t, c, "data/")
	if out, err := exec.Command("qemu-img", "compare", "-f", "qcow2", "-F", "raw", qcow, "nbd://"+n3.nbd+"/"+vol).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img compare exported qcow2 vs the source through node 3: %v\n%s", err, out)
	}
	doc, err := readTask(context.Background(), c.dsn, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Runs) != 1 || doc.Runs[0].End == "" {
		t.Fatalf("the export's runs: %+v; want exactly one that ended", doc.Runs)
	}
	if err := checkRuns(c, id, doc.Runs, time.Time{}); err != nil {
		t.Fatal(err)
	}

	// titi imports the export through node 2; the OMI becomes available
	// through node 3 and a VM of it started through node 1 holds the data.
	titi2 := n2.as(titiAK, titiSK)
	var imp struct{ Image struct{ ImageId string } }
	titi2.call(t, "CreateImage", map[string]any{"ImageName": "imported-across", "FileLocation": manifest}, &imp)
	awaitImage(t, n3.as(titiAK, titiSK), imp.Image.ImageId)
	var vms3 struct {
		Vms []struct {
			BlockDeviceMappings []struct{ Bsu struct{ VolumeId string } }
		}
	}
	n1.as(titiAK, titiSK).call(t, "CreateVms", map[string]any{"ImageId": imp.Image.ImageId}, &vms3)
	root3 := vms3.Vms[0].BlockDeviceMappings[0].Bsu.VolumeId
	if err := awaitState(titi2, "volume", root3, "in-use", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	qemuIO(t, "nbd://"+n2.nbd+"/"+root3, "read -P 0x6b 0 2M", "read -P 0x21 300M 256k", "read -P 0x7e 1023M 1M", "read -P 0 500M 1M")
}

// fetchExport checks that the export bucket holds, under prefix, one
// qcow2.gz disk and its manifest and no open upload; it returns the disk,
// unpacked and checked by qemu-img check.
func fetchExport(t *testing.T, c *multiNode, prefix string) string {
	t.Helper()
	s3 := c.exportsClient()
	objs, uploads := bucketLeftovers(t, s3, clusterExportBucket, prefix)
	var disk string
	for _, o := range objs {
		if strings.HasSuffix(o, ".qcow2.gz") {
			if disk != "" {
				t.Fatalf("two disk objects under %s: %v", prefix, objs)
			}
			disk = o
		}
	}
	if disk == "" || len(objs) != 2 || uploads != 0 {
		t.Fatalf("under %s: objects %v, %d open uploads; want one disk, the manifest and no upload", prefix, objs, uploads)
	}
	body, _, err := s3.Open(context.Background(), clusterExportBucket, disk)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	zr, err := gzip.NewReader(body)
	if err != nil {
		t.Fatal(err)
	}
	qcow := filepath.Join(t.TempDir(), "disk.qcow2")
	f, err := os.Create(qcow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, zr); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("qemu-img", "check", "-f", "qcow2", qcow).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img check: %v\n%s", err, out)
	}
	return qcow
}

// TestClusterExportsRunOnce starts exports through every node at once:
// each runs exactly once (one run in its record, which ended), whichever
// node picked it up.
func TestClusterExportsRunOnce(t *testing.T) {
	needTool(t, "qemu-io")
	c := startCluster(t, clusterOpts{nodes: 3})
	vol := clusterVolume(t, c.nodes[0], c.nodes[0])
	qemuIO(t, "nbd://"+c.nodes[0].nbd+"/"+vol, "write -P 0x3c 0 4M")
	snap := clusterSnapshot(t, c.nodes[1], c.nodes[1], vol)
	var reg struct{ Image struct{ ImageId string } }
	c.nodes[2].call(t, "CreateImage", registerBody("export-me", snap), &reg)

	const tasks = 6
	ids := make([]string, tasks)
	for i := range ids {
		var task struct{ ImageExportTask struct{ TaskId string } }
		c.node(i).call(t, "CreateImageExportTask", map[string]any{"ImageId": reg.Image.ImageId,
			"OsuExport": map[string]any{"DiskImageFormat": "qcow2", "OsuBucket": clusterExportBucket, "OsuPrefix": fmt.Sprintf("once%d", i)}}, &task)
		ids[i] = task.ImageExportTask.TaskId
	}
	for i, id := range ids {
		waitUntil(t, 60*time.Second, "export "+id, func() bool {
			got := readExport(t, c.node(i+1), id)
			if got.State == "failed" {
				t.Fatalf("export %s failed: %s", id, got.Comment)
			}
			return got.State == "completed"
		})
	}
	ranOn := map[string]int{}
	for _, id := range ids {
		doc, err := readTask(context.Background(), c.dsn, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(doc.Runs) != 1 || doc.Runs[0].End == "" {
			t.Errorf("task %s: runs %+v; want exactly one that ended", id, doc.Runs)
			continue
		}
		if err := checkRuns(c, id, doc.Runs, time.Time{}); err != nil {
			t.Error(err)
		}
		ranOn[doc.Runs[0].Node]++
	}
	t.Logf("exports per node: %v", ranOn)
}

// randomDisk writes size bytes of random data (incompressible, so that an
// export takes measurable time) to a file and into a new volume through
// p; it returns the file and the volume.
func randomDisk(t *testing.T, p *proc, size int64) (string, string) {
	t.Helper()
	raw := filepath.Join(t.TempDir(), "random.raw")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	vol := clusterVolume(t, p, p)
	if out, err := exec.Command("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", raw, "nbd://"+p.nbd+"/"+vol).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v\n%s", err, out)
	}
	return raw, vol
}

// TestClusterExportTakenOverAfterKill9 kills -9 the node running an
// export: another node takes the task over once the lease expires and
// completes it; the record shows two runs, the second on another node and
// started after the kill; the bucket holds one valid disk equal to the
// source and the manifest, and no open upload.
func TestClusterExportTakenOverAfterKill9(t *testing.T) {
	needTool(t, "qemu-img")
	c := startCluster(t, clusterOpts{nodes: 3})
	ctx := context.Background()
	raw, image, id, runner := exportUnderWay(t, c, 0, "to-take-over", "k")
	victim := c.nodeIndex(runner)
	if victim < 0 {
		t.Fatalf("the export runs on unknown node %q", runner)
	}
	c.kill(victim)
	killed := time.Now()
	t.Logf("killed %s, which ran the export", runner)

	watcher := c.node(victim + 1)
	waitUntil(t, 60*time.Second, "another node to complete the export", func() bool {
		got := readExport(t, watcher, id)
		if got.State == "failed" {
			t.Fatalf("export failed after the takeover: %s", got.Comment)
		}
		return got.State == "completed"
	})
	t.Logf("completed %v after the kill", time.Since(killed).Round(100*time.Millisecond))
	doc, err := readTask(ctx, c.dsn, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Runs) != 2 || doc.Runs[0].Node != runner || doc.Runs[1].Node == runner || doc.Runs[1].End == "" {
		t.Fatalf("runs %+v; want two: the first on %s, the second, which ended, on another node", doc.Runs, runner)
	}
	if err := checkRuns(c, id, doc.Runs, killed); err != nil {
		t.Fatal(err)
	}
	qcow := fetchExport(t, c, "k/")
	if out, err := exec.Command("qemu-img", "compare", "-f", "qcow2", "-F", "raw", qcow, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img compare exported qcow2 vs the written data: %v\n%s", err, out)
	}

	// A second export, cancelled through a node other than the one running
	// it: the run stops there and leaves nothing in the bucket.
	var again struct{ ImageExportTask struct{ TaskId string } }
	watcher.call(t, "CreateImageExportTask", map[string]any{"ImageId": image,
		"OsuExport": map[string]any{"DiskImageFormat": "qcow2", "OsuBucket": clusterExportBucket, "OsuPrefix": "cancel"}}, &again)
	id = again.ImageExportTask.TaskId
	waitUntil(t, 30*time.Second, "the second export to be under way", func() bool {
		doc, err := readTask(ctx, c.dsn, id)
		if err != nil {
			t.Fatal(err)
		}
		if doc.State == "completed" {
			t.Skip("the second export finished before it could be cancelled")
		}
		if n := len(doc.Runs); doc.State == "active" && n > 0 && doc.Runs[n-1].End == "" {
			runner = doc.Runs[n-1].Node
			return readExport(t, c.node(c.nodeIndex(runner)), id).Progress > 0
		}
		return false
	})
	canceller := c.node(c.nodeIndex(runner) + 1)
	if canceller == c.node(c.nodeIndex(runner)) {
		t.Fatal("one node left alive; the cancel would not cross nodes")
	}
	var none struct{}
	canceller.call(t, "DeleteExportTask", map[string]any{"ExportTaskId": id}, &none)
	if got := readExport(t, c.node(c.nodeIndex(runner)), id); got.State != "cancelled" {
		t.Fatalf("export cancelled through another node is %s on its runner", got.State)
	}
	s3 := c.exportsClient()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		doc, err := readTask(ctx, c.dsn, id)
		if err != nil {
			t.Fatal(err)
		}
		objs, ups := bucketLeftovers(t, s3, clusterExportBucket, "cancel/")
		// The run of a cancelled task is not dated (DeleteExportTask ends
		// the task, not the run); what shows it stopped is the bucket.
		if len(doc.Runs) == 1 && len(objs) == 0 && ups == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s after the cancel through %s of the export running on %s: task %+v, objects %v, %d open uploads; want one run and nothing in the bucket",
				canceller.api, runner, doc, objs, ups)
		}
	}
	// Nothing reappears: the run really stopped.
	time.Sleep(1500 * time.Millisecond)
	if objs, ups := bucketLeftovers(t, s3, clusterExportBucket, "cancel/"); len(objs) != 0 || ups != 0 {
		t.Fatalf("after the cancel: objects %v, %d open uploads", objs, ups)
	}
	if doc, _ := readTask(ctx, c.dsn, id); doc.State != "cancelled" || len(doc.Runs) != 1 {
		t.Fatalf("cancelled task: %+v", doc)
	}
}

// exportUnderWay writes a 96 MiB random disk through node 0, snapshots it
// through node 1, registers an OMI of it through node 2 and exports it to
// prefix through node via; it returns once the export has made progress on
// the node its open run names, with the source file, the OMI, the task id
// and that node's name. A node's index is found with c.nodeIndex.
func exportUnderWay(t *testing.T, c *multiNode, via int, name, prefix string) (raw, image, id, runner string) {
	t.Helper()
	ctx := context.Background()
	raw, vol := randomDisk(t, c.nodes[0], 96<<20)
	snap := clusterSnapshot(t, c.nodes[1], c.nodes[1], vol)
	var reg struct{ Image struct{ ImageId string } }
	c.nodes[2].call(t, "CreateImage", registerBody(name, snap), &reg)
	var task struct{ ImageExportTask struct{ TaskId string } }
	c.nodes[via].call(t, "CreateImageExportTask", map[string]any{"ImageId": reg.Image.ImageId,
		"OsuExport": map[string]any{"DiskImageFormat": "qcow2", "OsuBucket": clusterExportBucket, "OsuPrefix": prefix}}, &task)
	image, id = reg.Image.ImageId, task.ImageExportTask.TaskId
	waitUntil(t, 30*time.Second, "the export to be under way on a node", func() bool {
		doc, err := readTask(ctx, c.dsn, id)
		if err != nil {
			t.Fatal(err)
		}
		if doc.State == "completed" {
			t.Skip("the export finished before it could be interrupted")
		}
		if doc.State == "failed" {
			t.Fatalf("export failed: %+v", doc)
		}
		if n := len(doc.Runs); doc.State == "active" && n > 0 && doc.Runs[n-1].End == "" {
			runner = doc.Runs[n-1].Node
			return readExport(t, c.node(c.nodeIndex(runner)), id).Progress > 0
		}
		return false
	})
	return raw, image, id, runner
}

// TestClusterShutdownHandsExportBack stops the node running an export
// with SIGTERM: the process exits cleanly and hands the task back, so that
// another node completes it although leases last 30 s here (longer than
// the wait allows: the task is not merely taken over after expiry).
func TestClusterShutdownHandsExportBack(t *testing.T) {
	needTool(t, "qemu-img")
	c := startCluster(t, clusterOpts{nodes: 3, leaseTTL: "30s"})
	ctx := context.Background()
	raw, _, id, runner := exportUnderWay(t, c, 1, "to-hand-back", "h")
	victim := c.nodeIndex(runner)
	// The second run must start after the signal; it may start before the
	// process is gone, since the lease is handed back first.
	signalled := time.Now()
	if err := c.shutdown(victim); err != nil {
		t.Errorf("%s after SIGTERM: %v; want exit status 0", runner, err)
	}
	t.Logf("%s exited %v after SIGTERM", runner, time.Since(signalled).Round(10*time.Millisecond))
	watcher := c.node(victim + 1)
	waitUntil(t, 20*time.Second, "another node to complete the handed-back export", func() bool {
		got := readExport(t, watcher, id)
		if got.State == "failed" {
			t.Fatalf("export failed after the shutdown: %s", got.Comment)
		}
		return got.State == "completed"
	})
	t.Logf("completed %v after SIGTERM to %s", time.Since(signalled).Round(100*time.Millisecond), runner)
	doc, err := readTask(ctx, c.dsn, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Runs) != 2 || doc.Runs[0].Node != runner || doc.Runs[1].Node == runner || doc.Runs[1].End == "" {
		t.Fatalf("runs %+v; want two: the first on %s, the second, which ended, on another node", doc.Runs, runner)
	}
	if err := checkRuns(c, id, doc.Runs, signalled); err != nil {
		t.Fatal(err)
	}
	qcow := fetchExport(t, c, "h/")
	if out, err := exec.Command("qemu-img", "compare", "-f", "qcow2", "-F", "raw", qcow, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img compare exported qcow2 vs the written data: %v\n%s", err, out)
	}
}

// TestClusterNBDOneNodeAtATime holds a volume open over NBD through node
// 1: nodes 2 and 3 refuse it with a message that says why, qemu-io
// included; once node 1's client disconnects, node 2 serves it. When node
// 2 then dies holding it, node 3 serves it once the lease expires.
func TestClusterNBDOneNodeAtATime(t *testing.T) {
	needTool(t, "qemu-io")
	c := startCluster(t, clusterOpts{nodes: 3})
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	vol := clusterVolume(t, n1, n1)
	qemuIO(t, "nbd://"+n1.nbd+"/"+vol, "write -P 0x5e 0 1M")

	var held *nbdClient
	var err error
	waitUntil(t, 10*time.Second, "node 1 to serve the volume again", func() bool {
		held, err = nbdDial(n1.nbd, vol)
		return err == nil
	})
	defer func() {
		if held != nil {
			held.close()
		}
	}()
	if held.size != 1<<30 {
		t.Errorf("export size %d, want 1 GiB", held.size)
	}
	data, err := held.read(0, 4096)
	if err != nil || data[0] != 0x5e || data[4095] != 0x5e {
		t.Fatalf("read through the held connection: %v", err)
	}

	for _, p := range []*proc{n2, n3} {
		_, err := nbdDial(p.nbd, vol)
		var refused *nbdRefused
		if !errors.As(err, &refused) {
			t.Fatalf("NBD_OPT_GO through another node while node 1 holds the volume: %v; want a refusal", err)
		}
		// A clear message: which volume, that it is in use, and where.
		msg := strings.ToLower(refused.Msg)
		if !strings.Contains(refused.Msg, vol) || !strings.Contains(msg, "in use") && !strings.Contains(msg, "busy") ||
			!strings.Contains(refused.Msg, c.names[0]) {
			t.Errorf("refusal %q does not say that %s is in use on %s", refused.Msg, vol, c.names[0])
		}
		t.Logf("refused: %v", err)
	}
	out, err := exec.Command("qemu-io", "-f", "raw", "nbd://"+n2.nbd+"/"+vol, "-c", "read 0 4k").CombinedOutput()
	if err == nil {
		t.Fatalf("qemu-io through node 2 while node 1 holds the volume succeeded:\n%s", out)
	}
	t.Logf("qemu-io through node 2: %v: %s", err, strings.TrimSpace(string(out)))

	if err := held.close(); err != nil {
		t.Fatal(err)
	}
	held = nil
	waitUntil(t, 10*time.Second, "node 2 to serve the volume once node 1 let it go", func() bool {
		held, err = nbdDial(n2.nbd, vol)
		return err == nil
	})
	if data, err := held.read(0, 4096); err != nil || data[0] != 0x5e {
		t.Fatalf("read through node 2: %v", err)
	}
	// Now node 1 refuses it in turn.
	var refused *nbdRefused
	if _, err := nbdDial(n1.nbd, vol); !errors.As(err, &refused) || !strings.Contains(refused.Msg, c.names[1]) {
		t.Fatalf("NBD_OPT_GO through node 1 while node 2 holds the volume: %v; want a refusal naming %s", err, c.names[1])
	}

	// Node 2 dies holding the volume: node 3 serves it after the lease.
	c.kill(1)
	held.conn.Close()
	held = nil
	killed := time.Now()
	waitUntil(t, 20*time.Second, "node 3 to serve the volume of the dead node 2", func() bool {
		return qemuIOErr("nbd://"+n3.nbd+"/"+vol, "read -P 0x5e 0 1M") == nil
	})
	t.Logf("node 3 served the volume %v after node 2 died", time.Since(killed).Round(100*time.Millisecond))
}

// gcExtent is data written at an offset with a pattern.
type gcExtent struct {
	off     int
	pattern byte
}

// gcCheck is a volume or snapshot and the data it must hold.
type gcCheck struct {
	kind, id string
	extents  []gcExtent
}

func readCmds(ex []gcExtent) []string {
	var cmds []string
	for _, e := range ex {
		cmds = append(cmds, fmt.Sprintf("read -P %#x %dM 1M", e.pattern, e.off))
	}
	return cmds
}

// TestClusterGCWhileWriting collects garbage every second on every node
// while three writers (one per node) create volumes, write them, snapshot
// them, clone snapshots through other nodes and delete volumes and
// snapshots; afterwards every surviving volume and snapshot reads back
// all its data through some node: no block still referenced was freed.
func TestClusterGCWhileWriting(t *testing.T) {
	needTool(t, "qemu-io")
	c := startCluster(t, clusterOpts{nodes: 3, gcInterval: "1s"})
	var (
		mu       sync.Mutex
		survived []gcCheck
		seq      atomic.Int32
		errs     = make(chan error, 3)
		stop     = time.Now().Add(10 * time.Second)
	)
	worker := func(w int) error {
		home, next, third := c.nodes[w], c.nodes[(w+1)%3], c.nodes[(w+2)%3]
		pat := func() byte { return byte(1 + seq.Add(1)%250) }
		for time.Now().Before(stop) {
			var vol struct{ Volume struct{ VolumeId string } }
			if err := nodeCall(home, "CreateVolume", map[string]any{"Size": 1, "SubregionName": "eu-west-2a"}, &vol); err != nil {
				return err
			}
			v := vol.Volume.VolumeId
			if err := awaitState(home, "volume", v, "available", 20*time.Second); err != nil {
				return err
			}
			ex := []gcExtent{{off: mrand.IntN(1000), pattern: pat()}, {off: 1000 + mrand.IntN(20), pattern: pat()}}
			if err := qemuIOErr("nbd://"+home.nbd+"/"+v, fmt.Sprintf("write -P %#x %dM 1M", ex[0].pattern, ex[0].off),
				fmt.Sprintf("write -P %#x %dM 1M", ex[1].pattern, ex[1].off)); err != nil {
				return err
			}
			var snap struct{ Snapshot struct{ SnapshotId string } }
			if err := nodeCall(next, "CreateSnapshot", map[string]any{"VolumeId": v}, &snap); err != nil {
				return err
			}
			s := snap.Snapshot.SnapshotId
			if err := awaitState(next, "snapshot", s, "completed", 30*time.Second); err != nil {
				return err
			}
			// The volume changes after the snapshot: the snapshot keeps the
			// old data, the volume the new.
			volEx := append([]gcExtent{}, ex...)
			volEx[0].pattern = pat()
			if err := qemuIOErr("nbd://"+home.nbd+"/"+v, fmt.Sprintf("write -P %#x %dM 1M", volEx[0].pattern, volEx[0].off)); err != nil {
				return err
			}
			var clone struct{ Volume struct{ VolumeId string } }
			if err := nodeCall(third, "CreateVolume", map[string]any{"SnapshotId": s, "SubregionName": "eu-west-2a"}, &clone); err != nil {
				return err
			}
			cv := clone.Volume.VolumeId
			if err := awaitState(third, "volume", cv, "available", 20*time.Second); err != nil {
				return err
			}
			cloneEx := append([]gcExtent{}, ex...)
			cloneEx[1].pattern = pat()
			if err := qemuIOErr("nbd://"+third.nbd+"/"+cv, fmt.Sprintf("write -P %#x %dM 1M", cloneEx[1].pattern, cloneEx[1].off)); err != nil {
				return err
			}
			checks := []gcCheck{{"volume", cv, cloneEx}}
			// Delete some of what was made, through another node.
			if mrand.IntN(2) == 0 {
				if err := nodeCall(next, "DeleteVolume", map[string]any{"VolumeId": v}, nil); err != nil {
					return err
				}
			} else {
				checks = append(checks, gcCheck{"volume", v, volEx})
			}
			if mrand.IntN(2) == 0 {
				if err := nodeCall(third, "DeleteSnapshot", map[string]any{"SnapshotId": s}, nil); err != nil {
					return err
				}
			} else {
				checks = append(checks, gcCheck{"snapshot", s, ex})
			}
			mu.Lock()
			survived = append(survived, checks...)
			mu.Unlock()
		}
		return nil
	}
	for w := range 3 {
		go func() { errs <- worker(w) }()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// Let every node collect at least twice more over the final state.
	time.Sleep(2500 * time.Millisecond)
	t.Logf("%d volumes and snapshots survived the writers", len(survived))
	if len(survived) < 6 {
		t.Fatalf("only %d survivors: the writers did too little to test anything", len(survived))
	}
	for _, err := range eachParallel(len(survived), 6, func(i int) error {
		s, p := survived[i], c.node(i)
		id := s.id
		if s.kind == "snapshot" {
			// Snapshots are read through a volume made from them.
			var err error
			if id, err = volumeFrom(p, s.id); err != nil {
				return err
			}
		}
		if err := qemuIOErr("nbd://"+p.nbd+"/"+id, readCmds(s.extents)...); err != nil {
			return fmt.Errorf("%s %s lost data: %v", s.kind, s.id, err)
		}
		return nil
	}) {
		t.Error(err)
	}
}

// TestClusterMixedLoad runs 16 clients, each call through a node picked
// at random, for a bounded time: joe and titi register OMIs from their
// snapshots, read, share and unshare them, snapshot volumes and delete
// OMIs and snapshots, racing one another across nodes, with garbage
// collection every second. Afterwards: no 5xx was ever answered, every
// node lists the same OMIs and snapshots, no OMI points to a deleted
// snapshot, and every remaining snapshot's data reads back.
func TestClusterMixedLoad(t *testing.T) {
	needTool(t, "qemu-io")
	c := startCluster(t, clusterOpts{nodes: 3, gcInterval: "1s"})

	type account struct {
		ak, sk, id, other string
		mu                sync.Mutex
		vols              []string          // base volumes, never written again
		snaps             map[string]string // snapshot -> its base volume
		images            []string
		vm                string          // a running VM whose root holds vols[0]'s data
		fromVM            map[string]bool // OMIs made of the VM
		vmsMade           []string        // VMs CreateVms answered with
	}
	pattern := map[string]byte{}
	accts := []*account{
		{ak: joeAK, sk: joeSK, id: "123456789012", other: titiAccount},
		{ak: titiAK, sk: titiSK, id: titiAccount, other: "123456789012"},
	}
	for ai, a := range accts {
		a.snaps = map[string]string{}
		for k := range 2 {
			p := c.node(ai+k).as(a.ak, a.sk)
			v := clusterVolume(t, p, p)
			pattern[v] = byte(0x30 + 2*ai + k)
			qemuIO(t, "nbd://"+p.nbd+"/"+v, fmt.Sprintf("write -P %#x 0 1M", pattern[v]), fmt.Sprintf("write -P %#x 512M 1M", pattern[v]))
			a.vols = append(a.vols, v)
		}
		p := c.node(ai).as(a.ak, a.sk)
		snap := clusterSnapshot(t, p, p, a.vols[0])
		a.snaps[snap] = a.vols[0]
		var reg struct{ Image struct{ ImageId string } }
		p.call(t, "CreateImage", registerBody(fmt.Sprintf("mixed-base-%d", ai), snap), &reg)
		a.images = append(a.images, reg.Image.ImageId)
		var vms struct{ Vms []struct{ VmId string } }
		p.call(t, "CreateVms", map[string]any{"ImageId": reg.Image.ImageId}, &vms)
		a.vm, a.fromVM = vms.Vms[0].VmId, map[string]bool{}
		waitUntil(t, 20*time.Second, "the VM to run", func() bool {
			var out struct{ Vms []struct{ State string } }
			p.call(t, "ReadVms", map[string]any{"Filters": map[string]any{"VmIds": []string{a.vm}}}, &out)
			return out.Vms[0].State == "running"
		})
	}

	log := newStatusLog()
	var names atomic.Int64
	stop := time.Now().Add(15 * time.Second)
	var wg sync.WaitGroup
	for w := range 16 {
		a := accts[w%2]
		wg.Go(func() {
			for time.Now().Before(stop) {
				p := c.random().as(a.ak, a.sk)
				pick := func(list []string) string {
					if len(list) == 0 {
						return ""
					}
					return list[mrand.IntN(len(list))]
				}
				a.mu.Lock()
				snapIDs := make([]string, 0, len(a.snaps))
				for s := range a.snaps {
					snapIDs = append(snapIDs, s)
				}
				snap, img, nsnaps := pick(snapIDs), pick(a.images), len(a.snaps)
				a.mu.Unlock()
				call, in := "", map[string]any{}
				switch r := mrand.IntN(100); {
				case r < 10 && nsnaps < 12 || nsnaps == 0:
					v := pick(a.vols)
					status, body, err := apiSend(p, "CreateSnapshot", map[string]any{"VolumeId": v})
					log.add("CreateSnapshot", status, body, err)
					var out struct{ Snapshot struct{ SnapshotId string } }
					if err == nil && status == 200 && json.Unmarshal(body, &out) == nil {
						a.mu.Lock()
						a.snaps[out.Snapshot.SnapshotId] = v
						a.mu.Unlock()
					}
					continue
				case r < 33:
					status, body, err := apiSend(p, "CreateImage", registerBody(fmt.Sprintf("mixed-%d", names.Add(1)), snap))
					log.add("CreateImage", status, body, err)
					var out struct{ Image struct{ ImageId string } }
					if err == nil && status == 200 && json.Unmarshal(body, &out) == nil {
						a.mu.Lock()
						a.images = append(a.images, out.Image.ImageId)
						a.mu.Unlock()
					}
					continue
				case r < 58:
					call = "ReadImages"
					if img != "" && r%2 == 0 {
						in["Filters"] = map[string]any{"ImageIds": []string{img}}
					}
				case r < 61:
					status, body, err := apiSend(p, "CreateImage", map[string]any{"VmId": a.vm, "NoReboot": true,
						"ImageName": fmt.Sprintf("mixed-vm-%d", names.Add(1))})
					log.add("CreateImage(VmId)", status, body, err)
					var out struct{ Image struct{ ImageId string } }
					if err == nil && status == 200 && json.Unmarshal(body, &out) == nil {
						a.mu.Lock()
						a.images = append(a.images, out.Image.ImageId)
						a.fromVM[out.Image.ImageId] = true
						a.mu.Unlock()
					}
					continue
				case r < 63 && img != "":
					status, body, err := apiSend(p, "CreateImage", map[string]any{"SourceImageId": img, "SourceRegionName": "eu-west-2",
						"ImageName": fmt.Sprintf("mixed-copy-%d", names.Add(1))})
					log.add("CreateImage(SourceImageId)", status, body, err)
					var out struct{ Image struct{ ImageId string } }
					if err == nil && status == 200 && json.Unmarshal(body, &out) == nil {
						a.mu.Lock()
						a.images = append(a.images, out.Image.ImageId)
						a.mu.Unlock()
					}
					continue
				case r < 64 && img != "":
					status, body, err := apiSend(p, "CreateVms", map[string]any{"ImageId": img})
					log.add("CreateVms", status, body, err)
					var out struct{ Vms []struct{ VmId string } }
					if err == nil && status == 200 && json.Unmarshal(body, &out) == nil {
						a.mu.Lock()
						for _, vm := range out.Vms {
							a.vmsMade = append(a.vmsMade, vm.VmId)
						}
						a.mu.Unlock()
					}
					continue
				case r < 66:
					call = "ReadSnapshots"
				case r < 80 && img != "":
					call, in["ImageId"] = "UpdateImage", img
					change := "Additions"
					if r%2 == 0 {
						change = "Removals"
					}
					in["PermissionsToLaunch"] = map[string]any{change: map[string]any{"AccountIds": []string{a.other}}}
				case r < 90 && img != "":
					call, in["ImageId"] = "DeleteImage", img
					status, body, err := apiSend(p, call, in)
					log.add(call, status, body, err)
					if err == nil && status == 200 {
						a.mu.Lock()
						a.images = slices.DeleteFunc(a.images, func(x string) bool { return x == img })
						a.mu.Unlock()
					}
					continue
				case snap != "":
					call, in["SnapshotId"] = "DeleteSnapshot", snap
					status, body, err := apiSend(p, call, in)
					log.add(call, status, body, err)
					if err == nil && status == 200 {
						a.mu.Lock()
						delete(a.snaps, snap)
						a.mu.Unlock()
					}
					continue
				default:
					call = "ReadImages"
				}
				status, body, err := apiSend(p, call, in)
				log.add(call, status, body, err)
			}
		})
	}
	wg.Wait()
	total := 0
	var lines []string
	for k, n := range log.counts {
		total += n
		lines = append(lines, fmt.Sprintf("%s: %d", k, n))
	}
	slices.Sort(lines)
	t.Logf("%d calls in 15 s:\n%s", total, strings.Join(lines, "\n"))
	if len(log.failed) > 0 {
		t.Errorf("%d calls failed in transport, first: %s", len(log.failed), log.failed[0])
	}
	if len(log.errs5) > 0 {
		t.Errorf("server errors:\n%s", strings.Join(log.errs5, "\n"))
	}

	// Invariants, as seen through every node.
	type listing struct {
		images map[string]clusterImage
		snaps  map[string]string // id -> state
	}
	var first *listing
	for i := range c.nodes {
		l := &listing{images: map[string]clusterImage{}, snaps: map[string]string{}}
		for _, a := range accts {
			p := c.nodes[i].as(a.ak, a.sk)
			var imgs struct{ Images []clusterImage }
			p.call(t, "ReadImages", map[string]any{"Filters": map[string]any{"AccountIds": []string{a.id}}}, &imgs)
			for _, img := range imgs.Images {
				l.images[img.ImageId] = img
			}
			var snaps struct {
				Snapshots []struct{ SnapshotId, State string }
			}
			p.call(t, "ReadSnapshots", map[string]any{"Filters": map[string]any{"AccountIds": []string{a.id}}}, &snaps)
			for _, s := range snaps.Snapshots {
				l.snaps[s.SnapshotId] = s.State
			}
		}
		var dangling []string
		for id, img := range l.images {
			for _, m := range img.BlockDeviceMappings {
				if _, ok := l.snaps[m.Bsu.SnapshotId]; !ok {
					dangling = append(dangling, id+" -> "+m.Bsu.SnapshotId)
				}
			}
		}
		if len(dangling) > 0 {
			slices.Sort(dangling)
			t.Errorf("node %d: %d mappings of OMIs point to snapshots that are gone, e.g. %v", i+1, len(dangling), dangling[:min(5, len(dangling))])
		}
		if first == nil {
			first = l
			continue
		}
		if len(l.images) != len(first.images) || len(l.snaps) != len(first.snaps) {
			t.Errorf("node %d lists %d OMIs and %d snapshots, node 1 %d and %d", i+1, len(l.images), len(l.snaps), len(first.images), len(first.snaps))
		}
	}
	t.Logf("%d OMIs and %d snapshots remain", len(first.images), len(first.snaps))
	// The client's own record of what exists agrees with the region's.
	for _, a := range accts {
		if len(a.vmsMade) > 0 {
			var vms struct{ Vms []struct{ VmId string } }
			c.random().as(a.ak, a.sk).call(t, "ReadVms", map[string]any{"Filters": map[string]any{"VmIds": a.vmsMade}}, &vms)
			if len(vms.Vms) != len(a.vmsMade) {
				t.Errorf("%s: CreateVms answered with %d VMs, %d exist", a.id, len(a.vmsMade), len(vms.Vms))
			}
		}
		for s, v := range a.snaps {
			if _, ok := first.snaps[s]; !ok {
				t.Errorf("snapshot %s (of %s) was created and never deleted, but is not listed", s, v)
			}
		}
	}

	// Every remaining snapshot's data reads back, through volumes made
	// from them on every node in turn.
	time.Sleep(2 * time.Second) // a couple more collections first
	type check struct {
		p          *proc
		snap, base string
	}
	var checks []check
	for _, a := range accts {
		for s, v := range a.snaps {
			checks = append(checks, check{c.node(len(checks)).as(a.ak, a.sk), s, v})
		}
		// The snapshots of OMIs made of the VM hold its root's data.
		n := 0
		for id := range a.fromVM {
			if _, ok := first.images[id]; !ok || n == 4 {
				continue
			}
			n++
			p := c.node(len(checks)).as(a.ak, a.sk)
			var img clusterImage
			waitUntil(t, 30*time.Second, "OMI "+id+" to be available or failed", func() bool {
				img, _ = readImage(t, p, id)
				return img.State == "available" || img.State == "failed"
			})
			if img.State == "failed" {
				t.Errorf("OMI %s of VM %s failed", id, a.vm)
				continue
			}
			for _, m := range img.BlockDeviceMappings {
				checks = append(checks, check{p, m.Bsu.SnapshotId, a.vols[0]})
			}
		}
		t.Logf("%s: %d OMIs of the VM remain; checking %d", a.id, countTrue(a.fromVM, first.images), n)
	}
	for _, err := range eachParallel(len(checks), 6, func(i int) error {
		ch := checks[i]
		if err := awaitState(ch.p, "snapshot", ch.snap, "completed", 30*time.Second); err != nil {
			return err
		}
		vol, err := volumeFrom(ch.p, ch.snap)
		if err != nil {
			return err
		}
		pat := pattern[ch.base]
		if err := qemuIOErr("nbd://"+ch.p.nbd+"/"+vol, fmt.Sprintf("read -P %#x 0 1M", pat),
			fmt.Sprintf("read -P %#x 512M 1M", pat), "read -P 0 2M 1M"); err != nil {
			return fmt.Errorf("snapshot %s lost data: %v", ch.snap, err)
		}
		return nil
	}) {
		t.Error(err)
	}
}

// countTrue counts the keys of set that are also in among.
func countTrue[V any](set map[string]bool, among map[string]V) int {
	n := 0
	for k := range set {
		if _, ok := among[k]; ok {
			n++
		}
	}
	return n
}
