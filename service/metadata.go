package service

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/omiproject/omi"
)

// metadataVersions are the dated trees served besides latest: those
// cloud-init's Ec2 datasource and CirrOS-like images ask for.
var metadataVersion = regexp.MustCompile(`^(latest|\d{4}-\d{2}-\d{2})$`)

// metadataVersions lists the versions the root of the service names.
var metadataVersions = []string{"1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
	"2008-02-01", "2008-09-01", "2009-04-04", "2011-01-01", "2011-05-01", "2012-01-12", "2014-02-25",
	"2014-11-05", "2015-10-20", "2016-04-18", "2016-06-30", "2016-09-02", "latest"}

// VmMetadata answers a request of a VM's guest to the metadata service at
// 169.254.169.254: path is the URL path (/latest/meta-data/instance-id).
// It returns the body and whether the path exists. The tree is the
// EC2-compatible one OUTSCALE serves, built from the VM's record: a
// directory lists its entries one per line, sub-directories ending in /.
func (s *Service) VmMetadata(ctx context.Context, vmID, path string) (string, bool, error) {
	var vm *omi.Vm
	var key string
	err := s.store.View(ctx, func(tx omi.Tx) error {
		var err error
		if vm, err = omi.Get[omi.Vm](tx, vmID); err != nil {
			return err
		}
		// The address the guest is reached on: a linked public IP of
		// the pool, else its own.
		if addrs, err := s.vmAddresses(tx, vm); err != nil {
			return err
		} else if len(addrs) > 0 {
			vm.PublicIp, vm.PublicDnsName = addrs[0], addrs[0]
		}
		if vm.KeypairName != "" {
			return omi.Scan(tx, omi.Query{Owners: []string{vm.AccountId}, Names: []string{vm.KeypairName}}, func(k *omi.Keypair) (bool, error) {
				if k.KeypairName == vm.KeypairName {
					key = k.PublicKey
					return false, nil
				}
				return true, nil
			})
		}
		return nil
	})
	if isNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) == 1 && parts[0] == "" {
		return strings.Join(metadataVersions, "\n") + "\n", true, nil
	}
	if !metadataVersion.MatchString(parts[0]) && parts[0] != "1.0" {
		return "", false, nil
	}
	tree := s.metadataTree(vm, key)
	rest := strings.Join(parts[1:], "/")
	if rest == "" {
		return "dynamic\nmeta-data\nuser-data\n", true, nil
	}
	if rest == "user-data" {
		ud, err := base64.StdEncoding.DecodeString(vm.UserData)
		if err != nil || vm.UserData == "" {
			return "", vm.UserData != "", nil
		}
		return string(ud), true, nil
	}
	if v, ok := tree[rest]; ok {
		return v, true, nil
	}
	// A directory: the names under it.
	var names []string
	prefix := rest + "/"
	for k := range tree {
		if sub, ok := strings.CutPrefix(k, prefix); ok {
			name, _, dir := strings.Cut(sub, "/")
			if dir {
				name += "/"
			}
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	if len(names) == 0 {
		return "", false, nil
	}
	slices.Sort(names)
	if rest == "meta-data/public-keys" && key != "" {
		names = []string{"0=" + vm.KeypairName}
	}
	return strings.Join(names, "\n") + "\n", true, nil
}

// metadataTree is every leaf of a VM's tree, by path under the version.
func (s *Service) metadataTree(vm *omi.Vm, key string) map[string]string {
	host := vm.PrivateDnsName
	local, _, _ := strings.Cut(host, ".")
	t := map[string]string{
		"meta-data/ami-id":                      vm.ImageId,
		"meta-data/ami-launch-index":            fmt.Sprint(vm.LaunchNumber),
		"meta-data/ami-manifest-path":           "(unknown)",
		"meta-data/hostname":                    host,
		"meta-data/instance-action":             "none",
		"meta-data/instance-id":                 vm.VmId,
		"meta-data/instance-type":               vm.VmType,
		"meta-data/local-hostname":              local,
		"meta-data/local-ipv4":                  vm.PrivateIp,
		"meta-data/mac":                         vmMAC(vm.VmId),
		"meta-data/placement/availability-zone": vm.Placement.SubregionName,
		"meta-data/placement/region":            s.cfg.Region,
		"meta-data/public-hostname":             vm.PublicDnsName,
		"meta-data/public-ipv4":                 vm.PublicIp,
		"meta-data/reservation-id":              vm.ReservationId,
		"meta-data/block-device-mapping/ami":    vm.RootDeviceName,
		"meta-data/block-device-mapping/root":   vm.RootDeviceName,
		"meta-data/services/domain":             "outscale.com",
		"dynamic/instance-identity/document":    fmt.Sprintf(`{"instanceId":%q,"imageId":%q,"instanceType":%q,"availabilityZone":%q,"region":%q,"privateIp":%q,"architecture":%q}`, vm.VmId, vm.ImageId, vm.VmType, vm.Placement.SubregionName, s.cfg.Region, vm.PrivateIp, vm.Architecture),
		"meta-data/network/interfaces/macs/" + vmMAC(vm.VmId) + "/local-ipv4s": vm.PrivateIp,
	}
	var groups []string
	for _, g := range vm.SecurityGroups {
		groups = append(groups, g.SecurityGroupName)
	}
	t["meta-data/security-groups"] = strings.Join(groups, "\n")
	for i, m := range vm.BlockDeviceMappings {
		if m.DeviceName != vm.RootDeviceName {
			t[fmt.Sprintf("meta-data/block-device-mapping/ebs%d", i)] = m.DeviceName
		}
	}
	if key != "" {
		t["meta-data/public-keys/0/openssh-key"] = key + "\n"
	}
	for _, tag := range vm.Tags {
		if tag.Key != "" && !strings.Contains(tag.Key, "/") {
			t["meta-data/tags/vm/"+tag.Key] = tag.Value
		}
	}
	return t
}

// vmMAC is the MAC address of a VM's network card, derived from its id
// (the QEMU driver gives the card the same one).
func vmMAC(id string) string {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return fmt.Sprintf("aa:ce:%02x:%02x:%02x:%02x", byte(h>>24), byte(h>>16), byte(h>>8), byte(h))
}

// MetadataHandler serves the metadata service of the VM whose id vmID
// reads from the request (the driver knows which VM a connection comes
// from). Only GET and HEAD are served.
func (s *Service) MetadataHandler(vmID func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body, ok, err := s.VmMetadata(r.Context(), vmID(r), r.URL.Path)
		switch {
		case err != nil:
			s.log.Warn("metadata", "vm", vmID(r), "path", r.URL.Path, "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
		case !ok:
			http.NotFound(w, r)
		default:
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte(body))
		}
	})
}
