package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/metrics"
	"github.com/keyrotor/keyrotor/notify"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/revocation"
)

// Step is a step of the rotation protocol, as Secrets Manager spells it.
type Step string

// The four steps.
const (
	CreateSecret Step = "createSecret"
	SetSecret    Step = "setSecret"
	TestSecret   Step = "testSecret"
	FinishSecret Step = "finishSecret"
)

// Staging labels.
const (
	Current  = "AWSCURRENT"
	Pending  = "AWSPENDING"
	Previous = "AWSPREVIOUS"
)

// Tags read from the secret.
const (
	// TagGracePeriod overrides the grace period (a Go duration) for one secret.
	TagGracePeriod = "keyrotor:grace-period"
	// TagEmergencyToken marks the rotation whose ClientRequestToken it holds
	// as an emergency: grace 0, and the revoker does not wait for use.
	TagEmergencyToken = "keyrotor:emergency-token"
	// TagManaged marks the secrets keyrotor manages (auditor, CLI).
	TagManaged = "keyrotor:managed"
)

// Metrics the engine publishes besides step outcomes (dimension Provider).
const (
	// MetricUnownedKeys counts keys at the vendor that reconcile cannot
	// prove are this secret's, and therefore never revokes.
	MetricUnownedKeys = "UnownedKeys"
	// MetricAbandonedKeys counts keys of this secret that only unlabelled
	// versions hold, whose revocation reconcile queued.
	MetricAbandonedKeys = "AbandonedKeys"
)

// DefaultGracePeriod is the grace period when neither the tag nor GRACE_PERIOD
// sets one. It is twice the 1 h default refresh of the readers most
// applications use (AWS's caching libraries for Python, Java, .NET and Go,
// External Secrets Operator), so that an application on those defaults has
// re-read the key, with margin for a deploy or a sync lag, before the old one
// is revoked (docs/client.md).
const DefaultGracePeriod = 2 * time.Hour

// SecretsManager is the subset of the Secrets Manager API the engine calls.
type SecretsManager interface {
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
	UpdateSecretVersionStage(ctx context.Context, in *secretsmanager.UpdateSecretVersionStageInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error)
	// ListSecretVersionIds is called by reconcile only, and only when the
	// vendor lists keys of this secret that no label holds.
	ListSecretVersionIds(ctx context.Context, in *secretsmanager.ListSecretVersionIdsInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretVersionIdsOutput, error)
}

// RevocationQueue schedules the revocation of an old key.
type RevocationQueue interface {
	Send(ctx context.Context, m revocation.Message, delay time.Duration) error
}

// Events publishes what the rotation did for whoever may act on it (package
// notify's schema). Publish never fails: the engine goes on whatever
// happens to the event.
type Events interface {
	Publish(ctx context.Context, e notify.Event)
}

