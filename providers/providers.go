package providers

import (
	"context"
	"errors"
	"time"
)

// Provider mints, verifies and revokes API keys at one vendor. Implementations
// are safe for concurrent use, keep no per-secret state, and never log or
// return key material except as the Key of a Credential they create.
type Provider interface {
	// Name is the stable provider id ("gateway", "iam"): it must equal the
	// "provider" field of every secret this provider rotates.
	Name() string

	// Create mints a new key named req.KeyName for the owner described by
	// req.Owner. It must not disable or delete any existing key. It returns a
	// Conflict error when the vendor's key limit is reached.
	Create(ctx context.Context, req CreateRequest) (Credential, error)

	// Verify authenticates at the vendor with cred.Key alone, using a cheap
	// read. It returns a Permission error when the vendor refuses the key.
	Verify(ctx context.Context, cred Credential) error

	// Revoke deletes the key keyID of the owner described by owner (the
	// secret's current value: its provider fields say where the key lives).
	// It returns nil when the key is already gone.
	Revoke(ctx context.Context, owner Credential, keyID string) error
}

// CreateRequest is what Create needs to mint a key.
type CreateRequest struct {
	// SecretName is the name of the secret being rotated (never its value).
	SecretName string
	// KeyName is the vendor-side name to give the key
	// (keyrotor.KeyName(identity, token)). Vendors without key names may
	// ignore it.
	KeyName string
	// Owner is the secret's AWSCURRENT value: its provider fields say what to
	// rotate (the IAM user, the account). Its Key is empty on bootstrap.
	Owner Credential
}

// Lister is implemented by providers that can list an owner's keys. The
// rotation engine uses it to find and revoke orphans of interrupted attempts.
type Lister interface {
	// ListKeys returns the keys of owner whose names start with namePrefix.
	// A provider whose keys have no names (IAM) returns every key of the
	// owner with its creation time: the caller must then prove by other
	// means which of them are its own (see package rotation).
	ListKeys(ctx context.Context, owner Credential, namePrefix string) ([]KeyInfo, error)
}

// LastUseReporter is implemented by providers whose vendor reports when a key
// was last used. The revoker uses it to defer revocation of a key still in use.
type LastUseReporter interface {
	// LastUsed returns when keyID was last used, or the zero time if it never
	// was. It returns a NotFound error if the key does not exist.
	LastUsed(ctx context.Context, owner Credential, keyID string) (time.Time, error)
}

// Setter is implemented by providers whose keys are chosen by the client and
// registered at the vendor (setSecret). Set must be idempotent.
type Setter interface {
	Set(ctx context.Context, cred Credential) error
}

// KeyInfo describes a key at the vendor, without its secret.
type KeyInfo struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// ErrUnbound is wrapped by the errors of a provider that refuses an owner
// not bound to the secret (DESIGN §4 "Bindings"): an IAM user without the tag
// keyrotor:secret naming the secret's ARN, an admin secret whose
// keyrotor:admin-for does not match the secret's name. Their Kind is Invalid:
// retrying does not help, binding does.
var ErrUnbound = errors.New("not bound to this secret")
