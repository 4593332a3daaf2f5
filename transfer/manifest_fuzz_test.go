package transfer_test

import (
	"errors"
	"testing"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/transfer"
)

// FuzzParseManifest feeds manifests (fetched from URLs users give, so
// untrusted) to the parser: it never panics, refuses with an *omi.Error
// carrying one of the manifest codes, and what it accepts survives a
// round trip through Marshal unchanged. Seeds: testdata/fuzz/
// FuzzParseManifest and the f.Add below; they run in every go test.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(docManifest))
	f.Add([]byte(`{"Version":1,"Image":{"ProductTypes":[],"Snapshots":[{"Device":"/dev/sda1","PreSignedUrl":"http://127.0.0.1:1/b/k?X-Amz-Signature=1","Size":1073741824}]}}`))
	f.Add([]byte(`{"Version":2,"Image":{}}`))
	f.Add([]byte(`{"Version":"1"}`))
	f.Add([]byte(`{"Version":1,"Image":{"ProductTypes":null,"Snapshots":[{"Device":1}]}}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := transfer.ParseManifest(data)
		if err != nil {
			var e *omi.Error
			if !errors.As(err, &e) {
				t.Fatalf("ParseManifest error %v is not an *omi.Error", err)
			}
			switch e.Code {
			case transfer.CodeInvalidManifest, transfer.CodeInvalidManifestFormat, transfer.CodeUnknownExportVersion:
			default:
				t.Fatalf("ParseManifest error code %s (%v), want a manifest code", e.Code, err)
			}
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("accepted manifest does not marshal: %v", err)
		}
		again, err := transfer.ParseManifest(out)
		if err != nil {
			t.Fatalf("accepted manifest, marshalled, is refused: %v\n%s", err, out)
		}
		out2, err := again.Marshal()
		if err != nil || string(out2) != string(out) {
			t.Fatalf("round trip changed the manifest:\n%s\n%s", out, out2)
		}
	})
}
