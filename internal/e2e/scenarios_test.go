package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/client"
	"github.com/keyrotor/keyrotor/infra/local"
	gatewaybuild "github.com/keyrotor/keyrotor/internal/function/build/gateway"
	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
	"github.com/keyrotor/keyrotor/internal/operator"
	"github.com/keyrotor/keyrotor/internal/testenv"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/gateway"
)

// TestHappyPath is the guide's happy-path rotation test: a manual rotation
// issues a new key, stores it as AWSCURRENT, an application (package client)
// picks it up, and the old key is revoked after the grace period.
func TestHappyPath(t *testing.T) {
	s := needStack(t)
	const grace = 2 * time.Second
	secret := newSecret(t, grace)
	old := key(t, secret, "AWSCURRENT")
	wantPing(t, old, 200, "the first key")

	app := client.New(s.SecretsManager(), &client.Options{TTL: 500 * time.Millisecond})
	if c, err := app.Key(ctx(t), secret); err != nil || c.KeyID != old.KeyID {
		t.Fatalf("the application read %v, %v; want %s", c, err, old.KeyID)
	}

	rotate(t, secret)
	cur := key(t, secret, "AWSCURRENT")
	prev := key(t, secret, "AWSPREVIOUS")
	if cur.KeyID == old.KeyID || prev.KeyID != old.KeyID {
		t.Fatalf("after the rotation AWSCURRENT=%s AWSPREVIOUS=%s; want a new key and %s", cur, prev, old.KeyID)
	}
	for v, st := range testenv.Stages(t, stack.SecretsManager(), secret) {
		if slices.Contains(st, "AWSPENDING") {
			t.Fatalf("AWSPENDING left on version %s (%v)", v, st)
		}
	}
	wantPing(t, cur, 200, "the new key")

	time.Sleep(600 * time.Millisecond) // the application's TTL
	c, err := app.Key(ctx(t), secret)
	if err != nil || c.KeyID != cur.KeyID {
		t.Fatalf("the application read %v, %v after its TTL; want the new key %s", c, err, cur.KeyID)
	}

	waitRevoked(t, old, grace)
	wantPing(t, old, 401, "the old key after the grace period")
	wantPing(t, cur, 200, "the new key after the grace period")
	if ids := liveIDs(secret); len(ids) != 1 || ids[0] != cur.KeyID {
		t.Fatalf("live keys of %s: %v, want only %s", secret, ids, cur.KeyID)
	}
}

// TestGracePeriodBothKeysWork is the guide's grace period test: right after
// the rotation, calls succeed with the old key and with the new one.
func TestGracePeriodBothKeysWork(t *testing.T) {
	needStack(t)
	secret := newSecret(t, time.Minute)
	old := key(t, secret, "AWSCURRENT")
	rotate(t, secret)
	cur := key(t, secret, "AWSCURRENT")
	for i := 0; i < 3; i++ {
		wantPing(t, old, 200, "the old key during the grace period")
		wantPing(t, cur, 200, "the new key during the grace period")
	}
	if ids := liveIDs(secret); len(ids) != 2 {
		t.Fatalf("live keys during the grace period: %v, want the old and the new", ids)
	}
}

