package inspect_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/omiproject/omi/catalog"
	"github.com/omiproject/omi/inspect"
)

func TestInspect_OfficialPresetsAreClean(t *testing.T) {
	for _, p := range catalog.Presets() {
		t.Run(p.Name, func(t *testing.T) {
			rep := inspectPath(t, buildDisk(t, p.Spec))
			if p.Platform == "windows" {
				if rep.Inspected || rep.Clean() || !rep.Windows || !strings.HasPrefix(rep.Reason, "windows: not inspected") {
					t.Fatalf("windows report: %+v", rep)
				}
				return
			}
			if !rep.Inspected || !rep.Clean() || len(rep.Findings) != 0 {
				t.Fatalf("report: %+v", rep)
			}
			kv := inspect.ParseOSRelease(p.Spec.OSRelease)
			want := inspect.OS{ID: kv["ID"], VersionID: kv["VERSION_ID"], PrettyName: kv["PRETTY_NAME"]}
			if rep.OS == nil || *rep.OS != want || want.ID == "" {
				t.Errorf("OS = %+v, want %+v", rep.OS, want)
			}
			if rep.Table != "gpt" || len(rep.Partitions) != 1 || !rep.Partitions[0].Root || rep.Partitions[0].Filesystem != "ext4" {
				t.Errorf("partitions: %+v", rep.Partitions)
			}
			if !strings.Contains(rep.RootPassword, `no password ("*")`) {
				t.Errorf("RootPassword = %q", rep.RootPassword)
			}
			// The report survives a JSON round trip with Clean intact.
			b, err := json.Marshal(rep)
			if err != nil {
				t.Fatal(err)
			}
			var back inspect.Report
			if err := json.Unmarshal(b, &back); err != nil || !back.Clean() {
				t.Fatalf("JSON round trip: %v %s", err, b)
			}
		})
	}
}

// dirtyFiles plants what the user guide warns about: two keys in root's
// authorized_keys, one in alice's (with options), a root password hash and
// host private keys in OpenSSH and PEM formats.
func dirtyFiles(t testing.TB) (files []catalog.File, rootKeys, aliceKeys, hostKeys string) {
	dir := t.TempDir()
	_, k1 := keygen(t, dir, "ed25519", 0, "ops@build-host")
	_, k2 := keygen(t, dir, "rsa", 3072, "deploy key  with spaces")
	_, k3 := keygen(t, dir, "ecdsa", 384, "alice@laptop")
	hostEd, _ := keygen(t, dir, "ed25519", 0, "root@template")
	hostRSA, _ := keygen(t, dir, "rsa", 2048, "root@template", "-m", "PEM")
	rootKeys = filepath.Join(dir, "root_authorized_keys")
	writeFile(t, rootKeys, []byte("# keys of the team\n"+k1+"\n\n"+k2+"\n"), 0o600)
	aliceKeys = filepath.Join(dir, "alice_authorized_keys")
	writeFile(t, aliceKeys, []byte(`from="10.0.0.0/8",command="echo hi there" `+k3+"\n"), 0o600)
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	files = []catalog.File{
		{Path: "/root/.ssh/authorized_keys", Data: read(rootKeys), Mode: 0o600},
		{Path: "/home/alice/.ssh/authorized_keys", Data: read(aliceKeys), Mode: 0o600, UID: 1000, GID: 1000},
		{Path: "/etc/shadow", Mode: 0o640, Data: []byte("root:$6$Ke4Fh1yd$Ww9M0ptbBUo3XZ7Xc0GZ9YtQ3u6nC4kq5dX0Q1q3mN7r8tRkV9eYc6m6jVQ9H2p8bQdC1z5h2aKZ3o0p1u3N0.:20000:0:99999:7:::\nalice:!:20000:0:99999:7:::\n")},
		{Path: "/etc/ssh/ssh_host_ed25519_key", Data: read(hostEd), Mode: 0o600},
		{Path: "/etc/ssh/ssh_host_ed25519_key.pub", Data: read(hostEd + ".pub")},
		{Path: "/etc/ssh/ssh_host_rsa_key", Data: read(hostRSA), Mode: 0o600},
		{Path: "/etc/ssh/ssh_host_ecdsa_key.pub", Data: read(hostEd + ".pub")}, // a .pub alone is harmless
		{Path: "/etc/ssh/sshd_config", Data: []byte("PermitRootLogin prohibit-password\n")},
	}
	return files, rootKeys, aliceKeys, filepath.Join(dir, "hostkeys")
}

