package revocation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/revocation"
)

// TestForgedMessageNamingAnotherSecretsKey: any principal that can send to
// the queue (or one compromised rotation function) names a live key of
// another secret with this secret's real old_version_id. The old version
// does not hold that key: nothing is revoked, the refusal is counted.
func TestForgedMessageNamingAnotherSecretsKey(t *testing.T) {
	e := newEnv(t, false)
	victim := e.vendor.Add("another secret's current key")
	m := e.msg(e.now.Add(-time.Minute))
	m.KeyID = victim.ID
	if resp := e.handle(m); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %v: a refused message is acknowledged (counted and alarmed), not retried", failed(resp))
	}
	if !e.vendor.Live()[victim.ID] {
		t.Fatal("a forged message revoked another secret's live key")
	}
	if !strings.Contains(e.emf.String(), `"RevocationsRefused":1`) {
		t.Fatal("the refusal was not counted (RevocationsRefused)")
	}
}

// TestForgedMessageNamingTheAdminKey: the admin key, named by a message, or
// held by a hand-edited old version, is never revoked.
func TestForgedMessageNamingTheAdminKey(t *testing.T) {
	for _, edited := range []bool{false, true} {
		t.Run(fmt.Sprintf("EditedVersion=%v", edited), func(t *testing.T) {
			e := newEnv(t, false)
			admin := e.vendor.Add("the admin key")
			e.sm.Create("keyrotor/admin/fake", fmt.Sprintf(`{"key":%q,"key_id":%q}`, admin.Secret, admin.ID), nil)
			m := e.msg(e.now.Add(-time.Minute))
			m.KeyID = admin.ID
			if edited {
				// Someone with PutSecretValue stored the admin key in a
				// version that then lost its labels.
				e.sm.StartRotation(secretName, "v3")
				put(e.sm, "v3", fmt.Sprintf(`{"provider":"fake","key":%q,"key_id":%q,"admin_secret_id":"keyrotor/admin/fake"}`, admin.Secret, admin.ID))
				e.sm.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(secretName),
					VersionStage: aws.String("AWSPENDING"), RemoveFromVersionId: aws.String("v3")})
				m.OldVersionID = "v3"
			}
			e.handle(m)
			if !e.vendor.Live()[admin.ID] {
				t.Fatal("a forged message revoked the admin key")
			}
			if !strings.Contains(e.emf.String(), `"RevocationsRefused":1`) {
				t.Fatal("the refusal was not counted")
			}
		})
	}
}

// TestRevokesAtTheOldVersionsOwner: after the owner changed (another IAM
// user, Twilio account), the old key lives at the old version's owner: the
// revoke must go there, not to the current owner, where "not found" would
// count as success while the old key stays live.
func TestRevokesAtTheOldVersionsOwner(t *testing.T) {
	e := newEnvOwners(t, false, "team-a", "team-b")
	e.handle(e.msg(e.now.Add(-time.Minute)))
	if e.vendor.Live()[e.old.ID] {
		t.Fatal("the old key was not revoked")
	}
	if got := e.vendor.Owners[e.old.ID].Attr("owner"); got != "team-a" {
		t.Fatalf("revoked at owner %q, want the old version's owner team-a", got)
	}
}

// TestRollbackBetweenCheckAndRevoke: the revoker checks the labels, asks the
// vendor about use, then revokes. A rollback in between makes the old key
// AWSCURRENT again; the revoker must re-validate right before it revokes.
func TestRollbackBetweenCheckAndRevoke(t *testing.T) {
	e := newEnv(t, true)
	e.vendor.Use(e.cur.ID, e.now)
	e.sm.Now = func() time.Time { return e.now }
	lastUsed := 0
	e.vendor.Before = func(op string) error {
		if op == "LastUsed" {
			lastUsed++
			if lastUsed == 2 { // between the old code's check and its act
				if _, err := e.sm.UpdateSecretVersionStage(context.Background(), moveCurrent("v1", "v2")); err != nil {
					t.Error(err)
				}
			}
		}
		return nil
	}
	e.handle(e.msg(e.now.Add(-time.Minute)))
	if !e.vendor.Live()[e.old.ID] {
		t.Fatal("the revoker revoked the key a rollback had just made AWSCURRENT again")
	}
}

