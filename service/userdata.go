package service

import (
	"bufio"
	"encoding/base64"
	"strings"
)

// outscaleSection returns the settings of the OUTSCALE section of a VM's
// user data (base64, as the API carries it): the key=value lines between
// "-----BEGIN OUTSCALE SECTION-----" and "-----END OUTSCALE SECTION-----",
// which the real cloud reads itself and does not pass to the guest's
// cloud-init alone. User data that is not base64 or has no section gives
// none.
func outscaleSection(userData string) map[string]string {
	raw, err := base64.StdEncoding.DecodeString(userData)
	if err != nil {
		return nil
	}
	var out map[string]string
	in := false
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "-----BEGIN OUTSCALE SECTION-----":
			in = true
		case line == "-----END OUTSCALE SECTION-----":
			return out
		case in:
			if k, v, ok := strings.Cut(line, "="); ok {
				if out == nil {
					out = map[string]string{}
				}
				out[strings.TrimSpace(k)] = strings.TrimSpace(v)
			}
		}
	}
	return out
}

// privateOnly reports whether user data asks, with private_only=true in
// its OUTSCALE section, that a VM of the public Cloud get no public IP.
func privateOnly(userData string) bool {
	return strings.EqualFold(outscaleSection(userData)["private_only"], "true")
}
