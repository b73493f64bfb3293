package clitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/audit"
	"github.com/keyrotor/keyrotor/infra/local"
	"github.com/keyrotor/keyrotor/internal/operator"
	"github.com/keyrotor/keyrotor/internal/testenv"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/gateway"
)

// The operator tests run the compiled keyrotor against the local stack:
// moto_server (through the launcher, so that RotateSecret invokes the
// functions), the compiled gateway, IAM and revoker functions under the
// Lambda runtime emulator, the reference gateway and the revoker's SQS
// poller, all on 127.0.0.1. One stack serves every test of the package;
// each test uses its own secrets, and none runs in parallel (vendor faults
// are global).

var (
	stackOnce sync.Once
	theStack  *local.Stack
	stackErr  error

	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if theStack != nil {
		if err := theStack.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop the local stack:", err)
			code = 1
		}
	}
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// keyrotorBin builds ./cmd/keyrotor once per test process.
func keyrotorBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "keyrotor-cli-test-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "keyrotor")
		build := exec.Command("go", "build", "-o", binPath, "./cmd/keyrotor")
		build.Dir = testenv.RepoRoot(t)
		out, err := build.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func stack(t *testing.T) *local.Stack {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the local stack (moto, the functions under the emulator) is not started")
	}
	stackOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		theStack, stackErr = local.Start(ctx, local.Options{NoDemoSecrets: true, GracePeriod: time.Hour, MaxRevocationDelay: time.Millisecond})
	})
	if stackErr != nil {
		t.Fatalf("start the local stack: %v", stackErr)
	}
	bindOnce.Do(func() { bindErr = bindAdminSecret(theStack) })
	if bindErr != nil {
		t.Fatalf("bind the gateway's admin secret: %v", bindErr)
	}
	return theStack
}

var (
	bindOnce sync.Once
	bindErr  error
)

// bindAdminSecret lets the tests' secrets (ops/*, inv/*) use the gateway's admin
// secret (keyrotor:admin-for), keeping the patterns the stack gave it, so
// that status reports no missing binding for them.
func bindAdminSecret(s *local.Stack) error {
	ctx := context.Background()
	d, err := s.SecretsManager().DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(local.GatewayAdminSecret)})
	if err != nil {
		return err
	}
	patterns := ""
	for _, t := range d.Tags {
		if aws.ToString(t.Key) == keyrotor.TagAdminFor {
			patterns = aws.ToString(t.Value)
		}
	}
	if keyrotor.MatchAdminFor(patterns, "ops/x") && keyrotor.MatchAdminFor(patterns, "inv/x") {
		return nil
	}
	if patterns != "" {
		patterns += ","
	}
	_, err = s.SecretsManager().TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: aws.String(local.GatewayAdminSecret),
		Tags: []smtypes.Tag{{Key: aws.String(keyrotor.TagAdminFor), Value: aws.String(patterns + "ops/*,inv/*")}}})
	return err
}

// cli runs keyrotor against the stack and remembers every output, to check
// that no key was ever printed.
type cli struct {
	t       *testing.T
	s       *local.Stack
	env     []string
	outputs []string
}

type result struct {
	code           int
	stdout, stderr string
}

func newCLI(t *testing.T) *cli {
	s := stack(t)
	c := &cli{t: t, s: s}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "KEYROTOR_") && !strings.Contains(kv, "_API_BASE_URL=") {
			c.env = append(c.env, kv)
		}
	}
	for _, v := range s.Env() {
		c.env = append(c.env, v.Name+"="+v.Value)
	}
	c.env = append(c.env, "AWS_MAX_ATTEMPTS=1")
	return c
}

func (c *cli) run(stdin string, extraEnv []string, args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, keyrotorBin(c.t), args...)
	cmd.Env = append(append([]string(nil), c.env...), extraEnv...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		c.t.Fatalf("keyrotor %v: %v", args, err)
	}
	c.outputs = append(c.outputs, r.stdout, r.stderr)
	return r
}

