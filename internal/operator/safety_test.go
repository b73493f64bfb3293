package operator

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/revocation"
	"github.com/keyrotor/keyrotor/rotation"
)

// Interleaving tests of issue 10 §4 and §6: each hook sits between the
// operator's check and its act, where a step of the rotation function or
// the revoker can run; none sleeps.

const tagRollbackUntil = "keyrotor:rollback-until"

// stuckRotation makes a rotation that stopped after testSecret: version
// "v2" holds the key createSecret minted, labelled AWSPENDING.
func stuckRotation(e *env, secret string) (current, pending providers.Credential) {
	e.t.Helper()
	current = e.managedSecret(secret)
	e.sm.StartRotation(secret, "v2")
	if err := e.stepsUpTo(secret, "v2", "testSecret"); err != nil {
		e.t.Fatal(err)
	}
	p, err := providers.ParseSecret(e.sm.Value(secret, "v2"))
	if err != nil || p.KeyID == "" || p.KeyID == current.KeyID {
		e.t.Fatalf("the stuck version holds %+v (%v)", p, err)
	}
	return current, p
}

// finishMove is finishSecret's label move of a rotation that passed its
// checks before unstick changed anything: AWSCURRENT onto v2.
func finishMove(e *env, secret string) {
	if _, err := e.sm.SM.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String(secret), VersionStage: aws.String(rotation.Current), MoveToVersionId: aws.String("v2"), RemoveFromVersionId: aws.String("v1"),
	}); err != nil {
		e.t.Fatal(err)
	}
}

// A finishSecret of the stuck rotation moves AWSCURRENT onto the pending
// version while unstick runs: before unstick's first change (its revoke in
// the old order, its label clear in the new one), or right after it clears
// AWSPENDING (no compare-and-set: a finishSecret past its checks still
// moves the label). Unstick never revokes a key itself: the key that
// becomes AWSCURRENT stays live, and the revocation goes to the revoker
// (reason abandoned), delayed past the function's timeout.
func TestUnstickRacingFinishSecretNeverRevokesTheCurrentKey(t *testing.T) {
	for _, when := range []string{"BeforeUnsticksFirstChange", "AfterTheLabelIsCleared"} {
		t.Run(when, func(t *testing.T) {
			e := newEnv(t)
			const secret = "svc/stuck"
			_, pending := stuckRotation(e, secret)
			moved, revokes := false, 0
			move := func() {
				if !moved {
					moved = true
					finishMove(e, secret)
				}
			}
			e.p.Before = func(op string) error {
				if op == "Revoke" {
					revokes++
					if when == "BeforeUnsticksFirstChange" {
						move()
					}
				}
				return nil
			}
			if when == "BeforeUnsticksFirstChange" {
				e.sm.beforeStage = move
			} else {
				e.sm.afterStage = move
			}
			if _, err := e.op.Unstick(context.Background(), secret, UnstickOptions{Force: true}); err != nil {
				t.Fatal(err)
			}
			if !moved {
				t.Fatal("the hook never ran")
			}
			cur := e.current(secret)
			if cur.KeyID != pending.KeyID {
				t.Fatalf("AWSCURRENT holds %s, want the finished rotation's %s", cur.KeyID, pending.KeyID)
			}
			if !e.p.Live()[cur.KeyID] {
				t.Fatalf("the AWSCURRENT key %s was revoked by unstick (%d revokes): an outage", cur.KeyID, revokes)
			}
			if revokes != 0 {
				t.Fatalf("unstick revoked %d keys itself", revokes)
			}
			if len(e.sqs.msgs) != 1 {
				t.Fatalf("queued %d revocations, want 1", len(e.sqs.msgs))
			}
			m := e.sqs.msgs[0]
			wantNB := e.now.Add(60*time.Second + abandonMargin)
			if m.Reason != revocation.ReasonAbandoned || m.KeyID != pending.KeyID || m.OldVersionID != "v2" || m.NewVersionID != "" ||
				m.Provider != "fake" || !strings.HasPrefix(m.SecretID, "arn:aws:secretsmanager:") || !m.NotBefore.Equal(wantNB) || e.sqs.urls[0] != fakeQueueURL {
				t.Fatalf("queued %+v to %s, want the abandoned key %s of v2 not before %s", m, e.sqs.urls[0], pending.KeyID, wantNB)
			}
		})
	}
}

