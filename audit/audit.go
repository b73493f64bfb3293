// Package audit checks the secrets keyrotor manages (tag keyrotor:managed=true)
// and publishes what it finds to CloudWatch with PutMetricData: each secret's
// key age and its ratio to the rotation interval, and the fleet's counts of
// stuck rotations, disabled rotations and overdue rotations.
//
// It reads Secrets Manager with ListSecrets only: its pages already carry the
// rotation rules, the dates, the tags and the staging labels, so the audit of N secrets
// costs ceil(N/100) Secrets Manager calls and ceil(metrics/1000) CloudWatch
// calls, where metrics is one KeyAgeDays per secret, one KeyAgeRatio per
// secret whose rotation is on and scheduled or that is a manual key with a
// reminder interval, five fleet metrics and the heartbeat.
//
// # Metrics (namespace KeyRotation unless configured)
//
// Per secret, dimension SecretName:
//   - KeyAgeDays: days since the current key was made: the latest of the
//     secret's last rotation (LastRotatedDate), its creation (CreatedDate)
//     and the time `keyrotor import` stored a hand-rolled key (tag
//     TagKeyCreatedAt; PutSecretValue does not set LastRotatedDate). See
//     KeySince, which `keyrotor status` uses too.
//   - KeyAgeRatio: KeyAgeDays over the rotation interval, for secrets whose
//     rotation is on, and for manual keys (tag keyrotor:manual=true: vendors
//     without a key API, such as Stripe) over their reminder interval (tag
//     keyrotor:rotation-frequency, written by `keyrotor inventory apply`).
//     Above 1 the key is late; the template alarms at 1.5.
//
// Fleet, no dimension:
//   - ManagedSecrets: secrets audited.
//   - MaxKeyAgeRatio: the largest KeyAgeRatio (absent when no secret has one).
//   - StuckRotations: secrets whose AWSPENDING label is on a version that is
//     not AWSCURRENT (a rotation that started and did not finish).
//   - RotationDisabled: managed secrets whose rotation is off, manual keys
//     (tag keyrotor:manual=true) excepted: their schedule is a key-age
//     reminder. See Status.RotationDisabled, which `keyrotor status` uses
//     too.
//   - RotationOverdue: secrets whose rotation is on and whose next rotation
//     date, plus its window, has passed.
//   - AuditorHeartbeat: 1, once per audit that listed every managed secret,
//     the last datum of the last PutMetricData batch. Every alarm on the
//     figures above treats missing data as not breaching (no secret, no
//     problem), so an auditor that stops running (its schedule disabled, a
//     permission removed, throttled) would silence them all; the template's
//     auditor-heartbeat alarm treats a missing heartbeat as breaching. An
//     audit whose listing fails publishes nothing, the heartbeat included.
package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor/metrics"
	"github.com/keyrotor/keyrotor/rotation"
)

// SecretsManager is the one Secrets Manager call the auditor makes.
type SecretsManager interface {
	ListSecrets(ctx context.Context, in *secretsmanager.ListSecretsInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretsOutput, error)
}

// CloudWatch is the one CloudWatch call the auditor makes.
type CloudWatch interface {
	PutMetricData(ctx context.Context, in *cloudwatch.PutMetricDataInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error)
}

// Metric names the auditor publishes.
const (
	MetricKeyAgeDays       = "KeyAgeDays"
	MetricKeyAgeRatio      = "KeyAgeRatio"
	MetricManagedSecrets   = "ManagedSecrets"
	MetricMaxKeyAgeRatio   = "MaxKeyAgeRatio"
	MetricStuckRotations   = "StuckRotations"
	MetricRotationDisabled = "RotationDisabled"
	MetricRotationOverdue  = "RotationOverdue"
	MetricAuditorHeartbeat = "AuditorHeartbeat"
)

// TagKeyCreatedAt is the tag `keyrotor import` sets to the time (RFC 3339)
// it stored a hand-rolled key as AWSCURRENT. The auditor reads it because
// PutSecretValue does not set LastRotatedDate. The auditor owns the name;
// the operator imports it from here, as it does TagManual and
// TagRotationFrequency below.
const TagKeyCreatedAt = "keyrotor:key-created-at"

