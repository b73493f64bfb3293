package e2e

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/infra/local"
)

// The two regions of the two-region stack; the first is the stack's own.
const (
	regionA = "us-east-1"
	regionB = "eu-west-1"
)

// twoRegions is a second local stack, with the gateway and revoker
// functions in two regions around one shared reference gateway. Only the
// tests that need two regions start it (once, on first use), so that the
// other tests do not pay for twice as many emulators.
var twoRegions struct {
	once  sync.Once
	stack *local.Stack
	err   error
}

// needTwoRegions returns the two-region stack, starting it on first use.
func needTwoRegions(t *testing.T) *local.Stack {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	twoRegions.once.Do(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		twoRegions.stack, twoRegions.err = local.Start(c, local.Options{
			GracePeriod:       2 * time.Second,
			Functions:         []string{"gateway", "revoker"},
			Regions:           []string{regionA, regionB},
			NoDemoSecrets:     true,
			VisibilityTimeout: 3 * time.Second,
		})
	})
	if twoRegions.err != nil {
		t.Fatalf("the two-region stack did not start: %v", twoRegions.err)
	}
	s := twoRegions.stack
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range s.Regions() {
				for _, n := range s.FunctionNames() {
					l := s.InRegion(r).Function(n).Logs()
					if len(l) > 3000 {
						l = l[len(l)-3000:]
					}
					t.Logf("--- %s/%s (end of its logs) ---\n%s", r, n, l)
				}
			}
		}
	})
	return s
}

// TestRotateSecretRunsTheRegionsFunction: on the two-region stack,
// `aws --region eu-west-1 secretsmanager rotate-secret` runs eu-west-1's
// rotation function (us-east-1's is not invoked), and the old key's
// revocation goes through eu-west-1's queue and revoker.
func TestRotateSecretRunsTheRegionsFunction(t *testing.T) {
	s := needTwoRegions(t)
	awsCLI, err := exec.LookPath("aws")
	if err != nil {
		t.Skip("the aws CLI is not installed")
	}
	a, b := s.InRegion(regionA), s.InRegion(regionB)
	const secret = "e2e/routed-by-region"
	if _, err := b.CreateGatewaySecret(ctx(t), secret, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	old, err := b.ReadKey(ctx(t), secret, "AWSCURRENT")
	if err != nil {
		t.Fatal(err)
	}
	aInvokes, bInvokes := a.Function("gateway").Invokes(), b.Function("gateway").Invokes()
	aReceived := a.Revocations.Stats().Received

	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for _, v := range s.Env() {
		env = append(env, v.Name+"="+v.Value)
	}
	cmd := exec.Command(awsCLI, "--region", regionB, "secretsmanager", "rotate-secret", "--secret-id", secret)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("aws --region %s secretsmanager rotate-secret: %v\n%s", regionB, err, out)
	}
	if got := b.Function("gateway").Invokes() - bInvokes; got != 4 {
		t.Errorf("%s's gateway function got %d invokes, want the 4 steps", regionB, got)
	}
	if got := a.Function("gateway").Invokes() - aInvokes; got != 0 {
		t.Errorf("%s's gateway function got %d invokes for a rotation in %s, want none", regionA, got, regionB)
	}
	cur, err := b.ReadKey(ctx(t), secret, "AWSCURRENT")
	if err != nil {
		t.Fatal(err)
	}
	if cur.KeyID == old.KeyID {
		t.Fatalf("the rotation in %s did not change AWSCURRENT", regionB)
	}

	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.WaitRevoked(c, old.KeyID); err != nil {
		t.Fatal(err)
	}
	if st := b.Revocations.Stats(); st.Received == 0 {
		t.Errorf("%s's revoker poller received nothing: %+v", regionB, st)
	}
	if got := a.Revocations.Stats().Received - aReceived; got != 0 {
		t.Errorf("%s's revoker poller received %d messages of a rotation in %s, want none", regionA, got, regionB)
	}
}
