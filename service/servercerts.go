package service

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"regexp"
	"slices"
	"strings"

	"github.com/omiproject/omi"
)

// Server certificates (EIM) for the HTTPS and SSL listeners of load
// balancers. The error codes are the 2019 catalogue's entries whose slug
// names the situation (and codeBusy, 9002, for a certificate in use).
const (
	codeNoSuchCertificate = "5012" // no-such-certificate
	codeInvalidName       = "4043" // invalid-name
	codeInvalidPath       = "4049" // invalid-path-pattern
	codeDuplicateName     = "9015" // duplicate-name
)

// certNames and certPaths are EIM's rules for names (1 to 128 letters,
// digits and +=,.@_-) and paths (a slash, or slash-separated segments of
// printable ASCII between a first and a last slash, at most 512).
var (
	certNames = regexp.MustCompile(`^[A-Za-z0-9+=,.@_-]{1,128}$`)
	certPaths = regexp.MustCompile(`^/([\x21-\x7e]{0,510}/)?$`)
)

func certificateNotFound(name string) error {
	return omi.NotFound(codeNoSuchCertificate, "The server certificate '%s' doesn't exist.", name)
}

func checkCertName(field, name string) error {
	if !certNames.MatchString(name) {
		return omi.Invalid(codeInvalidName, "%s '%s' must be 1 to 128 letters, digits or +=,.@_- characters.", field, name)
	}
	return nil
}

func checkCertPath(field, path string) error {
	if !certPaths.MatchString(path) {
		return omi.Invalid(codeInvalidPath, "%s '%s' must start and end with a slash (/ by default), in at most 512 printable characters.", field, path)
	}
	return nil
}

// checkCertificate checks what CreateServerCertificate uploads: one
// PEM-encoded X.509 certificate, an optional chain of PEM certificates,
// and the certificate's private key, unencrypted (PKCS #1, as the user
// guide asks, or PKCS #8 or SEC 1, which the provider's own acceptance
// tests send). It returns the certificate.
func checkCertificate(body, chain, key string) (*x509.Certificate, error) {
	certs, err := pemCertificates("Body", body)
	if err != nil {
		return nil, err
	}
	if len(certs) != 1 {
		return nil, omi.Invalid(omi.CodeInvalidValue, "Body holds %d certificates: give the server's in Body and the intermediate ones in Chain.", len(certs))
	}
	if chain != "" {
		if _, err := pemCertificates("Chain", chain); err != nil {
			return nil, err
		}
	}
	block, _ := pem.Decode([]byte(key))
	if block == nil {
		return nil, omi.Invalid(omi.CodeInvalidValue, "PrivateKey is not a PEM-encoded private key.")
	}
	if block.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
		return nil, omi.Invalid(omi.CodeInvalidValue, "PrivateKey is protected by a passphrase; upload it unencrypted.")
	}
	var priv any
	switch block.Type {
	case "RSA PRIVATE KEY":
		priv, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		priv, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		priv, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, omi.Invalid(omi.CodeInvalidValue, "PrivateKey is a PEM %q block, not a private key.", block.Type)
	}
	if err != nil {
		return nil, omi.Invalid(omi.CodeInvalidValue, "PrivateKey cannot be read: %v", err)
	}
	signer, ok := priv.(crypto.Signer)
	pub, ok2 := certs[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !ok2 || !pub.Equal(signer.Public()) {
		return nil, omi.Invalid(omi.CodeInvalidValue, "PrivateKey does not match the certificate of Body.")
	}
	return certs[0], nil
}

