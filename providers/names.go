package providers

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// KeyNamePrefix returns the prefix of the vendor-side names of every key
// keyrotor mints for the secret secretName. It is short enough for every
// vendor's name limit, stable for a secret, and distinct between secrets.
func KeyNamePrefix(secretName string) string {
	sum := sha256.Sum256([]byte(secretName))
	return "keyrotor-" + slug(secretName, 20) + "-" + hex.EncodeToString(sum[:4]) + "-"
}

// KeyName returns the vendor-side name of the key minted for secretName by
// the rotation whose ClientRequestToken is token (at most 51 characters).
func KeyName(secretName, token string) string {
	return KeyNamePrefix(secretName) + slug(token, 12)
}

func slug(s string, max int) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if b.Len() >= max {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