// Unstick settles the revocation before it changes anything: without a
// queue it refuses and leaves AWSPENDING in place; without the function's
// configuration it falls back to the longest Lambda timeout and the
// operator's queue.
func TestUnstickQueueAndTimeout(t *testing.T) {
	e := newEnv(t)
	const secret = "svc/stuck"
	_, pending := stuckRotation(e, secret)
	e.lambda.env = map[string]string{}
	before := e.sm.Stages(secret)
	_, err := e.op.Unstick(context.Background(), secret, UnstickOptions{Force: true})
	var r *RefusedError
	if !errors.As(err, &r) || !strings.Contains(r.Reason, "no revocation queue") {
		t.Fatalf("unstick without a queue: %v, want refused", err)
	}
	if after := e.sm.Stages(secret); len(after["v2"]) != len(before["v2"]) || !e.p.Live()[pending.KeyID] {
		t.Fatalf("a refused unstick changed something: %v -> %v", before, after)
	}

	e.lambda.err = errDenied
	e.op = &Operator{SM: e.op.SM, Providers: e.op.Providers, Now: e.op.Now}
	wire(e)
	setFallbackQueue(e.op, "https://queue.example/fallback")
	if _, err := e.op.Unstick(context.Background(), secret, UnstickOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if len(e.sqs.msgs) != 1 || e.sqs.urls[0] != "https://queue.example/fallback" || !e.sqs.msgs[0].NotBefore.Equal(e.now.Add(900*time.Second+abandonMargin)) {
		t.Fatalf("queued %+v to %v, want the fallback queue and 900 s + margin", e.sqs.msgs, e.sqs.urls)
	}
	if st := e.sm.Stages(secret)["v2"]; len(st) != 0 {
		t.Fatalf("v2 still labelled %v", st)
	}
}

// The revoker, having checked the labels before the rollback, revokes the
// key rollback is restoring between rollback's vendor check and its label
// move. Rollback must not leave both keys dead: it finds the restored key
// dead, puts AWSCURRENT back on the failed (but live) version, revokes
// nothing and fails saying both facts.
func TestRollbackRacingTheRevokerKeepsAWorkingKey(t *testing.T) {
	e := newEnv(t)
	const secret = "svc/key"
	key1 := e.managedSecret(secret)
	e.rotate(secret, "v2")
	key2 := e.current(secret)
	raced := false
	e.sm.SM.Before = func(op string) error {
		if op == "UpdateSecretVersionStage" && !raced {
			raced = true
			// The revoker's DeleteAccessKey, past its last check.
			return e.p.Revoke(context.Background(), key1, key1.KeyID)
		}
		return nil
	}
	_, err := e.op.Rollback(context.Background(), secret)
	if !raced {
		t.Fatal("the hook never ran")
	}
	cur := e.current(secret)
	if !e.p.Live()[cur.KeyID] {
		t.Fatalf("after rollback AWSCURRENT holds %s, which is dead (live keys %v): both keys are gone", cur.KeyID, e.p.Live())
	}
	if cur.KeyID != key2.KeyID {
		t.Fatalf("AWSCURRENT holds %s, want the live %s back", cur.KeyID, key2.KeyID)
	}
	if err == nil || ExitCode(err) != ExitFailure || !strings.Contains(err.Error(), key1.KeyID) || !strings.Contains(err.Error(), key2.KeyID) || !strings.Contains(err.Error(), "nothing was revoked") {
		t.Fatalf("rollback: %v, want exit 1 naming the dead restored key and the key back in AWSCURRENT", err)
	}
}

// Rollback tags keyrotor:rollback-until = now + grace + 15 min before it
// moves the label, with the grace of the secret's tag, else of the rotation
// function, else 2h; a plain rotation is then refused until that time, an
// emergency one is not.
func TestRollbackHoldsBeforeTheLabelMove(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tag   string
		fnEnv map[string]string
		fnErr error
		want  time.Duration
	}{
		{"SecretTag", "30m", map[string]string{"GRACE_PERIOD": "3h"}, nil, 30 * time.Minute},
		{"FunctionGrace", "", map[string]string{"GRACE_PERIOD": "3h"}, nil, 3 * time.Hour},
		{"FunctionDefault", "", map[string]string{}, nil, rotation.DefaultGracePeriod},
		{"FunctionUnreadable", "", nil, errDenied, 2 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.lambda.env, e.lambda.err = tc.fnEnv, tc.fnErr
			const secret = "svc/key"
			key1 := e.managedSecret(secret)
			if tc.tag != "" {
				e.sm.Tag(secret, rotation.TagGracePeriod, tc.tag)
			}
			e.rotate(secret, "v2")
			var atMove string
			e.sm.beforeStage = func() { atMove = tags(t, e, secret)[tagRollbackUntil] }
			if _, err := e.op.Rollback(context.Background(), secret); err != nil {
				t.Fatal(err)
			}
			want := e.now.Add(tc.want + 15*time.Minute).UTC().Format(time.RFC3339)
			if atMove != want {
				t.Fatalf("%s at the label move = %q, want %q", tagRollbackUntil, atMove, want)
			}
			if e.current(secret).KeyID != key1.KeyID {
				t.Fatal("not rolled back")
			}
			_, err := e.op.Rotate(context.Background(), secret, RotateOptions{})
			var r *RefusedError
			if !errors.As(err, &r) || !strings.Contains(r.Reason, "held until") {
				t.Fatalf("plain rotate during the hold: %v, want refused", err)
			}
			e.now = e.now.Add(tc.want + 16*time.Minute)
			if _, err := e.op.Rotate(context.Background(), secret, RotateOptions{}); err != nil {
				t.Fatalf("plain rotate after the hold: %v", err)
			}
		})
	}
}

