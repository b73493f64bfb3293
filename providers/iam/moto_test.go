package iam_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/internal/testenv"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/iam"
	"github.com/keyrotor/keyrotor/providers/providertest"
)

// adminCallsBeforeAuth is how many calls moto answers without checking
// signatures: exactly the ones startAuthMoto makes to create the admin.
const adminCallsBeforeAuth = 3

// authMoto is a moto_server that checks signatures and IAM policies, and the
// configuration of an admin user allowed everything.
type authMoto struct {
	moto  *testenv.Moto
	admin aws.Config
	users atomic.Int64
}

// startAuthMoto starts moto with authentication enforced after the calls
// that create the admin user, its policy and its access key.
func startAuthMoto(t *testing.T) *authMoto {
	t.Helper()
	m := testenv.StartMoto(t, &testenv.MotoOptions{Env: []string{fmt.Sprintf("INITIAL_NO_AUTH_ACTION_COUNT=%d", adminCallsBeforeAuth)}})
	ctx := context.Background()
	boot := awsiam.NewFromConfig(m.Config(t))
	const admin = "keyrotor-admin"
	if _, err := boot.CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String(admin)}); err != nil {
		t.Fatalf("create admin user: %v", err)
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`
	if _, err := boot.PutUserPolicy(ctx, &awsiam.PutUserPolicyInput{UserName: aws.String(admin), PolicyName: aws.String("admin"), PolicyDocument: aws.String(policy)}); err != nil {
		t.Fatalf("put admin policy: %v", err)
	}
	out, err := boot.CreateAccessKey(ctx, &awsiam.CreateAccessKeyInput{UserName: aws.String(admin)})
	if err != nil {
		t.Fatalf("create admin key: %v", err)
	}
	am := &authMoto{moto: m, admin: m.ConfigWithKeys(t, aws.ToString(out.AccessKey.AccessKeyId), aws.ToString(out.AccessKey.SecretAccessKey))}
	// From here on moto checks signatures: the test credentials are refused.
	if _, err := boot.ListUsers(ctx, &awsiam.ListUsersInput{}); err == nil {
		t.Fatalf("moto accepted the unsigned test credentials after %d calls: auth is not enforced", adminCallsBeforeAuth)
	}
	return am
}

// newUser creates a fresh IAM user and returns the secret value naming it.
func (am *authMoto) newUser(t *testing.T) providers.Credential {
	t.Helper()
	name := fmt.Sprintf("keyrotor-bot-%d", am.users.Add(1))
	secretARN := "arn:aws:secretsmanager:us-east-1:123456789012:secret:test/" + name + "-AbCdEf"
	if _, err := awsiam.NewFromConfig(am.admin).CreateUser(context.Background(), &awsiam.CreateUserInput{UserName: aws.String(name),
		Tags: []iamtypes.Tag{{Key: aws.String(keyrotor.TagSecret), Value: aws.String(secretARN)}}}); err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	owner, err := providers.ParseSecret(fmt.Sprintf(`{"provider":"iam","user_name":%q,"team":"payments"}`, name))
	if err != nil {
		t.Fatal(err)
	}
	if owner.Secret, err = keyrotor.ParseARN(secretARN); err != nil {
		t.Fatal(err)
	}
	return owner
}

func TestConformance(t *testing.T) {
	am := startAuthMoto(t)
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) (providers.Provider, providers.Credential) {
			return iam.New(am.admin, nil), am.newUser(t)
		},
		MaxKeys:      2,
		NamelessKeys: true,
		UnknownKeyID: "AKIAIOSFODNN7EXAMPLE",
	})
}

func TestMoto(t *testing.T) {
	am := startAuthMoto(t)
	ctx := context.Background()
	p := iam.New(am.admin, nil)

	t.Run("CreateCopiesOwnerFields", func(t *testing.T) {
		owner := am.newUser(t)
		c, err := p.Create(ctx, providers.CreateRequest{SecretName: "app", Owner: owner})
		if err != nil {
			t.Fatal(err)
		}
		if c.Provider != "iam" || !strings.HasPrefix(c.KeyID, "AKIA") || c.CreatedAt.IsZero() {
			t.Fatalf("Create = %v created %v, want provider iam, an AKIA key id and a creation time", c, c.CreatedAt)
		}
		if c.Attr(iam.FieldUserName) != owner.Attr(iam.FieldUserName) || c.Attr("team") != "payments" {
			t.Fatalf("Create did not copy the owner's fields: %v", c)
		}
	})

	t.Run("NeverUsedKeyHasZeroLastUse", func(t *testing.T) {
		owner := am.newUser(t)
		c, err := p.Create(ctx, providers.CreateRequest{Owner: owner})
		if err != nil {
			t.Fatal(err)
		}
		used, err := p.LastUsed(ctx, owner, c.KeyID)
		if err != nil || !used.IsZero() {
			t.Fatalf("LastUsed of a new key = %v, %v; want the zero time", used, err)
		}
	})

	t.Run("KeyOfAnotherUser", func(t *testing.T) {
		owner, other := am.newUser(t), am.newUser(t)
		c, err := p.Create(ctx, providers.CreateRequest{Owner: owner})
		if err != nil {
			t.Fatal(err)
		}
		// The secret claims the key belongs to other.
		wrong, err := c.WithAttr(iam.FieldUserName, other.Attr(iam.FieldUserName))
		if err != nil {
			t.Fatal(err)
		}
		err = p.Verify(ctx, wrong)
		if !providers.IsKind(err, providers.Invalid) {
			t.Fatalf("Verify of a key of another user: %v, want Invalid", err)
		}
		if strings.Contains(err.Error(), c.Key) {
			t.Fatalf("the error quotes the secret access key")
		}
		if _, err := p.LastUsed(ctx, other, c.KeyID); !providers.IsKind(err, providers.NotFound) {
			t.Fatalf("LastUsed of a key of another user: %v, want NotFound", err)
		}
		if err := p.Verify(ctx, c); err != nil {
			t.Fatalf("Verify with the right user: %v", err)
		}
	})

	t.Run("UnknownUserIsNotFound", func(t *testing.T) {
		owner, err := providers.ParseSecret(`{"provider":"iam","user_name":"keyrotor-nobody"}`)
		if err != nil {
			t.Fatal(err)
		}
		owner.Secret = am.newUser(t).Secret
		_, err = p.Create(ctx, providers.CreateRequest{Owner: owner})
		if !providers.IsKind(err, providers.NotFound) {
			t.Fatalf("Create for an unknown user: %v, want NotFound", err)
		}
		if _, err := p.ListKeys(ctx, owner, ""); !providers.IsKind(err, providers.NotFound) {
			t.Fatalf("ListKeys for an unknown user: %v, want NotFound", err)
		}
	})

	t.Run("RoleWithoutPermissionIsPermission", func(t *testing.T) {
		// A provider whose own credentials are a user with no policy.
		weak := am.newUser(t)
		k, err := p.Create(ctx, providers.CreateRequest{Owner: weak})
		if err != nil {
			t.Fatal(err)
		}
		weakP := iam.New(am.moto.ConfigWithKeys(t, k.KeyID, k.Key), nil)
		_, err = weakP.Create(ctx, providers.CreateRequest{Owner: am.newUser(t)})
		if !providers.IsKind(err, providers.Permission) {
			t.Fatalf("Create without iam:CreateAccessKey: %v, want Permission", err)
		}
		var pe *providers.Error
		if !strings.Contains(err.Error(), "iam.CreateAccessKey") || !errors.As(err, &pe) || pe.Status != 403 {
			t.Fatalf("error %v: want op iam.CreateAccessKey and HTTP 403", err)
		}
	})

	t.Run("ErrorsNeverQuoteTheKey", func(t *testing.T) {
		owner := am.newUser(t)
		a, err := p.Create(ctx, providers.CreateRequest{Owner: owner})
		if err != nil {
			t.Fatal(err)
		}
		b, err := p.Create(ctx, providers.CreateRequest{Owner: owner})
		if err != nil {
			t.Fatal(err)
		}
		_, limitErr := p.Create(ctx, providers.CreateRequest{Owner: owner})
		if !providers.IsKind(limitErr, providers.Conflict) || !strings.Contains(limitErr.Error(), "already has 2 access keys") || !strings.Contains(limitErr.Error(), "grace period") {
			t.Fatalf("third Create: %v, want a Conflict saying the user has 2 keys and the old one is in its grace period", limitErr)
		}
		bogus := a
		bogus.Key = strings.Repeat("Z", 40)
		if err := p.Revoke(ctx, owner, b.KeyID); err != nil {
			t.Fatal(err)
		}
		errs := []error{limitErr, p.Verify(ctx, bogus), p.Verify(ctx, b)}
		for i, err := range errs {
			if err == nil {
				t.Fatalf("case %d: no error", i)
			}
			for _, key := range []string{a.Key, b.Key, bogus.Key} {
				if strings.Contains(err.Error(), key) || strings.Contains(fmt.Sprintf("%+v %#v", err, err), key) {
					t.Fatalf("case %d: the error quotes a secret access key", i)
				}
			}
		}
	})
}
