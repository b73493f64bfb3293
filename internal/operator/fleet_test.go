package operator

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/keyrotor/keyrotor/internal/inventory"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/revocation"
	"github.com/keyrotor/keyrotor/rotation"
)

// fleetEnv is the operator's test env with ListSecrets over the secrets it
// made, rotations run by the real engine inside RotateSecret, and a revoker
// delivering the queued messages at each poll. Rotations run one at a time
// (RegionInFlight 1): the fakes are not safe for concurrent use.
type fleetEnv struct {
	*env
	list    *listSM
	mu      sync.Mutex
	rotated map[string]int // RotateSecret calls per secret
	// failRotate fails RotateSecret for these secrets (nothing started).
	failRotate map[string]bool
	// beforeRotate runs before each RotateSecret (a test stops the run).
	beforeRotate func(secret string)
}

type countingSM struct {
	*listSM
	f *fleetEnv
}

func (c countingSM) RotateSecret(ctx context.Context, in *secretsmanager.RotateSecretInput, o ...func(*secretsmanager.Options)) (*secretsmanager.RotateSecretOutput, error) {
	id := aws.ToString(in.SecretId)
	if c.f.beforeRotate != nil {
		c.f.beforeRotate(id)
	}
	c.f.mu.Lock()
	c.f.rotated[id]++
	fail := c.f.failRotate[id]
	c.f.mu.Unlock()
	if fail {
		return nil, errors.New("AccessDeniedException: not authorized to invoke the rotation function")
	}
	return c.listSM.RotateSecret(ctx, in, o...)
}

func newFleetEnv(t *testing.T) *fleetEnv {
	e := newEnv(t)
	f := &fleetEnv{env: e, list: &listSM{fakeSM: e.sm}, rotated: map[string]int{}, failRotate: map[string]bool{}}
	e.op.SM = countingSM{listSM: f.list, f: f}
	e.op.Providers = func(name string) (providers.Provider, error) {
		if name != "fake" && name != "other" {
			return nil, errors.New("unknown")
		}
		return e.p, nil
	}
	e.sm.rotate = e.steps
	revoker := revocation.NewHandler(e.sm, e.q, map[string]providers.Provider{"fake": e.p, "other": e.p}, revocation.Options{Now: func() time.Time { return e.now }, Logger: quiet})
	e.op.Sleep = func(ctx context.Context, _ time.Duration) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, m := range e.q.msgs {
			if _, err := revoker.Process(context.Background(), m); err != nil {
				t.Fatal(err)
			}
		}
		e.q.msgs = nil
		e.now = e.now.Add(time.Second)
		return nil
	}
	return f
}

// secret makes a managed secret of provider with extra tags.
func (f *fleetEnv) secret(name, provider string, tags map[string]string) providers.Credential {
	k := f.p.Add("initial-" + name)
	all := map[string]string{rotation.TagManaged: "true"}
	for k, v := range tags {
		all[k] = v
	}
	f.sm.Create(name, `{"provider":"`+provider+`","key":"`+k.Secret+`","key_id":"`+k.ID+`"}`, all)
	f.sm.SetRotationEnabled(name, true)
	f.list.names = append(f.list.names, name)
	return f.current(name)
}

func (f *fleetEnv) run(opts FleetOptions) *FleetReport {
	f.t.Helper()
	if opts.Incident == "" {
		opts.Incident = "inc-1"
	}
	opts.RegionInFlight = 1
	rep, err := f.op.RotateFleet(context.Background(), opts)
	if err != nil {
		f.t.Fatal(err)
	}
	return rep
}

func outcomes(rep *FleetReport) map[string]string {
	m := map[string]string{}
	for _, it := range rep.Secrets {
		m[it.Secret] = it.Outcome
	}
	return m
}

func planned(items []FleetItem) []string {
	var names []string
	for _, it := range items {
		names = append(names, it.Secret)
	}
	sort.Strings(names)
	return names
}

