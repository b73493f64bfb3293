package operator

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/revocation"
	"github.com/keyrotor/keyrotor/rotation"
)

// RevokeKeyResult is what RevokeKey did.
type RevokeKeyResult struct {
	Secret  string `json:"secret"`
	KeyID   string `json:"key_id"`
	Version string `json:"version_id"` // the version that holds the key
	Revoked bool   `json:"revoked"`
}

// RevokeKey revokes at the vendor a key of one of the secret's superseded
// versions, now: what an emergency rotation tells the operator to run for
// each key still live when it gives up waiting for the revoker.
//
// It revokes only a key it can prove is this secret's: held by one of its
// versions (deprecated ones included), with that version's value as the
// owner (the IAM user, the admin secret), so the provider's binding checks
// apply as for the revoker. It refuses a key held by the AWSCURRENT or
// AWSPENDING version, and a key no version holds.
func (o *Operator) RevokeKey(ctx context.Context, id, keyID string) (RevokeKeyResult, error) {
	const op = "revoke-key"
	res := RevokeKeyResult{KeyID: keyID}
	if keyID == "" {
		return res, refused(op, id, "no key id given")
	}
	s, err := o.describe(ctx, op, id)
	if err != nil {
		return res, err
	}
	res.Secret = s.name()
	versions, err := o.versions(ctx, op, s.id)
	if err != nil {
		return res, err
	}
	var owner providers.Credential
	for _, v := range versions {
		vid := aws.ToString(v.VersionId)
		cred, found, err := o.read(ctx, op, s.id, "", vid)
		if err != nil {
			return res, err
		}
		if !found || cred.KeyID != keyID {
			continue
		}
		// Labels as DescribeSecret gave them, and as the listing does.
		for _, label := range append(append([]string(nil), s.desc.VersionIdsToStages[vid]...), v.VersionStages...) {
			if label == rotation.Current || label == rotation.Pending {
				return res, refused(op, id, "key %s is held by version %s, which is %s: it is in use or about to be; rotate (--emergency for a leaked key) instead", keyID, vid, label)
			}
		}
		if res.Version == "" {
			res.Version, owner = vid, cred
		}
	}
	if res.Version == "" {
		return res, refused(op, id, "no version of the secret holds key %s, so keyrotor cannot prove it is this secret's key; revoke it at the vendor if you know it is", keyID)
	}
	if !hasKeyAPI(owner.Provider) {
		return res, refused(op, id, "%s keys cannot be revoked by API: delete key %s at the vendor by hand", owner.Provider, keyID)
	}
	p, err := o.provider(owner.Provider)
	if err != nil {
		return res, fmt.Errorf("%s %s: %w; nothing was changed", op, id, err)
	}
	// Never an admin secret's management credential, whatever a version
	// holds (a version's value is input too).
	if ok, why, err := revocation.NotAnAdminKey(ctx, o.SM, p, owner, true); err != nil {
		return res, fmt.Errorf("%s %s: %w; nothing was changed", op, id, err)
	} else if !ok {
		return res, refused(op, id, "%s", why)
	}
	// Re-validate right before the revoke: a rollback or a rotation may
	// have made the version current, or another version may hold the key.
	again, err := o.describe(ctx, op, id)
	if err != nil {
		return res, err
	}
	for _, label := range again.desc.VersionIdsToStages[res.Version] {
		if label == rotation.Current || label == rotation.Pending {
			return res, refused(op, id, "key %s is held by version %s, which became %s meanwhile; nothing was changed", keyID, res.Version, label)
		}
	}
	if cur, found, err := o.read(ctx, op, s.id, rotation.Current, ""); err != nil {
		return res, err
	} else if found && cur.KeyID == keyID {
		return res, refused(op, id, "AWSCURRENT holds key %s meanwhile; nothing was changed", keyID)
	}
	o.progress("%s: revoking key %s of version %s at %s", res.Secret, keyID, res.Version, owner.Provider)
	if err := p.Revoke(ctx, owner, keyID); err != nil && !providers.IsKind(err, providers.NotFound) {
		return res, fmt.Errorf("%s %s: revoke key %s of version %s at %s: %w", op, id, keyID, res.Version, owner.Provider, err)
	}
	res.Revoked = true
	return res, nil
}
