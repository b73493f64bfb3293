package revocation

import (
	"context"
	"encoding/json"
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
)

// Metric names the revoker publishes (dimension Provider).
const (
	MetricRevoked            = "RevocationsDone"
	MetricSkipped            = "RevocationsSkipped"
	MetricDeferred           = "RevocationsDeferred"
	MetricFailed             = "RevocationsFailed"
	MetricOldKeyInUse        = "OldKeyInUse"
	MetricVendorAuthFailures = "VendorAuthFailures"
	// MetricRefused counts messages the revoker would not act on because
	// nothing proves the key is this secret's superseded key: the old
	// version does not hold it, it is an admin credential, its owner is not
	// bound to the secret. A forged or stale message, or a binding missing.
	MetricRefused = "RevocationsRefused"
	// MetricAlreadyGone counts revocations of keys the vendor no longer
	// has at the old version's owner (a duplicate message, a key deleted by
	// hand); RevocationsDone counts only keys really revoked.
	MetricAlreadyGone = "RevocationsAlreadyGone"
	// MetricAbandoned counts revocations whose rotation was abandoned before
	// it finished: the key they name is still live (it is AWSCURRENT).
	MetricAbandoned = "RevocationsAbandoned"
)

// DefaultMaxDelay is how long past not_before a revocation may be deferred
// while a key is still in use (env MAX_REVOCATION_DELAY).
const DefaultMaxDelay = 24 * time.Hour

// DefaultDeferInterval is the wait before a deferred revocation is looked at again.
const DefaultDeferInterval = 5 * time.Minute

// DefaultUnfinishedRetry is the wait before a message whose rotation has not
// finished yet (an emergency's grace-0 message is visible before finishSecret
// moves the label) is looked at again.
// finishSecret moves the label milliseconds after it queued the message, so a
// short wait keeps a leaked key's life short (make bench: 30 s cost every
// emergency about 30 s).
const DefaultUnfinishedRetry = 5 * time.Second

// SecretsManager is the subset of the Secrets Manager API the revoker calls.
// The revoker never writes to a secret.
type SecretsManager interface {
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Sender sends a revocation message again, with a delay.
type Sender interface {
	Send(ctx context.Context, m Message, delay time.Duration) error
}

// Events publishes what the revoker did for whoever may act on it (package
// notify's schema). Publish never fails: the revoker goes on whatever
// happens to the event.
type Events interface {
	Publish(ctx context.Context, e notify.Event)
}

// Options tune a Handler. The zero value is usable.
type Options struct {
	MaxDelay        time.Duration // default DefaultMaxDelay
	DeferInterval   time.Duration // default DefaultDeferInterval
	UnfinishedRetry time.Duration // default DefaultUnfinishedRetry
	Now             func() time.Time
	Logger          *slog.Logger
	Metrics         *metrics.EMF
	// Events receives Key Revoked and Revocation Deferred; nil publishes none.
	Events Events
}

// Handler is the revoker's SQS handler.
type Handler struct {
	sm        SecretsManager
	queue     Sender
	providers map[string]providers.Provider
	opts      Options
}

// NewHandler returns a Handler revoking keys of the given providers, keyed by
// provider name.
func NewHandler(sm SecretsManager, queue Sender, ps map[string]providers.Provider, opts Options) *Handler {
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = DefaultMaxDelay
	}
	if opts.DeferInterval <= 0 {
		opts.DeferInterval = DefaultDeferInterval
	}
	if opts.UnfinishedRetry <= 0 {
		opts.UnfinishedRetry = DefaultUnfinishedRetry
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Handler{sm: sm, queue: queue, providers: ps, opts: opts}
}

// Handle processes a batch. Each message that could not be dealt with is
// returned in BatchItemFailures; the others are acknowledged.
//
// Messages that only wait for their not_before (a re-send) go first, and each
// other message gets its own share of the time left, so that one slow vendor
// cannot use up the batch's budget and send other vendors' messages to the
// dead-letter queue.
func (h *Handler) Handle(ctx context.Context, e events.SQSEvent) (events.SQSEventResponse, error) {
	// Stop a second before the Lambda deadline, so that a hanging vendor
	// fails its own message instead of timing out the whole batch.
	ctx, cancel := beforeDeadline(ctx, time.Second)
	defer cancel()
	now := h.opts.Now()
	recs := slices.Clone(e.Records)
	waiting := func(rec events.SQSMessage) bool {
		m, err := Decode(rec.Body)
		return err == nil && now.Before(m.NotBefore)
	}
	slices.SortStableFunc(recs, func(a, b events.SQSMessage) int {
		wa, wb := waiting(a), waiting(b)
		switch {
		case wa && !wb:
			return -1
		case wb && !wa:
			return 1
		}
		return 0
	})
	var resp events.SQSEventResponse
	for i, rec := range recs {
		mctx, mcancel := shareOf(ctx, len(recs)-i)
		err := h.handleOne(mctx, rec)
		mcancel()
		if err != nil {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
		}
	}
	return resp, nil
}

// shareOf returns a context whose deadline gives this message an equal share
// of the time left to the n messages still to handle.
func shareOf(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok || n <= 1 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Until(dl)/time.Duration(n))
}

