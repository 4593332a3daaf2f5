package service

import (
	"bufio"
	"encoding/base64"
	"strings"

	"github.com/omiproject/omi"
)

// outscaleSection returns the settings of the OUTSCALE section of a VM's
// user data (base64, as the API carries it): the key=value lines between
// "-----BEGIN OUTSCALE SECTION-----" and "-----END OUTSCALE SECTION-----",
// which the real cloud reads itself and does not pass to the guest's
// cloud-init alone. User data that is not base64 or has no section gives
// none.
func outscaleSection(userData string) map[string]string {
	raw, err := base64.StdEncoding.DecodeString(userData)
	if err != nil {
		return nil
	}
	var out map[string]string
	in := false
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "-----BEGIN OUTSCALE SECTION-----":
			in = true
		case line == "-----END OUTSCALE SECTION-----":
			return out
		case in:
			if k, v, ok := strings.Cut(line, "="); ok {
				if out == nil {
					out = map[string]string{}
				}
				out[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
	}
	return out
}

// privateOnly reports whether user data asks, with private_only=true in
// its OUTSCALE section, that a VM of the public Cloud get no public IP.
func privateOnly(userData string) bool {
	return strings.EqualFold(outscaleSection(userData)["private_only"], "true")
}

// placePrivateOnly gives a new VM of the public Cloud whose user data says
// private_only=true the Net, subnet and primary NIC the real cloud shows
// for it (omi.Vm.PrivateOnly).
func (s *Service) placePrivateOnly(vm *omi.Vm) {
	if vm.NetId == "" && vm.PrivateOnly == nil && privateOnly(vm.UserData) {
		vm.PrivateOnly = omi.NewPrivatePlacement(randomMac())
	}
}

// replacePrivateOnly brings a VM of the public Cloud that is being started
// in line with its user data, which may have changed while it was
// stopped: into a private-only placement, without its public IP at
// launch, or out of it, with a new one. A linked public IP is the
// account's and stays; a pool address of a VM driver is where the VM's
// ports are forwarded and stays too.
func (s *Service) replacePrivateOnly(tx omi.Tx, vm *omi.Vm) error {
	if vm.NetId != "" {
		return nil
	}
	want := privateOnly(vm.UserData)
	switch {
	case want && vm.PrivateOnly == nil:
		s.placePrivateOnly(vm)
		if vm.PublicIp != "" && !s.inPool(vm.PublicIp) {
			vm.PublicIp, vm.PublicDnsName = "", ""
		}
	case !want && vm.PrivateOnly != nil:
		vm.PrivateOnly = nil
		if vm.PublicIp == "" {
			ip, err := freePublicIP(tx)
			if err != nil {
				return err
			}
			vm.PublicIp, vm.PublicDnsName = ip, s.publicDnsName(ip)
		}
	}
	return nil
}
