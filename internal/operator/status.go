package operator

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor/audit"
	"github.com/keyrotor/keyrotor/internal/inventory"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/rotation"
)

// Rotation states of a secret.
const (
	RotationIdle       = "idle"
	RotationInProgress = "in-progress"
	RotationStuck      = "stuck"
	RotationDisabled   = "disabled"
)

// States of the previous key.
const (
	PreviousNone    = "none"
	PreviousLive    = "live"
	PreviousRevoked = "revoked"
	PreviousUnknown = "unknown"
	PreviousExpires = "expires" // a hand-rolled key (Stripe) with a recorded expiry
)

// Status is what `keyrotor status` shows about one secret. It never holds a
// key.
type Status struct {
	Secret   string `json:"secret"`
	Provider string `json:"provider,omitempty"`
	KeyID    string `json:"key_id,omitempty"`
	// KeyCreatedAt is when the current key was made, by the auditor's rule
	// (audit.KeySince: the latest of LastRotatedDate, CreatedDate and the
	// keyrotor:key-created-at tag), so that status and the key-age alarm
	// agree.
	KeyCreatedAt    *time.Time `json:"key_created_at,omitempty"`
	KeyAgeSeconds   int64      `json:"key_age_seconds"`
	RotationEnabled bool       `json:"rotation_enabled"`
	Schedule        string     `json:"schedule,omitempty"`
	// IntervalSeconds is the longest a key should live: the rotation
	// interval, else the inventory's rotation frequency (0: unknown).
	IntervalSeconds int64      `json:"interval_seconds"`
	LastRotated     *time.Time `json:"last_rotated,omitempty"`
	NextRotation    *time.Time `json:"next_rotation,omitempty"`
	// Rotation is idle, in-progress, stuck or disabled.
	Rotation       string     `json:"rotation"`
	PendingVersion string     `json:"pending_version_id,omitempty"`
	PendingSince   *time.Time `json:"pending_since,omitempty"`
	// Previous is none, live (in its grace period, or not yet revoked),
	// revoked, expires (a hand-rolled key) or unknown (the vendor could
	// not be asked).
	Previous      string `json:"previous"`
	PreviousKeyID string `json:"previous_key_id,omitempty"`
	// GraceUntil is when the previous key's grace period ends: the grace
	// period after the later of LastRotatedDate and the AWSCURRENT
	// version's CreatedDate (when createSecret stored it, a little before
	// finishSecret moved the label, so never later than the real end).
	GraceUntil *time.Time `json:"grace_until,omitempty"`
	// GraceSeconds is the grace period the rotation function uses: the
	// secret's keyrotor:grace-period tag, else the function's GRACE_PERIOD.
	// When neither can be read, GraceUnknown says why and no grace end is
	// shown: never a guess.
	GraceSeconds int64  `json:"grace_seconds"`
	GraceUnknown string `json:"grace_unknown,omitempty"`
	// OtherKeys are the keys the vendor holds for the secret's owner besides
	// AWSCURRENT's and AWSPREVIOUS's (not asked with NoVendor).
	OtherKeys []OtherKey `json:"other_keys,omitempty"`
	// Problems are what needs a person; empty when all is well.
	Problems []string `json:"problems"`
	// Warnings are risks that are not problems (they never change status's
	// exit code): a grace period that leaves the common readers no margin
	// (inventory.GraceWarning).
	Warnings []string `json:"warnings,omitempty"`
}

// StatusOptions tune Status.
type StatusOptions struct {
	// NoVendor skips asking the vendor whether the previous key is live.
	NoVendor bool
}

