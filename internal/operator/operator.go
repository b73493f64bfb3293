// Package operator is what the keyrotor CLI does to a managed secret, as
// plain functions over Secrets Manager and the providers, testable without
// the command line: status, rotate (on demand, or in an emergency), rollback,
// unstick and import.
//
// Every rotation goes through Secrets Manager's RotateSecret, never around
// it. The operator never prints or returns a key: results carry key ids.
// An error the operator chose, because a precondition does not hold (no
// previous version, a rotation already in progress), is a *RefusedError;
// ExitCode maps errors to the exit codes the CLI documents.
package operator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/internal/inventory"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/vendorhttp"
	"github.com/keyrotor/keyrotor/revocation"
	"github.com/keyrotor/keyrotor/rotation"
)

// Exit codes of the CLI (docs/operator.md).
const (
	ExitOK       = 0 // done
	ExitFailure  = 1 // a call failed (AWS, the vendor), a rotation failed or timed out
	ExitUsage    = 2 // bad arguments or flags, an unreadable file
	ExitProblems = 3 // problems found: status shows a problem, an inventory is invalid
	ExitRefused  = 4 // refused: a precondition does not hold; nothing was changed
)

// Fields Import adds to the secret value about the key it replaced.
const (
	FieldPreviousKeyID        = "previous_key_id"
	FieldPreviousKeyExpiresAt = "previous_key_expires_at"
)

// SecretsManager is the part of the Secrets Manager API the operator calls.
type SecretsManager interface {
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
	UpdateSecretVersionStage(ctx context.Context, in *secretsmanager.UpdateSecretVersionStageInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error)
	RotateSecret(ctx context.Context, in *secretsmanager.RotateSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.RotateSecretOutput, error)
	TagResource(ctx context.Context, in *secretsmanager.TagResourceInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.TagResourceOutput, error)
	ListSecrets(ctx context.Context, in *secretsmanager.ListSecretsInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretsOutput, error)
	ListSecretVersionIds(ctx context.Context, in *secretsmanager.ListSecretVersionIdsInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretVersionIdsOutput, error)
}

// Operator runs the operator commands. Fill SM and Providers; the rest has
// defaults.
type Operator struct {
	SM SecretsManager
	// Providers returns the provider named by a secret's "provider" field,
	// or an error saying why it is not available here.
	Providers func(name string) (providers.Provider, error)
	// Progress receives one line per step of a long command; nil drops them.
	Progress func(msg string)
	// Now is the clock (default time.Now); Sleep waits between polls
	// (default: a timer that stops with ctx).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// PollInterval is the wait between two looks at a rotation (default 1s).
	PollInterval time.Duration
	// StuckAfter is how old an AWSPENDING version on a non-current version
	// must be to count as stuck rather than in progress (default 30m).
	StuckAfter time.Duration
	// NewToken returns a fresh ClientRequestToken (default: a UUID v4).
	NewToken func() string

	// Lambda reads a secret's rotation function (timeout, GRACE_PERIOD,
	// REVOCATION_QUEUE_URL); nil: the function cannot be read.
	Lambda Lambda
	// SQS sends revocation messages (unstick) to the queue named by the
	// rotation function's REVOCATION_QUEUE_URL, else RevocationQueueURL.
	SQS                revocation.SQS
	RevocationQueueURL string
	// IAM reads IAM users' tags, to check their binding to a secret
	// (status); nil: IAM bindings are reported as not checked.
	IAM inventory.IAM
	// AbandonMargin is added to the rotation function's timeout before an
	// abandoned key may be revoked (default AbandonMarginDefault).
	AbandonMargin time.Duration

	mu        sync.Mutex
	functions map[string]functionConfig // by function ARN, see function
}

func (o *Operator) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o *Operator) sleep(ctx context.Context, d time.Duration) error {
	if o.Sleep != nil {
		return o.Sleep(ctx, d)
	}
	return vendorhttp.Sleep(ctx, d)
}

func (o *Operator) pollInterval() time.Duration {
	if o.PollInterval > 0 {
		return o.PollInterval
	}
	return time.Second
}

