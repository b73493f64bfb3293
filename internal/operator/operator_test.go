package operator

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor/audit"
	"github.com/keyrotor/keyrotor/internal/fakeprovider"
	"github.com/keyrotor/keyrotor/internal/smfake"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/revocation"
	"github.com/keyrotor/keyrotor/rotation"
)

// Fast unit tests over the in-memory Secrets Manager and vendor; the CLI's
// tests in cmd/keyrotor run the same commands against moto, the compiled
// functions and the reference gateway.

// fakeSM adds the calls the operator makes beyond the engine's to smfake.
// RotateSecret starts a rotation (AWSPENDING on a version without a value)
// and, when rotate is set, runs it as Secrets Manager would.
type fakeSM struct {
	*smfake.SM
	rotate func(secret, token string) error
	// beforeStage and afterStage run around UpdateSecretVersionStage,
	// outside smfake's lock, so that they may change the secret (a step
	// of the rotation function racing the operator).
	beforeStage, afterStage func()
	// afterGet runs after a GetSecretValue, outside smfake's lock.
	afterGet func(in *secretsmanager.GetSecretValueInput)
}

func (f *fakeSM) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	out, err := f.SM.GetSecretValue(ctx, in, opts...)
	if f.afterGet != nil {
		f.afterGet(in)
	}
	return out, err
}

func (f *fakeSM) UpdateSecretVersionStage(ctx context.Context, in *secretsmanager.UpdateSecretVersionStageInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.UpdateSecretVersionStageOutput, error) {
	if f.beforeStage != nil {
		f.beforeStage()
	}
	out, err := f.SM.UpdateSecretVersionStage(ctx, in, opts...)
	if err == nil && f.afterStage != nil {
		f.afterStage()
	}
	return out, err
}

// DescribeSecret names a rotation function, as for a secret under rotation.
func (f *fakeSM) DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	out, err := f.SM.DescribeSecret(ctx, in, opts...)
	if err == nil && out.RotationLambdaARN == nil {
		out.RotationLambdaARN = aws.String("arn:aws:lambda:us-east-1:123456789012:function:keyrotor-fake")
	}
	return out, err
}

func (f *fakeSM) TagResource(_ context.Context, in *secretsmanager.TagResourceInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.TagResourceOutput, error) {
	for _, t := range in.Tags {
		f.Tag(aws.ToString(in.SecretId), aws.ToString(t.Key), aws.ToString(t.Value))
	}
	return &secretsmanager.TagResourceOutput{}, nil
}

func (f *fakeSM) RotateSecret(_ context.Context, in *secretsmanager.RotateSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.RotateSecretOutput, error) {
	id, token := aws.ToString(in.SecretId), aws.ToString(in.ClientRequestToken)
	if token == "" {
		return nil, errors.New("the operator must pass a ClientRequestToken")
	}
	f.StartRotation(id, token)
	if f.rotate != nil {
		if err := f.rotate(id, token); err != nil {
			return nil, err
		}
	}
	return &secretsmanager.RotateSecretOutput{VersionId: aws.String(token)}, nil
}

func (f *fakeSM) ListSecrets(context.Context, *secretsmanager.ListSecretsInput, ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretsOutput, error) {
	return &secretsmanager.ListSecretsOutput{}, nil
}

// queue keeps the revocation messages the engine sends.
type queue struct{ msgs []revocation.Message }

func (q *queue) Send(_ context.Context, m revocation.Message, _ time.Duration) error {
	q.msgs = append(q.msgs, m)
	return nil
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type env struct {
	t   *testing.T
	sm  *fakeSM
	p   *fakeprovider.Provider
	q   *queue
	op  *Operator
	now time.Time
	// The rotation function's configuration, the revocation queue the
	// operator sends to, and IAM users' tags (wired by wire).
	lambda *fakeLambda
	sqs    *fakeSQS
	iam    *fakeIAM
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, sm: &fakeSM{SM: smfake.New()}, p: fakeprovider.New(), q: &queue{}, now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC),
		lambda: &fakeLambda{timeout: 60, env: map[string]string{"REVOCATION_QUEUE_URL": fakeQueueURL, "GRACE_PERIOD": "1h"}},
		sqs:    &fakeSQS{}, iam: &fakeIAM{tags: map[string]map[string]string{}}}
	e.op = &Operator{SM: e.sm, Providers: func(name string) (providers.Provider, error) {
		if name != "fake" {
			return nil, errors.New("unknown")
		}
		return e.p, nil
	}, Now: func() time.Time { return e.now }}
	e.p.Now = func() time.Time { return e.now }
	wire(e)
	return e
}