// expect runs keyrotor and checks its exit code.
func (c *cli) expect(code int, args ...string) result {
	c.t.Helper()
	r := c.run("", nil, args...)
	if r.code != code {
		c.t.Fatalf("keyrotor %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	return r
}

func (c *cli) sm() *secretsmanager.Client { return c.s.SecretsManager() }

// gatewaySecret creates a managed gateway secret with its first key.
func (c *cli) gatewaySecret(name string, grace time.Duration) {
	c.t.Helper()
	if _, err := c.s.CreateGatewaySecret(context.Background(), name, grace); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cli) read(secret, stage string) providers.Credential {
	c.t.Helper()
	return testenv.ReadSecret(c.t, c.sm(), secret, stage)
}

func (c *cli) stages(secret string) map[string][]string {
	c.t.Helper()
	return testenv.Stages(c.t, c.sm(), secret)
}

// liveKeys returns the ids of the gateway's live keys minted for secret.
func (c *cli) liveKeys(secret string) map[string]bool {
	out := map[string]bool{}
	prefix := keyrotor.KeyNamePrefix(testenv.IdentityOf(c.t, c.sm(), secret))
	for _, k := range c.s.Gateway.LiveKeys() {
		if strings.HasPrefix(k.Name, prefix) {
			out[k.ID] = true
		}
	}
	return out
}

func (c *cli) ping(key string) int {
	c.t.Helper()
	return testenv.GatewayPing(c.t, c.s.GatewayURL, key)
}

func (c *cli) status(secret string) operator.Status {
	c.t.Helper()
	r := c.run("", nil, "status", secret, "--json")
	if r.code != 0 && r.code != operator.ExitProblems {
		c.t.Fatalf("status %s: exit %d\n%s", secret, r.code, r.stderr)
	}
	var sts []operator.Status
	if err := json.Unmarshal([]byte(r.stdout), &sts); err != nil || len(sts) != 1 {
		c.t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	return sts[0]
}

// noKeyPrinted checks that no key any version of the secrets holds, nor any
// of extra, appears in anything keyrotor printed.
func (c *cli) noKeyPrinted(secrets []string, extra ...string) {
	c.t.Helper()
	keys := append([]string(nil), extra...)
	for _, s := range secrets {
		out, err := c.sm().ListSecretVersionIds(context.Background(), &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(s), IncludeDeprecated: aws.Bool(true)})
		if err != nil {
			c.t.Fatal(err)
		}
		for _, v := range out.Versions {
			val, err := c.sm().GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(s), VersionId: v.VersionId})
			if err != nil {
				continue
			}
			if cred, err := providers.ParseSecret(aws.ToString(val.SecretString)); err == nil && cred.Key != "" {
				keys = append(keys, cred.Key)
			}
		}
	}
	if len(keys) == 0 {
		c.t.Fatal("no keys to look for")
	}
	for _, out := range c.outputs {
		for _, k := range keys {
			if strings.Contains(out, k) {
				c.t.Fatalf("keyrotor printed a key:\n%s", out)
			}
		}
	}
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Fatalf("%s does not say %q:\n%s", what, sub, s)
		}
	}
}

