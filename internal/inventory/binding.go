package inventory

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/providers"
)

// Bindings (keyrotor.TagSecret, keyrotor.TagAdminFor) say which principals a
// secret may reach; the rotation functions and the revoker refuse a secret
// whose targets are not bound to it. Existing users and admin secrets carry
// no binding yet after an upgrade, so `keyrotor status` and `inventory
// validate` list what is missing before a rotation fails on it, each with
// the command that adds it. `inventory apply` writes an IAM user's binding
// only when the inventory names the user (iam_user); it never writes an
// admin secret's keyrotor:admin-for, which widens what a management
// credential may be used for: that is for its owner to decide.

// IAM is the IAM call the binding checks make.
type IAM interface {
	ListUserTags(ctx context.Context, in *iam.ListUserTagsInput, optFns ...func(*iam.Options)) (*iam.ListUserTagsOutput, error)
}

// Describer is the Secrets Manager call the binding checks make (on admin
// secrets).
type Describer interface {
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
}

// Secret value fields that name a binding's target.
const (
	FieldIAMUser = "user_name" // providers/iam.FieldUserName
	iamProvider  = "iam"
)

// MissingBinding is a binding a secret needs and lacks.
type MissingBinding struct {
	Secret string // the managed secret's name
	Target string // the IAM user or the admin secret
	// Problem says what is missing; Fix is the command that adds it ("" when
	// no command can: the target does not exist).
	Problem string
	Fix     string
}

func (m MissingBinding) String() string {
	if m.Fix == "" {
		return m.Problem
	}
	return m.Problem + "; bind it with: " + m.Fix
}

// CheckBindings returns the bindings the secret lacks: desc is its
// DescribeSecret output (ARN, Name), cred its AWSCURRENT value. An IAM
// secret's user must carry keyrotor:secret = the secret's ARN; an admin
// secret named by admin_secret_id must carry keyrotor:admin-for patterns that
// match the secret's name. A call that fails is an error (the binding is not
// known, not missing); iamc nil is an error for an IAM secret.
func CheckBindings(ctx context.Context, sm Describer, iamc IAM, desc *secretsmanager.DescribeSecretOutput, cred providers.Credential) ([]MissingBinding, error) {
	arn, name := aws.ToString(desc.ARN), aws.ToString(desc.Name)
	var out []MissingBinding
	if user := cred.Attr(FieldIAMUser); cred.Provider == iamProvider && user != "" {
		if iamc == nil {
			return nil, fmt.Errorf("check the binding of IAM user %s to %s: no IAM client", user, name)
		}
		bound, found, err := UserBinding(ctx, iamc, user)
		switch {
		case err != nil:
			return nil, fmt.Errorf("check the binding of IAM user %s to %s: %w", user, name, err)
		case !found:
			out = append(out, MissingBinding{Secret: name, Target: user, Problem: fmt.Sprintf("IAM user %s named by user_name does not exist", user)})
		case bound == "":
			out = append(out, MissingBinding{Secret: name, Target: user,
				Problem: fmt.Sprintf("IAM user %s carries no tag %s: rotations of this secret are refused", user, keyrotor.TagSecret),
				Fix:     TagUserCommand(user, arn)})
		case bound != arn:
			out = append(out, MissingBinding{Secret: name, Target: user,
				Problem: fmt.Sprintf("IAM user %s is bound to another secret (%s=%s): rotations of this secret are refused; move the binding only if this secret should own the user", user, keyrotor.TagSecret, bound),
				Fix:     TagUserCommand(user, arn)})
		}
	}
	if admin := cred.Attr(providers.FieldAdminSecretID); admin != "" {
		d, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(admin)})
		var nf *smtypes.ResourceNotFoundException
		switch {
		case errors.As(err, &nf):
			out = append(out, MissingBinding{Secret: name, Target: admin, Problem: fmt.Sprintf("admin secret %s named by admin_secret_id does not exist", admin)})
		case err != nil:
			return nil, fmt.Errorf("check the binding of admin secret %s to %s: secretsmanager.DescribeSecret: %w", admin, name, err)
		default:
			patterns, tagged := "", false
			for _, t := range d.Tags {
				if aws.ToString(t.Key) == keyrotor.TagAdminFor {
					patterns, tagged = aws.ToString(t.Value), true
				}
			}
			if !keyrotor.MatchAdminFor(patterns, name) {
				what := "carries no tag " + keyrotor.TagAdminFor
				if tagged {
					what = fmt.Sprintf("has %s=%q, which does not match %s", keyrotor.TagAdminFor, patterns, name)
				}
				out = append(out, MissingBinding{Secret: name, Target: admin,
					Problem: fmt.Sprintf("admin secret %s %s: rotations of this secret are refused", admin, what),
					Fix:     TagAdminForCommand(admin, patterns, name)})
			}
		}
	}
	return out, nil
}