// rotate runs the real engine's four steps, as Secrets Manager would.
func (e *env) rotate(secret, token string) {
	e.t.Helper()
	e.sm.StartRotation(secret, token)
	if err := e.steps(secret, token); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) steps(secret, token string) error {
	return e.stepsUpTo(secret, token, "finishSecret")
}

// stepsUpTo runs the engine's steps up to and including last.
func (e *env) stepsUpTo(secret, token, last string) error {
	r := rotation.New(e.sm, e.p, e.q, rotation.Options{GracePeriod: time.Hour, Now: func() time.Time { return e.now }, Logger: quiet,
		Settle: map[string]rotation.Settle{"fake": {Successes: 1}}})
	for _, step := range []string{"createSecret", "setSecret", "testSecret", "finishSecret"} {
		if err := r.Handle(context.Background(), events.SecretsManagerSecretRotationEvent{Step: step, SecretID: secret, ClientRequestToken: token}); err != nil {
			return err
		}
		if step == last {
			break
		}
	}
	return nil
}

func (e *env) current(secret string) providers.Credential {
	e.t.Helper()
	out, err := e.sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(secret), VersionStage: aws.String(rotation.Current)})
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := providers.ParseSecret(aws.ToString(out.SecretString))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) managedSecret(name string) providers.Credential {
	k := e.p.Add("initial-" + name)
	e.sm.Create(name, `{"provider":"fake","key":"`+k.Secret+`","key_id":"`+k.ID+`"}`, map[string]string{rotation.TagManaged: "true"})
	e.sm.SetRotationEnabled(name, true)
	return e.current(name)
}

// The revocation queued by the rolled-back rotation is skipped by the
// revoker, which finds the restored key AWSCURRENT again; the failed key is
// revoked. A rotation right after the rollback makes the restored key
// AWSPREVIOUS again: the old message still skips it, and only the new
// rotation's message revokes it, after its own grace period.
func TestRollbackThenRevokerSkips(t *testing.T) {
	for _, rotateAgain := range []bool{false, true} {
		t.Run(map[bool]string{false: "RevokerFirst", true: "RotatedAgainBeforeTheRevoker"}[rotateAgain], func(t *testing.T) {
			e := newEnv(t)
			const secret = "svc/key"
			key1 := e.managedSecret(secret)
			e.rotate(secret, "v2")
			key2 := e.current(secret)
			if len(e.q.msgs) != 1 || e.q.msgs[0].KeyID != key1.KeyID {
				t.Fatalf("queued %+v, want the revocation of %s", e.q.msgs, key1.KeyID)
			}
			res, err := e.op.Rollback(context.Background(), secret)
			if err != nil {
				t.Fatal(err)
			}
			if res.RestoredKeyID != key1.KeyID || res.FailedKeyID != key2.KeyID || !res.FailedKeyRevoked {
				t.Fatalf("rollback: %+v", res)
			}
			if e.current(secret).KeyID != key1.KeyID || !e.p.Live()[key1.KeyID] || e.p.Live()[key2.KeyID] {
				t.Fatalf("after rollback: current %s, live %v", e.current(secret).KeyID, e.p.Live())
			}
			if rotateAgain {
				// The rollback holds plain rotations for grace + 15 min.
				e.now = e.now.Add(3 * time.Hour)
				e.rotate(secret, "v3")
				if len(e.q.msgs) != 2 || e.q.msgs[1].KeyID != key1.KeyID {
					t.Fatalf("queued %+v, want a second revocation of %s", e.q.msgs, key1.KeyID)
				}
			}

			// The first grace period ends; the revoker gets the first message.
			e.now = e.now.Add(time.Hour + time.Minute)
			h := revocation.NewHandler(e.sm, e.q, map[string]providers.Provider{"fake": e.p}, revocation.Options{Now: func() time.Time { return e.now }, Logger: quiet})
			got, err := h.Process(context.Background(), e.q.msgs[0])
			if err != nil || got != revocation.Skipped {
				t.Fatalf("revoker: %v, %v; want skipped", got, err)
			}
			if !e.p.Live()[key1.KeyID] {
				t.Fatal("the revoker revoked the restored key")
			}
			if !rotateAgain {
				// The failed key is gone, so there is nothing to roll back to now.
				var r *RefusedError
				_, err = e.op.Rollback(context.Background(), secret)
				if !errors.As(err, &r) || !strings.Contains(r.Reason, "no longer valid") {
					t.Fatalf("second rollback: %v", err)
				}
				return
			}
			// The later rotation's own message revokes it once its grace ends
			// and applications use the new key.
			e.now = e.q.msgs[1].NotBefore.Add(time.Minute)
			e.p.Use(e.current(secret).KeyID, e.now)
			if got, err := h.Process(context.Background(), e.q.msgs[1]); err != nil || got != revocation.Revoked || e.p.Live()[key1.KeyID] {
				t.Fatalf("revoker on the later rotation's message: %v, %v, key live=%v; want revoked", got, err, e.p.Live()[key1.KeyID])
			}
		})
	}
}

func TestRollbackRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.managedSecret("one")
	for name, tc := range map[string]struct {
		id, want string
	}{
		"NoPrevious": {"one", "no previous version"},
	} {
		_, err := e.op.Rollback(ctx, tc.id)
		var r *RefusedError
		if !errors.As(err, &r) || !strings.Contains(r.Reason, tc.want) || ExitCode(err) != ExitRefused {
			t.Errorf("%s: %v, want refused: %s", name, err, tc.want)
		}
	}

	// The previous key was already revoked at the vendor.
	key1 := e.managedSecret("two")
	e.rotate("two", "v2")
	if err := e.p.Revoke(ctx, key1, key1.KeyID); err != nil {
		t.Fatal(err)
	}
	before := e.sm.Stages("two")
	_, err := e.op.Rollback(ctx, "two")
	var r *RefusedError
	if !errors.As(err, &r) || !strings.Contains(r.Reason, "no longer valid") {
		t.Fatalf("rollback to a revoked key: %v", err)
	}
	if after := e.sm.Stages("two"); len(after) != len(before) || e.current("two").KeyID == key1.KeyID {
		t.Fatal("a refused rollback changed the secret")
	}

	// The vendor is down: nothing changes, and it is a failure, not a refusal.
	e.rotate("two", "v3")
	e.p.Before = func(string) error { return providers.E("fake", providers.Transient, errors.New("503")) }
	cur := e.current("two").KeyID
	_, err = e.op.Rollback(ctx, "two")
	if err == nil || ExitCode(err) != ExitFailure || !strings.Contains(err.Error(), "nothing was changed") || e.current("two").KeyID != cur {
		t.Fatalf("rollback with the vendor down: %v", err)
	}
}

// keyState asks without using the key where the vendor can tell.
func TestKeyState(t *testing.T) {
	ctx := context.Background()
	p := fakeprovider.New()
	live, gone := p.Add("a"), p.Add("b")
	if err := p.Revoke(ctx, providers.Credential{}, gone.ID); err != nil {
		t.Fatal(err)
	}
	for _, prov := range []providers.Provider{p, fakeprovider.Plain{Provider: p}} {
		for _, tc := range []struct {
			k    fakeprovider.Key
			want KeyState
		}{{live, KeyLive}, {gone, KeyRevoked}} {
			got, err := keyState(ctx, prov, providers.Credential{}, tc.k.ID, providers.Credential{Provider: "fake", Key: tc.k.Secret, KeyID: tc.k.ID})
			if err != nil || got != tc.want {
				t.Errorf("%T key %s: %v, %v; want %v", prov, tc.k.ID, got, err, tc.want)
			}
		}
	}
	if !p.Live()[live.ID] {
		t.Fatal("asking revoked a key")
	}
}

// An emergency rotation tags the secret with the ClientRequestToken it
// passes to RotateSecret, so the engine uses grace 0; the command returns
// once the vendor no longer knows the old key, leaving one live key.
func TestEmergencyRotation(t *testing.T) {
	e := newEnv(t)
	const secret = "svc/leaked"
	key1 := e.managedSecret(secret)
	e.sm.rotate = e.steps
	revoker := revocation.NewHandler(e.sm, e.q, map[string]providers.Provider{"fake": e.p}, revocation.Options{Now: func() time.Time { return e.now }, Logger: quiet})
	polls := 0
	e.op.Sleep = func(context.Context, time.Duration) error {
		// The revoker's poller delivers the queued messages.
		polls++
		for _, m := range e.q.msgs {
			if _, err := revoker.Process(context.Background(), m); err != nil {
				t.Fatal(err)
			}
		}
		e.q.msgs = nil
		e.now = e.now.Add(time.Second)
		return nil
	}
	e.op.NewToken = func() string { return "emergency-token-1" }
	res, err := e.op.Rotate(context.Background(), secret, RotateOptions{Emergency: true})
	if err != nil {
		t.Fatal(err)
	}
	key2 := e.current(secret)
	if !res.Finished || !res.OldKeyRevoked || res.OldKeyID != key1.KeyID || res.NewKeyID != key2.KeyID || polls == 0 {
		t.Fatalf("emergency rotation: %+v after %d polls", res, polls)
	}
	if live := e.p.Live(); len(live) != 1 || !live[key2.KeyID] {
		t.Fatalf("live keys %v, want only %s", live, key2.KeyID)
	}
	if e.sm.Stages(secret)["emergency-token-1"][0] != rotation.Current {
		t.Fatalf("the rotation's version is not the token passed to RotateSecret: %v", e.sm.Stages(secret))
	}
}