// TestOperatorStory is the "done when", on one secret: see it,
// rotate it, roll it back, rotate it in an emergency, reading the state
// after each step.
func TestOperatorStory(t *testing.T) {
	c := newCLI(t)
	const secret = "ops/story"
	c.gatewaySecret(secret, time.Hour)
	key1 := c.read(secret, "AWSCURRENT")

	r := c.expect(0, "status")
	mustContain(t, "status", r.stdout, secret, key1.KeyID, "gateway")
	st := c.status(secret)
	if st.KeyID != key1.KeyID || st.Rotation != operator.RotationIdle || st.Previous != operator.PreviousNone || len(st.Problems) != 0 {
		t.Fatalf("status after the first key: %+v", st)
	}

	r = c.expect(0, "rotate", secret, "--wait")
	key2 := c.read(secret, "AWSCURRENT")
	mustContain(t, "rotate --wait", r.stdout, "rotated", key2.KeyID)
	if key2.KeyID == key1.KeyID || !c.liveKeys(secret)[key1.KeyID] || !c.liveKeys(secret)[key2.KeyID] {
		t.Fatalf("after rotate: current %s, live %v", key2.KeyID, c.liveKeys(secret))
	}
	if st := c.status(secret); st.Previous != operator.PreviousLive || st.PreviousKeyID != key1.KeyID || st.GraceUntil == nil || st.GraceSeconds != 3600 {
		t.Fatalf("status in the grace period: %+v", st)
	}

	r = c.expect(0, "rollback", secret)
	mustContain(t, "rollback", r.stdout, "rolled back", key1.KeyID, key2.KeyID+" is revoked", "plain rotations are held until")
	r = c.expect(operator.ExitRefused, "rotate", secret)
	mustContain(t, "rotate after a rollback", r.stderr, "held until")
	if cur := c.read(secret, "AWSCURRENT"); cur.KeyID != key1.KeyID {
		t.Fatalf("after rollback AWSCURRENT holds %s, want %s", cur.KeyID, key1.KeyID)
	}
	if live := c.liveKeys(secret); !live[key1.KeyID] || live[key2.KeyID] {
		t.Fatalf("after rollback live keys %v: want %s live and %s revoked", live, key1.KeyID, key2.KeyID)
	}
	if c.ping(key1.Key) != http.StatusOK || c.ping(key2.Key) != http.StatusUnauthorized {
		t.Fatal("after rollback the restored key must work and the failed key must not")
	}
	if st := c.status(secret); st.KeyID != key1.KeyID || st.Previous != operator.PreviousRevoked {
		t.Fatalf("status after rollback: %+v", st)
	}

	r = c.expect(0, "rotate", secret, "--emergency")
	key3 := c.read(secret, "AWSCURRENT")
	mustContain(t, "rotate --emergency", r.stdout, "emergency rotation done", key3.KeyID, "every superseded key is revoked", key1.KeyID)
	if live := c.liveKeys(secret); len(live) != 1 || !live[key3.KeyID] {
		t.Fatalf("after an emergency rotation the live keys are %v, want only %s", live, key3.KeyID)
	}
	if c.ping(key1.Key) != http.StatusUnauthorized || c.ping(key3.Key) != http.StatusOK {
		t.Fatal("after an emergency rotation the old key must be refused and the new one accepted")
	}

	// Nothing to roll back to: the previous key is revoked.
	r = c.expect(operator.ExitRefused, "rollback", secret)
	mustContain(t, "rollback after emergency", r.stderr, "no longer valid", key1.KeyID)
	if cur := c.read(secret, "AWSCURRENT"); cur.KeyID != key3.KeyID {
		t.Fatal("a refused rollback changed AWSCURRENT")
	}
	c.noKeyPrinted([]string{secret})
}

