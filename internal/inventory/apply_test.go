package inventory

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/internal/smfake"
	"github.com/keyrotor/keyrotor/rotation"
)

// Fast tests of Check, Plan and Apply over the in-memory Secrets Manager;
// internal/operator/clitest runs `inventory apply` against moto.

// rotateSM adds TagResource and RotateSecret (RotateImmediately=false) to
// smfake. test runs in RotateSecret after the schedule is set, as Secrets
// Manager's testSecret or moto's; it gets the version id RotateSecret was
// given and returns the one RotateSecret reports.
type rotateSM struct {
	*smfake.SM
	test func(id, token string) string
	// tokens are the ClientRequestTokens RotateSecret was given.
	tokens []string
}

func (f *rotateSM) TagResource(_ context.Context, in *secretsmanager.TagResourceInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.TagResourceOutput, error) {
	for _, t := range in.Tags {
		f.Tag(aws.ToString(in.SecretId), aws.ToString(t.Key), aws.ToString(t.Value))
	}
	return &secretsmanager.TagResourceOutput{}, nil
}

func (f *rotateSM) RotateSecret(_ context.Context, in *secretsmanager.RotateSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.RotateSecretOutput, error) {
	if aws.ToBool(in.RotateImmediately) {
		return nil, errors.New("apply must never rotate now")
	}
	token := aws.ToString(in.ClientRequestToken)
	if token == "" {
		return nil, errors.New("apply must pass a ClientRequestToken")
	}
	f.tokens = append(f.tokens, token)
	id := aws.ToString(in.SecretId)
	f.SetRotationEnabled(id, true)
	return &secretsmanager.RotateSecretOutput{VersionId: aws.String(f.test(id, token))}, nil
}

const (
	applySecret = "prod/gateway-key"
	applyValue  = `{"provider":"gateway","key":"k-1","key_id":"id-1"}`
)

func applyEntry(t *testing.T) Entry {
	t.Helper()
	p, ok := LookupProvider("gateway")
	if !ok {
		t.Fatal("no gateway provider")
	}
	return Entry{Line: 3, SecretID: applySecret, Provider: p, Expression: "rate(7 days)", Window: "3h",
		Tags: map[string]string{rotation.TagManaged: "true", TagProvider: "gateway"}}.finish()
}

// motoTest is moto's RotateSecret: token's version holds a copy of the
// AWSCURRENT value, labelled AWSPENDING and left so; it returns the
// AWSCURRENT version.
func motoTest(sm *smfake.SM) func(id, token string) string {
	return func(id, token string) string {
		if _, err := sm.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
			SecretId: aws.String(id), ClientRequestToken: aws.String(token), SecretString: aws.String(applyValue), VersionStages: []string{rotation.Pending},
		}); err != nil {
			panic(err)
		}
		return "v1"
	}
}