// Options tune a Rotator. The zero value is usable.
type Options struct {
	// GracePeriod is the default grace period (env GRACE_PERIOD); a secret's
	// keyrotor:grace-period tag overrides it. Used as is: 0 means revoke the
	// old key at once. Functions default it to DefaultGracePeriod.
	GracePeriod time.Duration
	// TestTimeout bounds the time testSecret retries a new key that does not
	// work yet (propagation) and waits for it to settle. Default 60 s;
	// never past the Lambda deadline.
	TestTimeout time.Duration
	// Settle overrides SettleRules (tests); nil means SettleRules.
	Settle map[string]Settle
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Sleep waits between testSecret attempts (default: a timer that stops
	// when ctx ends).
	Sleep func(ctx context.Context, d time.Duration) error
	// Logger receives structured logs (default slog.Default()).
	Logger *slog.Logger
	// Metrics receives EMF lines; nil discards them.
	Metrics *metrics.EMF
	// Events receives the rotation's events (key rotated, step failed,
	// emergency started and finished); nil publishes none.
	Events Events
}

// Rotator runs the four steps for one provider. It keeps no per-secret
// state and is safe for concurrent use.
type Rotator struct {
	sm    SecretsManager
	p     providers.Provider
	queue RevocationQueue
	opts  Options
}

// New returns a Rotator.
func New(sm SecretsManager, p providers.Provider, queue RevocationQueue, opts Options) *Rotator {
	if opts.TestTimeout == 0 {
		opts.TestTimeout = 60 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Settle == nil {
		opts.Settle = SettleRules
	}
	return &Rotator{sm: sm, p: p, queue: queue, opts: opts}
}

// Error is the error of a failed step. It names the secret and the step; Err
// names the operation that failed.
type Error struct {
	SecretID string
	Step     string
	Err      error
}

func (e *Error) Error() string {
	step := e.Step
	if step == "" {
		step = "(no step)"
	}
	return fmt.Sprintf("keyrotor: %s of secret %s: %v", step, e.SecretID, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Handle runs one step of a rotation event. It is the Lambda handler.
func (r *Rotator) Handle(ctx context.Context, e events.SecretsManagerSecretRotationEvent) error {
	start := r.opts.Now()
	// Stop a second before the Lambda deadline, so that a hanging vendor
	// or endpoint ends in an error that names the step, not a timeout.
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-time.Second))
		defer cancel()
	}
	log := r.opts.Logger.With("secret_id", e.SecretID, "step", e.Step, "version", e.ClientRequestToken, "provider", r.p.Name())
	subject := notify.Detail{SecretARN: e.SecretID, Provider: r.p.Name(), NewVersionID: e.ClientRequestToken}
	outcome, err := r.handle(ctx, log, e, &subject)
	r.record(e.Step, outcome, err, r.opts.Now().Sub(start))
	if err != nil {
		kind := providers.KindOf(err)
		level := slog.LevelError
		if kind == providers.Transient {
			level = slog.LevelWarn
		}
		log.Log(ctx, level, "step failed", "kind", kind.String(), "error", err.Error())
		failed := subject
		failed.Step, failed.Kind, failed.Reason = e.Step, kind.String(), err.Error()
		r.publish(ctx, notify.RotationFailed, failed)
		return &Error{SecretID: e.SecretID, Step: e.Step, Err: err}
	}
	log.Info("step done", "outcome", string(outcome))
	return nil
}

// outcome says what a successful step did, for logs and metrics.
type outcome string

const (
	done          outcome = "done"
	alreadyDone   outcome = "already_done"
	alreadyFinish outcome = "already_current"
)

// secret is what every step knows after the checks.
type secret struct {
	id, name, arn, token string
	// identity is parsed from the ARN DescribeSecret returned: key names
	// and bindings derive from it, never from the event's SecretId.
	identity keyrotor.Identity
	versions map[string][]string
	tags     map[string]string
	// unowned are the keys reconcile found at the vendor but cannot prove
	// are this secret's (named in a Conflict at the key limit).
	unowned []string
	// prevKeyID is AWSPREVIOUS's key id once prevRead (previousKeyID).
	prevKeyID string
	prevRead  bool
	grace     time.Duration
	emergency bool
	log       *slog.Logger
}

// handle runs one step; it fills subject with what DescribeSecret said of
// the secret, for the events.
func (r *Rotator) handle(ctx context.Context, log *slog.Logger, e events.SecretsManagerSecretRotationEvent, subject *notify.Detail) (outcome, error) {
	step := Step(e.Step)
	switch step {
	case CreateSecret, SetSecret, TestSecret, FinishSecret:
	default:
		return "", fmt.Errorf("unknown step %q (want createSecret, setSecret, testSecret or finishSecret)", e.Step)
	}
	if e.SecretID == "" {
		return "", errors.New("the event has no SecretId")
	}
	if e.ClientRequestToken == "" {
		return "", errors.New("the event has no ClientRequestToken")
	}
	desc, err := r.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(e.SecretID)})
	if err != nil {
		return "", fmt.Errorf("secretsmanager.DescribeSecret: %w", err)
	}
	if arn := aws.ToString(desc.ARN); arn != "" {
		subject.SecretARN = arn
	}
	subject.SecretName = aws.ToString(desc.Name)
	if desc.RotationEnabled != nil && !*desc.RotationEnabled {
		return "", errors.New("rotation is not enabled for this secret")
	}
	stages, ok := desc.VersionIdsToStages[e.ClientRequestToken]
	if !ok {
		return "", fmt.Errorf("version %s has no stage for rotation", e.ClientRequestToken)
	}
	if has(stages, Current) {
		if step == FinishSecret && has(stages, Pending) {
			// A finishSecret that crashed after the label move: clear
			// AWSPENDING so that the next rotation may start.
			if err := r.removePending(ctx, e.SecretID, e.ClientRequestToken); err != nil {
				return "", err
			}
		}
		if step == FinishSecret {
			// A retried finishSecret: the first may have moved the label
			// and died before it published. At least once; consumers
			// dedupe on new_version_id.
			again := *subject
			_, again.Emergency, _ = r.gracePeriod(desc.Tags, e.ClientRequestToken)
			r.republishRotated(ctx, again, e.ClientRequestToken, desc.VersionIdsToStages)
		}
		log.Info("version is already AWSCURRENT: nothing to do")
		return alreadyFinish, nil
	}
	if !has(stages, Pending) {
		return "", fmt.Errorf("version %s is not AWSPENDING (its stages: %v)", e.ClientRequestToken, stages)
	}
	s := &secret{
		id: e.SecretID, name: aws.ToString(desc.Name), arn: aws.ToString(desc.ARN),
		token: e.ClientRequestToken, versions: desc.VersionIdsToStages, log: log, tags: map[string]string{},
	}
	if s.identity, err = keyrotor.ParseARN(s.arn); err != nil {
		return "", fmt.Errorf("secretsmanager.DescribeSecret answered an ARN keyrotor cannot read, so key names and bindings cannot be derived: %w", err)
	}
	for _, t := range desc.Tags {
		s.tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	if s.grace, s.emergency, err = r.gracePeriod(desc.Tags, s.token); err != nil {
		return "", err
	}
	switch step {
	case CreateSecret:
		return r.createSecret(ctx, s, e.RotationToken)
	case SetSecret:
		return r.setSecret(ctx, s)
	case TestSecret:
		return r.testSecret(ctx, s)
	default:
		return r.finishSecret(ctx, s)
	}
}

func (r *Rotator) gracePeriod(tags []smtypes.Tag, token string) (time.Duration, bool, error) {
	grace := r.opts.GracePeriod
	for _, t := range tags {
		switch aws.ToString(t.Key) {
		case TagGracePeriod:
			d, err := time.ParseDuration(aws.ToString(t.Value))
			if err != nil || d < 0 {
				return 0, false, fmt.Errorf("tag %s=%q is not a Go duration such as 15m or 2h", TagGracePeriod, aws.ToString(t.Value))
			}
			grace = d
		}
	}
	for _, t := range tags {
		if aws.ToString(t.Key) == TagEmergencyToken && aws.ToString(t.Value) == token {
			return 0, true, nil
		}
	}
	return grace, false, nil
}

