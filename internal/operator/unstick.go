package operator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor/internal/inventory"
	"github.com/keyrotor/keyrotor/revocation"
	"github.com/keyrotor/keyrotor/rotation"
)

// AbandonMarginDefault is added to the rotation function's timeout before the
// key of an abandoned rotation may be revoked: clock skew between this
// machine and the revoker, and Secrets Manager's own latency in invoking the
// last step.
const AbandonMarginDefault = 2 * time.Minute

// UnstickOptions tune Unstick.
type UnstickOptions struct {
	// Force clears a rotation younger than the operator's StuckAfter,
	// which may still be running.
	Force bool
	// SkipVendor clears AWSPENDING reading nothing but the pending version:
	// not the current key, the rotation function or the revocation queue.
	// It is the way out when those cannot be used (the vendor-auth-failure
	// incident: the admin secret missing or revoked) and is allowed only
	// when the pending version holds no value, so that no minted key can
	// be left unrevoked.
	SkipVendor bool
}

// UnstickResult is what Unstick did.
type UnstickResult struct {
	Secret  string `json:"secret"`
	Version string `json:"version_id"`
	// QueuedKeyID is the key of the abandoned version whose revocation was
	// queued ("" when the version held no key of its own).
	QueuedKeyID string `json:"queued_key_id,omitempty"`
	// RevokeNotBefore is when the revoker may revoke it at the earliest.
	RevokeNotBefore *time.Time `json:"revoke_not_before,omitempty"`
	// Note says what is left to whom.
	Note string `json:"note,omitempty"`
}

// Unstick clears a stuck rotation: it removes AWSPENDING from the version,
// so that rotation can run again, and queues the revocation of the key the
// attempt stored in that version. The current and previous keys are never
// touched, and Unstick revokes nothing itself.
//
// Why not revoke at once: Secrets Manager has no compare-and-set on
// AWSPENDING, so a finishSecret of the stuck rotation that has already
// passed its checks can still move AWSCURRENT onto the version after the
// label is gone, and a key revoked by then would be current (an outage).
// The revocation therefore goes to the revoker (reason abandoned), delayed
// past the rotation function's timeout, after which no step of the attempt
// can be running; the revoker revokes only if the version is still
// unlabelled then and still holds that key.
//
// Keys the vendor lists under the attempt's key name that no version holds
// (a Create whose response was lost) are left to the next createSecret,
// whose reconcile revokes leftovers of this secret that no version holds.
func (o *Operator) Unstick(ctx context.Context, id string, opts UnstickOptions) (UnstickResult, error) {
	const op = "unstick"
	s, err := o.describe(ctx, op, id)
	if err != nil {
		return UnstickResult{}, err
	}
	res := UnstickResult{Secret: s.name()}
	if s.pending == "" {
		return res, refused(op, id, "no rotation is in progress or stuck (no AWSPENDING outside AWSCURRENT)")
	}
	res.Version = s.pending
	if err := o.versionDates(ctx, op, s); err != nil {
		return res, err
	}
	if since, ok := s.created[s.pending]; ok && !opts.Force && o.now().Sub(since) < o.stuckAfter() {
		return res, refused(op, id, "the rotation of version %s started %s ago and may still be running; wait, or pass --force", s.pending, formatAge(o.now().Sub(since)))
	}
	if opts.SkipVendor {
		return o.unstickSkipVendor(ctx, s, res)
	}
	cur, err := o.readCurrent(ctx, op, s)
	if err != nil {
		return res, err
	}
	keep := map[string]bool{cur.KeyID: true}
	if s.previous != "" {
		if prev, found, err := o.read(ctx, op, s.id, rotation.Previous, ""); err == nil && found {
			keep[prev.KeyID] = true
		}
	}
	pending, found, err := o.read(ctx, op, s.id, rotation.Pending, s.pending)
	if err != nil {
		return res, err
	}
	leftovers := "keys the vendor may list under the attempt's key name that no version holds are revoked by the next rotation's createSecret"
	var msg *revocation.Message
	var queue revocation.Queue
	var delay time.Duration
	manual := found && pending.KeyID != "" && !keep[pending.KeyID] && !hasKeyAPI(pending.Provider)
	if found && pending.KeyID != "" && !keep[pending.KeyID] && !manual {
		// Everything the revocation needs is settled before anything changes.
		fn := o.function(ctx, aws.ToString(s.desc.RotationLambdaARN))
		timeout := fn.timeout
		if timeout <= 0 {
			timeout = DefaultFunctionTimeout
		}
		queue = revocation.Queue{SQS: o.SQS, URL: fn.env[envQueueURL]}
		if queue.URL == "" {
			queue.URL = o.RevocationQueueURL
		}
		if queue.URL == "" || o.SQS == nil {
			why := "its REVOCATION_QUEUE_URL is unset"
			if fn.err != nil {
				why = fn.err.Error()
			}
			return res, refused(op, id, "the key %s of version %s must be revoked through the revoker, but no revocation queue is known: the rotation function cannot say (%s) and KEYROTOR_REVOCATION_QUEUE_URL is unset; nothing was changed. Set KEYROTOR_REVOCATION_QUEUE_URL, or clear it by hand with `%s` and revoke key %s at %s yourself once the rotation function's timeout has passed", pending.KeyID, s.pending, why, clearPendingCommand(id, s.pending), pending.KeyID, pending.Provider)
		}
		delay = timeout + o.abandonMargin()
		arn := aws.ToString(s.desc.ARN)
		if arn == "" {
			arn = id
		}
		msg = &revocation.Message{
			SecretID: arn, Provider: pending.Provider, KeyID: pending.KeyID, OldVersionID: s.pending,
			NotBefore: o.now().Add(delay).UTC(), Reason: revocation.ReasonAbandoned,
		}
	}

	o.progress("%s: removing AWSPENDING from version %s", res.Secret, s.pending)
	if _, err := o.SM.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId:            aws.String(id),
		VersionStage:        aws.String(rotation.Pending),
		RemoveFromVersionId: aws.String(s.pending),
	}); err != nil {
		return res, fmt.Errorf("%s %s: secretsmanager.UpdateSecretVersionStage (remove AWSPENDING from %s): %w; nothing was changed", op, id, s.pending, err)
	}
	if manual {
		res.Note = fmt.Sprintf("%s keys cannot be revoked by API: delete key %s of the stuck version at the vendor by hand", pending.Provider, pending.KeyID)
		return res, nil
	}
	if msg == nil {
		res.Note = "the stuck version held no key of its own; " + leftovers
		return res, nil
	}
	if err := queue.Send(ctx, *msg, delay); err != nil {
		return res, fmt.Errorf("%s %s: AWSPENDING is cleared, but queueing the revocation of key %s of version %s failed: %w; the next rotation's createSecret finds the key in the unlabelled version and queues it, or revoke it with `keyrotor revoke-key %s %s` once %s has passed", op, id, pending.KeyID, s.pending, err, id, pending.KeyID, msg.NotBefore.Format(time.RFC3339))
	}
	o.progress("%s: queued the revocation of key %s (reason abandoned), not before %s: past the rotation function's timeout", res.Secret, pending.KeyID, msg.NotBefore.Format(time.RFC3339))
	res.QueuedKeyID = pending.KeyID
	nb := msg.NotBefore
	res.RevokeNotBefore = &nb
	res.Note = "the revoker revokes the key once no step of the attempt can still be running, if the version is still unlabelled then; " + leftovers
	return res, nil
}

