package operator

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor/rotation"
)

// RotateOptions tune Rotate.
type RotateOptions struct {
	// Wait follows the rotation until the new key is AWSCURRENT.
	Wait bool
	// Emergency rotates with grace 0 (the keyrotor:emergency-token tag
	// names this rotation's ClientRequestToken), waits for it, then waits
	// until the vendor confirms the old key is revoked.
	Emergency bool
	// Timeout bounds the wait (default 15 minutes).
	Timeout time.Duration
}

// RotateResult is what Rotate did.
type RotateResult struct {
	Secret    string `json:"secret"`
	VersionID string `json:"version_id"` // the ClientRequestToken
	Emergency bool   `json:"emergency"`
	// Finished is true once the new version is AWSCURRENT (known only
	// with Wait or Emergency).
	Finished bool   `json:"finished"`
	NewKeyID string `json:"new_key_id,omitempty"`
	OldKeyID string `json:"old_key_id,omitempty"`
	// OldKeyRevoked is true once the vendor no longer knows the old key
	// (Emergency only).
	OldKeyRevoked bool `json:"old_key_revoked"`
}

// StepError is a rotation that failed or did not finish: the step it
// stopped at and why.
type StepError struct {
	Secret string
	Step   string // createSecret..finishSecret, or "" when unknown
	Reason string
	Err    error
}

func (e *StepError) Error() string {
	step := e.Step
	if step == "" {
		step = "an unknown step"
	}
	return fmt.Sprintf("rotation of %s failed at %s: %s", e.Secret, step, e.Reason)
}

func (e *StepError) Unwrap() error { return e.Err }

var stepName = regexp.MustCompile(`\b(createSecret|setSecret|testSecret|finishSecret)\b`)

func (o *Operator) timeout(d time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return 15 * time.Minute
}

// Rotate starts a rotation through Secrets Manager's RotateSecret, with the
// rotation function and schedule the secret already has.
func (o *Operator) Rotate(ctx context.Context, id string, opts RotateOptions) (RotateResult, error) {
	op := "rotate"
	if opts.Emergency {
		op = "emergency rotate"
	}
	s, err := o.describe(ctx, op, id)
	if err != nil {
		return RotateResult{}, err
	}
	res := RotateResult{Secret: s.name(), Emergency: opts.Emergency}
	if s.pending != "" {
		return res, refused(op, id, "a rotation is already in progress (AWSPENDING is on version %s); wait for it, or clear it with `keyrotor unstick %s`", s.pending, id)
	}
	if aws.ToString(s.desc.RotationLambdaARN) == "" {
		return res, refused(op, id, "the secret has no rotation function; configure it with `keyrotor inventory apply`")
	}
	cur, err := o.readCurrent(ctx, op, s)
	if err != nil {
		return res, err
	}
	res.OldKeyID = cur.KeyID
	if opts.Emergency && !hasKeyAPI(cur.Provider) {
		return res, refused(op, id, "%s keys cannot be rotated by API: roll the key at the vendor with an immediate expiry, then run `keyrotor import %s`", cur.Provider, id)
	}
	token := o.token()
	res.VersionID = token
	if opts.Emergency {
		if _, err := o.SM.TagResource(ctx, &secretsmanager.TagResourceInput{
			SecretId: aws.String(id),
			Tags:     []smtypes.Tag{{Key: aws.String(rotation.TagEmergencyToken), Value: aws.String(token)}},
		}); err != nil {
			return res, fmt.Errorf("%s %s: secretsmanager.TagResource (%s): %w", op, id, rotation.TagEmergencyToken, err)
		}
	}
	o.progress("%s: RotateSecret with version %s", res.Secret, token)
	if _, err := o.SM.RotateSecret(ctx, &secretsmanager.RotateSecretInput{
		SecretId:           aws.String(id),
		ClientRequestToken: aws.String(token),
	}); err != nil {
		step := ""
		if m := stepName.FindString(err.Error()); m != "" {
			step = m
		}
		return res, &StepError{Secret: res.Secret, Step: step, Reason: "secretsmanager.RotateSecret: " + err.Error(), Err: err}
	}
	if !opts.Wait && !opts.Emergency {
		return res, nil
	}
	deadline := o.now().Add(o.timeout(opts.Timeout))
	if err := o.follow(ctx, op, s, token, deadline); err != nil {
		return res, err
	}
	res.Finished = true
	now, err := o.readCurrent(ctx, op, s)
	if err != nil {
		return res, err
	}
	res.NewKeyID = now.KeyID
	o.progress("%s: finishSecret done: key %s is AWSCURRENT", res.Secret, now.KeyID)
	if !opts.Emergency || cur.KeyID == "" || cur.KeyID == now.KeyID {
		res.OldKeyRevoked = opts.Emergency
		return res, nil
	}
	p, err := o.provider(now.Provider)
	if err != nil {
		return res, fmt.Errorf("%s %s: confirm the revocation of key %s: %w", op, id, cur.KeyID, err)
	}
	o.progress("%s: waiting for the revoker to revoke the old key %s", res.Secret, cur.KeyID)
	for {
		state, err := keyState(ctx, p, now, cur.KeyID, cur)
		if err == nil && state == KeyRevoked {
			res.OldKeyRevoked = true
			o.progress("%s: the old key %s is revoked at %s", res.Secret, cur.KeyID, now.Provider)
			return res, nil
		}
		if !o.now().Before(deadline) {
			reason := fmt.Sprintf("the new key %s is AWSCURRENT, but the old key %s is still live at %s; check the revoker and its dead-letter queue", now.KeyID, cur.KeyID, now.Provider)
			if err != nil {
				reason = fmt.Sprintf("the new key %s is AWSCURRENT, but %s cannot confirm the revocation of the old key %s: %v", now.KeyID, now.Provider, cur.KeyID, err)
			}
			return res, fmt.Errorf("%s %s: %s", op, id, reason)
		}
		if err := o.sleep(ctx, o.pollInterval()); err != nil {
			return res, err
		}
	}
}

// follow polls the secret until version token is AWSCURRENT, reporting each
// step as it shows in the version's labels and value.
func (o *Operator) follow(ctx context.Context, op string, s *secret, token string, deadline time.Time) error {
	last := ""
	for {
		desc, err := o.SM.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(s.id)})
		if err != nil {
			return fmt.Errorf("%s %s: secretsmanager.DescribeSecret: %w", op, s.id, err)
		}
		stages, exists := desc.VersionIdsToStages[token]
		phase := ""
		switch {
		case has(stages, rotation.Current):
			return nil
		case !exists:
			phase = "waiting for Secrets Manager to start the rotation"
		case !has(stages, rotation.Pending):
			return &StepError{Secret: s.name(), Reason: fmt.Sprintf("version %s lost AWSPENDING without becoming AWSCURRENT (cleared by someone?)", token)}
		default:
			_, found, err := o.read(ctx, op, s.id, rotation.Pending, token)
			if err != nil {
				return err
			}
			phase = string(rotation.CreateSecret)
			if found {
				phase = "setSecret/testSecret/finishSecret"
			}
		}
		if phase != last {
			o.progress("%s: %s", s.name(), phase)
			last = phase
		}
		if !o.now().Before(deadline) {
			step := ""
			if phase == string(rotation.CreateSecret) {
				step = phase
			}
			return &StepError{Secret: s.name(), Step: step, Reason: fmt.Sprintf("not finished in time, still at %s; the rotation function's logs say why (CloudWatch Logs of %s)", phase, aws.ToString(desc.RotationLambdaARN))}
		}
		if err := o.sleep(ctx, o.pollInterval()); err != nil {
			return err
		}
	}
}
