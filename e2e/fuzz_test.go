package e2e

import (
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/omiproject/omi/apitest"
)

// requestSchema returns the JSON request schema the spec gives for call.
func requestSchema(spec *apitest.Spec, call string) *openapi3.Schema {
	item := spec.Doc.Paths.Find("/" + call)
	if item == nil || item.Post == nil || item.Post.RequestBody == nil || item.Post.RequestBody.Value == nil {
		return nil
	}
	mt := item.Post.RequestBody.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil {
		return nil
	}
	return mt.Schema.Value
}

func schemaType(s *openapi3.Schema) string {
	if s == nil || s.Type == nil || len(*s.Type) == 0 {
		return ""
	}
	return (*s.Type)[0]
}

// wrongValue is a JSON value of another type than s declares.
func wrongValue(s *openapi3.Schema) (any, bool) {
	switch schemaType(s) {
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

// oddValues are values of the right type that a careless server may choke
// on: empty, huge, negative, long, odd characters.
func oddValues(s *openapi3.Schema) []any {
	switch schemaType(s) {
	case "string":
		return []any{"", strings.Repeat("a", 5000), "../../etc/passwd", "é\u0000\u202e😀", "ami-zzzzzzzz", "*", "%s%n"}
	case "integer":
		return []any{-1, 0, 1 << 31, 1 << 53, 1e300}
	case "number":
		return []any{-1.5, 0, 1e308}
	case "boolean":
		return []any{true, false}
	case "array":
		items := []any{}
		for i := 0; i < 300; i++ {
			items = append(items, fmt.Sprintf("x-%d", i))
		}
		return []any{[]any{}, items, []any{nil}, []any{map[string]any{}}}
	case "object":
		return []any{map[string]any{}, nil}
	}
	return nil
}

// unmodelled lists the calls whose requests have spec fields the server
// does not implement yet (VM networking: Nics, security groups, subnets,
// their filters); those fields are ignored whatever their type.
var unmodelled = map[string]bool{"CreateVms": true, "ReadVms": true, "ReadVmsState": true, "UpdateVm": true}

// TestEveryCallRejectsBadInput sends, for every operation the server
// routes and every field the spec gives its request (and the fields of
// nested objects such as Filters), a value of the wrong type, which must
// get 400 with 4108 or 4095, and values of the right type at the edges,
// which must get anything but a 5xx. Every response also goes through the
// harness's envelope and schema checks.
func TestEveryCallRejectsBadInput(t *testing.T) {
	spec, err := apitest.LoadSpec()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	e := apitest.Start(t)

	calls := e.Server.Calls()
	sort.Strings(calls)
	if len(calls) < 20 {
		t.Fatalf("server routes %d calls, want the image/snapshot/volume set", len(calls))
	}
	var mu sync.Mutex
	tried := 0
	for _, call := range calls {
		schema := requestSchema(spec, call)
		if schema == nil {
			// An omi extension: no schema to derive inputs from; junk must
			// still get a 4xx JSON error (checked by the harness).
			t.Logf("%s: not in the OUTSCALE spec (omi extension)", call)
			for _, body := range []any{map[string]any{"x": []int{1}}, map[string]any{"DryRun": "yes"}} {
				if r := e.Call(t, e.Joe, call, body); r.Status != http.StatusOK && (r.Status < 400 || r.Status >= 500) {
					t.Errorf("%s with %v: %s", call, body, r)
				}
			}
			continue
		}
		t.Run(call, func(t *testing.T) {
			t.Parallel()
			// Real ids of this subtest's own so that edge values reach
			// deeper code paths (and deletions do not disturb the others).
			vol := newVolume(t, e, e.Joe, 1)
			snap := newSnapshot(t, e, e.Joe, vol)
			img := registerImage(t, e, e.Joe, "fuzz-"+call, snap).ImageId
			real := map[string]string{"VolumeId": vol, "SnapshotId": snap, "ImageId": img, "SourceImageId": img, "SourceSnapshotId": snap}
			wrongType := func(what string, v any, r *apitest.Response) {
				if r.Status == http.StatusBadRequest && (r.ErrorCode() == "4108" || r.ErrorCode() == "4095") {
					return
				}
				if unmodelled[call] {
					// The server does not implement this field: it is
					// ignored like an unknown one (see BUG-4).
					t.Logf("%s ignores %s=%v: %s", call, what, v, r)
					return
				}
				t.Errorf("%s with %s=%v (wrong type): %s, want 400 4108/4095", call, what, v, r)
			}
			send := func(body map[string]any) *apitest.Response {
				mu.Lock()
				tried++
				mu.Unlock()
				return e.Call(t, e.Joe, call, body)
			}
			for _, name := range sortedKeys(schema.Properties) {
				prop := schema.Properties[name].Value
				base := map[string]any{}
				for k, v := range real {
					if _, ok := schema.Properties[k]; ok && k != name {
						base[k] = v
					}
				}
				with := func(v any) map[string]any {
					b := map[string]any{}
					for k, x := range base {
						b[k] = x
					}
					b[name] = v
					return b
				}
				if v, ok := wrongValue(prop); ok {
					wrongType(name, v, send(with(v)))
				}
				for _, v := range oddValues(prop) {
					send(with(v)) // the checker fails the test on a 5xx or a malformed body
				}
				if schemaType(prop) == "object" {
					for _, sub := range sortedKeys(prop.Properties) {
						sp := prop.Properties[sub].Value
						if v, ok := wrongValue(sp); ok {
							wrongType(name+"."+sub, v, send(with(map[string]any{sub: v})))
						}
						for _, v := range oddValues(sp) {
							send(with(map[string]any{sub: v}))
						}
					}
				}
			}
		})
	}
	t.Cleanup(func() { t.Logf("sent %d requests", tried) })
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