// Result says what happened to one message.
type Result string

// Results of one message.
const (
	Waiting   Result = "waiting"   // not_before ahead, or the rotation not finished: sent again
	Skipped   Result = "skipped"   // the key is current or pending again, or a later rotation owns it
	Deferred  Result = "deferred"  // still in use, or a rollback holds the secret: sent again
	Revoked   Result = "revoked"   // revoked, or already gone at its owner
	Refused   Result = "refused"   // nothing proves the key is this secret's superseded key
	Abandoned Result = "abandoned" // the rotation never finished: the key is still AWSCURRENT
)

func (h *Handler) handleOne(ctx context.Context, rec events.SQSMessage) error {
	log := h.opts.Logger.With("message_id", rec.MessageId)
	m, err := Decode(rec.Body)
	if err != nil {
		log.Error("cannot read revocation message; it will end in the dead-letter queue", "error", err.Error())
		h.count("unknown", MetricFailed, "invalid")
		return err
	}
	log = log.With("secret_id", m.SecretID, "provider", m.Provider, "key_id", m.KeyID, "old_version", m.OldVersionID, "attempt", m.Attempt)
	res, err := h.revoke(ctx, log, m)
	if err != nil {
		kind := providers.KindOf(err)
		log.Error("revocation failed; the message returns after the visibility timeout", "kind", kind.String(), "error", err.Error())
		h.count(m.Provider, MetricFailed, kind.String())
		if kind == providers.Permission {
			h.count(m.Provider, MetricVendorAuthFailures, "")
		}
		return err
	}
	log.Info("revocation message handled", "result", string(res))
	return nil
}

// Process handles one message (exported for tests and the operator CLI).
func (h *Handler) Process(ctx context.Context, m Message) (Result, error) {
	return h.revoke(ctx, h.opts.Logger.With("secret_id", m.SecretID, "key_id", m.KeyID), m)
}

