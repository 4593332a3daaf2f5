package qemuvm

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/omiproject/omi/service"
)

// Forward makes a running machine forward exactly spec.TCPPorts on each
// of spec.PublicIps, adding and removing QEMU host forwards (the HMP
// commands hostfwd_add and hostfwd_remove on the user netdev) while the
// guest runs: security group rules and public IP links change without a
// restart. What is forwarded now is read from the machine itself (info
// usernet), so a machine adopted after an omi restart is brought up to
// date as well. Connections already open through a removed forward stay
// open, as slirp keeps them; new ones are refused. A VM whose machine
// does not run is left alone.
func (d *Driver) Forward(spec service.VmSpec) error {
	m := d.get(spec.VmId)
	if m == nil {
		return nil
	}
	out, err := m.qmp.hmp("info usernet")
	if err != nil {
		return err
	}
	have := hostForwards(out)
	want := wantForwards(spec)
	var errs []error
	for _, k := range sortedKeys(have) {
		if _, ok := want[k]; ok {
			continue
		}
		res, err := m.qmp.hmp("hostfwd_remove n0 tcp:" + k)
		if err == nil && !strings.Contains(res, "removed") {
			err = fmt.Errorf("hostfwd_remove tcp:%s: %s", k, strings.TrimSpace(res))
		}
		errs = append(errs, err)
	}
	added := 0
	for _, k := range sortedKeys(want) {
		if have[k] {
			continue
		}
		res, err := m.qmp.hmp(fmt.Sprintf("hostfwd_add n0 tcp:%s-:%d", k, want[k]))
		if err == nil && strings.TrimSpace(res) != "" {
			// QEMU says "Could not set up host forwarding rule" when the
			// address and port are taken.
			err = fmt.Errorf("forward %s to the guest's port %d: %s", k, want[k], strings.TrimSpace(res))
		}
		if err == nil {
			added++
		}
		errs = append(errs, err)
	}
	err = errors.Join(errs...)
	if len(have) != len(want) || added > 0 || err != nil {
		d.opt.Log.Info("vm forwards changed", "vm", spec.VmId, "addresses", spec.PublicIps, "ports", spec.TCPPorts, "err", err)
	}
	return err
}

// wantForwards maps each "address:host-port" spec asks for to its guest
// port.
func wantForwards(spec service.VmSpec) map[string]int {
	want := map[string]int{}
	for _, a := range spec.PublicIps {
		for _, p := range spec.TCPPorts {
			want[net.JoinHostPort(a, strconv.Itoa(ForwardedPort(p)))] = p
		}
	}
	return want
}

// hostForwards parses the TCP host forwards of HMP "info usernet":
//
//	TCP[HOST_FORWARD]  13     127.42.99.2  8080    169.254.0.15  8080     0     0
//
// as "127.42.99.2:8080" keys. Connections (TCP[ESTABLISHED], ...) and
// the metadata guest forward are not host forwards.
func hostForwards(out string) map[string]bool {
	have := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || f[0] != "TCP[HOST_FORWARD]" {
			continue
		}
		if _, err := strconv.Atoi(f[3]); err != nil {
			continue
		}
		have[net.JoinHostPort(f[2], f[3])] = true
	}
	return have
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