// createSecret mints the new key and stores it as AWSPENDING, once per token.
func (r *Rotator) createSecret(ctx context.Context, s *secret, rotationToken string) (outcome, error) {
	current, err := r.readStage(ctx, s, Current)
	if err != nil {
		return "", err
	}
	if _, found, err := r.readPending(ctx, s); err != nil {
		return "", err
	} else if found {
		s.log.Info("AWSPENDING already holds this version's key: not minting another")
		return alreadyDone, nil
	}
	if err := r.checkHold(s); err != nil {
		return "", err
	}
	if current.Key != "" && current.KeyID == "" {
		return "", providers.E("check AWSCURRENT", providers.Invalid, errors.New(
			"AWSCURRENT holds a key but no key_id, so keyrotor could never revoke it once superseded; "+
				"add the vendor's id of that key as \"key_id\" to the value (or store the key with `keyrotor import`), then rotate again"))
	}
	ownOrphans, err := r.reconcile(ctx, s, current)
	if err != nil {
		return "", err
	}
	if current.KeyID == "" {
		// Vendors copy a new key's scopes or policies from the old key; with
		// none, from the value's bootstrap fields, which whoever may write
		// the value chose (the admin secret's binding is the boundary).
		s.log.Warn("bootstrap: minting the first key with the scopes or policies the secret's value names", "fields", attrNames(current))
	}
	req := providers.CreateRequest{SecretName: s.name, KeyName: keyrotor.KeyName(s.identity, s.token), Owner: current}
	minted, err := r.p.Create(ctx, req)
	if providers.IsKind(err, providers.Conflict) && (len(ownOrphans) > 0 || s.emergency) {
		// At the vendor's key limit, with orphans of this rotation's
		// earlier attempts taking the room: revoke them now and try again.
		for _, id := range ownOrphans {
			if err := r.p.Revoke(ctx, current, id); err != nil && !providers.IsKind(err, providers.NotFound) {
				return "", fmt.Errorf("revoke orphan key %s to make room: %w", id, err)
			}
			r.orphanRevoked(s, id)
		}
		ownOrphans = nil
		if s.emergency {
			// An emergency supersedes every older key: the AWSPREVIOUS
			// key still in its grace period may go first to make room
			// (IAM allows two keys).
			if err := r.revokePrevious(ctx, s, current); err != nil {
				return "", err
			}
		}
		minted, err = r.p.Create(ctx, req)
	}
	if providers.IsKind(err, providers.Conflict) && len(s.unowned) > 0 {
		return "", fmt.Errorf("create a key: keys keyrotor cannot prove are this secret's take the room at the vendor's key limit (%s): "+
			"it never revokes them; delete them at the vendor once you know they are unused, then rotate again: %w", strings.Join(s.unowned, ", "), err)
	}
	if err != nil {
		return "", fmt.Errorf("create a key: %w", err)
	}
	next := r.successor(current, minted)
	s.log.Info("created a key at the vendor", "key_id", next.KeyID)
	value, err := next.SecretString()
	if err != nil {
		return "", r.revokeUnstored(ctx, s, current, next.KeyID, fmt.Errorf("encode the new secret value: %w", err))
	}
	in := &secretsmanager.PutSecretValueInput{
		SecretId:           aws.String(s.id),
		ClientRequestToken: aws.String(s.token),
		SecretString:       aws.String(value),
		VersionStages:      []string{Pending},
	}
	if rotationToken != "" {
		in.RotationToken = aws.String(rotationToken)
	}
	if _, err := r.sm.PutSecretValue(ctx, in); err != nil {
		// The put may have landed even though we saw an error (a lost
		// response): then the key is stored and must live.
		if stored, found, gerr := r.readPending(ctx, s); gerr == nil && found && stored.KeyID == next.KeyID {
			r.revokeOwnOrphans(ctx, s, current, ownOrphans)
			r.created(ctx, s, current.KeyID, next.KeyID)
			return done, nil
		}
		return "", r.revokeUnstored(ctx, s, current, next.KeyID, fmt.Errorf("secretsmanager.PutSecretValue: %w", err))
	}
	r.revokeOwnOrphans(ctx, s, current, ownOrphans)
	r.created(ctx, s, current.KeyID, next.KeyID)
	return done, nil
}

// created announces the start of an emergency rotation once its new key is
// stored (a retry finds it stored and does not announce again).
func (r *Rotator) created(ctx context.Context, s *secret, oldKeyID, newKeyID string) {
	if !s.emergency {
		return
	}
	d := r.detail(s)
	d.OldVersionID, d.OldKeyID, d.NewKeyID = versionWith(s.versions, Current), oldKeyID, newKeyID
	r.publish(ctx, notify.EmergencyRotationStarted, d)
}

// checkHold refuses a plain rotation while a rollback holds the secret
// (tag keyrotor:rollback-until in the future): the rotation that was rolled
// back would otherwise come straight back. An emergency goes through. An
// unreadable tag holds too (fail closed), and says which tag to fix.
func (r *Rotator) checkHold(s *secret) error {
	v, ok := s.tags[keyrotor.TagRollbackUntil]
	if !ok || s.emergency {
		return nil
	}
	until, valid := keyrotor.RollbackHold(v)
	if !valid {
		return providers.E("check the rollback hold", providers.Invalid, fmt.Errorf(
			"tag %s=%q is not an RFC 3339 time: fix or remove it (aws secretsmanager untag-resource --secret-id %s --tag-keys %s)",
			keyrotor.TagRollbackUntil, v, s.name, keyrotor.TagRollbackUntil))
	}
	if now := r.opts.Now(); now.Before(until) {
		return providers.E("check the rollback hold", providers.Conflict, fmt.Errorf(
			"the secret was rolled back: plain rotations are held until %s (tag %s); rotate in an emergency with `keyrotor rotate --emergency %s`, or remove the tag",
			until.UTC().Format(time.RFC3339), keyrotor.TagRollbackUntil, s.name))
	}
	return nil
}

