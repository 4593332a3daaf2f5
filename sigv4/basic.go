package sigv4

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// ParseBasic decodes an "Authorization: Basic base64(email:password)"
// header, which OUTSCALE accepts instead of a signature on the access-key
// and API-access-rule calls. osc-sdk-python sends standard base64 and
// osc-cli URL-safe base64, so both alphabets are accepted, with or without
// padding. The caller must also check X-Osc-Date with [CheckDate]. Errors
// wrap ErrMalformed, or ErrUnsupportedAlgorithm for a non-Basic scheme.
func ParseBasic(header string) (email, password string, err error) {
	scheme, encoded, _ := strings.Cut(strings.TrimSpace(header), " ")
	if !strings.EqualFold(scheme, "Basic") {
		return "", "", fmt.Errorf("%w: %q is not Basic", ErrUnsupportedAlgorithm, scheme)
	}
	encoded = strings.TrimRight(strings.TrimSpace(encoded), "=")
	encoded = strings.NewReplacer("-", "+", "_", "/").Replace(encoded)
	raw, err := base64.RawStdEncoding.DecodeString(encoded)
	if err != nil {
		return "", "", fmt.Errorf("%w: basic credentials: %w", ErrMalformed, err)
	}
	email, password, ok := strings.Cut(string(raw), ":")
	if !ok || email == "" {
		return "", "", fmt.Errorf("%w: basic credentials are not email:password", ErrMalformed)
	}
	return email, password, nil
}
