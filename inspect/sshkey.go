package inspect

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"math/big"
	"strings"
)

// PublicKey is one SSH public key as found in an authorized_keys or .pub
// file.
type PublicKey struct {
	Type    string // ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, ...
	Blob    []byte // the key in SSH wire format
	Bits    int    // key size as ssh-keygen -l prints it (0 if unknown)
	Comment string
	Options string // authorized_keys options (command=..., from=...)
}

// Fingerprint returns the SHA256 fingerprint as ssh-keygen -l prints it.
func (k PublicKey) Fingerprint() string { return Fingerprint(k.Blob) }

// Fingerprint returns the SHA256 fingerprint of an SSH wire-format public
// key: "SHA256:" followed by unpadded base64, as OpenSSH prints it.
func Fingerprint(blob []byte) string {
	sum := sha256.Sum256(blob)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// ParseAuthorizedKeys returns the keys of an authorized_keys file, skipping
// comments, blank lines and lines that hold no valid key.
func ParseAuthorizedKeys(data []byte) []PublicKey {
	var keys []PublicKey
	for _, line := range strings.Split(string(data), "\n") {
		if k, ok := ParsePublicKeyLine(line); ok {
			keys = append(keys, k)
		}
	}
	return keys
}

// ParsePublicKeyLine parses one line of an authorized_keys or .pub file:
// [options] type base64 [comment]. The key type is taken from the line and
// must match the type encoded in the key itself.
func ParsePublicKeyLine(line string) (PublicKey, bool) {
	line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
	if line == "" || line[0] == '#' {
		return PublicKey{}, false
	}
	toks := tokens(line)
	// The key type is the first or (after an options field) second token.
	for i := 0; i < len(toks)-1 && i < 2; i++ {
		typ := line[toks[i][0]:toks[i][1]]
		blob, err := base64.StdEncoding.DecodeString(line[toks[i+1][0]:toks[i+1][1]])
		if err != nil {
			continue
		}
		inner, _, ok := sshString(blob)
		if !ok || string(inner) != typ {
			continue
		}
		k := PublicKey{Type: typ, Blob: blob, Bits: keyBits(typ, blob)}
		if i > 0 {
			k.Options = line[toks[0][0]:toks[0][1]]
		}
		k.Comment = strings.TrimSpace(line[toks[i+1][1]:])
		return k, true
	}
	return PublicKey{}, false
}

// tokens splits a line on blanks outside double quotes and returns the
// [start, end) of each token.
func tokens(s string) [][2]int {
	var out [][2]int
	start, quoted := -1, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' && (i == 0 || s[i-1] != '\\'):
			quoted = !quoted
			if start < 0 {
				start = i
			}
		case (c == ' ' || c == '\t') && !quoted:
			if start >= 0 {
				out = append(out, [2]int{start, i})
				start = -1
			}
		default:
			if start < 0 {
				start = i
			}
		}
	}
	if start >= 0 {
		out = append(out, [2]int{start, len(s)})
	}
	return out
}

// sshString reads one SSH wire-format string.
func sshString(b []byte) (s, rest []byte, ok bool) {
	if len(b) < 4 {
		return nil, nil, false
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, nil, false
	}
	return b[4 : 4+n], b[4+n:], true
}

// keyBits returns the key size ssh-keygen -l prints for a wire-format key.
func keyBits(typ string, blob []byte) int {
	_, rest, _ := sshString(blob)
	base := typ
	if strings.HasSuffix(typ, "-cert-v01@openssh.com") {
		base = strings.TrimSuffix(typ, "-cert-v01@openssh.com")
		_, rest, _ = sshString(rest) // nonce
	}
	switch base {
	case "ssh-ed25519", "sk-ssh-ed25519@openssh.com":
		return 256
	case "ecdsa-sha2-nistp256", "sk-ecdsa-sha2-nistp256@openssh.com":
		return 256
	case "ecdsa-sha2-nistp384":
		return 384
	case "ecdsa-sha2-nistp521":
		return 521
	case "ssh-rsa":
		_, rest, ok := sshString(rest) // e
		if !ok {
			return 0
		}
		n, _, ok := sshString(rest)
		if !ok {
			return 0
		}
		return new(big.Int).SetBytes(n).BitLen()
	case "ssh-dss":
		p, _, ok := sshString(rest)
		if !ok {
			return 0
		}
		return new(big.Int).SetBytes(p).BitLen()
	}
	return 0
}

// PrivateKeyPublic returns the public half of an SSH private key file. It
// reads the OpenSSH format (whose public key is stored unencrypted, so
// passphrase-protected keys work too) and unencrypted PEM keys (PKCS#1 RSA,
// SEC 1 EC, PKCS#8).
func PrivateKeyPublic(data []byte) (PublicKey, bool) {
	block, _ := pem.Decode(data)
	if block == nil {
		return PublicKey{}, false
	}
	var blob []byte
	switch block.Type {
	case "OPENSSH PRIVATE KEY":
		blob = opensshPublicBlob(block.Bytes)
	case "RSA PRIVATE KEY":
		if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
			blob = wirePublic(&k.PublicKey)
		}
	case "EC PRIVATE KEY":
		if k, err := x509.ParseECPrivateKey(block.Bytes); err == nil {
			blob = wirePublic(&k.PublicKey)
		}
	case "PRIVATE KEY":
		if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
			switch k := k.(type) {
			case *rsa.PrivateKey:
				blob = wirePublic(&k.PublicKey)
			case *ecdsa.PrivateKey:
				blob = wirePublic(&k.PublicKey)
			case ed25519.PrivateKey:
				blob = wirePublic(k.Public())
			}
		}
	}
	if blob == nil {
		return PublicKey{}, false
	}
	typ, _, ok := sshString(blob)
	if !ok {
		return PublicKey{}, false
	}
	return PublicKey{Type: string(typ), Blob: blob, Bits: keyBits(string(typ), blob)}, true
}

// opensshPublicBlob extracts the first public key of an openssh-key-v1
// private key.
func opensshPublicBlob(b []byte) []byte {
	const magic = "openssh-key-v1\x00"
	if !bytes.HasPrefix(b, []byte(magic)) {
		return nil
	}
	rest := b[len(magic):]
	for i := 0; i < 3; i++ { // cipher name, KDF name, KDF options
		var ok bool
		if _, rest, ok = sshString(rest); !ok {
			return nil
		}
	}
	if len(rest) < 4 || binary.BigEndian.Uint32(rest) < 1 {
		return nil
	}
	pub, _, ok := sshString(rest[4:])
	if !ok {
		return nil
	}
	return pub
}

// wirePublic encodes a public key in SSH wire format.
func wirePublic(pub any) []byte {
	var b []byte
	putString := func(s []byte) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	putMPInt := func(n *big.Int) {
		v := n.Bytes()
		if len(v) > 0 && v[0]&0x80 != 0 {
			v = append([]byte{0}, v...)
		}
		putString(v)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		putString([]byte("ssh-rsa"))
		putMPInt(big.NewInt(int64(k.E)))
		putMPInt(k.N)
	case *ecdsa.PublicKey:
		var curve string
		switch k.Curve {
		case elliptic.P256():
			curve = "nistp256"
		case elliptic.P384():
			curve = "nistp384"
		case elliptic.P521():
			curve = "nistp521"
		default:
			return nil
		}
		pt, err := k.Bytes()
		if err != nil {
			return nil
		}
		putString([]byte("ecdsa-sha2-" + curve))
		putString([]byte(curve))
		putString(pt)
	case ed25519.PublicKey:
		putString([]byte("ssh-ed25519"))
		putString(k)
	default:
		return nil
	}
	return b
}