// TestRollbackAfterFailedNewKey is the guide's rollback test: after a
// rotation the new key fails at the vendor; the operator rolls back
// (internal/operator, the guide's Step 6); the application
// recovers with the previous key, and the revoker, when the old key's
// revocation comes due, skips it because it is AWSCURRENT again.
func TestRollbackAfterFailedNewKey(t *testing.T) {
	s := needStack(t)
	// Long enough for the rollback to happen before the old key's
	// revocation comes due, even on a loaded machine.
	const grace = 8 * time.Second
	secret := newSecret(t, grace)
	old := key(t, secret, "AWSCURRENT")
	skipped := metricSum("RevocationsSkipped")
	rotate(t, secret)
	bad := key(t, secret, "AWSCURRENT")

	app := client.New(s.SecretsManager(), &client.Options{TTL: 300 * time.Millisecond})
	c, err := app.Key(ctx(t), secret)
	if err != nil || c.KeyID != bad.KeyID {
		t.Fatalf("the application read %v, %v; want the new key %s", c, err, bad.KeyID)
	}
	// The new key fails.
	if !s.Gateway.RevokeKey(bad.KeyID) {
		t.Fatalf("the gateway does not know the new key %s", bad.KeyID)
	}
	wantPing(t, bad, 401, "the failed new key")

	// Roll back with the operator's procedure (`keyrotor rollback`): it
	// checks that the previous key still works, moves AWSCURRENT back to it
	// and revokes the failed key.
	res, err := operatorFor(s).Rollback(ctx(t), secret)
	if err != nil {
		t.Fatalf("roll back %s: %v", secret, err)
	}
	if res.RestoredKeyID != old.KeyID || res.FailedKeyID != bad.KeyID {
		t.Fatalf("rollback restored %s and dropped %s; want %s and %s", res.RestoredKeyID, res.FailedKeyID, old.KeyID, bad.KeyID)
	}
	time.Sleep(400 * time.Millisecond) // the application's TTL
	c, err = app.Key(ctx(t), secret)
	if err != nil || c.KeyID != old.KeyID {
		t.Fatalf("after the rollback the application read %v, %v; want %s", c, err, old.KeyID)
	}
	wantPing(t, local.KeyVersion{Key: c.Key, KeyID: c.KeyID}, 200, "the application's key after the rollback")

	// The old key's revocation comes due: the revoker must skip it.
	waitMetric(t, "RevocationsSkipped", skipped, grace+2*time.Minute)
	wantPing(t, old, 200, "the restored key after its revocation came due")
	if cur := key(t, secret, "AWSCURRENT"); cur.KeyID != old.KeyID {
		t.Fatalf("AWSCURRENT is %s after the rollback, want %s", cur, old.KeyID)
	}
}

// operatorFor returns the operator CLI's logic over the stack, with the
// gateway provider built as the functions and the CLI build it.
func operatorFor(s *local.Stack) *operator.Operator {
	env := func(name string) string {
		if name == "GATEWAY_API_BASE_URL" {
			return s.GatewayURL
		}
		return ""
	}
	clients := lambdafn.NewClients(s.Config())
	return &operator.Operator{
		SM: s.SecretsManager(),
		Providers: func(name string) (providers.Provider, error) {
			if name != "gateway" {
				return nil, fmt.Errorf("the e2e operator has no provider %q", name)
			}
			return gatewaybuild.Build(env, clients)
		},
	}
}

// TestVendorUnavailableDuringRotation is the guide's provider outage test:
// the gateway's admin API fails during a rotation; the rotation fails
// cleanly (RotateSecret reports the failed step, RotationFailed is
// counted), the old key stays current and valid, no key is left behind, and
// a later rotation succeeds.
func TestVendorUnavailableDuringRotation(t *testing.T) {
	s := needStack(t)
	const grace = 2 * time.Second
	secret := newSecret(t, grace)
	old := key(t, secret, "AWSCURRENT")
	failed := metricSum("RotationFailed")

	s.GatewayFaults.Set(gateway.FaultUnavailable)
	_, err := s.Rotate(ctx(t), secret)
	s.GatewayFaults.Set(gateway.NoFault)
	if err == nil || !strings.Contains(err.Error(), "createSecret") {
		t.Fatalf("rotation during the outage: err=%v, want a failure at createSecret", err)
	}
	if cur := key(t, secret, "AWSCURRENT"); cur.KeyID != old.KeyID {
		t.Fatalf("AWSCURRENT is %s after the failed rotation, want the old key %s", cur, old.KeyID)
	}
	wantPing(t, old, 200, "the old key after the failed rotation")
	if ids := liveIDs(secret); len(ids) != 1 || ids[0] != old.KeyID {
		t.Fatalf("live keys after the failed rotation: %v, want only %s", ids, old.KeyID)
	}
	if metricSum("RotationFailed") <= failed {
		t.Fatal("the failed rotation was not counted (RotationFailed)")
	}

	rotate(t, secret)
	cur := key(t, secret, "AWSCURRENT")
	if cur.KeyID == old.KeyID {
		t.Fatal("the rotation after the outage did not change the key")
	}
	wantPing(t, cur, 200, "the new key")
	waitRevoked(t, old, grace)
	if ids := liveIDs(secret); len(ids) != 1 || ids[0] != cur.KeyID {
		t.Fatalf("live keys: %v, want only %s", ids, cur.KeyID)
	}
}

