package iam

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/providers"
)

// Name is the provider id: the "provider" field of every IAM secret.
const Name = "iam"

// FieldUserName is the secret field naming the IAM user whose access key the
// secret holds.
const FieldUserName = "user_name"

// IAM is the subset of the IAM API the provider calls; *iam.Client
// implements it.
type IAM interface {
	CreateAccessKey(ctx context.Context, in *awsiam.CreateAccessKeyInput, optFns ...func(*awsiam.Options)) (*awsiam.CreateAccessKeyOutput, error)
	DeleteAccessKey(ctx context.Context, in *awsiam.DeleteAccessKeyInput, optFns ...func(*awsiam.Options)) (*awsiam.DeleteAccessKeyOutput, error)
	ListAccessKeys(ctx context.Context, in *awsiam.ListAccessKeysInput, optFns ...func(*awsiam.Options)) (*awsiam.ListAccessKeysOutput, error)
	GetAccessKeyLastUsed(ctx context.Context, in *awsiam.GetAccessKeyLastUsedInput, optFns ...func(*awsiam.Options)) (*awsiam.GetAccessKeyLastUsedOutput, error)
	ListUserTags(ctx context.Context, in *awsiam.ListUserTagsInput, optFns ...func(*awsiam.Options)) (*awsiam.ListUserTagsOutput, error)
}

// Options tune New. A nil *Options means the defaults.
type Options struct {
	// IAM replaces the IAM client built from the configuration (tests).
	IAM IAM
}

// Provider rotates IAM user access keys. It is safe for concurrent use.
type Provider struct {
	iam IAM
	sts *sts.Client
}

var (
	_ providers.Provider        = (*Provider)(nil)
	_ providers.Lister          = (*Provider)(nil)
	_ providers.LastUseReporter = (*Provider)(nil)
)

// New returns a provider that manages keys with cfg's credentials (the
// rotation function's role) and verifies new keys with STS at cfg's endpoint
// and region.
func New(cfg aws.Config, opts *Options) *Provider {
	p := &Provider{sts: sts.NewFromConfig(cfg)}
	if opts != nil && opts.IAM != nil {
		p.iam = opts.IAM
	} else {
		p.iam = awsiam.NewFromConfig(cfg)
	}
	return p
}

// Name returns Name.
func (p *Provider) Name() string { return Name }

// Create creates an access key for the owner's IAM user. IAM keys have no
// names, so req.KeyName is ignored. When the user already has two keys it
// returns a Conflict error.
func (p *Provider) Create(ctx context.Context, req providers.CreateRequest) (providers.Credential, error) {
	const op = "iam.CreateAccessKey"
	user, err := p.boundUser(ctx, op, req.Owner)
	if err != nil {
		return providers.Credential{}, err
	}
	out, err := p.iam.CreateAccessKey(ctx, &awsiam.CreateAccessKeyInput{UserName: aws.String(user)})
	if err != nil {
		e := classify(op, fmt.Errorf("create access key for user %s: %w", user, err))
		if e.Kind == providers.Conflict {
			e.Err = fmt.Errorf("user %s already has 2 access keys, the IAM limit; the previous key is probably still in its grace period awaiting revocation: %w", user, err)
		}
		return providers.Credential{}, e
	}
	k := out.AccessKey
	if k == nil || aws.ToString(k.AccessKeyId) == "" || aws.ToString(k.SecretAccessKey) == "" {
		return providers.Credential{}, providers.E(op, providers.Other, fmt.Errorf("create access key for user %s: the response has no key", user))
	}
	created := aws.ToTime(k.CreateDate)
	if created.IsZero() {
		created = time.Now()
	}
	return providers.Credential{
		Provider:  p.Name(),
		Key:       aws.ToString(k.SecretAccessKey),
		KeyID:     aws.ToString(k.AccessKeyId),
		CreatedAt: created.UTC(),
		Attrs:     copyAttrs(req.Owner),
	}, nil
}

// Verify calls sts:GetCallerIdentity signed with cred's key alone and checks
// that the key belongs to the secret's user. A refused key is a Permission
// error; a new key may take seconds to propagate, and the caller retries.
// A key of another identity is Invalid.
func (p *Provider) Verify(ctx context.Context, cred providers.Credential) error {
	const op = "sts.GetCallerIdentity"
	user, err := cred.RequireAttr(op, FieldUserName)
	if err != nil {
		return err
	}
	if cred.KeyID == "" || cred.Key == "" {
		return providers.E(op, providers.Invalid, errors.New("the secret has no key or key_id"))
	}
	creds := credentials.NewStaticCredentialsProvider(cred.KeyID, cred.Key, "")
	out, err := p.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}, func(o *sts.Options) { o.Credentials = creds })
	if err != nil {
		return classify(op, redact(fmt.Errorf("verify access key %s of user %s: %w", cred.KeyID, user, err), cred.Key))
	}
	if got := aws.ToString(out.Arn); !arnNamesUser(got, user) {
		return providers.E(op, providers.Invalid, fmt.Errorf("access key %s belongs to %s, not to IAM user %s", cred.KeyID, got, user))
	}
	return nil
}

