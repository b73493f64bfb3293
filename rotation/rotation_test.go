package rotation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/internal/fakeprovider"
	"github.com/keyrotor/keyrotor/internal/smfake"
	"github.com/keyrotor/keyrotor/internal/testenv"
	"github.com/keyrotor/keyrotor/metrics"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/revocation"
	"github.com/keyrotor/keyrotor/rotation"
)

const (
	secretName    = "prod/app-key"
	token         = "11111111-2222-3333-4444-555555555555"
	rotationToken = "rotation-token-0123456789-abcdefghijklmnop"
)

var steps = []rotation.Step{rotation.CreateSecret, rotation.SetSecret, rotation.TestSecret, rotation.FinishSecret}

type sent struct {
	msg   revocation.Message
	delay time.Duration
}

type queue struct {
	mu   sync.Mutex
	sent []sent
	fail error
}

func (q *queue) Send(_ context.Context, m revocation.Message, d time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fail != nil {
		return q.fail
	}
	q.sent = append(q.sent, sent{m, d})
	return nil
}

type env struct {
	t      *testing.T
	sm     *smfake.SM
	vendor *fakeprovider.Provider
	q      *queue
	r      *rotation.Rotator
	logs   *bytes.Buffer
	emf    *bytes.Buffer
	now    time.Time
	oldKey fakeprovider.Key
	slept  []time.Duration
	// events, when set before the rotator is built, receives its events.
	events rotation.Events
}

// newEnv makes a secret whose AWSCURRENT holds a live key at the vendor.
func newEnv(t *testing.T, tags map[string]string) *env {
	t.Helper()
	e := &env{t: t, sm: smfake.New(), vendor: fakeprovider.New(), q: &queue{}, logs: &bytes.Buffer{}, emf: &bytes.Buffer{},
		now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	e.vendor.Now = func() time.Time { return e.now }
	e.oldKey = e.vendor.Add(keyrotor.KeyName(testenv.Identity(secretName), "bootstrap-token"))
	e.sm.Create(secretName, fmt.Sprintf(`{"provider":"fake","key":%q,"key_id":%q,"owner":"team-a"}`, e.oldKey.Secret, e.oldKey.ID), tags)
	e.r = e.rotator(time.Hour)
	return e
}

func (e *env) rotator(grace time.Duration) *rotation.Rotator {
	return e.rotatorWith(e.sm, e.vendor, e.q, grace)
}

// rotatorWith is rotator over another Secrets Manager, provider or queue.
func (e *env) rotatorWith(sm rotation.SecretsManager, p providers.Provider, q rotation.RevocationQueue, grace time.Duration) *rotation.Rotator {
	return rotation.New(sm, p, q, rotation.Options{
		GracePeriod: grace,
		// The fake vendor enforces a key at once (TestSettle covers rules).
		Settle: map[string]rotation.Settle{"fake": {Successes: 1}},
		Now:    func() time.Time { return e.now },
		Sleep: func(ctx context.Context, d time.Duration) error {
			e.slept = append(e.slept, d)
			e.now = e.now.Add(d)
			return ctx.Err()
		},
		Logger:  slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: metrics.New(e.emf, "", func() time.Time { return e.now }),
		Events:  e.events,
	})
}

func (e *env) step(s rotation.Step, tok string) error {
	return e.r.Handle(context.Background(), events.SecretsManagerSecretRotationEvent{
		Step: string(s), SecretID: secretName, ClientRequestToken: tok, RotationToken: rotationToken,
	})
}

func (e *env) rotate(tok string) {
	e.t.Helper()
	e.sm.StartRotation(secretName, tok)
	for _, s := range steps {
		if err := e.step(s, tok); err != nil {
			e.t.Fatalf("%s: %v", s, err)
		}
	}
}

func (e *env) current() providers.Credential {
	e.t.Helper()
	for id, st := range e.sm.Stages(secretName) {
		for _, l := range st {
			if l == "AWSCURRENT" {
				c, err := providers.ParseSecret(e.sm.Value(secretName, id))
				if err != nil {
					e.t.Fatal(err)
				}
				return c
			}
		}
	}
	e.t.Fatal("no AWSCURRENT")
	return providers.Credential{}
}

func stagesOf(e *env) string { return fmt.Sprint(e.sm.Stages(secretName)) }

func TestFullRotation(t *testing.T) {
	e := newEnv(t, nil)
	e.rotate(token)

	st := e.sm.Stages(secretName)
	if fmt.Sprint(st[token]) != "[AWSCURRENT]" || fmt.Sprint(st["v1"]) != "[AWSPREVIOUS]" {
		t.Fatalf("stages = %v, want %s [AWSCURRENT] (AWSPENDING removed) and v1 [AWSPREVIOUS]", st, token)
	}
	cur := e.current()
	if cur.KeyID == e.oldKey.ID || cur.Key == "" || cur.Provider != "fake" || cur.Attr("owner") != "team-a" || cur.CreatedAt.IsZero() {
		t.Fatalf("current = %v created %v, want a new fake key keeping the owner field", cur, cur.CreatedAt)
	}
	live := e.vendor.Live()
	if !live[cur.KeyID] || !live[e.oldKey.ID] || len(live) != 2 {
		t.Fatalf("live keys %v, want the old and the new key", live)
	}
	if len(e.q.sent) != 1 {
		t.Fatalf("%d revocation messages, want 1", len(e.q.sent))
	}
	m := e.q.sent[0]
	want := revocation.Message{SecretID: "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + secretName + "-AbCdEf", Provider: "fake",
		KeyID: e.oldKey.ID, OldVersionID: "v1", NewVersionID: token, NotBefore: e.now.Add(time.Hour), FinishedAt: e.now, Reason: revocation.ReasonRotation}
	if m.msg != want || m.delay != time.Hour {
		t.Fatalf("message %+v delay %v, want %+v delay 1h", m.msg, m.delay, want)
	}
	if e.vendor.Created() != 1 {
		t.Fatalf("%d keys minted, want 1", e.vendor.Created())
	}
	// The engine's Secrets Manager calls for one rotation (README figure).
	if n := e.sm.TotalCalls(); n != 12 {
		t.Fatalf("%d Secrets Manager calls for a rotation, want 12", n)
	}
}

func TestRetryOfEveryStepAfterSuccess(t *testing.T) {
	e := newEnv(t, nil)
	e.sm.StartRotation(secretName, token)
	for _, s := range steps {
		for i := 0; i < 2; i++ {
			if err := e.step(s, token); err != nil {
				t.Fatalf("%s attempt %d: %v", s, i+1, err)
			}
		}
	}
	if e.vendor.Created() != 1 {
		t.Fatalf("retries minted %d keys, want 1", e.vendor.Created())
	}
	// finishSecret ran twice: the first enqueued, the retry found the token
	// AWSCURRENT and returned early.
	if len(e.q.sent) != 1 {
		t.Fatalf("%d revocation messages, want 1", len(e.q.sent))
	}
	if len(e.vendor.Live()) != 2 {
		t.Fatalf("live keys %v, want 2", e.vendor.Live())
	}
}

// TestInterruptedAtEveryPoint fails each external call of a rotation in turn,
// before it takes effect and after it took effect (a lost response), then
// retries the failed step and runs the rest with the same token, as Secrets
// Manager does. Whatever the point, the rotation ends right: one new key,
// AWSCURRENT on it, the old key alive until the revoker runs, a revocation
// message for it, and no other key left at the vendor.
func TestInterruptedAtEveryPoint(t *testing.T) {
	for _, lost := range []bool{false, true} {
		for n := 1; ; n++ {
			e := newEnv(t, nil)
			calls := 0
			failed := false
			boom := errors.New("injected failure")
			hook := func(op string) error {
				calls++
				if calls == n {
					failed = true
					return boom
				}
				return nil
			}
			if lost {
				e.sm.After = hook
			} else {
				e.sm.Before = hook
			}
			vendorHook := func(op string) error {
				if lost {
					return nil
				}
				return hook(op)
			}
			e.vendor.Before = vendorHook
			e.sm.StartRotation(secretName, token)
			for _, s := range steps {
				for attempt := 0; ; attempt++ {
					err := e.step(s, token)
					if err == nil {
						break
					}
					if attempt > 0 || !errors.Is(err, boom) {
						t.Fatalf("lost=%v n=%d: %s attempt %d: %v", lost, n, s, attempt, err)
					}
				}
			}
			if !failed {
				if n < 10 {
					t.Fatalf("only %d calls in a rotation", n)
				}
				break
			}
			name := fmt.Sprintf("lost=%v n=%d", lost, n)
			cur := e.current()
			live := e.vendor.Live()
			if cur.KeyID == e.oldKey.ID || !live[cur.KeyID] || !live[e.oldKey.ID] || len(live) != 2 {
				t.Fatalf("%s: current %s, live %v: want the new key current and exactly the old and new keys live", name, cur.KeyID, live)
			}
			if len(e.q.sent) == 0 || e.q.sent[0].msg.KeyID != e.oldKey.ID {
				t.Fatalf("%s: revocation messages %+v, want the old key's", name, e.q.sent)
			}
			for _, s := range e.q.sent {
				if s.msg.KeyID != e.oldKey.ID {
					t.Fatalf("%s: a message revokes %s, not the old key", name, s.msg.KeyID)
				}
			}
			if st := e.sm.Stages(secretName); fmt.Sprint(st[token]) != "[AWSCURRENT]" {
				t.Fatalf("%s: stages %v", name, st)
			}
		}
	}
}

func TestConcurrentRotations(t *testing.T) {
	t.Run("AnotherTokenIsRefused", func(t *testing.T) {
		e := newEnv(t, nil)
		e.sm.StartRotation(secretName, token)
		if err := e.step(rotation.CreateSecret, token); err != nil {
			t.Fatal(err)
		}
		before := stagesOf(e)
		// A second rotation whose version is not AWSPENDING (Secrets Manager
		// gave AWSPENDING to the first) changes nothing at any step.
		other := "99999999-2222-3333-4444-555555555555"
		for _, s := range steps {
			if err := e.step(s, other); err == nil || !strings.Contains(err.Error(), "has no stage for rotation") {
				t.Fatalf("%s with a token that is no version: err=%v", s, err)
			}
		}
		if stagesOf(e) != before || e.vendor.Created() != 1 || len(e.q.sent) != 0 {
			t.Fatalf("the refused rotation changed something: %s, %d minted, %d messages", stagesOf(e), e.vendor.Created(), len(e.q.sent))
		}
	})
	t.Run("SameTokenAtOnce", func(t *testing.T) {
		// Two createSecret invocations of the same rotation at once (a
		// retry racing a slow first attempt): one key is stored, any other
		// minted key is revoked, and the rotation completes.
		e := newEnv(t, nil)
		e.sm.StartRotation(secretName, token)
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				errs[i] = e.step(rotation.CreateSecret, token)
			}(i)
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			}
		}
		if ok == 0 {
			t.Fatalf("no createSecret succeeded: %v", errs)
		}
		for _, s := range steps {
			if err := e.step(s, token); err != nil {
				t.Fatalf("%s after the race: %v", s, err)
			}
		}
		cur := e.current()
		live := e.vendor.Live()
		if len(live) != 2 || !live[cur.KeyID] || !live[e.oldKey.ID] {
			t.Fatalf("live keys %v (current %s): want only the old and the stored key", live, cur.KeyID)
		}
	})
}