// TestRollbackMarkerDefers: while keyrotor:rollback-until holds, the
// revoker defers (a rollback sets it before moving the label).
func TestRollbackMarkerDefers(t *testing.T) {
	e := newEnv(t, false)
	e.sm.Tag(secretName, keyrotor.TagRollbackUntil, e.now.Add(time.Hour).Format(time.RFC3339))
	resp := e.handle(e.msg(e.now.Add(-time.Minute)))
	if len(resp.BatchItemFailures) != 0 || !e.vendor.Live()[e.old.ID] || len(e.q.sent) != 1 || e.q.sent[0].Attempt != 1 {
		t.Fatalf("failures %v, live %v, re-sent %+v: want the message deferred (re-sent) and the key alive", failed(resp), e.vendor.Live(), e.q.sent)
	}
}

// TestEmergencyMessageBeforeTheLabelMove: an emergency's message (grace 0) is
// visible before finishSecret moves AWSCURRENT. The revoker sees the old
// version still AWSCURRENT and the new one AWSPENDING: it must look again
// later, not drop the message (the leaked key would live on).
func TestEmergencyMessageBeforeTheLabelMove(t *testing.T) {
	e := newEnv(t, false)
	e.sm.UpdateSecretVersionStage(context.Background(), moveCurrent("v1", "v2")) // back to: v1 current
	e.sm.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(secretName),
		VersionStage: aws.String("AWSPENDING"), MoveToVersionId: aws.String("v2")})
	m := e.msg(e.now)
	m.Reason = revocation.ReasonEmergency
	resp := e.handle(m)
	if len(resp.BatchItemFailures) != 0 || len(e.q.sent) != 1 || e.q.sent[0].Attempt != 1 || e.q.delays[0] <= 0 {
		t.Fatalf("failures %v, re-sent %+v: want the message sent again with a delay and attempt+1, never dropped", failed(resp), e.q.sent)
	}
	// finishSecret moves the label; the re-sent message revokes the key.
	e.sm.UpdateSecretVersionStage(context.Background(), moveCurrent("v2", "v1"))
	e.q.sent, e.q.delays = nil, nil
	e.handle(m)
	if e.vendor.Live()[e.old.ID] {
		t.Fatal("the leaked key lives on after the rotation finished")
	}
}

// TestAbandonedRotationsMessage: the rotation queued the message, then was
// abandoned (AWSPENDING removed, the old version still AWSCURRENT): nothing
// to revoke, but it is counted and alarmed, since the key is live.
func TestAbandonedRotationsMessage(t *testing.T) {
	e := newEnv(t, false)
	e.sm.UpdateSecretVersionStage(context.Background(), moveCurrent("v1", "v2"))
	e.sm.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(secretName),
		VersionStage: aws.String("AWSPREVIOUS"), RemoveFromVersionId: aws.String("v2")})
	resp := e.handle(e.msg(e.now.Add(-time.Minute)))
	if len(resp.BatchItemFailures) != 0 || !e.vendor.Live()[e.old.ID] || !strings.Contains(e.emf.String(), `"RevocationsAbandoned":1`) {
		t.Fatalf("failures %v, live %v, metrics %s: want it acknowledged, the key alive and RevocationsAbandoned", failed(resp), e.vendor.Live(), e.emf.String())
	}
}

// TestTestSecretsVerificationIsNotUse: testSecret authenticates with the new
// key before the rotation finishes; that must not count as the applications'
// use of it (the use gate would always be open).
func TestTestSecretsVerificationIsNotUse(t *testing.T) {
	e := newEnv(t, true)
	m := e.msg(e.now.Add(-time.Minute))
	m.FinishedAt = e.now.Add(-2 * time.Hour)
	e.vendor.Use(e.cur.ID, m.FinishedAt.Add(-time.Second)) // testSecret's verification
	e.handle(m)
	if !e.vendor.Live()[e.old.ID] || len(e.q.sent) != 1 {
		t.Fatalf("live %v, re-sent %d: want the revocation deferred while the new key is unused since the rotation finished", e.vendor.Live(), len(e.q.sent))
	}
	e.vendor.Use(e.cur.ID, m.FinishedAt.Add(time.Minute))
	e.handle(m)
	if e.vendor.Live()[e.old.ID] {
		t.Fatal("not revoked once applications used the new key")
	}
}

