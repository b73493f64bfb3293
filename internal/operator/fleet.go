package operator

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/internal/inventory"
	"github.com/keyrotor/keyrotor/rotation"
)

// Fleet rotation: one command rotates every secret of a selection (after an
// incident: every key a compromised system could read), within the quotas,
// and ends with a report that proves which old keys are dead.
//
// Each secret goes through Rotate, exactly as `keyrotor rotate SECRET
// --wait` (or --emergency) would: the same refusals, the same waits. What
// the fleet adds is the selection, the plan, the bounds on concurrency, the
// backoff on throttles and the resume: a secret whose rotation finished
// (and, in an emergency, whose superseded keys the vendor no longer knows)
// is tagged keyrotor:incident=ID, and a run with the same ID skips it.

// TagIncident, on a managed secret, names the incident whose fleet rotation
// finished on it (and, for an emergency, confirmed its old keys dead).
const TagIncident = "keyrotor:incident"

// TagIncidentRotated, on a managed secret, names the incident whose
// emergency rotation of it finished while its old keys were not yet
// confirmed dead: a re-run with the same ID does not rotate it again, it
// re-checks the old keys and tags TagIncident once they are dead.
const TagIncidentRotated = "keyrotor:incident-rotated"

// Outcomes of a secret in a fleet rotation.
const (
	OutcomeWillRotate = "will-rotate" // dry run: would be rotated
	OutcomeRecheck    = "recheck"     // rotated earlier in this incident: only its old keys are checked again
	OutcomeRotated    = "rotated"     // finished (emergency: every superseded key confirmed dead)
	OutcomeSkipped    = "skipped"     // already done in this incident
	OutcomeManual     = "needs-human" // cannot be rotated here: Reason says why and what to do
	OutcomeFailed     = "failed"      // the rotation failed or did not finish: Reason; a re-run retries it
	OutcomeNotStarted = "not-started" // the run was stopped before its turn; a re-run rotates it
)

// Quota defaults. Secrets Manager allows 50 writes per second per region
// for PutSecretValue and UpdateSecretVersionStage together, and 50
// RotateSecret; a rotation makes about three writes, so 80% of the quota is
// 13.3 rotations started per second per (account, region). TagResource has
// its own 50/s, and the fleet makes at most two per rotation (the emergency
// token, the incident), 27/s at that rate.
const (
	DefaultRegionRate     = 13.3
	DefaultRegionInFlight = 20 // each in-flight rotation polls DescribeSecret once a second (50/s)
	DefaultProviderFlight = 10
)

// FleetOptions tune RotateFleet.
type FleetOptions struct {
	Selector  Selector
	Emergency bool
	// DryRun plans and changes nothing.
	DryRun bool
	// Incident is the run's resume key (required).
	Incident string
	// Timeout bounds each secret's wait (default 15 minutes).
	Timeout time.Duration
	// MaxInFlight bounds the rotations in flight per provider (default
	// DefaultProviderFlight each).
	MaxInFlight map[string]int
	// RegionInFlight and RegionRate bound the rotations in flight and
	// started per second per (account, region).
	RegionInFlight int
	RegionRate     float64
	// Progress receives each secret's row when its outcome is known (and
	// once with OutcomeWillRotate... when it starts: Started true). It is
	// called from several goroutines, one call at a time.
	Progress func(item FleetItem, started bool)
}

// FleetItem is one row of the report. It never holds a key.
type FleetItem struct {
	Secret   string `json:"secret"`
	Provider string `json:"provider,omitempty"`
	Function string `json:"function,omitempty"` // the rotation function's ARN
	Outcome  string `json:"outcome"`
	Reason   string `json:"reason,omitempty"`
	// VersionID is the rotation's ClientRequestToken.
	VersionID string `json:"version_id,omitempty"`
	OldKeyID  string `json:"old_key_id,omitempty"`
	NewKeyID  string `json:"new_key_id,omitempty"`
	// OldKeysDead (emergency only) is true once the vendor no longer knows
	// any superseded key of the secret.
	OldKeysDead *bool `json:"old_keys_dead,omitempty"`
	// LiveKeys are the superseded keys still live, each with the command
	// that kills it.
	LiveKeys []LiveKey `json:"live_keys,omitempty"`

	region string
	sec    *secret
}

// LiveKey is a superseded key still live after the run.
type LiveKey struct {
	KeyID   string `json:"key_id"`
	State   string `json:"state"`
	Command string `json:"command"`
}