func (h *Handler) revoke(ctx context.Context, log *slog.Logger, m Message) (Result, error) {
	m = m.normalized()
	p, ok := h.providers[m.Provider]
	if !ok {
		return "", fmt.Errorf("revoke key %s of %s: this revoker has no provider %q", m.KeyID, m.SecretID, m.Provider)
	}
	now := h.opts.Now()
	if now.Before(m.NotBefore) {
		return h.resend(ctx, m, min(m.NotBefore.Sub(now), MaxDelay), Waiting)
	}
	sec, res, err := h.check(ctx, log, m)
	if err != nil || res != "" {
		return res, err
	}
	old, res, err := h.oldVersion(ctx, log, m, sec)
	if err != nil || res != "" {
		return res, err
	}
	current, res, err := h.notLabelled(ctx, log, m, sec)
	if err != nil || res != "" {
		return res, err
	}
	if m.Reason == ReasonAbandoned {
		// No rotation made this key superseded: revoke it only if its
		// name proves it was minted for this secret (or, at a nameless
		// vendor, the old version holds it, which was checked).
		if res, err := h.provenAbandoned(ctx, log, p, old, m, sec); err != nil || res != "" {
			return res, err
		}
	}
	// Where the vendor reports use, it also says whether the key still
	// exists at this owner: a key already gone there is counted as such,
	// never as a revocation done, and never refused by the admin-key proof.
	lu, reportsUse := p.(providers.LastUseReporter)
	var oldUsed time.Time
	var useErr error
	if reportsUse {
		oldUsed, useErr = lu.LastUsed(ctx, old, m.KeyID)
		if providers.IsKind(useErr, providers.NotFound) {
			log.Info("the key is already gone at its owner: nothing to revoke")
			h.count(m.Provider, MetricAlreadyGone, "")
			h.revoked(ctx, m, sec, true)
			return Revoked, nil
		}
	}
	if res, err := h.notAdminKey(ctx, log, m, sec, old); err != nil || res != "" {
		return res, err
	}
	if reportsUse && m.Reason == ReasonRotation {
		if useErr != nil {
			return "", fmt.Errorf("revoke key %s of %s: last use of the old key: %w", m.KeyID, m.SecretID, useErr)
		}
		if res, err := h.checkUse(ctx, log, lu, oldUsed, current, m, sec, now); err != nil || res != "" {
			return res, err
		}
	}
	// Re-validate right before the revoke: a rollback, or a later
	// rotation, may have moved labels while the vendor answered, and a
	// key that AWSCURRENT or AWSPENDING holds in any version is in use.
	sec, res, err = h.check(ctx, log, m)
	if err != nil || res != "" {
		return res, err
	}
	if _, res, err := h.notLabelled(ctx, log, m, sec); err != nil || res != "" {
		return res, err
	}
	err = p.Revoke(ctx, old, m.KeyID)
	if err != nil && !providers.IsKind(err, providers.NotFound) {
		if errors.Is(err, providers.ErrUnbound) {
			h.count(m.Provider, MetricRefused, "unbound")
		}
		return "", fmt.Errorf("revoke key %s of %s: %w", m.KeyID, m.SecretID, err)
	}
	h.count(m.Provider, MetricRevoked, "")
	h.revoked(ctx, m, sec, providers.IsKind(err, providers.NotFound))
	return Revoked, nil
}

// described is what check learned of the secret.
type described struct {
	id       keyrotor.Identity
	versions map[string][]string
}

