package transfer

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/omiproject/omi"
)

// ManifestVersion is the only manifest version OUTSCALE defines.
const ManifestVersion = 1

// Error codes of manifest validation (osc-api.md §2.6). The API returns the
// *omi.Error of ParseManifest as is.
const (
	CodeInvalidManifest       = "4040" // a key is missing or has a bad value
	CodeInvalidManifestFormat = "4041" // not JSON, or wrong JSON types
	CodeUnknownExportVersion  = "4094" // Version is not 1
)

// MaxDiskSize bounds the Size of a manifest disk: 16 TiB, the largest map the
// block store holds, well above the 14901 GiB volume limit.
const MaxDiskSize = 16 << 40

// Manifest is the version-1 OMI export manifest of osc-api.md §5.2. The JSON
// names are OUTSCALE's; an importer written by others reads what we write,
// and we read theirs (extra keys, such as the 2019 User and Ordering, are
// ignored).
type Manifest struct {
	Version int           `json:"Version"`
	Image   ManifestImage `json:"Image"`
}

// ManifestImage describes the exported OMI.
type ManifestImage struct {
	Name         string             `json:"Name"`
	Description  string             `json:"Description"`
	Architecture string             `json:"Architecture,omitempty"`
	Type         string             `json:"Type,omitempty"`
	ProductTypes []string           `json:"ProductTypes"`
	Public       bool               `json:"Public"`
	Snapshots    []ManifestSnapshot `json:"Snapshots"`
}

// ManifestSnapshot is one disk of the OMI: where to fetch it and how to map
// it. Size is the uncompressed (virtual) disk size in bytes.
//
// CompressedSize is the object size, a key of older OUTSCALE manifests that
// importers already tolerate. DiskSha256 and ObjectSha256 are our extension
// (lowercase hex SHA-256 of the gunzipped image file and of the object as
// stored): other importers ignore unknown keys, ours verifies them.
type ManifestSnapshot struct {
	DeleteOnTermination bool   `json:"DeleteOnTermination"`
	Device              string `json:"Device"`
	Filename            string `json:"Filename"`
	Iops                *int   `json:"Iops"`
	PreSignedUrl        string `json:"PreSignedUrl"`
	Size                int64  `json:"Size"`
	VolumeType          string `json:"VolumeType"`

	CompressedSize int64  `json:"CompressedSize,omitempty"`
	DiskSha256     string `json:"OmiDiskSha256,omitempty"`
	ObjectSha256   string `json:"OmiObjectSha256,omitempty"`
}

// Marshal encodes m as indented JSON, the form written to the bucket,
// filling the defaults other importers expect (Version 1, Type machine,
// VolumeType standard, an empty ProductTypes list rather than null). m is
// not modified.
func (m *Manifest) Marshal() ([]byte, error) {
	c := *m
	if c.Version == 0 {
		c.Version = ManifestVersion
	}
	c.Image.Snapshots = append([]ManifestSnapshot(nil), m.Image.Snapshots...)
	for i := range c.Image.Snapshots {
		if c.Image.Snapshots[i].VolumeType == "" {
			c.Image.Snapshots[i].VolumeType = omi.VolumeStandard
		}
	}
	if c.Image.ProductTypes == nil {
		c.Image.ProductTypes = []string{}
	}
	if c.Image.Type == "" {
		c.Image.Type = "machine"
	}
	return json.MarshalIndent(&c, "", "  ")
}

// Root returns the snapshot mapped to the root device, or nil.
func (m *Manifest) Root() *ManifestSnapshot {
	for i := range m.Image.Snapshots {
		if m.Image.Snapshots[i].Device == omi.RootDeviceName {
			return &m.Image.Snapshots[i]
		}
	}
	return nil
}

// maxManifestBytes bounds what ParseManifest accepts; a real manifest is a
// few KiB.
const maxManifestBytes = 1 << 20

