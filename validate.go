package omi

import (
	"strconv"
	"strings"
)

// Limits of the OMI user guide and the API specification.
const (
	MaxVolumeSizeGiB = 14901 // largest volume
	MaxIops          = 13000 // io1 ceiling
	MaxIopsPerGiB    = 300   // io1 ratio
	MinIo1SizeGiB    = 4     // smallest io1 volume
	MaxTagKeyLen     = 255
	MaxTagValueLen   = 255
	MaxTagsPerRes    = 50
	MaxDescription   = 255
	RootDeviceName   = "/dev/sda1"
)

// ValidImageName checks the ImageName rule: 3-128 characters among letters,
// digits, underscores, spaces, parentheses, slashes, periods and dashes.
func ValidImageName(name string) bool {
	if len(name) < 3 || len(name) > 128 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("_ ()/.-", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// ValidDeviceName checks a block device name: /dev/sda1 for the root, and
// /dev/sdX, /dev/sdXX, /dev/xvdX or /dev/xvdXX otherwise, where the first X
// is b-z and the second a-z.
func ValidDeviceName(name string) bool {
	if name == RootDeviceName {
		return true
	}
	var rest string
	switch {
	case strings.HasPrefix(name, "/dev/xvd"):
		rest = name[len("/dev/xvd"):]
	case strings.HasPrefix(name, "/dev/sd"):
		rest = name[len("/dev/sd"):]
	default:
		return false
	}
	switch len(rest) {
	case 1:
		return rest[0] >= 'b' && rest[0] <= 'z'
	case 2:
		return rest[0] >= 'b' && rest[0] <= 'z' && rest[1] >= 'a' && rest[1] <= 'z'
	}
	return false
}

// ValidVirtualDeviceName checks ephemeralN.
func ValidVirtualDeviceName(name string) bool {
	n, ok := strings.CutPrefix(name, "ephemeral")
	if !ok || n == "" || len(n) > 2 {
		return false
	}
	_, err := strconv.Atoi(n)
	return err == nil
}

// ValidVolumeType reports whether t is standard, io1 or gp2.
func ValidVolumeType(t string) bool {
	return t == VolumeStandard || t == VolumeIO1 || t == VolumeGP2
}

// CheckVolumeSpec applies the volume rules of the seeds: a size of 1 to
// 14901 GiB, IOPS only for io1 volumes, at most 13000 and 300 per GiB.
// iops is nil when not given. It returns nil or an *Error.
func CheckVolumeSpec(volumeType string, sizeGiB int, iops *int) *Error {
	if !ValidVolumeType(volumeType) {
		return Invalid(CodeInvalidValue, "VolumeType must be standard, io1 or gp2, not %q", volumeType)
	}
	if sizeGiB < 1 || sizeGiB > MaxVolumeSizeGiB {
		return Invalid(CodeInvalidVolumeSize, "volume size must be between 1 and %d GiB, not %d", MaxVolumeSizeGiB, sizeGiB)
	}
	if volumeType != VolumeIO1 {
		if iops != nil {
			return Invalid(CodeInvalidIops, "Iops can only be set on io1 volumes")
		}
		return nil
	}
	if iops == nil {
		return Invalid(CodeInvalidIops, "Iops is required for io1 volumes")
	}
	if sizeGiB < MinIo1SizeGiB {
		return Invalid(CodeInvalidVolumeSize, "io1 volumes must be at least %d GiB", MinIo1SizeGiB)
	}
	if *iops < 100 || *iops > MaxIops {
		return Invalid(CodeInvalidIops, "Iops must be between 100 and %d, not %d", MaxIops, *iops)
	}
	if *iops > MaxIopsPerGiB*sizeGiB {
		return Invalid(CodeIopsRatio, "Iops %d exceeds %d IOPS per GiB for a %d GiB volume", *iops, MaxIopsPerGiB, sizeGiB)
	}
	return nil
}

// CheckTag applies the tag rules: key 1-255 characters, value 0-255.
func CheckTag(t Tag) *Error {
	if t.Key == "" || len(t.Key) > MaxTagKeyLen {
		return Invalid(CodeInvalidTagKey, "tag key must be 1 to %d characters", MaxTagKeyLen)
	}
	if len(t.Value) > MaxTagValueLen {
		return Invalid(CodeInvalidTagValue, "tag value must be at most %d characters", MaxTagValueLen)
	}
	return nil
}