// check reads the secret's labels and tags and says whether the message may
// go on: "" with no error to go on, or the result to stop with.
func (h *Handler) check(ctx context.Context, log *slog.Logger, m Message) (described, Result, error) {
	desc, err := h.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(m.SecretID)})
	if err != nil {
		return described{}, "", fmt.Errorf("revoke key %s of %s: secretsmanager.DescribeSecret: %w", m.KeyID, m.SecretID, err)
	}
	id, err := keyrotor.ParseARN(aws.ToString(desc.ARN))
	if err != nil {
		return described{}, "", fmt.Errorf("revoke key %s of %s: secretsmanager.DescribeSecret answered an ARN the revoker cannot read: %w", m.KeyID, m.SecretID, err)
	}
	sec := described{id: id, versions: desc.VersionIdsToStages}
	oldStages := desc.VersionIdsToStages[m.OldVersionID]
	newStages := desc.VersionIdsToStages[m.NewVersionID]
	switch {
	case slices.Contains(oldStages, "AWSCURRENT") && m.NewVersionID != "" && slices.Contains(newStages, "AWSPENDING"):
		// The rotation queued the message before moving the label
		// (grace 0): look again once it has finished, never drop it.
		log.Info("the rotation that queued this revocation has not finished yet: looking again later", "retry_in", h.opts.UnfinishedRetry.String())
		return sec, Waiting, h.resendErr(ctx, m, h.opts.UnfinishedRetry)
	case slices.Contains(oldStages, "AWSCURRENT") && m.NewVersionID != "" && len(newStages) == 0:
		log.Error("not revoking: the rotation that queued this revocation was abandoned before it finished, so the key it names is still AWSCURRENT and live; rotate again to replace it")
		h.count(m.Provider, MetricAbandoned, "")
		return sec, Abandoned, nil
	case slices.Contains(oldStages, "AWSCURRENT") || slices.Contains(oldStages, "AWSPENDING"):
		log.Warn("not revoking: the old version is AWSCURRENT or AWSPENDING (rolled back, or never superseded)", "stages", oldStages)
		h.count(m.Provider, MetricSkipped, "")
		return sec, Skipped, nil
	case slices.Contains(oldStages, "AWSPREVIOUS") && m.NewVersionID != "" && !slices.Contains(newStages, "AWSCURRENT"):
		// This rotation was rolled back and a later one has since made
		// the restored key AWSPREVIOUS again: that rotation queued its
		// own revocation of the key, with its own grace period.
		log.Warn("not revoking: the old version is AWSPREVIOUS of a later rotation, which revokes it after its own grace period")
		h.count(m.Provider, MetricSkipped, "")
		return sec, Skipped, nil
	case m.Reason == ReasonAbandoned && slices.Contains(oldStages, "AWSPREVIOUS"):
		log.Warn("not revoking: the abandoned version is AWSPREVIOUS now; the rotation that superseded it revokes it")
		h.count(m.Provider, MetricSkipped, "")
		return sec, Skipped, nil
	}
	if m.IsEmergency() {
		return sec, "", nil // a leaked key waits for no rollback
	}
	for _, t := range desc.Tags {
		if aws.ToString(t.Key) != keyrotor.TagRollbackUntil {
			continue
		}
		// A rollback is moving labels back (it sets the tag first): the
		// key the message names may be about to become current again.
		if until, ok := keyrotor.RollbackHold(aws.ToString(t.Value)); !ok || h.opts.Now().Before(until) {
			log.Warn("deferring revocation: a rollback holds the secret (tag "+keyrotor.TagRollbackUntil+")", "until", aws.ToString(t.Value))
			res, err := h.resend(ctx, m, h.opts.DeferInterval, Deferred)
			if err == nil {
				h.count(m.Provider, MetricDeferred, "")
			}
			return sec, res, err
		}
	}
	return sec, "", nil
}

// oldVersion reads the version the message names and proves that it holds
// the key: the message is a request, not an authority. The returned value is
// the key's owner (its fields say whose key it is), with the secret's
// identity for the providers' binding checks.
func (h *Handler) oldVersion(ctx context.Context, log *slog.Logger, m Message, sec described) (providers.Credential, Result, error) {
	out, err := h.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(m.SecretID), VersionId: aws.String(m.OldVersionID)})
	var nf *smtypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return h.refuse(log, m, "the secret has no version "+m.OldVersionID+" to prove that it held the key")
	}
	if err != nil {
		return providers.Credential{}, "", fmt.Errorf("revoke key %s of %s: secretsmanager.GetSecretValue(version %s): %w", m.KeyID, m.SecretID, m.OldVersionID, err)
	}
	old, err := providers.ParseSecret(aws.ToString(out.SecretString))
	switch {
	case err != nil:
		return h.refuse(log, m, "the old version is not a keyrotor value")
	case old.Provider != m.Provider:
		return h.refuse(log, m, fmt.Sprintf("the old version is a %q key, the message names %q", old.Provider, m.Provider))
	case old.KeyID != m.KeyID:
		return h.refuse(log, m, "the old version does not hold this key (it holds "+old.KeyID+")")
	}
	old.Secret = sec.id
	return old, "", nil
}

