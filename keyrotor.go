// Package keyrotor holds the parts of a managed secret's schema that every
// other package must agree on and that are a contract with operators: the
// binding tags that say which principals a secret may reach, the rollback
// marker, and the secret's identity from which vendor-side key names derive.
// It imports the standard library only, so that every package may import it.
//
// # Bindings
//
// A secret's value says what to rotate, but only within what the target has
// been bound to by someone allowed to change the target (DESIGN §4):
//
//   - an IAM user may be rotated by a secret only if it carries the IAM tag
//     TagSecret whose value is that secret's ARN, exactly;
//   - an admin secret (a vendor management credential) may be used only by
//     managed secrets whose name matches one of the patterns in its tag
//     TagAdminFor (see MatchAdminFor). No tag: no use.
//
// Whoever may write a managed secret's value can therefore reach only the
// principals bound to that secret, never every user of the account or every
// admin credential keyrotor can read.
package keyrotor

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Tags of the binding contract and of the rollback protocol.
const (
	// TagSecret, on an IAM user, binds the user to the managed secret whose
	// ARN is its value.
	TagSecret = "keyrotor:secret"
	// TagAdminFor, on an admin secret, lists the comma-separated glob
	// patterns of the managed secret names that may use it.
	TagAdminFor = "keyrotor:admin-for"
	// TagRollbackUntil, on a managed secret, holds an RFC 3339 time set by
	// `keyrotor rollback` before it moves AWSCURRENT back. Until then
	// createSecret refuses non-emergency rotations (the documented hold) and
	// the revoker does not revoke the secret's superseded keys.
	TagRollbackUntil = "keyrotor:rollback-until"
)

// MatchAdminFor reports whether secretName matches one of the comma-separated
// patterns of a TagAdminFor value. In a pattern, '*' matches any run of
// characters, '/' included (as in IAM resource ARNs); every other character,
// '?' included, matches itself; matching is case-sensitive. Patterns are
// trimmed of spaces; an empty pattern matches nothing, so an empty or missing
// tag allows no secret.
func MatchAdminFor(patterns, secretName string) bool {
	for _, p := range strings.Split(patterns, ",") {
		if p = strings.TrimSpace(p); p != "" && globMatch(p, secretName) {
			return true
		}
	}
	return false
}

// globMatch matches s against p, where '*' matches any run of characters.
// It is linear in len(p)+len(s) for the common cases and never backtracks
// further than the last star (the classic two-pointer wildcard match).
func globMatch(p, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && p[pi] == s[si]:
			pi++
			si++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// RollbackHold returns the time until which the TagRollbackUntil value v
// holds plain rotations and revocations, and whether it is a valid time. An
// unparsable value is reported as not ok: callers treat it as a hold of
// unknown end and refuse (fail closed), saying which tag to fix.
func RollbackHold(v string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(v))
	return t, err == nil
}

// Identity is what tells one secret from every other, everywhere: the
// partition, account, region and name of its ARN, and the ARN's random suffix,
// which differs when a secret is deleted and created again under its old name.
// Vendor-side key names derive from it (KeyNamePrefix), so that secrets of the
// same name in another region, account or stack sharing one vendor account
// never take each other's keys for their own.
type Identity struct {
	Partition, Account, Region, Name, Suffix string
}

// ParseARN returns the Identity of a Secrets Manager secret ARN, as
// DescribeSecret returns it: arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME-SUFFIX.
// Never build an identity from a SecretId that may be a name (moto passes
// names) or from the Lambda context.
func ParseARN(arn string) (Identity, error) {
	parts := strings.SplitN(arn, ":", 7)
	if len(parts) != 7 || parts[0] != "arn" || parts[2] != "secretsmanager" || parts[5] != "secret" {
		return Identity{}, fmt.Errorf("%q is not a Secrets Manager secret ARN", arn)
	}
	id := Identity{Partition: parts[1], Region: parts[3], Account: parts[4]}
	full := parts[6]
	i := strings.LastIndexByte(full, '-')
	if i <= 0 || len(full)-i-1 != 6 {
		return Identity{}, fmt.Errorf("secret ARN %q has no 6-character suffix after its name", arn)
	}
	id.Name, id.Suffix = full[:i], full[i+1:]
	if id.Partition == "" || id.Region == "" || id.Account == "" {
		return Identity{}, fmt.Errorf("secret ARN %q lacks a partition, region or account", arn)
	}
	return id, nil
}

// String is the ARN the identity was parsed from.
func (id Identity) String() string {
	return "arn:" + id.Partition + ":secretsmanager:" + id.Region + ":" + id.Account + ":secret:" + id.Name + "-" + id.Suffix
}

// b32 is lower-case base32 without padding: letters and digits only, which
// every vendor accepts in a key name.
var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// digest returns the first n base32 characters (5 bits each) of the SHA-256
// of the parts, each length-prefixed so that no two part lists collide.
func digest(n int, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s\n", len(p), p)
	}
	return b32.EncodeToString(h.Sum(nil))[:n]
}

// Lengths of key names. The shortest name limit among the vendors is
// Twilio's FriendlyName (64 characters).
const (
	identityDigestLen = 26 // 130 bits
	tokenDigestLen    = 13 // 65 bits, within one secret
	nameSlugLen       = 12
	// MaxKeyNameLen is the length of every KeyName.
	MaxKeyNameLen = len("keyrotor-") + nameSlugLen + 1 + identityDigestLen + 1 + tokenDigestLen
)

// KeyNamePrefix returns the prefix of the vendor-side name of every key
// keyrotor mints for the secret: "keyrotor-", a readable slug of the name
// (for people reading a vendor's console; it proves nothing), and 130 bits of
// the SHA-256 of the full identity (what proves the key is this secret's).
func KeyNamePrefix(id Identity) string {
	return "keyrotor-" + slug(id.Name, nameSlugLen) + "-" +
		digest(identityDigestLen, id.Partition, id.Account, id.Region, id.Name, id.Suffix) + "-"
}

// KeyName returns the vendor-side name of the key minted for the secret by
// the rotation whose ClientRequestToken (version id) is token: its prefix and
// 65 bits of the SHA-256 of the identity and the token. At most
// MaxKeyNameLen (64) characters.
func KeyName(id Identity, token string) string {
	return KeyNamePrefix(id) + digest(tokenDigestLen, id.String(), token)
}

// LegacyKeyNamePrefix is the key name prefix of keyrotor's first naming
// scheme, derived from the secret name alone ("keyrotor-", a 20-character
// slug, 32 bits of SHA-256 of the name). Secrets of the same name in other
// regions or accounts share it, so such keys are reported, never revoked.
func LegacyKeyNamePrefix(secretName string) string {
	sum := sha256.Sum256([]byte(secretName))
	return "keyrotor-" + slug(secretName, 20) + "-" + hex.EncodeToString(sum[:4]) + "-"
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
