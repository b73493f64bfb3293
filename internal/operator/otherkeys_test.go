package operator

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor"
)

// TestStatusReportsOtherKeys: a key at the vendor that keyrotor cannot prove
// is the secret's (named under the first scheme, shared with secrets of the
// same name elsewhere), and a key that only an unlabelled version holds (a
// rotation abandoned, or superseded within the grace period), are shown by
// status as problems that say what becomes of them — never silently.
func TestStatusReportsOtherKeys(t *testing.T) {
	e := newEnv(t)
	const secret = "svc/others"
	e.managedSecret(secret)
	legacy := e.p.Add(keyrotor.LegacyKeyNamePrefix(secret) + "someone")
	for _, v := range []string{"v2", "v3", "v4"} {
		e.rotate(secret, v)
	}
	v2, _, err := e.op.read(context.Background(), "test", secret, "", "v2")
	if err != nil {
		t.Fatal(err)
	}
	sts, err := e.op.Status(context.Background(), []string{secret}, StatusOptions{})
	if err != nil {
		t.Fatal(err)
	}
	problems := strings.Join(sts[0].Problems, "\n")
	if !strings.Contains(problems, legacy.ID) || !strings.Contains(problems, "not provably this secret's") {
		t.Errorf("status does not report the unprovable key %s: %s", legacy.ID, problems)
	}
	if !strings.Contains(problems, v2.KeyID) || !strings.Contains(problems, "unlabelled version v2") {
		t.Errorf("status does not report the key %s only the unlabelled version v2 holds: %s", v2.KeyID, problems)
	}
}

// TestNotManagedIsRefused: rollback, rotate and unstick of a secret keyrotor
// does not manage (its value has no "provider") change nothing and are refused
// (exit 4), saying so — not a failure (exit 1).
func TestNotManagedIsRefused(t *testing.T) {
	e := newEnv(t)
	const secret = "db/password"
	e.sm.Create(secret, `{"username":"app","password":"not-a-key"}`, nil)
	e.sm.StartRotation(secret, "v2")
	e.sm.Create("db/other", `{"username":"app"}`, nil)
	ctx := context.Background()
	if _, err := e.sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("db/other"), ClientRequestToken: aws.String("v2"),
		SecretString: aws.String(`{"username":"app2"}`), VersionStages: []string{"AWSCURRENT"}}); err != nil {
		t.Fatal(err)
	}
	for name, run := range map[string]func() error{
		"rollback": func() error { _, err := e.op.Rollback(ctx, "db/other"); return err },
		"rotate":   func() error { _, err := e.op.Rotate(ctx, "db/other", RotateOptions{}); return err },
		"unstick": func() error {
			_, err := e.op.Unstick(ctx, secret, UnstickOptions{Force: true})
			return err
		},
	} {
		err := run()
		if ExitCode(err) != ExitRefused || !strings.Contains(fmt.Sprint(err), "not managed by keyrotor") {
			t.Errorf("%s of a secret keyrotor does not manage: exit %d (%v), want 4 saying it is not managed", name, ExitCode(err), err)
		}
	}
}

// handVersion stores value in a version without labels (a value put by hand
// and superseded since).
func handVersion(t *testing.T, e *env, secret, version, value string) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.sm.SM.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(secret), ClientRequestToken: aws.String(version),
		SecretString: aws.String(value), VersionStages: []string{"HAND"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sm.SM.UpdateSecretVersionStage(ctx, &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(secret),
		VersionStage: aws.String("HAND"), RemoveFromVersionId: aws.String(version)}); err != nil {
		t.Fatal(err)
	}
}

// TestRevokeKeyNeverRevokesAnAdminKey: a hand-edited version holding the
// admin secret's key makes `keyrotor revoke-key` (which the emergency
// report prints for every live superseded key) refuse, not revoke it.
func TestRevokeKeyNeverRevokesAnAdminKey(t *testing.T) {
	e := newEnv(t)
	const secret = "svc/admin-edit"
	e.managedSecret(secret)
	admin := e.p.Add("the admin key")
	e.sm.Create("keyrotor/admin/fake", fmt.Sprintf(`{"key":%q,"key_id":%q}`, admin.Secret, admin.ID), nil)
	handVersion(t, e, secret, "hand", fmt.Sprintf(`{"provider":"fake","key":%q,"key_id":%q,"admin_secret_id":"keyrotor/admin/fake"}`, admin.Secret, admin.ID))
	_, err := e.op.RevokeKey(context.Background(), secret, admin.ID)
	if ExitCode(err) != ExitRefused || !e.p.Live()[admin.ID] {
		t.Fatalf("revoke-key of the admin key: %v (exit %d), live %v; want refused and the admin key live", err, ExitCode(err), e.p.Live()[admin.ID])
	}
}

// TestRevokeKeyRevalidatesBeforeTheRevoke: a rollback that makes the
// version AWSCURRENT after revoke-key read the versions and before it
// revokes must stop it (deterministic: a hook after its last read).
func TestRevokeKeyRevalidatesBeforeTheRevoke(t *testing.T) {
	e := newEnv(t)
	const secret = "svc/race"
	first := e.managedSecret(secret)
	e.rotate(secret, "v2")
	moved := false
	e.sm.afterGet = func(in *secretsmanager.GetSecretValueInput) {
		if moved || aws.ToString(in.VersionId) != "v1" {
			return
		}
		moved = true
		if _, err := e.sm.SM.UpdateSecretVersionStage(context.Background(), &secretsmanager.UpdateSecretVersionStageInput{SecretId: aws.String(secret),
			VersionStage: aws.String("AWSCURRENT"), MoveToVersionId: aws.String("v1"), RemoveFromVersionId: aws.String("v2")}); err != nil {
			t.Error(err)
		}
	}
	_, err := e.op.RevokeKey(context.Background(), secret, first.KeyID)
	if !moved || !e.p.Live()[first.KeyID] {
		t.Fatalf("revoke-key: %v; the key %s that a rollback made AWSCURRENT meanwhile was revoked (live %v)", err, first.KeyID, e.p.Live()[first.KeyID])
	}
}
