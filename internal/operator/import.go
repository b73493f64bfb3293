package operator

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor/audit"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/rotation"
)

// ImportOptions say what Import stores. String, GoString and LogValue never
// show Key, and encoding/json leaves it out.
type ImportOptions struct {
	// Key is the new key, rolled by hand at the vendor.
	Key string `json:"-"`
	// KeyID is the vendor's id of the new key, if it has one.
	KeyID string
	// OldKeyExpiresAt is when the vendor expires the replaced key (chosen
	// when it was rolled).
	OldKeyExpiresAt time.Time
}

// String describes o without its key.
func (o ImportOptions) String() string {
	key := "<none>"
	if o.Key != "" {
		key = "<redacted>"
	}
	return fmt.Sprintf("operator.ImportOptions{key=%s key_id=%s old_key_expires_at=%s}", key, o.KeyID, o.OldKeyExpiresAt.UTC().Format(time.RFC3339))
}

// GoString is String, so %#v does not print the key either.
func (o ImportOptions) GoString() string { return o.String() }

// LogValue lets slog log ImportOptions without the key.
func (o ImportOptions) LogValue() slog.Value {
	return slog.GroupValue(slog.String("key_id", o.KeyID), slog.Time("old_key_expires_at", o.OldKeyExpiresAt))
}

// ImportResult is what Import stored.
type ImportResult struct {
	Secret               string    `json:"secret"`
	VersionID            string    `json:"version_id"`
	KeyID                string    `json:"key_id,omitempty"`
	PreviousKeyID        string    `json:"previous_key_id,omitempty"`
	PreviousKeyExpiresAt time.Time `json:"previous_key_expires_at"`
}

// Import stores a key rolled by hand (vendors without a key API, such as
// Stripe) as the secret's new AWSCURRENT version, after the vendor accepts
// it, and records when the replaced key expires. It schedules no
// revocation: the vendor expires the old key. It then tags the secret
// audit.TagKeyCreatedAt with the import time: PutSecretValue does not set
// LastRotatedDate, and the auditor and status measure the key's age from
// the tag.
func (o *Operator) Import(ctx context.Context, id string, opts ImportOptions) (ImportResult, error) {
	const op = "import"
	s, err := o.describe(ctx, op, id)
	if err != nil {
		return ImportResult{}, err
	}
	res := ImportResult{Secret: s.name()}
	key := strings.TrimSpace(opts.Key)
	if key == "" {
		return res, refused(op, id, "no key was given on standard input")
	}
	if s.pending != "" {
		return res, refused(op, id, "a rotation is in progress (AWSPENDING is on version %s)", s.pending)
	}
	cur, err := o.readCurrent(ctx, op, s)
	if err != nil {
		return res, err
	}
	if hasKeyAPI(cur.Provider) {
		return res, refused(op, id, "%s keys are rotated by keyrotor; use `keyrotor rotate %s` (import is for vendors without a key API, such as Stripe)", cur.Provider, id)
	}
	if cur.Key == key {
		return res, refused(op, id, "this key is already the current key")
	}
	if opts.OldKeyExpiresAt.IsZero() {
		return res, refused(op, id, "say when the old key expires at the vendor (--old-key-expires)")
	}
	p, err := o.provider(cur.Provider)
	if err != nil {
		return res, fmt.Errorf("%s %s: %w; nothing was changed", op, id, err)
	}
	next := cur
	next.Key, next.KeyID = key, opts.KeyID
	next.CreatedAt = o.now().UTC().Truncate(time.Second)
	res.PreviousKeyExpiresAt = opts.OldKeyExpiresAt.UTC().Truncate(time.Second)
	if next, err = next.WithAttr(FieldPreviousKeyExpiresAt, res.PreviousKeyExpiresAt.Format(time.RFC3339)); err != nil {
		return res, fmt.Errorf("%s %s: record when the old key expires: %w; nothing was stored", op, id, err)
	}
	if cur.KeyID != "" {
		res.PreviousKeyID = cur.KeyID
		if next, err = next.WithAttr(FieldPreviousKeyID, cur.KeyID); err != nil {
			return res, fmt.Errorf("%s %s: record the previous key id: %w; nothing was stored", op, id, err)
		}
	} else if next.Attrs != nil {
		delete(next.Attrs, FieldPreviousKeyID)
	}
	o.progress("%s: verifying the new key at %s", res.Secret, cur.Provider)
	if err := p.Verify(ctx, next); err != nil {
		switch providers.KindOf(err) {
		case providers.Permission, providers.NotFound, providers.Invalid:
			return res, refused(op, id, "%s does not accept the new key: %v; nothing was stored", cur.Provider, err)
		}
		return res, fmt.Errorf("%s %s: verify the new key at %s: %w; nothing was stored", op, id, cur.Provider, err)
	}
	value, err := next.SecretString()
	if err != nil {
		return res, fmt.Errorf("%s %s: encode the new value: %w", op, id, err)
	}
	res.VersionID = o.token()
	if _, err := o.SM.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId:           aws.String(id),
		ClientRequestToken: aws.String(res.VersionID),
		SecretString:       aws.String(value),
		VersionStages:      []string{rotation.Current},
	}); err != nil {
		return res, fmt.Errorf("%s %s: secretsmanager.PutSecretValue: %w", op, id, err)
	}
	res.KeyID = opts.KeyID
	// After the value, never before: a tag without the key would hide the
	// old key's age; a key without the tag only makes it look older.
	created := next.CreatedAt.Format(time.RFC3339)
	if _, err := o.SM.TagResource(ctx, &secretsmanager.TagResourceInput{
		SecretId: aws.String(id),
		Tags:     []smtypes.Tag{{Key: aws.String(audit.TagKeyCreatedAt), Value: aws.String(created)}},
	}); err != nil {
		return res, fmt.Errorf("%s %s: the new key is stored (version %s), but its age is not: secretsmanager.TagResource (%s): %w; "+
			"until the tag is set the key-age alarm measures from the secret's dates (set it with `aws secretsmanager tag-resource --secret-id %s --tags Key=%s,Value=%s`)",
			op, id, res.VersionID, audit.TagKeyCreatedAt, err, id, audit.TagKeyCreatedAt, created)
	}
	return res, nil
}