// Revoke deletes access key keyID of the owner's user. A key that is already
// gone is success.
func (p *Provider) Revoke(ctx context.Context, owner providers.Credential, keyID string) error {
	const op = "iam.DeleteAccessKey"
	user, err := p.boundUser(ctx, op, owner)
	if err != nil {
		return err
	}
	_, err = p.iam.DeleteAccessKey(ctx, &awsiam.DeleteAccessKeyInput{UserName: aws.String(user), AccessKeyId: aws.String(keyID)})
	if err != nil {
		e := classify(op, fmt.Errorf("delete access key %s of user %s: %w", keyID, user, err))
		if e.Kind == providers.NotFound {
			return nil
		}
		return e
	}
	return nil
}

// ListKeys returns every access key of the owner's user with its creation
// time, whatever namePrefix says: IAM keys have no names. Which of them
// keyrotor minted is for the caller to prove (package rotation compares
// creation times with its rotation's).
func (p *Provider) ListKeys(ctx context.Context, owner providers.Credential, namePrefix string) ([]providers.KeyInfo, error) {
	const op = "iam.ListAccessKeys"
	user, err := p.boundUser(ctx, op, owner)
	if err != nil {
		return nil, err
	}
	var keys []providers.KeyInfo
	pages := awsiam.NewListAccessKeysPaginator(p.iam, &awsiam.ListAccessKeysInput{UserName: aws.String(user)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, classify(op, fmt.Errorf("list access keys of user %s: %w", user, err))
		}
		for _, k := range page.AccessKeyMetadata {
			keys = append(keys, providers.KeyInfo{ID: aws.ToString(k.AccessKeyId), CreatedAt: aws.ToTime(k.CreateDate)})
		}
	}
	return keys, nil
}

// LastUsed returns when access key keyID was last used, or the zero time if
// it never was. A key that does not exist, or that belongs to another user
// (real IAM may still answer for a deleted key), is NotFound.
func (p *Provider) LastUsed(ctx context.Context, owner providers.Credential, keyID string) (time.Time, error) {
	const op = "iam.GetAccessKeyLastUsed"
	user, err := p.boundUser(ctx, op, owner)
	if err != nil {
		return time.Time{}, err
	}
	out, err := p.iam.GetAccessKeyLastUsed(ctx, &awsiam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String(keyID)})
	if err != nil {
		return time.Time{}, classify(op, fmt.Errorf("last use of access key %s of user %s: %w", keyID, user, err))
	}
	if got := aws.ToString(out.UserName); got != user {
		return time.Time{}, providers.E(op, providers.NotFound, fmt.Errorf("access key %s is not a key of user %s", keyID, user))
	}
	if out.AccessKeyLastUsed == nil || out.AccessKeyLastUsed.LastUsedDate == nil {
		return time.Time{}, nil
	}
	return out.AccessKeyLastUsed.LastUsedDate.UTC(), nil
}

// boundUser returns the IAM user the owner names, once the user is proven to
// be bound to the owner's secret: it carries the tag keyrotor:secret whose
// value is exactly the secret's ARN. The secret's value names the user, but
// anyone who may write a managed secret could name any user of the account
// (Administrator included); only who may tag the user can bind it. It is
// checked before every call that mints, lists, reads or revokes keys, so a
// binding removed takes effect at once. A user that does not exist is
// NotFound (it has no keys to revoke).
func (p *Provider) boundUser(ctx context.Context, op string, owner providers.Credential) (string, error) {
	user, err := owner.RequireAttr(op, FieldUserName)
	if err != nil {
		return "", err
	}
	if owner.Secret.Name == "" {
		return "", providers.E(op, providers.Invalid, fmt.Errorf("IAM user %s: %w: the managed secret's identity is unknown", user, providers.ErrUnbound))
	}
	want := owner.Secret.String()
	var got []string
	pages := awsiam.NewListUserTagsPaginator(p.iam, &awsiam.ListUserTagsInput{UserName: aws.String(user)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return "", classify("iam.ListUserTags", fmt.Errorf("read the tags of IAM user %s (for %s): %w", user, op, err))
		}
		for _, t := range page.Tags {
			if aws.ToString(t.Key) != keyrotor.TagSecret {
				continue
			}
			if aws.ToString(t.Value) == want {
				return user, nil
			}
			got = append(got, aws.ToString(t.Value))
		}
	}
	why := "it has no tag " + keyrotor.TagSecret
	if len(got) > 0 {
		why = fmt.Sprintf("its tag %s names %s", keyrotor.TagSecret, strings.Join(got, ", "))
	}
	return "", providers.E(op, providers.Invalid, fmt.Errorf(
		"IAM user %s is %w %s (%s); whoever administers the user binds it: aws iam tag-user --user-name %s --tags Key=%s,Value=%s",
		user, providers.ErrUnbound, want, why, user, keyrotor.TagSecret, want))
}

// arnNamesUser reports whether a is the ARN of IAM user user, with any path.
func arnNamesUser(a, user string) bool {
	parsed, err := arn.Parse(a)
	if err != nil || parsed.Service != "iam" {
		return false
	}
	rest, ok := strings.CutPrefix(parsed.Resource, "user/")
	if !ok {
		return false
	}
	return rest[strings.LastIndexByte(rest, '/')+1:] == user
}

// copyAttrs copies the owner's provider fields into the new key's secret, so
// that the new value still names the user.
func copyAttrs(owner providers.Credential) map[string]json.RawMessage {
	if owner.Attrs == nil {
		return nil
	}
	attrs := make(map[string]json.RawMessage, len(owner.Attrs))
	for k, v := range owner.Attrs {
		attrs[k] = bytes.Clone(v)
	}
	return attrs
}
