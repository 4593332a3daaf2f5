package omi

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// KindKeypair is the kind of stored keypairs; "keypair" is also the
// ResourceType OUTSCALE's tag calls use for them.
const KindKeypair Kind = "keypair"

// PrefixKeypair starts keypair ids. Unlike other ids, a keypair id carries
// 32 hex digits (key-abcdef1234567890abcdef1234567890 in the spec).
const PrefixKeypair = "key"

// Keypair types, as KeypairType reports them (the SSH key type names).
const (
	KeypairRSA       = "ssh-rsa"
	KeypairEd25519   = "ssh-ed25519"
	KeypairECDSA256  = "ecdsa-sha2-nistp256"
	KeypairECDSA384  = "ecdsa-sha2-nistp384"
	KeypairECDSA521  = "ecdsa-sha2-nistp521"
	MaxKeypairName   = 255
	keypairIDHexSize = 32
)

// Keypair is an SSH public key registered in an account, under a name unique
// in that account. omi keeps the public key (in authorized_keys form) so that
// it can be compared with the keys found in images and used to encrypt data
// for the key's holder; the private key of a generated keypair is returned
// once by CreateKeypair and never stored.
type Keypair struct {
	AccountId          string `json:"-"`
	KeypairFingerprint string `json:"KeypairFingerprint"`
	KeypairId          string `json:"KeypairId"`
	KeypairName        string `json:"KeypairName"`
	KeypairType        string `json:"KeypairType"`
	Tags               []Tag  `json:"Tags"`
	// PublicKey is the key as one authorized_keys line without comment
	// (not in the API object).
	PublicKey string `json:"PublicKey,omitempty"`
}

func (k *Keypair) Kind() Kind                   { return KindKeypair }
func (k *Keypair) ResourceID() string           { return k.KeypairId }
func (k *Keypair) Owner() string                { return k.AccountId }
func (k *Keypair) IndexName() string            { return k.KeypairName }
func (k *Keypair) Visibility() (bool, []string) { return false, nil }

// SetOwner restores the owner, which the API's Keypair object does not carry.
func (k *Keypair) SetOwner(id string) { k.AccountId = id }

// TagList implements Tagged.
func (k *Keypair) TagList() *[]Tag { return &k.Tags }

// ForWire returns a copy shaped as the API's Keypair object: without the
// public key, with an empty tag list rather than null.
func (k *Keypair) ForWire() *Keypair {
	c := *k
	c.PublicKey = ""
	if c.Tags == nil {
		c.Tags = []Tag{}
	}
	return &c
}

// NewKeypairID returns key- followed by 32 random lowercase hex digits.
func NewKeypairID() string {
	var b [keypairIDHexSize / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("omi: crypto/rand failed: " + err.Error()) // the OS entropy source is gone; nothing sane can continue
	}
	return PrefixKeypair + "-" + hex.EncodeToString(b[:])
}

// ValidKeypairID reports whether id has the shape of a keypair id.
func ValidKeypairID(id string) bool {
	rest, ok := strings.CutPrefix(id, PrefixKeypair+"-")
	if !ok || len(rest) != keypairIDHexSize {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidKeypairName checks the KeypairName rule of the API: 1 to 255 ASCII
// printable characters.
func ValidKeypairName(name string) bool {
	if name == "" || len(name) > MaxKeypairName {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] < ' ' || name[i] > '~' {
			return false
		}
	}
	return true
}
