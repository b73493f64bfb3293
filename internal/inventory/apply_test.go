package inventory

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor/internal/smfake"
	"github.com/keyrotor/keyrotor/rotation"
)

// Fast tests of Check, Plan and Apply over the in-memory Secrets Manager;
// internal/operator/clitest runs `inventory apply` against the local
// stack's moto.

// rotateSM adds TagResource and RotateSecret (RotateImmediately=false) to
// smfake, as Secrets Manager does them: RotateSecret keeps the function and
// the rules, enables rotation, and leaves no version behind (its test
// version is its own business); DescribeSecret returns them.
type rotateSM struct {
	*smfake.SM
	rotations int
	arn       map[string]string
	rules     map[string]*smtypes.RotationRulesType
}

func newRotateSM() *rotateSM {
	return &rotateSM{SM: smfake.New(), arn: map[string]string{}, rules: map[string]*smtypes.RotationRulesType{}}
}

func (f *rotateSM) TagResource(_ context.Context, in *secretsmanager.TagResourceInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.TagResourceOutput, error) {
	for _, t := range in.Tags {
		f.Tag(aws.ToString(in.SecretId), aws.ToString(t.Key), aws.ToString(t.Value))
	}
	return &secretsmanager.TagResourceOutput{}, nil
}

func (f *rotateSM) RotateSecret(_ context.Context, in *secretsmanager.RotateSecretInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.RotateSecretOutput, error) {
	if aws.ToBool(in.RotateImmediately) || in.RotateImmediately == nil {
		return nil, errors.New("apply must never rotate now")
	}
	f.rotations++
	id := aws.ToString(in.SecretId)
	f.arn[id], f.rules[id] = aws.ToString(in.RotationLambdaARN), in.RotationRules
	f.SetRotationEnabled(id, true)
	return &secretsmanager.RotateSecretOutput{}, nil
}

func (f *rotateSM) DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error) {
	out, err := f.SM.DescribeSecret(ctx, in, optFns...)
	if err == nil {
		id := aws.ToString(in.SecretId)
		if arn := f.arn[id]; arn != "" {
			out.RotationLambdaARN, out.RotationRules = aws.String(arn), f.rules[id]
		}
	}
	return out, err
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

func functionARN(string) (string, error) {
	return "arn:aws:lambda:us-east-1:123456789012:function:keyrotor-gateway-rotation", nil
}

// plan runs Check and Plan as `inventory apply` does.
func plan(t *testing.T, sm SecretsManager, entries []Entry) []Change {
	t.Helper()
	ctx := context.Background()
	described, err := Check(ctx, sm, "inventory.yaml", entries)
	if err != nil {
		t.Fatal(err)
	}
	changes, err := planIAM(ctx, sm, nil, entries, described)
	if err != nil {
		t.Fatal(err)
	}
	return changes
}

// Apply sets the schedule without rotating, touches no version, and a
// second plan finds nothing to change (idempotent); Check's descriptions
// are reused by Plan.
func TestApplySetsTheScheduleOnce(t *testing.T) {
	f := newRotateSM()
	f.Create(applySecret, applyValue, nil)
	before := f.Stages(applySecret)
	changes := plan(t, f, []Entry{applyEntry(t)})
	if len(changes) != 1 || changes[0].Rotation == nil {
		t.Fatalf("changes %+v: want a rotation to set", changes)
	}
	if got := f.Calls("DescribeSecret"); got != 1 {
		t.Errorf("DescribeSecret called %d times by Check and Plan, want 1", got)
	}
	if err := applyIAM(context.Background(), f, nil, changes); err != nil {
		t.Fatal(err)
	}
	if f.rotations != 1 || f.Calls("UpdateSecretVersionStage") != 0 || f.Calls("PutSecretValue") != 0 {
		t.Fatalf("%d RotateSecret, %d UpdateSecretVersionStage, %d PutSecretValue calls: want only the schedule set",
			f.rotations, f.Calls("UpdateSecretVersionStage"), f.Calls("PutSecretValue"))
	}
	if got := f.Stages(applySecret); len(got) != len(before) {
		t.Errorf("versions %v after apply, %v before", got, before)
	}
	for _, c := range plan(t, f, []Entry{applyEntry(t)}) {
		if !c.Empty() {
			t.Errorf("a second plan wants %+v: apply is not idempotent", c)
		}
	}
}

// A rotation that starts while apply sets the schedule keeps its
// AWSPENDING: apply never moves a label.
func TestApplyLeavesAnotherRotationsPending(t *testing.T) {
	f := newRotateSM()
	f.Create(applySecret, applyValue, nil)
	changes := plan(t, f, []Entry{applyEntry(t)})
	f.StartRotation(applySecret, "other-rotation") // after the plan
	if err := applyIAM(context.Background(), f, nil, changes); err != nil {
		t.Fatal(err)
	}
	if got := f.Stages(applySecret)["other-rotation"]; !slices.Contains(got, rotation.Pending) {
		t.Errorf("the other rotation's version has %v: apply removed its AWSPENDING", got)
	}
}

// A rotation in progress when apply plans makes apply refuse to set the
// schedule, without calling RotateSecret.
func TestApplyRefusesDuringRotation(t *testing.T) {
	f := newRotateSM()
	f.Create(applySecret, applyValue, nil)
	f.StartRotation(applySecret, "in-progress")
	err := applyIAM(context.Background(), f, nil, plan(t, f, []Entry{applyEntry(t)}))
	if err == nil || f.rotations != 0 {
		t.Fatalf("err %v, %d RotateSecret calls: want a refusal", err, f.rotations)
	}
	if got := f.Stages(applySecret)["in-progress"]; !slices.Contains(got, rotation.Pending) {
		t.Errorf("the rotation's version has %v", got)
	}
}