// revokePrevious revokes the AWSPREVIOUS key of an emergency rotation that
// hit the vendor's key limit. That key is superseded (AWSCURRENT replaced
// it) and held by this secret's version, whose own fields say whose key it
// is; the current key is never touched.
func (r *Rotator) revokePrevious(ctx context.Context, s *secret, current providers.Credential) error {
	if versionWith(s.versions, Previous) == "" {
		return nil
	}
	prev, err := r.readStage(ctx, s, Previous)
	if err != nil {
		return fmt.Errorf("read AWSPREVIOUS to make room: %w", err)
	}
	if prev.KeyID == "" || prev.KeyID == current.KeyID {
		return nil
	}
	// No revoker re-validates this revoke: AWSPREVIOUS is input (a manual
	// put makes any value AWSPREVIOUS), so it must not hold an admin key.
	if ok, why, err := revocation.NotAnAdminKey(ctx, r.sm, r.p, prev, false); err != nil {
		return fmt.Errorf("emergency: check the superseded AWSPREVIOUS key %s before revoking it to make room: %w", prev.KeyID, err)
	} else if !ok {
		return providers.E("emergency: make room", providers.Conflict, fmt.Errorf(
			"not revoking the AWSPREVIOUS key %s to make room at the vendor's key limit: %s", prev.KeyID, why))
	}
	if err := r.p.Revoke(ctx, prev, prev.KeyID); err != nil && !providers.IsKind(err, providers.NotFound) {
		return fmt.Errorf("emergency: revoke the superseded AWSPREVIOUS key %s to make room: %w", prev.KeyID, err)
	}
	s.log.Warn("emergency: revoked the superseded AWSPREVIOUS key to make room at the vendor's key limit", "key_id", prev.KeyID)
	return nil
}

// successor is the new secret value: the current one's provider fields, the
// provider's additions, and the new key.
func (r *Rotator) successor(current, minted providers.Credential) providers.Credential {
	next := current
	next.Attrs = nil
	for k, v := range current.Attrs {
		next, _ = next.WithAttr(k, v)
	}
	for k, v := range minted.Attrs {
		next, _ = next.WithAttr(k, v)
	}
	next.Provider = r.p.Name()
	next.Key = minted.Key
	next.KeyID = minted.KeyID
	next.CreatedAt = minted.CreatedAt
	if next.CreatedAt.IsZero() {
		next.CreatedAt = r.opts.Now().UTC().Truncate(time.Second)
	}
	return next
}

// revokeUnstored revokes a key whose value could not be stored: nobody can
// ever use it, and it would count against the vendor's key limit.
func (r *Rotator) revokeUnstored(ctx context.Context, s *secret, owner providers.Credential, keyID string, cause error) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.p.Revoke(rctx, owner, keyID); err != nil && !providers.IsKind(err, providers.NotFound) {
		s.log.Error("could not revoke the key whose value was not stored; the next attempt's reconcile will retry", "key_id", keyID, "error", err.Error())
		return fmt.Errorf("%w (and revoking the unstored key %s failed: %v)", cause, keyID, err)
	}
	s.log.Warn("revoked the key whose value was not stored", "key_id", keyID)
	return cause
}

