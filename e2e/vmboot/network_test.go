package vmboot

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	oscv3 "github.com/outscale/osc-sdk-go/v3/pkg/osc"

	"github.com/omiproject/omi/osimage"
	"github.com/omiproject/omi/osimage/osimagetest"
	"github.com/omiproject/omi/qemuvm"
)

// TestUEFIBoot: CreateVms with BootMode uefi boots the small official OMI
// under OVMF through the QEMU driver; SSH answers and the guest sees EFI.
func TestUEFIBoot(t *testing.T) {
	osimagetest.NeedTool(t, osimagetest.OVMF)
	s := newServer(t)
	small := s.image(osimage.SmallFamily)
	signer := s.keypair("uefi")
	t0 := time.Now()
	vm := s.createVmWith(oscv3.CreateVmsRequest{ImageId: small, BootMode: ptr(oscv3.BootMode("uefi"))}, "uefi", "")
	c := dial(t, *vm.PublicIp, signer, bootWithin)
	t.Logf("UEFI: CreateVms -> SSH answering: %v", time.Since(t0).Round(100*time.Millisecond))
	if got := s.vm(vm.VmId).BootMode; got != "uefi" {
		t.Errorf("ReadVms BootMode %v, want uefi", got)
	}
	if got := strings.TrimSpace(osimagetest.Run(t, c, "test -d /sys/firmware/efi && echo efi || echo bios")); got != "efi" {
		t.Errorf("the guest booted with %s, want efi (OVMF)", got)
	}
	c.Close()
	s.deleteVms(vm.VmId)
}

