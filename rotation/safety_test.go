package rotation_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/internal/smfake"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/revocation"
	"github.com/keyrotor/keyrotor/rotation"
)

// TestSameNameInTwoRegionsSharingOneVendor: one vendor account (one Datadog
// org, one internal gateway) holds the keys of a secret of the same name in
// two regions. Each region's rotation must leave the other's keys alone; with
// key names derived from the name alone, region 2's reconcile took region 1's
// AWSCURRENT key for an orphan and revoked it.
func TestSameNameInTwoRegionsSharingOneVendor(t *testing.T) {
	e := newEnv(t, nil) // region 1: us-east-1, on the shared vendor
	west := smfake.New()
	west.Region = "eu-west-1"
	westKey := e.vendor.Add(keyrotor.KeyName(westIdentity(), "bootstrap-token"))
	west.Create(secretName, fmt.Sprintf(`{"provider":"fake","key":%q,"key_id":%q}`, westKey.Secret, westKey.ID), nil)
	westRotator := e.rotatorWith(west, e.vendor, e.q, time.Hour)
	rotateIn := func(sm *smfake.SM, r *rotation.Rotator, tok string) providers.Credential {
		t.Helper()
		sm.StartRotation(secretName, tok)
		for _, s := range steps {
			if err := r.Handle(context.Background(), event(s, tok)); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
		c, _ := providers.ParseSecret(currentValue(sm))
		return c
	}
	for i := 1; i <= 3; i++ {
		east := rotateIn(e.sm, e.r, fmt.Sprintf("e%07d-2222-3333-4444-555555555555", i))
		westCur := rotateIn(west, westRotator, fmt.Sprintf("w%07d-2222-3333-4444-555555555555", i))
		live := e.vendor.Live()
		if !live[east.KeyID] || !live[westCur.KeyID] {
			t.Fatalf("after rotation %d in both regions: us-east-1's current key %s live=%v, eu-west-1's %s live=%v: a region revoked the other's key",
				i, east.KeyID, live[east.KeyID], westCur.KeyID, live[westCur.KeyID])
		}
	}
	if strings.Contains(e.emf.String(), "OrphanKeysRevoked") {
		t.Fatal("a rotation counted the other region's key as its orphan")
	}
}

func westIdentity() keyrotor.Identity {
	id, _ := keyrotor.ParseARN("arn:aws:secretsmanager:eu-west-1:123456789012:secret:" + secretName + "-AbCdEf")
	return id
}

func event(s rotation.Step, tok string) events.SecretsManagerSecretRotationEvent {
	return events.SecretsManagerSecretRotationEvent{Step: string(s), SecretID: secretName, ClientRequestToken: tok, RotationToken: rotationToken}
}

func currentValue(sm *smfake.SM) string {
	for id, st := range sm.Stages(secretName) {
		for _, l := range st {
			if l == "AWSCURRENT" {
				return sm.Value(secretName, id)
			}
		}
	}
	return ""
}

// TestNamelessVendorNeverRevokesAdoptedKeys: an IAM-like vendor whose keys
// have no names. The user was adopted with a second key keyrotor never saw
// (another team's, a break-glass key). The first rotation must not revoke it
// — it used to revoke every key but AWSCURRENT's and AWSPREVIOUS's before the
// new key was even tested — and reports it instead.
func TestNamelessVendorNeverRevokesAdoptedKeys(t *testing.T) {
	e := newEnv(t, nil)
	e.vendor.Nameless = true
	adopted := e.vendor.Add("")
	e.now = e.now.Add(time.Hour) // the rotation starts after the adopted key was made
	e.sm.Now = func() time.Time { return e.now }
	e.rotate(token)
	if !e.vendor.Live()[adopted.ID] {
		t.Fatal("the first rotation revoked a key keyrotor did not mint")
	}
	if !strings.Contains(e.emf.String(), rotation.MetricUnownedKeys) || !strings.Contains(e.logs.String(), adopted.ID) {
		t.Fatalf("the unowned key was not reported (metric %s and a log line naming it); logs: %s", rotation.MetricUnownedKeys, e.logs.String())
	}
}

// TestNamelessVendorAtTheKeyLimit: with the user at its key limit because of
// a key keyrotor did not mint, the rotation fails with a Conflict naming that
// key, and changes nothing.
func TestNamelessVendorAtTheKeyLimit(t *testing.T) {
	e := newEnv(t, nil)
	e.vendor.Nameless = true
	e.vendor.MaxKeys = 2
	adopted := e.vendor.Add("")
	e.now = e.now.Add(time.Hour)
	e.sm.Now = func() time.Time { return e.now }
	e.sm.StartRotation(secretName, token)
	err := e.step(rotation.CreateSecret, token)
	if !providers.IsKind(err, providers.Conflict) {
		t.Fatalf("createSecret = %v, want a Conflict", err)
	}
	if live := e.vendor.Live(); !live[adopted.ID] || !live[e.oldKey.ID] || len(live) != 2 {
		t.Fatalf("live %v: want the current and the adopted key, nothing else", live)
	}
	if !strings.Contains(err.Error(), adopted.ID) || !strings.Contains(err.Error(), "delete them at the vendor") {
		t.Fatalf("the Conflict %q does not name the key that takes the room and what to do", err)
	}
}

// TestNamelessVendorRevokesItsOwnLostKey: a key created at or after this
// rotation's AWSPENDING version, which no version holds, is this rotation's
// own (a lost CreateAccessKey answer): it still makes room at the limit.
func TestNamelessVendorRevokesItsOwnLostKey(t *testing.T) {
	e := newEnv(t, nil)
	e.vendor.Nameless = true
	e.vendor.MaxKeys = 2
	e.sm.Now = func() time.Time { return e.now }
	e.now = e.now.Add(time.Hour)
	e.sm.StartRotation(secretName, token)
	e.now = e.now.Add(300 * time.Millisecond) // same second: still ours
	lost := e.vendor.Add("")
	if err := e.step(rotation.CreateSecret, token); err != nil {
		t.Fatal(err)
	}
	if e.vendor.Live()[lost.ID] {
		t.Fatal("the key of this rotation's lost answer is still live")
	}
}

// TestRollbackHoldsPlainRotations: after `keyrotor rollback`, the tag
// keyrotor:rollback-until holds plain rotations (the runbook's "grace + 15
// minutes"); an emergency goes through; once the time has passed, rotations
// run again.
func TestRollbackHoldsPlainRotations(t *testing.T) {
	e := newEnv(t, nil)
	e.sm.Tag(secretName, keyrotor.TagRollbackUntil, e.now.Add(75*time.Minute).Format(time.RFC3339))
	e.sm.StartRotation(secretName, token)
	err := e.step(rotation.CreateSecret, token)
	if err == nil || !strings.Contains(err.Error(), keyrotor.TagRollbackUntil) || !strings.Contains(err.Error(), "--emergency") {
		t.Fatalf("createSecret during the hold = %v, want a refusal naming the tag and the emergency way", err)
	}
	if e.vendor.Created() != 0 {
		t.Fatal("a held rotation minted a key")
	}
	e.sm.Tag(secretName, rotation.TagEmergencyToken, token)
	if err := e.step(rotation.CreateSecret, token); err != nil {
		t.Fatalf("an emergency during the hold: %v", err)
	}
	e.sm.Tag(secretName, keyrotor.TagRollbackUntil, "soon")
	e.sm.Tag(secretName, rotation.TagEmergencyToken, "another")
	e.sm.StartRotation(secretName, "tok-2")
	if err := e.step(rotation.CreateSecret, "tok-2"); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
		t.Fatalf("an unreadable hold = %v, want a refusal saying what to fix", err)
	}
}

