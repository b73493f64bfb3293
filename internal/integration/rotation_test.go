package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/internal/testenv"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/gateway"
	"github.com/keyrotor/keyrotor/revocation"
)

func tok(i int) string { return fmt.Sprintf("a0000000-0000-4000-8000-%012d", i) }

// TestGatewayRotation is issue 2's "done when" for a gateway secret: the
// compiled function rotates through moto, AWSCURRENT holds a new working
// key, AWSPREVIOUS the old key still working, one revocation message is
// queued, and after the revoker has run only the new key is left.
func TestGatewayRotation(t *testing.T) {
	s := newStack(t)
	fn := s.function("gateway")
	revoker := s.function("revoker")
	const secret = "prod/frontend-bff/gateway-key"
	old := s.gatewaySecret(secret, map[string]string{"keyrotor:grace-period": "1s"})

	s.rotate(fn, secret, tok(1))
	st := s.stages(secret)
	if fmt.Sprint(st[tok(1)]) != "[AWSCURRENT]" || len(st) != 2 {
		t.Fatalf("stages %v, want %s AWSCURRENT alone and one AWSPREVIOUS", st, tok(1))
	}
	cur, prev := s.read(secret, "AWSCURRENT"), s.read(secret, "AWSPREVIOUS")
	if prev.KeyID != old.ID || cur.KeyID == old.ID || cur.Attr("admin_secret_id") != "keyrotor/admin/gateway" {
		t.Fatalf("AWSCURRENT %v, AWSPREVIOUS %v: want a new key and the old one", cur, prev)
	}
	if s.ping(cur.Key) != 200 || s.ping(prev.Key) != 200 {
		t.Fatal("during the grace period both keys must work")
	}
	msgs := s.messages(3)
	if len(msgs) != 1 {
		t.Fatalf("%d revocation messages, want 1", len(msgs))
	}
	m, err := revocation.Decode(msgs[0].Body)
	if err != nil || m.KeyID != old.ID || m.Provider != "gateway" || !strings.Contains(m.SecretID, secret) {
		t.Fatalf("message %+v (%v)", m, err)
	}
	resp := s.deliver(revoker, msgs)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("revoker failed: %v\n%s", resp, revoker.Logs())
	}
	if live := s.liveGatewayKeys(); len(live) != 1 || !live[cur.KeyID] {
		t.Fatalf("live keys after revocation %v, want only %s", live, cur.KeyID)
	}
	if s.ping(prev.Key) != 401 || s.ping(cur.Key) != 200 {
		t.Fatal("after revocation only the new key must work")
	}
	assertNoLeaks(t, []string{old.Key, cur.Key, rotationTokenFor(tok(1)), adminToken}, fn.Logs(), revoker.Logs(), msgs[0].Body)
	assertValidEMF(t, emfLines(fn.Logs()), "StepSucceeded", "StepDuration", "RotationSucceeded")
	assertValidEMF(t, emfLines(revoker.Logs()), "RevocationsDone")
	t.Logf("Secrets Manager and SQS calls by the function for one rotation: %d", s.plan.count("aws"))
}