// notAdminKey goes on ("") only if the key is provably not an admin
// secret's management credential (NotAnAdminKey); it runs after the vendor
// said the key still exists, so a key already gone is never refused.
func (h *Handler) notAdminKey(ctx context.Context, log *slog.Logger, m Message, sec described, old providers.Credential) (Result, error) {
	// The key the rotation itself superseded (its old version is now
	// AWSPREVIOUS of the version the message names as new): an adopted key,
	// not named for this secret, is revoked this once (DESIGN §5).
	// (Messages queued before new_version_id existed do not name it.)
	firstSupersession := m.Reason != ReasonAbandoned && slices.Contains(sec.versions[m.OldVersionID], "AWSPREVIOUS") &&
		(m.NewVersionID == "" || slices.Contains(sec.versions[m.NewVersionID], "AWSCURRENT"))
	if ok, why, err := NotAnAdminKey(ctx, h.sm, h.providers[m.Provider], old, firstSupersession); err != nil {
		return "", fmt.Errorf("revoke key %s of %s: %w", m.KeyID, m.SecretID, err)
	} else if !ok {
		_, res, err := h.refuse(log, m, why)
		return res, err
	}
	return "", nil
}

// NotAnAdminKey reports whether owner's key (owner.KeyID, held by a version
// of the secret owner.Secret) is provably not the management credential of
// the admin secret owner names; why says what is missing when it is not. A
// version's value is input: whoever may write the secret knows the admin
// key's id (vendor consoles show it), not the key. So a key is proven not to
// be the admin key when the admin secret records another key_id, or, when it
// records none (key_id is optional), when the vendor lists the key under this
// secret's identity names (keyrotor minted it for this secret). The revoker
// and an emergency rotation's direct revoke of AWSPREVIOUS both ask it.
//
// adopted accepts, when the admin secret records no key_id, a key not named
// for this secret too: the revoker passes it for the message of the rotation
// that superseded the key (its first supersession), so that keys made before
// keyrotor (every onboarded secret's first key) are revoked. That leaves one
// accepted risk, documented in docs/operations.md: a writer of the value can
// name the admin key's id in AWSCURRENT and let the next rotation revoke it,
// unless the admin secret records its key_id.
func NotAnAdminKey(ctx context.Context, sm SecretsManager, p providers.Provider, owner providers.Credential, adopted bool) (ok bool, why string, err error) {
	admin := owner.Attr(providers.FieldAdminSecretID)
	if admin == "" {
		return true, "", nil
	}
	held, err := heldByAdminSecret(ctx, sm, admin, owner)
	if err != nil {
		return false, "", err
	}
	switch held {
	case adminHolds:
		return false, "the key is the management credential of admin secret " + admin, nil
	case adminUnknown:
		if adopted {
			return true, "", nil
		}
		named, err := namedForSecret(ctx, p, owner)
		if err != nil || named {
			return named, "", err
		}
		return false, "admin secret " + admin + " records no key_id, so nothing proves this key is not its management credential, " +
			"and the vendor lists no key of that id named for this secret; add the admin key's id as \"key_id\" to admin secret " + admin, nil
	}
	return true, "", nil
}

// adminHold says whether an admin secret holds a key.
type adminHold int

const (
	adminHoldsNot adminHold = iota // the admin secret's key_id is another key
	adminHolds                     // the key is the admin secret's management credential
	adminUnknown                   // the admin secret records no key_id: it cannot tell
)

// heldByAdminSecret says whether the admin secret holds the key old holds:
// a hand-edited version naming the admin key must not revoke it. Whoever
// writes the version knows the admin key's id (vendor consoles show it), not
// the key: when the admin secret records no key_id, a key that differs from
// its key proves nothing (adminUnknown).
func heldByAdminSecret(ctx context.Context, sm SecretsManager, adminID string, old providers.Credential) (adminHold, error) {
	out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(adminID), VersionStage: aws.String("AWSCURRENT")})
	var nf *smtypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return adminHoldsNot, nil
	}
	if err != nil {
		return adminHoldsNot, fmt.Errorf("secretsmanager.GetSecretValue(admin secret %s, to spare its key): %w", adminID, err)
	}
	var v struct {
		Key   string `json:"key"`
		KeyID string `json:"key_id"`
	}
	if json.Unmarshal([]byte(aws.ToString(out.SecretString)), &v) != nil {
		return adminHoldsNot, nil
	}
	switch {
	case (v.KeyID != "" && v.KeyID == old.KeyID) || (v.Key != "" && v.Key == old.Key):
		return adminHolds, nil
	case v.KeyID == "":
		return adminUnknown, nil
	}
	return adminHoldsNot, nil
}