// Status returns the status of the named secrets, or of every managed
// secret (tag keyrotor:managed=true) when ids is empty. A secret that does
// not exist is an error; a problem with one secret is in its Problems.
func (o *Operator) Status(ctx context.Context, ids []string, opts StatusOptions) ([]Status, error) {
	if len(ids) == 0 {
		// ListSecrets gives what DescribeSecret would (tags, rotation,
		// labels, dates): no DescribeSecret per secret.
		entries, err := o.managed(ctx)
		if err != nil {
			return nil, err
		}
		out := make([]Status, 0, len(entries))
		for _, e := range entries {
			name := aws.ToString(e.Name)
			st, err := o.status(ctx, newSecret(name, describedEntry(e)), e, opts)
			if err != nil {
				return nil, err
			}
			out = append(out, st)
		}
		return out, nil
	}
	out := make([]Status, 0, len(ids))
	for _, id := range ids {
		s, err := o.describe(ctx, "status", id)
		if err != nil {
			return nil, err
		}
		st, err := o.status(ctx, s, listEntry(s.desc), opts)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// managed lists the secrets tagged keyrotor:managed=true, by name.
func (o *Operator) managed(ctx context.Context) ([]smtypes.SecretListEntry, error) {
	var list []smtypes.SecretListEntry
	in := &secretsmanager.ListSecretsInput{}
	for {
		out, err := o.SM.ListSecrets(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("status: secretsmanager.ListSecrets: %w", err)
		}
		for _, e := range out.SecretList {
			if e.DeletedDate != nil {
				continue
			}
			for _, t := range e.Tags {
				if aws.ToString(t.Key) == rotation.TagManaged && aws.ToString(t.Value) == "true" {
					list = append(list, e)
					break
				}
			}
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	sort.Slice(list, func(i, j int) bool { return aws.ToString(list[i].Name) < aws.ToString(list[j].Name) })
	return list, nil
}

// status is the status of one secret: s as described (or listed), entry
// its ListSecrets entry for the auditor's rules.
func (o *Operator) status(ctx context.Context, s *secret, entry smtypes.SecretListEntry, opts StatusOptions) (Status, error) {
	const op = "status"
	now := o.now()
	st := Status{Secret: s.name(), Rotation: RotationIdle, Previous: PreviousNone, Problems: []string{}}
	st.RotationEnabled = aws.ToBool(s.desc.RotationEnabled)
	st.LastRotated = s.desc.LastRotatedDate
	st.NextRotation = s.desc.NextRotationDate
	interval := o.interval(s, &st)
	st.IntervalSeconds = int64(interval / time.Second)
	grace, graceKnown, why := o.grace(ctx, s)
	if graceKnown {
		st.GraceSeconds = int64(grace / time.Second)
	} else {
		st.GraceUnknown = why
	}
	if err := o.versionDates(ctx, op, s); err != nil {
		return Status{}, err
	}

	cur, found, err := o.read(ctx, op, s.id, rotation.Current, "")
	if err != nil {
		st.Problems = append(st.Problems, "cannot read AWSCURRENT: "+err.Error())
		return st, nil
	}
	if !found {
		st.Problems = append(st.Problems, "no AWSCURRENT value")
		return st, nil
	}
	st.Provider, st.KeyID = cur.Provider, cur.KeyID
	// The auditor's rules (key age, rotation disabled); the value's own
	// date, then the version's, only when Secrets Manager gave no date
	// (emulators).
	audited := audit.Inspect(entry, now)
	created := audited.Since
	if created.IsZero() {
		created = cur.CreatedAt
	}
	if created.IsZero() {
		created = s.created[s.current]
	}
	if !created.IsZero() {
		c := created.UTC()
		st.KeyCreatedAt = &c
		st.KeyAgeSeconds = int64(now.Sub(created) / time.Second)
	}
	if cur.Key == "" && cur.KeyID == "" {
		st.Problems = append(st.Problems, "no key yet: the first rotation creates it")
	}
	missing, err := inventory.CheckBindings(ctx, o.SM, o.IAM, s.desc, cur)
	if err != nil {
		st.Problems = append(st.Problems, "cannot check the bindings: "+err.Error())
	}
	for _, m := range missing {
		st.Problems = append(st.Problems, "missing binding: "+m.String())
	}
	manual := audited.Manual || !hasKeyAPI(cur.Provider)

	switch {
	case s.pending != "":
		since := s.created[s.pending]
		if !since.IsZero() {
			t := since.UTC()
			st.PendingSince = &t
		}
		st.PendingVersion = s.pending
		st.Rotation = RotationInProgress
		if !since.IsZero() && now.Sub(since) > o.stuckAfter() {
			st.Rotation = RotationStuck
			st.Problems = append(st.Problems, fmt.Sprintf("rotation stuck: AWSPENDING on version %s since %s (run `keyrotor unstick %s`)", s.pending, since.UTC().Format(time.RFC3339), st.Secret))
		}
	case audited.RotationDisabled() && manual:
		// A key without a key API, not tagged as one: the auditor counts
		// it as rotation disabled, and so does status.
		st.Rotation = RotationDisabled
		st.Problems = append(st.Problems, fmt.Sprintf("a %s key (no key API) without the tag %s=true: the auditor counts it as rotation disabled; tag it with `aws secretsmanager tag-resource --secret-id %s --tags Key=%s,Value=true` (`keyrotor inventory apply` writes it)", cur.Provider, audit.TagManual, inventory.ShellQuote(st.Secret), audit.TagManual))
	case audited.RotationDisabled():
		st.Rotation = RotationDisabled
		st.Problems = append(st.Problems, "rotation is not enabled (set it with `keyrotor inventory apply`)")
	}
	if interval > 0 && !created.IsZero() && now.Sub(created) > interval*3/2 {
		what := "key older than 1.5 × its rotation interval"
		if manual {
			what += ": roll it at the vendor and run `keyrotor import`"
		}
		st.Problems = append(st.Problems, fmt.Sprintf("%s (%s > %s)", what, formatAge(now.Sub(created)), formatAge(interval)))
	}

	if !opts.NoVendor && !manual {
		o.reportOtherKeys(ctx, s, cur, &st)
	}

	if w := inventory.GraceWarning(grace); graceKnown && !manual && w != "" {
		st.Warnings = append(st.Warnings, w)
	}

	// The previous key.
	if exp := cur.Attr(FieldPreviousKeyExpiresAt); exp != "" {
		st.Previous = PreviousExpires
		st.PreviousKeyID = cur.Attr(FieldPreviousKeyID)
		if t, err := time.Parse(time.RFC3339, exp); err == nil {
			t = t.UTC()
			st.GraceUntil = &t
		}
		return st, nil
	}
	if s.previous == "" {
		return st, nil
	}
	prev, found, err := o.read(ctx, op, s.id, rotation.Previous, "")
	if err != nil || !found || prev.KeyID == "" || prev.KeyID == cur.KeyID {
		return st, nil
	}
	st.PreviousKeyID = prev.KeyID
	switched := s.created[s.current]
	if st.LastRotated != nil && st.LastRotated.After(switched) {
		switched = *st.LastRotated
	}
	if !switched.IsZero() && graceKnown {
		t := switched.Add(grace).UTC()
		st.GraceUntil = &t
	}
	st.Previous = PreviousUnknown
	if opts.NoVendor {
		return st, nil
	}
	p, err := o.provider(cur.Provider)
	if err != nil {
		st.Problems = append(st.Problems, "cannot ask the vendor about the previous key: "+err.Error())
		return st, nil
	}
	state, err := keyState(ctx, p, cur, prev.KeyID, prev)
	if err != nil {
		st.Problems = append(st.Problems, fmt.Sprintf("cannot ask %s about the previous key %s: %v", cur.Provider, prev.KeyID, err))
		return st, nil
	}
	st.Previous = string(state)
	if state == KeyLive && st.GraceUntil != nil && now.After(st.GraceUntil.Add(24*time.Hour)) {
		st.Problems = append(st.Problems, fmt.Sprintf("previous key %s still live more than 24h after its grace period ended (revocation failing? check the dead-letter queue)", prev.KeyID))
	}
	return st, nil
}

// reportOtherKeys lists, in st, the keys at the vendor that neither
// AWSCURRENT nor AWSPREVIOUS holds, each as a problem that says what becomes
// of it and what to do.
func (o *Operator) reportOtherKeys(ctx context.Context, s *secret, cur providers.Credential, st *Status) {
	p, err := o.provider(cur.Provider)
	if err != nil {
		return // said where the previous key is asked about
	}
	l, ok := p.(providers.Lister)
	if !ok {
		return
	}
	var prev providers.Credential
	if s.previous != "" {
		if prev, _, err = o.read(ctx, "status", s.id, rotation.Previous, ""); err != nil {
			st.Problems = append(st.Problems, "cannot read AWSPREVIOUS: "+err.Error())
			return
		}
	}
	others, err := o.otherKeys(ctx, s, l, cur, prev)
	if err != nil {
		st.Problems = append(st.Problems, "cannot list the other keys at the vendor: "+err.Error())
		return
	}
	st.OtherKeys = others
	for _, k := range others {
		switch k.State {
		case OtherUnowned:
			st.Problems = append(st.Problems, fmt.Sprintf("key %s at %s is not provably this secret's (a key keyrotor did not mint, or named under the first naming scheme): keyrotor never revokes it; delete it at the vendor once you know it is unused", k.KeyID, cur.Provider))
		case OtherAbandoned:
			st.Problems = append(st.Problems, fmt.Sprintf("key %s is held only by the unlabelled version %s (superseded within the grace period, or minted by a rotation a manual put-secret-value abandoned): the revoker or the next rotation revokes it after the grace period; `keyrotor revoke-key %s %s` revokes it now", k.KeyID, k.Version, st.Secret, k.KeyID))
		case OtherOrphan:
			st.Problems = append(st.Problems, fmt.Sprintf("key %s is named for this secret but no version holds it (an interrupted rotation): the next rotation revokes it", k.KeyID))
		}
	}
}

// describedEntry is a ListSecrets entry as DescribeSecret would return it.
func describedEntry(e smtypes.SecretListEntry) *secretsmanager.DescribeSecretOutput {
	return &secretsmanager.DescribeSecretOutput{
		ARN: e.ARN, Name: e.Name, Description: e.Description, KmsKeyId: e.KmsKeyId, OwningService: e.OwningService,
		PrimaryRegion: e.PrimaryRegion, CreatedDate: e.CreatedDate, DeletedDate: e.DeletedDate,
		LastAccessedDate: e.LastAccessedDate, LastChangedDate: e.LastChangedDate, LastRotatedDate: e.LastRotatedDate,
		NextRotationDate: e.NextRotationDate, RotationEnabled: e.RotationEnabled, RotationLambdaARN: e.RotationLambdaARN,
		RotationRules: e.RotationRules, Tags: e.Tags, VersionIdsToStages: e.SecretVersionsToStages,
	}
}

// listEntry is the ListSecrets entry of a described secret, for the
// auditor's rules.
func listEntry(d *secretsmanager.DescribeSecretOutput) smtypes.SecretListEntry {
	return smtypes.SecretListEntry{
		ARN: d.ARN, Name: d.Name, CreatedDate: d.CreatedDate, LastRotatedDate: d.LastRotatedDate,
		RotationEnabled: d.RotationEnabled, RotationRules: d.RotationRules, NextRotationDate: d.NextRotationDate,
		Tags: d.Tags, SecretVersionsToStages: d.VersionIdsToStages,
	}
}

// interval is the rotation interval of a secret, and fills the schedule.
func (o *Operator) interval(s *secret, st *Status) time.Duration {
	var d time.Duration
	if r := s.desc.RotationRules; r != nil {
		expr := aws.ToString(r.ScheduleExpression)
		switch {
		case expr != "":
			st.Schedule = expr
			d, _ = audit.ScheduleInterval(expr)
		case aws.ToInt64(r.AutomaticallyAfterDays) > 0:
			n := aws.ToInt64(r.AutomaticallyAfterDays)
			st.Schedule = fmt.Sprintf("every %d days", n)
			d = time.Duration(n) * 24 * time.Hour
		}
	}
	if d == 0 {
		// The inventory's rotation frequency (a cron schedule, or a
		// hand-rolled key's reminder).
		if v := s.tags[audit.TagRotationFrequency]; v != "" {
			if st.Schedule == "" {
				st.Schedule = "reminder every " + v
			}
			d, _ = audit.ParseInterval(v)
		}
	}
	return d
}

// formatAge writes a duration as days and hours, or minutes and seconds.
func formatAge(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d >= time.Hour:
		return fmt.Sprintf("%dh%02dm", d/time.Hour, (d%time.Hour)/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%02ds", d/time.Minute, (d%time.Minute)/time.Second)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// FormatAge is formatAge for the CLI.
func FormatAge(d time.Duration) string { return formatAge(d) }

// hasKeyAPI reports whether keyrotor can mint keys for the provider.
func hasKeyAPI(provider string) bool {
	p, ok := inventory.LookupProvider(provider)
	return !ok || p.KeyAPI
}