// TestSecretsManagerUnavailable is the guide's vault outage test: while
// Secrets Manager cannot be reached, an application keeps serving its
// cached key (package client marks it stale) and its calls keep working;
// once Secrets Manager is back it reads fresh values again.
func TestSecretsManagerUnavailable(t *testing.T) {
	s := needStack(t)
	secret := newSecret(t, time.Minute)
	want := key(t, secret, "AWSCURRENT")

	proxy, err := local.NewTCPProxy(s.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	// The client's own option: the configuration's BaseEndpoint does not
	// override the endpoint the stack's configuration was loaded with.
	sm := secretsmanager.NewFromConfig(s.Config(), func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(proxy.URL) })
	var stale int
	var mu sync.Mutex
	app := client.New(sm, &client.Options{
		TTL: 300 * time.Millisecond, FetchTimeout: 5 * time.Second,
		OnEvent: func(e client.Event) {
			if e.Kind == client.StaleServe {
				mu.Lock()
				stale++
				mu.Unlock()
			}
		},
	})
	if _, err := app.Key(ctx(t), secret); err != nil {
		t.Fatal(err)
	}

	proxy.SetEnabled(false)
	ok, calls := 0, 0
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		c, err := app.Key(ctx(t), secret)
		if err != nil {
			t.Fatalf("during the outage: %v", err)
		}
		calls++
		if ping(t, local.KeyVersion{Key: c.Key}) == 200 {
			ok++
		}
	}
	c, _ := app.Key(ctx(t), secret)
	if !c.Stale || c.KeyID != want.KeyID {
		t.Fatalf("during the outage the application read %v; want the cached key %s, stale", c, want.KeyID)
	}
	mu.Lock()
	n := stale
	mu.Unlock()
	t.Logf("Secrets Manager outage: %d calls, %d succeeded, %d stale serves reported", calls, ok, n)
	if ok != calls || n == 0 {
		t.Fatalf("during the outage %d of %d calls succeeded, %d stale serves; want all, and stale serves reported", ok, calls, n)
	}

	proxy.SetEnabled(true)
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := app.Key(ctx(t), secret)
		if err == nil && !c.Stale {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the outage the application still reads %v, %v", c, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestTwoRotationsAtOnce is the guide's concurrent rotation test: two
// RotateSecret calls for the same secret at once. At least one succeeds;
// the other fails cleanly or also succeeds; the secret ends with one
// AWSCURRENT key that works and no AWSPENDING on another version; and
// after the grace period only that key is live at the gateway (a key
// minted by the losing rotation is revoked, by the winner's reconcile or by
// the next rotation's).
func TestTwoRotationsAtOnce(t *testing.T) {
	needStack(t)
	const grace = 2 * time.Second
	secret := newSecret(t, grace)
	old := key(t, secret, "AWSCURRENT")

	var wg sync.WaitGroup
	errs := make([]error, 2)
	start := make(chan struct{})
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = stack.Rotate(ctx(t), secret)
		}()
	}
	close(start)
	wg.Wait()
	t.Logf("two rotations at once: %v / %v", errs[0], errs[1])
	if errs[0] != nil && errs[1] != nil {
		t.Fatalf("both rotations failed: %v", errors.Join(errs...))
	}
	cur := key(t, secret, "AWSCURRENT")
	if cur.KeyID == old.KeyID {
		t.Fatal("AWSCURRENT did not change")
	}
	wantPing(t, cur, 200, "AWSCURRENT after two rotations at once")
	for v, st := range testenv.Stages(t, stack.SecretsManager(), secret) {
		if slices.Contains(st, "AWSPENDING") && !slices.Contains(st, "AWSCURRENT") {
			t.Fatalf("AWSPENDING left on version %s (%v)", v, st)
		}
	}

	// A later rotation works and cleans up whatever the race left.
	rotate(t, secret)
	last := key(t, secret, "AWSCURRENT")
	wantPing(t, last, 200, "the key of the next rotation")
	waitLiveKeys(t, secret, 1, grace+2*time.Minute)
	if ids := liveIDs(secret); ids[0] != last.KeyID {
		t.Fatalf("live keys: %v, want only %s", ids, last.KeyID)
	}
}