// reconcile cleans up after interrupted and abandoned attempts, revoking
// only keys it can prove are this secret's leftovers:
//
//   - A key is this secret's only if its vendor-side name starts with
//     keyrotor.KeyNamePrefix(identity), which derives from the secret's full
//     identity (partition, account, region, name, ARN suffix) with 130 bits of
//     SHA-256: the same name in another region or account, or a re-created
//     secret, has other keys. For a vendor whose keys have no names (IAM), a
//     key is this rotation's own only if the vendor created it at or after
//     this rotation's AWSPENDING version (one-second resolution): a lost
//     CreateAccessKey answer of an earlier attempt. Anything older that no
//     version holds is someone else's (an adopted user's other key): it is
//     reported (log and UnownedKeys), never revoked.
//   - A key stored in a labelled version is never touched: AWSCURRENT is in
//     use, AWSPREVIOUS is the revoker's (grace period).
//   - A key of this secret held only by unlabelled versions is superseded or
//     abandoned (a manual put-secret-value during a rotation made Secrets
//     Manager drop AWSPENDING, so no revocation was ever queued): its
//     revocation is queued with the secret's grace period (reason
//     abandoned, counted in AbandonedKeys); the revoker re-validates it.
//   - A key named for this secret that no version holds was never stored
//     (a crash between the vendor's create and PutSecretValue): revoked.
//   - Keys named under the scheme before identity names (the secret name
//     and a 32-bit hash) cannot be told from another region's or account's:
//     reported, never revoked.
//
// Versions are listed only when the vendor shows keys beyond AWSCURRENT's and
// AWSPREVIOUS's, so the steady state costs nothing.
//
// Keys of this very token are not revoked here but returned: they are either
// orphans of an earlier attempt of this rotation, or the key that a
// concurrent invocation of this createSecret is about to store. Only the
// invocation whose PutSecretValue succeeds may revoke them (revokeOwnOrphans):
// a version's value is immutable, so no other key of this token can be stored
// after that.
func (r *Rotator) reconcile(ctx context.Context, s *secret, current providers.Credential) (ownOrphans []string, err error) {
	lister, ok := r.p.(providers.Lister)
	if !ok {
		return nil, nil
	}
	keys, err := lister.ListKeys(ctx, current, keyrotor.KeyNamePrefix(s.identity))
	if err != nil {
		return nil, fmt.Errorf("list keys to find orphans: %w", err)
	}
	nameless := false
	var candidates []providers.KeyInfo
	for _, k := range keys {
		nameless = nameless || k.Name == ""
		if k.ID != current.KeyID {
			candidates = append(candidates, k)
		}
	}
	if !nameless {
		if err := r.reportLegacy(ctx, s, lister, current); err != nil {
			return nil, err
		}
	}
	if len(candidates) == 0 {
		return nil, nil
	}
	prevKeyID, err := r.previousKeyID(ctx, s)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{current.KeyID: true, prevKeyID: true}
	var rest []providers.KeyInfo
	for _, k := range candidates {
		if !keep[k.ID] {
			rest = append(rest, k)
		}
	}
	if len(rest) == 0 {
		return nil, nil
	}
	versions, err := r.listVersions(ctx, s)
	if err != nil {
		return nil, err
	}
	pendingCreated := versions.created[s.token]
	own := keyrotor.KeyName(s.identity, s.token)
	var others []providers.KeyInfo
	for _, k := range rest {
		switch {
		case k.Name != "" && k.Name == own:
			ownOrphans = append(ownOrphans, k.ID)
		case k.Name == "" && !pendingCreated.IsZero() && !k.CreatedAt.IsZero() &&
			!k.CreatedAt.Truncate(time.Second).Before(pendingCreated.Truncate(time.Second)):
			ownOrphans = append(ownOrphans, k.ID)
		default:
			others = append(others, k)
		}
	}
	holders, err := r.holders(ctx, s, versions, others)
	if err != nil {
		return nil, err
	}
	var unowned []string
	for _, k := range others {
		v, held := holders[k.ID]
		switch {
		case held && versions.labelled[v]:
			s.log.Info("sparing a key that a labelled version of the secret holds", "key_id", k.ID, "version", v)
		case held:
			if err := r.queueAbandoned(ctx, s, k.ID, v); err != nil {
				return nil, err
			}
		case k.Name == "":
			unowned = append(unowned, k.ID)
		default:
			if err := r.p.Revoke(ctx, current, k.ID); err != nil && !providers.IsKind(err, providers.NotFound) {
				return nil, fmt.Errorf("revoke orphan key %s: %w", k.ID, err)
			}
			r.orphanRevoked(s, k.ID)
		}
	}
	if len(unowned) > 0 {
		s.unowned = append(s.unowned, unowned...)
		r.unowned(s, unowned, "the vendor created them before this rotation started and no version of the secret holds them: keyrotor did not mint them, so it never revokes them")
	}
	return ownOrphans, nil
}

// previousKeyID returns the key id AWSPREVIOUS holds ("" when no version is
// AWSPREVIOUS), reading it at most once per step.
func (r *Rotator) previousKeyID(ctx context.Context, s *secret) (string, error) {
	if s.prevRead || versionWith(s.versions, Previous) == "" {
		return s.prevKeyID, nil
	}
	prev, err := r.readStage(ctx, s, Previous)
	if err != nil {
		return "", fmt.Errorf("read AWSPREVIOUS to spare its key: %w", err)
	}
	s.prevKeyID, s.prevRead = prev.KeyID, true
	return s.prevKeyID, nil
}

// reportLegacy reports keys named under the scheme before identity names
// ("keyrotor-" + a slug of the name + a 32-bit hash of the name): they may be
// this secret's, or a secret's of the same name in another region or account.
// Keys that AWSCURRENT or AWSPREVIOUS hold are not reported: they are this
// secret's and the revoker revokes them once superseded.
func (r *Rotator) reportLegacy(ctx context.Context, s *secret, lister providers.Lister, current providers.Credential) error {
	keys, err := lister.ListKeys(ctx, current, keyrotor.LegacyKeyNamePrefix(s.name))
	if err != nil {
		return fmt.Errorf("list keys named under the old scheme: %w", err)
	}
	var ids []string
	for _, k := range keys {
		if k.ID != current.KeyID && k.Name != "" {
			ids = append(ids, k.ID)
		}
	}
	if len(ids) > 0 {
		prevKeyID, err := r.previousKeyID(ctx, s)
		if err != nil {
			return err
		}
		ids = slices.DeleteFunc(ids, func(id string) bool { return id == prevKeyID })
	}
	if len(ids) > 0 {
		s.unowned = append(s.unowned, ids...)
		r.unowned(s, ids, "they are named under the scheme before identity names, which other secrets of the same name share: revoke them by hand once you know whose they are")
	}
	return nil
}

// unowned reports keys that reconcile cannot prove are this secret's.
func (r *Rotator) unowned(s *secret, ids []string, why string) {
	s.log.Warn("keys at the vendor that keyrotor cannot prove are this secret's: not revoking them; "+why, "key_ids", ids)
	r.opts.Metrics.Put([]metrics.Dim{{Name: "Provider", Value: r.p.Name()}}, nil, metrics.Metric{Name: MetricUnownedKeys, Value: float64(len(ids)), Unit: metrics.Count})
}

