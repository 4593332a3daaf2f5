package service

import (
	"context"
	"encoding/base64"

	"github.com/omiproject/omi"
)

type ReadConsoleOutputRequest struct {
	Base
	VmId string `json:"VmId"`
}
type ReadConsoleOutputResponse struct {
	// ConsoleOutput is the Base64 of the console's last 64 KiB.
	ConsoleOutput string `json:"ConsoleOutput"`
	VmId          string `json:"VmId"`
}

// ReadConsoleOutput returns the console output of one of the caller's VMs:
// the last 64 KiB of its serial console under the QEMU driver. Under the
// simulated driver no guest runs, so the output is empty, which is also
// what the real API returns before a VM has printed anything.
func (s *Service) ReadConsoleOutput(ctx context.Context, c *omi.Caller, in *ReadConsoleOutputRequest) (*ReadConsoleOutputResponse, error) {
	vm, err := s.consoleVm(ctx, c, in.VmId)
	if err != nil {
		return nil, err
	}
	if omi.IsDryRun(ctx) {
		return &ReadConsoleOutputResponse{}, nil
	}
	return &ReadConsoleOutputResponse{VmId: vm.VmId, ConsoleOutput: base64.StdEncoding.EncodeToString(s.vmDriver().Console(vm.VmId))}, nil
}

type ReadAdminPasswordRequest struct {
	Base
	VmId string `json:"VmId"`
}
type ReadAdminPasswordResponse struct {
	// AdminPassword is the Base64 of the administrator password encrypted
	// with the RSA key of the VM's keypair (PKCS #1 v1.5), or "".
	AdminPassword string `json:"AdminPassword"`
	VmId          string `json:"VmId"`
}

// ReadAdminPassword returns the administrator password of one of the
// caller's VMs, and always an empty one.
//
// On the real cloud, a Windows VM generates its password during its first
// boot and posts it, encrypted with the public key of the VM's RSA keypair;
// until then, and after the first boot, the call returns "". omi runs no
// guest: no Windows ever boots, so no password exists that could let anyone
// log in. Making one up would hand the user a credential for nothing; ""
// is the answer the API gives while no password has been posted, and
// clients treat it as "not yet" (packer polls, terraform's get_admin_password
// waits). The call succeeds for every VM, Linux ones included: terraform
// reads the password of every outscale_vm it refreshes and fails on an
// error.
func (s *Service) ReadAdminPassword(ctx context.Context, c *omi.Caller, in *ReadAdminPasswordRequest) (*ReadAdminPasswordResponse, error) {
	vm, err := s.consoleVm(ctx, c, in.VmId)
	if err != nil {
		return nil, err
	}
	if omi.IsDryRun(ctx) {
		return &ReadAdminPasswordResponse{}, nil
	}
	return &ReadAdminPasswordResponse{VmId: vm.VmId, AdminPassword: ""}, nil
}

// consoleVm checks VmId and loads the caller's VM; other accounts' VMs are
// reported exactly like missing ones.
func (s *Service) consoleVm(ctx context.Context, c *omi.Caller, id string) (*omi.Vm, error) {
	if id == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "VmId is required")
	}
	var vm *omi.Vm
	err := s.view(ctx, func(tx omi.Tx) error {
		var err error
		vm, err = s.ownVm(tx, c, id)
		return err
	})
	return vm, err
}
