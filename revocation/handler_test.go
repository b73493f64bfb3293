package revocation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/keyrotor/keyrotor/internal/fakeprovider"
	"github.com/keyrotor/keyrotor/internal/smfake"
	"github.com/keyrotor/keyrotor/metrics"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/revocation"
)

const secretName = "prod/app-key"

type queue struct {
	sent   []revocation.Message
	delays []time.Duration
	fail   error
}

func (q *queue) Send(_ context.Context, m revocation.Message, d time.Duration) error {
	if q.fail != nil {
		return q.fail
	}
	q.sent = append(q.sent, m)
	q.delays = append(q.delays, d)
	return nil
}

type env struct {
	t        *testing.T
	sm       *smfake.SM
	vendor   *fakeprovider.Provider
	q        *queue
	h        *revocation.Handler
	now      time.Time
	old, cur fakeprovider.Key
	emf      *bytes.Buffer
	logs     *bytes.Buffer
	// ps and opts built h (withEvents builds it again with a publisher).
	ps   map[string]providers.Provider
	opts revocation.Options
}

// newEnv: version v1 (old key) is AWSPREVIOUS, v2 (new key) AWSCURRENT.
func newEnv(t *testing.T, lastUse bool) *env { return newEnvOwners(t, lastUse, "", "") }

// newEnvOwners is newEnv with the owner field of v1 and v2 set (when not empty).
func newEnvOwners(t *testing.T, lastUse bool, oldOwner, newOwner string) *env {
	e := &env{t: t, sm: smfake.New(), vendor: fakeprovider.New(), q: &queue{}, emf: &bytes.Buffer{}, logs: &bytes.Buffer{},
		now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	e.old = e.vendor.Add("old")
	e.cur = e.vendor.Add("new")
	e.sm.Create(secretName, valueOwned(e.old, oldOwner), nil)
	e.sm.StartRotation(secretName, "v2")
	put(e.sm, "v2", valueOwned(e.cur, newOwner))
	e.sm.UpdateSecretVersionStage(context.Background(), moveCurrent("v2", "v1"))
	e.sm.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(secretName),
		VersionStage: aws.String("AWSPENDING"), RemoveFromVersionId: aws.String("v2")})
	var p providers.Provider = e.vendor
	if !lastUse {
		p = fakeprovider.Plain{Provider: e.vendor}
	}
	e.ps = map[string]providers.Provider{"fake": p}
	e.opts = revocation.Options{
		MaxDelay: 6 * time.Hour, Now: func() time.Time { return e.now },
		Logger:  slog.New(slog.NewJSONHandler(e.logs, nil)),
		Metrics: metrics.New(e.emf, "", nil),
	}
	e.h = revocation.NewHandler(e.sm, e.q, e.ps, e.opts)
	return e
}

func value(k fakeprovider.Key) string { return valueOwned(k, "") }

func valueOwned(k fakeprovider.Key, owner string) string {
	if owner != "" {
		return fmt.Sprintf(`{"provider":"fake","key":%q,"key_id":%q,"owner":%q}`, k.Secret, k.ID, owner)
	}
	return fmt.Sprintf(`{"provider":"fake","key":%q,"key_id":%q}`, k.Secret, k.ID)
}

func (e *env) msg(notBefore time.Time) revocation.Message {
	return revocation.Message{Version: 1, SecretID: secretName, Provider: "fake", KeyID: e.old.ID, OldVersionID: "v1", NewVersionID: "v2", NotBefore: notBefore}
}

func (e *env) handle(ms ...revocation.Message) events.SQSEventResponse {
	e.t.Helper()
	var ev events.SQSEvent
	for i, m := range ms {
		b, _ := json.Marshal(m)
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprint("m", i), Body: string(b)})
	}
	resp, err := e.h.Handle(context.Background(), ev)
	if err != nil {
		e.t.Fatalf("Handle returned an error (fails the whole batch): %v", err)
	}
	return resp
}

func failed(resp events.SQSEventResponse) []string {
	var ids []string
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids
}

func TestRevokesAfterGrace(t *testing.T) {
	e := newEnv(t, false)
	resp := e.handle(e.msg(e.now.Add(-time.Second)))
	if len(resp.BatchItemFailures) != 0 || e.vendor.Live()[e.old.ID] || !e.vendor.Live()[e.cur.ID] {
		t.Fatalf("failures %v, live %v: want the old key revoked and the new one alive", failed(resp), e.vendor.Live())
	}
	// A duplicate delivery is harmless.
	if resp := e.handle(e.msg(e.now.Add(-time.Second))); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("a second revocation of a gone key failed: %v", failed(resp))
	}
	if !strings.Contains(e.emf.String(), `"RevocationsDone":1`) {
		t.Fatal("no RevocationsDone metric")
	}
}

