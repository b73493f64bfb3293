package revocation

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/metrics"
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
)

// DefaultMaxDelay is how long past not_before a revocation may be deferred
// while a key is still in use (env MAX_REVOCATION_DELAY).
const DefaultMaxDelay = 24 * time.Hour

// DefaultDeferInterval is the wait before a deferred revocation is looked at again.
const DefaultDeferInterval = 5 * time.Minute

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

// Options tune a Handler. The zero value is usable.
type Options struct {
	MaxDelay      time.Duration // default DefaultMaxDelay
	DeferInterval time.Duration // default DefaultDeferInterval
	Now           func() time.Time
	Logger        *slog.Logger
	Metrics       *metrics.EMF
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
func (h *Handler) Handle(ctx context.Context, e events.SQSEvent) (events.SQSEventResponse, error) {
	// Stop a second before the Lambda deadline, so that a hanging vendor
	// fails its own message instead of timing out the whole batch.
	ctx, cancel := beforeDeadline(ctx, time.Second)
	defer cancel()
	var resp events.SQSEventResponse
	for _, rec := range e.Records {
		if err := h.handleOne(ctx, rec); err != nil {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
		}
	}
	return resp, nil
}

// Result says what happened to one message.
type Result string

// Results of one message.
const (
	Waiting  Result = "waiting"  // not_before ahead: sent again
	Skipped  Result = "skipped"  // the key is current or pending again
	Deferred Result = "deferred" // still in use: sent again
	Revoked  Result = "revoked"  // revoked, or already gone
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
	p, ok := h.providers[m.Provider]
	if !ok {
		return "", fmt.Errorf("revoke key %s of %s: this revoker has no provider %q", m.KeyID, m.SecretID, m.Provider)
	}
	now := h.opts.Now()
	if now.Before(m.NotBefore) {
		next := m
		next.Attempt++
		if err := h.queue.Send(ctx, next, min(m.NotBefore.Sub(now), MaxDelay)); err != nil {
			return "", err
		}
		return Waiting, nil
	}
	desc, err := h.sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(m.SecretID)})
	if err != nil {
		return "", fmt.Errorf("revoke key %s of %s: secretsmanager.DescribeSecret: %w", m.KeyID, m.SecretID, err)
	}
	for _, stage := range desc.VersionIdsToStages[m.OldVersionID] {
		switch {
		case stage == "AWSCURRENT" || stage == "AWSPENDING":
			log.Warn("not revoking: the old version is " + stage + " again (rolled back)")
			h.count(m.Provider, MetricSkipped, "")
			return Skipped, nil
		case stage == "AWSPREVIOUS" && m.NewVersionID != "" && !slices.Contains(desc.VersionIdsToStages[m.NewVersionID], "AWSCURRENT"):
			// This rotation was rolled back and a later one has since made
			// the restored key AWSPREVIOUS again: that rotation queued its
			// own revocation of the key, with its own grace period.
			log.Warn("not revoking: the old version is AWSPREVIOUS of a later rotation, which revokes it after its own grace period")
			h.count(m.Provider, MetricSkipped, "")
			return Skipped, nil
		}
	}
	out, err := h.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(m.SecretID), VersionStage: aws.String("AWSCURRENT")})
	if err != nil {
		return "", fmt.Errorf("revoke key %s of %s: secretsmanager.GetSecretValue(AWSCURRENT): %w", m.KeyID, m.SecretID, err)
	}
	current, err := providers.ParseSecret(aws.ToString(out.SecretString))
	if err != nil {
		return "", fmt.Errorf("revoke key %s of %s: read AWSCURRENT: %w", m.KeyID, m.SecretID, err)
	}
	if current.Provider != m.Provider {
		return "", fmt.Errorf("revoke key %s of %s: AWSCURRENT names provider %q, the message %q", m.KeyID, m.SecretID, current.Provider, m.Provider)
	}
	if current.KeyID == m.KeyID {
		log.Warn("not revoking: the key is AWSCURRENT again")
		h.count(m.Provider, MetricSkipped, "")
		return Skipped, nil
	}
	if lu, ok := p.(providers.LastUseReporter); ok && !m.IsEmergency() {
		res, err := h.checkUse(ctx, log, lu, current, m, now)
		if err != nil || res != "" {
			return res, err
		}
	}
	if err := p.Revoke(ctx, current, m.KeyID); err != nil && !providers.IsKind(err, providers.NotFound) {
		return "", fmt.Errorf("revoke key %s of %s: %w", m.KeyID, m.SecretID, err)
	}
	h.count(m.Provider, MetricRevoked, "")
	return Revoked, nil
}

// checkUse defers a revocation while the new key has never been used or the
// old key was used after its grace period ended, up to MaxDelay past
// not_before. It returns "" to go on with the revocation.
func (h *Handler) checkUse(ctx context.Context, log *slog.Logger, lu providers.LastUseReporter, current providers.Credential, m Message, now time.Time) (Result, error) {
	oldUsed, err := lu.LastUsed(ctx, current, m.KeyID)
	if providers.IsKind(err, providers.NotFound) {
		return "", nil // already gone: Revoke will say so
	}
	if err != nil {
		return "", fmt.Errorf("revoke key %s of %s: last use of the old key: %w", m.KeyID, m.SecretID, err)
	}
	newUsed, err := lu.LastUsed(ctx, current, current.KeyID)
	if err != nil {
		return "", fmt.Errorf("revoke key %s of %s: last use of the new key %s: %w", m.KeyID, m.SecretID, current.KeyID, err)
	}
	oldInUse := oldUsed.After(m.NotBefore)
	newUnused := newUsed.IsZero()
	if !oldInUse && !newUnused {
		return "", nil
	}
	if oldInUse {
		h.count(m.Provider, MetricOldKeyInUse, "")
	}
	reason := "the new key has never been used"
	if oldInUse {
		reason = "the old key was used after the grace period, at " + oldUsed.UTC().Format(time.RFC3339)
	}
	if now.After(m.NotBefore.Add(h.opts.MaxDelay)) {
		log.Warn("revoking although "+reason+": the maximum revocation delay has passed", "max_delay", h.opts.MaxDelay.String())
		return "", nil
	}
	next := m
	next.Attempt++
	if err := h.queue.Send(ctx, next, h.opts.DeferInterval); err != nil {
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