// TestIAMRotation is the same for an IAM user's access key, with STS
// verifying the new key and the revoker deleting the old one in moto.
func TestIAMRotation(t *testing.T) {
	s := newStack(t)
	fn := s.function("iam")
	revoker := s.function("revoker")
	ctx := context.Background()
	const user = "payments-bot"
	if _, err := s.iam.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(user)}); err != nil {
		t.Fatal(err)
	}
	k, err := s.iam.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(user)})
	if err != nil {
		t.Fatal(err)
	}
	oldID, oldSecret := aws.ToString(k.AccessKey.AccessKeyId), aws.ToString(k.AccessKey.SecretAccessKey)
	const secret = "prod/payments/aws-key"
	arn := s.createSecret(secret, fmt.Sprintf(`{"provider":"iam","key":%q,"key_id":%q,"user_name":%q}`, oldSecret, oldID, user), map[string]string{"keyrotor:grace-period": "1s"})
	// The user is bound to the secret that rotates it.
	if _, err := s.iam.TagUser(ctx, &iam.TagUserInput{UserName: aws.String(user), Tags: []iamtypes.Tag{{Key: aws.String("keyrotor:secret"), Value: aws.String(arn)}}}); err != nil {
		t.Fatal(err)
	}

	s.rotate(fn, secret, tok(1))
	cur, prev := s.read(secret, "AWSCURRENT"), s.read(secret, "AWSPREVIOUS")
	if prev.KeyID != oldID || cur.KeyID == oldID || !strings.HasPrefix(cur.KeyID, "AKIA") || cur.Attr("user_name") != user {
		t.Fatalf("AWSCURRENT %v AWSPREVIOUS %v", cur, prev)
	}
	whoami := func(id, secret string) string {
		cfg := s.moto.Config(t)
		cfg.Credentials = credentials.NewStaticCredentialsProvider(id, secret, "")
		out, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			t.Fatalf("GetCallerIdentity with key %s: %v", id, err)
		}
		return aws.ToString(out.Arn)
	}
	if !strings.HasSuffix(whoami(cur.KeyID, cur.Key), "user/"+user) {
		t.Fatal("the new key is not the user's")
	}
	msgs := s.messages(3)
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	if resp := s.deliver(revoker, msgs); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("revoker failed: %v\n%s", resp, revoker.Logs())
	}
	keys, err := s.iam.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(user)})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys.AccessKeyMetadata) != 1 || aws.ToString(keys.AccessKeyMetadata[0].AccessKeyId) != cur.KeyID {
		t.Fatalf("IAM keys after revocation: %d, want only %s", len(keys.AccessKeyMetadata), cur.KeyID)
	}
	assertNoLeaks(t, []string{oldSecret, cur.Key, rotationTokenFor(tok(1))}, fn.Logs(), revoker.Logs(), msgs[0].Body)
}

func TestRetryOfEachStepAfterSuccess(t *testing.T) {
	s := newStack(t)
	fn := s.function("gateway")
	const secret = "prod/retry"
	old := s.gatewaySecret(secret, map[string]string{"keyrotor:grace-period": "0s"})
	s.beginRotation(secret, tok(1))
	for _, st := range steps {
		for i := 0; i < 2; i++ {
			if err := s.step(fn, st, secret, tok(1)); err != nil {
				t.Fatalf("%s attempt %d: %v", st, i+1, err)
			}
		}
	}
	live := s.liveGatewayKeys()
	cur := s.read(secret, "AWSCURRENT")
	if len(live) != 2 || !live[old.ID] || !live[cur.KeyID] {
		t.Fatalf("live keys %v: a retried step minted another key", live)
	}
	if msgs := s.messages(1); len(msgs) != 1 {
		t.Fatalf("%d revocation messages, want 1", len(msgs))
	}
}