// TestLongGraceHopsThroughTheQueue drives a 2 h grace period with an injected
// clock: every hop re-sends the message with the remaining delay (at most 15
// minutes), and the key is revoked only once not_before has passed.
func TestLongGraceHopsThroughTheQueue(t *testing.T) {
	e := newEnv(t, false)
	m := e.msg(e.now.Add(2 * time.Hour))
	first := m
	hops := 0
	for {
		e.q.sent = nil
		e.q.delays = nil
		if resp := e.handle(m); len(resp.BatchItemFailures) != 0 {
			t.Fatalf("hop %d failed", hops)
		}
		if len(e.q.sent) == 0 {
			break
		}
		if !e.vendor.Live()[e.old.ID] {
			t.Fatalf("revoked at hop %d, before not_before", hops)
		}
		d := e.q.delays[0]
		if d <= 0 || d > 15*time.Minute {
			t.Fatalf("re-sent with delay %v, want (0, 15m]", d)
		}
		if got := revocation.DelaySeconds(d); got > 900 {
			t.Fatalf("DelaySeconds %d > 900", got)
		}
		m = e.q.sent[0]
		if m.Attempt != hops+1 || !m.NotBefore.Equal(first.NotBefore) {
			t.Fatalf("hop %d: attempt %d not_before %v, want attempt %d and the original not_before", hops, m.Attempt, m.NotBefore, hops+1)
		}
		e.now = e.now.Add(min(d, 15*time.Minute))
		hops++
		if hops > 20 {
			t.Fatal("never revoked")
		}
	}
	if hops != 8 || e.vendor.Live()[e.old.ID] {
		t.Fatalf("%d hops, old key live=%v: want 8 hops of 15 minutes, then the revocation", hops, e.vendor.Live()[e.old.ID])
	}
}

func TestSkipsAKeyRestoredByRollback(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(e *env)
	}{
		{"OldVersionCurrentAgain", func(e *env) {
			e.sm.UpdateSecretVersionStage(context.Background(), moveCurrent("v1", "v2"))
		}},
		{"OldVersionPendingAgain", func(e *env) { e.sm.StartRotation(secretName, "v1") }},
		{"SameKeyCurrentInAnotherVersion", func(e *env) {
			e.sm.StartRotation(secretName, "v3")
			put(e.sm, "v3", value(e.old))
			e.sm.UpdateSecretVersionStage(context.Background(), moveCurrent("v3", "v2"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, true)
			tc.setup(e)
			resp := e.handle(e.msg(e.now.Add(-time.Minute)))
			if len(resp.BatchItemFailures) != 0 || !e.vendor.Live()[e.old.ID] {
				t.Fatalf("failures %v, old key live=%v: want it skipped and alive", failed(resp), e.vendor.Live()[e.old.ID])
			}
			if !strings.Contains(e.emf.String(), `"RevocationsSkipped":1`) {
				t.Fatal("no RevocationsSkipped metric")
			}
		})
	}
}

// A rotation rolled back and followed by another: the restored key is
// AWSPREVIOUS again, and only the later rotation's message may revoke it,
// after its own grace period. A key left behind by two quick rotations is
// still revoked.
func TestRevocationBelongsToTheLatestRotation(t *testing.T) {
	rotateAgain := func(e *env, from string) fakeprovider.Key {
		k := e.vendor.Add("newer")
		e.sm.StartRotation(secretName, "v3")
		put(e.sm, "v3", value(k))
		e.sm.UpdateSecretVersionStage(context.Background(), moveCurrent("v3", from))
		return k
	}
	t.Run("RolledBackThenRotatedAgain", func(t *testing.T) {
		e := newEnv(t, false)
		e.sm.UpdateSecretVersionStage(context.Background(), moveCurrent("v1", "v2")) // rollback: v1 current, v2 previous
		rotateAgain(e, "v1")                                                         // v1 previous of v3
		resp := e.handle(e.msg(e.now.Add(-time.Minute)))
		if len(resp.BatchItemFailures) != 0 || !e.vendor.Live()[e.old.ID] {
			t.Fatalf("failures %v, old key live=%v: the restored key must wait for the later rotation's revocation", failed(resp), e.vendor.Live()[e.old.ID])
		}
		if !strings.Contains(e.emf.String(), `"RevocationsSkipped":1`) {
			t.Fatal("no RevocationsSkipped metric")
		}
	})
	t.Run("TwoQuickRotations", func(t *testing.T) {
		e := newEnv(t, false)
		rotateAgain(e, "v2") // v1 keeps no label: nothing else will revoke its key
		resp := e.handle(e.msg(e.now.Add(-time.Minute)))
		if len(resp.BatchItemFailures) != 0 || e.vendor.Live()[e.old.ID] {
			t.Fatalf("failures %v, old key live=%v: want it revoked", failed(resp), e.vendor.Live()[e.old.ID])
		}
	})
}

