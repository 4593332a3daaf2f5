package osimagetest

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// proxyEnv makes a test binary a stdin/stdout to TCP bridge: QEMU's
// guestfwd=...-cmd: runs it once per guest connection to the metadata
// address, so the tests need no socat or netcat.
const proxyEnv = "OSIMAGETEST_PROXY"

// Main runs the tests of a package that boots images; call it from
// TestMain. When QEMU runs the test binary as the metadata bridge, it
// bridges instead and exits.
func Main(m *testing.M) {
	if addr := os.Getenv(proxyEnv); addr != "" {
		os.Exit(bridge(addr))
	}
	os.Exit(m.Run())
}

func bridge(addr string) int {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 1
	}
	done := make(chan struct{})
	go func() {
		io.Copy(c, os.Stdin)
		c.(*net.TCPConn).CloseWrite()
	}()
	go func() {
		io.Copy(os.Stdout, c)
		close(done)
	}()
	<-done
	return 0
}

// NeedTool skips the test when a program or file is missing, and fails
// it when CI=true.
func NeedTool(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := os.Stat(n); err == nil {
			continue
		}
		if _, err := exec.LookPath(n); err != nil {
			msg := n + " is missing (Debian packages qemu-system-x86, ovmf)"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// OVMF is the UEFI firmware of Debian's ovmf package.
const OVMF = "/usr/share/OVMF/OVMF_CODE_4M.fd"

// Guest is what the metadata service tells a test VM.
type Guest struct {
	InstanceID string
	Hostname   string
	UserData   string
	Signer     ssh.Signer // its public key is public-keys/0/openssh-key
}

// NewGuest makes a guest identity with a fresh Ed25519 key.
func NewGuest(t testing.TB, userData string) *Guest {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return &Guest{InstanceID: fmt.Sprintf("i-%08x", time.Now().UnixNano()&0xffffffff), Hostname: "ip-10-0-0-5",
		UserData: userData, Signer: signer}
}

// serveMetadata serves the part of the EC2-style tree the images read,
// on a loopback port, and returns its address.
func serveMetadata(t testing.TB, g *Guest) string {
	files := map[string]string{
		"/latest/meta-data/instance-id":               g.InstanceID,
		"/latest/meta-data/hostname":                  g.Hostname,
		"/latest/meta-data/public-keys/0/openssh-key": string(ssh.MarshalAuthorizedKey(g.Signer.PublicKey())),
		"/latest/user-data":                           g.UserData,
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, body)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// VM is a QEMU process booting an image for a test.
type VM struct {
	Console string // serial console log file
	Disk    string // the copy-on-write overlay the guest writes
	SSHAddr string // loopback address forwarded to the guest's port 22
	qmp     string
	cmd     *exec.Cmd
	exited  chan error
}

// Boot starts QEMU (KVM when usable, else TCG) on a copy-on-write overlay
// of image, under SeaBIOS or (uefi) OVMF, with memory MiB, the metadata
// service for g at 169.254.169.254 (user networking with restrict=on:
// nothing leaves the machine) and the guest's port 22 on a loopback port.
func Boot(t testing.TB, image string, uefi bool, memory int, g *Guest) *VM {
	t.Helper()
	return BootDisk(t, image, uefi, memory, 0, g)
}

// BootDisk is Boot with a guest disk of size bytes (0: the image's size),
// as when a VM's root volume is larger than its OMI.
func BootDisk(t testing.TB, image string, uefi bool, memory int, size int64, g *Guest) *VM {
	t.Helper()
	dir := t.TempDir()
	v := &VM{Console: filepath.Join(dir, "console.log"), Disk: filepath.Join(dir, "disk.qcow2"), qmp: filepath.Join(dir, "qmp.sock"),
		exited: make(chan error, 1)}
	create := []string{"create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image, v.Disk}
	if size > 0 {
		create = append(create, fmt.Sprint(size))
	}
	if out, err := exec.Command("qemu-img", create...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	v.SSHAddr = l.Addr().String()
	l.Close()
	md := serveMetadata(t, g)
	args := []string{"-machine", "pc,accel=kvm:tcg", "-cpu", "max", "-m", fmt.Sprint(memory), "-nographic", "-monitor", "none",
		"-serial", "file:" + v.Console, "-qmp", "unix:" + v.qmp + ",server=on,wait=off",
		"-drive", "file=" + v.Disk + ",format=qcow2,if=virtio",
		"-netdev", fmt.Sprintf("user,id=n0,restrict=on,net=169.254.0.0/16,host=169.254.0.2,dhcpstart=169.254.0.15,hostfwd=tcp:%s-:22,guestfwd=tcp:169.254.169.254:80-cmd:env %s=%s %s",
			v.SSHAddr, proxyEnv, md, self),
		"-device", "virtio-net-pci,netdev=n0"}
	if uefi {
		NeedTool(t, OVMF)
		vars := filepath.Join(dir, "vars.fd")
		data, err := os.ReadFile(strings.Replace(OVMF, "CODE", "VARS", 1))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(vars, data, 0o644)
		args = append(args, "-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMF,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	}
	v.cmd = exec.Command("qemu-system-x86_64", args...)
	var stderr bytes.Buffer
	v.cmd.Stdout, v.cmd.Stderr = &stderr, &stderr
	if err := v.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := v.cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, stderr.String())
		}
		v.exited <- err
	}()
	t.Cleanup(func() {
		v.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("console:\n%s", Tail(v.ConsoleText(), 4000))
		}
	})
	return v
}

// ConsoleText is what the guest wrote to its serial port so far.
func (v *VM) ConsoleText() string {
	b, _ := os.ReadFile(v.Console)
	return string(b)
}

// Tail is the last n bytes of s.
func Tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Dial retries SSH until the guest answers or the deadline passes.
func (v *VM) Dial(t testing.TB, user string, signer ssh.Signer, deadline time.Duration) *ssh.Client {
	t.Helper()
	cfg := &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second}
	end := time.Now().Add(deadline)
	var last error
	for time.Now().Before(end) {
		select {
		case err := <-v.exited:
			t.Fatalf("QEMU exited before SSH answered: %v", err)
		default:
		}
		c, err := ssh.Dial("tcp", v.SSHAddr, cfg)
		if err == nil {
			return c
		}
		last = err
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("no SSH on %s after %v: %v", v.SSHAddr, deadline, last)
	return nil
}

// Run runs a command over SSH and returns its output; it fails the test
// when the command fails.
func Run(t testing.TB, c *ssh.Client, cmd string) string {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	if err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, out)
	}
	return string(out)
}

// SCPUpload sends a file with the legacy scp protocol ("scp -t", the sink
// side), the way Terraform's remote-exec and Packer's file provisioner do.
func SCPUpload(t testing.TB, c *ssh.Client, dst string, data []byte) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in, _ := s.StdinPipe()
	out, _ := s.StdoutPipe()
	if err := s.Start("scp -t " + dst); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	ack := func(step string) {
		b, err := r.ReadByte()
		if err != nil || b != 0 {
			line, _ := r.ReadString('\n')
			t.Fatalf("scp %s: ack %d %v %s", step, b, err, line)
		}
	}
	ack("start")
	fmt.Fprintf(in, "C0644 %d %s\n", len(data), filepath.Base(dst))
	ack("header")
	in.Write(data)
	in.Write([]byte{0})
	ack("data")
	in.Close()
	if err := s.Wait(); err != nil {
		t.Fatalf("scp: %v", err)
	}
}

