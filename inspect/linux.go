package inspect

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/diskfs/go-diskfs/filesystem/ext4"
)

// maxSymlinks bounds symlink resolution, as the kernel's MAXSYMLINKS does.
const maxSymlinks = 40

// extFS reads files from an ext2/3/4 filesystem with go-diskfs. It walks
// paths itself, one cached directory listing at a time, and resolves
// symbolic links with a limit: go-diskfs follows links recursively without
// one, so a link loop in a hostile image would overflow the stack. It keeps
// "absent" apart from "unreadable": a file go-diskfs fails to read is
// recorded, so that the partition is reported as not fully inspected
// instead of silently clean.
type extFS struct {
	fs   *ext4.FileSystem
	max  int64
	dirs map[string]map[string]iofs.DirEntry
	errs []string
}

var errNotFound = errors.New("not found")

func rel(p string) string {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" {
		return "."
	}
	return p
}

// fail records a read failure.
func (x *extFS) fail(p string, err error) error {
	if len(x.errs) < 5 {
		x.errs = append(x.errs, fmt.Sprintf("%s: %v", p, err))
	} else if len(x.errs) == 5 {
		x.errs = append(x.errs, "...")
	}
	return fmt.Errorf("%s: %w", p, err)
}

// list returns the entries of dir, a path without symbolic links.
func (x *extFS) list(dir string) (map[string]iofs.DirEntry, error) {
	if m, ok := x.dirs[dir]; ok {
		if m == nil {
			return nil, errNotFound
		}
		return m, nil
	}
	ents, err := x.fs.ReadDir(rel(dir))
	if err != nil {
		x.dirs[dir] = nil
		return nil, x.fail(dir, err)
	}
	m := make(map[string]iofs.DirEntry, len(ents))
	for _, e := range ents {
		m[e.Name()] = e
	}
	x.dirs[dir] = m
	return m, nil
}

// resolve returns p with every symbolic link replaced by its target, and
// the directory entry p names.
func (x *extFS) resolve(p string) (string, iofs.DirEntry, error) {
	var done []string
	var entry iofs.DirEntry
	todo := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			entry = nil
			continue
		}
		dir := "/" + strings.Join(done, "/")
		if entry != nil && !entry.IsDir() {
			return "", nil, errNotFound // a file used as a directory
		}
		ents, err := x.list(dir)
		if err != nil {
			return "", nil, err
		}
		e, ok := ents[c]
		if !ok {
			return "", nil, errNotFound
		}
		cur := path.Join(dir, c)
		if e.Type()&os.ModeSymlink == 0 {
			done = append(done, c)
			entry = e
			continue
		}
		if links++; links > maxSymlinks {
			return "", nil, errNotFound // ELOOP: the system could not follow it either
		}
		target, err := x.fs.ReadLink(rel(cur))
		if err != nil {
			return "", nil, x.fail(cur, err)
		}
		if strings.HasPrefix(target, "/") {
			done = nil
		}
		entry = nil
		todo = append(strings.Split(target, "/"), todo...)
	}
	if entry == nil {
		return "/", nil, errNotFound // the root directory itself
	}
	return "/" + strings.Join(done, "/"), entry, nil
}

func (x *extFS) isDir(p string) bool {
	_, e, err := x.resolve(p)
	return err == nil && e.IsDir()
}

// readFile reads at most x.max bytes of the regular file p.
func (x *extFS) readFile(p string) (data []byte, truncated bool, err error) {
	r, e, err := x.resolve(p)
	if err != nil {
		return nil, false, err
	}
	if !e.Type().IsRegular() {
		return nil, false, errNotFound
	}
	fi, err := e.Info()
	if err != nil {
		return nil, false, x.fail(r, err)
	}
	f, err := x.fs.OpenFile(rel(r), os.O_RDONLY)
	if err != nil {
		return nil, false, x.fail(r, err)
	}
	defer f.Close()
	n := fi.Size()
	if n > x.max {
		n, truncated = x.max, true
	}
	data = make([]byte, n)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, false, x.fail(r, err)
	}
	return data, truncated, nil
}