// TagManual marks a key whose vendor has no key API: it is imported by hand
// and its rotation frequency is a key-age reminder. `keyrotor inventory
// apply` writes it, with TagRotationFrequency.
const TagManual = "keyrotor:manual"

// TagRotationFrequency holds a key's rotation frequency as the inventory
// gives it ("30d"; see ParseInterval): a manual key's reminder interval.
const TagRotationFrequency = "keyrotor:rotation-frequency"

// maxClockSkew is how far in the future a TagKeyCreatedAt may be (the
// importing machine's clock ahead of the auditor's) and still count, as
// now; a later one is ignored, so that it cannot hide a key's age.
const maxClockSkew = time.Hour

// DimensionSecretName is the dimension of the per-secret metrics.
const DimensionSecretName = "SecretName"

// MaxMetricsPerCall is PutMetricData's limit of metrics per request.
const MaxMetricsPerCall = 1000

// listPageSize is ListSecrets' largest page.
const listPageSize = 100

// DefaultRotationWindow is how long after NextRotationDate a rotation may
// still start when the rotation rules set no Duration: Secrets Manager's
// window then lasts the rest of the day.
const DefaultRotationWindow = 24 * time.Hour

// Options tune an Auditor. The zero value is usable.
type Options struct {
	// Namespace of the metrics (default metrics.DefaultNamespace).
	Namespace string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives one line per finding (default slog.Default()).
	Logger *slog.Logger
}

// Auditor audits the managed secrets and publishes the metrics.
type Auditor struct {
	sm   SecretsManager
	cw   CloudWatch
	opts Options
}

