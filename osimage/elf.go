package osimage

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// moduleName is the kernel's name of a module file (dashes become
// underscores, as in modinfo's depends= lists).
func moduleName(file string) string {
	return strings.ReplaceAll(strings.TrimSuffix(filepath.Base(file), ".ko"), "-", "_")
}

// moduleDepends reads the depends= entry of a kernel module's .modinfo
// section (Debian's modinfo is in kmod, which a build host may lack).
func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, fmt.Errorf("%s: no .modinfo section", path)
	}
	data, err := sec.Data()
	if err != nil {
		return nil, err
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}

// moduleClosure returns the module files (paths under modDir) needed to
// load the wanted modules, dependencies first: the order insmod needs.
func moduleClosure(modDir string, wanted []string) ([]string, error) {
	index := map[string]string{}
	err := filepath.WalkDir(modDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".ko") {
			index[moduleName(p)] = p
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string) error
	visit = func(name string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("kernel module dependency cycle at %s", name)
		case 2:
			return nil
		}
		p, ok := index[name]
		if !ok {
			return fmt.Errorf("kernel module %s not found under %s", name, modDir)
		}
		state[name] = 1
		deps, err := moduleDepends(p)
		if err != nil {
			return err
		}
		for _, d := range deps {
			if err := visit(moduleName(d)); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, p)
		return nil
	}
	for _, w := range wanted {
		if err := visit(moduleName(w)); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// libDirs are where Debian's amd64 packages put shared libraries, in the
// order the dynamic loader searches them.
var libDirs = []string{"lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "lib", "usr/lib"}

// libClosure returns the shared libraries (paths relative to tree, keyed
// by their soname) and the program interpreter that the executables need,
// transitively: a missing library fails the build rather than the boot.
func libClosure(tree string, executables []string) (map[string]string, string, error) {
	libs := map[string]string{}
	interp := ""
	queue := append([]string(nil), executables...)
	for len(queue) > 0 {
		rel := queue[0]
		queue = queue[1:]
		f, err := elf.Open(filepath.Join(tree, rel))
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", rel, err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				b := make([]byte, p.Filesz)
				if _, err := p.ReadAt(b, 0); err == nil {
					interp = strings.TrimRight(string(b), "\x00")
				}
			}
		}
		needed, err := f.DynString(elf.DT_NEEDED)
		f.Close()
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", rel, err)
		}
		for _, so := range needed {
			if _, ok := libs[so]; ok {
				continue
			}
			found := ""
			for _, d := range libDirs {
				cand := filepath.Join(d, so)
				if _, err := os.Stat(filepath.Join(tree, cand)); err == nil {
					found = cand
					break
				}
			}
			if found == "" {
				return nil, "", fmt.Errorf("%s needs %s, which no extracted package provides", rel, so)
			}
			libs[so] = found
			queue = append(queue, found)
		}
	}
	return libs, interp, nil
}