// UserBinding returns the value of the user's keyrotor:secret tag ("" when
// it has none); found is false when the user does not exist.
func UserBinding(ctx context.Context, iamc IAM, user string) (bound string, found bool, err error) {
	in := &iam.ListUserTagsInput{UserName: aws.String(user)}
	for {
		out, err := iamc.ListUserTags(ctx, in)
		if err != nil {
			var nse *iamtypes.NoSuchEntityException
			if errors.As(err, &nse) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("iam.ListUserTags(%s): %w", user, err)
		}
		for _, t := range out.Tags {
			if aws.ToString(t.Key) == keyrotor.TagSecret {
				return aws.ToString(t.Value), true, nil
			}
		}
		if !out.IsTruncated || aws.ToString(out.Marker) == "" {
			return "", true, nil
		}
		in.Marker = out.Marker
	}
}

// TagUserCommand is the AWS CLI command that binds an IAM user to a secret.
func TagUserCommand(user, secretARN string) string {
	return fmt.Sprintf("aws iam tag-user --user-name %s --tags %s", ShellQuote(user), ShellQuote("Key="+keyrotor.TagSecret+",Value="+secretARN))
}

// TagAdminForCommand is the AWS CLI command that lets the secret name use the
// admin secret, keeping the patterns it has. Several patterns hold commas,
// which the CLI's shorthand cannot carry: then the tag is given as JSON.
func TagAdminForCommand(admin, patterns, name string) string {
	value := name
	if p := strings.TrimSpace(patterns); p != "" {
		value = p + "," + name
	}
	tags := "Key=" + keyrotor.TagAdminFor + ",Value=" + value
	if strings.Contains(value, ",") {
		tags = fmt.Sprintf(`[{"Key":%q,"Value":%q}]`, keyrotor.TagAdminFor, value)
	}
	return fmt.Sprintf("aws secretsmanager tag-resource --secret-id %s --tags %s", ShellQuote(admin), ShellQuote(tags))
}

// ShellQuote returns s as one POSIX shell word: as it is when it holds only
// characters no shell treats specially, else in single quotes. Names in the
// commands keyrotor prints come from secret values, which are input: a
// pasted command must not run anything else.
func ShellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/_+=.,@:%-", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// CheckAllBindings lists, as issues with each entry's line, the bindings the
// entries' secrets lack (what `inventory validate` reports): described is
// what Check read. A binding the entry's iam_user names is marked as one
// apply writes.
func CheckAllBindings(ctx context.Context, sm Describer, iamc IAM, file string, entries []Entry, described Described) error {
	var issues []Issue
	for _, e := range entries {
		sec, ok := described[e.SecretID]
		if !ok {
			continue
		}
		missing, err := CheckBindings(ctx, sm, iamc, sec.Desc, sec.Current)
		if err != nil {
			return err
		}
		for _, m := range missing {
			msg := fmt.Sprintf("secret %q: missing binding: %s", e.SecretID, m)
			if e.IAMUser != "" && m.Target == e.IAMUser {
				msg += " (or `keyrotor inventory apply`, which binds iam_user)"
			}
			issues = append(issues, Issue{e.Line, msg})
		}
	}
	if len(issues) > 0 {
		return &Error{File: file, Issues: issues}
	}
	return nil
}