// TestKeyWithoutKeyIDIsRefused: a value holding a key but no key_id could
// never have that key revoked; createSecret refuses before minting.
func TestKeyWithoutKeyIDIsRefused(t *testing.T) {
	e := newEnv(t, nil)
	e.sm.StartRotation(secretName, "hand")
	if _, err := e.sm.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(secretName),
		ClientRequestToken: aws.String("hand"), SecretString: aws.String(`{"provider":"fake","key":"pasted-by-hand"}`), VersionStages: []string{"AWSCURRENT"}}); err != nil {
		t.Fatal(err)
	}
	e.sm.StartRotation(secretName, token)
	err := e.step(rotation.CreateSecret, token)
	if err == nil || !strings.Contains(err.Error(), "key_id") {
		t.Fatalf("createSecret = %v, want a refusal naming key_id", err)
	}
	if e.vendor.Created() != 0 {
		t.Fatal("minted a key for a secret whose old key can never be revoked")
	}
}

// TestAbandonedRotationKeyIsQueued: a manual put-secret-value during a
// rotation makes Secrets Manager drop AWSPENDING; the key createSecret minted
// stays in an unlabelled version, with no revocation queued. The next
// createSecret finds it and queues its revocation with the grace period.
func TestAbandonedRotationKeyIsQueued(t *testing.T) {
	e := newEnv(t, nil)
	e.sm.StartRotation(secretName, token)
	if err := e.step(rotation.CreateSecret, token); err != nil {
		t.Fatal(err)
	}
	abandoned, _ := providers.ParseSecret(e.sm.Value(secretName, token))
	// The manual put: a new AWSCURRENT holding the old key; AWS drops AWSPENDING.
	if _, err := e.sm.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(secretName),
		ClientRequestToken: aws.String("manual"), SecretString: aws.String(e.sm.Value(secretName, "v1")), VersionStages: []string{"AWSCURRENT"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sm.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(secretName),
		VersionStage: aws.String("AWSPENDING"), RemoveFromVersionId: aws.String(token)}); err != nil {
		t.Fatal(err)
	}
	e.rotate("next-rotation")
	var found bool
	for _, m := range e.q.sent {
		if m.msg.Reason == revocation.ReasonAbandoned && m.msg.KeyID == abandoned.KeyID && m.msg.OldVersionID == token && m.delay == time.Hour {
			found = true
		}
	}
	if !found {
		t.Fatalf("no revocation of the abandoned key %s was queued: %+v", abandoned.KeyID, e.q.sent)
	}
	if !strings.Contains(e.emf.String(), rotation.MetricAbandonedKeys) {
		t.Fatal("AbandonedKeys was not counted")
	}
	if !e.vendor.Live()[abandoned.KeyID] {
		t.Fatal("reconcile revoked the abandoned key itself instead of leaving it to the revoker after the grace period")
	}
}