// New returns an Auditor over the given clients.
func New(sm SecretsManager, cw CloudWatch, opts Options) *Auditor {
	if opts.Namespace == "" {
		opts.Namespace = metrics.DefaultNamespace
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Auditor{sm: sm, cw: cw, opts: opts}
}

// Status is what the auditor found about one managed secret.
type Status struct {
	Name string
	// Since is when the current key was made (KeySince). Zero when there
	// is no date at all.
	Since time.Time
	// KeyAge is the time since Since.
	KeyAge time.Duration
	// RotationEnabled is Secrets Manager's RotationEnabled.
	RotationEnabled bool
	// Manual: the secret is tagged keyrotor:manual=true, a key rolled by
	// hand and imported; its rotation being off is not a finding.
	Manual bool
	// Interval is the rotation interval of the rules, else for a manual key
	// the reminder interval of its keyrotor:rotation-frequency tag; 0 when
	// rotation is off (and the key is not manual) or nothing sets one.
	Interval time.Duration
	// ScheduleError is set when the ScheduleExpression, or a manual key's
	// reminder interval, cannot be read.
	ScheduleError error
	// PendingVersion is the version holding AWSPENDING without AWSCURRENT:
	// the rotation is stuck when it is not empty.
	PendingVersion string
	// NextRotation is Secrets Manager's NextRotationDate (may be zero).
	NextRotation time.Time
	// Overdue: rotation is on and NextRotation plus the rotation window has
	// passed.
	Overdue bool
}

// RotationDisabled reports whether the secret is managed with its rotation
// off, and is not a manual key (tag keyrotor:manual=true), whose schedule is
// only a key-age reminder. `keyrotor status` applies the same rule, so that
// the two never disagree about a secret.
func (s Status) RotationDisabled() bool { return !s.RotationEnabled && !s.Manual }

// Stuck reports whether a rotation started and did not finish.
func (s Status) Stuck() bool { return s.PendingVersion != "" }

// Ratio is KeyAge over Interval, 0 when there is no interval or no age.
func (s Status) Ratio() float64 {
	if s.Interval <= 0 || s.Since.IsZero() {
		return 0
	}
	return float64(s.KeyAge) / float64(s.Interval)
}

// Managed reports whether e carries the tag keyrotor:managed=true exactly.
// ListSecrets' tag filters match keys and values separately and by prefix,
// so every entry is checked again.
func Managed(e smtypes.SecretListEntry) bool {
	for _, t := range e.Tags {
		if aws.ToString(t.Key) == rotation.TagManaged && aws.ToString(t.Value) == "true" {
			return true
		}
	}
	return false
}

// tag returns the value of the tag key, "" when e has none.
func tag(e smtypes.SecretListEntry, key string) string {
	for _, t := range e.Tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

// KeySince returns when the current key of e was made, as of now: the
// latest of LastRotatedDate, CreatedDate and the TagKeyCreatedAt tag (a key
// stored by `keyrotor import`, or by hand: PutSecretValue does not set
// LastRotatedDate). A tag that cannot be read, or is more than maxClockSkew
// in the future, is ignored; one less far in the future counts as now. Zero
// when there is no date at all. The auditor's key age and `keyrotor
// status`'s are this one rule.
func KeySince(e smtypes.SecretListEntry, now time.Time) time.Time {
	var since time.Time
	for _, t := range []*time.Time{e.LastRotatedDate, e.CreatedDate} {
		if t != nil && t.After(since) {
			since = *t
		}
	}
	if v := tag(e, TagKeyCreatedAt); v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil && !t.After(now.Add(maxClockSkew)) {
			if t.After(now) {
				t = now
			}
			if t.After(since) {
				since = t
			}
		}
	}
	return since
}

// Inspect returns the status of the secret e at now.
func Inspect(e smtypes.SecretListEntry, now time.Time) Status {
	s := Status{Name: aws.ToString(e.Name), RotationEnabled: aws.ToBool(e.RotationEnabled), Manual: tag(e, TagManual) == "true"}
	s.Since = KeySince(e, now)
	if !s.Since.IsZero() {
		s.KeyAge = now.Sub(s.Since)
	}
	if s.RotationEnabled {
		s.Interval, s.ScheduleError = Interval(e.RotationRules)
	}
	if s.Manual && s.Interval == 0 && s.ScheduleError == nil {
		if v := tag(e, TagRotationFrequency); v != "" {
			d, err := ParseInterval(v)
			if err != nil {
				s.ScheduleError = fmt.Errorf("tag %s: %w", TagRotationFrequency, err)
			} else {
				s.Interval = d
			}
		}
	}
	versions := make([]string, 0, len(e.SecretVersionsToStages))
	for v := range e.SecretVersionsToStages {
		versions = append(versions, v)
	}
	slices.Sort(versions)
	for _, v := range versions {
		stages := e.SecretVersionsToStages[v]
		if slices.Contains(stages, rotation.Pending) && !slices.Contains(stages, rotation.Current) {
			s.PendingVersion = v
		}
	}
	if e.NextRotationDate != nil {
		s.NextRotation = *e.NextRotationDate
	}
	if s.RotationEnabled && !s.NextRotation.IsZero() {
		s.Overdue = now.After(s.NextRotation.Add(rotationWindow(e.RotationRules)))
	}
	return s
}

func rotationWindow(rules *smtypes.RotationRulesType) time.Duration {
	if rules != nil && rules.Duration != nil {
		if d, err := time.ParseDuration(*rules.Duration); err == nil && d > 0 {
			return d
		}
	}
	return DefaultRotationWindow
}

// Report sums up one audit: the Lambda function's response.
type Report struct {
	Secrets          int      `json:"secrets"`
	MaxKeyAgeRatio   float64  `json:"max_key_age_ratio"`
	Stuck            []string `json:"stuck,omitempty"`
	RotationDisabled []string `json:"rotation_disabled,omitempty"`
	Overdue          []string `json:"overdue,omitempty"`
	BadSchedules     []string `json:"bad_schedules,omitempty"`
	Metrics          int      `json:"metrics"`
}

// Handle is the Lambda handler of the scheduled EventBridge event.
func (a *Auditor) Handle(ctx context.Context, _ events.EventBridgeEvent) (Report, error) {
	return a.Run(ctx)
}

// Run lists the managed secrets, inspects each, and publishes the metrics.
// Nothing is published when listing fails, so that partial counts never
// clear an alarm; a failed PutMetricData batch does not stop the others.
func (a *Auditor) Run(ctx context.Context) (Report, error) {
	now := a.opts.Now()
	log := a.opts.Logger
	var rep Report
	var data []cwtypes.MetricDatum
	datum := func(name string, v float64, unit cwtypes.StandardUnit, dims ...cwtypes.Dimension) {
		data = append(data, cwtypes.MetricDatum{MetricName: aws.String(name), Value: aws.Float64(v), Unit: unit, Dimensions: dims, Timestamp: aws.Time(now)})
	}
	hasRatio := false
	pages := secretsmanager.NewListSecretsPaginator(a.sm, &secretsmanager.ListSecretsInput{
		MaxResults: aws.Int32(listPageSize),
		Filters: []smtypes.Filter{
			{Key: smtypes.FilterNameStringTypeTagKey, Values: []string{rotation.TagManaged}},
			{Key: smtypes.FilterNameStringTypeTagValue, Values: []string{"true"}},
		},
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return rep, fmt.Errorf("audit: list managed secrets: %w", err)
		}
		for _, e := range page.SecretList {
			if !Managed(e) {
				continue
			}
			s := Inspect(e, now)
			rep.Secrets++
			dim := cwtypes.Dimension{Name: aws.String(DimensionSecretName), Value: aws.String(s.Name)}
			if !s.Since.IsZero() {
				datum(MetricKeyAgeDays, s.KeyAge.Hours()/24, cwtypes.StandardUnitNone, dim)
			}
			if r := s.Ratio(); r > 0 {
				datum(MetricKeyAgeRatio, r, cwtypes.StandardUnitNone, dim)
				rep.MaxKeyAgeRatio = max(rep.MaxKeyAgeRatio, r)
				hasRatio = true
			}
			a.logFindings(log, s, &rep)
		}
	}
	datum(MetricManagedSecrets, float64(rep.Secrets), cwtypes.StandardUnitCount)
	datum(MetricStuckRotations, float64(len(rep.Stuck)), cwtypes.StandardUnitCount)
	datum(MetricRotationDisabled, float64(len(rep.RotationDisabled)), cwtypes.StandardUnitCount)
	datum(MetricRotationOverdue, float64(len(rep.Overdue)), cwtypes.StandardUnitCount)
	if hasRatio {
		datum(MetricMaxKeyAgeRatio, rep.MaxKeyAgeRatio, cwtypes.StandardUnitNone)
	}
	// Last, so that it lands in the last batch: the heartbeat says the
	// whole audit was listed and published, not only that the auditor ran.
	datum(MetricAuditorHeartbeat, 1, cwtypes.StandardUnitCount)
	rep.Metrics = len(data)
	err := a.publish(ctx, data)
	log.Info("audit done", "secrets", rep.Secrets, "stuck", len(rep.Stuck), "rotation_disabled", len(rep.RotationDisabled),
		"overdue", len(rep.Overdue), "max_key_age_ratio", rep.MaxKeyAgeRatio, "metrics", rep.Metrics)
	return rep, err
}

func (a *Auditor) logFindings(log *slog.Logger, s Status, rep *Report) {
	if s.Stuck() {
		rep.Stuck = append(rep.Stuck, s.Name)
		log.Warn("rotation stuck: AWSPENDING is on a version that is not AWSCURRENT", "secret", s.Name, "pending_version", s.PendingVersion)
	}
	if s.RotationDisabled() {
		rep.RotationDisabled = append(rep.RotationDisabled, s.Name)
		log.Warn("rotation is disabled on a managed secret", "secret", s.Name)
	}
	if s.Overdue {
		rep.Overdue = append(rep.Overdue, s.Name)
		log.Warn("next rotation date has passed", "secret", s.Name, "next_rotation", s.NextRotation.UTC().Format(time.RFC3339))
	}
	if s.ScheduleError != nil {
		rep.BadSchedules = append(rep.BadSchedules, s.Name)
		log.Warn("rotation schedule not understood: no key age ratio", "secret", s.Name, "error", s.ScheduleError.Error())
	}
	if s.Manual && s.Interval == 0 && s.ScheduleError == nil {
		log.Warn("manual key without a reminder interval: no key age ratio", "secret", s.Name, "tag", TagRotationFrequency)
	}
}

// publish sends data in batches of at most MaxMetricsPerCall.
func (a *Auditor) publish(ctx context.Context, data []cwtypes.MetricDatum) error {
	var errs []error
	for batch := range slices.Chunk(data, MaxMetricsPerCall) {
		_, err := a.cw.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String(a.opts.Namespace), MetricData: batch})
		if err != nil {
			errs = append(errs, fmt.Errorf("audit: put %d metrics in %s: %w", len(batch), a.opts.Namespace, err))
		}
	}
	return errors.Join(errs...)
}
