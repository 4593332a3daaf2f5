package osimage

import (
	"bytes"
	"strconv"
	"testing"
)

// TestCpioNewc reads back what cpioWriter wrote with the rules of the
// newc format the kernel follows: 110-byte headers of hex fields, name
// and data each padded to 4 bytes, a TRAILER!!! entry last.
func TestCpioNewc(t *testing.T) {
	var buf bytes.Buffer
	c := &cpioWriter{w: &buf}
	c.Dir("bin")
	c.File("bin/busybox", 0o755, []byte("12345"))
	c.Symlink("bin/sh", "busybox")
	c.File("init", 0o700, []byte("#!/bin/sh\n"))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	type entry struct {
		name string
		mode uint64
		data string
	}
	var got []entry
	b := buf.Bytes()
	for off := 0; ; {
		if len(b)-off < 110 || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at %d", off)
		}
		field := func(i int) uint64 {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("field %d at %d: %v", i, off, err)
			}
			return v
		}
		mode, uid, size, namesize := field(1), field(2), field(6), field(11)
		if uid != 0 {
			t.Errorf("uid %d, want root", uid)
		}
		name := string(b[off+110 : off+110+int(namesize)-1])
		if b[off+110+int(namesize)-1] != 0 {
			t.Fatalf("%s: name not NUL-terminated", name)
		}
		dataOff := (off + 110 + int(namesize) + 3) &^ 3
		data := string(b[dataOff : dataOff+int(size)])
		off = (dataOff + int(size) + 3) &^ 3
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Errorf("%d bytes after the trailer", len(b)-off)
			}
			break
		}
		got = append(got, entry{name, mode, data})
	}
	want := []entry{{"bin", 0o040755, ""}, {"bin/busybox", 0o100755, "12345"}, {"bin/sh", 0o120777, "busybox"}, {"init", 0o100700, "#!/bin/sh\n"}}
	if len(got) != len(want) {
		t.Fatalf("entries %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