// TestInterruptedBetweenEveryPairOfCalls fails every external call of a
// rotation in turn (Secrets Manager, SQS, the vendor), before it took effect
// and after (response lost), then retries the step with the same token as
// Secrets Manager does. Each time the rotation completes with no key leaked
// and the old key still valid.
func TestInterruptedBetweenEveryPairOfCalls(t *testing.T) {
	s := newStack(t)
	fn := s.function("gateway")
	total := 0
	for _, lost := range []bool{false, true} {
		for n := int64(1); ; n++ {
			secret := fmt.Sprintf("prod/crash-%v-%d", lost, n)
			old := s.gatewaySecret(secret, map[string]string{"keyrotor:grace-period": "0s"})
			s.beginRotation(secret, tok(1))
			s.plan.set(n, lost)
			for _, st := range steps {
				if err := s.step(fn, st, secret, tok(1)); err != nil {
					if err2 := s.step(fn, st, secret, tok(1)); err2 != nil {
						t.Fatalf("lost=%v n=%d: %s failed twice: %v / %v\n%s", lost, n, st, err, err2, strings.Join(s.plan.log, "\n"))
					}
				}
			}
			s.plan.mu.Lock()
			fired, calls := s.plan.fired, s.plan.n
			s.plan.mu.Unlock()
			s.plan.set(0, false)
			cur := s.read(secret, "AWSCURRENT")
			if cur.KeyID == old.ID {
				t.Fatalf("lost=%v n=%d: the rotation did not complete", lost, n)
			}
			ours := 0
			prefix := keyrotor.KeyNamePrefix(testenv.IdentityOf(t, s.sm, secret))
			for _, k := range s.gw.LiveKeys() {
				if k.ID == old.ID || strings.HasPrefix(k.Name, prefix) {
					ours++
					if k.ID != old.ID && k.ID != cur.KeyID {
						t.Fatalf("lost=%v n=%d: key %s leaked", lost, n, k.ID)
					}
				}
			}
			if ours != 2 || s.ping(old.Key) != 200 || s.ping(cur.Key) != 200 {
				t.Fatalf("lost=%v n=%d: %d live keys for the secret, want the old and the new, both working", lost, n, ours)
			}
			if !fired {
				if n < 10 {
					t.Fatalf("only %d calls in a rotation", calls)
				}
				total += int(n - 1)
				break
			}
		}
	}
	// Every rotation queued a revocation of its old key, whatever the crash.
	msgs := s.messages(1)
	byKey := map[string]bool{}
	for _, m := range msgs {
		d, err := revocation.Decode(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		byKey[d.SecretID] = true
	}
	if len(byKey) != total+2 {
		t.Fatalf("revocations queued for %d secrets, want %d (every interrupted rotation and the two clean ones)", len(byKey), total+2)
	}
	t.Logf("interrupted %d calls, each before and after it took effect", total/2)
}

func TestConcurrentRotations(t *testing.T) {
	s := newStack(t)
	fn1, fn2 := s.function("gateway"), s.function("gateway")
	const secret = "prod/concurrent"
	old := s.gatewaySecret(secret, nil)
	s.beginRotation(secret, tok(1))
	// Two invocations of createSecret for the same rotation at once, and
	// one for a token Secrets Manager never gave AWSPENDING.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, fn := range []*testenv.Function{fn1, fn2} {
		wg.Add(1)
		go func(i int, fn *testenv.Function) {
			defer wg.Done()
			errs[i] = s.step(fn, "createSecret", secret, tok(1))
		}(i, fn)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs[2] = s.step(fn1, "createSecret", secret, tok(2))
	}()
	wg.Wait()
	if errs[2] == nil || !strings.Contains(errs[2].Error(), "no stage for rotation") {
		t.Fatalf("a rotation with another token: err=%v, want a refusal", errs[2])
	}
	if errs[0] != nil && errs[1] != nil {
		t.Fatalf("both createSecret failed: %v / %v", errs[0], errs[1])
	}
	for _, st := range steps {
		if err := s.step(fn1, st, secret, tok(1)); err != nil {
			t.Fatalf("%s: %v", st, err)
		}
	}
	cur := s.read(secret, "AWSCURRENT")
	live := s.liveGatewayKeys()
	if !live[old.ID] || !live[cur.KeyID] || len(live) > 3 {
		t.Fatalf("live keys %v: want the old and the stored new key (and at most the loser's key)", live)
	}
	// On AWS the loser's PutSecretValue fails (same token, other value) and
	// it revokes its key at once (unit tests SameTokenAtOnce and
	// TestSameTokenListedBeforeTheOtherStored). moto silently overwrites the
	// version instead (tooling.md §1a-3), so the loser's key may survive
	// until the next rotation's reconcile revokes it as an orphan.
	s.rotate(fn1, secret, tok(3))
	after := s.liveGatewayKeys()
	for id := range live {
		if id != old.ID && id != cur.KeyID && after[id] {
			t.Fatalf("the orphan %s of the concurrent attempt survived the next rotation's reconcile", id)
		}
	}
	if next := s.read(secret, "AWSCURRENT"); len(after) != 3 || !after[next.KeyID] || !after[cur.KeyID] || !after[old.ID] {
		t.Fatalf("live keys after the next rotation %v", after)
	}
}