func TestVendorOutageDuringCreate(t *testing.T) {
	e := newEnv(t, nil)
	down := true
	e.vendor.Before = func(op string) error {
		if down && op == "Create" {
			return providers.E("fake.Create", providers.Transient, errors.New("503"))
		}
		return nil
	}
	e.sm.StartRotation(secretName, token)
	before := stagesOf(e)
	err := e.step(rotation.CreateSecret, token)
	if providers.KindOf(err) != providers.Transient || !strings.Contains(err.Error(), secretName) || !strings.Contains(err.Error(), "createSecret") {
		t.Fatalf("err = %v, want a transient error naming the secret and the step", err)
	}
	if stagesOf(e) != before || e.current().KeyID != e.oldKey.ID {
		t.Fatalf("a failed createSecret changed the secret: %s", stagesOf(e))
	}
	down = false
	for _, s := range steps {
		if err := e.step(s, token); err != nil {
			t.Fatalf("%s after the outage: %v", s, err)
		}
	}
	if e.current().KeyID == e.oldKey.ID {
		t.Fatal("the later rotation did not succeed")
	}
}

func TestStoreFailureRevokesTheNewKey(t *testing.T) {
	e := newEnv(t, nil)
	e.sm.Before = func(op string) error {
		if op == "PutSecretValue" {
			return errors.New("throttled")
		}
		return nil
	}
	e.sm.StartRotation(secretName, token)
	if err := e.step(rotation.CreateSecret, token); err == nil {
		t.Fatal("createSecret succeeded although the put failed")
	}
	if live := e.vendor.Live(); len(live) != 1 || !live[e.oldKey.ID] || e.vendor.Created() != 1 {
		t.Fatalf("live keys %v after a failed put (minted %d): want only the old key", live, e.vendor.Created())
	}
}

func TestLostPutResponseKeepsTheStoredKey(t *testing.T) {
	e := newEnv(t, nil)
	e.sm.After = func(op string) error {
		if op == "PutSecretValue" {
			return errors.New("connection reset")
		}
		return nil
	}
	e.sm.StartRotation(secretName, token)
	if err := e.step(rotation.CreateSecret, token); err != nil {
		t.Fatalf("createSecret: %v (the value was stored)", err)
	}
	pending, _ := providers.ParseSecret(e.sm.Value(secretName, token))
	if !e.vendor.Live()[pending.KeyID] {
		t.Fatal("the stored pending key was revoked")
	}
}

