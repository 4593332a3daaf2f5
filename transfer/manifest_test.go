package transfer_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/transfer"
)

// docManifest is the example of the OUTSCALE Manifest File Reference.
const docManifest = `{
  "Version": 1,
  "Image": {
    "Name": "image-example",
    "Description": "",
    "Architecture": "x86_64",
    "Type": "machine",
    "ProductTypes": ["0001"],
    "Public": false,
    "Snapshots": [
      { "DeleteOnTermination": false, "Device": "/dev/sda1",
        "Filename": "snap-11111111-aaaaaaaa.qcow2.gz", "Iops": null,
        "PreSignedUrl": "https://oos.eu-west-2.outscale.com/BUCKET/snap-11111111-aaaaaaaa.qcow2.gz?AWSAccessKeyId=A&Expires=1&Signature=S",
        "Size": 10737418240, "VolumeType": "standard" }
    ]
  }
}`

func TestParseManifestDocExample(t *testing.T) {
	m, err := transfer.ParseManifest([]byte(docManifest))
	if err != nil {
		t.Fatal(err)
	}
	s := m.Root()
	if m.Version != 1 || m.Image.Name != "image-example" || s == nil || s.Size != 10737418240 || s.Iops != nil ||
		s.Filename != "snap-11111111-aaaaaaaa.qcow2.gz" || len(m.Image.ProductTypes) != 1 {
		t.Fatalf("parsed %+v", m)
	}
}

