package osimage

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// Family names of the built official OMIs (published as FAMILY-DATE-N).
const (
	SmallFamily = "Small-Linux"
)

// Manifest describes a built image; it is written next to the image file
// as FILE.json, and omi serve publishes an image file only with one.
type Manifest struct {
	// Family is the official OMI name prefix (Small-Linux, Debian-12).
	Family      string   `json:"Family"`
	Description string   `json:"Description"`
	BootModes   []string `json:"BootModes"`
	// Kernel is the kernel release the image boots.
	Kernel string `json:"Kernel"`
	// Packages are the Debian packages it was made from, name=version.
	Packages []string `json:"Packages"`
}

// ManifestPath is where the manifest of an image file is.
func ManifestPath(image string) string { return image + ".json" }

// ReadManifest reads the manifest of an image file.
func ReadManifest(image string) (*Manifest, error) {
	data, err := os.ReadFile(ManifestPath(image))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestPath(image), err)
	}
	if m.Family == "" {
		return nil, fmt.Errorf("%s: no Family", ManifestPath(image))
	}
	return &m, nil
}

func writeManifest(path string, m *Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

func packageList(debs []deb) []string {
	var out []string
	for _, d := range debs {
		out = append(out, d.packageName()+"="+d.version())
	}
	return out
}

// versionOf is the version of a package among debs, without the epoch.
func versionOf(debs []deb, name string) string {
	for _, d := range debs {
		if d.packageName() == name {
			v := d.version()
			if _, rest, ok := strings.Cut(v, ":"); ok {
				return rest
			}
			return v
		}
	}
	return "?"
}