func TestVendorFailsDuringCreate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault gateway.Fault
	}{{"5xx", gateway.FaultUnavailable}, {"429", gateway.FaultRateLimited}, {"Timeout", gateway.FaultHang}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStack(t)
			fn := s.function("gateway", "AWS_LAMBDA_FUNCTION_TIMEOUT=4")
			const secret = "prod/outage"
			old := s.gatewaySecret(secret, nil)
			s.beginRotation(secret, tok(1))
			before := s.stages(secret)
			s.faults.Set(tc.fault)
			err := s.step(fn, "createSecret", secret, tok(1))
			if err == nil {
				t.Fatal("createSecret succeeded while the vendor was down")
			}
			if tc.fault != gateway.FaultHang && (!strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "createSecret")) {
				t.Fatalf("err = %v: want the secret and the step named", err)
			}
			if fmt.Sprint(s.stages(secret)) != fmt.Sprint(before) || s.read(secret, "AWSCURRENT").KeyID != old.ID || s.ping(old.Key) != 200 {
				t.Fatal("the failed rotation changed the secret or broke the old key")
			}
			s.faults.Set(gateway.NoFault)
			for _, st := range steps {
				if err := s.step(fn, st, secret, tok(1)); err != nil {
					t.Fatalf("%s after recovery: %v", st, err)
				}
			}
			if live := s.liveGatewayKeys(); len(live) != 2 {
				t.Fatalf("live keys %v after recovery, want old and new", live)
			}
		})
	}
}

func TestVendorFailsDuringRevoke(t *testing.T) {
	s := newStack(t)
	fn := s.function("gateway")
	revoker := s.function("revoker", "AWS_LAMBDA_FUNCTION_TIMEOUT=4")
	const secret = "prod/revoke-outage"
	old := s.gatewaySecret(secret, map[string]string{"keyrotor:grace-period": "0s"})
	s.rotate(fn, secret, tok(1))
	s.use(secret)
	for _, fault := range []gateway.Fault{gateway.FaultUnavailable, gateway.FaultRateLimited, gateway.FaultHang} {
		s.faults.Set(fault)
		msgs := s.messages(2)
		if len(msgs) != 1 {
			t.Fatalf("fault %d: %d messages visible, want 1", fault, len(msgs))
		}
		resp := s.deliver(revoker, msgs)
		if len(resp.BatchItemFailures) != 1 || !s.liveGatewayKeys()[old.ID] {
			t.Fatalf("fault %d: failures %v: want the message returned for a retry and the key alive", fault, resp.BatchItemFailures)
		}
		// Make the message visible again at once (the visibility timeout, shortened).
		if _, err := s.sqs.ChangeMessageVisibility(context.Background(), changeVisibility(s.queueURL, msgs[0].Handle)); err != nil {
			t.Fatal(err)
		}
	}
	s.faults.Set(gateway.NoFault)
	msgs := s.messages(2)
	if resp := s.deliver(revoker, msgs); len(resp.BatchItemFailures) != 0 || s.liveGatewayKeys()[old.ID] {
		t.Fatalf("after the vendor recovered: failures %v, old key live %v", resp.BatchItemFailures, s.liveGatewayKeys()[old.ID])
	}
}