// queueAbandoned queues, with the secret's grace period, the revocation of a
// key of this secret that only an unlabelled version holds.
func (r *Rotator) queueAbandoned(ctx context.Context, s *secret, keyID, version string) error {
	if r.queue == nil {
		return errors.New("no revocation queue is configured: cannot queue the revocation of an abandoned key")
	}
	now := r.opts.Now()
	m := revocation.Message{SecretID: s.arn, Provider: r.p.Name(), KeyID: keyID, OldVersionID: version,
		NotBefore: now.Add(s.grace).UTC(), Reason: revocation.ReasonAbandoned}
	if err := r.queue.Send(ctx, m, s.grace); err != nil {
		return fmt.Errorf("queue the revocation of key %s, held only by the unlabelled version %s: %w", keyID, version, err)
	}
	s.log.Warn("queued the revocation of a key only an unlabelled version holds (a superseded key, or one minted by a rotation abandoned by a manual put-secret-value)",
		"key_id", keyID, "version", version, "not_before", m.NotBefore.Format(time.RFC3339))
	r.opts.Metrics.Put([]metrics.Dim{{Name: "Provider", Value: r.p.Name()}}, nil, metrics.Metric{Name: MetricAbandonedKeys, Value: 1, Unit: metrics.Count})
	return nil
}

// versionList is the secret's versions as ListSecretVersionIds shows them.
type versionList struct {
	ids      []string
	created  map[string]time.Time
	labelled map[string]bool
}

// holders returns, for the keys given, the version of the secret (other
// than this token's, which has no value yet) that holds each key. A key named
// for a version (KeyName(identity, version id)) is looked up in that version
// only; a key named for no version, or a nameless one, in every version.
// AWSCURRENT's and AWSPREVIOUS's keys are known to the caller: those
// versions are not read again.
func (r *Rotator) holders(ctx context.Context, s *secret, versions versionList, keys []providers.KeyInfo) (map[string]string, error) {
	holders := map[string]string{}
	read := map[string]bool{s.token: true, versionWith(s.versions, Current): true, versionWith(s.versions, Previous): true}
	readVersion := func(id string) error {
		if read[id] {
			return nil
		}
		read[id] = true
		keyID, err := r.versionKeyID(ctx, s, id)
		if err != nil {
			return err
		}
		if keyID != "" {
			if _, seen := holders[keyID]; !seen {
				holders[keyID] = id
			}
		}
		return nil
	}
	for _, k := range keys {
		if _, found := holders[k.ID]; found {
			continue
		}
		if k.Name != "" {
			matched := false
			for _, id := range versions.ids {
				if keyrotor.KeyName(s.identity, id) == k.Name {
					matched = true
					if err := readVersion(id); err != nil {
						return nil, err
					}
				}
			}
			if matched {
				// keyrotor stores a key named for a version in that
				// version only: found there, or never stored.
				continue
			}
		}
		for _, id := range versions.ids {
			if _, found := holders[k.ID]; found {
				break
			}
			if err := readVersion(id); err != nil {
				return nil, err
			}
		}
	}
	return holders, nil
}

// listVersions lists the secret's versions, labelled or not (a superseded
// key's version has lost its labels), with their creation dates.
func (r *Rotator) listVersions(ctx context.Context, s *secret) (versionList, error) {
	vl := versionList{created: map[string]time.Time{}, labelled: map[string]bool{}}
	in := &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(s.id), IncludeDeprecated: aws.Bool(true)}
	for {
		out, err := r.sm.ListSecretVersionIds(ctx, in)
		if err != nil {
			return vl, fmt.Errorf("secretsmanager.ListSecretVersionIds (to find which version holds each key): %w", err)
		}
		for _, v := range out.Versions {
			id := aws.ToString(v.VersionId)
			if id == "" {
				continue
			}
			vl.ids = append(vl.ids, id)
			vl.created[id] = aws.ToTime(v.CreatedDate)
			vl.labelled[id] = len(v.VersionStages) > 0
		}
		if aws.ToString(out.NextToken) == "" {
			return vl, nil
		}
		in.NextToken = out.NextToken
	}
}

// versionKeyID returns the key_id a version holds, "" when it holds no
// value (a pending version before createSecret stored one, moto's empty
// versions) or no key (a value keyrotor cannot parse holds none of its keys).
func (r *Rotator) versionKeyID(ctx context.Context, s *secret, id string) (string, error) {
	out, err := r.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s.id), VersionId: aws.String(id)})
	if err != nil {
		var nf *smtypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			return "", nil
		}
		return "", fmt.Errorf("secretsmanager.GetSecretValue(version %s, to spare its key): %w", id, err)
	}
	if out.SecretString == nil {
		return "", nil
	}
	c, err := providers.ParseSecret(*out.SecretString)
	if err != nil {
		return "", nil
	}
	return c.KeyID, nil
}

// revokeOwnOrphans revokes, once this invocation's key is stored, the keys
// of this token that reconcile found: orphans of earlier attempts, or the
// key of a concurrent attempt whose store must fail. A failure is only
// logged: the key is stored, and the next rotation's reconcile revokes them.
func (r *Rotator) revokeOwnOrphans(ctx context.Context, s *secret, owner providers.Credential, ids []string) {
	for _, id := range ids {
		if err := r.p.Revoke(ctx, owner, id); err != nil && !providers.IsKind(err, providers.NotFound) {
			s.log.Warn("could not revoke an orphan key of this rotation; the next rotation's reconcile will retry", "key_id", id, "error", err.Error())
			continue
		}
		r.orphanRevoked(s, id)
	}
}

func (r *Rotator) orphanRevoked(s *secret, keyID string) {
	s.log.Warn("revoked an orphan key of an interrupted rotation", "key_id", keyID)
	r.opts.Metrics.Put([]metrics.Dim{{Name: "Provider", Value: r.p.Name()}}, nil, metrics.Metric{Name: "OrphanKeysRevoked", Value: 1, Unit: metrics.Count})
}