// Powerdown presses the ACPI power button through QMP (what StopVms does)
// and waits for QEMU to exit.
func (v *VM) Powerdown(t testing.TB, deadline time.Duration) {
	t.Helper()
	c, err := net.Dial("unix", v.qmp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	r.ReadString('\n') // greeting
	for _, cmd := range []string{"qmp_capabilities", "system_powerdown"} {
		b, _ := json.Marshal(map[string]string{"execute": cmd})
		c.Write(append(b, '\n'))
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("qmp %s: %v", cmd, err)
			}
			if strings.Contains(line, `"return"`) {
				break
			}
			if strings.Contains(line, `"error"`) {
				t.Fatalf("qmp %s: %s", cmd, line)
			}
		}
	}
	select {
	case err := <-v.exited:
		if err != nil {
			t.Fatalf("QEMU after powerdown: %v", err)
		}
	case <-time.After(deadline):
		t.Fatalf("the guest did not power off within %v of the ACPI power button", deadline)
	}
}

// RootPartition converts a disk image to raw in a temporary directory and
// names its second partition the way e2fsprogs opens a filesystem at an
// offset (no loop device, no mount): "FILE?offset=N".
func RootPartition(t testing.TB, image string) string {
	t.Helper()
	raw := filepath.Join(t.TempDir(), "disk.raw")
	if out, err := exec.Command("qemu-img", "convert", "-O", "raw", image, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, out)
	}
	out, err := exec.Command("sfdisk", "--json", raw).Output()
	if err != nil {
		t.Fatalf("sfdisk --json: %v", err)
	}
	var pt struct {
		PartitionTable struct {
			Partitions []struct{ Start int64 } `json:"partitions"`
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &pt); err != nil || len(pt.PartitionTable.Partitions) != 2 {
		t.Fatalf("partitions of %s: %v %s", image, err, out)
	}
	return fmt.Sprintf("%s?offset=%d", raw, pt.PartitionTable.Partitions[1].Start*512)
}

// CheckDisk reads the guest's disk after poweroff: the root filesystem
// is clean (e2fsck -fn) and holds the file path with content want.
func CheckDisk(t testing.TB, image, path string, want []byte) {
	t.Helper()
	root := RootPartition(t, image)
	if out, err := exec.Command("e2fsck", "-fn", root).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck after poweroff: %v\n%s", err, out)
	}
	got, err := exec.Command("debugfs", "-R", "cat "+path, root).Output()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s on the disk after poweroff = %q (%v), want %q", path, got, err, want)
	}
}