// TestRollbackBeforeRevocation: an operator moves AWSCURRENT back to the old
// version during the grace period; the revoker must then skip the old key.
func TestRollbackBeforeRevocation(t *testing.T) {
	s := newStack(t)
	fn := s.function("gateway")
	revoker := s.function("revoker")
	const secret = "prod/rollback"
	old := s.gatewaySecret(secret, map[string]string{"keyrotor:grace-period": "0s"})
	var oldVersion string
	for id, st := range s.stages(secret) {
		if fmt.Sprint(st) == "[AWSCURRENT]" {
			oldVersion = id
		}
	}
	s.rotate(fn, secret, tok(1))
	if _, err := s.sm.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{
		SecretId: aws.String(secret), VersionStage: aws.String("AWSCURRENT"), MoveToVersionId: aws.String(oldVersion), RemoveFromVersionId: aws.String(tok(1)),
	}); err != nil {
		t.Fatal(err)
	}
	msgs := s.messages(2)
	if resp := s.deliver(revoker, msgs); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("revoker: %v", resp)
	}
	if !s.liveGatewayKeys()[old.ID] || s.ping(old.Key) != 200 {
		t.Fatal("the revoker revoked the key restored by the rollback")
	}
	if !strings.Contains(revoker.Logs(), `"RevocationsSkipped":1`) {
		t.Fatal("the skip was not counted")
	}
}