func TestInspect_DirtyDisk(t *testing.T) {
	files, rootKeys, aliceKeys, _ := dirtyFiles(t)
	spec, _ := catalog.LookupPreset("Debian-12")
	spec.Spec.Files = files
	rep := inspectPath(t, buildDisk(t, spec.Spec))
	if !rep.Inspected || rep.Clean() {
		t.Fatalf("dirty disk: Inspected=%v Clean=%v", rep.Inspected, rep.Clean())
	}
	byKind := map[string][]inspect.Finding{}
	for _, f := range rep.Findings {
		byKind[f.Kind] = append(byKind[f.Kind], f)
	}

	// authorized keys: compare with ssh-keygen -l on the same files.
	var want []inspect.Finding
	for _, src := range []struct{ path, file string }{
		{"/root/.ssh/authorized_keys", rootKeys},
		{"/home/alice/.ssh/authorized_keys", aliceKeys},
	} {
		for _, kp := range fingerprints(t, src.file) {
			want = append(want, inspect.Finding{Path: src.path, Fingerprint: kp.Fingerprint, Bits: kp.Bits, Comment: kp.Comment, KeyType: kp.Type})
		}
	}
	got := byKind[inspect.KindAuthorizedKey]
	if len(got) != 3 || len(want) != 3 {
		t.Fatalf("authorized_key findings = %+v, ssh-keygen found %+v", got, want)
	}
	for i, w := range want {
		g := got[i]
		if g.Path != w.Path || g.Fingerprint != w.Fingerprint || g.Bits != w.Bits || strings.Join(strings.Fields(g.Comment), " ") != w.Comment || sshTypeName(g.KeyType) != w.KeyType {
			t.Errorf("finding %d = %+v, ssh-keygen says %+v", i, g, w)
		}
		if !strings.HasPrefix(g.Detail, g.KeyType) {
			t.Errorf("finding %d detail %q does not name the key type", i, g.Detail)
		}
	}
	if d := got[2].Detail; !strings.Contains(d, `from="10.0.0.0/8",command="echo hi there"`) {
		t.Errorf("options missing from %q", d)
	}

	pw := byKind[inspect.KindRootPassword]
	if len(pw) != 1 || pw[0].Path != "/etc/shadow" || !strings.Contains(pw[0].Detail, "sha512crypt") {
		t.Errorf("root_password findings = %+v", pw)
	}
	if !strings.Contains(rep.RootPassword, "usable password hash (sha512crypt, $6$)") {
		t.Errorf("RootPassword = %q", rep.RootPassword)
	}

	hk := byKind[inspect.KindHostPrivateKey]
	if len(hk) != 2 {
		t.Fatalf("host key findings = %+v", hk)
	}
	sort.Slice(hk, func(i, j int) bool { return hk[i].Path < hk[j].Path })
	for _, f := range files {
		for _, h := range hk {
			if h.Path != f.Path {
				continue
			}
			tmp := filepath.Join(t.TempDir(), "key")
			writeFile(t, tmp, f.Data, 0o600)
			kp := fingerprints(t, tmp)[0]
			if h.Fingerprint != kp.Fingerprint || h.Bits != kp.Bits || sshTypeName(h.KeyType) != kp.Type {
				t.Errorf("host key %s = %+v, ssh-keygen says %+v", h.Path, h, kp)
			}
		}
	}
	if hk[0].Path != "/etc/ssh/ssh_host_ed25519_key" || hk[1].Path != "/etc/ssh/ssh_host_rsa_key" {
		t.Errorf("host key paths: %s, %s", hk[0].Path, hk[1].Path)
	}
	if len(rep.Findings) != 6 {
		t.Errorf("%d findings, want 6: %+v", len(rep.Findings), rep.Findings)
	}
}