func (o *Operator) stuckAfter() time.Duration {
	if o.StuckAfter > 0 {
		return o.StuckAfter
	}
	return 30 * time.Minute
}

func (o *Operator) token() string {
	if o.NewToken != nil {
		return o.NewToken()
	}
	return NewUUID()
}

func (o *Operator) progress(format string, args ...any) {
	if o.Progress != nil {
		o.Progress(fmt.Sprintf(format, args...))
	}
}

func (o *Operator) provider(name string) (providers.Provider, error) {
	if o.Providers == nil {
		return nil, fmt.Errorf("no provider %q is configured", name)
	}
	p, err := o.Providers(name)
	if err != nil {
		return nil, fmt.Errorf("provider %q is not available: %w", name, err)
	}
	return p, nil
}

// NewUUID returns a random UUID (version 4).
func NewUUID() string { return inventory.NewToken() }

// RefusedError is returned when a precondition does not hold; nothing was
// changed.
type RefusedError struct {
	Op     string // "rollback"
	Secret string
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s %s refused: %s", e.Op, e.Secret, e.Reason)
}

func refused(op, secret, format string, args ...any) error {
	return &RefusedError{Op: op, Secret: secret, Reason: fmt.Sprintf(format, args...)}
}

// ExitCode returns the CLI exit code for an error of the operator.
func ExitCode(err error) int {
	var r *RefusedError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &r):
		return ExitRefused
	}
	return ExitFailure
}

// secret is a secret as DescribeSecret and ListSecretVersionIds show it.
type secret struct {
	id       string
	desc     *secretsmanager.DescribeSecretOutput
	tags     map[string]string
	current  string // version ids
	previous string
	// pending is the version holding AWSPENDING when it is not the
	// current one: a rotation in progress or stuck.
	pending string
	created map[string]time.Time // version id -> creation time
	// versions is every version, labelled or not, once versionDates ran.
	versions []smtypes.SecretVersionsListEntry
}

func (s *secret) name() string {
	if n := aws.ToString(s.desc.Name); n != "" {
		return n
	}
	return s.id
}

// describe reads a secret; a missing one is refused.
func (o *Operator) describe(ctx context.Context, op, id string) (*secret, error) {
	desc, err := o.SM.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if err != nil {
		var nf *smtypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			return nil, refused(op, id, "the secret does not exist")
		}
		return nil, fmt.Errorf("%s %s: secretsmanager.DescribeSecret: %w", op, id, err)
	}
	if desc.DeletedDate != nil {
		return nil, refused(op, id, "the secret is scheduled for deletion")
	}
	return newSecret(id, desc), nil
}

// newSecret reads the tags and labels of a described secret.
func newSecret(id string, desc *secretsmanager.DescribeSecretOutput) *secret {
	s := &secret{id: id, desc: desc, tags: map[string]string{}, created: map[string]time.Time{}}
	for _, t := range desc.Tags {
		s.tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	for v, stages := range desc.VersionIdsToStages {
		if has(stages, rotation.Current) {
			s.current = v
		}
		if has(stages, rotation.Previous) {
			s.previous = v
		}
	}
	for v, stages := range desc.VersionIdsToStages {
		if has(stages, rotation.Pending) && v != s.current {
			s.pending = v
		}
	}
	return s
}

// versionDates fills s.created with ListSecretVersionIds.
func (o *Operator) versionDates(ctx context.Context, op string, s *secret) error {
	versions, err := o.versions(ctx, op, s.id)
	if err != nil {
		return err
	}
	s.versions = versions
	for _, v := range versions {
		if v.CreatedDate != nil {
			s.created[aws.ToString(v.VersionId)] = *v.CreatedDate
		}
	}
	return nil
}

// versions lists every version of the secret, unlabelled (deprecated) ones
// included, over all pages.
func (o *Operator) versions(ctx context.Context, op, id string) ([]smtypes.SecretVersionsListEntry, error) {
	var all []smtypes.SecretVersionsListEntry
	in := &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(id), IncludeDeprecated: aws.Bool(true)}
	for {
		out, err := o.SM.ListSecretVersionIds(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("%s %s: secretsmanager.ListSecretVersionIds: %w", op, id, err)
		}
		all = append(all, out.Versions...)
		if aws.ToString(out.NextToken) == "" {
			return all, nil
		}
		in.NextToken = out.NextToken
	}
}