// TestAWSCLIRotatesThreeTimes is issue 6's "done when": with the stack's
// exports, `aws secretsmanager rotate-secret` rotates three times in a row,
// each time ending with AWSCURRENT on a key the gateway accepts, and after
// the grace period the old keys are refused.
func TestAWSCLIRotatesThreeTimes(t *testing.T) {
	s := needStack(t)
	awsCLI, err := exec.LookPath("aws")
	if err != nil {
		t.Skip("the aws CLI is not installed")
	}
	const grace = 2 * time.Second
	secret := newSecret(t, grace)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for _, v := range s.Env() {
		env = append(env, v.Name+"="+v.Value)
	}
	var olds []local.KeyVersion
	for i := 0; i < 3; i++ {
		before := key(t, secret, "AWSCURRENT")
		cmd := exec.Command(awsCLI, "secretsmanager", "rotate-secret", "--secret-id", secret)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("aws secretsmanager rotate-secret (rotation %d): %v\n%s", i+1, err, out)
		}
		cur := key(t, secret, "AWSCURRENT")
		if cur.KeyID == before.KeyID {
			t.Fatalf("rotation %d did not change AWSCURRENT", i+1)
		}
		wantPing(t, cur, 200, "AWSCURRENT after an aws CLI rotation")
		olds = append(olds, before)
	}
	for _, o := range olds {
		waitRevoked(t, o, grace)
		wantPing(t, o, 401, "an old key after the grace period")
	}
	wantPing(t, key(t, secret, "AWSCURRENT"), 200, "AWSCURRENT at the end")
}

// TestIAMRotation rotates demo/iam (created by the stack) through the real
// IAM function: a new access key becomes AWSCURRENT and the old one is
// deleted after the grace period. The stack bound the user to the secret
// (IAM tag keyrotor:secret = the secret's ARN).
func TestIAMRotation(t *testing.T) {
	s := needStack(t)
	d, err := s.SecretsManager().DescribeSecret(ctx(t), &secretsmanager.DescribeSecretInput{SecretId: aws.String(local.DemoIAMSecret)})
	if err != nil {
		t.Fatal(err)
	}
	tags, err := iam.NewFromConfig(s.Config()).ListUserTags(ctx(t), &iam.ListUserTagsInput{UserName: aws.String(local.DemoIAMUser)})
	if err != nil {
		t.Fatal(err)
	}
	bound := ""
	for _, tag := range tags.Tags {
		if aws.ToString(tag.Key) == local.TagBoundSecret {
			bound = aws.ToString(tag.Value)
		}
	}
	if bound != aws.ToString(d.ARN) {
		t.Errorf("IAM user %s: tag %s = %q, want the ARN of %s, %s", local.DemoIAMUser, local.TagBoundSecret, bound, local.DemoIAMSecret, aws.ToString(d.ARN))
	}
	old := key(t, local.DemoIAMSecret, "AWSCURRENT")
	rotate(t, local.DemoIAMSecret)
	cur := key(t, local.DemoIAMSecret, "AWSCURRENT")
	if cur.KeyID == old.KeyID || !strings.HasPrefix(cur.KeyID, "AKIA") {
		t.Fatalf("after the rotation AWSCURRENT is %s (was %s), want a new access key", cur, old)
	}
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		ids, err := s.AccessKeyIDs(c, local.DemoIAMUser)
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(ids, []string{cur.KeyID}) {
			return
		}
		if c.Err() != nil {
			t.Fatalf("access keys of %s: %v, want only %s", local.DemoIAMUser, ids, cur.KeyID)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestAuditorIsScheduled checks that the stack invokes the auditor on its
// schedule when functions/auditor exists.
func TestAuditorIsScheduled(t *testing.T) {
	s := needStack(t)
	f := s.Function("auditor")
	if f == nil {
		t.Skip("functions/auditor does not exist yet")
	}
	n := f.Invokes()
	if !s.RunAudit() {
		t.Fatal("RunAudit: the stack runs no auditor")
	}
	deadline := time.Now().Add(2 * time.Minute)
	for f.Invokes() <= n || !strings.Contains(f.Logs(), "RTDONE") {
		if time.Now().After(deadline) {
			t.Fatal("the auditor was not invoked")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