// --wait reports the step a rotation stopped at when it does not finish.
func TestWaitReportsTheStuckStep(t *testing.T) {
	e := newEnv(t)
	const secret = "svc/slow"
	e.managedSecret(secret)
	e.op.Sleep = func(context.Context, time.Duration) error { e.now = e.now.Add(time.Minute); return nil }
	_, err := e.op.Rotate(context.Background(), secret, RotateOptions{Wait: true, Timeout: 10 * time.Minute})
	var se *StepError
	if !errors.As(err, &se) || se.Step != "createSecret" || ExitCode(err) != ExitFailure {
		t.Fatalf("Rotate --wait of a rotation that never runs: %v", err)
	}
	// The rotation it left is in progress, and a second one is refused.
	_, err = e.op.Rotate(context.Background(), secret, RotateOptions{})
	var r *RefusedError
	if !errors.As(err, &r) || !strings.Contains(r.Reason, "already in progress") {
		t.Fatalf("second rotate: %v", err)
	}
}

// failTag fails TagResource, as when the operator may write values but not
// tags.
type failTag struct{ *fakeSM }

func (failTag) TagResource(context.Context, *secretsmanager.TagResourceInput, ...func(*secretsmanager.Options)) (*secretsmanager.TagResourceOutput, error) {
	return nil, errors.New("AccessDeniedException")
}

// Import tags the secret with the import time: PutSecretValue does not set
// LastRotatedDate, and the auditor and status measure a manual key's age
// from the tag (the key-age reminder of a vendor without a key API).
func TestImportTagsKeyCreatedAt(t *testing.T) {
	e := newEnv(t)
	e.op.Providers = func(name string) (providers.Provider, error) {
		if name != "stripe" {
			return nil, errors.New("unknown")
		}
		return e.p, nil
	}
	const secret = "pay/stripe"
	k1, k2 := e.p.Add("old"), e.p.Add("new")
	e.sm.Create(secret, `{"provider":"stripe","key":"`+k1.Secret+`","key_id":"`+k1.ID+`"}`, map[string]string{
		rotation.TagManaged: "true", "keyrotor:manual": "true", "keyrotor:rotation-frequency": "30d"})
	imported := e.now
	if _, err := e.op.Import(context.Background(), secret, ImportOptions{Key: k2.Secret, KeyID: k2.ID, OldKeyExpiresAt: e.now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	desc, err := e.sm.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(secret)})
	if err != nil {
		t.Fatal(err)
	}
	var tag string
	for _, tg := range desc.Tags {
		if aws.ToString(tg.Key) == audit.TagKeyCreatedAt {
			tag = aws.ToString(tg.Value)
		}
	}
	if tag != imported.Format(time.RFC3339) {
		t.Fatalf("tag %s = %q, want the import time %s", audit.TagKeyCreatedAt, tag, imported.Format(time.RFC3339))
	}

	// 50 days later: status and the auditor agree on the age, and find the
	// key past 1.5 × its 30-day reminder, but not "rotation not enabled".
	e.now = imported.Add(50 * 24 * time.Hour)
	sts, err := e.op.Status(context.Background(), []string{secret}, StatusOptions{NoVendor: true})
	if err != nil {
		t.Fatal(err)
	}
	st := sts[0]
	if st.KeyCreatedAt == nil || !st.KeyCreatedAt.Equal(imported) || st.KeyAgeSeconds != 50*24*3600 || st.Rotation != RotationIdle {
		t.Fatalf("status: %+v", st)
	}
	if len(st.Problems) != 1 || !strings.Contains(st.Problems[0], "older than 1.5") || !strings.Contains(st.Problems[0], "keyrotor import") {
		t.Fatalf("problems %q, want only the key-age reminder", st.Problems)
	}
	if a := audit.Inspect(listEntry(desc), e.now); !a.Manual || !a.Since.Equal(imported) || a.Ratio() != 50.0/30 {
		t.Fatalf("audit: %+v ratio %v", a, a.Ratio())
	}

	// A tag that cannot be written: the key is stored, the error says so
	// and how to set the tag, and prints no key.
	k3 := e.p.Add("newer")
	e.op.SM = failTag{e.sm}
	_, err = e.op.Import(context.Background(), secret, ImportOptions{Key: k3.Secret, KeyID: k3.ID, OldKeyExpiresAt: e.now.Add(time.Hour)})
	if err == nil || !strings.Contains(err.Error(), "is stored") || !strings.Contains(err.Error(), "tag-resource") || strings.Contains(err.Error(), k3.Secret) {
		t.Fatalf("import with TagResource denied: %v", err)
	}
	if e.current(secret).KeyID != k3.ID {
		t.Fatal("the key was not stored")
	}
}