// pemCertificates parses the PEM certificates of an argument; anything
// else in it is refused.
func pemCertificates(field, text string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := []byte(text)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, omi.Invalid(omi.CodeInvalidValue, "%s holds a PEM %q block, not a certificate.", field, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, omi.Invalid(omi.CodeInvalidValue, "%s holds a certificate that cannot be read: %v", field, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 || strings.TrimSpace(string(rest)) != "" {
		return nil, omi.Invalid(omi.CodeInvalidValue, "%s is not a PEM-encoded X.509 certificate.", field)
	}
	return out, nil
}

// certificateNamed loads the caller's certificate of that name, or nil.
func certificateNamed(tx omi.Tx, account, name string) (*omi.ServerCertificate, error) {
	var out *omi.ServerCertificate
	err := omi.Scan(tx, omi.Query{Owners: []string{account}, Names: []string{name}}, func(sc *omi.ServerCertificate) (bool, error) {
		if sc.Name == name {
			out = sc
			return false, nil
		}
		return true, nil
	})
	return out, err
}

// certificateKnown checks that a listener's ServerCertificateId is the ORN
// of one of the account's certificates.
func certificateKnown(tx omi.Tx, account, orn string) error {
	found := false
	err := omi.Scan(tx, omi.Query{Owners: []string{account}}, func(sc *omi.ServerCertificate) (bool, error) {
		found = sc.Orn == orn
		return !found, nil
	})
	if err == nil && !found {
		err = omi.NotFound(codeNoSuchCertificate, "No server certificate of the account has the ORN '%s'.", orn)
	}
	return err
}

// listenerCertificatesKnown checks the certificates of a load balancer's
// secure listeners.
func listenerCertificatesKnown(tx omi.Tx, account string, l *omi.LoadBalancer) error {
	for _, li := range l.Listeners {
		if li.ServerCertificateId != "" {
			if err := certificateKnown(tx, account, li.ServerCertificateId); err != nil {
				return err
			}
		}
	}
	return nil
}

type CreateServerCertificateRequest struct {
	Base
	Body       string `json:"Body"`
	Chain      string `json:"Chain"`
	Name       string `json:"Name"`
	Path       string `json:"Path"`
	PrivateKey string `json:"PrivateKey"`
}
type ServerCertificateResponse struct {
	ServerCertificate *omi.ServerCertificate `json:"ServerCertificate"`
}

// CreateServerCertificate uploads a certificate under a name new to the
// account.
func (s *Service) CreateServerCertificate(ctx context.Context, c *omi.Caller, in *CreateServerCertificateRequest) (*ServerCertificateResponse, error) {
	if err := required("Name", in.Name, "Body", in.Body, "PrivateKey", in.PrivateKey); err != nil {
		return nil, err
	}
	if in.Path == "" {
		in.Path = "/"
	}
	if err := checkCertName("Name", in.Name); err != nil {
		return nil, err
	}
	if err := checkCertPath("Path", in.Path); err != nil {
		return nil, err
	}
	cert, err := checkCertificate(in.Body, in.Chain, in.PrivateKey)
	if err != nil {
		return nil, err
	}
	if omi.IsDryRun(ctx) {
		return &ServerCertificateResponse{}, nil
	}
	sc := &omi.ServerCertificate{AccountId: c.AccountID(), Id: omi.NewServerCertificateID(), Name: in.Name, Path: in.Path,
		Orn: omi.ServerCertificateOrn(c.AccountID(), in.Path, in.Name), ExpirationDate: omi.FormatTime(cert.NotAfter),
		UploadDate: s.nowString()}
	err = s.update(ctx, func(tx omi.Tx) error {
		if old, err := certificateNamed(tx, c.AccountID(), in.Name); err != nil || old != nil {
			if err == nil {
				err = omi.Conflict(codeDuplicateName, "The account already has a server certificate named '%s'.", in.Name)
			}
			return err
		}
		return insertNew(tx, sc, func() { sc.Id = omi.NewServerCertificateID() })
	})
	if err != nil {
		return nil, err
	}
	return &ServerCertificateResponse{ServerCertificate: sc}, nil
}

// FiltersServerCertificate are ReadServerCertificates' filters.
type FiltersServerCertificate struct {
	Paths []string `json:"Paths"`
}
type ReadServerCertificatesRequest struct {
	Base
	Filters *FiltersServerCertificate `json:"Filters"`
}
type ReadServerCertificatesResponse struct {
	ServerCertificates []*omi.ServerCertificate `json:"ServerCertificates"`
}

// ReadServerCertificates lists the caller's certificates, by name.
func (s *Service) ReadServerCertificates(ctx context.Context, c *omi.Caller, in *ReadServerCertificatesRequest) (*ReadServerCertificatesResponse, error) {
	var paths []string
	if in.Filters != nil {
		paths = in.Filters.Paths
	}
	out := []*omi.ServerCertificate{}
	if omi.IsDryRun(ctx) {
		return &ReadServerCertificatesResponse{ServerCertificates: out}, nil
	}
	err := s.view(ctx, func(tx omi.Tx) error {
		return omi.Scan(tx, omi.Query{Owners: []string{c.AccountID()}}, func(sc *omi.ServerCertificate) (bool, error) {
			if anyOf(paths, sc.Path) {
				out = append(out, sc)
			}
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b *omi.ServerCertificate) int { return strings.Compare(a.Name, b.Name) })
	return &ReadServerCertificatesResponse{ServerCertificates: out}, nil
}

type UpdateServerCertificateRequest struct {
	Base
	Name    string `json:"Name"`
	NewName string `json:"NewName"`
	NewPath string `json:"NewPath"`
}

// UpdateServerCertificate renames a certificate or moves it to another
// path; its ORN follows. Load balancer listeners keep the ORN they were
// given, as they name the certificate by it.
func (s *Service) UpdateServerCertificate(ctx context.Context, c *omi.Caller, in *UpdateServerCertificateRequest) (*ServerCertificateResponse, error) {
	if err := required("Name", in.Name); err != nil {
		return nil, err
	}
	if in.NewName != "" {
		if err := checkCertName("NewName", in.NewName); err != nil {
			return nil, err
		}
	}
	if in.NewPath != "" {
		if err := checkCertPath("NewPath", in.NewPath); err != nil {
			return nil, err
		}
	}
	var sc *omi.ServerCertificate
	err := s.update(ctx, func(tx omi.Tx) error {
		var err error
		if sc, err = certificateNamed(tx, c.AccountID(), in.Name); err != nil || sc == nil {
			if err == nil {
				err = certificateNotFound(in.Name)
			}
			return err
		}
		if in.NewName != "" && in.NewName != sc.Name {
			other, err := certificateNamed(tx, c.AccountID(), in.NewName)
			if err != nil {
				return err
			}
			if other != nil {
				return omi.Conflict(codeDuplicateName, "The account already has a server certificate named '%s'.", in.NewName)
			}
			sc.Name = in.NewName
		}
		if in.NewPath != "" {
			sc.Path = in.NewPath
		}
		sc.Orn = omi.ServerCertificateOrn(sc.AccountId, sc.Path, sc.Name)
		if omi.IsDryRun(ctx) {
			return nil
		}
		return omi.Put(tx, sc)
	})
	if err != nil {
		return nil, err
	}
	return &ServerCertificateResponse{ServerCertificate: sc}, nil
}

type DeleteServerCertificateRequest struct {
	Base
	Name string `json:"Name"`
}
type DeleteServerCertificateResponse struct{}

// DeleteServerCertificate deletes a certificate no load balancer listener
// uses.
func (s *Service) DeleteServerCertificate(ctx context.Context, c *omi.Caller, in *DeleteServerCertificateRequest) (*DeleteServerCertificateResponse, error) {
	if err := required("Name", in.Name); err != nil {
		return nil, err
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		sc, err := certificateNamed(tx, c.AccountID(), in.Name)
		if err != nil || sc == nil {
			if err == nil {
				err = certificateNotFound(in.Name)
			}
			return err
		}
		lbs, err := accountLoadBalancers(tx, c.AccountID())
		if err != nil {
			return err
		}
		for _, l := range lbs {
			for _, li := range l.Listeners {
				if li.ServerCertificateId == sc.Orn {
					return omi.Conflict(codeBusy, "The server certificate '%s' is used by the listener on port %d of the load balancer '%s'.",
						sc.Name, li.LoadBalancerPort, l.LoadBalancerName)
				}
			}
		}
		if omi.IsDryRun(ctx) {
			return nil
		}
		return tx.Delete(omi.KindServerCertificate, sc.Id)
	})
	if err != nil {
		return nil, err
	}
	return &DeleteServerCertificateResponse{}, nil
}