// refused reports whether a TCP connection to addr:port is refused: no
// forward listens there. (A forward whose guest port has no server
// accepts the connection and then closes it.)
func refused(addr string, port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, strconv.Itoa(port)), 5*time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// fetch GETs http://addr:port/ on a new connection.
func fetch(addr string, port int) (string, error) {
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Get("http://" + net.JoinHostPort(addr, strconv.Itoa(port)) + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestLiveForwards: changes to the security groups of a running VM, and
// public IPs linked to it, apply while it runs. A port that a rule opens
// becomes reachable on the VM's address, and closes again when the rule
// goes. A linked public IP (an address of the pool) reaches SSH and the
// open ports, the VM's own address stops answering, and it is the other
// way round once unlinked.
func TestLiveForwards(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	small := s.image(osimage.SmallFamily)
	signer := s.keypair("live")
	g, err := s.c.CreateSecurityGroup(ctx, oscv3.CreateSecurityGroupRequest{SecurityGroupName: "live", Description: "live forwards"})
	if err != nil {
		t.Fatal(err)
	}
	sg := g.SecurityGroup.SecurityGroupId
	vm := s.createVmWith(oscv3.CreateVmsRequest{ImageId: small, SecurityGroupIds: []string{sg}}, "live", "")
	own := *vm.PublicIp
	c := dial(t, own, signer, bootWithin)
	const port = 8080
	osimagetest.Run(t, c, "mkdir -p /root/www && echo hello-"+vm.VmId+" > /root/www/index.html && busybox httpd -p "+strconv.Itoa(port)+" -h /root/www")
	c.Close()
	if !refused(own, port) {
		t.Fatalf("port %d answers before any rule opens it", port)
	}

	rule := oscv3.CreateSecurityGroupRuleRequest{SecurityGroupId: sg, Flow: "Inbound", IpProtocol: ptr("tcp"),
		FromPortRange: ptr(port), ToPortRange: ptr(port), IpRange: ptr("0.0.0.0/0")}
	if _, err := s.c.CreateSecurityGroupRule(ctx, rule); err != nil {
		t.Fatal(err)
	}
	if body, err := fetch(own, port); err != nil || strings.TrimSpace(body) != "hello-"+vm.VmId {
		t.Fatalf("after CreateSecurityGroupRule, http://%s:%d/ = %q, %v", own, port, body, err)
	}
	if _, err := s.c.DeleteSecurityGroupRule(ctx, oscv3.DeleteSecurityGroupRuleRequest{SecurityGroupId: sg, Flow: "Inbound",
		IpProtocol: ptr("tcp"), FromPortRange: ptr(port), ToPortRange: ptr(port), IpRange: ptr("0.0.0.0/0")}); err != nil {
		t.Fatal(err)
	}
	if !refused(own, port) {
		t.Errorf("port %d still answers after DeleteSecurityGroupRule", port)
	}
	// UpdateVm SecurityGroupIds: a group that opens the port.
	g2, err := s.c.CreateSecurityGroup(ctx, oscv3.CreateSecurityGroupRequest{SecurityGroupName: "web", Description: "web"})
	if err != nil {
		t.Fatal(err)
	}
	web := g2.SecurityGroup.SecurityGroupId
	rule.SecurityGroupId = web
	if _, err := s.c.CreateSecurityGroupRule(ctx, rule); err != nil {
		t.Fatal(err)
	}
	if !refused(own, port) {
		t.Errorf("a rule of a group the VM is not in opened port %d", port)
	}
	if _, err := s.c.UpdateVm(ctx, oscv3.UpdateVmRequest{VmId: vm.VmId, SecurityGroupIds: []string{web}}); err != nil {
		t.Fatal(err)
	}
	if body, err := fetch(own, port); err != nil || strings.TrimSpace(body) != "hello-"+vm.VmId {
		t.Errorf("after UpdateVm SecurityGroupIds, http://%s:%d/ = %q, %v", own, port, body, err)
	}

	// A public IP: an address of the pool that reaches the VM once linked.
	ip, err := s.c.CreatePublicIp(ctx, oscv3.CreatePublicIpRequest{})
	if err != nil {
		t.Fatal(err)
	}
	pub := ip.PublicIp.PublicIp
	_, pool, _ := net.ParseCIDR(s.pool)
	if !pool.Contains(net.ParseIP(pub)) || pub == own {
		t.Fatalf("public IP %s: want a free address of the pool %s", pub, s.pool)
	}
	if !refused(pub, qemuvm.ForwardedPort(22)) {
		t.Errorf("an unlinked public IP answers on SSH")
	}
	if _, err := s.c.LinkPublicIp(ctx, oscv3.LinkPublicIpRequest{PublicIp: &pub, VmId: &vm.VmId}); err != nil {
		t.Fatal(err)
	}
	if got := s.vm(vm.VmId); got.PublicIp == nil || *got.PublicIp != pub {
		t.Errorf("ReadVms PublicIp after LinkPublicIp: %v, want %s", got.PublicIp, pub)
	}
	c = dial(t, pub, signer, time.Minute)
	if got := strings.TrimSpace(osimagetest.Run(t, c, "wget -q -O - http://169.254.169.254/latest/meta-data/public-ipv4")); got != pub {
		t.Errorf("metadata public-ipv4 %q after LinkPublicIp, want %s", got, pub)
	}
	c.Close()
	if body, err := fetch(pub, port); err != nil || strings.TrimSpace(body) != "hello-"+vm.VmId {
		t.Errorf("the open port on the linked public IP: %q, %v", body, err)
	}
	if !refused(own, qemuvm.ForwardedPort(22)) || !refused(own, port) {
		t.Errorf("the VM's own address still answers after LinkPublicIp")
	}
	if _, err := s.c.UnlinkPublicIp(ctx, oscv3.UnlinkPublicIpRequest{PublicIp: &pub}); err != nil {
		t.Fatal(err)
	}
	if !refused(pub, qemuvm.ForwardedPort(22)) || !refused(pub, port) {
		t.Errorf("the public IP still answers after UnlinkPublicIp")
	}
	if got := s.vm(vm.VmId); got.PublicIp == nil || *got.PublicIp != own {
		t.Errorf("ReadVms PublicIp after UnlinkPublicIp: %v, want %s", got.PublicIp, own)
	}
	dial(t, own, signer, time.Minute).Close()
	s.deleteVms(vm.VmId)
	if _, err := s.c.DeletePublicIp(ctx, oscv3.DeletePublicIpRequest{PublicIp: &pub}); err != nil {
		t.Errorf("DeletePublicIp: %v", err)
	}
}
