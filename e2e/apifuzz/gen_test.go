package apifuzz

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

// typeOf returns the JSON type a schema declares, or "".
func typeOf(s *openapi3.Schema) string {
	if s == nil || s.Type == nil || len(*s.Type) == 0 {
		return ""
	}
	return (*s.Type)[0]
}

func sortedProps(s *openapi3.Schema) []string {
	out := make([]string, 0, len(s.Properties))
	for k := range s.Properties {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// gen builds JSON values from schemas. ids maps property names to real
// values (VolumeId, ImageIds, KeypairName...), so that generated requests
// reach the code behind the parameter checks.
type gen struct {
	r   *rand.Rand
	ids map[string]any
}

// body returns a request object: every required property, and each
// optional one with probability one half, or, when minimal, only those
// that take the fixtures' ids.
func (g *gen) body(s *openapi3.Schema, minimal bool) map[string]any {
	out := map[string]any{}
	if s == nil {
		return out
	}
	for _, name := range sortedProps(s) {
		if name == "DryRun" {
			continue // a dry run would hide what the call does
		}
		_, isID := g.ids[name]
		if !contains(s.Required, name) && ((minimal && !isID) || (!minimal && g.r.IntN(2) == 0)) {
			continue
		}
		out[name] = g.value(name, s.Properties[name].Value, 0)
	}
	return out
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// value returns a plausible value for property name of schema s.
func (g *gen) value(name string, s *openapi3.Schema, depth int) any {
	if v, ok := g.ids[name]; ok {
		return v
	}
	if s == nil {
		return nil
	}
	switch typeOf(s) {
	case "string":
		if len(s.Enum) > 0 {
			return s.Enum[g.r.IntN(len(s.Enum))]
		}
		switch s.Format {
		case "date-time":
			return time.Now().UTC().Add(time.Hour).Format(time.RFC3339)
		case "date":
			return time.Now().UTC().AddDate(0, 0, 1).Format("2006-01-02")
		}
		return fmt.Sprintf("fuzz-%s-%d", strings.ToLower(name), g.r.IntN(1000))
	case "integer":
		lo, hi := 0.0, 10.0
		if s.Min != nil {
			lo = *s.Min
		}
		if s.Max != nil && *s.Max < hi+lo {
			hi = *s.Max - lo
		}
		return int(lo) + g.r.IntN(int(hi)+1)
	case "number":
		return g.r.Float64() * 10
	case "boolean":
		return g.r.IntN(2) == 0
	case "array":
		if depth > 3 || s.Items == nil {
			return []any{}
		}
		n := 1 + g.r.IntN(2)
		out := make([]any, 0, n)
		for i := 0; i < n; i++ {
			out = append(out, g.value(strings.TrimSuffix(name, "s"), s.Items.Value, depth+1))
		}
		return out
	case "object":
		if depth > 3 {
			return map[string]any{}
		}
		out := map[string]any{}
		for _, p := range sortedProps(s) {
			if p == "DryRun" || (!contains(s.Required, p) && g.r.IntN(2) == 0) {
				continue
			}
			out[p] = g.value(p, s.Properties[p].Value, depth+1)
		}
		return out
	}
	return nil
}

// wrongType returns a JSON value of another type than s declares.
func wrongType(s *openapi3.Schema) (any, bool) {
	switch typeOf(s) {
	case "string":
		return 12345, true
	case "integer", "number":
		return "not-a-number", true
	case "boolean":
		return "yes", true
	case "array":
		return map[string]any{"x": 1}, true
	case "object":
		return []any{"x"}, true
	}
	return nil, false
}

// oddStrings are strings a careless server may choke on.
var oddStrings = []string{
	"", " ", "\u0000", "é\u0000\u202e😀", "../../etc/passwd", "' OR '1'='1' --", "%s%n%x", "*", "?", "\\",
	"vol-", "ami-00000000", "snap-zzzzzzzz", "i-ffffffffffff", strings.Repeat("ä", 300),
	"<script>alert(1)</script>", "${jndi:ldap://x}", "\r\nX-Injected: 1", "null", "{}", "[]", "1e999",
}

// hugeString is 200 KiB: above any name or description limit, below the
// request size limit.
var hugeString = strings.Repeat("A", 200<<10)

// oddNumbers are integers and numbers at and beyond the edges.
var oddNumbers = []any{-1, 0, -2147483649, 2147483648, 9223372036854775807, 1e300, 1.5, -0.0}

// deep returns n nested arrays around v.
func deep(n int, v string) string {
	return strings.Repeat("[", n) + v + strings.Repeat("]", n)
}

// path is the place of a value in a request: property names from the top.
type path []string

func (p path) String() string { return strings.Join(p, ".") }

// leaves lists the property paths of s down to depth 2 with their schemas.
func leaves(s *openapi3.Schema) ([]path, map[string]*openapi3.Schema) {
	var out []path
	schemas := map[string]*openapi3.Schema{}
	var walk func(prefix path, s *openapi3.Schema, depth int)
	walk = func(prefix path, s *openapi3.Schema, depth int) {
		for _, name := range sortedProps(s) {
			ps := s.Properties[name].Value
			p := append(append(path{}, prefix...), name)
			out = append(out, p)
			schemas[p.String()] = ps
			if depth < 1 && typeOf(ps) == "object" {
				walk(p, ps, depth+1)
			}
		}
	}
	if s != nil {
		walk(nil, s, 0)
	}
	return out, schemas
}

// set returns a copy of body with the value at p replaced by v (creating
// the objects on the way).
func set(body map[string]any, p path, v any) map[string]any {
	out := clone(body).(map[string]any)
	cur := out
	for i, name := range p {
		if i == len(p)-1 {
			cur[name] = v
			break
		}
		next, ok := cur[name].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[name] = next
		}
		cur = next
	}
	return out
}

// clone deep-copies a JSON value.
func clone(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = clone(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = clone(e)
		}
		return out
	}
	return v
}