// TestGraceLongerThanSQSDelays drives a 2 h grace period through a real SQS
// queue (moto) with an injected clock: each hop is sent with a delay SQS
// accepts (at most 900 s), and the key is revoked only after not_before.
func TestGraceLongerThanSQSDelays(t *testing.T) {
	s := newStack(t)
	const secret = "prod/long-grace"
	old := s.gatewaySecret(secret, nil)
	cur, _ := s.gw.CreateKey(keyrotor.KeyName(testenv.IdentityOf(t, s.sm, secret), "x"), "")
	ctx := context.Background()
	// Make the new key AWSCURRENT as a rotation would.
	s.beginRotation(secret, tok(1))
	if _, err := s.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(secret), ClientRequestToken: aws.String(tok(1)),
		SecretString: aws.String(fmt.Sprintf(`{"provider":"gateway","key":%q,"key_id":%q,"admin_secret_id":"keyrotor/admin/gateway"}`, cur.Key, cur.ID)), VersionStages: []string{"AWSPENDING"}}); err != nil {
		t.Fatal(err)
	}
	var oldVersion string
	for id, st := range s.stages(secret) {
		if fmt.Sprint(st) == "[AWSCURRENT]" {
			oldVersion = id
		}
	}
	if _, err := s.sm.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(secret),
		VersionStage: aws.String("AWSCURRENT"), MoveToVersionId: aws.String(tok(1)), RemoveFromVersionId: aws.String(oldVersion)}); err != nil {
		t.Fatal(err)
	}
	s.ping(cur.Key) // the new key is in use

	now := time.Now().UTC()
	rec := &recordingSQS{inner: s.sqs}
	p, err := gateway.New(gateway.Config{BaseURL: s.gwURL, Admin: adminReader{}})
	if err != nil {
		t.Fatal(err)
	}
	h := revocation.NewHandler(s.sm, revocation.Queue{SQS: rec, URL: s.queueURL}, map[string]providers.Provider{"gateway": p},
		revocation.Options{Now: func() time.Time { return now }})
	m := revocation.Message{Version: 1, SecretID: secret, Provider: "gateway", KeyID: old.ID, OldVersionID: oldVersion, NotBefore: now.Add(2 * time.Hour)}
	for hop := 0; ; hop++ {
		res, err := h.Process(ctx, m)
		if err != nil {
			t.Fatalf("hop %d: %v", hop, err)
		}
		if res == revocation.Revoked {
			if hop != 8 || now.Before(m.NotBefore) {
				t.Fatalf("revoked at hop %d at %v, not_before %v", hop, now, m.NotBefore)
			}
			break
		}
		if res != revocation.Waiting || !s.liveGatewayKeys()[old.ID] {
			t.Fatalf("hop %d: %s", hop, res)
		}
		last := rec.sent[len(rec.sent)-1]
		if last.delay < 1 || last.delay > 900 {
			t.Fatalf("hop %d: DelaySeconds %d", hop, last.delay)
		}
		if err := json.Unmarshal([]byte(last.body), &m); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Duration(last.delay) * time.Second)
	}
	if s.liveGatewayKeys()[old.ID] {
		t.Fatal("the old key survived")
	}
	// moto accepted every delayed message (it refuses delays over 900 s).
	if len(rec.sent) != 8 {
		t.Fatalf("%d messages sent, want 8", len(rec.sent))
	}
}

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	s := newStack(t)
	fn := s.function("gateway")
	const secret = "prod/bad-input"
	s.gatewaySecret(secret, nil)
	s.createSecret("prod/not-json", `{"provider":"gateway","key":`, nil)
	s.createSecret("prod/iam-secret", `{"provider":"iam","key":"k","key_id":"AKIA"}`, nil)
	s.beginRotation(secret, tok(1))
	s.beginRotation("prod/not-json", tok(2))
	s.beginRotation("prod/iam-secret", tok(3))
	before := fmt.Sprint(s.stages(secret), s.stages("prod/not-json"), s.stages("prod/iam-secret"))
	keys := len(s.gw.LiveKeys())
	for _, tc := range []struct {
		payload any
		want    []string
	}{
		{[]byte(`not json`), []string{"SyntaxError"}},
		{map[string]any{"Step": 7}, []string{"UnmarshalTypeError"}},
		{map[string]string{"Step": "rotate", "SecretId": secret, "ClientRequestToken": tok(1)}, []string{secret, "unknown step"}},
		{map[string]string{"Step": "createSecret", "SecretId": secret, "ClientRequestToken": "not-a-version"}, []string{secret, "createSecret", "no stage for rotation"}},
		{map[string]string{"Step": "createSecret", "SecretId": "prod/not-json", "ClientRequestToken": tok(2)}, []string{"prod/not-json", "createSecret", "not a JSON object"}},
		{map[string]string{"Step": "createSecret", "SecretId": "prod/iam-secret", "ClientRequestToken": tok(3)}, []string{"prod/iam-secret", "createSecret", `provider "iam"`}},
		{map[string]string{"Step": "createSecret", "SecretId": "prod/missing", "ClientRequestToken": tok(1)}, []string{"prod/missing", "ResourceNotFound"}},
	} {
		_, err := fn.Invoke(context.Background(), tc.payload)
		if err == nil {
			t.Fatalf("%v: accepted", tc.payload)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("%v: err %v does not say %q", tc.payload, err, w)
			}
		}
	}
	after := fmt.Sprint(s.stages(secret), s.stages("prod/not-json"), s.stages("prod/iam-secret"))
	if before != after || len(s.gw.LiveKeys()) != keys {
		t.Fatalf("bad input changed something:\n%s\n%s", before, after)
	}

	// Rotation disabled: CancelRotateSecret turns it off.
	s.gatewaySecret("prod/disabled", nil)
	s.beginRotation("prod/disabled", tok(4))
	if _, err := s.sm.CancelRotateSecret(context.Background(), &secretsmanager.CancelRotateSecretInput{SecretId: aws.String("prod/disabled")}); err != nil {
		t.Fatal(err)
	}
	err := s.step(fn, "createSecret", "prod/disabled", tok(4))
	if err == nil || !strings.Contains(err.Error(), "rotation is not enabled") || !strings.Contains(err.Error(), "prod/disabled") {
		t.Fatalf("rotation disabled: err = %v", err)
	}
	if len(s.gw.LiveKeys()) != keys+1 {
		t.Fatal("a key was minted for a secret whose rotation is disabled")
	}
}