func TestDefersWhileInUse(t *testing.T) {
	t.Run("NewKeyNeverUsed", func(t *testing.T) {
		e := newEnv(t, true)
		resp := e.handle(e.msg(e.now.Add(-time.Minute)))
		if len(resp.BatchItemFailures) != 0 || !e.vendor.Live()[e.old.ID] || len(e.q.sent) != 1 || e.q.delays[0] != revocation.DefaultDeferInterval {
			t.Fatalf("failures %v live %v sent %v: want a deferral", failed(resp), e.vendor.Live(), e.q.delays)
		}
		if m := e.q.sent[0]; m.Attempt != 1 || m.KeyID != e.old.ID || !m.NotBefore.Equal(e.now.Add(-time.Minute)) {
			t.Fatalf("deferred message %+v: want attempt 1, the same key and not_before", m)
		}
		// Once the new key is used, the next look revokes.
		e.now = e.now.Add(5 * time.Minute)
		e.vendor.Use(e.cur.ID, e.now)
		e.handle(e.q.sent[0])
		if e.vendor.Live()[e.old.ID] {
			t.Fatal("not revoked once the new key was in use")
		}
	})
	t.Run("OldKeyUsedAfterGrace", func(t *testing.T) {
		e := newEnv(t, true)
		nb := e.now.Add(-10 * time.Minute)
		e.vendor.Use(e.cur.ID, e.now)
		e.vendor.Use(e.old.ID, e.now.Add(-time.Minute))
		e.handle(e.msg(nb))
		if !e.vendor.Live()[e.old.ID] || !strings.Contains(e.emf.String(), `"OldKeyInUse":1`) {
			t.Fatal("an old key used after the grace period was revoked, or OldKeyInUse not counted")
		}
		// Used before the grace ended only: revoke.
		e2 := newEnv(t, true)
		e2.vendor.Use(e2.cur.ID, e2.now)
		e2.vendor.Use(e2.old.ID, nb.Add(-time.Minute))
		e2.handle(e2.msg(nb))
		if e2.vendor.Live()[e2.old.ID] {
			t.Fatal("an old key last used during its grace period was not revoked")
		}
	})
	t.Run("MaxDelayReached", func(t *testing.T) {
		e := newEnv(t, true)
		e.vendor.Use(e.old.ID, e.now)
		e.handle(e.msg(e.now.Add(-7 * time.Hour)))
		if e.vendor.Live()[e.old.ID] {
			t.Fatal("still deferring past MAX_REVOCATION_DELAY")
		}
	})
	t.Run("EmergencyDoesNotWait", func(t *testing.T) {
		e := newEnv(t, true)
		m := e.msg(e.now)
		m.Emergency = true
		e.handle(m)
		if e.vendor.Live()[e.old.ID] {
			t.Fatal("an emergency revocation waited for use")
		}
	})
}

func TestFailuresArePerMessage(t *testing.T) {
	e := newEnv(t, false)
	down := true
	e.vendor.Before = func(op string) error {
		if op == "Revoke" && down {
			return providers.E("fake.Revoke", providers.Transient, errors.New("503"))
		}
		return nil
	}
	good := e.msg(e.now.Add(time.Hour)) // waits: re-sent, acknowledged
	due := e.msg(e.now.Add(-time.Minute))
	unknown := due
	unknown.Provider = "nope"
	ev := events.SQSEvent{}
	for i, m := range []revocation.Message{good, due, unknown} {
		b, _ := json.Marshal(m)
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprint("m", i), Body: string(b)})
	}
	ev.Records = append(ev.Records, events.SQSMessage{MessageId: "m3", Body: `{"version":1,"key_id":`})
	resp, err := e.h.Handle(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	got := failed(resp)
	if fmt.Sprint(got) != "[m1 m2 m3]" {
		t.Fatalf("failures %v, want [m1 m2 m3] (vendor down, unknown provider, malformed)", got)
	}
	if !e.vendor.Live()[e.old.ID] {
		t.Fatal("revoked although the vendor failed")
	}
	down = false
	if resp := e.handle(due); len(resp.BatchItemFailures) != 0 || e.vendor.Live()[e.old.ID] {
		t.Fatal("the retried message did not revoke")
	}
	if strings.Contains(e.logs.String(), e.old.Secret) || strings.Contains(e.logs.String(), e.cur.Secret) {
		t.Fatal("a key appears in the revoker's logs")
	}
}

