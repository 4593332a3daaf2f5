package oapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/omiproject/omi"
	"github.com/omiproject/omi/service"
)

// FuzzDecode feeds request bodies to the decoder with the request types of
// calls whose bodies are the most nested. It must never panic; it accepts
// only what is JSON (or empty, or null), and refuses the rest with a 400
// carrying 4095 (not JSON, not an object) or 4108 (a wrong type). The seed
// corpus (testdata/fuzz/FuzzDecode and the f.Add below) runs in every
// go test.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		``, `null`, `{}`, ` {"DryRun":true} `, `[]`, `"x"`, `{"Filters":`, `{"a":1}{`,
		`{"ImageName":"x","RootDeviceName":"/dev/sda1","BlockDeviceMappings":[{"DeviceName":"/dev/sda1","Bsu":{"SnapshotId":"snap-12345678","VolumeSize":10,"VolumeType":"io1","Iops":100}}]}`,
		`{"Filters":{"ImageIds":["ami-1"],"TagKeys":"x"},"ResultsPerPage":1.5}`,
		`{"ImageId":"ami-12345678","MinVmsCount":1,"MaxVmsCount":2,"BlockDeviceMappings":[{"Bsu":null}],"Nics":[{}]}`,
		`{"ResourceIds":["vol-1"],"Tags":[{"Key":"k","Value":"v"}]}`,
		`{"PermissionsToLaunch":{"Additions":{"AccountIds":["123456789012"],"GlobalPermission":true}}}`,
		`{"Login":"a@b.c","Password":"\u0000\ud800"}`,
		"{\"Name\":\"\xff\xfe\"}",
	} {
		f.Add([]byte(s))
	}
	targets := []func() any{
		func() any { return new(service.CreateImageRequest) },
		func() any { return new(service.ReadImagesRequest) },
		func() any { return new(service.CreateVmsRequest) },
		func() any { return new(service.CreateTagsRequest) },
		func() any { return new(service.UpdateImageRequest) },
		func() any { return new(service.CheckAuthenticationRequest) },
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, newReq := range targets {
			v := newReq()
			err := decode(body, v)
			if err == nil {
				trimmed := bytes.TrimSpace(body)
				if len(trimmed) > 0 && string(trimmed) != "null" && !json.Valid(trimmed) {
					t.Fatalf("decode accepted %q, which is not JSON", body)
				}
				continue
			}
			var e *omi.Error
			if !errors.As(err, &e) {
				t.Fatalf("decode(%q) = %v, not an *omi.Error", body, err)
			}
			if (e.Code != omi.CodeValidation && e.Code != omi.CodeParameterType) || Status(e) != 400 {
				t.Fatalf("decode(%q) = %s (HTTP %d), want 4095 or 4108 with 400", body, e, Status(e))
			}
		}
	})
}
