package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

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

// TestSameSecretNameInTwoRegions is issue 10's end-to-end test of key
// ownership: the same secret name in two regions, both rotating keys of one
// shared vendor (the reference gateway), rotated alternately. After every
// rotation, once the revokers have revoked what the grace period released,
// every region's AWSCURRENT key must still be live at the gateway: no
// region's rotation (its reconcile or its revoker) may take the other
// region's keys for its own.
func TestSameSecretNameInTwoRegions(t *testing.T) {
	s := needTwoRegions(t)
	const (
		secret    = "prod/shared-gateway-key"
		grace     = 2 * time.Second
		rotations = 4
	)
	var created []*local.RegionStack
	allLive := func(after string) {
		t.Helper()
		for _, r := range created {
			k, err := r.ReadKey(ctx(t), secret, "AWSCURRENT")
			if err != nil {
				t.Fatal(err)
			}
			code, err := s.Ping(ctx(t), k.Key)
			if err != nil {
				t.Fatal(err)
			}
			if code != 200 {
				t.Errorf("after %s: the AWSCURRENT key of %s in %s (%s) answers %d at the shared gateway, want 200", after, secret, r.Name, k, code)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	for _, name := range []string{regionA, regionB} {
		r := s.InRegion(name)
		// The gateway's admin secret exists in each region, bound to every
		// secret name.
		d, err := r.SecretsManager().DescribeSecret(ctx(t), &secretsmanager.DescribeSecretInput{SecretId: aws.String(local.GatewayAdminSecret)})
		if err != nil {
			t.Fatal(err)
		}
		if got := tagValue(d.Tags, local.TagAdminFor); got != "*" {
			t.Fatalf("%s in %s: tag %s = %q, want \"*\"", local.GatewayAdminSecret, name, local.TagAdminFor, got)
		}
		if _, err := r.CreateGatewaySecret(ctx(t), secret, grace); err != nil {
			t.Fatal(err)
		}
		created = append(created, r)
		allLive(fmt.Sprintf("the first rotation of %s in %s", secret, name))
	}
	for i := range rotations {
		r := created[i%2]
		old, err := r.ReadKey(ctx(t), secret, "AWSCURRENT")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Rotate(ctx(t), secret); err != nil {
			t.Fatal(err)
		}
		// Let the revoker revoke the key this rotation superseded.
		c, cancel := context.WithTimeout(context.Background(), grace+2*time.Minute)
		err = s.WaitRevoked(c, old.KeyID)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		allLive(fmt.Sprintf("rotation %d (in %s) and its revocation", i+1, r.Name))
	}
}

func tagValue(tags []smtypes.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}