func TestResendFailureIsAFailure(t *testing.T) {
	e := newEnv(t, false)
	e.q.fail = errors.New("sqs down")
	if resp := e.handle(e.msg(e.now.Add(time.Hour))); len(resp.BatchItemFailures) != 1 {
		t.Fatal("a message whose re-send failed was acknowledged: it would be lost")
	}
}

func TestDecode(t *testing.T) {
	for _, body := range []string{``, `{}`, `[]`, `{"version":3,"secret_id":"s","provider":"p","key_id":"k","old_version_id":"v","not_before":"2026-01-01T00:00:00Z"}`,
		`{"version":2,"secret_id":"s","provider":"p","key_id":"k","old_version_id":"v","not_before":"2026-01-01T00:00:00Z","reason":"because"}`,
		`{"version":1,"secret_id":"s","provider":"p","key_id":"k","not_before":"2026-01-01T00:00:00Z"}`,
		`{"version":1,"secret_id":"s","provider":"p","key_id":"k","old_version_id":"v"}`} {
		if _, err := revocation.Decode(body); !errors.Is(err, revocation.ErrInvalidMessage) {
			t.Errorf("Decode(%q) err = %v, want ErrInvalidMessage", body, err)
		}
	}
	// Version-1 messages queued before an upgrade are still honoured.
	for body, reason := range map[string]string{
		`{"version":1,"secret_id":"s","provider":"p","key_id":"k","old_version_id":"v","not_before":"2026-01-01T00:00:00Z"}`:                      revocation.ReasonRotation,
		`{"version":1,"secret_id":"s","provider":"p","key_id":"k","old_version_id":"v","not_before":"2026-01-01T00:00:00Z","emergency":true}`:     revocation.ReasonEmergency,
		`{"version":2,"secret_id":"s","provider":"p","key_id":"k","old_version_id":"v","not_before":"2026-01-01T00:00:00Z","reason":"abandoned"}`: revocation.ReasonAbandoned,
	} {
		m, err := revocation.Decode(body)
		if err != nil || m.Reason != reason || m.IsEmergency() != (reason == revocation.ReasonEmergency) {
			t.Errorf("Decode(%s) = reason %q (%v), want %q", body, m.Reason, err, reason)
		}
	}
	if got := revocation.DelaySeconds(2*time.Hour) + revocation.DelaySeconds(1500*time.Millisecond); got != 902 {
		t.Fatalf("DelaySeconds: %d", got)
	}
}

func put(sm *smfake.SM, version, v string) {
	sm.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(secretName), ClientRequestToken: aws.String(version), SecretString: aws.String(v), VersionStages: []string{"AWSPENDING"}})
}

func moveCurrent(to, from string) *secretsmanager.UpdateSecretVersionStageInput {
	return &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(secretName), VersionStage: aws.String("AWSCURRENT"),
		MoveToVersionId: aws.String(to), RemoveFromVersionId: aws.String(from)}
}

func TestVendorNotFoundIsSuccess(t *testing.T) {
	e := newEnv(t, false)
	e.vendor.Before = func(op string) error {
		if op == "Revoke" {
			return providers.E("fake.Revoke", providers.NotFound, errors.New("404"))
		}
		return nil
	}
	if resp := e.handle(e.msg(e.now.Add(-time.Minute))); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("a key already gone at the vendor failed the message: %v", failed(resp))
	}
}