// namedForSecret reports whether the vendor lists key owner.KeyID under the
// identity names of owner's secret (keyrotor minted it for this secret). A
// vendor that cannot list keys proves nothing.
func namedForSecret(ctx context.Context, p providers.Provider, owner providers.Credential) (bool, error) {
	l, ok := p.(providers.Lister)
	if !ok {
		return false, nil
	}
	keys, err := l.ListKeys(ctx, owner, keyrotor.KeyNamePrefix(owner.Secret))
	if err != nil {
		return false, fmt.Errorf("list the keys to prove key %s was minted for this secret: %w", owner.KeyID, err)
	}
	for _, k := range keys {
		if k.ID == owner.KeyID && k.Name != "" {
			return true, nil
		}
	}
	return false, nil
}

// provenAbandoned goes on ("") with a key of an abandoned version only if
// the vendor lists it under this secret's identity names (or lists it at all,
// for a vendor whose keys have no names). A key it does not list is gone, or
// not provably this secret's: nothing is revoked.
func (h *Handler) provenAbandoned(ctx context.Context, log *slog.Logger, p providers.Provider, old providers.Credential, m Message, sec described) (Result, error) {
	l, ok := p.(providers.Lister)
	if !ok {
		return "", nil // the old version holds it: the only proof this vendor allows
	}
	keys, err := l.ListKeys(ctx, old, keyrotor.KeyNamePrefix(sec.id))
	if err != nil {
		return "", fmt.Errorf("revoke key %s of %s: list its keys to prove the abandoned key is this secret's: %w", m.KeyID, m.SecretID, err)
	}
	for _, k := range keys {
		if k.ID == m.KeyID {
			return "", nil
		}
	}
	log.Warn("not revoking the abandoned key: the vendor lists no key of that id named for this secret (already gone, or not keyrotor's)")
	h.count(m.Provider, MetricSkipped, "")
	return Skipped, nil
}

// notLabelled goes on ("") only if neither AWSCURRENT nor AWSPENDING holds
// the key, whatever the version (a manual put of the old key, a rollback).
// It returns the AWSCURRENT value it read (the new key, for the use check).
func (h *Handler) notLabelled(ctx context.Context, log *slog.Logger, m Message, sec described) (current providers.Credential, res Result, err error) {
	for _, stage := range []string{"AWSCURRENT", "AWSPENDING"} {
		if stage == "AWSPENDING" && !labelled(sec.versions, stage) {
			continue
		}
		out, err := h.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(m.SecretID), VersionStage: aws.String(stage)})
		var nf *smtypes.ResourceNotFoundException
		if errors.As(err, &nf) {
			continue // AWSPENDING before createSecret stored its value
		}
		if err != nil {
			return current, "", fmt.Errorf("revoke key %s of %s: secretsmanager.GetSecretValue(%s): %w", m.KeyID, m.SecretID, stage, err)
		}
		c, err := providers.ParseSecret(aws.ToString(out.SecretString))
		if err != nil {
			return current, "", fmt.Errorf("revoke key %s of %s: read %s: %w", m.KeyID, m.SecretID, stage, err)
		}
		if c.KeyID == m.KeyID {
			log.Warn("not revoking: " + stage + " holds the key again")
			h.count(m.Provider, MetricSkipped, "")
			return current, Skipped, nil
		}
		if stage == "AWSCURRENT" {
			c.Secret = sec.id
			current = c
		}
	}
	return current, "", nil
}

func labelled(versions map[string][]string, label string) bool {
	for _, stages := range versions {
		if slices.Contains(stages, label) {
			return true
		}
	}
	return false
}

