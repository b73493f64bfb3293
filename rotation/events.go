package rotation

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/notify"
	"github.com/keyrotor/keyrotor/providers"
)

// publish sends one event, if the Rotator has a publisher.
func (r *Rotator) publish(ctx context.Context, detailType string, d notify.Detail) {
	if r.opts.Events == nil {
		return
	}
	if d.Time.IsZero() {
		d.Time = r.opts.Now().UTC()
	}
	r.opts.Events.Publish(ctx, notify.Event{DetailType: detailType, Detail: d})
}

// detail is the part of every event that names the secret and the rotation.
func (r *Rotator) detail(s *secret) notify.Detail {
	return notify.Detail{SecretARN: s.arn, SecretName: s.name, Provider: r.p.Name(), NewVersionID: s.token,
		Emergency: s.emergency, Time: r.opts.Now().UTC()}
}

// republishRotated publishes Key Rotated again for a finishSecret retried
// after the label move. The new key's id is read from the version (best
// effort: the event goes out without it if the read fails); the old key's id
// is not known any more and is left out.
func (r *Rotator) republishRotated(ctx context.Context, d notify.Detail, token string, versions map[string][]string) {
	if r.opts.Events == nil {
		return
	}
	d.OldVersionID = versionWith(versions, Previous)
	out, err := r.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(d.SecretARN), VersionId: aws.String(token)})
	if err == nil && out.SecretString != nil {
		if c, perr := providers.ParseSecret(*out.SecretString); perr == nil {
			d.NewKeyID = c.KeyID
		}
	}
	r.publish(ctx, notify.KeyRotated, d)
}