// TestAlreadyRevokedWithLastUse: a duplicate delivery after the key was
// revoked, with a vendor that reports last use (which answers NotFound for
// the old key at its owner), is success; RevocationsDone counts only keys
// really revoked, so it counts RevocationsAlreadyGone.
func TestAlreadyRevokedWithLastUse(t *testing.T) {
	e := newEnv(t, true)
	e.vendor.Use(e.cur.ID, e.now)
	if err := e.vendor.Revoke(context.Background(), providers.Credential{}, e.old.ID); err != nil {
		t.Fatal(err)
	}
	if resp := e.handle(e.msg(e.now.Add(-time.Minute))); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("a key already gone failed the message: %v\n%s", failed(resp), e.logs.String())
	}
	if len(e.q.sent) != 0 || strings.Contains(e.emf.String(), `"RevocationsDone"`) || !strings.Contains(e.emf.String(), `"RevocationsAlreadyGone":1`) {
		t.Fatalf("re-sent %d messages; metrics %s: want RevocationsAlreadyGone, not RevocationsDone", len(e.q.sent), e.emf.String())
	}
}

// TestSecretOfAnotherProviderIsRefused: a message whose provider is not the
// old version's (the secret was re-purposed, or the message forged) revokes
// nothing; it is acknowledged and counted as refused (alarmed).
func TestSecretOfAnotherProviderIsRefused(t *testing.T) {
	e := newEnv(t, false)
	other := fakeprovider.New()
	h := revocation.NewHandler(e.sm, e.q, map[string]providers.Provider{"fake": e.vendor, "other": fakeprovider.Plain{Provider: other}},
		revocation.Options{Now: func() time.Time { return e.now }, Logger: slog.New(slog.NewJSONHandler(e.logs, nil))})
	m := e.msg(e.now.Add(-time.Minute))
	m.Provider = "other"
	res, err := h.Process(context.Background(), m)
	if err != nil || res != revocation.Refused || !strings.Contains(e.logs.String(), `the old version is a \"fake\" key, the message names \"other\"`) {
		t.Fatalf("result %q, err %v: want a refusal saying which provider the old version names; logs %s", res, err, e.logs.String())
	}
	if !e.vendor.Live()[e.old.ID] {
		t.Fatal("revoked a key of a secret of another provider")
	}
}

// deadlineProbe records the deadline of the context Revoke gets.
type deadlineProbe struct {
	*fakeprovider.Provider
	dl time.Time
}

func (p *deadlineProbe) Revoke(ctx context.Context, owner providers.Credential, keyID string) error {
	p.dl, _ = ctx.Deadline()
	return p.Provider.Revoke(ctx, owner, keyID)
}

// TestStopsBeforeTheLambdaDeadline: vendor calls end a second before the
// Lambda deadline, so that a hanging vendor fails its own message instead
// of timing out the batch (which would return every message).
func TestStopsBeforeTheLambdaDeadline(t *testing.T) {
	e := newEnv(t, false)
	p := &deadlineProbe{Provider: e.vendor}
	h := revocation.NewHandler(e.sm, e.q, map[string]providers.Provider{"fake": fakeprovider.Plain{Provider: p}},
		revocation.Options{Now: func() time.Time { return e.now }, Logger: slog.New(slog.NewJSONHandler(e.logs, nil))})
	dl := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(context.Background(), dl)
	defer cancel()
	b, _ := json.Marshal(e.msg(e.now.Add(-time.Minute)))
	resp, err := h.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m0", Body: string(b)}}})
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("err %v failures %v", err, failed(resp))
	}
	if p.dl.IsZero() || p.dl.After(dl.Add(-time.Second)) {
		t.Fatalf("the vendor call's deadline is %v, want at least 1s before the Lambda deadline %v", p.dl, dl)
	}
}

// fakeSQS records SendMessage inputs.
type fakeSQS struct {
	in   []sqs.SendMessageInput
	fail error
}

func (f *fakeSQS) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	if f.fail != nil {
		return nil, f.fail
	}
	f.in = append(f.in, *in)
	return &sqs.SendMessageOutput{MessageId: aws.String("id")}, nil
}