func TestReconcile(t *testing.T) {
	e := newEnv(t, nil)
	// A previous rotation left its key as AWSPREVIOUS (in grace), an
	// interrupted attempt left an orphan, another secret has a key.
	e.rotate("00000000-0000-0000-0000-000000000001")
	prev := e.oldKey
	orphan := e.vendor.Add(keyrotor.KeyName(testenv.Identity(secretName), "crashed-attempt"))
	foreign := e.vendor.Add(keyrotor.KeyName(testenv.Identity("other/secret"), "x"))
	cur := e.current()
	e.rotate(token)
	live := e.vendor.Live()
	if live[orphan.ID] {
		t.Fatal("the orphan of an interrupted attempt was not revoked")
	}
	if !live[prev.ID] || !live[cur.KeyID] || !live[foreign.ID] {
		t.Fatalf("live %v: reconcile revoked AWSPREVIOUS (%s), AWSCURRENT (%s) or another secret's key (%s)", live, prev.ID, cur.KeyID, foreign.ID)
	}
	if !strings.Contains(e.emf.String(), `"OrphanKeysRevoked":1`) {
		t.Fatal("no OrphanKeysRevoked metric")
	}
}

func TestKeyLimitIsAClearConflict(t *testing.T) {
	e := newEnv(t, nil)
	e.vendor.MaxKeys = 1
	e.sm.StartRotation(secretName, token)
	err := e.step(rotation.CreateSecret, token)
	if providers.KindOf(err) != providers.Conflict {
		t.Fatalf("err = %v, want Conflict", err)
	}
	if !e.vendor.Live()[e.oldKey.ID] {
		t.Fatal("the key in use was deleted to make room")
	}
}

func TestTestSecretRetriesPropagation(t *testing.T) {
	e := newEnv(t, nil)
	e.sm.StartRotation(secretName, token)
	if err := e.step(rotation.CreateSecret, token); err != nil {
		t.Fatal(err)
	}
	e.vendor.VerifyFailures = 3
	if err := e.step(rotation.TestSecret, token); err != nil {
		t.Fatalf("testSecret did not outlast 3 refusals: %v", err)
	}
	if fmt.Sprint(e.slept) != "[250ms 500ms 1s]" {
		t.Fatalf("waits %v, want exponential backoff 250ms 500ms 1s", e.slept)
	}

	// A key that never works fails within the budget.
	e.slept = nil
	e.vendor.VerifyFailures = 1 << 30
	err := e.step(rotation.TestSecret, token)
	if providers.KindOf(err) != providers.Permission {
		t.Fatalf("err = %v, want the vendor's Permission error", err)
	}
	var total time.Duration
	for _, d := range e.slept {
		total += d
	}
	if total > 60*time.Second || total < 50*time.Second {
		t.Fatalf("retried for %v, want close to the 60s budget", total)
	}

	// An Invalid error is not retried.
	e.slept = nil
	e.vendor.VerifyFailures = 0
	e.vendor.Before = func(op string) error {
		return providers.E("fake.Verify", providers.Invalid, errors.New("bad"))
	}
	if err := e.step(rotation.TestSecret, token); providers.KindOf(err) != providers.Invalid || len(e.slept) != 0 {
		t.Fatalf("err=%v waits=%v, want Invalid at once", err, e.slept)
	}
}

func TestTestSecretWithinTheLambdaDeadline(t *testing.T) {
	e := newEnv(t, nil)
	e.sm.StartRotation(secretName, token)
	if err := e.step(rotation.CreateSecret, token); err != nil {
		t.Fatal(err)
	}
	e.vendor.VerifyFailures = 1 << 30
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(10*time.Second))
	defer cancel()
	err := e.r.Handle(ctx, events.SecretsManagerSecretRotationEvent{Step: "testSecret", SecretID: secretName, ClientRequestToken: token})
	if err == nil {
		t.Fatal("testSecret succeeded")
	}
	var total time.Duration
	for _, d := range e.slept {
		total += d
	}
	if total > 7*time.Second {
		t.Fatalf("waited %v with 10s left before the deadline, want at most 7s", total)
	}
}

func TestRotateImmediatelyFalseTestsTheCurrentKey(t *testing.T) {
	e := newEnv(t, nil)
	e.sm.StartRotation(secretName, token) // a version with no value
	if err := e.step(rotation.TestSecret, token); err != nil {
		t.Fatalf("testSecret: %v", err)
	}
	if e.vendor.Created() != 0 {
		t.Fatal("testSecret minted a key")
	}
	e.vendor.Revoke(context.Background(), providers.Credential{}, e.oldKey.ID)
	if err := e.step(rotation.TestSecret, token); providers.KindOf(err) != providers.Permission {
		t.Fatalf("testSecret of a revoked current key: %v, want Permission", err)
	}
}

func TestBootstrap(t *testing.T) {
	e := newEnv(t, nil)
	e.sm = smfake.New()
	e.sm.Create(secretName, `{"provider":"fake","owner":"team-a"}`, nil)
	e.r = e.rotator(time.Hour)
	e.rotate(token)
	cur := e.current()
	if cur.Key == "" || !e.vendor.Live()[cur.KeyID] {
		t.Fatalf("bootstrap did not store a live key: %v", cur)
	}
	if len(e.q.sent) != 0 {
		t.Fatalf("bootstrap queued %d revocations, want none", len(e.q.sent))
	}
}