// ParseManifest decodes and validates a manifest fetched from a URL the
// caller gave. Every error is an *omi.Error: 4041 when the data is not a
// JSON manifest, 4094 when Version is not 1, 4040 for a missing required key
// or a bad value (size, device name, volume type, URL, digest).
func ParseManifest(data []byte) (*Manifest, error) {
	if len(data) > maxManifestBytes {
		return nil, omi.Invalid(CodeInvalidManifestFormat, "manifest is %d bytes, more than %d", len(data), maxManifestBytes)
	}
	// First pass: presence of the required keys and the version, before
	// the typed decode, so a version-2 manifest with another shape still
	// gets 4094 and a missing key is told apart from a zero value.
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, &omi.Error{Code: CodeInvalidManifestFormat, Type: omi.TypeInvalidParameter,
			Details: "manifest is not a JSON object", Err: err}
	}
	rawVer, ok := top["Version"]
	if !ok {
		return nil, omi.Invalid(CodeInvalidManifest, "manifest has no Version")
	}
	var ver json.Number
	dec := json.NewDecoder(bytes.NewReader(rawVer))
	dec.UseNumber()
	if t := bytes.TrimSpace(rawVer); len(t) == 0 || t[0] == '"' || dec.Decode(&ver) != nil {
		return nil, omi.Invalid(CodeInvalidManifestFormat, "manifest Version is not a number")
	}
	if ver.String() != "1" {
		return nil, omi.Invalid(CodeUnknownExportVersion, "unknown manifest version %s, only version 1 is supported", ver.String())
	}
	rawImg, ok := top["Image"]
	if !ok || string(rawImg) == "null" {
		return nil, omi.Invalid(CodeInvalidManifest, "manifest has no Image")
	}
	var img map[string]json.RawMessage
	if err := json.Unmarshal(rawImg, &img); err != nil {
		return nil, omi.Invalid(CodeInvalidManifestFormat, "manifest Image is not an object")
	}
	for _, k := range []string{"ProductTypes", "Snapshots"} {
		if v, ok := img[k]; !ok || string(v) == "null" {
			return nil, omi.Invalid(CodeInvalidManifest, "manifest Image has no %s", k)
		}
	}
	var rawSnaps []map[string]json.RawMessage
	if err := json.Unmarshal(img["Snapshots"], &rawSnaps); err != nil {
		return nil, omi.Invalid(CodeInvalidManifestFormat, "manifest Image.Snapshots is not an array of objects")
	}
	for i, s := range rawSnaps {
		for _, k := range []string{"Device", "PreSignedUrl", "Size"} {
			if v, ok := s[k]; !ok || string(v) == "null" {
				return nil, omi.Invalid(CodeInvalidManifest, "manifest Image.Snapshots[%d] has no %s", i, k)
			}
		}
	}

	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, &omi.Error{Code: CodeInvalidManifestFormat, Type: omi.TypeInvalidParameter,
			Details: "manifest has a value of the wrong type: " + jsonTypeDetail(err), Err: err}
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// jsonTypeDetail names the offending field of a type error without echoing
// the whole Go error.
func jsonTypeDetail(err error) string {
	if te, ok := err.(*json.UnmarshalTypeError); ok {
		return fmt.Sprintf("%s must be %s, not %s", te.Field, te.Type, te.Value)
	}
	return "invalid JSON"
}