// Each selector kind selects what it says, kinds combine with AND and the
// values of one kind with OR; globs use the admin-for matcher ('*' crosses
// '/').
func TestFleetSelectors(t *testing.T) {
	f := newFleetEnv(t)
	f.secret("prod/ci/deploy", "fake", map[string]string{inventory.TagUsedBy: "ci-runner deployer", inventory.TagCriticality: "high", "team": "infra"})
	f.secret("prod/pay/api", "other", map[string]string{inventory.TagUsedBy: "payment-service", inventory.TagCriticality: "critical", "team": "pay"})
	f.secret("dev/ci/deploy", "fake", map[string]string{inventory.TagUsedBy: "ci-runner", inventory.TagCriticality: "low", "team": "infra"})
	f.secret("prod/mail", "other", map[string]string{inventory.TagCriticality: "medium"})
	inv, err := inventory.Parse("inv.yaml", []byte(`api_keys:
  - name: mail
    provider: sendgrid
    environment: production
    used_by: [newsletter]
    vault_path: prod/mail
    rotation_frequency: 30d
    supports_dual_key: true
    provider_api: https://api.sendgrid.com
    criticality: critical
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		sel  Selector
		want []string
	}{
		{"exact name", Selector{Names: []string{"prod/mail"}}, []string{"prod/mail"}},
		{"glob crossing /", Selector{Names: []string{"prod/*"}}, []string{"prod/ci/deploy", "prod/mail", "prod/pay/api"}},
		{"names OR", Selector{Names: []string{"*/ci/*", "prod/mail"}}, []string{"dev/ci/deploy", "prod/ci/deploy", "prod/mail"}},
		{"provider", Selector{Providers: []string{"other"}}, []string{"prod/mail", "prod/pay/api"}},
		{"tag OR", Selector{Tags: []TagFilter{{"team", "pay"}, {"team", "nobody"}}}, []string{"prod/pay/api"}},
		{"criticality", Selector{Criticalities: []string{"high", "critical"}}, []string{"prod/ci/deploy", "prod/pay/api"}},
		{"used-by tag", Selector{UsedBy: []string{"ci-runner"}}, []string{"dev/ci/deploy", "prod/ci/deploy"}},
		{"used-by from the inventory", Selector{UsedBy: []string{"newsletter"}, Inventory: inv}, []string{"prod/mail"}},
		{"criticality from the inventory, not the tag", Selector{Criticalities: []string{"critical"}, Inventory: inv}, []string{"prod/mail"}},
		{"combination: AND across kinds", Selector{Names: []string{"prod/*"}, UsedBy: []string{"ci-runner", "payment-service"}, Providers: []string{"fake"}, Tags: []TagFilter{{"team", "infra"}}}, []string{"prod/ci/deploy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items, err := f.op.Plan(context.Background(), FleetOptions{Selector: tc.sel, Incident: "inc-1"})
			if err != nil {
				t.Fatal(err)
			}
			if got := planned(items); !slices.Equal(got, tc.want) {
				t.Fatalf("selected %v, want %v", got, tc.want)
			}
		})
	}
}

// A dry run changes nothing; its plan says what cannot be rotated and why:
// a Stripe key (by hand), a secret already rotating.
func TestFleetDryRunChangesNothing(t *testing.T) {
	f := newFleetEnv(t)
	f.secret("svc/a", "fake", nil)
	f.secret("svc/pay", "stripe", nil)
	f.secret("svc/busy", "fake", nil)
	f.sm.StartRotation("svc/busy", "v-busy")
	rep := f.run(FleetOptions{Selector: Selector{Names: []string{"svc/*"}}, Emergency: true, DryRun: true})
	for _, op := range []string{"RotateSecret", "PutSecretValue", "UpdateSecretVersionStage"} {
		if n := f.sm.Calls(op); n != 0 {
			t.Fatalf("a dry run called %s %d times", op, n)
		}
	}
	if rep.TagResource != 0 || len(f.rotated) != 0 {
		t.Fatalf("a dry run wrote: %+v", rep)
	}
	got := map[string]FleetItem{}
	for _, it := range rep.Secrets {
		got[it.Secret] = it
	}
	if got["svc/a"].Outcome != OutcomeWillRotate || !strings.Contains(got["svc/a"].Function, "keyrotor-fake") {
		t.Fatalf("svc/a: %+v", got["svc/a"])
	}
	if it := got["svc/pay"]; it.Outcome != OutcomeManual || !strings.Contains(it.Reason, "roll the key in the dashboard") {
		t.Fatalf("stripe: %+v", it)
	}
	if it := got["svc/busy"]; it.Outcome != OutcomeManual || !strings.Contains(it.Reason, "already in progress") {
		t.Fatalf("busy: %+v", it)
	}
	if rep.ExitCode() != ExitProblems {
		t.Fatalf("dry run exit %d", rep.ExitCode())
	}
}

// An emergency over a selection rotates each secret once, confirms every
// old key dead at the vendor, tags the incident, and a re-run does
// nothing.
func TestFleetEmergencyThenRerunDoesNothing(t *testing.T) {
	f := newFleetEnv(t)
	old := map[string]string{}
	for _, n := range []string{"svc/a", "svc/b", "svc/c"} {
		old[n] = f.secret(n, "fake", nil).KeyID
	}
	rep := f.run(FleetOptions{Selector: Selector{Names: []string{"svc/*"}}, Emergency: true})
	if rep.ExitCode() != ExitOK || rep.Counts[OutcomeRotated] != 3 {
		t.Fatalf("emergency: %+v", rep)
	}
	live := f.p.Live()
	for _, it := range rep.Secrets {
		if it.OldKeysDead == nil || !*it.OldKeysDead || live[old[it.Secret]] || !live[it.NewKeyID] || it.NewKeyID != f.current(it.Secret).KeyID {
			t.Fatalf("%s: %+v; live %v", it.Secret, it, live)
		}
		if tags(t, f.env, it.Secret)[TagIncident] != "inc-1" {
			t.Fatalf("%s not tagged with the incident", it.Secret)
		}
	}
	again := f.run(FleetOptions{Selector: Selector{Names: []string{"svc/*"}}, Emergency: true})
	if again.Counts[OutcomeSkipped] != 3 || again.Started != 0 || again.ExitCode() != ExitOK {
		t.Fatalf("re-run: %+v", again)
	}
	for n, c := range f.rotated {
		if c != 1 {
			t.Fatalf("%s rotated %d times", n, c)
		}
	}
}

// A run stopped mid-way (SIGTERM cancels the context) with one failure:
// the re-run with the same incident skips the k secrets done, retries the
// failed one and the ones not reached, and rotates none twice.
func TestFleetResumeAfterStop(t *testing.T) {
	f := newFleetEnv(t)
	names := []string{"svc/1", "svc/2", "svc/3", "svc/4", "svc/5"}
	for _, n := range names {
		f.secret(n, "fake", nil)
	}
	f.failRotate["svc/2"] = true
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Rotations run in name order one at a time; stop the run as the
	// fourth starts, after one success, one failure, one success.
	f.beforeRotate = func(s string) {
		if s == "svc/4" {
			cancel()
		}
	}
	rep, err := f.op.RotateFleet(ctx, FleetOptions{Selector: Selector{Names: []string{"svc/*"}}, Incident: "inc-r", RegionInFlight: 1, MaxInFlight: map[string]int{"fake": 1}})
	if err != nil {
		t.Fatal(err)
	}
	first := outcomes(rep)
	if first["svc/2"] != OutcomeFailed || first["svc/5"] != OutcomeNotStarted || rep.ExitCode() != ExitFailure {
		t.Fatalf("stopped run: %v (exit %d)", first, rep.ExitCode())
	}
	done := 0
	for _, n := range names {
		if first[n] == OutcomeRotated {
			done++
		}
	}
	if done == 0 {
		t.Fatalf("nothing finished before the stop: %v", first)
	}
	f.failRotate["svc/2"] = false
	f.beforeRotate = nil
	rep = f.run(FleetOptions{Selector: Selector{Names: []string{"svc/*"}}, Incident: "inc-r"})
	second := outcomes(rep)
	for _, n := range names {
		want := OutcomeRotated
		if first[n] == OutcomeRotated {
			want = OutcomeSkipped
		}
		if second[n] != want {
			t.Fatalf("re-run: %s is %s, want %s (first run: %v)", n, second[n], want, first)
		}
	}
	if rep.Counts[OutcomeSkipped] != done || rep.ExitCode() != ExitOK {
		t.Fatalf("re-run: %+v", rep)
	}
	for _, n := range names {
		want := 1
		if first[n] == OutcomeFailed {
			want = 2 // failed once, retried
		}
		if got := f.rotated[n]; got != want {
			t.Fatalf("%s: RotateSecret %d times, want %d (first run %s)", n, got, want, first[n])
		}
		if tags(t, f.env, n)[TagIncident] != "inc-r" {
			t.Fatalf("%s not tagged with the incident after the re-run", n)
		}
	}
}

// throttlingSM answers the first n calls of RotateSecret with a throttle.
type throttlingSM struct {
	SecretsManager
	mu sync.Mutex
	n  int
}

func (s *throttlingSM) RotateSecret(ctx context.Context, in *secretsmanager.RotateSecretInput, o ...func(*secretsmanager.Options)) (*secretsmanager.RotateSecretOutput, error) {
	s.mu.Lock()
	throttle := s.n > 0
	s.n--
	s.mu.Unlock()
	if throttle {
		return nil, &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}
	}
	return s.SecretsManager.RotateSecret(ctx, in, o...)
}

// Throttles from Secrets Manager are retried with a backoff, however many
// come: no secret is given up.
func TestFleetBacksOffOnThrottles(t *testing.T) {
	f := newFleetEnv(t)
	for _, n := range []string{"svc/a", "svc/b"} {
		f.secret(n, "fake", nil)
	}
	f.op.SM = &throttlingSM{SecretsManager: f.op.SM, n: 12}
	var waits []time.Duration
	sleep := f.op.Sleep
	f.op.Sleep = func(ctx context.Context, d time.Duration) error { waits = append(waits, d); return sleep(ctx, d) }
	rep := f.run(FleetOptions{Selector: Selector{Names: []string{"svc/*"}}})
	if rep.Counts[OutcomeRotated] != 2 || rep.Throttled != 12 || rep.ExitCode() != ExitOK {
		t.Fatalf("throttled run: %+v", rep)
	}
	if !slices.Contains(waits, throttleMax) || !slices.Contains(waits, throttleFirst) {
		t.Fatalf("backoff waits %v: want from %s doubling up to %s", waits, throttleFirst, throttleMax)
	}
}

// The exit code: 1 > 3 > 0, and 4 only when nothing was started.
func TestFleetExitCodes(t *testing.T) {
	for _, tc := range []struct {
		counts  map[string]int
		started int
		want    int
	}{
		{map[string]int{OutcomeRotated: 2}, 2, ExitOK},
		{map[string]int{OutcomeSkipped: 2}, 0, ExitOK},
		{map[string]int{OutcomeRotated: 1, OutcomeManual: 1}, 1, ExitProblems},
		{map[string]int{OutcomeFailed: 1, OutcomeManual: 1}, 1, ExitFailure},
		{map[string]int{OutcomeManual: 2}, 0, ExitRefused},
		{map[string]int{}, 0, ExitRefused},
	} {
		var items []FleetItem
		for o, n := range tc.counts {
			for range n {
				items = append(items, FleetItem{Outcome: o})
			}
		}
		r := &FleetReport{Counts: tc.counts, Started: tc.started, Secrets: items}
		if got := r.ExitCode(); got != tc.want {
			t.Fatalf("%v started %d: exit %d, want %d", tc.counts, tc.started, got, tc.want)
		}
	}
}

// An emergency whose old keys were not confirmed dead in time (the
// revocation was lost) is not rotated again by a re-run of the incident: the
// re-run re-checks its old keys and tags the incident once they are dead.
func TestFleetRerunRechecksUnconfirmedEmergency(t *testing.T) {
	f := newFleetEnv(t)
	old := f.secret("svc/slow", "fake", nil).KeyID
	lost := true
	f.p.Before = func(op string) error {
		if op == "Revoke" && lost {
			// The vendor answers "not found" but keeps the key.
			return providers.E("fake.Revoke", providers.NotFound, errors.New("lost"))
		}
		return nil
	}
	sel := Selector{Names: []string{"svc/*"}}
	first := f.run(FleetOptions{Selector: sel, Emergency: true, Timeout: 10 * time.Second})
	if outcomes(first)["svc/slow"] != OutcomeFailed || !f.p.Live()[old] {
		t.Fatalf("first run: %+v; want failed with the old key live", first.Secrets)
	}
	lost = false
	if err := f.p.Revoke(context.Background(), providers.Credential{}, old); err != nil { // the revoker's retry, or revoke-key
		t.Fatal(err)
	}
	again := f.run(FleetOptions{Selector: sel, Emergency: true, Timeout: 10 * time.Second})
	if outcomes(again)["svc/slow"] != OutcomeRotated || f.rotated["svc/slow"] != 1 {
		t.Fatalf("re-run: %+v, rotated %d times; want the old keys re-checked, not a second rotation", again.Secrets, f.rotated["svc/slow"])
	}
	if tags(t, f.env, "svc/slow")[TagIncident] != "inc-1" {
		t.Fatal("the re-checked secret is not tagged with the incident")
	}
}