func TestGracePeriod(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tags      map[string]string
		env       time.Duration
		want      time.Duration
		emergency bool
	}{
		{"EnvDefault", nil, 45 * time.Minute, 45 * time.Minute, false},
		{"Tag", map[string]string{rotation.TagGracePeriod: "2h30m"}, time.Hour, 150 * time.Minute, false},
		{"Zero", map[string]string{rotation.TagGracePeriod: "0s"}, time.Hour, 0, false},
		{"Emergency", map[string]string{rotation.TagGracePeriod: "2h", rotation.TagEmergencyToken: token}, time.Hour, 0, true},
		{"EmergencyOfAnotherRotation", map[string]string{rotation.TagEmergencyToken: "older-token"}, time.Hour, time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.tags)
			e.r = e.rotator(tc.env)
			e.rotate(token)
			m := e.q.sent[0]
			if m.delay != tc.want || !m.msg.NotBefore.Equal(e.now.Add(tc.want)) || m.msg.IsEmergency() != tc.emergency {
				t.Fatalf("delay %v not_before %v emergency %v, want %v, now+%v, %v", m.delay, m.msg.NotBefore, m.msg.IsEmergency(), tc.want, tc.want, tc.emergency)
			}
		})
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(e *env) rotation.Step
		tok   string
		want  string
	}{
		{"UnknownStep", func(e *env) rotation.Step { return "rotateSecret" }, token, "unknown step"},
		{"SnakeCaseStep", func(e *env) rotation.Step { return "create_secret" }, token, "unknown step"},
		{"TokenIsNotAVersion", func(e *env) rotation.Step { return rotation.CreateSecret }, "not-a-version", "has no stage for rotation"},
		{"EmptyToken", func(e *env) rotation.Step { return rotation.CreateSecret }, "", "no ClientRequestToken"},
		{"RotationDisabled", func(e *env) rotation.Step {
			e.sm.SetRotationEnabled(secretName, false)
			return rotation.CreateSecret
		}, token, "rotation is not enabled"},
		{"TokenNotPending", func(e *env) rotation.Step {
			e.rotate(token) // v1 is now AWSPREVIOUS
			e.vendor = fakeprovider.New()
			e.q.sent = nil
			e.r = e.rotator(time.Hour)
			return rotation.CreateSecret
		}, "v1", "is not AWSPENDING"},
		{"InvalidJSON", func(e *env) rotation.Step {
			e.sm = smfake.New()
			e.sm.Create(secretName, `{"provider":"fake","key":`, nil)
			e.sm.StartRotation(secretName, token)
			e.r = e.rotator(time.Hour)
			return rotation.CreateSecret
		}, token, "not a JSON object"},
		{"OtherProvider", func(e *env) rotation.Step {
			e.sm = smfake.New()
			e.sm.Create(secretName, `{"provider":"iam","key":"k","key_id":"AKIA"}`, nil)
			e.sm.StartRotation(secretName, token)
			e.r = e.rotator(time.Hour)
			return rotation.CreateSecret
		}, token, `names provider "iam"`},
		{"NoCurrentValue", func(e *env) rotation.Step {
			e.sm = smfake.New()
			e.sm.Create(secretName, "", nil)
			e.sm.StartRotation(secretName, token)
			e.r = e.rotator(time.Hour)
			return rotation.CreateSecret
		}, token, "has no AWSCURRENT value"},
		{"BadGraceTag", func(e *env) rotation.Step {
			e.sm.Tag(secretName, rotation.TagGracePeriod, "one hour")
			return rotation.CreateSecret
		}, token, "is not a Go duration"},
		{"NegativeGraceTag", func(e *env) rotation.Step {
			e.sm.Tag(secretName, rotation.TagGracePeriod, "-5m")
			return rotation.CreateSecret
		}, token, "is not a Go duration"},
		{"FinishWithoutValue", func(e *env) rotation.Step { return rotation.FinishSecret }, token, "refusing to make an empty version AWSCURRENT"},
		{"FinishWithNoCurrentVersion", func(e *env) rotation.Step {
			put := &secretsmanager.PutSecretValueInput{SecretId: aws.String(secretName), ClientRequestToken: aws.String(token),
				SecretString: aws.String(`{"provider":"fake","key":"k","key_id":"fk-new"}`), VersionStages: []string{"AWSPENDING"}}
			if _, err := e.sm.PutSecretValue(context.Background(), put); err != nil {
				e.t.Fatal(err)
			}
			if _, err := e.sm.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(secretName),
				VersionStage: aws.String("AWSCURRENT"), RemoveFromVersionId: aws.String("v1")}); err != nil {
				e.t.Fatal(err)
			}
			return rotation.FinishSecret
		}, token, "no version is AWSCURRENT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.sm.StartRotation(secretName, token)
			s := tc.setup(e)
			before := stagesOf(e)
			writes := e.sm.Calls("PutSecretValue") + e.sm.Calls("UpdateSecretVersionStage")
			err := e.step(s, tc.tok)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), secretName) || !strings.Contains(err.Error(), string(s)) {
				t.Fatalf("err = %v: it does not name the secret and the step", err)
			}
			var re *rotation.Error
			if !errors.As(err, &re) {
				t.Fatalf("err is %T, want *rotation.Error", err)
			}
			if stagesOf(e) != before || e.sm.Calls("PutSecretValue")+e.sm.Calls("UpdateSecretVersionStage") != writes || e.vendor.Created() != 0 || len(e.q.sent) != 0 {
				t.Fatalf("bad input changed something: stages %s (was %s), minted %d, messages %d", stagesOf(e), before, e.vendor.Created(), len(e.q.sent))
			}
		})
	}
}

func TestFinishWithoutQueueFailsBeforeTheLabelMove(t *testing.T) {
	e := newEnv(t, nil)
	e.q.fail = errors.New("sqs down")
	e.sm.StartRotation(secretName, token)
	for _, s := range steps[:3] {
		if err := e.step(s, token); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.step(rotation.FinishSecret, token); err == nil {
		t.Fatal("finishSecret succeeded without scheduling the revocation")
	}
	if e.current().KeyID != e.oldKey.ID {
		t.Fatal("AWSCURRENT moved although the old key's revocation was not scheduled")
	}
}

func TestFinishRetryAfterLabelMoveClearsPending(t *testing.T) {
	e := newEnv(t, nil)
	e.sm.StartRotation(secretName, token)
	for _, s := range steps[:3] {
		if err := e.step(s, token); err != nil {
			t.Fatal(err)
		}
	}
	// finishSecret crashes after moving AWSCURRENT, before removing AWSPENDING.
	moves := 0
	e.sm.Before = func(op string) error {
		if op == "UpdateSecretVersionStage" {
			moves++
			if moves == 2 {
				return errors.New("crash")
			}
		}
		return nil
	}
	if err := e.step(rotation.FinishSecret, token); err == nil {
		t.Fatal("want the injected crash")
	}
	e.sm.Before = nil
	if err := e.step(rotation.FinishSecret, token); err != nil {
		t.Fatal(err)
	}
	if st := e.sm.Stages(secretName); fmt.Sprint(st[token]) != "[AWSCURRENT]" {
		t.Fatalf("stages %v: AWSPENDING left on the current version", st)
	}
}

// TestNoSecretLeaks runs a rotation and failures, and fails if a key value or
// the RotationToken appears in a log line, an error, a metric line or a
// revocation message.
func TestNoSecretLeaks(t *testing.T) {
	e := newEnv(t, nil)
	e.rotate(token)
	var errs []string
	e.vendor.Before = func(op string) error { return providers.E("fake."+op, providers.Transient, errors.New("down")) }
	tok2 := "22222222-2222-3333-4444-555555555555"
	e.sm.StartRotation(secretName, tok2)
	for _, s := range steps {
		if err := e.step(s, tok2); err != nil {
			errs = append(errs, err.Error(), fmt.Sprintf("%+v %#v", err, err))
		}
	}
	msgs, _ := json.Marshal(e.q.sent)
	haystack := e.logs.String() + e.emf.String() + strings.Join(errs, "\n") + string(msgs)
	secrets := []string{rotationToken, e.oldKey.Secret, e.current().Key}
	for _, s := range secrets {
		if s == "" || strings.Contains(haystack, s) {
			t.Fatalf("a secret (len %d) appears in logs, metrics, errors or messages", len(s))
		}
	}
	if len(errs) == 0 || e.logs.Len() == 0 || len(e.q.sent) == 0 {
		t.Fatal("the test saw no errors, logs or messages: it proves nothing")
	}
}

func TestMetricsAreValidEMF(t *testing.T) {
	e := newEnv(t, nil)
	e.rotate(token)
	lines := strings.Split(strings.TrimSpace(e.emf.String()), "\n")
	seen := map[string]bool{}
	for _, l := range lines {
		var root map[string]any
		if err := json.Unmarshal([]byte(l), &root); err != nil {
			t.Fatalf("not JSON: %s", l)
		}
		aws := root["_aws"].(map[string]any)
		for _, d := range aws["CloudWatchMetrics"].([]any) {
			dir := d.(map[string]any)
			if dir["Namespace"] != "KeyRotation" {
				t.Fatalf("namespace %v", dir["Namespace"])
			}
			for _, set := range dir["Dimensions"].([]any) {
				for _, name := range set.([]any) {
					if _, ok := root[name.(string)]; !ok {
						t.Fatalf("dimension %v not at the root: %s", name, l)
					}
				}
			}
			for _, m := range dir["Metrics"].([]any) {
				name := m.(map[string]any)["Name"].(string)
				if _, ok := root[name].(float64); !ok {
					t.Fatalf("metric %s not a number at the root: %s", name, l)
				}
				seen[name] = true
			}
		}
	}
	for _, want := range []string{rotation.MetricStepSucceeded, rotation.MetricStepDuration, rotation.MetricRotationSucceeded} {
		if !seen[want] {
			t.Fatalf("no %s metric in %v", want, seen)
		}
	}
}

// recordingSM records what the engine asks Secrets Manager to read and write.
type recordingSM struct {
	*smfake.SM
	mu   sync.Mutex
	gets []secretsmanager.GetSecretValueInput
	puts []secretsmanager.PutSecretValueInput
}

func (r *recordingSM) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	r.mu.Lock()
	r.gets = append(r.gets, *in)
	r.mu.Unlock()
	return r.SM.GetSecretValue(ctx, in, o...)
}

