package omi

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// Resource id prefixes, as the OUTSCALE API writes them.
const (
	PrefixImage       = "ami"
	PrefixSnapshot    = "snap"
	PrefixVolume      = "vol"
	PrefixVm          = "i"
	PrefixReservation = "r"
	PrefixImageExport = "image-export"
	PrefixSnapExport  = "snap-export"
)

// NewID returns prefix-xxxxxxxx with 8 random lowercase hex digits. Ids are
// random rather than sequential so that they reveal nothing about other
// accounts' activity; stores reject a colliding insert, and callers retry.
func NewID(prefix string) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("omi: crypto/rand failed: " + err.Error()) // the OS entropy source is gone; nothing sane can continue
	}
	return prefix + "-" + hex.EncodeToString(b[:])
}

// ValidID reports whether id is prefix-xxxxxxxx with 8 lowercase hex digits.
func ValidID(id, prefix string) bool {
	rest, ok := strings.CutPrefix(id, prefix+"-")
	if !ok || len(rest) != 8 {
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
