package operator

import (
	"context"
	"fmt"
	"github.com/keyrotor/keyrotor"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/rotation"
)

// UnstickOptions tune Unstick.
type UnstickOptions struct {
	// Force clears a rotation younger than the operator's StuckAfter,
	// which may still be running.
	Force bool
}

// UnstickResult is what Unstick did.
type UnstickResult struct {
	Secret  string   `json:"secret"`
	Version string   `json:"version"`
	Revoked []string `json:"revoked_key_ids"`
}

// Unstick clears a stuck rotation: it revokes the key the attempt minted
// (the pending version's key, and keys the vendor lists under the attempt's
// key name), then removes AWSPENDING from the version, so that rotation can
// run again. The current and previous keys are never touched.
func (o *Operator) Unstick(ctx context.Context, id string, opts UnstickOptions) (UnstickResult, error) {
	const op = "unstick"
	s, err := o.describe(ctx, op, id)
	if err != nil {
		return UnstickResult{}, err
	}
	res := UnstickResult{Secret: s.name(), Revoked: []string{}}
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
	var doomed []string
	pending, found, err := o.read(ctx, op, s.id, rotation.Pending, s.pending)
	if err != nil {
		return res, err
	}
	if found && pending.KeyID != "" && !keep[pending.KeyID] {
		doomed = append(doomed, pending.KeyID)
	}
	if cur.Provider != "" && hasKeyAPI(cur.Provider) {
		p, err := o.provider(cur.Provider)
		if err != nil {
			return res, fmt.Errorf("%s %s: %w; nothing was changed", op, id, err)
		}
		if l, ok := p.(providers.Lister); ok {
			ident, err := keyrotor.ParseARN(aws.ToString(s.desc.ARN))
			if err != nil {
				return res, fmt.Errorf("%s %s: %w; nothing was changed", op, id, err)
			}
			keys, err := l.ListKeys(ctx, cur, keyrotor.KeyName(ident, s.pending))
			if err != nil {
				return res, fmt.Errorf("%s %s: list the keys of version %s at %s: %w; nothing was changed", op, id, s.pending, cur.Provider, err)
			}
			for _, k := range keys {
				if !keep[k.ID] && !contains(doomed, k.ID) {
					doomed = append(doomed, k.ID)
				}
			}
		}
		for _, keyID := range doomed {
			o.progress("%s: revoking key %s minted by the stuck rotation", res.Secret, keyID)
			if err := p.Revoke(ctx, cur, keyID); err != nil && !providers.IsKind(err, providers.NotFound) {
				return res, fmt.Errorf("%s %s: revoke key %s of version %s: %w; AWSPENDING was left in place", op, id, keyID, s.pending, err)
			}
			res.Revoked = append(res.Revoked, keyID)
		}
	}
	if _, err := o.SM.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId:            aws.String(id),
		VersionStage:        aws.String(rotation.Pending),
		RemoveFromVersionId: aws.String(s.pending),
	}); err != nil {
		return res, fmt.Errorf("%s %s: secretsmanager.UpdateSecretVersionStage (remove AWSPENDING from %s): %w", op, id, s.pending, err)
	}
	return res, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
