package local

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor/internal/operator"
)

// launcherSM starts the moto launcher alone (no functions: its Lambda
// invokes go nowhere) and returns a Secrets Manager client for it and its
// URL. The launcher is stopped when t ends.
func launcherSM(t *testing.T) (*secretsmanager.Client, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts moto: skipped with -short")
	}
	p, endpoint, err := startLauncher(t.TempDir(), "http://127.0.0.1:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.stop(3 * time.Second); err != nil {
			t.Error(err)
		}
	})
	cfg, err := awsConfig(context.Background(), endpoint, Region)
	if err != nil {
		t.Fatal(err)
	}
	return secretsmanager.NewFromConfig(cfg), endpoint
}

func setClock(t *testing.T, endpoint string, offset time.Duration) {
	t.Helper()
	if err := setClockOffset(context.Background(), endpoint, offset); err != nil {
		t.Fatal(err)
	}
}

// putVersion stores value as a new version of secret labelled stages (none:
// AWSCURRENT) and returns its id.
func putVersion(t *testing.T, sm *secretsmanager.Client, secret, value string, stages ...string) string {
	t.Helper()
	out, err := sm.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(secret), SecretString: aws.String(value), VersionStages: stages,
	})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.VersionId)
}

// TestLauncherKeepsVersionDates: three versions created an hour apart (on
// the launcher's Secrets Manager clock) keep their creation times in
// ListSecretVersionIds, equal to GetSecretValue's, with the secret's ARN;
// the version without labels shows only with IncludeDeprecated. Plain moto
// answered CreatedDate = now for every version.
func TestLauncherKeepsVersionDates(t *testing.T) {
	sm, endpoint := launcherSM(t)
	ctx := context.Background()
	const secret = "t/version-dates"

	setClock(t, endpoint, -2*time.Hour)
	created, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(secret), SecretString: aws.String("v1")})
	if err != nil {
		t.Fatal(err)
	}
	v1 := aws.ToString(created.VersionId)
	setClock(t, endpoint, -time.Hour)
	v2 := putVersion(t, sm, secret, "v2")
	setClock(t, endpoint, 0)
	v3 := putVersion(t, sm, secret, "v3") // v2 becomes AWSPREVIOUS, v1 loses its labels

	dates := map[string]time.Time{}
	for _, v := range []string{v1, v2, v3} {
		out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secret), VersionId: aws.String(v)})
		if err != nil {
			t.Fatal(err)
		}
		dates[v] = aws.ToTime(out.CreatedDate)
	}
	if d := dates[v2].Sub(dates[v1]); d < 59*time.Minute {
		t.Fatalf("GetSecretValue: version 2 created %s after version 1, want about 1h", d)
	}
	if d := dates[v3].Sub(dates[v2]); d < 59*time.Minute {
		t.Fatalf("GetSecretValue: version 3 created %s after version 2, want about 1h", d)
	}

	list := func(deprecated bool) *secretsmanager.ListSecretVersionIdsOutput {
		out, err := sm.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(secret), IncludeDeprecated: aws.Bool(deprecated)})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	all := list(true)
	if got := aws.ToString(all.ARN); got != aws.ToString(created.ARN) {
		t.Errorf("ListSecretVersionIds: ARN %q, want the secret's ARN %q", got, aws.ToString(created.ARN))
	}
	seen := map[string]bool{}
	for _, v := range all.Versions {
		id := aws.ToString(v.VersionId)
		seen[id] = true
		if got, want := aws.ToTime(v.CreatedDate), dates[id]; !got.Equal(want) {
			t.Errorf("ListSecretVersionIds: version %s (%v) CreatedDate %s, want its creation time %s", id, v.VersionStages, got.UTC().Format(time.RFC3339), want.UTC().Format(time.RFC3339))
		}
	}
	if len(seen) != 3 || !seen[v1] || !seen[v2] || !seen[v3] {
		t.Errorf("ListSecretVersionIds(IncludeDeprecated) lists %v, want the 3 versions", seen)
	}
	for _, v := range list(false).Versions {
		if aws.ToString(v.VersionId) == v1 {
			t.Errorf("ListSecretVersionIds without IncludeDeprecated lists version 1, which has no label (%v)", v.VersionStages)
		}
	}
}

// TestStatusSeesVersionDatesOnTheLauncher is issue 12's "times on the local
// stack are wrong" as `keyrotor status` saw it: a rotation pending for two
// hours is stuck (not "in progress for 0s"), and a grace period that began
// an hour ago has ended (not "ends in 10s" forever).
func TestStatusSeesVersionDatesOnTheLauncher(t *testing.T) {
	sm, endpoint := launcherSM(t)
	ctx := context.Background()
	const secret = "t/status-dates"
	value := func(keyID string) string {
		b, _ := json.Marshal(map[string]string{"provider": "gateway", "admin_secret_id": GatewayAdminSecret, "key": "gw_" + keyID, "key_id": keyID})
		return string(b)
	}

	setClock(t, endpoint, -2*time.Hour)
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String(secret), SecretString: aws.String(value("key_1")),
		Tags: []smtypes.Tag{
			{Key: aws.String("keyrotor:managed"), Value: aws.String("true")},
			{Key: aws.String("keyrotor:grace-period"), Value: aws.String("10s")},
		},
	}); err != nil {
		t.Fatal(err)
	}
	putVersion(t, sm, secret, value("key_2")) // key_1 becomes AWSPREVIOUS; its grace ends 10 s later
	setClock(t, endpoint, -time.Hour)
	pending := putVersion(t, sm, secret, value("key_3"), "AWSPENDING") // a rotation that never finished
	setClock(t, endpoint, 0)

	op := &operator.Operator{SM: sm}
	sts, err := op.Status(ctx, []string{secret}, operator.StatusOptions{NoVendor: true})
	if err != nil {
		t.Fatal(err)
	}
	st := sts[0]
	if st.Rotation != operator.RotationStuck || st.PendingVersion != pending {
		t.Errorf("status: rotation %q on version %s since %v, want %q on %s (pending for an hour)", st.Rotation, st.PendingVersion, st.PendingSince, operator.RotationStuck, pending)
	}
	if st.GraceUntil == nil || !st.GraceUntil.Before(time.Now()) {
		t.Errorf("status: the grace of %s ends %v, want a time 2h ago", st.PreviousKeyID, st.GraceUntil)
	}
}
