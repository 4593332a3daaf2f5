package config

import (
	"strings"
	"testing"
)

func TestRegionsSection(t *testing.T) {
	f, err := Parse([]byte(`region: eu-west-2
regions:
  - name: eu-west-2
    endpoint: omi.paris.example.com
  - name: us-east-2
    endpoint: omi.ny.example.com
subregions: [a, b, c, d]
`))
	if err != nil {
		t.Fatal(err)
	}
	rs := f.ServiceRegions()
	if len(rs) != 2 || rs[1].RegionName != "us-east-2" || rs[1].Endpoint != "omi.ny.example.com" || len(f.Subregions) != 4 {
		t.Fatalf("regions %+v, subregions %v", rs, f.Subregions)
	}
	for name, c := range map[string]struct{ text, want string }{
		"no endpoint":      {"regions:\n  - name: eu-west-2\n", "endpoint are required"},
		"bad name":         {"regions:\n  - name: Paris\n    endpoint: x\n", "like eu-west-2"},
		"twice":            {"regions:\n  - name: us-east-2\n    endpoint: x\n  - name: us-east-2\n    endpoint: y\n", "listed twice"},
		"long letter":      {"subregions: [ab]\n", "one letter"},
		"letter twice":     {"subregions: [a, a]\n", "one letter"},
		"unknown key":      {"regions:\n  - name: us-east-2\n    endpoint: x\n    url: y\n", "url"},
		"subregion number": {"subregions: [1]\n", "one letter"},
	} {
		if _, err := Parse([]byte(c.text)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want it to mention %q", name, err, c.want)
		}
	}
}