// TestRollbackDuringGraceRevokerSkips: the revocation the rolled-back
// rotation queued fires after the rollback, and the revoker skips the
// restored key.
func TestRollbackDuringGraceRevokerSkips(t *testing.T) {
	c := newCLI(t)
	const secret = "ops/rollback-grace"
	grace := 8 * time.Second
	c.gatewaySecret(secret, grace)
	key1 := c.read(secret, "AWSCURRENT")
	skippedBefore := c.metricSum("RevocationsSkipped")
	c.expect(0, "rotate", secret, "--wait")
	key2 := c.read(secret, "AWSCURRENT")
	c.expect(0, "rollback", secret)

	// Wait for the revoker to handle the queued message (grace, then the
	// poller's next receive), generously for a loaded machine.
	deadline := time.Now().Add(3 * time.Minute)
	for c.metricSum("RevocationsSkipped") <= skippedBefore {
		if time.Now().After(deadline) {
			t.Fatalf("the revoker did not handle the revocation of %s; revoker logs:\n%s", key1.KeyID, c.s.Function("revoker").Logs())
		}
		time.Sleep(time.Second)
	}
	if live := c.liveKeys(secret); !live[key1.KeyID] || live[key2.KeyID] {
		t.Fatalf("after the revoker ran: live keys %v, want %s live, %s revoked", live, key1.KeyID, key2.KeyID)
	}
	if c.ping(key1.Key) != http.StatusOK {
		t.Fatal("the restored key stopped working after its grace period")
	}
	if cur := c.read(secret, "AWSCURRENT"); cur.KeyID != key1.KeyID {
		t.Fatalf("AWSCURRENT holds %s, want the restored %s", cur.KeyID, key1.KeyID)
	}
	c.noKeyPrinted([]string{secret})
}

func (c *cli) metricSum(name string) float64 {
	var sum float64
	for _, m := range c.s.Metrics() {
		if m.Name == name && m.Dimensions["Provider"] == "gateway" {
			sum += m.Value
		}
	}
	return sum
}

// TestRefusals: missing secret, no previous version, a rotation in
// progress; each refused with exit 4 and nothing changed.
func TestRefusals(t *testing.T) {
	c := newCLI(t)
	for _, args := range [][]string{
		{"status", "ops/missing"},
		{"rotate", "ops/missing"},
		{"rotate", "ops/missing", "--emergency"},
		{"rollback", "ops/missing"},
		{"unstick", "ops/missing"},
	} {
		r := c.expect(operator.ExitRefused, args...)
		mustContain(t, strings.Join(args, " "), r.stderr, "ops/missing", "does not exist")
	}

	const fresh = "ops/fresh"
	c.gatewaySecret(fresh, time.Hour)
	before := c.stages(fresh)
	r := c.expect(operator.ExitRefused, "rollback", fresh)
	mustContain(t, "rollback of a fresh secret", r.stderr, "no key")
	r = c.expect(operator.ExitRefused, "unstick", fresh)
	mustContain(t, "unstick with nothing stuck", r.stderr, "no rotation is in progress")
	if after := c.stages(fresh); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a refused command changed the labels: %v -> %v", before, after)
	}

	// A secret whose only version is the first one has no previous version.
	if _, err := c.sm().CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String("ops/one-version"), SecretString: aws.String(`{"provider":"gateway","admin_secret_id":"` + local.GatewayAdminSecret + `"}`),
	}); err != nil {
		t.Fatal(err)
	}
	r = c.expect(operator.ExitRefused, "rollback", "ops/one-version")
	mustContain(t, "rollback without a previous version", r.stderr, "no previous version")
	r = c.expect(operator.ExitRefused, "rotate", "ops/one-version")
	mustContain(t, "rotate without a rotation function", r.stderr, "no rotation function")
	// status lists the problem and exits 3; not on a terminal, the table is
	// plain (one tab-separated row per secret) and the problems are on stderr.
	r = c.expect(operator.ExitProblems, "status", "ops/one-version", fresh)
	mustContain(t, "status of a secret without rotation", r.stderr, "ops/one-version: rotation is not enabled")
	mustContain(t, "status of a secret without rotation", r.stdout, "SECRET\tPROVIDER\tKEY ID", "ops/one-version\t")
	fine := true
	for _, line := range strings.Split(r.stderr, "\n") {
		fine = fine && !strings.HasPrefix(line, fresh+": ") // a problem line; warnings start "warning: "
	}
	if !fine || strings.ContainsAny(r.stdout, "✓✗│─") {
		t.Fatalf("status reports a problem with %s, or is not plain:\n%s\n%s", fresh, r.stdout, r.stderr)
	}
}