func tags(t *testing.T, e *env, secret string) map[string]string {
	t.Helper()
	d, err := e.sm.SM.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(secret)})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, tg := range d.Tags {
		out[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	return out
}

// An emergency rotation during the grace period of the rotation before:
// the revoker revokes the old current key at once, but the key still in
// grace stays live. The command must not say the leak is over: it waits,
// then fails listing that key with the command that kills it; that command
// works, and refuses the current key.
func TestEmergencyWaitsForEverySupersededKey(t *testing.T) {
	e := newEnv(t)
	const secret = "svc/leaked"
	key1 := e.managedSecret(secret)
	e.rotate(secret, "v2")
	key2 := e.current(secret)
	e.sm.rotate = e.steps
	revoker := revocation.NewHandler(e.sm, e.q, map[string]providers.Provider{"fake": e.p}, revocation.Options{Now: func() time.Time { return e.now }, Logger: quiet})
	var progress []string
	e.op.Progress = func(m string) { progress = append(progress, m) }
	e.op.Sleep = func(context.Context, time.Duration) error {
		// The revoker handles the leaked key's message; whatever else the
		// rotation queued (the key in grace, for an engine that revokes
		// every superseded key) is stuck behind a failing vendor call.
		msgs := e.q.msgs
		e.q.msgs = nil
		for _, m := range msgs {
			if m.KeyID != key2.KeyID {
				continue
			}
			if _, err := revoker.Process(context.Background(), m); err != nil {
				t.Fatal(err)
			}
		}
		e.now = e.now.Add(time.Second)
		return nil
	}
	e.op.NewToken = func() string { return "emergency-1" }
	_, err := e.op.Rotate(context.Background(), secret, RotateOptions{Emergency: true, Timeout: 20 * time.Second})
	key3 := e.current(secret)
	if key3.KeyID == key2.KeyID || e.p.Live()[key2.KeyID] {
		t.Fatalf("the emergency rotation did not replace and revoke %s (current %s)", key2.KeyID, key3.KeyID)
	}
	if !e.p.Live()[key1.KeyID] {
		t.Fatalf("the key in grace %s was revoked: the test lost its point", key1.KeyID)
	}
	if err == nil {
		t.Fatalf("emergency rotation exit 0 while the superseded key %s is live", key1.KeyID)
	}
	if ExitCode(err) != ExitFailure || !strings.Contains(err.Error(), "keyrotor revoke-key "+secret+" "+key1.KeyID) {
		t.Fatalf("emergency rotation: %v; want exit 1 with `keyrotor revoke-key %s %s`", err, secret, key1.KeyID)
	}
	if !strings.Contains(strings.Join(progress, "\n"), "still live") {
		t.Fatalf("no progress while waiting:\n%s", strings.Join(progress, "\n"))
	}

	var r *RefusedError
	if _, err := revokeKey(e.op, secret, key3.KeyID); !errors.As(err, &r) {
		t.Fatalf("revoke-key of the current key: %v, want refused", err)
	}
	if _, err := revokeKey(e.op, secret, "fk-not-ours"); !errors.As(err, &r) {
		t.Fatalf("revoke-key of a key no version holds: %v, want refused", err)
	}
	if revoked, err := revokeKey(e.op, secret, key1.KeyID); err != nil || !revoked || e.p.Live()[key1.KeyID] {
		t.Fatalf("revoke-key %s: %v, %v", key1.KeyID, revoked, err)
	}
	if !e.p.Live()[key3.KeyID] {
		t.Fatal("the current key was revoked")
	}
}

// For a vendor without a key API the emergency says first what to do there.
func TestEmergencyStripeSaysWhatToDoAtStripe(t *testing.T) {
	e := newEnv(t)
	e.sm.Create("pay/stripe", `{"provider":"stripe","key":"sk_test_x","key_id":"k1"}`, map[string]string{rotation.TagManaged: "true"})
	_, err := e.op.Rotate(context.Background(), "pay/stripe", RotateOptions{Emergency: true})
	var r *RefusedError
	if !errors.As(err, &r) || !strings.Contains(r.Reason, "At stripe now: roll the key in the dashboard") || !strings.Contains(r.Reason, "keyrotor import pay/stripe") {
		t.Fatalf("emergency of a Stripe key: %v", err)
	}
}

// Status uses the grace period the rotation function uses, read once per
// function, and says "unknown" rather than guess when it cannot be read.
func TestStatusGraceIsTheFunctions(t *testing.T) {
	e := newEnv(t)
	e.lambda.env = map[string]string{"GRACE_PERIOD": "3h"}
	for _, s := range []string{"svc/a", "svc/b"} {
		e.managedSecret(s)
		e.rotate(s, "v2")
	}
	sts, err := e.op.Status(context.Background(), []string{"svc/a", "svc/b"}, StatusOptions{NoVendor: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		if st.GraceSeconds != 3*3600 {
			t.Fatalf("%s: grace %ds, want the function's 3h", st.Secret, st.GraceSeconds)
		}
	}
	if e.lambda.calls != 1 {
		t.Fatalf("GetFunctionConfiguration called %d times for one function", e.lambda.calls)
	}

	e.lambda.err = errDenied
	e.op = &Operator{SM: e.op.SM, Providers: e.op.Providers, Now: e.op.Now}
	wire(e)
	sts, err = e.op.Status(context.Background(), []string{"svc/a"}, StatusOptions{NoVendor: true})
	if err != nil {
		t.Fatal(err)
	}
	if st := sts[0]; st.GraceSeconds != 0 || st.GraceUntil != nil || !strings.Contains(graceUnknown(st), "AccessDenied") {
		t.Fatalf("status with the function unreadable: grace %ds until %v (%q), want unknown", st.GraceSeconds, st.GraceUntil, graceUnknown(st))
	}
}

// Status lists missing bindings, each with the command that adds it.
func TestStatusListsMissingBindings(t *testing.T) {
	e := newEnv(t)
	iamARN := e.sm.Create("svc/iam", `{"provider":"iam","key":"s","key_id":"AKIA1","user_name":"payments-bot"}`, map[string]string{rotation.TagManaged: "true"})
	e.sm.SetRotationEnabled("svc/iam", true)
	e.iam.tags["payments-bot"] = map[string]string{"team": "payments"}
	e.sm.Create("admin/gw", `{"token":"t"}`, map[string]string{"keyrotor:admin-for": "other/*"})
	e.sm.Create("svc/gw", `{"provider":"fake","key":"s","key_id":"k","admin_secret_id":"admin/gw"}`, map[string]string{rotation.TagManaged: "true"})
	e.sm.SetRotationEnabled("svc/gw", true)
	sts, err := e.op.Status(context.Background(), []string{"svc/iam", "svc/gw"}, StatusOptions{NoVendor: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"svc/iam": "aws iam tag-user --user-name payments-bot --tags Key=keyrotor:secret,Value=" + iamARN,
		"svc/gw":  `aws secretsmanager tag-resource --secret-id admin/gw --tags '[{"Key":"keyrotor:admin-for","Value":"other/*,svc/gw"}]'`,
	}
	for _, st := range sts {
		if got := strings.Join(st.Problems, "\n"); !strings.Contains(got, want[st.Secret]) {
			t.Errorf("%s: problems\n%s\nwant the fix %s", st.Secret, got, want[st.Secret])
		}
	}

	// Bound: no problem.
	e.iam.tags["payments-bot"]["keyrotor:secret"] = iamARN
	e.sm.Tag("admin/gw", "keyrotor:admin-for", "other/*, svc/*")
	sts, err = e.op.Status(context.Background(), []string{"svc/iam", "svc/gw"}, StatusOptions{NoVendor: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		if len(st.Problems) != 0 {
			t.Errorf("%s bound: problems %q", st.Secret, st.Problems)
		}
	}
}

// An emergency after a rollback lifts the rollback hold, under which the
// revoker would keep the leaked key alive.
func TestEmergencyLiftsTheRollbackHold(t *testing.T) {
	e := newEnv(t)
	const secret = "svc/leaked"
	e.managedSecret(secret)
	e.sm.Tag(secret, tagRollbackUntil, e.now.Add(time.Hour).Format(time.RFC3339))
	e.sm.rotate = e.steps
	revoker := revocation.NewHandler(e.sm, e.q, map[string]providers.Provider{"fake": e.p}, revocation.Options{Now: func() time.Time { return e.now }, Logger: quiet})
	e.op.Sleep = func(context.Context, time.Duration) error {
		msgs := e.q.msgs
		e.q.msgs = nil
		for _, m := range msgs {
			if _, err := revoker.Process(context.Background(), m); err != nil {
				t.Fatal(err)
			}
		}
		e.now = e.now.Add(time.Second)
		return nil
	}
	if _, err := e.op.Rotate(context.Background(), secret, RotateOptions{Emergency: true, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	until, err := time.Parse(time.RFC3339, tags(t, e, secret)[tagRollbackUntil])
	if err != nil || until.After(e.now) {
		t.Fatalf("%s=%s after an emergency (now %s): the hold still stands", tagRollbackUntil, tags(t, e, secret)[tagRollbackUntil], e.now)
	}
}