// dirNames lists the entries of directory p (following symlinks to it),
// sorted by name.
func (x *extFS) dirNames(p string) ([]iofs.DirEntry, error) {
	r := "/"
	if path.Clean("/"+p) != "/" {
		var e iofs.DirEntry
		var err error
		if r, e, err = x.resolve(p); err != nil {
			return nil, err
		}
		if !e.IsDir() {
			return nil, errNotFound
		}
	}
	m, err := x.list(r)
	if err != nil {
		return nil, err
	}
	ents := make([]iofs.DirEntry, 0, len(m))
	for _, e := range m {
		ents = append(ents, e)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	return ents, nil
}

// inspectExt reads an ext partition. It returns true when the partition is
// a root filesystem.
func (in *inspector) inspectExt(p *Partition) (root bool) {
	defer func() {
		// go-diskfs indexes on-disk tables without always checking bounds;
		// a corrupt or hostile filesystem must not take omi down.
		if r := recover(); r != nil {
			root = false
			p.Root = false
			p.Status = StatusNotInspected
			p.Reason = fmt.Sprintf("%s reader failed on corrupt metadata: %v", p.Filesystem, r)
		}
	}()
	fsys, err := ext4.Read(in.dev, p.Size, p.Start, sectorSize)
	if err != nil {
		p.Status, p.Reason = StatusNotInspected, fmt.Sprintf("%s superblock unreadable: %v", p.Filesystem, err)
		return false
	}
	x := &extFS{fs: fsys, max: in.opts.MaxFileSize, dirs: map[string]map[string]iofs.DirEntry{}}
	if _, err := x.list("/"); err != nil {
		p.Status, p.Reason = StatusNotInspected, fmt.Sprintf("%s root directory unreadable: %v", p.Filesystem, err)
		return false
	}
	p.Status = StatusInspected
	if x.isDir("/etc") {
		p.Root = true
		in.checkRoot(x, p)
	} else {
		in.checkDataFS(x, p)
	}
	if len(x.errs) > 0 {
		p.Status = StatusNotInspected
		p.Reason = fmt.Sprintf("%s: some files could not be read: %s", p.Filesystem, strings.Join(x.errs, "; "))
	}
	return p.Root
}

func (in *inspector) add(f Finding) { in.rep.Findings = append(in.rep.Findings, f) }

// checkRoot looks at a root filesystem.
func (in *inspector) checkRoot(x *extFS, p *Partition) {
	if in.rep.OS == nil {
		for _, f := range []string{"/etc/os-release", "/usr/lib/os-release"} {
			if data, _, err := x.readFile(f); err == nil {
				kv := ParseOSRelease(string(data))
				in.rep.OS = &OS{ID: kv["ID"], VersionID: kv["VERSION_ID"], PrettyName: kv["PRETTY_NAME"]}
				break
			}
		}
	}
	homes := []string{"/root"}
	if data, _, err := x.readFile("/etc/passwd"); err == nil {
		homes = append(homes, in.checkPasswd(data, p)...)
	}
	if data, _, err := x.readFile("/etc/shadow"); err == nil {
		in.checkShadow(data, p)
	}
	if ents, err := x.dirNames("/home"); err == nil {
		for _, e := range ents {
			homes = append(homes, "/home/"+e.Name())
		}
	}
	seen := map[string]bool{}
	count := 0
	for _, h := range homes {
		if h == "" || h == "/" || seen[h] {
			continue
		}
		seen[h] = true
		if count++; count > in.opts.MaxHomes {
			in.rep.Reason = fmt.Sprintf("only the first %d home directories were inspected", in.opts.MaxHomes)
			break
		}
		in.checkHome(x, p, h, "")
	}
	in.checkHostKeys(x, p)
}

// checkHome reports the keys of a home directory's authorized_keys files
// (OpenSSH reads both by default).
func (in *inspector) checkHome(x *extFS, p *Partition, home, prefix string) {
	for _, name := range []string{".ssh/authorized_keys", ".ssh/authorized_keys2"} {
		if in.ctx.Err() != nil {
			return
		}
		f := path.Join(home, name)
		data, truncated, err := x.readFile(f)
		if err != nil {
			continue
		}
		for _, k := range ParseAuthorizedKeys(data) {
			detail := k.Type
			if k.Comment != "" {
				detail += " " + k.Comment
			}
			if k.Options != "" {
				detail += " (options: " + k.Options + ")"
			}
			in.add(Finding{
				Kind: KindAuthorizedKey, Path: prefix + f, Detail: detail,
				Fingerprint: k.Fingerprint(), KeyType: k.Type, Bits: k.Bits, Comment: k.Comment,
				Partition: p.Index,
			})
		}
		if truncated {
			in.add(Finding{Kind: KindAuthorizedKey, Path: prefix + f, Partition: p.Index,
				Detail: fmt.Sprintf("file larger than %d bytes: only its beginning was read", in.opts.MaxFileSize)})
		}
	}
}

// checkPasswd reports a password hash left in /etc/passwd's root entry and
// returns the home directories of the accounts.
func (in *inspector) checkPasswd(data []byte, p *Partition) (homes []string) {
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) < 7 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if f[0] == "root" && f[1] != "x" {
			if state, usable := passwordState(f[1]); usable {
				in.add(Finding{Kind: KindRootPassword, Path: "/etc/passwd", Partition: p.Index,
					Detail: "root has " + state + " in /etc/passwd"})
			}
		}
		// Accounts that cannot log in (nologin, false) are left out: their
		// homes are system directories such as /usr/sbin, large to list.
		if canLogIn(f[6]) && f[5] != "/nonexistent" {
			homes = append(homes, path.Clean("/"+f[5]))
		}
	}
	return homes
}