// validate checks the values of a decoded manifest.
func (m *Manifest) validate() *omi.Error {
	img := &m.Image
	if a := img.Architecture; a != "" && a != "i386" && a != "x86_64" {
		return omi.Invalid(CodeInvalidManifest, "manifest Architecture %q is not i386 or x86_64", a)
	}
	if t := img.Type; t != "" && t != "machine" {
		return omi.Invalid(CodeInvalidManifest, "manifest image Type %q is not machine", t)
	}
	for _, pc := range img.ProductTypes {
		if pc == "" || len(pc) > 64 {
			return omi.Invalid(CodeInvalidManifest, "manifest has an invalid product code %q", pc)
		}
	}
	if len(img.Snapshots) == 0 {
		return omi.Invalid(CodeInvalidManifest, "manifest has no snapshots")
	}
	if m.Root() == nil {
		return omi.Invalid(CodeInvalidManifest, "manifest has no snapshot for the root device %s", omi.RootDeviceName)
	}
	seen := map[string]bool{}
	for i := range img.Snapshots {
		s := &img.Snapshots[i]
		at := fmt.Sprintf("manifest Image.Snapshots[%d]", i)
		if !omi.ValidDeviceName(s.Device) {
			return omi.Invalid(CodeInvalidManifest, "%s: invalid device name %q", at, s.Device)
		}
		if seen[s.Device] {
			return omi.Invalid(CodeInvalidManifest, "%s: device %s appears twice", at, s.Device)
		}
		seen[s.Device] = true
		if s.Size <= 0 || s.Size > MaxDiskSize {
			return omi.Invalid(CodeInvalidManifest, "%s: Size %d is not between 1 and %d bytes", at, s.Size, int64(MaxDiskSize))
		}
		if s.CompressedSize < 0 {
			return omi.Invalid(CodeInvalidManifest, "%s: negative CompressedSize", at)
		}
		if s.VolumeType == "" {
			s.VolumeType = omi.VolumeStandard
		}
		if !omi.ValidVolumeType(s.VolumeType) {
			return omi.Invalid(CodeInvalidManifest, "%s: VolumeType %q is not standard, gp2 or io1", at, s.VolumeType)
		}
		if s.Iops != nil && (*s.Iops < 0 || *s.Iops > omi.MaxIops) {
			return omi.Invalid(CodeInvalidManifest, "%s: Iops %d out of range", at, *s.Iops)
		}
		if s.Filename != "" && (strings.ContainsAny(s.Filename, "/\\") || len(s.Filename) > 1024) {
			return omi.Invalid(CodeInvalidManifest, "%s: invalid Filename %q", at, s.Filename)
		}
		u, err := url.Parse(s.PreSignedUrl)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return omi.Invalid(CodeInvalidManifest, "%s: PreSignedUrl is not an http(s) URL", at)
		}
		for _, d := range []struct{ name, v string }{{"OmiDiskSha256", s.DiskSha256}, {"OmiObjectSha256", s.ObjectSha256}} {
			if d.v != "" && !validSHA256(d.v) {
				return omi.Invalid(CodeInvalidManifest, "%s: %s is not 64 hex digits", at, d.name)
			}
		}
	}
	return nil
}

// validSHA256 reports whether s is a hex SHA-256 digest.
func validSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// ImportOptions returns the options that make an import check what the
// manifest announces for this disk: its size, its digests (when the
// exporter was us) and its object size (for progress).
func (s *ManifestSnapshot) ImportOptions() ImportOptions {
	return ImportOptions{
		DeclaredSize:         s.Size,
		ExpectedSHA256:       s.DiskSha256,
		ExpectedObjectSHA256: s.ObjectSha256,
		ObjectSize:           s.CompressedSize,
	}
}

// ManifestSnapshot describes an exported disk for the manifest: the
// mapping fields come from the OMI's block device mapping, the sizes and
// digests from the export.
func (r Result) ManifestSnapshot(device, filename, preSignedURL, volumeType string, iops *int, deleteOnTermination bool) ManifestSnapshot {
	return ManifestSnapshot{
		DeleteOnTermination: deleteOnTermination,
		Device:              device,
		Filename:            filename,
		Iops:                iops,
		PreSignedUrl:        preSignedURL,
		Size:                r.Size,
		VolumeType:          volumeType,
		CompressedSize:      r.ObjectSize,
		DiskSha256:          r.DiskSHA256,
		ObjectSha256:        r.ObjectSHA256,
	}
}