// setSecret registers the pending key for providers whose keys are chosen by
// the client; for vendor-minted keys it has nothing to do.
func (r *Rotator) setSecret(ctx context.Context, s *secret) (outcome, error) {
	setter, ok := r.p.(providers.Setter)
	if !ok {
		return done, nil
	}
	pending, found, err := r.readPending(ctx, s)
	if err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("version %s has no value: createSecret has not run", s.token)
	}
	if err := setter.Set(ctx, pending); err != nil {
		return "", fmt.Errorf("register the pending key %s: %w", pending.KeyID, err)
	}
	return done, nil
}

// testSecret authenticates with the pending key alone, retrying while it
// propagates. With RotateImmediately=false the pending version has no value,
// and the current key is tested instead.
func (r *Rotator) testSecret(ctx context.Context, s *secret) (outcome, error) {
	cred, found, err := r.readPending(ctx, s)
	if err != nil {
		return "", err
	}
	if !found {
		current, err := r.readStage(ctx, s, Current)
		if err != nil {
			return "", err
		}
		if current.Key == "" {
			s.log.Info("no pending value and no current key: nothing to test")
			return done, nil
		}
		s.log.Info("the pending version has no value (RotateImmediately=false): testing the current key")
		cred = current
	}
	if err := r.verify(ctx, cred); err != nil {
		return "", fmt.Errorf("verify key %s: %w", cred.KeyID, err)
	}
	return done, nil
}

// verify calls the provider's Verify until the key has settled (the
// provider's Settle rule: consecutive successes spanning a window), a
// permanent error comes back, or the test budget (within the Lambda deadline)
// runs out. Transient and Permission errors are retried and start the count
// over: a new key may be refused for a while as it propagates.
func (r *Rotator) verify(ctx context.Context, cred providers.Credential) error {
	budget := r.opts.TestTimeout
	if dl, ok := ctx.Deadline(); ok {
		// The deadline is wall-clock time, whatever clock the engine uses.
		if left := time.Until(dl) - 3*time.Second; left < budget {
			budget = left
		}
	}
	rule := settleFor(r.opts.Settle, r.p.Name())
	deadline := r.opts.Now().Add(budget)
	wait := 250 * time.Millisecond
	streak := 0
	var first time.Time
	var settling time.Duration // slept since the first success of the streak
	for attempt := 1; ; attempt++ {
		err := r.p.Verify(ctx, cred)
		if err == nil {
			now := r.opts.Now()
			if streak == 0 {
				first, settling = now, 0
			}
			streak++
			// The window is measured by the clock and, should the clock
			// stand still, by the time slept: it always ends.
			if streak >= rule.Successes && max(now.Sub(first), settling) >= rule.Window {
				return nil
			}
			// Settling: look again in a little while, well within the window.
			next := max(min(wait, rule.Window/time.Duration(rule.Successes)), 100*time.Millisecond)
			if !now.Add(next).Before(deadline) {
				return providers.E("settle", providers.Transient, fmt.Errorf(
					"the key passed %d verification(s) in a row over %s but did not settle (%d over %s: %s) within the test budget",
					streak, now.Sub(first).Round(time.Millisecond), rule.Successes, rule.Window, rule.Why))
			}
			if serr := r.opts.Sleep(ctx, next); serr != nil {
				return fmt.Errorf("settling after %d attempts: %w", attempt, serr)
			}
			settling += next
			continue
		}
		streak = 0
		k := providers.KindOf(err)
		if k != providers.Transient && k != providers.Permission {
			return err
		}
		if !r.opts.Now().Add(wait).Before(deadline) {
			return fmt.Errorf("after %d attempts: %w", attempt, err)
		}
		if serr := r.opts.Sleep(ctx, wait); serr != nil {
			return fmt.Errorf("after %d attempts: %w", attempt, err)
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// finishSecret schedules the old key's revocation, then makes the token's
// version AWSCURRENT and clears AWSPENDING.
func (r *Rotator) finishSecret(ctx context.Context, s *secret) (outcome, error) {
	currentVersion := versionWith(s.versions, Current)
	if currentVersion == "" {
		return "", errors.New("no version is AWSCURRENT")
	}
	pending, found, err := r.readPending(ctx, s)
	if err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("version %s has no value: refusing to make an empty version AWSCURRENT", s.token)
	}
	old, err := r.readStage(ctx, s, Current)
	if err != nil {
		return "", err
	}
	if old.KeyID != "" && old.KeyID != pending.KeyID {
		now := r.opts.Now()
		m := revocation.Message{
			SecretID: s.arn, Provider: r.p.Name(), KeyID: old.KeyID, OldVersionID: currentVersion, NewVersionID: s.token,
			NotBefore: now.Add(s.grace).UTC(), FinishedAt: now.UTC(), Reason: revocation.ReasonRotation,
		}
		if s.emergency {
			m.Reason = revocation.ReasonEmergency
		}
		if r.queue == nil {
			return "", errors.New("no revocation queue is configured: refusing to finish a rotation that would leave the old key alive")
		}
		if err := r.queue.Send(ctx, m, s.grace); err != nil {
			return "", fmt.Errorf("schedule the old key's revocation: %w", err)
		}
		s.log.Info("scheduled revocation of the old key", "key_id", old.KeyID, "not_before", m.NotBefore.Format(time.RFC3339), "emergency", s.emergency)
	}
	if s.emergency {
		if err := r.supersedeAll(ctx, s, pending.KeyID, old.KeyID, currentVersion); err != nil {
			return "", err
		}
	}
	if _, err := r.sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId:            aws.String(s.id),
		VersionStage:        aws.String(Current),
		MoveToVersionId:     aws.String(s.token),
		RemoveFromVersionId: aws.String(currentVersion),
	}); err != nil {
		return "", fmt.Errorf("secretsmanager.UpdateSecretVersionStage (move AWSCURRENT): %w", err)
	}
	// The new key is current from here on: say so before anything else
	// can fail (a retry re-publishes from the already-current branch).
	rotated := r.detail(s)
	rotated.OldVersionID, rotated.NewKeyID, rotated.OldKeyID = currentVersion, pending.KeyID, old.KeyID
	if old.KeyID != "" && old.KeyID != pending.KeyID {
		rotated.RevokeAfter = rotated.Time.Add(s.grace)
	}
	r.publish(ctx, notify.KeyRotated, rotated)
	if s.emergency {
		r.publish(ctx, notify.EmergencyRotationFinished, rotated)
	}
	if err := r.removePending(ctx, s.id, s.token); err != nil {
		return "", err
	}
	s.log.Info("rotation finished", "key_id", pending.KeyID, "old_key_id", old.KeyID)
	return done, nil
}

