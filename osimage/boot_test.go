package osimage_test

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

	"github.com/omiproject/omi/osimage/osimagetest"
)

// proxyEnv makes the test binary a stdin/stdout to TCP bridge: QEMU's
// guestfwd=...-cmd: runs it once per guest connection to the metadata
// address, so the test needs no socat or netcat.
const proxyEnv = "OSIMAGE_TEST_PROXY"

func TestMain(m *testing.M) {
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

// needTool skips (or fails under CI=true) when a program is missing.
func needTool(t *testing.T, names ...string) {
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

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// metadata serves the part of the EC2-style tree the image reads.
func metadata(t *testing.T, pub ssh.PublicKey, userData string) string {
	t.Helper()
	files := map[string]string{
		"/latest/meta-data/instance-id":               "i-0b1c2d3e",
		"/latest/meta-data/hostname":                  "ip-10-0-0-5",
		"/latest/meta-data/public-keys/0/openssh-key": string(ssh.MarshalAuthorizedKey(pub)),
		"/latest/user-data":                           userData,
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

type vm struct {
	cmd     *exec.Cmd
	console string
	qmp     string
	ssh     string
	exited  chan error
}

// boot starts QEMU (TCG unless /dev/kvm is usable) on a copy-on-write
// overlay of the image, with the metadata service at 169.254.169.254 and
// the guest's port 22 forwarded to a loopback port.
func boot(t *testing.T, image, firmware, mdAddr string) *vm {
	t.Helper()
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", image, disk).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	v := &vm{console: filepath.Join(dir, "console.log"), qmp: filepath.Join(dir, "qmp.sock"), exited: make(chan error, 1)}
	port := freePort(t)
	v.ssh = fmt.Sprintf("127.0.0.1:%d", port)
	args := []string{"-machine", "pc,accel=kvm:tcg", "-cpu", "max", "-m", "256", "-nographic", "-monitor", "none",
		"-serial", "file:" + v.console, "-qmp", "unix:" + v.qmp + ",server=on,wait=off",
		"-drive", "file=" + disk + ",format=qcow2,if=virtio",
		"-netdev", fmt.Sprintf("user,id=n0,restrict=on,net=169.254.0.0/16,host=169.254.0.2,dhcpstart=169.254.0.15,hostfwd=tcp:%s-:22,guestfwd=tcp:169.254.169.254:80-cmd:env %s=%s %s",
			v.ssh, proxyEnv, mdAddr, self),
		"-device", "virtio-net-pci,netdev=n0"}
	if firmware != "" {
		vars := filepath.Join(dir, "vars.fd")
		data, err := os.ReadFile(strings.Replace(firmware, "CODE", "VARS", 1))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(vars, data, 0o644)
		args = append(args, "-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+firmware,
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
			out, _ := os.ReadFile(v.console)
			t.Logf("console:\n%s", tail(string(out), 4000))
		}
	})
	return v
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// dial retries SSH until the guest answers or the deadline passes.
func (v *vm) dial(t *testing.T, user string, signer ssh.Signer, deadline time.Duration) *ssh.Client {
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
		c, err := ssh.Dial("tcp", v.ssh, cfg)
		if err == nil {
			return c
		}
		last = err
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("no SSH on %s after %v: %v", v.ssh, deadline, last)
	return nil
}

func runCmd(t *testing.T, c *ssh.Client, cmd string) string {
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

// scpUpload sends a file with the legacy scp protocol ("scp -t", the sink
// side), the way Terraform's remote-exec and Packer's file provisioner do.
func scpUpload(t *testing.T, c *ssh.Client, dst string, data []byte) {
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

// powerdown presses the ACPI power button through QMP (what StopVms does)
// and waits for QEMU to exit.
func (v *vm) powerdown(t *testing.T, deadline time.Duration) {
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

func ovmf(t *testing.T) string {
	const code = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	needTool(t, code)
	return code
}

// TestSmallBoots boots the small image under SeaBIOS and OVMF: SSH with
// the metadata key as root and outscale, user data ran, a file uploaded
// with scp, the kernel banner on the serial console, and a clean poweroff
// on the ACPI power button that leaves the file on a clean filesystem.
func TestSmallBoots(t *testing.T) {
	needTool(t, "qemu-system-x86_64")
	image := osimagetest.Small(t)
	for _, mode := range []string{"legacy", "uefi"} {
		t.Run(mode, func(t *testing.T) {
			firmware := ""
			if mode == "uefi" {
				firmware = ovmf(t)
			}
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			signer, err := ssh.NewSignerFromKey(priv)
			if err != nil {
				t.Fatal(err)
			}
			mark := fmt.Sprintf("mark-%d", time.Now().UnixNano())
			md := metadata(t, signer.PublicKey(), "#!/bin/sh\necho "+mark+" > /root/ud-proof\n")
			start := time.Now()
			v := boot(t, image, firmware, md)
			c := v.dial(t, "root", signer, 5*time.Minute)
			defer c.Close()
			t.Logf("%s: SSH answered %.1f s after QEMU started", mode, time.Since(start).Seconds())
			if got := strings.TrimSpace(runCmd(t, c, "cat /root/ud-proof")); got != mark {
				t.Fatalf("user data proof = %q, want %q", got, mark)
			}
			if got := strings.TrimSpace(runCmd(t, c, "hostname")); got != "ip-10-0-0-5" {
				t.Errorf("hostname = %q, want the metadata's", got)
			}
			efi := strings.TrimSpace(runCmd(t, c, "test -d /sys/firmware/efi && echo uefi || echo legacy"))
			if efi != mode {
				t.Errorf("firmware seen by the guest = %s, want %s", efi, mode)
			}
			payload := []byte("uploaded " + mark + "\n")
			scpUpload(t, c, "/root/uploaded.txt", payload)
			if got := runCmd(t, c, "cat /root/uploaded.txt"); got != string(payload) {
				t.Fatalf("uploaded file = %q", got)
			}
			c2 := v.dial(t, "outscale", signer, 30*time.Second)
			if got := strings.TrimSpace(runCmd(t, c2, "id -un")); got != "outscale" {
				t.Errorf("id -un = %q", got)
			}
			c2.Close()
			// sftp-server answers the SFTP subsystem (scp of OpenSSH 9, sftp).
			s, _ := c.NewSession()
			if err := s.RequestSubsystem("sftp"); err != nil {
				t.Errorf("sftp subsystem: %v", err)
			}
			s.Close()
			console, _ := os.ReadFile(v.console)
			if !bytes.Contains(console, []byte("Linux version 6.")) {
				t.Errorf("no kernel banner on the serial console:\n%s", tail(string(console), 2000))
			}
			c.Close()
			start = time.Now()
			v.powerdown(t, 2*time.Minute)
			t.Logf("%s: powered off %.1f s after the ACPI power button", mode, time.Since(start).Seconds())
			checkDisk(t, filepath.Join(filepath.Dir(v.console), "disk.qcow2"), "/root/uploaded.txt", payload)
		})
	}
}

// checkDisk reads the guest's disk after poweroff: the root filesystem
// is clean (e2fsck -fn) and holds the uploaded file.
func checkDisk(t *testing.T, qcow2, path string, want []byte) {
	t.Helper()
	raw := filepath.Join(t.TempDir(), "disk.raw")
	if out, err := exec.Command("qemu-img", "convert", "-O", "raw", qcow2, raw).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert: %v: %s", err, out)
	}
	root := rootPartition(t, raw)
	if out, err := exec.Command("e2fsck", "-fn", root).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck after poweroff: %v\n%s", err, out)
	}
	got, err := exec.Command("debugfs", "-R", "cat "+path, root).Output()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s on the disk after poweroff = %q (%v), want %q", path, got, err, want)
	}
}
