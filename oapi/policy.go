package oapi

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"

	"github.com/omiproject/omi/sigv4"
)

// APIServices are the credential-scope services the real OUTSCALE clients
// sign API requests with: "api" (osc-sdk-python, osc-cli, curl, the v3
// SDK's alternative), "oapi" (osc-sdk-go v2) and "osc" (osc-sdk-go v3,
// terraform, packer, octl). Any other service, "s3" in particular, is
// refused: a signature made for the object storage must not be replayable
// against the API.
var APIServices = []string{"api", "oapi", "osc"}

// SignaturePolicy says which credential scopes the API accepts.
type SignaturePolicy struct {
	// Regions are the scope regions accepted; empty means only the region
	// the service serves.
	Regions []string
	// ClientScopes also accepts the scopes official clients derive
	// themselves whatever they are configured with: the region and service
	// libcurl derives from the Host header when the client names none
	// (oapi-cli, osc-sdk-C: "0" and "127" for 127.0.0.1; the host is part
	// of what is signed, so this lets no signature for another host
	// through), and osc-sdk-go v2's fixed eu-west-2/oapi, which it sends to
	// every region.
	ClientScopes bool
}

// SDKv2Region and SDKv2Service are the scope osc-sdk-go v2 signs every
// request with, whatever region it talks to.
const (
	SDKv2Region  = "eu-west-2"
	SDKv2Service = "oapi"
)

// errScopeRefused is the cause of a refused credential scope or payload.
var errScopeRefused = errors.New("signature refused by the API's policy")

// SetSignaturePolicy replaces the signature policy. Call it before serving.
func (s *Server) SetSignaturePolicy(p SignaturePolicy) {
	if len(p.Regions) == 0 {
		p.Regions = []string{s.svc.Region()}
	}
	s.sigPolicy = p
}

// SignaturePolicy returns the policy in force.
func (s *Server) SignaturePolicy() SignaturePolicy { return s.sigPolicy }

// checkScope applies the policy to a parsed signature, before its secret
// is looked up.
func (s *Server) checkScope(r *http.Request, a *sigv4.Authorization) error {
	p := &s.sigPolicy
	if p.ClientScopes {
		if a.Region == SDKv2Region && a.Service == SDKv2Service {
			return s.checkPayload(r, a)
		}
		if region, service, ok := sigv4.HostScope(r.Host); ok && region == a.Region && service == a.Service {
			return s.checkPayload(r, a)
		}
	}
	if !slices.Contains(APIServices, a.Service) {
		return fmt.Errorf("%w: credential scope service %q is not the API's (use api, oapi or osc)", errScopeRefused, a.Service)
	}
	if !slices.Contains(p.Regions, a.Region) {
		return fmt.Errorf("%w: credential scope region %q is not served here (accepted: %v)", errScopeRefused, a.Region, p.Regions)
	}
	return s.checkPayload(r, a)
}

// checkPayload refuses UNSIGNED-PAYLOAD: the JSON body is the request, so
// it must be covered by the signature.
func (s *Server) checkPayload(r *http.Request, a *sigv4.Authorization) error {
	if a.UnsignedPayload(r.Header) {
		return fmt.Errorf("%w: UNSIGNED-PAYLOAD is not accepted by the API; sign the body's SHA-256", errScopeRefused)
	}
	return nil
}

// remoteIP is the client's address without the port, for the login guard.
// It is the TCP peer: behind a reverse proxy every client shares the
// proxy's address (see docs/configuration.md).
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