// unstickSkipVendor is Unstick with SkipVendor: it clears AWSPENDING when
// the pending version holds no value (the attempt stopped before
// createSecret stored a key: nothing was minted), and refuses otherwise,
// with the command that clears it by hand.
func (o *Operator) unstickSkipVendor(ctx context.Context, s *secret, res UnstickResult) (UnstickResult, error) {
	const op = "unstick"
	_, err := o.SM.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s.id), VersionId: aws.String(s.pending)})
	var nf *smtypes.ResourceNotFoundException
	switch {
	case err == nil:
		return res, refused(op, s.id, "--skip-vendor clears only a rotation that minted nothing, and version %s holds a value (a key createSecret minted, which would be left unrevoked); run `keyrotor unstick %s` once the vendor can be reached, or clear it by hand with `%s` and revoke that version's key at the vendor yourself once the rotation function's timeout has passed", s.pending, inventory.ShellQuote(s.id), clearPendingCommand(s.id, s.pending))
	case !errors.As(err, &nf):
		return res, fmt.Errorf("%s %s: secretsmanager.GetSecretValue(version %s): %w; nothing was changed", op, s.id, s.pending, err)
	}
	o.progress("%s: version %s holds no value: removing AWSPENDING without asking the vendor", res.Secret, s.pending)
	if _, err := o.SM.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId:            aws.String(s.id),
		VersionStage:        aws.String(rotation.Pending),
		RemoveFromVersionId: aws.String(s.pending),
	}); err != nil {
		return res, fmt.Errorf("%s %s: secretsmanager.UpdateSecretVersionStage (remove AWSPENDING from %s): %w; nothing was changed", op, s.id, s.pending, err)
	}
	res.Note = "the stuck version held no value: nothing was minted, nothing to revoke; fix what failed (the rotation function's logs say) before the next rotation"
	return res, nil
}

// clearPendingCommand is the AWS CLI command that removes AWSPENDING from a
// version: what unstick does, for when keyrotor cannot.
func clearPendingCommand(id, version string) string {
	return fmt.Sprintf("aws secretsmanager update-secret-version-stage --secret-id %s --version-stage %s --remove-from-version-id %s",
		inventory.ShellQuote(id), rotation.Pending, inventory.ShellQuote(version))
}

func (o *Operator) abandonMargin() time.Duration {
	if o.AbandonMargin > 0 {
		return o.AbandonMargin
	}
	return AbandonMarginDefault
}