// FleetReport is the run's report: the durable proof of what was rotated
// and which old keys are dead.
type FleetReport struct {
	Incident  string      `json:"incident"`
	Emergency bool        `json:"emergency"`
	DryRun    bool        `json:"dry_run"`
	StartedAt time.Time   `json:"started_at"`
	EndedAt   time.Time   `json:"ended_at"`
	Secrets   []FleetItem `json:"secrets"`
	// Counts are the rows by outcome.
	Counts map[string]int `json:"counts"`
	// Throttled counts the AWS calls answered with a throttle and retried;
	// TagResource the fleet's own tag writes.
	Throttled   int64 `json:"throttled"`
	TagResource int64 `json:"tag_resource_calls"`
	// Started is how many rotations the run started.
	Started int `json:"started"`
}

// ExitCode is the run's exit code: 1 when a secret failed (or was not
// reached), else 3 when one needs a person, else 0; 4 (refused) only when
// nothing was started and something (or nothing at all) was selected that
// cannot be rotated.
func (r *FleetReport) ExitCode() int {
	switch {
	case r.Counts[OutcomeFailed] > 0 || r.Counts[OutcomeNotStarted] > 0:
		return ExitFailure
	case r.Started == 0 && !r.DryRun && (len(r.Secrets) == 0 || r.Counts[OutcomeManual] > 0):
		return ExitRefused
	case r.Counts[OutcomeManual] > 0:
		return ExitProblems
	}
	return ExitOK
}

// Plan lists the selected secrets with what a fleet rotation would do to
// each, without changing anything.
func (o *Operator) Plan(ctx context.Context, opts FleetOptions) ([]FleetItem, error) {
	op := "rotate"
	if opts.Emergency {
		op = "emergency rotate"
	}
	entries, err := o.selectListed(ctx, opts.Selector)
	if err != nil {
		return nil, err
	}
	var items []FleetItem
	for _, e := range entries {
		name := aws.ToString(e.Name)
		s := newSecret(name, describedEntry(e))
		it := FleetItem{Secret: name, Function: aws.ToString(e.RotationLambdaARN), sec: s}
		if id, err := keyrotor.ParseARN(aws.ToString(e.ARN)); err == nil {
			it.region = id.Account + "/" + id.Region
		}
		cur, found, err := o.read(ctx, op, name, rotation.Current, "")
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if found {
			it.Provider, it.OldKeyID = cur.Provider, cur.KeyID
		}
		if !opts.Selector.matchesProvider(it.Provider) {
			continue
		}
		switch _, _, err := o.rotatable(ctx, op, s, opts.Emergency); {
		case opts.Incident != "" && s.tags[TagIncident] == opts.Incident:
			it.Outcome, it.Reason = OutcomeSkipped, "already done in incident "+opts.Incident
		case opts.Incident != "" && opts.Emergency && s.tags[TagIncidentRotated] == opts.Incident:
			it.Outcome, it.Reason = OutcomeRecheck, "rotated in incident "+opts.Incident+" before: its old keys are checked again, not rotated"
		case err == nil:
			it.Outcome = OutcomeWillRotate
		case ctx.Err() != nil:
			return nil, ctx.Err()
		default:
			var r *RefusedError
			it.Outcome, it.Reason = OutcomeManual, err.Error()
			if errors.As(err, &r) {
				it.Reason = r.Reason
			}
		}
		items = append(items, it)
	}
	return items, nil
}

// RotateFleet rotates the selection: the plan, then every secret the plan
// can rotate, concurrently within the bounds, each through Rotate. A
// secret's failure never stops the others; a stopped run (ctx) lets the
// rotations in flight report and marks the rest not started. The report is
// returned with the error only when the run could not plan at all.
func (o *Operator) RotateFleet(ctx context.Context, opts FleetOptions) (*FleetReport, error) {
	if opts.Incident == "" {
		return nil, errors.New("rotate: a fleet rotation needs an incident id")
	}
	rep := &FleetReport{Incident: opts.Incident, Emergency: opts.Emergency, DryRun: opts.DryRun, StartedAt: o.now()}
	ts := &throttledSM{SecretsManager: o.SM, o: o}
	fo := o.withSM(ts)
	items, err := fo.Plan(ctx, opts)
	if err != nil {
		return nil, err
	}
	if !opts.DryRun {
		rep.Started = fo.runFleet(ctx, opts, items)
	}
	for i := range items {
		items[i].sec = nil
	}
	rep.Secrets = items
	rep.Counts = map[string]int{}
	for _, it := range items {
		rep.Counts[it.Outcome]++
	}
	rep.Throttled, rep.TagResource = ts.throttled.Load(), ts.tags.Load()
	rep.EndedAt = o.now()
	return rep, nil
}

