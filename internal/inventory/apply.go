package inventory

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/audit"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/rotation"
)

// Tags apply writes besides rotation.TagManaged, rotation.TagGracePeriod,
// audit.TagManual and audit.TagRotationFrequency.
const (
	TagProvider          = "keyrotor:provider"
	TagAPIKey            = "keyrotor:api-key"
	TagEnvironment       = "keyrotor:environment"
	TagCriticality       = "keyrotor:criticality"
	TagUsedBy            = "keyrotor:used-by"
	TagAlertOnFailure    = "keyrotor:alert-on-failure"
	TagRollbackOnFailure = "keyrotor:rollback-on-failure"
)

// DefaultWindow is the longest rotation window apply sets by default.
const DefaultWindow = 3 * time.Hour

// Entry is what one secret should look like: its tags and its rotation.
type Entry struct {
	Line     int // of the schedule, else of the api key
	SecretID string
	Provider Provider
	// Expression is the ScheduleExpression (cron() or rate()); empty for a
	// provider without a key API.
	Expression string
	Window     string // Duration, e.g. "3h"
	// Interval is the longest a key should live (the rotation frequency,
	// else the schedule's longest gap): the key-age reminder.
	Interval time.Duration
	Tags     map[string]string
	// IAMUser is the api key's iam_user: the IAM user apply binds.
	IAMUser string
}

// Entries returns one entry per secret: each schedule (with its api key's
// fields), then each api key without a schedule, rotated at
// rate(rotation_frequency).
func (inv *Inventory) Entries() []Entry {
	var out []Entry
	for _, s := range inv.Schedules {
		e := Entry{Line: s.Line, SecretID: s.Secret, Provider: s.Provider, Interval: s.Cron.MaxGap, Tags: map[string]string{}}
		if k, ok := inv.keyOf(s); ok {
			keyTags(e.Tags, k)
			e.Interval = k.RotationFrequency
			e.IAMUser = k.IAMUser
		}
		e.Tags[rotation.TagGracePeriod] = s.GracePeriod.String()
		e.Tags[TagAlertOnFailure] = strconv.FormatBool(s.AlertOnFailure)
		e.Tags[TagRollbackOnFailure] = strconv.FormatBool(s.RollbackOnFailure)
		window := s.Window
		if window == 0 {
			window = min(DefaultWindow, s.Cron.MinGap, time.Duration(24-s.Cron.LastHour)*time.Hour)
		}
		e.Window = formatInterval(window)
		if s.Provider.KeyAPI {
			e.Expression = s.Cron.Expression()
		}
		out = append(out, e.finish())
	}
	for _, k := range inv.APIKeys {
		if _, scheduled := inv.scheduleOf(k); scheduled {
			continue
		}
		e := Entry{Line: k.Line, SecretID: k.VaultPath, Provider: k.Provider, Interval: k.RotationFrequency, Tags: map[string]string{}, IAMUser: k.IAMUser}
		keyTags(e.Tags, k)
		if k.Provider.KeyAPI {
			// Validated: a whole number of hours or days, at least 4 hours.
			e.Expression, _ = rateExpression(k.RotationFrequency)
			e.Window = formatInterval(min(DefaultWindow, k.RotationFrequency))
		}
		out = append(out, e.finish())
	}
	return out
}

func keyTags(tags map[string]string, k APIKey) {
	tags[TagAPIKey] = k.Name
	tags[TagEnvironment] = k.Environment
	if k.Criticality != "" {
		tags[TagCriticality] = k.Criticality
	}
	if len(k.UsedBy) > 0 {
		tags[TagUsedBy] = strings.Join(k.UsedBy, " ")
	}
}

func (e Entry) finish() Entry {
	e.Tags[rotation.TagManaged] = "true"
	e.Tags[TagProvider] = e.Provider.Name
	if e.Interval > 0 {
		e.Tags[audit.TagRotationFrequency] = formatInterval(e.Interval)
	}
	if !e.Provider.KeyAPI {
		e.Tags[audit.TagManual] = "true"
		e.Window = ""
	}
	return e
}

// SecretsManager is what Check, Plan and Apply call.
type SecretsManager interface {
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	TagResource(ctx context.Context, in *secretsmanager.TagResourceInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.TagResourceOutput, error)
	RotateSecret(ctx context.Context, in *secretsmanager.RotateSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.RotateSecretOutput, error)
}

// Described holds what Check read of each secret, by the entry's
// SecretID, for Plan.
type Described map[string]Secret