// plan runs Check and Plan as `inventory apply` does.
func plan(t *testing.T, sm SecretsManager, entries []Entry) []Change {
	t.Helper()
	ctx := context.Background()
	described, err := Check(ctx, sm, "inventory.yaml", entries)
	if err != nil {
		t.Fatal(err)
	}
	changes, err := Plan(ctx, sm, entries, described, func(string) (string, error) {
		return "arn:aws:lambda:us-east-1:123456789012:function:keyrotor-gateway-rotation", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return changes
}

// Against moto, apply removes the AWSPENDING label moto's test leaves on a
// copy of the value, so that the next rotation can start; Check, Plan and
// Apply describe the secret twice (Check's output is reused).
func TestApplyRemovesMotosTestPending(t *testing.T) {
	f := &rotateSM{SM: smfake.New()}
	f.test = motoTest(f.SM)
	f.Create(applySecret, applyValue, nil)
	changes := plan(t, f, []Entry{applyEntry(t)})
	if len(changes) != 1 || changes[0].Rotation == nil {
		t.Fatalf("changes %+v: want a rotation to set", changes)
	}
	if err := Apply(context.Background(), f, changes, nil); err != nil {
		t.Fatal(err)
	}
	if len(f.tokens) != 1 {
		t.Fatalf("%d RotateSecret calls", len(f.tokens))
	}
	for v, stages := range f.Stages(applySecret) {
		if slices.Contains(stages, rotation.Pending) {
			t.Errorf("version %s keeps AWSPENDING %v", v, stages)
		}
	}
	if got := f.Calls("DescribeSecret"); got != 2 {
		t.Errorf("DescribeSecret called %d times for one secret, want 2 (Check, and after RotateSecret)", got)
	}
	// Planning describes each secret once (in Check).
	plan(t, f, []Entry{applyEntry(t)})
	if got := f.Calls("DescribeSecret"); got != 3 {
		t.Errorf("DescribeSecret called %d times after a second plan, want 3", got)
	}
}

// Secrets Manager returns its test's version, which it removes itself:
// apply leaves the label alone rather than race it.
func TestApplyLeavesSecretsManagersTestPending(t *testing.T) {
	f := &rotateSM{SM: smfake.New()}
	f.test = func(id, token string) string {
		f.StartRotation(id, token) // AWSPENDING, no value
		return token
	}
	f.Create(applySecret, applyValue, nil)
	if err := Apply(context.Background(), f, plan(t, f, []Entry{applyEntry(t)}), nil); err != nil {
		t.Fatal(err)
	}
	if got := f.Stages(applySecret)[f.tokens[0]]; !slices.Contains(got, rotation.Pending) {
		t.Errorf("the test's version has %v: apply removed Secrets Manager's AWSPENDING", got)
	}
	if got := f.Calls("UpdateSecretVersionStage"); got != 0 {
		t.Errorf("%d UpdateSecretVersionStage calls", got)
	}
}

// A rotation that starts while apply sets the schedule (a scheduled one, or
// `keyrotor rotate`) puts AWSPENDING on its own version: apply leaves it,
// whether it has a value yet or not.
func TestApplyLeavesAnotherRotationsPending(t *testing.T) {
	for _, withValue := range []bool{false, true} {
		f := &rotateSM{SM: smfake.New()}
		moto := motoTest(f.SM)
		f.test = func(id, token string) string {
			moto(id, token)
			// The other rotation takes the label off moto's copy.
			f.StartRotation(id, "other-rotation")
			if withValue {
				if _, err := f.PutSecretValue(context.Background(), &secretsmanager.PutSecretValueInput{
					SecretId: aws.String(id), ClientRequestToken: aws.String("other-rotation"),
					SecretString: aws.String(`{"provider":"gateway","key":"k-2","key_id":"id-2"}`), VersionStages: []string{rotation.Pending},
				}); err != nil {
					panic(err)
				}
			}
			return "v1"
		}
		f.Create(applySecret, applyValue, nil)
		if err := Apply(context.Background(), f, plan(t, f, []Entry{applyEntry(t)}), nil); err != nil {
			t.Fatal(err)
		}
		if got := f.Stages(applySecret)["other-rotation"]; !slices.Contains(got, rotation.Pending) {
			t.Errorf("value %v: the other rotation's version has %v: apply removed its AWSPENDING", withValue, got)
		}
		if got := f.Calls("UpdateSecretVersionStage"); got != 0 {
			t.Errorf("value %v: %d UpdateSecretVersionStage calls", withValue, got)
		}
	}
}

// A rotation in progress when apply plans makes apply refuse to set the
// schedule, without calling RotateSecret.
func TestApplyRefusesDuringRotation(t *testing.T) {
	f := &rotateSM{SM: smfake.New()}
	f.test = motoTest(f.SM)
	f.Create(applySecret, applyValue, nil)
	f.StartRotation(applySecret, "in-progress")
	err := Apply(context.Background(), f, plan(t, f, []Entry{applyEntry(t)}), nil)
	if err == nil || len(f.tokens) != 0 {
		t.Fatalf("err %v, %d RotateSecret calls: want a refusal", err, len(f.tokens))
	}
	if got := f.Stages(applySecret)["in-progress"]; !slices.Contains(got, rotation.Pending) {
		t.Errorf("the rotation's version has %v", got)
	}
}
