package testenv

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/providers"
)

// Stages returns the staging labels of secret by version id, leaving out
// the versions without labels (moto keeps them).
func Stages(t testing.TB, sm *secretsmanager.Client, secret string) map[string][]string {
	t.Helper()
	d, err := sm.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(secret)})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for id, st := range d.VersionIdsToStages {
		if len(st) > 0 {
			out[id] = st
		}
	}
	return out
}

// ReadSecret returns the credential that the version of secret labelled
// stage holds.
func ReadSecret(t testing.TB, sm *secretsmanager.Client, secret, stage string) providers.Credential {
	t.Helper()
	out, err := sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(secret), VersionStage: aws.String(stage)})
	if err != nil {
		t.Fatalf("read %s of %s: %v", stage, secret, err)
	}
	c, err := providers.ParseSecret(aws.ToString(out.SecretString))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// AdminFor returns the tags that bind an admin secret to the managed
// secrets whose names match patterns (keyrotor:admin-for).
func AdminFor(patterns string) []smtypes.Tag {
	return []smtypes.Tag{{Key: aws.String(keyrotor.TagAdminFor), Value: aws.String(patterns)}}
}

// Identity returns the identity of a managed secret named name in the
// account and region moto and smfake use, for provider tests that need an
// owner whose identity keyrotor set but no real secret.
func Identity(name string) keyrotor.Identity {
	return keyrotor.Identity{Partition: "aws", Account: "123456789012", Region: "us-east-1", Name: name, Suffix: "AbCdEf"}
}

// IdentityOf returns the identity of the secret secret as DescribeSecret's
// ARN gives it: what keyrotor derives key names from.
func IdentityOf(t testing.TB, sm *secretsmanager.Client, secret string) keyrotor.Identity {
	t.Helper()
	d, err := sm.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String(secret)})
	if err != nil {
		t.Fatal(err)
	}
	id, err := keyrotor.ParseARN(aws.ToString(d.ARN))
	if err != nil {
		t.Fatal(err)
	}
	return id
}