// withSM is a copy of the operator over another Secrets Manager client,
// printing nothing itself (a fleet run reports per secret).
func (o *Operator) withSM(sm SecretsManager) *Operator {
	return &Operator{SM: sm, Providers: o.Providers, Now: o.Now, Sleep: o.Sleep, PollInterval: o.PollInterval,
		StuckAfter: o.StuckAfter, NewToken: o.NewToken, Lambda: o.Lambda, SQS: o.SQS, RevocationQueueURL: o.RevocationQueueURL,
		IAM: o.IAM, AbandonMargin: o.AbandonMargin}
}

// runFleet rotates the items planned OutcomeWillRotate and returns how
// many it started.
func (o *Operator) runFleet(ctx context.Context, opts FleetOptions, items []FleetItem) int {
	regionFlight := opts.RegionInFlight
	if regionFlight <= 0 {
		regionFlight = DefaultRegionInFlight
	}
	rate := opts.RegionRate
	if rate <= 0 {
		rate = DefaultRegionRate
	}
	var (
		mu      sync.Mutex // guards the maps, items' rows and Progress
		regions = map[string]chan struct{}{}
		gates   = map[string]*startGate{}
		started int
		wg      sync.WaitGroup
	)
	slot := func(m map[string]chan struct{}, key string, n int) chan struct{} {
		if m[key] == nil {
			m[key] = make(chan struct{}, n)
		}
		return m[key]
	}
	report := func(it *FleetItem, row FleetItem, start bool) {
		mu.Lock()
		defer mu.Unlock()
		*it = row
		if start {
			started++
		}
		if opts.Progress != nil {
			opts.Progress(row, start)
		}
	}
	// One dispatcher per provider starts its secrets in plan order, each
	// once it holds a slot of its provider and of its region and its
	// region's start gate lets it: a slow vendor never holds up another.
	byProvider := map[string][]*FleetItem{}
	var order []string
	for i := range items {
		it := &items[i]
		if it.Outcome != OutcomeWillRotate && it.Outcome != OutcomeRecheck {
			continue
		}
		if byProvider[it.Provider] == nil {
			order = append(order, it.Provider)
		}
		byProvider[it.Provider] = append(byProvider[it.Provider], it)
	}
	var dispatchers sync.WaitGroup
	for _, provider := range order {
		n := DefaultProviderFlight
		if v, ok := opts.MaxInFlight[provider]; ok && v > 0 {
			n = v
		}
		vs := make(chan struct{}, n)
		dispatchers.Add(1)
		go func() {
			defer dispatchers.Done()
			for _, it := range byProvider[provider] {
				row := *it
				mu.Lock()
				rs := slot(regions, it.region, regionFlight)
				if gates[it.region] == nil {
					gates[it.region] = &startGate{o: o, every: time.Duration(float64(time.Second) / rate)}
				}
				gate := gates[it.region]
				mu.Unlock()
				if !acquire(ctx, vs) {
					row.Outcome, row.Reason = OutcomeNotStarted, "the run was stopped first"
					report(it, row, false)
					continue
				}
				if !acquire(ctx, rs) {
					<-vs
					row.Outcome, row.Reason = OutcomeNotStarted, "the run was stopped first"
					report(it, row, false)
					continue
				}
				if gate.wait(ctx) != nil {
					<-rs
					<-vs
					row.Outcome, row.Reason = OutcomeNotStarted, "the run was stopped first"
					report(it, row, false)
					continue
				}
				report(it, row, true)
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-rs; <-vs }()
					report(it, o.rotateOne(ctx, opts, row), false)
				}()
			}
		}()
	}
	dispatchers.Wait()
	wg.Wait()
	return started
}

// acquire takes a slot of sem unless ctx ends first.
func acquire(ctx context.Context, sem chan struct{}) bool {
	if ctx.Err() != nil {
		return false
	}
	select {
	case sem <- struct{}{}:
		if ctx.Err() != nil {
			<-sem
			return false
		}
		return true
	case <-ctx.Done():
		return false
	}
}