// slowProvider's Revoke hangs until its context ends, like a vendor that
// never answers; every call fails once the context is done.
type slowProvider struct{ providers.Provider }

func (p slowProvider) Name() string { return "slow" }
func (p slowProvider) Revoke(ctx context.Context, _ providers.Credential, _ string) error {
	<-ctx.Done()
	return providers.E("slow.Revoke", providers.Transient, ctx.Err())
}

// ctxProvider fails every call once its context is done, as an HTTP vendor does.
type ctxProvider struct{ providers.Provider }

func (p ctxProvider) Revoke(ctx context.Context, owner providers.Credential, keyID string) error {
	if err := ctx.Err(); err != nil {
		return providers.E("fake.Revoke", providers.Transient, err)
	}
	return p.Provider.Revoke(ctx, owner, keyID)
}

// TestSlowVendorDoesNotStarveTheBatch: one vendor that never answers must
// not use up the batch's whole budget: the other messages of the batch get
// their own share and are handled.
func TestSlowVendorDoesNotStarveTheBatch(t *testing.T) {
	e := newEnv(t, false)
	const slowSecret = "prod/slow-key"
	e.sm.Create(slowSecret, `{"provider":"slow","key":"s","key_id":"slow-old"}`, nil)
	e.sm.StartRotation(slowSecret, "v2")
	ctx := context.Background()
	if _, err := e.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(slowSecret), ClientRequestToken: aws.String("v2"),
		SecretString: aws.String(`{"provider":"slow","key":"s2","key_id":"slow-new"}`), VersionStages: []string{"AWSPENDING"}}); err != nil {
		t.Fatal(err)
	}
	for _, in := range []*secretsmanager.UpdateSecretVersionStageInput{
		{VersionStage: aws.String("AWSCURRENT"), MoveToVersionId: aws.String("v2"), RemoveFromVersionId: aws.String("v1")},
		{VersionStage: aws.String("AWSPENDING"), RemoveFromVersionId: aws.String("v2")},
	} {
		in.SecretId = aws.String(slowSecret)
		if _, err := e.sm.UpdateSecretVersionStage(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	h := revocation.NewHandler(e.sm, e.q, map[string]providers.Provider{
		"fake": ctxProvider{e.vendor}, "slow": slowProvider{e.vendor},
	}, revocation.Options{Now: func() time.Time { return e.now }, Logger: slog.New(slog.NewJSONHandler(e.logs, nil))})
	slow := revocation.Message{Version: 2, SecretID: slowSecret, Provider: "slow", KeyID: "slow-old", OldVersionID: "v1", NotBefore: e.now.Add(-time.Minute)}
	var ev events.SQSEvent
	for i, m := range []revocation.Message{slow, e.msg(e.now.Add(-time.Minute))} {
		b, _ := json.Marshal(m)
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: fmt.Sprint("m", i), Body: string(b)})
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resp, err := h.Handle(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if ids := failed(resp); len(ids) != 1 || ids[0] != "m0" {
		t.Fatalf("failures %v: want only the slow vendor's message returned", ids)
	}
	if e.vendor.Live()[e.old.ID] {
		t.Fatal("the other vendor's message was starved: its key is still live")
	}
}

// storeUnlabelled stores value as version id of the test secret and leaves
// it without labels (a hand-edited version, or the writer's put then undone).
func (e *env) storeUnlabelled(id, value string) {
	e.t.Helper()
	e.sm.StartRotation(secretName, id)
	put(e.sm, id, value)
	if _, err := e.sm.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(secretName),
		VersionStage: aws.String("AWSPENDING"), RemoveFromVersionId: aws.String(id)}); err != nil {
		e.t.Fatal(err)
	}
}

