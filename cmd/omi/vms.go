package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"time"

	"github.com/omiproject/omi/qemuvm"
	"github.com/omiproject/omi/service"
)

// vmFlags choose and size the VM driver.
type vmFlags struct {
	driver      string
	pool        string
	maxMemory   int
	maxVCores   int
	stopTimeout time.Duration
}

func (v *vmFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&v.driver, "vm-driver", envOr("OMI_VM_DRIVER", "auto"), "what runs VMs: qemu (one QEMU machine per running VM), sim (simulated: states only) or auto (qemu when qemu-system-x86_64 is installed) (env OMI_VM_DRIVER)")
	fs.StringVar(&v.pool, "vm-address-pool", envOr("OMI_VM_ADDRESS_POOL", "127.42.0.0/16"), "loopback range VMs get their public address from (from the bottom) and CreatePublicIp its addresses (from the top); each VM's SSH and security-group ports are forwarded on its own address or on the public IPs linked to it (qemu driver; env OMI_VM_ADDRESS_POOL)")
	mem, _ := strconv.Atoi(envOr("OMI_VM_MAX_MEMORY", "1024"))
	fs.IntVar(&v.maxMemory, "vm-max-memory", mem, "most MiB of memory a VM gets, whatever its type says (qemu driver; env OMI_VM_MAX_MEMORY)")
	cores, _ := strconv.Atoi(envOr("OMI_VM_MAX_VCPUS", "2"))
	fs.IntVar(&v.maxVCores, "vm-max-vcpus", cores, "most vCPUs a VM gets, whatever its type says (qemu driver; env OMI_VM_MAX_VCPUS)")
	st, _ := time.ParseDuration(envOr("OMI_VM_STOP_TIMEOUT", "30s"))
	fs.DurationVar(&v.stopTimeout, "vm-stop-timeout", st, "how long StopVms waits for a guest to power off before stopping its machine (qemu driver; env OMI_VM_STOP_TIMEOUT)")
}

// vmDriver makes the driver the flags ask for: nil for the simulated one.
func (v *vmFlags) vmDriver(svc *service.Service, dataDir, nbdListen string, cluster bool, log *slog.Logger) (*qemuvm.Driver, error) {
	if cluster && v.driver != "sim" {
		// Each node would run machines for VMs another node runs.
		if v.driver == "qemu" {
			return nil, errors.New("--vm-driver=qemu runs VMs on a single node: it cannot be used with a shared PostgreSQL store")
		}
		log.Info("vm driver: simulated (the qemu driver runs on a single node, not with a shared PostgreSQL store)")
		return nil, nil
	}
	switch v.driver {
	case "sim":
		return nil, nil
	case "auto":
		if !qemuvm.Available() {
			log.Info("vm driver: simulated (qemu-system-x86_64 is not installed; VMs do not boot)")
			return nil, nil
		}
	case "qemu":
		if !qemuvm.Available() {
			return nil, errors.New("--vm-driver=qemu: qemu-system-x86_64 is not installed (Debian package qemu-system-x86)")
		}
	default:
		return nil, fmt.Errorf("--vm-driver: %q is not qemu, sim or auto", v.driver)
	}
	if nbdListen == "" {
		if v.driver == "qemu" {
			return nil, errors.New("--vm-driver=qemu needs the NBD server (--nbd-listen): VMs boot their volumes from it")
		}
		log.Info("vm driver: simulated (the NBD server is disabled)")
		return nil, nil
	}
	if _, port, err := net.SplitHostPort(nbdListen); err != nil || port == "0" {
		return nil, fmt.Errorf("--nbd-listen %q: the qemu VM driver needs a fixed port", nbdListen)
	}
	pool, err := netip.ParsePrefix(v.pool)
	if err != nil {
		return nil, fmt.Errorf("--vm-address-pool: %w", err)
	}
	d, err := qemuvm.New(qemuvm.Options{Dir: filepath.Join(dataDir, "vms"), NBD: nbdListen, Pool: pool,
		MaxMemoryMiB: v.maxMemory, MaxVCores: v.maxVCores, StopTimeout: v.stopTimeout,
		Metadata: svc.MetadataHandler(qemuvm.VmOf), Log: log})
	if err != nil {
		return nil, err
	}
	log.Info("vm driver: qemu", "accel", d.Accel(), "address_pool", pool.String(), "max_memory_mib", v.maxMemory, "max_vcpus", v.maxVCores)
	return d, nil
}

// imdsProxy is `omi imds-proxy SOCKET VM-ID`, the command QEMU runs for
// each connection of a guest to the metadata service.
func imdsProxy(args []string) int {
	if len(args) != 2 {
		return 2
	}
	return qemuvm.Proxy(args[0], args[1])
}