// Secret is a secret as Check read it: its DescribeSecret output and its
// AWSCURRENT value.
type Secret struct {
	Desc    *secretsmanager.DescribeSecretOutput
	Current providers.Credential
}

// Check runs the checks that need AWS: every secret exists, is not
// scheduled for deletion, and holds a value naming the entry's provider.
// It returns what it described, for Plan. Problems come back as an *Error
// with each entry's line, together with what was described of the other
// entries; a failing call (permission denied, endpoint down) as a plain
// error.
func Check(ctx context.Context, sm SecretsManager, file string, entries []Entry) (Described, error) {
	var issues []Issue
	described := Described{}
	for _, e := range entries {
		desc, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(e.SecretID)})
		var nf *smtypes.ResourceNotFoundException
		switch {
		case errors.As(err, &nf):
			issues = append(issues, Issue{e.Line, fmt.Sprintf("secret %q does not exist in Secrets Manager", e.SecretID)})
			continue
		case err != nil:
			return nil, fmt.Errorf("check secret %s: secretsmanager.DescribeSecret: %w", e.SecretID, err)
		case desc.DeletedDate != nil:
			issues = append(issues, Issue{e.Line, fmt.Sprintf("secret %q is scheduled for deletion", e.SecretID)})
			continue
		}
		out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(e.SecretID), VersionStage: aws.String(rotation.Current)})
		switch {
		case errors.As(err, &nf):
			issues = append(issues, Issue{e.Line, fmt.Sprintf("secret %q has no AWSCURRENT value; store at least {\"provider\":%q} and its provider fields", e.SecretID, e.Provider.Name)})
			continue
		case err != nil:
			return nil, fmt.Errorf("check secret %s: secretsmanager.GetSecretValue: %w", e.SecretID, err)
		}
		cred, err := providers.ParseSecret(aws.ToString(out.SecretString))
		switch {
		case err != nil:
			issues = append(issues, Issue{e.Line, fmt.Sprintf("secret %q: %v", e.SecretID, err)})
		case cred.Provider != e.Provider.Name:
			issues = append(issues, Issue{e.Line, fmt.Sprintf("secret %q holds a %q key, but the inventory says %q", e.SecretID, cred.Provider, e.Provider.Name)})
		default:
			described[e.SecretID] = Secret{Desc: desc, Current: cred}
		}
	}
	if len(issues) > 0 {
		return described, &Error{File: file, Issues: issues}
	}
	return described, nil
}

// FunctionARNs returns the ARN of the rotation function of a provider.
type FunctionARNs func(provider string) (string, error)

// Rotation is the rotation configuration apply sets.
type Rotation struct {
	FunctionARN string
	Expression  string
	Window      string
}

// Change is what apply would do to one secret.
type Change struct {
	Entry Entry
	// SetTags are the tags to add or change (none are removed).
	SetTags map[string]string
	// Rotation is the rotation to set, nil when it is already set.
	Rotation *Rotation
	// BindUser is the IAM user to tag keyrotor:secret = the secret's ARN
	// ("" when bound already, or not named by the inventory).
	BindUser string
	// Refused says why apply must not touch this secret (apply then changes
	// nothing at all): the secret's value names another IAM user than
	// iam_user, or the user is bound to another secret.
	Refused string
	// Notes explain the entry to the operator: missing bindings apply does
	// not write, with the command that adds each.
	Notes []string
	// pending are the versions labelled AWSPENDING but not AWSCURRENT when
	// planned: a rotation in progress, which Apply must not disturb.
	pending []string
	arn     *string // the secret's ARN, BindUser's tag value
}

// Empty reports whether the change does nothing.
func (c Change) Empty() bool { return len(c.SetTags) == 0 && c.Rotation == nil && c.BindUser == "" }