func (r *recordingSM) PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	r.mu.Lock()
	r.puts = append(r.puts, *in)
	r.mu.Unlock()
	return r.SM.PutSecretValue(ctx, in, o...)
}

// TestSecretsManagerCallInputs checks what the engine sends to Secrets
// Manager when the event names the secret by its ARN, as Secrets Manager
// does: PutSecretValue carries the token, VersionStages=[AWSPENDING] (without
// it AWS makes the new value AWSCURRENT at once) and the RotationToken (AWS
// checks it when the function assumes a role); AWSPENDING is always read by
// VersionId and VersionStage together.
func TestSecretsManagerCallInputs(t *testing.T) {
	arn := "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + secretName + "-AbCdEf"
	for _, rt := range []string{rotationToken, ""} {
		e := newEnv(t, nil)
		rec := &recordingSM{SM: e.sm}
		e.r = e.rotatorWith(rec, e.vendor, e.q, time.Hour)
		e.sm.StartRotation(secretName, token)
		for _, s := range steps {
			if err := e.r.Handle(context.Background(), events.SecretsManagerSecretRotationEvent{
				Step: string(s), SecretID: arn, ClientRequestToken: token, RotationToken: rt,
			}); err != nil {
				t.Fatalf("%s with the ARN as SecretId: %v", s, err)
			}
		}
		if e.current().KeyID == e.oldKey.ID || len(e.q.sent) != 1 || e.q.sent[0].msg.SecretID != arn {
			t.Fatalf("rotation by ARN: current %s, messages %+v", e.current().KeyID, e.q.sent)
		}
		if len(rec.puts) != 1 {
			t.Fatalf("%d PutSecretValue calls, want 1", len(rec.puts))
		}
		put := rec.puts[0]
		if aws.ToString(put.ClientRequestToken) != token || fmt.Sprint(put.VersionStages) != "[AWSPENDING]" || aws.ToString(put.SecretId) != arn {
			t.Fatalf("PutSecretValue token %q stages %v secret %q: want the token, [AWSPENDING], the ARN",
				aws.ToString(put.ClientRequestToken), put.VersionStages, aws.ToString(put.SecretId))
		}
		if rt != "" && aws.ToString(put.RotationToken) != rt {
			t.Fatal("PutSecretValue did not carry the event's RotationToken")
		}
		if rt == "" && put.RotationToken != nil {
			t.Fatal("PutSecretValue sent an empty RotationToken (AWS wants 36 to 256 characters or none)")
		}
		pendingReads := 0
		for _, g := range rec.gets {
			if aws.ToString(g.VersionStage) == "AWSPENDING" || g.VersionId != nil {
				pendingReads++
				if aws.ToString(g.VersionId) != token || aws.ToString(g.VersionStage) != "AWSPENDING" {
					t.Fatalf("AWSPENDING read with VersionId %q and VersionStage %q: want both, the token and AWSPENDING",
						aws.ToString(g.VersionId), aws.ToString(g.VersionStage))
				}
			} else if g.VersionStage == nil {
				t.Fatal("GetSecretValue without a VersionStage")
			}
		}
		if pendingReads == 0 {
			t.Fatal("AWSPENDING was never read")
		}
	}
}

// setter is the fake vendor with client-chosen keys: setSecret registers them.
type setter struct {
	*fakeprovider.Provider
	mu   sync.Mutex
	set  []string
	fail error
}

func (p *setter) Set(_ context.Context, c providers.Credential) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	p.set = append(p.set, c.KeyID)
	return nil
}