// TestEmergencyMakesRoomAndSupersedesEveryKey: an emergency rotation while
// the previous key is still in its grace period at a vendor allowing two keys
// revokes that previous key to make room, and queues the immediate
// revocation of every superseded key, not only the old AWSCURRENT's.
func TestEmergencyMakesRoomAndSupersedesEveryKey(t *testing.T) {
	e := newEnv(t, nil)
	e.rotate("10000000-2222-3333-4444-555555555555")
	e.rotate("20000000-2222-3333-4444-555555555555") // three keys: v1's (unlabelled), the first rotation's (AWSPREVIOUS), current
	e.vendor.MaxKeys = 3
	first := e.q.sent[0].msg.KeyID
	prevKey := e.q.sent[1].msg.KeyID
	e.q.sent = nil
	e.sm.Tag(secretName, rotation.TagEmergencyToken, token)
	e.rotate(token)
	if e.vendor.Live()[prevKey] {
		t.Fatal("the emergency did not revoke the AWSPREVIOUS key to make room at the key limit")
	}
	want := map[string]bool{}
	for _, m := range e.q.sent {
		if m.msg.Reason == revocation.ReasonEmergency && m.delay == 0 {
			want[m.msg.KeyID] = true
		}
	}
	if !want[first] {
		t.Fatalf("the emergency queued no immediate revocation of the older superseded key %s: %+v", first, e.q.sent)
	}
}