// read reads and parses the value of a version (by stage when stage is
// set, and by id when version is set). found is false when it has no value.
func (o *Operator) read(ctx context.Context, op, id, stage, version string) (cred providers.Credential, found bool, err error) {
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)}
	if stage != "" {
		in.VersionStage = aws.String(stage)
	}
	if version != "" {
		in.VersionId = aws.String(version)
	}
	if stage == "" {
		stage = "version " + version
	}
	out, err := o.SM.GetSecretValue(ctx, in)
	if err != nil {
		var nf *smtypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			return providers.Credential{}, false, nil
		}
		return providers.Credential{}, false, fmt.Errorf("%s %s: secretsmanager.GetSecretValue(%s): %w", op, id, stage, err)
	}
	if out.SecretString == nil {
		return providers.Credential{}, false, fmt.Errorf("%s %s: the %s value is binary, not keyrotor's JSON", op, id, stage)
	}
	cred, err = providers.ParseSecret(*out.SecretString)
	if err != nil {
		return providers.Credential{}, false, fmt.Errorf("%s %s: the %s value: %w", op, id, stage, err)
	}
	// The identity the providers check bindings against comes from AWS's
	// answer, never from the value; a zero one is refused by them.
	cred.Secret, _ = keyrotor.ParseARN(aws.ToString(out.ARN))
	return cred, true, nil
}

// readCurrent reads AWSCURRENT; a secret without one is refused.
func (o *Operator) readCurrent(ctx context.Context, op string, s *secret) (providers.Credential, error) {
	cred, found, err := o.read(ctx, op, s.id, rotation.Current, "")
	if errors.Is(err, providers.ErrNoProvider) {
		// Nothing was changed, and nothing keyrotor does applies.
		return providers.Credential{}, refused(op, s.id, "not managed by keyrotor (no keyrotor:managed tag, and its value has no \"provider\" field)")
	}
	if err != nil {
		return providers.Credential{}, err
	}
	if !found {
		return providers.Credential{}, refused(op, s.id, "the secret has no AWSCURRENT value")
	}
	return cred, nil
}

// KeyState is what the vendor says about a key.
type KeyState string

// Key states.
const (
	KeyLive    KeyState = "live"
	KeyRevoked KeyState = "revoked"
)

// keyState asks the vendor whether key keyID (whose value is cred.Key, when
// known) is still live, without using the key where it can: a key's last use
// (NotFound once revoked), else the owner's key list, else Verify with the
// key itself. Using an old key would count as use and make the revoker
// defer its revocation.
func keyState(ctx context.Context, p providers.Provider, owner providers.Credential, keyID string, cred providers.Credential) (KeyState, error) {
	if lu, ok := p.(providers.LastUseReporter); ok && keyID != "" {
		_, err := lu.LastUsed(ctx, owner, keyID)
		switch {
		case err == nil:
			return KeyLive, nil
		case providers.IsKind(err, providers.NotFound):
			return KeyRevoked, nil
		}
		return "", err
	}
	if l, ok := p.(providers.Lister); ok && keyID != "" {
		keys, err := l.ListKeys(ctx, owner, "")
		if err != nil {
			return "", err
		}
		for _, k := range keys {
			if k.ID == keyID {
				return KeyLive, nil
			}
		}
		return KeyRevoked, nil
	}
	if cred.Key == "" {
		return "", errors.New("the vendor cannot be asked about a key without its value")
	}
	err := p.Verify(ctx, cred)
	switch {
	case err == nil:
		return KeyLive, nil
	case providers.IsKind(err, providers.Permission), providers.IsKind(err, providers.NotFound):
		return KeyRevoked, nil
	}
	return "", err
}

func has(stages []string, label string) bool {
	for _, s := range stages {
		if s == label {
			return true
		}
	}
	return false
}