// listSM lists names with ListSecrets, as Secrets Manager does (tags,
// rotation, labels), counts DescribeSecret calls, and reports rules.
type listSM struct {
	*fakeSM
	names     []string
	rules     *smtypes.RotationRulesType
	described int
}

func (l *listSM) describe(ctx context.Context, id string) (*secretsmanager.DescribeSecretOutput, error) {
	out, err := l.fakeSM.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if err == nil {
		out.RotationRules = l.rules
	}
	return out, err
}

func (l *listSM) DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	l.described++
	return l.describe(ctx, aws.ToString(in.SecretId))
}

func (l *listSM) ListSecrets(ctx context.Context, _ *secretsmanager.ListSecretsInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretsOutput, error) {
	out := &secretsmanager.ListSecretsOutput{}
	for _, n := range l.names {
		d, err := l.describe(ctx, n)
		if err != nil {
			return nil, err
		}
		out.SecretList = append(out.SecretList, smtypes.SecretListEntry{
			ARN: d.ARN, Name: d.Name, CreatedDate: d.CreatedDate, LastRotatedDate: d.LastRotatedDate, RotationEnabled: d.RotationEnabled,
			RotationLambdaARN: d.RotationLambdaARN, RotationRules: d.RotationRules, Tags: d.Tags, SecretVersionsToStages: d.VersionIdsToStages,
		})
	}
	return out, nil
}

// Status with no argument reads the managed secrets from ListSecrets, with
// no DescribeSecret, and shows what status SECRET shows.
func TestStatusOfAllUsesListSecrets(t *testing.T) {
	e := newEnv(t)
	e.managedSecret("prod/b")
	e.managedSecret("prod/a")
	e.rotate("prod/a", "t-1")
	e.sm.Create("prod/unmanaged", `{"provider":"fake","key":"k","key_id":"id"}`, nil)
	l := &listSM{fakeSM: e.sm, names: []string{"prod/b", "prod/unmanaged", "prod/a"}}
	e.op.SM = l
	all, err := e.op.Status(context.Background(), nil, StatusOptions{NoVendor: true})
	if err != nil {
		t.Fatal(err)
	}
	if l.described != 0 {
		t.Errorf("status with no argument called DescribeSecret %d times", l.described)
	}
	named, err := e.op.Status(context.Background(), []string{"prod/a", "prod/b"}, StatusOptions{NoVendor: true})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(all, named) {
		t.Errorf("status of all:\n%+v\nstatus of the names:\n%+v", all, named)
	}
}

// A rotation cancelled on AWS keeps its function and its rules: status
// reports it disabled, as the auditor counts it, whatever rules remain, by
// name and in the listing.
func TestStatusCancelledRotationIsDisabled(t *testing.T) {
	for _, tc := range []struct {
		rules *smtypes.RotationRulesType
		want  string
	}{
		{nil, RotationDisabled},
		{&smtypes.RotationRulesType{AutomaticallyAfterDays: aws.Int64(7)}, RotationDisabled},
		{&smtypes.RotationRulesType{ScheduleExpression: aws.String("rate(7 days)")}, RotationDisabled},
	} {
		e := newEnv(t)
		e.managedSecret("prod/a")
		e.sm.SetRotationEnabled("prod/a", false)
		e.op.SM = &listSM{fakeSM: e.sm, names: []string{"prod/a"}, rules: tc.rules}
		for _, ids := range [][]string{nil, {"prod/a"}} {
			sts, err := e.op.Status(context.Background(), ids, StatusOptions{NoVendor: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(sts) != 1 || sts[0].Rotation != tc.want {
				t.Errorf("rules %+v, ids %v: status %+v, want rotation %s", tc.rules, ids, sts, tc.want)
			}
		}
	}
}