func TestInspect_PasswordStates(t *testing.T) {
	for _, c := range []struct {
		field  string
		usable bool
		state  string
	}{
		{"*", false, `no password ("*")`},
		{"!", false, `a locked password ("!")`},
		{"!!", false, `a locked password ("!!")`},
		{"!$6$abc$def", false, "a locked password"},
		{"*LK*", false, "no password"},
		{"", true, "an empty password"},
		{"$y$j9T$abc$def", true, "yescrypt"},
		{"$1$abc$def", true, "md5crypt"},
		{"$2b$10$abcdefghijklmnopqrstuv", true, "bcrypt"},
		{"abJnggxhB/yWI", true, "DES crypt"},
		{"x", false, "invalid hash"},
	} {
		t.Run(c.field, func(t *testing.T) {
			spec := catalog.DiskSpec{SizeBytes: 32 << 20, OSRelease: "ID=t\n", Files: []catalog.File{
				{Path: "/etc/shadow", Data: []byte("daemon:*:1::::::\nroot:" + c.field + ":20000:0:99999:7:::\n")},
			}}
			rep := inspectPath(t, buildDisk(t, spec))
			if !strings.Contains(rep.RootPassword, c.state) {
				t.Errorf("RootPassword = %q, want %q", rep.RootPassword, c.state)
			}
			if got := len(rep.Findings) == 1 && rep.Findings[0].Kind == inspect.KindRootPassword; got != c.usable {
				t.Errorf("findings %+v, want usable=%v", rep.Findings, c.usable)
			}
			if rep.Clean() == c.usable {
				t.Errorf("Clean() = %v", rep.Clean())
			}
		})
	}
}

// lvmLabel is the start of an LVM2 physical volume: the label sits in
// sector 1.
func lvmLabel() []byte {
	b := make([]byte, 1024)
	copy(b[512:], "LABELONE")
	copy(b[512+24:], "LVM2 001")
	return b
}

func TestInspect_NotInspected(t *testing.T) {
	// The go-diskfs-made disk's single partition starts at 1 MiB.
	const part = 1 << 20
	ext4Disk := func(t *testing.T) string {
		return buildDisk(t, catalog.DiskSpec{SizeBytes: 32 << 20, OSRelease: "ID=x\n"})
	}
	random := make([]byte, 4<<20)
	rand.Read(random)

	for _, c := range []struct {
		name   string
		disk   func(t *testing.T) string
		reason string
		fs     string
	}{
		{"random", func(t *testing.T) string {
			p := sparseFile(t, 64<<20)
			writeAt(t, p, random, 0)
			return p
		}, "no partition table and no known filesystem", ""},
		{"zero", func(t *testing.T) string { return sparseFile(t, 64<<20) }, "unformatted", ""},
		{"tiny", func(t *testing.T) string { return sparseFile(t, 512) }, "too small", ""},
		{"lvm-in-gpt", func(t *testing.T) string {
			p := ext4Disk(t)
			writeAt(t, p, lvmLabel(), part)
			return p
		}, "LVM", "lvm2"},
		{"lvm-whole-disk", func(t *testing.T) string {
			p := sparseFile(t, 64<<20)
			writeAt(t, p, lvmLabel(), 0)
			return p
		}, "LVM", "lvm2"},
		{"lvm-in-mbr", func(t *testing.T) string {
			p := sparseFile(t, 64<<20)
			writeAt(t, p, mbr(0x8e, part/512, 32<<11), 0)
			writeAt(t, p, lvmLabel(), part)
			return p
		}, "LVM", "lvm2"},
		{"luks", func(t *testing.T) string {
			p := ext4Disk(t)
			writeAt(t, p, []byte("LUKS\xba\xbe\x00\x02"), part)
			return p
		}, "encrypted", "luks"},
		{"xfs", func(t *testing.T) string {
			p := ext4Disk(t)
			writeAt(t, p, make([]byte, 4096), part+1024) // wipe the ext4 superblock
			writeAt(t, p, []byte("XFSB"), part)
			return p
		}, "xfs", "xfs"},
		{"unknown-fs", func(t *testing.T) string {
			p := ext4Disk(t)
			writeAt(t, p, random[:8192], part)
			return p
		}, "unknown filesystem", "unknown"},
		{"broken-ext4", func(t *testing.T) string {
			p := ext4Disk(t)
			// A valid magic over a superblock full of garbage.
			sb := make([]byte, 1024)
			copy(sb, random)
			binary.LittleEndian.PutUint16(sb[56:], 0xEF53)
			writeAt(t, p, sb, part+1024)
			return p
		}, "partition 1", ""},
		{"protective-mbr-broken-gpt", func(t *testing.T) string {
			p := ext4Disk(t)
			writeAt(t, p, make([]byte, 512), 512)          // primary header
			writeAt(t, p, make([]byte, 512), (32<<20)-512) // backup header
			return p
		}, "no valid GPT", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := c.disk(t)
			rep := inspectPath(t, p)
			if rep.Inspected || rep.Clean() {
				t.Fatalf("inspected: %+v", rep)
			}
			if !strings.Contains(rep.Reason, c.reason) {
				t.Errorf("Reason = %q, want it to mention %q", rep.Reason, c.reason)
			}
			if c.fs != "" && (len(rep.Partitions) == 0 || rep.Partitions[0].Filesystem != c.fs || rep.Partitions[0].Status != inspect.StatusNotInspected) {
				t.Errorf("partitions = %+v, want %s not inspected", rep.Partitions, c.fs)
			}
		})
	}
}