// TestQueueSend checks the message on the wire: DESIGN §5's fields and no
// other (no secret material), version 1, a delay SQS accepts.
func TestQueueSend(t *testing.T) {
	f := &fakeSQS{}
	q := revocation.Queue{SQS: f, URL: "http://127.0.0.1:1/queue/revocations"}
	nb := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	m := revocation.Message{SecretID: "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/app-key-AbCdEf", Provider: "fake",
		KeyID: "fk1001", OldVersionID: "v1", NotBefore: nb}
	for _, tc := range []struct {
		delay time.Duration
		want  int32
	}{{2 * time.Hour, 900}, {90 * time.Second, 90}, {0, 0}, {-time.Minute, 0}} {
		f.in = nil
		if err := q.Send(context.Background(), m, tc.delay); err != nil {
			t.Fatal(err)
		}
		in := f.in[0]
		if in.DelaySeconds != tc.want || aws.ToString(in.QueueUrl) != q.URL {
			t.Fatalf("delay %v: DelaySeconds %d queue %q, want %d and the queue", tc.delay, in.DelaySeconds, aws.ToString(in.QueueUrl), tc.want)
		}
		var fields map[string]any
		if err := json.Unmarshal([]byte(aws.ToString(in.MessageBody)), &fields); err != nil {
			t.Fatal(err)
		}
		var names []string
		for k := range fields {
			names = append(names, k)
		}
		sort.Strings(names)
		if fmt.Sprint(names) != "[attempt key_id not_before old_version_id provider reason secret_id version]" {
			t.Fatalf("message fields %v, want exactly DESIGN §5's", names)
		}
		got, err := revocation.Decode(aws.ToString(in.MessageBody))
		if err != nil || got.Version != 2 || got.Reason != revocation.ReasonRotation || got.KeyID != m.KeyID || !got.NotBefore.Equal(nb) {
			t.Fatalf("decoded %+v (%v)", got, err)
		}
	}
	f.fail = errors.New("AWS.SimpleQueueService.NonExistentQueue")
	err := q.Send(context.Background(), m, 0)
	if !errors.Is(err, f.fail) || !strings.Contains(err.Error(), m.KeyID) || !strings.Contains(err.Error(), m.SecretID) {
		t.Fatalf("err = %v: want the SQS error wrapped, naming the key and the secret", err)
	}
	f.fail = nil
	if err := (revocation.Queue{SQS: f}).Send(context.Background(), m, 0); err == nil || !strings.Contains(err.Error(), "REVOCATION_QUEUE_URL") {
		t.Fatalf("sent with no queue URL: %v", err)
	}
}

// TestFailuresReturnTheMessage: whatever the revoker cannot read or decide,
// the message returns (a batch item failure) and the key stays alive.
func TestFailuresReturnTheMessage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lastUse bool
		setup   func(e *env)
		want    string
	}{
		{"DescribeSecret", false, func(e *env) {
			e.sm.Before = func(op string) error {
				if op == "DescribeSecret" {
					return errors.New("throttled")
				}
				return nil
			}
		}, "secretsmanager.DescribeSecret"},
		{"GetSecretValue", false, func(e *env) {
			e.sm.Before = func(op string) error {
				if op == "GetSecretValue" {
					return errors.New("throttled")
				}
				return nil
			}
		}, "secretsmanager.GetSecretValue(version v1)"},
		{"CurrentNotJSON", false, func(e *env) {
			e.sm.StartRotation(secretName, "v3")
			put(e.sm, "v3", `{"provider":`)
			e.sm.UpdateSecretVersionStage(context.Background(), moveCurrent("v3", "v2"))
		}, "read AWSCURRENT"},
		{"LastUseOfOldKey", true, func(e *env) {
			e.vendor.Before = func(op string) error {
				if op == "LastUsed" {
					return providers.E("fake.LastUsed", providers.Transient, errors.New("503"))
				}
				return nil
			}
		}, "last use of the old key"},
		{"DeferralResend", true, func(e *env) { e.q.fail = errors.New("sqs down") }, "sqs down"},
		{"RevokeRefused", false, func(e *env) {
			e.vendor.Before = func(op string) error {
				if op == "Revoke" {
					return providers.E("fake.Revoke", providers.Permission, errors.New("403"))
				}
				return nil
			}
		}, "fake.Revoke"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.lastUse)
			tc.setup(e)
			res, err := e.h.Process(context.Background(), e.msg(e.now.Add(-time.Minute)))
			// The queue's own errors name the secret (TestQueueSend).
			namesSecret := tc.name == "DeferralResend" || strings.Contains(fmt.Sprint(err), secretName)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !namesSecret {
				t.Fatalf("result %q err %v: want an error naming the secret and saying %q", res, err, tc.want)
			}
			if resp := e.handle(e.msg(e.now.Add(-time.Minute))); len(resp.BatchItemFailures) != 1 {
				t.Fatalf("failures %v: want the message returned", failed(resp))
			}
			if !e.vendor.Live()[e.old.ID] {
				t.Fatal("the old key was revoked")
			}
			if tc.name == "RevokeRefused" && !strings.Contains(e.emf.String(), `"VendorAuthFailures":1`) {
				t.Fatal("a refused revocation is not counted as a vendor authentication failure")
			}
		})
	}
}