// TestVendorDownStuckAndUnstick: a rotation during a vendor outage fails at
// createSecret (exit 1, the step named); the rotation it leaves blocks
// rotate and rollback until unstick clears it; rollback during an outage
// fails without changing anything.
func TestVendorDownStuckAndUnstick(t *testing.T) {
	c := newCLI(t)
	const secret = "ops/outage"
	c.gatewaySecret(secret, time.Hour)
	c.expect(0, "rotate", secret, "--wait")
	key2 := c.read(secret, "AWSCURRENT")

	c.s.GatewayFaults.Set(gateway.FaultUnavailable)
	t.Cleanup(func() { c.s.GatewayFaults.Set(gateway.NoFault) })
	before := c.stages(secret)
	r := c.expect(operator.ExitFailure, "rollback", secret)
	mustContain(t, "rollback during an outage", r.stderr, "nothing was changed", "gateway")
	if after := c.stages(secret); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a failed rollback changed the labels: %v -> %v", before, after)
	}

	r = c.expect(operator.ExitProblems, "status", secret)
	mustContain(t, "status during an outage", r.stderr, secret+": cannot ask gateway about the previous key")
	r = c.expect(operator.ExitFailure, "rotate", secret, "--wait")
	mustContain(t, "rotate during an outage", r.stderr, "failed at createSecret")
	c.s.GatewayFaults.Set(gateway.NoFault)

	st := c.status(secret)
	if st.Rotation != operator.RotationInProgress || st.PendingVersion == "" {
		t.Fatalf("status after a failed rotation: %+v", st)
	}
	r = c.expect(operator.ExitRefused, "rotate", secret)
	mustContain(t, "rotate while a rotation is pending", r.stderr, "already in progress", "unstick")
	r = c.expect(operator.ExitRefused, "rollback", secret)
	mustContain(t, "rollback while a rotation is pending", r.stderr, "in progress")
	r = c.expect(operator.ExitRefused, "unstick", secret)
	mustContain(t, "unstick of a young rotation", r.stderr, "--force")

	r = c.expect(0, "unstick", secret, "--force")
	mustContain(t, "unstick", r.stdout, "cleared", st.PendingVersion)
	if st := c.status(secret); st.Rotation != operator.RotationIdle {
		t.Fatalf("status after unstick: %+v", st)
	}
	c.expect(0, "rotate", secret, "--wait")
	if cur := c.read(secret, "AWSCURRENT"); cur.KeyID == key2.KeyID {
		t.Fatal("rotation after unstick did not rotate")
	}
	c.noKeyPrinted([]string{secret})
}

// TestUnstickQueuesTheMintedKey: a rotation that minted a key and stopped
// (createSecret done, the function never called again) is cleared, and the
// revocation of its key is queued for the revoker past the function's
// timeout, not done at once (a finishSecret past its checks could still make
// it current); the current key is untouched. A key of the attempt that no
// version holds is left to the next createSecret's reconcile.
func TestUnstickQueuesTheMintedKey(t *testing.T) {
	c := newCLI(t)
	const secret = "ops/stuck-minted"
	c.gatewaySecret(secret, time.Hour)
	cur := c.read(secret, "AWSCURRENT")
	token := operator.NewUUID()
	minted, err := c.s.Gateway.CreateKey(keyrotor.KeyName(testenv.IdentityOf(c.t, c.sm(), secret), token), "")
	if err != nil {
		t.Fatal(err)
	}
	pending := cur
	pending.Key, pending.KeyID = minted.Key, minted.ID
	value, _ := pending.SecretString()
	if _, err := c.sm().PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(secret), ClientRequestToken: aws.String(token), SecretString: aws.String(value), VersionStages: []string{"AWSPENDING"},
	}); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	r := c.expect(0, "unstick", secret, "--force", "--json")
	var res operator.UnstickResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("unstick --json: %v\n%s", err, r.stdout)
	}
	// The stack's functions time out after 60 s; unstick adds its margin.
	if res.QueuedKeyID != minted.ID || res.RevokeNotBefore == nil || res.RevokeNotBefore.Before(started.Add(60*time.Second+operator.AbandonMarginDefault-time.Second)) {
		t.Fatalf("unstick: %+v, want the revocation of %s queued past the function's timeout", res, minted.ID)
	}
	if live := c.liveKeys(secret); !live[minted.ID] || !live[cur.KeyID] {
		t.Fatalf("after unstick live keys %v: unstick revoked a key itself", live)
	}
	for v, st := range c.stages(secret) {
		for _, s := range st {
			if s == "AWSPENDING" && v == token {
				t.Fatalf("AWSPENDING is still on %s", token)
			}
		}
	}
	c.noKeyPrinted([]string{secret}, minted.Key)
}