func TestSetSecretRegistersThePendingKey(t *testing.T) {
	e := newEnv(t, nil)
	p := &setter{Provider: e.vendor}
	e.r = e.rotatorWith(e.sm, p, e.q, time.Hour)
	e.sm.StartRotation(secretName, token)
	if err := e.step(rotation.SetSecret, token); err == nil || !strings.Contains(err.Error(), "createSecret has not run") || len(p.set) != 0 {
		t.Fatalf("setSecret before createSecret: err=%v, registered %v", err, p.set)
	}
	if err := e.step(rotation.CreateSecret, token); err != nil {
		t.Fatal(err)
	}
	pending, err := providers.ParseSecret(e.sm.Value(secretName, token))
	if err != nil {
		t.Fatal(err)
	}
	p.fail = providers.E("fake.Set", providers.Transient, errors.New("503"))
	err = e.step(rotation.SetSecret, token)
	if providers.KindOf(err) != providers.Transient || !strings.Contains(err.Error(), "setSecret") || !strings.Contains(err.Error(), secretName) {
		t.Fatalf("setSecret with the vendor down: %v, want a transient error naming the secret and the step", err)
	}
	p.fail = nil
	for i := 0; i < 2; i++ { // a retry registers the same key again: Set is idempotent
		if err := e.step(rotation.SetSecret, token); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(p.set) != fmt.Sprint([]string{pending.KeyID, pending.KeyID}) {
		t.Fatalf("registered %v, want the pending key %s twice", p.set, pending.KeyID)
	}
	for _, s := range steps[2:] {
		if err := e.step(s, token); err != nil {
			t.Fatal(err)
		}
	}
	if e.current().KeyID != pending.KeyID {
		t.Fatal("the registered key did not become AWSCURRENT")
	}
}

// TestTestSecretWithNothingToTest: RotateImmediately=false on a secret that
// has no key yet (bootstrap): nothing to authenticate with, so nothing to
// test, and no vendor call.
func TestTestSecretWithNothingToTest(t *testing.T) {
	e := newEnv(t, nil)
	e.sm = smfake.New()
	e.sm.Create(secretName, `{"provider":"fake","owner":"team-a"}`, nil)
	e.r = e.rotator(time.Hour)
	e.sm.StartRotation(secretName, token)
	e.vendor.Before = func(op string) error {
		t.Errorf("vendor call %s", op)
		return nil
	}
	if err := e.step(rotation.TestSecret, token); err != nil {
		t.Fatalf("testSecret: %v", err)
	}
}

func TestFinishWithoutAQueueConfigured(t *testing.T) {
	e := newEnv(t, nil)
	e.r = e.rotatorWith(e.sm, e.vendor, nil, time.Hour)
	e.sm.StartRotation(secretName, token)
	for _, s := range steps[:3] {
		if err := e.step(s, token); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.step(rotation.FinishSecret, token); err == nil || !strings.Contains(err.Error(), "no revocation queue") {
		t.Fatalf("finishSecret without a queue: %v", err)
	}
	if e.current().KeyID != e.oldKey.ID {
		t.Fatal("AWSCURRENT moved although nothing can revoke the old key")
	}
}

// probe is the fake vendor that also looks at the contexts the engine gives it.
type probe struct {
	*fakeprovider.Provider
	mu       sync.Mutex
	createDL time.Time
}

func (p *probe) Create(ctx context.Context, req providers.CreateRequest) (providers.Credential, error) {
	p.mu.Lock()
	p.createDL, _ = ctx.Deadline()
	p.mu.Unlock()
	return p.Provider.Create(ctx, req)
}

// Revoke fails on an ended context, as a real HTTP call would.
func (p *probe) Revoke(ctx context.Context, owner providers.Credential, keyID string) error {
	if err := ctx.Err(); err != nil {
		return providers.E("fake.Revoke", providers.Transient, err)
	}
	return p.Provider.Revoke(ctx, owner, keyID)
}

// TestStepStopsBeforeTheLambdaDeadline: the provider's calls end a second
// before the Lambda deadline, so that a hanging vendor ends in an error
// naming the step rather than a Lambda timeout.
func TestStepStopsBeforeTheLambdaDeadline(t *testing.T) {
	e := newEnv(t, nil)
	p := &probe{Provider: e.vendor}
	e.r = e.rotatorWith(e.sm, p, e.q, time.Hour)
	e.sm.StartRotation(secretName, token)
	dl := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	defer cancel()
	if err := e.r.Handle(ctx, events.SecretsManagerSecretRotationEvent{Step: "createSecret", SecretID: secretName, ClientRequestToken: token}); err != nil {
		t.Fatal(err)
	}
	if p.createDL.IsZero() || p.createDL.After(dl.Add(-time.Second)) {
		t.Fatalf("the vendor call's deadline is %v, want at least 1s before the Lambda deadline %v", p.createDL, dl)
	}
}

// TestUnstoredKeyRevokedAfterTheContextEnded: when PutSecretValue fails
// because the invocation's context ended (the deadline), the new key is
// still revoked, on a context of its own.
func TestUnstoredKeyRevokedAfterTheContextEnded(t *testing.T) {
	e := newEnv(t, nil)
	p := &probe{Provider: e.vendor}
	e.r = e.rotatorWith(e.sm, p, e.q, time.Hour)
	e.sm.StartRotation(secretName, token)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.sm.Before = func(op string) error {
		if op == "PutSecretValue" {
			cancel()
			return ctx.Err()
		}
		return nil
	}
	if err := e.r.Handle(ctx, events.SecretsManagerSecretRotationEvent{Step: "createSecret", SecretID: secretName, ClientRequestToken: token}); err == nil {
		t.Fatal("createSecret succeeded although the put failed")
	}
	if live := e.vendor.Live(); len(live) != 1 || !live[e.oldKey.ID] || e.vendor.Created() != 1 {
		t.Fatalf("live keys %v after a put cut by the deadline: want only the old key", live)
	}
}

// TestOrphanOfThisRotationIsRevokedOnceStored: an earlier attempt of this
// rotation minted a key and crashed before storing it. The key is revoked
// once this attempt's key is stored, or, if the vendor fails then, by the
// next rotation; the stored key is never touched.
func TestOrphanOfThisRotationIsRevokedOnceStored(t *testing.T) {
	e := newEnv(t, nil)
	e.sm.StartRotation(secretName, token)
	orphan := e.vendor.Add(keyrotor.KeyName(testenv.Identity(secretName), token))
	if err := e.step(rotation.CreateSecret, token); err != nil {
		t.Fatal(err)
	}
	pending, _ := providers.ParseSecret(e.sm.Value(secretName, token))
	if live := e.vendor.Live(); live[orphan.ID] || !live[pending.KeyID] || !live[e.oldKey.ID] {
		t.Fatalf("live %v: want the orphan %s revoked, the stored and the old key alive", live, orphan.ID)
	}

	// The vendor fails the revocation: the key is stored, so the step
	// succeeds; the next rotation's reconcile revokes the orphan.
	e = newEnv(t, nil)
	e.sm.StartRotation(secretName, token)
	orphan = e.vendor.Add(keyrotor.KeyName(testenv.Identity(secretName), token))
	e.vendor.Before = func(op string) error {
		if op == "Revoke" {
			return providers.E("fake.Revoke", providers.Transient, errors.New("503"))
		}
		return nil
	}
	for _, s := range steps {
		if err := e.step(s, token); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if !e.vendor.Live()[orphan.ID] || !strings.Contains(e.logs.String(), "could not revoke an orphan key") {
		t.Fatal("want the orphan alive and a warning after the vendor failed its revocation")
	}
	e.vendor.Before = nil
	e.rotate("22222222-2222-3333-4444-555555555555")
	if e.vendor.Live()[orphan.ID] {
		t.Fatal("the next rotation did not revoke the orphan")
	}
}

// racer is the fake vendor pausing two createSecret invocations of the
// same rotation at chosen points.
type racer struct {
	*fakeprovider.Provider
	creates, lists             atomic.Int32
	aCreated, bListed, aStored chan struct{}
}

func await(ch chan struct{}) {
	select {
	case <-ch:
	case <-time.After(30 * time.Second): // a guard against a hang, not an assertion
	}
}

func (p *racer) Create(ctx context.Context, req providers.CreateRequest) (providers.Credential, error) {
	c, err := p.Provider.Create(ctx, req)
	if p.creates.Add(1) == 1 {
		close(p.aCreated)
		await(p.bListed)
	}
	return c, err
}

func (p *racer) ListKeys(ctx context.Context, owner providers.Credential, prefix string) ([]providers.KeyInfo, error) {
	keys, err := p.Provider.ListKeys(ctx, owner, prefix)
	if prefix != keyrotor.KeyNamePrefix(testenv.Identity(secretName)) {
		return keys, err // the listing of keys named under the old scheme
	}
	if p.lists.Add(1) == 2 {
		close(p.bListed)
		await(p.aStored)
	}
	return keys, err
}

// TestSameTokenListedBeforeTheOtherStored drives the interleaving of two
// createSecret invocations of one rotation where B lists the vendor's keys
// after A minted its key and before A stored it. B must not revoke A's key
// (it would leave a dead key in AWSPENDING for good); B's own key, which it
// cannot store, is revoked; the rotation completes on A's key.
func TestSameTokenListedBeforeTheOtherStored(t *testing.T) {
	e := newEnv(t, nil)
	p := &racer{Provider: e.vendor, aCreated: make(chan struct{}), bListed: make(chan struct{}), aStored: make(chan struct{})}
	e.r = e.rotatorWith(e.sm, p, e.q, time.Hour)
	var puts atomic.Int32
	e.sm.After = func(op string) error {
		if op == "PutSecretValue" && puts.Add(1) == 1 {
			close(p.aStored)
		}
		return nil
	}
	e.sm.StartRotation(secretName, token)
	var errA, errB error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); errA = e.step(rotation.CreateSecret, token) }()
	go func() { defer wg.Done(); await(p.aCreated); errB = e.step(rotation.CreateSecret, token) }()
	wg.Wait()
	if errA != nil {
		t.Fatalf("A: %v", errA)
	}
	if errB == nil {
		t.Fatal("B stored a second value for the token")
	}
	stored, _ := providers.ParseSecret(e.sm.Value(secretName, token))
	if live := e.vendor.Live(); len(live) != 2 || !live[stored.KeyID] || !live[e.oldKey.ID] {
		t.Fatalf("live %v: want the old key and A's stored key %s", live, stored.KeyID)
	}
	for _, s := range steps[1:] {
		if err := e.step(s, token); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestEventWithoutSecretId(t *testing.T) {
	e := newEnv(t, nil)
	err := e.r.Handle(context.Background(), events.SecretsManagerSecretRotationEvent{Step: "createSecret", ClientRequestToken: token})
	if err == nil || !strings.Contains(err.Error(), "no SecretId") || !strings.Contains(err.Error(), "createSecret") {
		t.Fatalf("err = %v", err)
	}
	if e.sm.TotalCalls() != 0 || e.vendor.Created() != 0 {
		t.Fatal("an event without a secret reached Secrets Manager or the vendor")
	}
}

// TestReconcileFailureMintsNothing: when the orphans cannot be listed or
// revoked, createSecret fails before minting (a vendor limit would otherwise
// fill up with orphans).
func TestReconcileFailureMintsNothing(t *testing.T) {
	for _, op := range []string{"ListKeys", "Revoke"} {
		e := newEnv(t, nil)
		e.vendor.Add(keyrotor.KeyName(testenv.Identity(secretName), "crashed-attempt"))
		e.vendor.Before = func(o string) error {
			if o == op {
				return providers.E("fake."+o, providers.Transient, errors.New("503"))
			}
			return nil
		}
		e.sm.StartRotation(secretName, token)
		err := e.step(rotation.CreateSecret, token)
		if providers.KindOf(err) != providers.Transient || !strings.Contains(err.Error(), "fake."+op) {
			t.Fatalf("%s failing: err = %v, want the vendor's transient error naming the operation", op, err)
		}
		if e.vendor.Created() != 0 || e.sm.Calls("PutSecretValue") != 0 {
			t.Fatalf("%s failing: minted %d keys", op, e.vendor.Created())
		}
	}
}

// TestUnstoredKeyWhoseRevocationFails: the put fails and so does the
// revocation of the new key; the error says both, and the retry's
// reconcile revokes the key once the retry's own key is stored.
func TestUnstoredKeyWhoseRevocationFails(t *testing.T) {
	e := newEnv(t, nil)
	e.sm.Before = func(op string) error {
		if op == "PutSecretValue" {
			return errors.New("throttled")
		}
		return nil
	}
	e.vendor.Before = func(op string) error {
		if op == "Revoke" {
			return providers.E("fake.Revoke", providers.Transient, errors.New("503"))
		}
		return nil
	}
	e.sm.StartRotation(secretName, token)
	err := e.step(rotation.CreateSecret, token)
	if err == nil || !strings.Contains(err.Error(), "PutSecretValue") || !strings.Contains(err.Error(), "revoking the unstored key") {
		t.Fatalf("err = %v: want the put's error and the failed revocation", err)
	}
	if len(e.vendor.Live()) != 2 {
		t.Fatalf("live %v: want the old key and the unstored one", e.vendor.Live())
	}
	e.sm.Before, e.vendor.Before = nil, nil
	for _, s := range steps {
		if err := e.step(s, token); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if live := e.vendor.Live(); len(live) != 2 || !live[e.oldKey.ID] || !live[e.current().KeyID] {
		t.Fatalf("live %v after the retry: want only the old and the stored key", live)
	}
}

// TestProviderWithoutListing: a vendor that cannot list keys rotates
// without the reconcile.
func TestProviderWithoutListing(t *testing.T) {
	e := newEnv(t, nil)
	e.r = e.rotatorWith(e.sm, fakeprovider.Plain{Provider: e.vendor}, e.q, time.Hour)
	e.vendor.Before = func(op string) error {
		if op == "ListKeys" {
			t.Error("ListKeys called through a provider that has no Lister")
		}
		return nil
	}
	e.rotate(token)
	if e.current().KeyID == e.oldKey.ID || len(e.q.sent) != 1 {
		t.Fatal("the rotation did not complete")
	}
}

// TestFinishRetryAfterLabelMoveFailsToClearPending: the retry of a
// finishSecret that moved AWSCURRENT fails if it cannot clear AWSPENDING
// (the next rotation could not start), and succeeds once it can.
func TestFinishRetryAfterLabelMoveFailsToClearPending(t *testing.T) {
	e := newEnv(t, nil)
	e.sm.StartRotation(secretName, token)
	for _, s := range steps[:3] {
		if err := e.step(s, token); err != nil {
			t.Fatal(err)
		}
	}
	updates := 0
	e.sm.Before = func(op string) error {
		if op == "UpdateSecretVersionStage" {
			updates++
			if updates >= 2 {
				return errors.New("throttled")
			}
		}
		return nil
	}
	if err := e.step(rotation.FinishSecret, token); err == nil {
		t.Fatal("want the injected failure")
	}
	if err := e.step(rotation.FinishSecret, token); err == nil || !strings.Contains(err.Error(), "remove AWSPENDING") {
		t.Fatalf("retry: err = %v, want the failed removal of AWSPENDING", err)
	}
	e.sm.Before = nil
	if err := e.step(rotation.FinishSecret, token); err != nil {
		t.Fatal(err)
	}
	if st := e.sm.Stages(secretName); fmt.Sprint(st[token]) != "[AWSCURRENT]" {
		t.Fatalf("stages %v", st)
	}
}

// TestOwnOrphanMakesRoomAtTheKeyLimit: at the vendor's key limit, the
// orphan of this rotation's earlier attempt is revoked to make room.
func TestOwnOrphanMakesRoomAtTheKeyLimit(t *testing.T) {
	e := newEnv(t, nil)
	e.sm.StartRotation(secretName, token)
	orphan := e.vendor.Add(keyrotor.KeyName(testenv.Identity(secretName), token))
	e.vendor.MaxKeys = 2
	if err := e.step(rotation.CreateSecret, token); err != nil {
		t.Fatal(err)
	}
	pending, _ := providers.ParseSecret(e.sm.Value(secretName, token))
	if live := e.vendor.Live(); len(live) != 2 || live[orphan.ID] || !live[pending.KeyID] || !live[e.oldKey.ID] {
		t.Fatalf("live %v: want the old and the stored key, the orphan %s revoked", live, orphan.ID)
	}
}

// TestReconcileSparesKeysInGrace rotates four times within the grace period
// (an operator rotating again and again in an incident): every superseded
// key lost its labels but is still in its grace period, owned by a
// revocation message; reconcile must leave it to the revoker. Keys that
// were never stored are still orphans, and the next rotation revokes them.
func TestReconcileSparesKeysInGrace(t *testing.T) {
	for _, pageSize := range []int{0, 1} {
		t.Run(fmt.Sprintf("PageSize=%d", pageSize), func(t *testing.T) {
			e := newEnv(t, nil)
			e.sm.PageSize = pageSize
			tokens := []string{
				"10000000-2222-3333-4444-555555555555",
				"20000000-2222-3333-4444-555555555555",
				"30000000-2222-3333-4444-555555555555",
				"40000000-2222-3333-4444-555555555555",
			}
			keys := []string{e.oldKey.ID}
			for i, tok := range tokens {
				e.rotate(tok)
				keys = append(keys, e.current().KeyID)
				for j, k := range keys {
					if !e.vendor.Live()[k] {
						t.Fatalf("rotation %d revoked key %d (%s) within its grace period", i+1, j, k)
					}
				}
				if i == 1 && e.sm.Calls("ListSecretVersionIds") != 0 {
					t.Fatal("reconcile listed the versions although every other key is AWSPREVIOUS (no extra call wanted)")
				}
				if i >= 2 && e.sm.Calls("ListSecretVersionIds") == 0 {
					t.Fatalf("rotation %d: reconcile never listed the versions although superseded keys are live", i+1)
				}
			}
			live := e.vendor.Live()
			for i, k := range keys {
				if !live[k] {
					t.Fatalf("key %d (%s) was revoked within its grace period; live %v", i, k, live)
				}
			}
			if strings.Contains(e.emf.String(), "OrphanKeysRevoked") {
				t.Fatal("reconcile counted a stored key as an orphan")
			}
			// The revoker owns every superseded key: one message each from
			// the rotation that superseded it. A superseded key that only an
			// unlabelled version holds looks like an abandoned one to the
			// next createSecret, which queues its revocation again, with the
			// grace period from now: a harmless duplicate (DESIGN §5).
			var rotations []sent
			for _, m := range e.q.sent {
				switch m.msg.Reason {
				case revocation.ReasonRotation:
					rotations = append(rotations, m)
				case revocation.ReasonAbandoned:
					if m.delay != time.Hour || m.msg.KeyID == e.current().KeyID || !slices.Contains(keys[:len(keys)-2], m.msg.KeyID) {
						t.Fatalf("abandoned-key message %+v after %v, want a key older than AWSPREVIOUS after 1h", m.msg, m.delay)
					}
				default:
					t.Fatalf("message %+v", m.msg)
				}
			}
			if len(rotations) != len(tokens) {
				t.Fatalf("%d rotation messages, want %d", len(rotations), len(tokens))
			}
			for i, s := range rotations {
				if s.msg.KeyID != keys[i] || s.delay != time.Hour {
					t.Fatalf("message %d revokes %s after %v, want %s after 1h", i, s.msg.KeyID, s.delay, keys[i])
				}
			}

			// Keys never stored: one named for no version (a crash before
			// the store, its version since gone), one named for a version
			// that holds another key (a lost store of an earlier attempt),
			// one named for a version that never got a value (moto's and
			// AWS's empty pending version). A stored AWSPENDING of an
			// abandoned attempt is unstick's, not an orphan.
			unnamed := e.vendor.Add(keyrotor.KeyName(testenv.Identity(secretName), "crashed-attempt"))
			second := e.vendor.Add(keyrotor.KeyName(testenv.Identity(secretName), tokens[1]))
			empty := "50000000-2222-3333-4444-555555555555"
			e.sm.StartRotation(secretName, empty)
			emptyKey := e.vendor.Add(keyrotor.KeyName(testenv.Identity(secretName), empty))
			abandoned := "60000000-2222-3333-4444-555555555555"
			e.sm.StartRotation(secretName, abandoned)
			if err := e.step(rotation.CreateSecret, abandoned); err != nil {
				t.Fatal(err)
			}
			abandonedKey, err := providers.ParseSecret(e.sm.Value(secretName, abandoned))
			if err != nil {
				t.Fatal(err)
			}
			e.rotate("70000000-2222-3333-4444-555555555555")
			live = e.vendor.Live()
			for _, k := range []string{unnamed.ID, second.ID, emptyKey.ID} {
				if live[k] {
					t.Fatalf("the never-stored key %s was not revoked; live %v", k, live)
				}
			}
			if !live[abandonedKey.KeyID] {
				t.Fatal("reconcile revoked the stored AWSPENDING key of an abandoned attempt")
			}
			for i, k := range keys {
				if !live[k] {
					t.Fatalf("key %d (%s) was revoked within its grace period", i, k)
				}
			}
			if n := strings.Count(e.emf.String(), `"OrphanKeysRevoked":1`); n != 3 {
				t.Fatalf("%d OrphanKeysRevoked metrics, want 3", n)
			}
		})
	}
}

// versionReadFailing fails the reads of a version by its id alone (the reads
// reconcile makes to find whether a version holds a key).
type versionReadFailing struct{ *smfake.SM }

func (f versionReadFailing) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	if in.VersionId != nil && in.VersionStage == nil {
		return nil, errors.New("throttled")
	}
	return f.SM.GetSecretValue(ctx, in, o...)
}

// TestReconcileFailsClosedWhenVersionsCannotBeRead: when reconcile cannot
// tell whether a key is stored, it revokes nothing and mints nothing; the
// retry completes and spares the key in grace.
func TestReconcileFailsClosedWhenVersionsCannotBeRead(t *testing.T) {
	for _, op := range []string{"ListSecretVersionIds", "GetSecretValue"} {
		e := newEnv(t, nil)
		e.rotate("10000000-2222-3333-4444-555555555555")
		e.rotate("20000000-2222-3333-4444-555555555555")
		e.sm.Before = func(o string) error {
			if o == op && op == "ListSecretVersionIds" {
				return errors.New("throttled")
			}
			return nil
		}
		if op == "GetSecretValue" {
			e.r = e.rotatorWith(versionReadFailing{e.sm}, e.vendor, e.q, time.Hour)
		}
		minted := e.vendor.Created()
		e.sm.StartRotation(secretName, token)
		err := e.step(rotation.CreateSecret, token)
		if err == nil || !strings.Contains(err.Error(), "secretsmanager."+op) || !strings.Contains(err.Error(), secretName) {
			t.Fatalf("%s failing: err = %v, want an error naming the secret and the operation", op, err)
		}
		if !e.vendor.Live()[e.oldKey.ID] || e.vendor.Created() != minted || e.sm.Calls("PutSecretValue") != 2 {
			t.Fatalf("%s failing: the key in grace was revoked or a key was minted", op)
		}
		e.sm.Before = nil
		e.r = e.rotator(time.Hour)
		for _, s := range steps {
			if err := e.step(s, token); err != nil {
				t.Fatalf("%s after the failure: %v", s, err)
			}
		}
		if !e.vendor.Live()[e.oldKey.ID] {
			t.Fatalf("%s: the retry revoked the key in grace", op)
		}
	}
}