// refuse acknowledges a message that nothing proves: counted, logged and
// alarmed (RevocationsRefused); the key stays as it is.
func (h *Handler) refuse(log *slog.Logger, m Message, why string) (providers.Credential, Result, error) {
	log.Error("refusing to revoke: "+why+"; a forged or stale revocation message, or a hand-edited version; nothing was revoked", "reason", m.Reason)
	h.count(m.Provider, MetricRefused, "unproven")
	return providers.Credential{}, Refused, nil
}

// resend sends the message again with attempt+1 after delay.
func (h *Handler) resend(ctx context.Context, m Message, delay time.Duration, res Result) (Result, error) {
	if err := h.resendErr(ctx, m, delay); err != nil {
		return "", err
	}
	return res, nil
}

func (h *Handler) resendErr(ctx context.Context, m Message, delay time.Duration) error {
	next := m
	next.Attempt++
	return h.queue.Send(ctx, next, delay)
}

// checkUse defers a revocation while the new key has not been used since the
// rotation finished (testSecret's own verification comes before) or the old
// key was used after its grace period ended, up to MaxDelay past not_before.
// It returns "" to go on with the revocation.
func (h *Handler) checkUse(ctx context.Context, log *slog.Logger, lu providers.LastUseReporter, oldUsed time.Time, current providers.Credential, m Message, sec described, now time.Time) (Result, error) {
	newUsed, err := lu.LastUsed(ctx, current, current.KeyID)
	if err != nil {
		return "", fmt.Errorf("revoke key %s of %s: last use of the new key %s: %w", m.KeyID, m.SecretID, current.KeyID, err)
	}
	oldInUse := oldUsed.After(m.NotBefore)
	newUnused := newUsed.IsZero() || (!m.FinishedAt.IsZero() && !newUsed.After(m.FinishedAt))
	if !oldInUse && !newUnused {
		return "", nil
	}
	if oldInUse {
		h.count(m.Provider, MetricOldKeyInUse, "")
	}
	reason, code := "the new key has not been used since the rotation finished", notify.DeferNewKeyUnused
	if oldInUse {
		reason, code = "the old key was used after the grace period, at "+oldUsed.UTC().Format(time.RFC3339), notify.DeferOldKeyInUse
	}
	if now.After(m.NotBefore.Add(h.opts.MaxDelay)) {
		log.Warn("revoking although "+reason+": the maximum revocation delay has passed", "max_delay", h.opts.MaxDelay.String())
		return "", nil
	}
	if !slices.Contains(strings.Fields(m.Announced), code) {
		// Once per message and reason: the message sent again carries
		// the reasons already announced.
		d := h.detail(m, sec)
		d.Reason, d.RevokeAfter, d.RetryIn = code, m.NotBefore, int(h.opts.DeferInterval/time.Second)
		if oldInUse {
			d.OldKeyLastUsed = oldUsed.UTC()
		}
		h.publish(ctx, notify.RevocationDeferred, d)
		m.Announced = strings.TrimSpace(m.Announced + " " + code)
	}
	if _, err := h.resend(ctx, m, h.opts.DeferInterval, Deferred); err != nil {
		return "", err
	}
	log.Warn("deferring revocation: "+reason, "retry_in", h.opts.DeferInterval.String())
	h.count(m.Provider, MetricDeferred, "")
	return Deferred, nil
}

func (h *Handler) count(provider, name, kind string) {
	if _, ok := h.providers[provider]; !ok {
		provider = "unknown" // a dimension stays bounded whatever a message says
	}
	var props map[string]string
	if kind != "" {
		props = map[string]string{"Kind": kind}
	}
	h.opts.Metrics.Put([]metrics.Dim{{Name: "Provider", Value: provider}}, props, metrics.Metric{Name: name, Value: 1, Unit: metrics.Count})
}

// beforeDeadline returns a context that ends margin before ctx's deadline.
func beforeDeadline(ctx context.Context, margin time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(ctx, dl.Add(-margin))
	}
	return context.WithCancel(ctx)
}