// TestAdminKeyWithoutKeyIDInTheAdminSecret: key_id is optional in an admin
// secret. Whoever may write a managed secret bound to it knows the admin
// key's id (vendor consoles show it) but not the key: a version naming that
// id with any key must still not revoke the admin key.
func TestAdminKeyWithoutKeyIDInTheAdminSecret(t *testing.T) {
	for _, c := range []struct {
		reason string
		lists  bool // the vendor lists its keys (every admin-secret vendor does)
	}{{revocation.ReasonRotation, false}, {revocation.ReasonEmergency, false}, {revocation.ReasonAbandoned, false},
		{revocation.ReasonRotation, true}, {revocation.ReasonEmergency, true}} {
		t.Run(fmt.Sprintf("%s/lists=%v", c.reason, c.lists), func(t *testing.T) {
			e := newEnv(t, c.lists)
			e.vendor.Use(e.cur.ID, e.now)
			reason := c.reason
			admin := e.vendor.Add("the admin key")
			e.sm.Create("keyrotor/admin/fake", fmt.Sprintf(`{"key":%q}`, admin.Secret), nil)
			e.storeUnlabelled("v3", fmt.Sprintf(`{"provider":"fake","key":"not-the-admin-key","key_id":%q,"admin_secret_id":"keyrotor/admin/fake"}`, admin.ID))
			m := e.msg(e.now.Add(-time.Minute))
			m.KeyID, m.OldVersionID, m.Reason = admin.ID, "v3", reason
			e.handle(m)
			if !e.vendor.Live()[admin.ID] {
				t.Fatal("the admin key was revoked: its admin secret records no key_id, and the revoker took that as proof it was not the admin key")
			}
			if !strings.Contains(e.emf.String(), `"RevocationsRefused":1`) {
				t.Fatalf("the refusal was not counted: %s", e.emf.String())
			}
		})
	}
}

// TestKeyNamedForThisSecretWithAdminSecretWithoutKeyID: the fix for the
// attack above must not stop the ordinary revocation of a key keyrotor
// minted for this secret (its name proves it is not the admin key).
func TestKeyNamedForThisSecretWithAdminSecretWithoutKeyID(t *testing.T) {
	e := newEnv(t, true) // a vendor that lists its keys by name
	e.vendor.Use(e.cur.ID, e.now)
	admin := e.vendor.Add("the admin key")
	e.sm.Create("keyrotor/admin/fake", fmt.Sprintf(`{"key":%q}`, admin.Secret), nil)
	desc, _ := e.sm.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(secretName)})
	ident, err := keyrotor.ParseARN(aws.ToString(desc.ARN))
	if err != nil {
		t.Fatal(err)
	}
	minted := e.vendor.Add(keyrotor.KeyName(ident, "v3"))
	e.storeUnlabelled("v3", fmt.Sprintf(`{"provider":"fake","key":%q,"key_id":%q,"admin_secret_id":"keyrotor/admin/fake"}`, minted.Secret, minted.ID))
	m := e.msg(e.now.Add(-time.Minute))
	m.KeyID, m.OldVersionID = minted.ID, "v3"
	e.handle(m)
	if e.vendor.Live()[minted.ID] {
		t.Fatalf("the superseded key minted for this secret was not revoked; logs: %s", e.logs.String())
	}
	if !e.vendor.Live()[admin.ID] {
		t.Fatal("the admin key was revoked")
	}
}

// TestDuplicateAbandonedMessageAfterRevoke: SQS delivers at least once. The
// second delivery of an abandoned key's revocation finds the key gone: it is
// a skip, not a refusal (which would alarm as a forged message).
func TestDuplicateAbandonedMessageAfterRevoke(t *testing.T) {
	e := newEnv(t, false)
	desc, _ := e.sm.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(secretName)})
	ident, _ := keyrotor.ParseARN(aws.ToString(desc.ARN))
	k := e.vendor.Add(keyrotor.KeyName(ident, "v3"))
	e.storeUnlabelled("v3", value(k))
	m := e.msg(e.now.Add(-time.Minute))
	m.KeyID, m.OldVersionID, m.NewVersionID, m.Reason = k.ID, "v3", "", revocation.ReasonAbandoned
	e.handle(m)
	if e.vendor.Live()[k.ID] {
		t.Fatal("the abandoned key was not revoked")
	}
	if resp := e.handle(m); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %v on the duplicate", failed(resp))
	}
	if strings.Contains(e.emf.String(), "RevocationsRefused") {
		t.Fatalf("the duplicate delivery was counted as a refusal (an alarm): %s", e.emf.String())
	}
}

