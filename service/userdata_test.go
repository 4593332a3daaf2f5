package service

import (
	"encoding/base64"
	"testing"
)

func TestPrivateOnly(t *testing.T) {
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cases := []struct {
		userData string
		want     bool
	}{
		// The provider's recorded vm/TF-147 sends exactly this.
		{"LS0tLS1CRUdJTiBPVVRTQ0FMRSBTRUNUSU9OLS0tLS0KCnByaXZhdGVfb25seT10cnVlCgotLS0tLUVORCBPVVRTQ0FMRSBTRUNUSU9OLS0tLS0=", true},
		{enc("#!/bin/sh\n-----BEGIN OUTSCALE SECTION-----\r\nfoo=bar\r\nprivate_only = TRUE\r\n-----END OUTSCALE SECTION-----\r\necho hi\n"), true},
		{enc("-----BEGIN OUTSCALE SECTION-----\nprivate_only=false\n-----END OUTSCALE SECTION-----"), false},
		{enc("private_only=true\n"), false}, // outside a section
		{enc("-----BEGIN OUTSCALE SECTION-----\n-----END OUTSCALE SECTION-----\nprivate_only=true"), false},
		{"not base64!", false},
		{"", false},
	}
	for i, c := range cases {
		if got := privateOnly(c.userData); got != c.want {
			t.Errorf("case %d: privateOnly = %v, want %v", i, got, c.want)
		}
	}
}
