package catalog

import "fmt"

// Preset is one official OMI of the catalogue: the name its OMIs are
// published under (followed by a date and a build number, for instance
// Debian-12-2026.11.22-0) and the disk it is built from.
type Preset struct {
	// Name is the OMI name prefix, as on the real cloud (Debian-12).
	Name string
	// Description is a human description for the OMI.
	Description string
	// Platform is "linux" or "windows".
	Platform string
	// Spec builds the root disk.
	Spec DiskSpec
}

// Real os-release files of each distribution, as shipped in the release the
// preset names. Rocky Linux ships XFS roots; ours is ext4 because go-diskfs
// cannot write XFS, which the content of the file does not depend on.
const (
	debian12OSRelease = `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
`
	ubuntu2404OSRelease = `PRETTY_NAME="Ubuntu 24.04.3 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.3 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=noble
LOGO=ubuntu-logo
`
	rocky9OSRelease = `NAME="Rocky Linux"
VERSION="9.6 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.6"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.6 (Blue Onyx)"
ANSI_COLOR="0;32"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:rocky:rocky:9::baseos"
HOME_URL="https://rockylinux.org/"
VENDOR_NAME="RESF"
VENDOR_URL="https://resf.org/"
BUG_REPORT_URL="https://bugs.rockylinux.org/"
SUPPORT_END="2032-05-31"
ROCKY_SUPPORT_PRODUCT="Rocky-Linux-9"
ROCKY_SUPPORT_PRODUCT_VERSION="9.6"
REDHAT_SUPPORT_PRODUCT="Rocky Linux"
REDHAT_SUPPORT_PRODUCT_VERSION="9.6"
`
)

var presets = []Preset{
	{
		Name:        "Debian-12",
		Description: "Debian GNU/Linux 12 (bookworm)",
		Platform:    "linux",
		Spec:        DiskSpec{OSRelease: debian12OSRelease, Hostname: "debian", Label: "root"},
	},
	{
		Name:        "Ubuntu-24.04",
		Description: "Ubuntu 24.04 LTS (Noble Numbat)",
		Platform:    "linux",
		Spec:        DiskSpec{OSRelease: ubuntu2404OSRelease, Hostname: "ubuntu", Label: "cloudimg-rootfs"},
	},
	{
		Name:        "RockyLinux-9",
		Description: "Rocky Linux 9 (Blue Onyx)",
		Platform:    "linux",
		Spec:        DiskSpec{OSRelease: rocky9OSRelease, Hostname: "rocky", Label: "rocky"},
	},
	{
		Name:        "Windows-Server-2022",
		Description: "Windows Server 2022 Datacenter (placeholder disk: NTFS boot sector only)",
		Platform:    "windows",
		Spec:        DiskSpec{Windows: true, SizeBytes: 64 << 20},
	},
}

// Presets returns the official catalogue, in a stable order.
func Presets() []Preset {
	out := make([]Preset, len(presets))
	copy(out, presets)
	for i := range out {
		out[i].Spec.Files = append([]File(nil), out[i].Spec.Files...)
	}
	return out
}

// LookupPreset returns the preset with that name.
func LookupPreset(name string) (Preset, error) {
	for _, p := range Presets() {
		if p.Name == name {
			return p, nil
		}
	}
	return Preset{}, fmt.Errorf("catalog: no preset %q", name)
}