// supersedeAll queues, for an emergency rotation, the immediate revocation
// of every key older versions of the secret hold besides the old AWSCURRENT's
// (already queued): the AWSPREVIOUS key still in its grace period and keys of
// unlabelled versions. A leaked secret may have leaked them all. The revoker
// re-validates each message (the version still holds the key, no label,
// the owner bound) before it revokes.
func (r *Rotator) supersedeAll(ctx context.Context, s *secret, newKeyID, oldKeyID, oldVersion string) error {
	versions, err := r.listVersions(ctx, s)
	if err != nil {
		return fmt.Errorf("emergency: %w", err)
	}
	queued := map[string]bool{newKeyID: true, oldKeyID: true, "": true}
	now := r.opts.Now()
	for _, id := range versions.ids {
		if id == s.token || id == oldVersion {
			continue
		}
		keyID, err := r.versionKeyID(ctx, s, id)
		if err != nil {
			return fmt.Errorf("emergency: %w", err)
		}
		if queued[keyID] {
			continue
		}
		queued[keyID] = true
		m := revocation.Message{SecretID: s.arn, Provider: r.p.Name(), KeyID: keyID, OldVersionID: id, NewVersionID: s.token,
			NotBefore: now.UTC(), FinishedAt: now.UTC(), Reason: revocation.ReasonEmergency}
		if err := r.queue.Send(ctx, m, 0); err != nil {
			return fmt.Errorf("emergency: schedule the revocation of the superseded key %s (version %s): %w", keyID, id, err)
		}
		s.log.Warn("emergency: scheduled the immediate revocation of an older superseded key", "key_id", keyID, "version", id)
	}
	return nil
}

func (r *Rotator) removePending(ctx context.Context, secretID, version string) error {
	if _, err := r.sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{
		SecretId:            aws.String(secretID),
		VersionStage:        aws.String(Pending),
		RemoveFromVersionId: aws.String(version),
	}); err != nil {
		return fmt.Errorf("secretsmanager.UpdateSecretVersionStage (remove AWSPENDING): %w", err)
	}
	return nil
}

// readStage reads and parses the value of a staging label and checks that it
// belongs to this provider.
func (r *Rotator) readStage(ctx context.Context, s *secret, stage string) (providers.Credential, error) {
	out, err := r.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(s.id), VersionStage: aws.String(stage)})
	if err != nil {
		var nf *smtypes.ResourceNotFoundException
		if errors.As(err, &nf) && stage == Current {
			return providers.Credential{}, fmt.Errorf("the secret has no %s value: store at least {\"provider\":%q} and its provider fields first", stage, r.p.Name())
		}
		return providers.Credential{}, fmt.Errorf("secretsmanager.GetSecretValue(%s): %w", stage, err)
	}
	c, err := r.parse(out, stage)
	c.Secret = s.identity
	return c, err
}

// readPending reads the token's AWSPENDING value; found is false while the
// version has no value.
func (r *Rotator) readPending(ctx context.Context, s *secret) (cred providers.Credential, found bool, err error) {
	out, err := r.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId: aws.String(s.id), VersionId: aws.String(s.token), VersionStage: aws.String(Pending),
	})
	if err != nil {
		var nf *smtypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			return providers.Credential{}, false, nil
		}
		return providers.Credential{}, false, fmt.Errorf("secretsmanager.GetSecretValue(AWSPENDING): %w", err)
	}
	cred, err = r.parse(out, Pending)
	cred.Secret = s.identity
	return cred, err == nil, err
}

func (r *Rotator) parse(out *secretsmanager.GetSecretValueOutput, stage string) (providers.Credential, error) {
	if out.SecretString == nil {
		return providers.Credential{}, fmt.Errorf("the %s value is binary, not the JSON keyrotor stores", stage)
	}
	c, err := providers.ParseSecret(*out.SecretString)
	if err != nil {
		return providers.Credential{}, providers.E("parse "+stage, providers.Invalid, err)
	}
	if c.Provider != r.p.Name() {
		return providers.Credential{}, providers.E("parse "+stage, providers.Invalid,
			fmt.Errorf("the %s value names provider %q, but this function rotates %q", stage, c.Provider, r.p.Name()))
	}
	return c, nil
}

// attrNames returns the names (never the values) of a value's provider fields.
func attrNames(c providers.Credential) []string {
	names := make([]string, 0, len(c.Attrs))
	for k := range c.Attrs {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

func has(stages []string, label string) bool {
	for _, s := range stages {
		if s == label {
			return true
		}
	}
	return false
}

func versionWith(versions map[string][]string, label string) string {
	for id, stages := range versions {
		if has(stages, label) {
			return id
		}
	}
	return ""
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
