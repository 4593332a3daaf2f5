package migration

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoad(t *testing.T) {
	ms, err := Load(fstest.MapFS{
		"migrations/0002_more.sql":  {Data: []byte("B")},
		"migrations/0001_first.sql": {Data: []byte("A")},
		"migrations/readme.txt":     {Data: []byte("ignored")},
	})
	if err != nil || len(ms) != 2 || ms[0].Version != 1 || ms[1].SQL != "B" {
		t.Fatalf("Load: %+v %v", ms, err)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"misnamed":  {"migrations/first.sql": {Data: []byte("A")}},
		"zero":      {"migrations/0000_zero.sql": {Data: []byte("A")}},
		"duplicate": {"migrations/0001_a.sql": {Data: []byte("A")}, "migrations/1_b.sql": {Data: []byte("B")}},
	} {
		if _, err := Load(fsys); err == nil || !strings.Contains(err.Error(), "migration") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