// TestPermissionDenied: Secrets Manager answering 403 AccessDenied (an HTTP
// server on 127.0.0.1 standing in for an IAM policy that denies) makes every
// command fail with exit 1, naming the secret and the operation.
func TestPermissionDenied(t *testing.T) {
	c := newCLI(t)
	denied := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-Errortype", "AccessDeniedException")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"__type":"AccessDeniedException","message":"User: arn:aws:iam::123456789012:user/ops is not authorized to perform this action"}`)
	}))
	t.Cleanup(denied.Close)
	env := []string{"AWS_ENDPOINT_URL=" + denied.URL}
	for _, tc := range []struct {
		args []string
		op   string
	}{
		{[]string{"status"}, "secretsmanager.ListSecrets"},
		{[]string{"status", "ops/x"}, "secretsmanager.DescribeSecret"},
		{[]string{"rotate", "ops/x", "--wait"}, "secretsmanager.DescribeSecret"},
		{[]string{"rollback", "ops/x"}, "secretsmanager.DescribeSecret"},
		{[]string{"unstick", "ops/x"}, "secretsmanager.DescribeSecret"},
	} {
		r := c.run("", env, tc.args...)
		if r.code != operator.ExitFailure {
			t.Fatalf("%v with access denied: exit %d\n%s", tc.args, r.code, r.stderr)
		}
		mustContain(t, strings.Join(tc.args, " "), r.stderr, tc.op, "AccessDenied")
	}
}

// stripeFake is a Stripe stand-in on 127.0.0.1: GET /v1/balance accepts the
// keys in live and answers 401 to others; down answers 503.
type stripeFake struct {
	mu   sync.Mutex
	live map[string]bool
	down bool
}

func (f *stripeFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_test")
	switch {
	case f.down:
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":{"type":"api_error","message":"down"}}`)
	case r.URL.Path != "/v1/balance":
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":{"type":"invalid_request_error"}}`)
	case f.live[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]:
		fmt.Fprint(w, `{"object":"balance","available":[]}`)
	default:
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":{"type":"invalid_request_error","message":"Invalid API Key provided"}}`)
	}
}

