package omi

import (
	"crypto/rand"
	"strings"
)

// Server certificates are the X.509 certificates an account uploads to EIM
// for the HTTPS and SSL listeners of its load balancers, which name them by
// their ORN. omi keeps what the API shows of them; it terminates no TLS,
// so it keeps neither the certificate nor its private key once checked.

// KindServerCertificate is the kind of stored server certificates.
const KindServerCertificate Kind = "server-certificate"

// ServerCertificate is the API's ServerCertificate. Its name is unique in
// its account (EIM's rule); the path, "/" by default, places it in the
// account's organisation and in its ORN.
type ServerCertificate struct {
	AccountId      string `json:"-"`
	ExpirationDate string `json:"ExpirationDate"`
	Id             string `json:"Id"`
	Name           string `json:"Name"`
	Orn            string `json:"Orn"`
	Path           string `json:"Path"`
	UploadDate     string `json:"UploadDate"`
}

func (c *ServerCertificate) Kind() Kind                   { return KindServerCertificate }
func (c *ServerCertificate) ResourceID() string           { return c.Id }
func (c *ServerCertificate) Owner() string                { return c.AccountId }
func (c *ServerCertificate) IndexName() string            { return c.Name }
func (c *ServerCertificate) Visibility() (bool, []string) { return false, nil }

// SetOwner restores the owner, which the API object does not carry.
func (c *ServerCertificate) SetOwner(id string) { c.AccountId = id }

// ServerCertificateOrn is the ORN of an account's certificate, in the
// AWS-compatible form OUTSCALE's ORNs take for EIM (no region):
// arn:aws:iam::<account>:server-certificate<path><name>.
func ServerCertificateOrn(account, path, name string) string {
	return "arn:aws:iam::" + account + ":server-certificate" + path + name
}

// NewServerCertificateID draws a certificate id as EIM (like IAM) writes
// them: ASCA and 17 upper-case letters and digits.
func NewServerCertificateID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	var b [17]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("omi: crypto/rand failed: " + err.Error()) // the OS entropy source is gone
	}
	var id strings.Builder
	id.WriteString("ASCA")
	for _, x := range b {
		id.WriteByte(alphabet[x&31])
	}
	return id.String()
}