// rotateOne rotates one secret through Rotate and records the outcome;
// once it is done (emergency: confirmed dead) it tags the incident.
func (o *Operator) rotateOne(ctx context.Context, opts FleetOptions, row FleetItem) FleetItem {
	ropts := RotateOptions{Wait: true, Emergency: opts.Emergency, Timeout: opts.Timeout, ProgressEvery: time.Hour}
	var res RotateResult
	var err error
	if row.Outcome == OutcomeRecheck {
		res, err = o.recheckSuperseded(ctx, row.Secret, ropts)
	} else {
		res, err = o.Rotate(ctx, row.Secret, ropts)
	}
	row.VersionID, row.NewKeyID = res.VersionID, res.NewKeyID
	if res.OldKeyID != "" {
		row.OldKeyID = res.OldKeyID
	}
	if opts.Emergency && res.Finished {
		dead := err == nil
		row.OldKeysDead = &dead
		for _, k := range res.Superseded {
			if k.State != KeyRevoked {
				row.LiveKeys = append(row.LiveKeys, LiveKey{KeyID: k.KeyID, State: stateOrUnknown(k),
					Command: "keyrotor revoke-key " + inventory.ShellQuote(row.Secret) + " " + inventory.ShellQuote(k.KeyID)})
			}
		}
	}
	var r *RefusedError
	switch {
	case errors.As(err, &r):
		row.Outcome, row.Reason = OutcomeManual, r.Reason
		return row
	case err != nil:
		row.Outcome, row.Reason = OutcomeFailed, err.Error()
		if opts.Emergency && res.Finished {
			// Rotated, old keys not confirmed dead: a re-run re-checks
			// them instead of rotating again.
			_, _ = o.SM.TagResource(context.WithoutCancel(ctx), &secretsmanager.TagResourceInput{
				SecretId: aws.String(row.Secret),
				Tags:     []smtypes.Tag{{Key: aws.String(TagIncidentRotated), Value: aws.String(opts.Incident)}},
			})
		}
		return row
	}
	row.Outcome, row.Reason = OutcomeRotated, ""
	// A stopped run still records what finished: the tag is what makes the
	// re-run skip it.
	if _, err := o.SM.TagResource(context.WithoutCancel(ctx), &secretsmanager.TagResourceInput{
		SecretId: aws.String(row.Secret),
		Tags:     []smtypes.Tag{{Key: aws.String(TagIncident), Value: aws.String(opts.Incident)}},
	}); err != nil {
		row.Outcome = OutcomeFailed
		row.Reason = fmt.Sprintf("rotated, but secretsmanager.TagResource (%s) failed, so a re-run rotates it again: %v", TagIncident, err)
	}
	return row
}

// recheckSuperseded is the second half of an emergency Rotate, for a secret
// an earlier run of the incident rotated: wait until every superseded key is
// dead, without rotating again.
func (o *Operator) recheckSuperseded(ctx context.Context, id string, opts RotateOptions) (RotateResult, error) {
	const op = "rotate"
	s, err := o.describe(ctx, op, id)
	if err != nil {
		return RotateResult{}, err
	}
	res := RotateResult{Secret: s.name(), Emergency: true, Finished: true}
	cur, err := o.readCurrent(ctx, op, s)
	if err != nil {
		return res, err
	}
	res.NewKeyID = cur.KeyID
	return res, o.awaitSuperseded(ctx, op, s, cur, o.newWaitLine(res.Secret, opts), &res)
}

func stateOrUnknown(k SupersededKey) string {
	if k.State == "" {
		return "unknown"
	}
	return string(k.State)
}

// startGate spaces the rotations started in one (account, region) by
// every, on the operator's clock.
type startGate struct {
	o     *Operator
	every time.Duration
	mu    sync.Mutex
	next  time.Time
}

func (g *startGate) wait(ctx context.Context) error {
	g.mu.Lock()
	now := g.o.now()
	at := g.next
	if at.Before(now) {
		at = now
	}
	g.next = at.Add(g.every)
	g.mu.Unlock()
	if d := at.Sub(now); d > 0 {
		return g.o.sleep(ctx, d)
	}
	return ctx.Err()
}

// SortItems orders a report's rows for people: what needs action first
// (failed, needs-human), then by name.
func SortItems(items []FleetItem) {
	rank := map[string]int{OutcomeFailed: 0, OutcomeNotStarted: 1, OutcomeManual: 2}
	sort.SliceStable(items, func(i, j int) bool {
		ri, ok := rank[items[i].Outcome]
		if !ok {
			ri = 9
		}
		rj, ok := rank[items[j].Outcome]
		if !ok {
			rj = 9
		}
		if ri != rj {
			return ri < rj
		}
		return items[i].Secret < items[j].Secret
	})
}
