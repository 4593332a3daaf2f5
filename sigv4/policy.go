package sigv4

import (
	"net/http"
	"strings"
)

// UnsignedPayload reports whether r's signature leaves the body out: the
// client signed a content-hash header (X-Amz-Content-Sha256 or
// X-Osc-Content-Sha256) saying UNSIGNED-PAYLOAD, which [Verify] honours as
// S3 does. A server whose bodies carry the request (a JSON API) refuses
// such signatures, since anyone who sees one could replay it with another
// body.
func (a *Authorization) UnsignedPayload(h http.Header) bool {
	f, ok := familyOf(a.Algorithm)
	if !ok {
		return false
	}
	name := strings.ToLower(f.contentHash)
	for _, s := range a.SignedHeaders {
		if s == name {
			return strings.TrimSpace(h.Get(name)) == UnsignedPayload
		}
	}
	return false
}

// HostScope returns the region and service that libcurl's --aws-sigv4
// derives from a host name when they are not given (oapi-cli and
// osc-sdk-C rely on it): the service is the first label and the region the
// second, so "api.eu-west-2.outscale.com" gives eu-west-2 and api, and
// "127.0.0.1" gives "0" and "127". The port, if any, is ignored. ok is
// false when the host has fewer than two labels (curl refuses to sign).
func HostScope(host string) (region, service string, ok bool) {
	host = stripPort(host)
	service, rest, found := strings.Cut(host, ".")
	if !found || service == "" {
		return "", "", false
	}
	region, _, _ = strings.Cut(rest, ".")
	if region == "" {
		return "", "", false
	}
	return region, service, true
}