// mbr returns a sector 0 holding one primary partition.
func mbr(typ byte, start, sectors uint32) []byte {
	b := make([]byte, 512)
	e := b[446:]
	e[4] = typ
	binary.LittleEndian.PutUint32(e[8:], start)
	binary.LittleEndian.PutUint32(e[12:], sectors)
	b[510], b[511] = 0x55, 0xAA
	return b
}

// failingReader fails every read after the first n.
type failingReader struct {
	r *os.File
	n int
}

func (f *failingReader) ReadAt(p []byte, off int64) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("block store unavailable")
	}
	f.n--
	return f.r.ReadAt(p, off)
}

// A failing block store is an error, not a disk "not inspected", and
// certainly not a clean one.
func TestInspect_ReadErrors(t *testing.T) {
	p := buildDisk(t, catalog.DiskSpec{SizeBytes: 32 << 20, OSRelease: "ID=x\n"})
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for n := 0; n < 40; n += 3 {
		rep, err := inspect.Inspect(context.Background(), &failingReader{r: f, n: n}, 32<<20, inspect.Options{})
		if err == nil || !strings.Contains(err.Error(), "block store unavailable") {
			t.Fatalf("after %d reads: report %+v, err %v", n, rep, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := inspect.Inspect(ctx, f, 32<<20, inspect.Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: err = %v", err)
	}
	if _, err := inspect.Inspect(context.Background(), nil, 0, inspect.Options{}); err == nil {
		t.Error("nil disk accepted")
	}
}

// Random corruption of the filesystem metadata must never crash or hang
// omi: each run ends with a report or an error.
func TestInspect_CorruptMetadata(t *testing.T) {
	files, _, _, _ := dirtyFiles(t)
	p := buildDisk(t, catalog.DiskSpec{SizeBytes: 32 << 20, OSRelease: "ID=x\n", Files: files})
	orig, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var buf [8]byte
	rand.Read(buf[:])
	seed := binary.LittleEndian.Uint64(buf[:])
	t.Logf("seed %d", seed)
	next := func() uint64 { seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17; return seed }
	// Mutate only the 4 KiB blocks of the partition that hold data:
	// superblock, group descriptors, bitmaps, used inodes, directories.
	var used []int
	for off := 1 << 20; off+4096 <= len(orig); off += 4096 {
		for _, c := range orig[off : off+4096] {
			if c != 0 {
				used = append(used, off)
				break
			}
		}
	}
	img := append([]byte(nil), orig...)
	outcomes := map[string]int{}
	var maxRead int64
	for i := 0; i < 200; i++ {
		var offs []int
		for j := 0; j < 1+int(next()%8); j++ {
			off := used[next()%uint64(len(used))] + int(next()%4096)
			offs = append(offs, off)
			img[off] = byte(next())
		}
		c := &countingReader{r: bytesReader(img)}
		rep, err := inspect.Inspect(context.Background(), c, int64(len(img)), inspect.Options{})
		maxRead = max(maxRead, c.bytes.Load())
		switch {
		case err != nil:
			outcomes["error"]++
		case rep.Clean():
			outcomes["clean"]++
		case rep.Inspected:
			outcomes["findings"]++
		default:
			outcomes["not inspected"]++
		}
		for _, off := range offs {
			img[off] = orig[off]
		}
	}
	t.Logf("outcomes: %v; at most %d bytes read in one run", outcomes, maxRead)
	if outcomes["clean"] > 0 {
		// Corruption can hide a file (a finding disappears) but a
		// corrupted dirty disk read as clean deserves a look.
		t.Logf("corruption hid every finding in %d runs", outcomes["clean"])
	}
}

type bytesReader []byte

func (b bytesReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
