package operator

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/internal/inventory"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/rotation"
)

// RollbackResult is what Rollback did.
type RollbackResult struct {
	Secret          string `json:"secret"`
	RestoredVersion string `json:"restored_version_id"`
	RestoredKeyID   string `json:"restored_key_id"`
	FailedVersion   string `json:"failed_version_id"`
	FailedKeyID     string `json:"failed_key_id"`
	// FailedKeyRevoked is false when the vendor cannot revoke by API
	// (Note says what to do).
	FailedKeyRevoked bool `json:"failed_key_revoked"`
	// HeldUntil is the keyrotor:rollback-until time set on the secret:
	// until then plain rotations are refused and the revoker does not
	// revoke the secret's superseded keys.
	HeldUntil *time.Time `json:"held_until,omitempty"`
	Note      string     `json:"note,omitempty"`
}

// Rollback is the guide's rollback procedure (Step 6). It refuses when the
// secret has no previous version, or when the previous key is no longer
// valid at the vendor. Otherwise:
//
//  1. it tags the secret keyrotor:rollback-until = now + grace + 15 min,
//     before anything else changes: the revoker does not revoke the
//     secret's superseded keys while the tag holds a future time (it checks
//     right before it revokes), and createSecret refuses plain rotations
//     (the runbook's hold);
//  2. it moves AWSCURRENT back to the previous version;
//  3. it verifies the restored key at the vendor. A revoker that had
//     passed its last check before the tag was set may still have revoked
//     it: then AWSCURRENT goes back to the failed version, nothing is
//     revoked, the hold is lifted (a rotation is what is needed now), and
//     Rollback fails saying both facts;
//  4. only then it revokes the failed new key.
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
		return res, refused(op, id, "a rotation is in progress (AWSPENDING is on version %s); if it is stuck, `keyrotor unstick %s` clears it", s.pending, id)
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

	grace, ok, _ := o.grace(ctx, s)
	if !ok {
		grace = RollbackGraceFallback
	}
	until := o.now().Add(grace + RollbackHoldMargin).UTC().Truncate(time.Second)
	o.progress("%s: holding plain rotations and revocations until %s (%s)", res.Secret, until.Format(time.RFC3339), keyrotor.TagRollbackUntil)
	if err := o.setHold(ctx, id, until); err != nil {
		return res, fmt.Errorf("%s %s: %w; nothing was changed", op, id, err)
	}
	res.HeldUntil = &until

	o.progress("%s: moving AWSCURRENT back to version %s (key %s)", res.Secret, s.previous, prev.KeyID)
	if err := o.moveCurrent(ctx, id, s.previous, s.current); err != nil {
		return res, fmt.Errorf("%s %s: %w; AWSCURRENT was not moved (the secret is tagged %s=%s: plain rotations are held until then)", op, id, err, keyrotor.TagRollbackUntil, until.Format(time.RFC3339))
	}

	// The revoker may have revoked the restored key after our check and
	// before the tag: look again, now that it is AWSCURRENT.
	if err := p.Verify(ctx, prev); err != nil {
		if !providers.IsKind(err, providers.Permission) && !providers.IsKind(err, providers.NotFound) {
			return res, fmt.Errorf("%s %s: key %s is AWSCURRENT again, but %s cannot confirm that it works: %w; the failed key %s was not revoked: check the restored key, then revoke the failed one (`keyrotor revoke-key %s %s`) or move AWSCURRENT back", op, id, prev.KeyID, cur.Provider, err, cur.KeyID, id, cur.KeyID)
		}
		o.progress("%s: the restored key %s does not work at %s: moving AWSCURRENT back to version %s (key %s)", res.Secret, prev.KeyID, cur.Provider, s.current, cur.KeyID)
		if merr := o.moveCurrent(ctx, id, s.current, s.previous); merr != nil {
			return res, fmt.Errorf("%s %s: the restored key %s was revoked at %s meanwhile (by the revoker?), and moving AWSCURRENT back to version %s (key %s) failed: %w; move it by hand: aws secretsmanager update-secret-version-stage --secret-id %s --version-stage AWSCURRENT --move-to-version-id %s --remove-from-version-id %s", op, id, prev.KeyID, cur.Provider, s.current, cur.KeyID, merr, inventory.ShellQuote(id), s.current, s.previous)
		}
		res.HeldUntil = nil
		lifted := "the rotation hold is lifted"
		if herr := o.setHold(ctx, id, o.now().UTC().Truncate(time.Second)); herr != nil {
			lifted = fmt.Sprintf("lifting the rotation hold failed (%v): rotate with --emergency, which the hold does not stop", herr)
		}
		return res, fmt.Errorf("%s %s: the restored key %s no longer works at %s (it was revoked after rollback checked it, by the revoker?), so AWSCURRENT is back on version %s with key %s and nothing was revoked; %s. Rotate now for a fresh key: `keyrotor rotate %s --wait`", op, id, prev.KeyID, cur.Provider, s.current, cur.KeyID, lifted, id)
	}

	if cur.KeyID == "" {
		res.Note = "the failed version records no key id: revoke its key at the vendor by hand"
		return res, nil
	}
	o.progress("%s: the restored key %s works; revoking the failed key %s", res.Secret, prev.KeyID, cur.KeyID)
	if err := p.Revoke(ctx, prev, cur.KeyID); err != nil && !providers.IsKind(err, providers.NotFound) {
		if providers.IsKind(err, providers.Invalid) {
			res.Note = fmt.Sprintf("%s cannot revoke keys by API: delete the failed key %s at the vendor by hand", cur.Provider, cur.KeyID)
			return res, nil
		}
		return res, fmt.Errorf("%s %s: service is restored (key %s is AWSCURRENT again), but revoking the failed key %s failed: %w; revoke it with `keyrotor revoke-key %s %s`", op, id, prev.KeyID, cur.KeyID, err, id, cur.KeyID)
	}
	res.FailedKeyRevoked = true
	return res, nil
}

// setHold tags the secret keyrotor:rollback-until=until (a time now or in
// the past lifts the hold).
func (o *Operator) setHold(ctx context.Context, id string, until time.Time) error {
	if _, err := o.SM.TagResource(ctx, &secretsmanager.TagResourceInput{
		SecretId: aws.String(id),
		Tags:     []smtypes.Tag{{Key: aws.String(keyrotor.TagRollbackUntil), Value: aws.String(until.Format(time.RFC3339))}},
	}); err != nil {
		return fmt.Errorf("secretsmanager.TagResource (%s): %w", keyrotor.TagRollbackUntil, err)
	}
	return nil
}

// moveCurrent moves AWSCURRENT from version from to version to.
func (o *Operator) moveCurrent(ctx context.Context, id, to, from string) error {
	if _, err := o.SM.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId:            aws.String(id),
		VersionStage:        aws.String(rotation.Current),
		MoveToVersionId:     aws.String(to),
		RemoveFromVersionId: aws.String(from),
	}); err != nil {
		return fmt.Errorf("secretsmanager.UpdateSecretVersionStage (move AWSCURRENT to %s): %w", to, err)
	}
	return nil
}