// Plan compares the entries with the secrets. It expects Check to have
// passed, and uses what Check read; a secret missing from described is
// described and read now. iamc reads IAM users' binding tags.
func Plan(ctx context.Context, sm SecretsManager, iamc IAM, entries []Entry, described Described, arns FunctionARNs) ([]Change, error) {
	var out []Change
	for _, e := range entries {
		sec, ok := described[e.SecretID]
		if !ok {
			var err error
			if sec, err = read(ctx, sm, e.SecretID); err != nil {
				return nil, fmt.Errorf("plan secret %s: %w", e.SecretID, err)
			}
		}
		desc := sec.Desc
		have := map[string]string{}
		for _, t := range desc.Tags {
			have[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
		c := Change{Entry: e, SetTags: map[string]string{}, pending: pendingVersions(desc), arn: desc.ARN}
		want := maps.Clone(e.Tags)
		if e.Expression == "" {
			c.Notes = append(c.Notes, fmt.Sprintf("%s has no key API: no rotation function; the schedule is a key-age reminder (rotate with `keyrotor import`)", e.Provider.Name))
		} else {
			arn, err := arns(e.Provider.Name)
			if err != nil {
				return nil, fmt.Errorf("plan secret %s: %w", e.SecretID, err)
			}
			r := Rotation{FunctionARN: arn, Expression: e.Expression, Window: e.Window}
			if !rotationSet(desc, r) {
				c.Rotation = &r
			}
		}
		for k, v := range want {
			if old, ok := have[k]; !ok || old != v {
				c.SetTags[k] = v
			}
		}
		if err := planBindings(ctx, sm, iamc, e, sec, &c); err != nil {
			return nil, fmt.Errorf("plan secret %s: %w", e.SecretID, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// planBindings plans the IAM user binding the inventory names, or refuses
// it, and notes the bindings apply does not write.
func planBindings(ctx context.Context, sm SecretsManager, iamc IAM, e Entry, sec Secret, c *Change) error {
	arn := aws.ToString(sec.Desc.ARN)
	if e.IAMUser != "" {
		if iamc == nil {
			return fmt.Errorf("bind IAM user %s: no IAM client", e.IAMUser)
		}
		named := sec.Current.Attr(FieldIAMUser)
		bound, found, err := UserBinding(ctx, iamc, e.IAMUser)
		switch {
		case named != "" && named != e.IAMUser:
			c.Refused = fmt.Sprintf("the secret's value names IAM user %s, but the inventory's iam_user is %s: binding %s would not let the secret rotate %s, and whoever wrote the value chose the user; fix the value or the inventory", named, e.IAMUser, e.IAMUser, named)
		case err != nil:
			return fmt.Errorf("bind IAM user %s: %w", e.IAMUser, err)
		case !found:
			c.Refused = fmt.Sprintf("IAM user %s (iam_user) does not exist", e.IAMUser)
		case bound == "":
			c.BindUser = e.IAMUser
		case bound != arn:
			c.Refused = fmt.Sprintf("IAM user %s is bound to another secret (%s=%s); if it should move to this one, remove that tag first (aws iam untag-user --user-name %s --tag-keys %s)", e.IAMUser, keyrotor.TagSecret, bound, ShellQuote(e.IAMUser), keyrotor.TagSecret)
		}
		if named == "" && c.Refused == "" {
			c.Notes = append(c.Notes, fmt.Sprintf("the secret's value names no user_name: add \"user_name\": %q to it", e.IAMUser))
		}
	}
	missing, err := CheckBindings(ctx, sm, iamc, sec.Desc, sec.Current)
	if err != nil {
		return err
	}
	for _, m := range missing {
		if e.IAMUser != "" && m.Target == e.IAMUser {
			continue // planned or refused above
		}
		c.Notes = append(c.Notes, "missing binding, not written by apply: "+m.String())
	}
	return nil
}

// read describes a secret and reads its AWSCURRENT value.
func read(ctx context.Context, sm SecretsManager, id string) (Secret, error) {
	desc, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if err != nil {
		return Secret{}, fmt.Errorf("secretsmanager.DescribeSecret: %w", err)
	}
	out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id), VersionStage: aws.String(rotation.Current)})
	if err != nil {
		return Secret{}, fmt.Errorf("secretsmanager.GetSecretValue: %w", err)
	}
	cred, err := providers.ParseSecret(aws.ToString(out.SecretString))
	if err != nil {
		return Secret{}, fmt.Errorf("the AWSCURRENT value: %w", err)
	}
	return Secret{Desc: desc, Current: cred}, nil
}

// RefusedError is apply refusing every change because some cannot be made
// safely; nothing was changed.
type RefusedError struct {
	Refusals []string // "SECRET: why"
}

func (e *RefusedError) Error() string {
	return "inventory apply refused, nothing was changed:\n  " + strings.Join(e.Refusals, "\n  ")
}

// Refusals returns the refused changes as a *RefusedError, or nil.
func Refusals(changes []Change) error {
	var r []string
	for _, c := range changes {
		if c.Refused != "" {
			r = append(r, c.Entry.SecretID+": "+c.Refused)
		}
	}
	if len(r) == 0 {
		return nil
	}
	return &RefusedError{Refusals: r}
}

// IAMTagger is what apply calls in IAM: it reads users' binding tags and
// tags the users the inventory names.
type IAMTagger interface {
	IAM
	TagUser(ctx context.Context, in *iam.TagUserInput, optFns ...func(*iam.Options)) (*iam.TagUserOutput, error)
}

func rotationSet(desc *secretsmanager.DescribeSecretOutput, r Rotation) bool {
	rules := desc.RotationRules
	return aws.ToBool(desc.RotationEnabled) && aws.ToString(desc.RotationLambdaARN) == r.FunctionARN && rules != nil &&
		aws.ToString(rules.ScheduleExpression) == r.Expression && aws.ToString(rules.Duration) == r.Window
}

// Apply makes the changes: tags first (so that the grace period is in place
// before any rotation), then the IAM user's binding, then the rotation, set
// with RotateImmediately=false so that nothing rotates now. If any change is
// refused it changes nothing and returns a *RefusedError. Otherwise it goes
// on past a failing secret and returns every failure joined. progress is
// called after each change.
func Apply(ctx context.Context, sm SecretsManager, iamc IAMTagger, changes []Change, progress func(done, total int, c Change, err error)) error {
	if err := Refusals(changes); err != nil {
		return err
	}
	var errs []error
	for i, c := range changes {
		err := applyOne(ctx, sm, iamc, c)
		if err != nil {
			errs = append(errs, err)
		}
		if progress != nil {
			progress(i+1, len(changes), c, err)
		}
	}
	return errors.Join(errs...)
}

func applyOne(ctx context.Context, sm SecretsManager, iamc IAMTagger, c Change) error {
	id := c.Entry.SecretID
	if err := tag(ctx, sm, id, c.SetTags); err != nil {
		return err
	}
	if u := c.BindUser; u != "" {
		arn := aws.ToString(c.arn)
		if iamc == nil {
			return fmt.Errorf("apply to secret %s: bind IAM user %s: no IAM client; bind it with: %s", id, u, TagUserCommand(u, arn))
		}
		if _, err := iamc.TagUser(ctx, &iam.TagUserInput{UserName: aws.String(u), Tags: []iamtypes.Tag{{Key: aws.String(keyrotor.TagSecret), Value: aws.String(arn)}}}); err != nil {
			return fmt.Errorf("apply to secret %s: iam.TagUser(%s): %w; bind it with: %s", id, u, err, TagUserCommand(u, arn))
		}
	}
	if r := c.Rotation; r != nil {
		if len(c.pending) > 0 {
			return fmt.Errorf("apply to secret %s: a rotation is in progress or stuck (AWSPENDING on version %s); apply again once it is done, "+
				"or, if it failed (`keyrotor status %s` says stuck), clear it with `keyrotor unstick %s` first", id, c.pending[0], id, id)
		}
		_, err := sm.RotateSecret(ctx, &secretsmanager.RotateSecretInput{
			SecretId:          aws.String(id),
			RotationLambdaARN: aws.String(r.FunctionARN),
			RotationRules:     &smtypes.RotationRulesType{ScheduleExpression: aws.String(r.Expression), Duration: aws.String(r.Window)},
			RotateImmediately: aws.Bool(false),
		})
		if err != nil {
			return fmt.Errorf("apply to secret %s: secretsmanager.RotateSecret (set the schedule): %w", id, err)
		}
	}
	return nil
}

func tag(ctx context.Context, sm SecretsManager, id string, set map[string]string) error {
	if len(set) == 0 {
		return nil
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	tags := make([]smtypes.Tag, 0, len(keys))
	for _, k := range keys {
		tags = append(tags, smtypes.Tag{Key: aws.String(k), Value: aws.String(set[k])})
	}
	if _, err := sm.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String(id), Tags: tags}); err != nil {
		return fmt.Errorf("apply to secret %s: secretsmanager.TagResource: %w", id, err)
	}
	return nil
}

// NewToken returns a fresh ClientRequestToken: a random UUID (version 4).
func NewToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// pendingVersions returns the versions labelled AWSPENDING but not
// AWSCURRENT: a rotation in progress.
func pendingVersions(desc *secretsmanager.DescribeSecretOutput) []string {
	var out []string
	for v, stages := range desc.VersionIdsToStages {
		if slices.Contains(stages, rotation.Pending) && !slices.Contains(stages, rotation.Current) {
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}
