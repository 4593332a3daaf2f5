package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/omiproject/omi/authguard"
	"github.com/omiproject/omi/config"
	"github.com/omiproject/omi/oapi"
)

// securityFlags are the password-guessing and signature settings of omi
// serve. They are kept as text so that "not given" (fall back to the
// configuration file, then to the default) differs from an explicit 0.
type securityFlags struct {
	loginFailures   string
	addressFailures string
	lockout         string
	lockoutMax      string
	sigRegions      string
	sigClientScopes string
}

func addSecurityFlags(fs *flag.FlagSet, f *securityFlags) {
	d := authguard.DefaultPolicy
	fs.StringVar(&f.loginFailures, "login-failures", envOr("OMI_LOGIN_FAILURES", ""),
		fmt.Sprintf("failed logins (Basic, CheckAuthentication) of one login before it is locked out; 0 disables (env OMI_LOGIN_FAILURES; config login_lockout.login_failures; default %d)", d.LoginFailures))
	fs.StringVar(&f.addressFailures, "address-failures", envOr("OMI_ADDRESS_FAILURES", ""),
		fmt.Sprintf("failed logins from one client address before it is locked out; 0 disables (env OMI_ADDRESS_FAILURES; config login_lockout.address_failures; default %d)", d.AddressFailures))
	fs.StringVar(&f.lockout, "login-lockout", envOr("OMI_LOGIN_LOCKOUT", ""),
		fmt.Sprintf("first lockout, and what each further one adds (env OMI_LOGIN_LOCKOUT; config login_lockout.delay; default %s)", d.Lockout))
	fs.StringVar(&f.lockoutMax, "login-lockout-max", envOr("OMI_LOGIN_LOCKOUT_MAX", ""),
		fmt.Sprintf("longest lockout (env OMI_LOGIN_LOCKOUT_MAX; config login_lockout.max_delay; default %s)", d.MaxLockout))
	fs.StringVar(&f.sigRegions, "signature-regions", envOr("OMI_SIGNATURE_REGIONS", ""),
		"comma-separated credential-scope regions the API accepts (env OMI_SIGNATURE_REGIONS; config signature.regions; default: --region)")
	fs.StringVar(&f.sigClientScopes, "signature-client-scopes", envOr("OMI_SIGNATURE_CLIENT_SCOPES", ""),
		"also accept the scopes clients derive themselves: libcurl's from the host name (oapi-cli) and osc-sdk-go v2's eu-west-2/oapi (env OMI_SIGNATURE_CLIENT_SCOPES; config signature.client_scopes; default true)")
}

// loginPolicy merges the defaults, the file and the flags.
func (f *securityFlags) loginPolicy(file config.LoginLockout) (authguard.Policy, error) {
	p := authguard.DefaultPolicy
	if file.LoginFailures != nil {
		p.LoginFailures = *file.LoginFailures
	}
	if file.AddressFailures != nil {
		p.AddressFailures = *file.AddressFailures
	}
	if file.Delay > 0 {
		p.Lockout = file.Delay
	}
	if file.MaxDelay > 0 {
		p.MaxLockout = file.MaxDelay
	}
	for _, c := range []struct {
		name, v string
		dst     *int
	}{{"--login-failures", f.loginFailures, &p.LoginFailures}, {"--address-failures", f.addressFailures, &p.AddressFailures}} {
		if c.v == "" {
			continue
		}
		n, err := strconv.Atoi(c.v)
		if err != nil || n < 0 {
			return p, fmt.Errorf("%s %q: want a number of failures, 0 to disable", c.name, c.v)
		}
		*c.dst = n
	}
	for _, c := range []struct {
		name, v string
		dst     *time.Duration
	}{{"--login-lockout", f.lockout, &p.Lockout}, {"--login-lockout-max", f.lockoutMax, &p.MaxLockout}} {
		if c.v == "" {
			continue
		}
		d, err := time.ParseDuration(c.v)
		if err != nil || d <= 0 {
			return p, fmt.Errorf("%s %q: want a positive duration such as 1m", c.name, c.v)
		}
		*c.dst = d
	}
	if p.MaxLockout < p.Lockout {
		return p, fmt.Errorf("login lockout: the longest lockout (%s) is shorter than the first (%s)", p.MaxLockout, p.Lockout)
	}
	return p, nil
}

// signaturePolicy merges the defaults, the file and the flags. No region
// means the region served (oapi's default).
func (f *securityFlags) signaturePolicy(file config.Signature) (oapi.SignaturePolicy, error) {
	p := oapi.SignaturePolicy{Regions: file.Regions, ClientScopes: true}
	if file.ClientScopes != nil {
		p.ClientScopes = *file.ClientScopes
	}
	if f.sigRegions != "" {
		p.Regions = nil
		for _, r := range strings.Split(f.sigRegions, ",") {
			if r = strings.TrimSpace(r); r != "" {
				p.Regions = append(p.Regions, r)
			}
		}
	}
	if f.sigClientScopes != "" {
		b, err := strconv.ParseBool(f.sigClientScopes)
		if err != nil {
			return p, fmt.Errorf("--signature-client-scopes %q: want true or false", f.sigClientScopes)
		}
		p.ClientScopes = b
	}
	return p, nil
}