// TestSettle: a key that one verification accepts is not yet usable
// everywhere (API Gateway's data plane, IAM in other regions). testSecret
// waits for the provider's rule — consecutive successes over a window — and a
// refusal in between starts over; so finishSecret never makes a key
// AWSCURRENT that applications would be refused with.
func TestSettle(t *testing.T) {
	e := newEnv(t, nil)
	rule := rotation.Settle{Successes: 3, Window: 10 * time.Second}
	verifies := 0
	e.vendor.Before = func(op string) error {
		if op != "Verify" {
			return nil
		}
		verifies++
		if verifies == 2 { // accepted once, then refused by another host
			return providers.E("fake.Verify", providers.Permission, fmt.Errorf("not yet on this host"))
		}
		return nil
	}
	e.r = rotation.New(e.sm, e.vendor, e.q, rotation.Options{GracePeriod: time.Hour, Now: func() time.Time { return e.now },
		Sleep: func(ctx context.Context, d time.Duration) error {
			e.slept = append(e.slept, d)
			e.now = e.now.Add(d)
			return nil
		},
		Settle: map[string]rotation.Settle{"fake": rule}})
	e.sm.StartRotation(secretName, token)
	for _, s := range steps[:3] {
		if err := e.step(s, token); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	// 1 accepted, 2 refused (start over), then 3 in a row over >= 10 s.
	var waited time.Duration
	for _, d := range e.slept {
		waited += d
	}
	if verifies < 5 || waited < rule.Window {
		t.Fatalf("testSecret returned after %d verifications and %v: want the refusal to restart the count, then 3 successes over %v", verifies, waited, rule.Window)
	}
	// Without settling within the budget, testSecret fails.
	e2 := newEnv(t, nil)
	e2.r = rotation.New(e2.sm, e2.vendor, e2.q, rotation.Options{GracePeriod: time.Hour, TestTimeout: 5 * time.Second, Now: func() time.Time { return e2.now },
		Sleep:  func(ctx context.Context, d time.Duration) error { e2.now = e2.now.Add(d); return nil },
		Settle: map[string]rotation.Settle{"fake": rule}})
	e2.sm.StartRotation(secretName, token)
	for _, s := range steps[:2] {
		if err := e2.step(s, token); err != nil {
			t.Fatal(err)
		}
	}
	if err := e2.step(rotation.TestSecret, token); err == nil || !strings.Contains(err.Error(), "did not settle") {
		t.Fatalf("testSecret = %v, want a failure saying the key did not settle", err)
	}
}

// TestSettleRulesCoverEveryProvider: every provider keyrotor ships has a
// rule in the one table (docs/vendors.md lists them).
func TestSettleRulesCoverEveryProvider(t *testing.T) {
	for _, name := range []string{"gateway", "iam", "apigateway", "sendgrid", "twilio", "datadog", "cloudflare"} {
		r, ok := rotation.SettleRules[name]
		if !ok || r.Successes < 1 || r.Why == "" {
			t.Errorf("provider %s: settle rule %+v", name, r)
		}
	}
}

// TestSettleEndsWithAFrozenClock: the window is also measured by the time
// slept, so a clock that stands still (a test's, a broken one) cannot keep
// testSecret settling until the Lambda deadline.
func TestSettleEndsWithAFrozenClock(t *testing.T) {
	e := newEnv(t, nil)
	var slept time.Duration
	e.r = rotation.New(e.sm, e.vendor, e.q, rotation.Options{GracePeriod: time.Hour, Now: func() time.Time { return e.now },
		Sleep:  func(ctx context.Context, d time.Duration) error { slept += d; return nil },
		Settle: map[string]rotation.Settle{"fake": {Successes: 2, Window: 5 * time.Second}}})
	e.rotate(token)
	if slept < 5*time.Second || slept > 10*time.Second {
		t.Fatalf("slept %v settling with a frozen clock, want about the 5 s window", slept)
	}
}

// TestEmergencyNeverRevokesAnAdminKeyToMakeRoom: whoever may write the
// secret puts a value naming the admin key's id (vendor consoles show it),
// then puts the real value back: the admin key's version is AWSPREVIOUS.
// An emergency rotation at the vendor's key limit revokes the AWSPREVIOUS
// key directly, without the revoker's checks: it must never be the
// management credential of the admin secret that version names.
func TestEmergencyNeverRevokesAnAdminKeyToMakeRoom(t *testing.T) {
	for _, withKeyID := range []bool{true, false} {
		t.Run(fmt.Sprintf("AdminSecretHasKeyID=%v", withKeyID), func(t *testing.T) {
			e := newEnv(t, nil)
			admin := e.vendor.Add("the admin key")
			adminValue := fmt.Sprintf(`{"key":%q}`, admin.Secret)
			if withKeyID {
				adminValue = fmt.Sprintf(`{"key":%q,"key_id":%q}`, admin.Secret, admin.ID)
			}
			e.sm.Create("keyrotor/admin/fake", adminValue, nil)
			put := func(id, v string) {
				if _, err := e.sm.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{SecretId: aws.String(secretName),
					ClientRequestToken: aws.String(id), SecretString: aws.String(v), VersionStages: []string{"AWSCURRENT"}}); err != nil {
					t.Fatal(err)
				}
			}
			real := e.sm.Value(secretName, "v1")
			put("writer-1", fmt.Sprintf(`{"provider":"fake","key":"unknown","key_id":%q,"admin_secret_id":"keyrotor/admin/fake"}`, admin.ID))
			put("writer-2", real) // the admin key's version is AWSPREVIOUS now
			e.vendor.MaxKeys = len(e.vendor.Live())
			e.sm.Tag(secretName, rotation.TagEmergencyToken, token)
			e.sm.StartRotation(secretName, token)
			err := e.step(rotation.CreateSecret, token)
			if !e.vendor.Live()[admin.ID] {
				t.Fatal("the emergency revoked the admin key, held by a hand-edited AWSPREVIOUS, to make room")
			}
			if !providers.IsKind(err, providers.Conflict) || !strings.Contains(err.Error(), "keyrotor/admin/fake") {
				t.Fatalf("createSecret = %v, want a Conflict that names the admin secret", err)
			}
		})
	}
}