func canLogIn(shell string) bool {
	switch path.Base(shell) {
	case "nologin", "false", "sync", "halt", "shutdown":
		return false
	}
	return true
}

func (in *inspector) checkShadow(data []byte, p *Partition) {
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) < 2 || f[0] != "root" {
			continue
		}
		state, usable := passwordState(f[1])
		in.rep.RootPassword = state
		if usable {
			in.add(Finding{Kind: KindRootPassword, Path: "/etc/shadow", Partition: p.Index,
				Detail: "root has " + state})
		}
		return
	}
	in.rep.RootPassword = "no root entry in /etc/shadow"
}

// passwordState classifies the password field of a shadow entry and says
// whether it lets someone log in with a password.
func passwordState(h string) (state string, usable bool) {
	switch {
	case h == "":
		return "an empty password (login without password where PAM allows it)", true
	case strings.HasPrefix(h, "!"):
		return fmt.Sprintf("a locked password (%q)", truncate(h, 3)), false
	case strings.HasPrefix(h, "*"):
		return fmt.Sprintf("no password (%q)", truncate(h, 4)), false
	case strings.HasPrefix(h, "$"):
		id, _, _ := strings.Cut(h[1:], "$")
		scheme := map[string]string{
			"1": "md5crypt", "2a": "bcrypt", "2b": "bcrypt", "2y": "bcrypt",
			"5": "sha256crypt", "6": "sha512crypt", "y": "yescrypt", "gy": "gost-yescrypt",
			"7": "scrypt", "sha1": "sha1crypt", "md5": "sunmd5",
		}[id]
		if scheme == "" {
			scheme = "unknown scheme"
		}
		return fmt.Sprintf("a usable password hash (%s, $%s$)", scheme, id), true
	case len(h) == 13 && isCryptChars(h):
		return "a usable password hash (DES crypt)", true
	default:
		return fmt.Sprintf("an invalid hash that matches no password (%q)", truncate(h, 4)), false
	}
}

func isCryptChars(s string) bool {
	for _, c := range s {
		if !(c == '.' || c == '/' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// checkHostKeys reports /etc/ssh/ssh_host_*_key files.
func (in *inspector) checkHostKeys(x *extFS, p *Partition) {
	ents, err := x.dirNames("/etc/ssh")
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "ssh_host_") || !strings.HasSuffix(name, "_key") {
			continue
		}
		f := "/etc/ssh/" + name
		data, _, err := x.readFile(f)
		if err != nil || len(data) == 0 {
			continue
		}
		fd := Finding{Kind: KindHostPrivateKey, Path: f, Partition: p.Index}
		k, ok := PrivateKeyPublic(data)
		if !ok {
			if pub, _, err := x.readFile(f + ".pub"); err == nil {
				k, ok = ParsePublicKeyLine(string(pub))
			}
		}
		if ok {
			fd.Fingerprint, fd.KeyType, fd.Bits = k.Fingerprint(), k.Type, k.Bits
			fd.Detail = k.Type + " host private key: every VM launched from this image shares it"
		} else {
			fd.Detail = "host private key (format not recognised): every VM launched from this image shares it"
		}
		in.add(fd)
	}
}

// checkDataFS looks at a non-root ext filesystem that may be mounted on
// /home: its top-level directories' authorized_keys files.
func (in *inspector) checkDataFS(x *extFS, p *Partition) {
	ents, err := x.dirNames("/")
	if err != nil {
		return
	}
	prefix := fmt.Sprintf("partition %d:", p.Index)
	for i, e := range ents {
		if i >= in.opts.MaxHomes || in.ctx.Err() != nil {
			return
		}
		if e.IsDir() && e.Name() != "lost+found" {
			in.checkHome(x, p, "/"+e.Name(), prefix)
		}
	}
}