// TestParseManifest2019 reads an older manifest with keys that are no
// longer documented, and missing optional ones.
func TestParseManifest2019(t *testing.T) {
	m, err := transfer.ParseManifest([]byte(`{"Version":1,"Image":{"User":"123456789012","ProductTypes":[],
	  "Snapshots":[{"Ordering":0,"Device":"/dev/sda1","PreSignedUrl":"http://h/b/k","Size":1024,"CompressedSize":10},
	               {"Ordering":1,"Device":"/dev/sdb","PreSignedUrl":"http://h/b/k2","Size":2048,"VolumeType":"io1","Iops":100}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Image.Snapshots[0].VolumeType; got != "standard" {
		t.Errorf("default VolumeType %q", got)
	}
	if s := m.Image.Snapshots[1]; s.Iops == nil || *s.Iops != 100 {
		t.Errorf("Iops %v", s.Iops)
	}
}

// TestManifestRoundTrip writes a manifest with our extension and reads it
// back; the JSON keeps OUTSCALE's key names.
func TestManifestRoundTrip(t *testing.T) {
	iops := 500
	in := &transfer.Manifest{Image: transfer.ManifestImage{
		Name: "web", Architecture: "x86_64", ProductTypes: []string{"0001"},
		Snapshots: []transfer.ManifestSnapshot{
			{Device: "/dev/sda1", Filename: "snap-1-aaaaaaaa.qcow2.gz", PreSignedUrl: "https://h/b/k", Size: 1 << 30,
				DeleteOnTermination: true, CompressedSize: 123, DiskSha256: strings.Repeat("a", 64), ObjectSha256: strings.Repeat("b", 64)},
			{Device: "/dev/sdb", PreSignedUrl: "https://h/b/k2", Size: 1 << 20, VolumeType: "io1", Iops: &iops},
		},
	}}
	data, err := in.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	json.Unmarshal(data, &raw)
	img := raw["Image"].(map[string]any)
	snap := img["Snapshots"].([]any)[0].(map[string]any)
	for _, k := range []string{"DeleteOnTermination", "Device", "Filename", "Iops", "PreSignedUrl", "Size", "VolumeType", "OmiDiskSha256", "OmiObjectSha256"} {
		if _, ok := snap[k]; !ok {
			t.Errorf("snapshot key %s missing in %s", k, data)
		}
	}
	if raw["Version"] != float64(1) || img["Type"] != "machine" || snap["Iops"] != nil {
		t.Errorf("marshalled %s", data)
	}
	out, err := transfer.ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	if out.Image.Snapshots[0].DiskSha256 != in.Image.Snapshots[0].DiskSha256 || *out.Image.Snapshots[1].Iops != 500 {
		t.Fatalf("round trip %+v", out)
	}
}

func TestParseManifestErrors(t *testing.T) {
	snap := `{"Device":"/dev/sda1","PreSignedUrl":"https://h/b/k","Size":1024}`
	img := func(snaps string) string {
		return `{"Version":1,"Image":{"ProductTypes":[],"Snapshots":[` + snaps + `]}}`
	}
	for _, c := range []struct {
		name, data, code string
	}{
		{"not JSON", "<xml/>", "4041"},
		{"empty", "", "4041"},
		{"array", "[]", "4041"},
		{"version 2", `{"Version":2,"Image":{}}`, "4094"},
		{"version 0", `{"Version":0}`, "4094"},
		{"version 1.5", `{"Version":1.5}`, "4094"},
		{"version string", `{"Version":"1","Image":{}}`, "4041"},
		{"no version", `{"Image":{"ProductTypes":[],"Snapshots":[` + snap + `]}}`, "4040"},
		{"no image", `{"Version":1}`, "4040"},
		{"null image", `{"Version":1,"Image":null}`, "4040"},
		{"no product types", `{"Version":1,"Image":{"Snapshots":[` + snap + `]}}`, "4040"},
		{"no snapshots", `{"Version":1,"Image":{"ProductTypes":[]}}`, "4040"},
		{"empty snapshots", img(""), "4040"},
		{"snapshots not array", `{"Version":1,"Image":{"ProductTypes":[],"Snapshots":{}}}`, "4041"},
		{"no device", img(`{"PreSignedUrl":"https://h/b/k","Size":1}`), "4040"},
		{"no url", img(`{"Device":"/dev/sda1","Size":1}`), "4040"},
		{"no size", img(`{"Device":"/dev/sda1","PreSignedUrl":"https://h/b/k"}`), "4040"},
		{"size zero", img(`{"Device":"/dev/sda1","PreSignedUrl":"https://h/b/k","Size":0}`), "4040"},
		{"size negative", img(`{"Device":"/dev/sda1","PreSignedUrl":"https://h/b/k","Size":-5}`), "4040"},
		{"size huge", img(`{"Device":"/dev/sda1","PreSignedUrl":"https://h/b/k","Size":1000000000000000000}`), "4040"},
		{"size string", img(`{"Device":"/dev/sda1","PreSignedUrl":"https://h/b/k","Size":"10"}`), "4041"},
		{"bad device", img(`{"Device":"/dev/hda","PreSignedUrl":"https://h/b/k","Size":1}`), "4040"},
		{"no root", img(`{"Device":"/dev/sdb","PreSignedUrl":"https://h/b/k","Size":1}`), "4040"},
		{"duplicate device", img(snap + "," + snap), "4040"},
		{"bad volume type", img(`{"Device":"/dev/sda1","PreSignedUrl":"https://h/b/k","Size":1,"VolumeType":"ssd"}`), "4040"},
		{"bad url scheme", img(`{"Device":"/dev/sda1","PreSignedUrl":"file:///etc/passwd","Size":1}`), "4040"},
		{"bad digest", img(`{"Device":"/dev/sda1","PreSignedUrl":"https://h/b/k","Size":1,"OmiDiskSha256":"abc"}`), "4040"},
		{"filename with slash", img(`{"Device":"/dev/sda1","PreSignedUrl":"https://h/b/k","Size":1,"Filename":"../x"}`), "4040"},
		{"bad architecture", `{"Version":1,"Image":{"Architecture":"arm","ProductTypes":[],"Snapshots":[` + snap + `]}}`, "4040"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := transfer.ParseManifest([]byte(c.data))
			var oe *omi.Error
			if !errors.As(err, &oe) {
				t.Fatalf("ParseManifest = %+v, %v; want an *omi.Error", m, err)
			}
			if oe.Code != c.code || oe.Type != omi.TypeInvalidParameter {
				t.Fatalf("error %v, want code %s", err, c.code)
			}
		})
	}
}