// TestImportStripe: a key rolled by hand is verified at the vendor before
// it is stored; the old key's expiry is recorded; nothing is stored when
// the vendor refuses the key or is down.
func TestImportStripe(t *testing.T) {
	c := newCLI(t)
	const (
		secret = "ops/stripe"
		oldKey = "sk_test_OLD0000000000000000000001"
		newKey = "sk_test_NEW0000000000000000000002"
		badKey = "sk_test_BAD0000000000000000000003"
	)
	fake := &stripeFake{live: map[string]bool{oldKey: true, newKey: true}}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	env := []string{"STRIPE_API_BASE_URL=" + srv.URL}
	if _, err := c.sm().CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String(secret), SecretString: aws.String(`{"provider":"stripe","key":"` + oldKey + `"}`),
		Tags: []smtypes.Tag{{Key: aws.String("keyrotor:managed"), Value: aws.String("true")}},
	}); err != nil {
		t.Fatal(err)
	}
	imp := func(code int, key string, args ...string) result {
		t.Helper()
		r := c.run(key+"\n", env, append([]string{"import", secret}, args...)...)
		if r.code != code {
			t.Fatalf("import %v: exit %d, want %d\n%s%s", args, r.code, code, r.stdout, r.stderr)
		}
		return r
	}
	imp(operator.ExitUsage, newKey)                        // no --old-key-expires
	imp(operator.ExitUsage, "", "--old-key-expires", "1h") // no key
	r := imp(operator.ExitRefused, badKey, "--old-key-expires", "1h")
	mustContain(t, "import of a key Stripe refuses", r.stderr, "does not accept", "nothing was stored")
	fake.mu.Lock()
	fake.down = true
	fake.mu.Unlock()
	r = imp(operator.ExitFailure, newKey, "--old-key-expires", "1h")
	mustContain(t, "import while Stripe is down", r.stderr, "nothing was stored")
	fake.mu.Lock()
	fake.down = false
	fake.mu.Unlock()
	if cur := c.read(secret, "AWSCURRENT"); cur.Key != oldKey {
		t.Fatal("a refused import changed AWSCURRENT")
	}

	start := time.Now()
	imp(0, newKey, "--old-key-expires", "24h")
	cur := c.read(secret, "AWSCURRENT")
	if cur.Key != newKey || cur.Provider != "stripe" {
		t.Fatalf("after import AWSCURRENT is %v", cur)
	}
	exp, err := time.Parse(time.RFC3339, cur.Attr(operator.FieldPreviousKeyExpiresAt))
	if err != nil || exp.Before(start.Add(24*time.Hour).Add(-time.Second)) || exp.After(time.Now().Add(24*time.Hour)) {
		t.Fatalf("previous_key_expires_at = %q, want about 24h from now", cur.Attr(operator.FieldPreviousKeyExpiresAt))
	}
	if prev := c.read(secret, "AWSPREVIOUS"); prev.Key != oldKey {
		t.Fatal("the old key is not AWSPREVIOUS after import")
	}
	st := c.status(secret)
	if st.Previous != operator.PreviousExpires || st.GraceUntil == nil || st.Provider != "stripe" {
		t.Fatalf("status after import: %+v", st)
	}
	// The import time is tagged (PutSecretValue sets no LastRotatedDate):
	// the auditor, from ListSecrets alone, and status measure the key's age
	// from it.
	list, err := c.sm().ListSecrets(context.Background(), &secretsmanager.ListSecretsInput{
		Filters: []smtypes.Filter{{Key: smtypes.FilterNameStringTypeName, Values: []string{secret}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.SecretList) != 1 {
		t.Fatalf("ListSecrets %s: %d entries", secret, len(list.SecretList))
	}
	since := audit.Inspect(list.SecretList[0], time.Now()).Since
	if since.Before(start.Truncate(time.Second)) || since.After(time.Now()) || st.KeyCreatedAt == nil || !st.KeyCreatedAt.Equal(since) {
		t.Fatalf("key made at %s by the auditor, %v by status; want the import time (after %s)", since, st.KeyCreatedAt, start)
	}
	r = imp(operator.ExitRefused, newKey, "--old-key-expires", "1h")
	mustContain(t, "import of the current key", r.stderr, "already the current key")

	// A vendor with a key API is rotated, not imported.
	c.gatewaySecret("ops/not-stripe", time.Hour)
	r = c.run(newKey+"\n", env, "import", "ops/not-stripe", "--old-key-expires", "1h")
	if r.code != operator.ExitRefused || !strings.Contains(r.stderr, "keyrotor rotate") {
		t.Fatalf("import into a gateway secret: exit %d\n%s", r.code, r.stderr)
	}
	c.noKeyPrinted([]string{secret}, badKey)
}
