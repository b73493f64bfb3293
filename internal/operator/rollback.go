package operator

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/rotation"
)

// RollbackResult is what Rollback did.
type RollbackResult struct {
	Secret          string `json:"secret"`
	RestoredVersion string `json:"restored_version"`
	RestoredKeyID   string `json:"restored_key_id"`
	FailedVersion   string `json:"failed_version"`
	FailedKeyID     string `json:"failed_key_id"`
	// FailedKeyRevoked is false when the vendor cannot revoke by API
	// (Note says what to do).
	FailedKeyRevoked bool   `json:"failed_key_revoked"`
	Note             string `json:"note,omitempty"`
}

// Rollback is the guide's rollback procedure (Step 6). It refuses when the
// secret has no previous version, or when the previous key is no longer
// valid at the vendor. Otherwise it moves AWSCURRENT back to the previous
// version, then revokes the failed new key.
//
// The rotation that made the failed key current has queued the revocation
// of the restored key. The revoker skips that message: the restored key is
// AWSCURRENT again, or, after a later rotation, AWSPREVIOUS of a version
// other than the one the message's rotation made current (the later
// rotation revokes it after its own grace period).
func (o *Operator) Rollback(ctx context.Context, id string) (RollbackResult, error) {
	const op = "rollback"
	s, err := o.describe(ctx, op, id)
	if err != nil {
		return RollbackResult{}, err
	}
	res := RollbackResult{Secret: s.name()}
	if s.pending != "" {
		return res, refused(op, id, "a rotation is in progress (AWSPENDING is on version %s); if it is stuck, `keyrotor unstick %s` clears it and revokes its key", s.pending, id)
	}
	if s.previous == "" || s.previous == s.current {
		return res, refused(op, id, "there is no previous version to roll back to")
	}
	cur, err := o.readCurrent(ctx, op, s)
	if err != nil {
		return res, err
	}
	prev, found, err := o.read(ctx, op, s.id, rotation.Previous, "")
	if err != nil {
		return res, err
	}
	switch {
	case !found:
		return res, refused(op, id, "the previous version %s has no value", s.previous)
	case prev.Key == "" && prev.KeyID == "":
		return res, refused(op, id, "the previous version %s holds no key (it is the secret before its first rotation)", s.previous)
	case prev.KeyID == cur.KeyID && prev.Key == cur.Key:
		return res, refused(op, id, "the previous version holds the same key as the current one; nothing to roll back")
	case prev.Provider != cur.Provider:
		return res, refused(op, id, "the previous version is a %q key, the current one a %q key", prev.Provider, cur.Provider)
	}
	res.RestoredVersion, res.RestoredKeyID = s.previous, prev.KeyID
	res.FailedVersion, res.FailedKeyID = s.current, cur.KeyID
	p, err := o.provider(cur.Provider)
	if err != nil {
		return res, fmt.Errorf("%s %s: %w; nothing was changed", op, id, err)
	}
	state, err := keyState(ctx, p, cur, prev.KeyID, prev)
	if err != nil {
		return res, fmt.Errorf("%s %s: ask %s whether the previous key %s is still valid: %w; nothing was changed", op, id, cur.Provider, prev.KeyID, err)
	}
	if state != KeyLive {
		return res, refused(op, id, "the previous key %s is no longer valid at %s (already revoked), so there is nothing to roll back to; rotate instead (`keyrotor rotate %s`)", prev.KeyID, cur.Provider, id)
	}

	o.progress("%s: moving AWSCURRENT back to version %s (key %s)", res.Secret, s.previous, prev.KeyID)
	if _, err := o.SM.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId:            aws.String(id),
		VersionStage:        aws.String(rotation.Current),
		MoveToVersionId:     aws.String(s.previous),
		RemoveFromVersionId: aws.String(s.current),
	}); err != nil {
		return res, fmt.Errorf("%s %s: secretsmanager.UpdateSecretVersionStage (move AWSCURRENT to %s): %w; nothing was changed", op, id, s.previous, err)
	}
	if cur.KeyID == "" {
		res.Note = "the failed version records no key id: revoke its key at the vendor by hand"
		return res, nil
	}
	o.progress("%s: revoking the failed key %s", res.Secret, cur.KeyID)
	if err := p.Revoke(ctx, prev, cur.KeyID); err != nil && !providers.IsKind(err, providers.NotFound) {
		if providers.IsKind(err, providers.Invalid) {
			res.Note = fmt.Sprintf("%s cannot revoke keys by API: delete the failed key %s at the vendor by hand", cur.Provider, cur.KeyID)
			return res, nil
		}
		return res, fmt.Errorf("%s %s: service is restored (key %s is AWSCURRENT again), but revoking the failed key %s failed: %w; revoke it at the vendor", op, id, prev.KeyID, cur.KeyID, err)
	}
	res.FailedKeyRevoked = true
	return res, nil
}
