package omi

import (
	"fmt"
	"strconv"
	"strings"
)

// VmType is a parsed TINA VM type name, tinavW.cXrYpZ: processor generation
// W, X vCores, Y GiB of memory, performance Z (1 highest, 2 high, 3 medium).
type VmType struct {
	Generation  int
	VCores      int
	MemoryGiB   int
	Performance int
}

// Name returns the canonical tinavW.cXrYpZ form.
func (t VmType) Name() string {
	return fmt.Sprintf("tinav%d.c%dr%dp%d", t.Generation, t.VCores, t.MemoryGiB, t.Performance)
}

// awsTypes maps the AWS instance type names that OUTSCALE accepts to TINA
// equivalents (generation 3, performance high).
var awsTypes = map[string]VmType{
	"t2.nano": {3, 1, 1, 2}, "t2.micro": {3, 1, 1, 2}, "t2.small": {3, 1, 2, 2}, "t2.medium": {3, 2, 4, 2},
	"t2.large": {3, 2, 8, 2}, "m4.large": {3, 2, 8, 2}, "m4.xlarge": {3, 4, 16, 2}, "m4.2xlarge": {3, 8, 32, 2},
	"m4.4xlarge": {3, 16, 64, 2}, "c4.large": {3, 2, 4, 2}, "c4.xlarge": {3, 4, 8, 2}, "c4.2xlarge": {3, 8, 16, 2},
	"c4.4xlarge": {3, 16, 32, 2}, "m3.large": {3, 2, 8, 2}, "r4.large": {3, 2, 16, 2}, "r4.xlarge": {3, 4, 32, 2}, "r4.2xlarge": {3, 8, 64, 2},
}

// DefaultVmType is the type of a VM created without one.
const DefaultVmType = "t2.small"

// ParseVmType parses a TINA type (tinavW.cXrYpZ, or tinavW.cXrY which means
// performance high) or an accepted AWS type name. Generations below 3 and
// the old generation-less tina.cXrY form are refused, as OUTSCALE does.
func ParseVmType(name string) (VmType, error) {
	if t, ok := awsTypes[name]; ok {
		return t, nil
	}
	rest, ok := strings.CutPrefix(name, "tinav")
	if !ok {
		return VmType{}, fmt.Errorf("VM type %q is not of the form tinavW.cXrYpZ", name)
	}
	gen, rest, ok := cutNumber(rest)
	if !ok || !strings.HasPrefix(rest, ".c") {
		return VmType{}, fmt.Errorf("VM type %q is not of the form tinavW.cXrYpZ", name)
	}
	cores, rest, ok := cutNumber(rest[2:])
	if !ok || !strings.HasPrefix(rest, "r") {
		return VmType{}, fmt.Errorf("VM type %q is not of the form tinavW.cXrYpZ", name)
	}
	mem, rest, ok := cutNumber(rest[1:])
	if !ok {
		return VmType{}, fmt.Errorf("VM type %q is not of the form tinavW.cXrYpZ", name)
	}
	perf := 2
	if rest != "" {
		p, tail, ok := cutNumber(strings.TrimPrefix(rest, "p"))
		if !ok || tail != "" || !strings.HasPrefix(rest, "p") {
			return VmType{}, fmt.Errorf("VM type %q is not of the form tinavW.cXrYpZ", name)
		}
		perf = p
	}
	t := VmType{Generation: gen, VCores: cores, MemoryGiB: mem, Performance: perf}
	switch {
	case gen < 3 || gen > 99:
		return VmType{}, fmt.Errorf("VM type %q: processor generation must be 3 or more", name)
	case cores < 1 || cores > 78 || mem < 1 || mem > 1039:
		return VmType{}, fmt.Errorf("VM type %q: vCores or memory out of range", name)
	case perf < 1 || perf > 3:
		return VmType{}, fmt.Errorf("VM type %q: performance must be p1, p2 or p3", name)
	}
	return t, nil
}

func cutNumber(s string) (int, string, bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 4 {
		return 0, s, false
	}
	n, err := strconv.Atoi(s[:i])
	return n, s[i:], err == nil
}

// WindowsMinimum is the smallest VM a Windows OMI runs on, per the OMI user
// guide: a generation 3 processor, 2 vCores and 4 GiB of memory.
var WindowsMinimum = VmType{Generation: 3, VCores: 2, MemoryGiB: 4}

// FitsWindows reports whether t meets WindowsMinimum.
func (t VmType) FitsWindows() bool {
	return t.Generation >= WindowsMinimum.Generation && t.VCores >= WindowsMinimum.VCores && t.MemoryGiB >= WindowsMinimum.MemoryGiB
}