// TestGarbageRollbackTagDefers: a rollback-until tag that is not a time holds
// (fail closed): the revocation is deferred, not done, not dropped.
func TestGarbageRollbackTagDefers(t *testing.T) {
	e := newEnv(t, false)
	e.sm.Tag(secretName, keyrotor.TagRollbackUntil, "tomorrow-ish")
	resp := e.handle(e.msg(e.now.Add(-time.Minute)))
	if len(resp.BatchItemFailures) != 0 || !e.vendor.Live()[e.old.ID] || len(e.q.sent) != 1 {
		t.Fatalf("failures %v, live %v, re-sent %d: want the message deferred", failed(resp), e.vendor.Live(), len(e.q.sent))
	}
}

// TestAdoptedKeyRevokedOnItsFirstSupersession: every onboarded secret's first
// key was made before keyrotor, so it is not named for the secret, and many
// admin secrets record no key_id. The message of the rotation that superseded
// it (the old version AWSPREVIOUS of the new AWSCURRENT) still revokes it;
// any other message for such a key (abandoned) is refused.
func TestAdoptedKeyRevokedOnItsFirstSupersession(t *testing.T) {
	for _, reason := range []string{revocation.ReasonRotation, revocation.ReasonAbandoned} {
		t.Run(reason, func(t *testing.T) {
			e := newEnv(t, false)
			e.sm.Create("keyrotor/admin/fake", `{"key":"the-admin-token"}`, nil)
			withAdmin := func(k string) string {
				return strings.TrimSuffix(k, "}") + `,"admin_secret_id":"keyrotor/admin/fake"}`
			}
			// v3 (the adopted key, with the admin secret) is superseded by v4.
			e.sm.StartRotation(secretName, "v3")
			put(e.sm, "v3", withAdmin(value(e.old)))
			e.sm.UpdateSecretVersionStage(context.Background(), moveCurrent("v3", "v2"))
			e.sm.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(secretName),
				VersionStage: aws.String("AWSPENDING"), RemoveFromVersionId: aws.String("v3")})
			e.sm.StartRotation(secretName, "v4")
			put(e.sm, "v4", withAdmin(value(e.cur)))
			e.sm.UpdateSecretVersionStage(context.Background(), moveCurrent("v4", "v3"))
			e.sm.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(secretName),
				VersionStage: aws.String("AWSPENDING"), RemoveFromVersionId: aws.String("v4")})
			m := e.msg(e.now.Add(-time.Minute))
			m.Version, m.Reason, m.OldVersionID, m.NewVersionID = 2, reason, "v3", "v4"
			if reason == revocation.ReasonAbandoned {
				m.NewVersionID = ""
			}
			e.handle(m)
			if revoked := !e.vendor.Live()[e.old.ID]; revoked != (reason == revocation.ReasonRotation) {
				t.Fatalf("reason %s: adopted key revoked=%v; want revoked only by the rotation that superseded it", reason, revoked)
			}
		})
	}
}

// TestGoneKeyIsNotRefused: an emergency queues the revocation of every
// superseded key, including one a rollback already revoked. With an admin
// secret that records no key_id, nothing proves such a key is not the admin
// key — but the vendor says it is gone at its owner, so it is counted as
// already gone, not refused (which would raise the forged-message alarm).
func TestGoneKeyIsNotRefused(t *testing.T) {
	e := newEnv(t, true)
	e.sm.Create("keyrotor/admin/fake", `{"key":"the-admin-token"}`, nil)
	e.sm.StartRotation(secretName, "v3")
	put(e.sm, "v3", strings.TrimSuffix(value(e.old), "}")+`,"admin_secret_id":"keyrotor/admin/fake"}`)
	e.sm.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(secretName),
		VersionStage: aws.String("AWSPENDING"), RemoveFromVersionId: aws.String("v3")})
	if err := e.vendor.Revoke(context.Background(), providers.Credential{}, e.old.ID); err != nil {
		t.Fatal(err)
	}
	m := e.msg(e.now.Add(-time.Minute))
	m.Version, m.Reason, m.OldVersionID = 2, revocation.ReasonEmergency, "v3"
	e.handle(m)
	if strings.Contains(e.emf.String(), "RevocationsRefused") || !strings.Contains(e.emf.String(), `"RevocationsAlreadyGone":1`) {
		t.Fatalf("metrics %s: want the gone key counted as already gone, not refused", e.emf.String())
	}
}
