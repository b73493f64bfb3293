package adminsecret_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/internal/redacttest"
	"github.com/keyrotor/keyrotor/internal/smfake"
	"github.com/keyrotor/keyrotor/internal/testenv"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
)

func owner(t *testing.T, id string) providers.Credential {
	t.Helper()
	c, err := providers.Credential{Provider: "gateway"}.WithAttr(providers.FieldAdminSecretID, id)
	if err != nil {
		t.Fatal(err)
	}
	c.Secret = testenv.Identity("prod/app")
	return c
}

// bound binds an admin secret to prod/app.
var bound = map[string]string{keyrotor.TagAdminFor: "staging/*, prod/*"}

// TestBinding: a managed secret's value names its admin secret, but only an
// admin secret whose keyrotor:admin-for matches the managed secret's name is
// read: without the tag, with patterns that do not match, or for an owner
// whose identity keyrotor did not set, Read refuses before reading the value,
// and says how to bind it.
func TestBinding(t *testing.T) {
	for name, tc := range map[string]struct {
		tags     map[string]string
		identity bool
	}{
		"NoTag":        {nil, true},
		"EmptyTag":     {map[string]string{keyrotor.TagAdminFor: ""}, true},
		"OtherSecrets": {map[string]string{keyrotor.TagAdminFor: "staging/*,prod/other,prod/app/*"}, true},
		"CaseDiffers":  {map[string]string{keyrotor.TagAdminFor: "PROD/*"}, true},
		"NoIdentity":   {bound, false},
	} {
		t.Run(name, func(t *testing.T) {
			sm := smfake.New()
			sm.Create("admin/a", `{"key":"k1"}`, tc.tags)
			r := adminsecret.Reader{SM: sm, Cache: adminsecret.NewCache(0, nil)}
			o := owner(t, "admin/a")
			if !tc.identity {
				o.Secret = keyrotor.Identity{}
			}
			c, err := r.Read(context.Background(), "sendgrid.CreateApiKey", o)
			if !errors.Is(err, providers.ErrUnbound) || providers.KindOf(err) != providers.Invalid || c.Key != "" {
				t.Fatalf("Read = %v, %v; want an Invalid error wrapping ErrUnbound", c, err)
			}
			if tc.identity && !strings.Contains(err.Error(), "aws secretsmanager tag-resource --secret-id admin/a --tags Key=keyrotor:admin-for") {
				t.Errorf("the refusal does not say how to bind: %v", err)
			}
			if n := sm.Calls("GetSecretValue"); n != 0 {
				t.Fatalf("the unbound admin secret's value was read %d times", n)
			}
		})
	}
	// A cached admin secret is still checked for each managed secret.
	sm := smfake.New()
	sm.Create("admin/a", `{"key":"k1"}`, bound)
	r := adminsecret.Reader{SM: sm, Cache: adminsecret.NewCache(0, nil)}
	if _, err := r.Read(context.Background(), "op", owner(t, "admin/a")); err != nil {
		t.Fatal(err)
	}
	other := owner(t, "admin/a")
	other.Secret = testenv.Identity("dev/app")
	if _, err := r.Read(context.Background(), "op", other); !errors.Is(err, providers.ErrUnbound) {
		t.Fatalf("a cached admin secret was handed to an unbound secret: %v", err)
	}
}

func TestReadWithoutCacheReadsEveryTime(t *testing.T) {
	sm := smfake.New()
	sm.Create("admin/a", `{"key":"k1","key_id":"id1"}`, bound)
	r := adminsecret.Reader{SM: sm}
	for i := 0; i < 3; i++ {
		c, err := r.Read(context.Background(), "op", owner(t, "admin/a"))
		if err != nil || c.Key != "k1" || c.KeyID != "id1" {
			t.Fatalf("read %d: %v %v", i, c, err)
		}
	}
	if n := sm.Calls("GetSecretValue"); n != 3 {
		t.Fatalf("%d reads without a cache, want 3", n)
	}
}

func TestCacheKeepsEachAdminSecretForItsTTL(t *testing.T) {
	sm := smfake.New()
	sm.Create("admin/a", `{"key":"ka"}`, bound)
	sm.Create("admin/b", `{"key":"kb"}`, bound)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	r := adminsecret.Reader{SM: sm, Cache: adminsecret.NewCache(time.Minute, func() time.Time { return now })}
	ctx := context.Background()
	read := func(id, want string) {
		t.Helper()
		c, err := r.Read(ctx, "op", owner(t, id))
		if err != nil || c.Key != want {
			t.Fatalf("read %s: key %q err %v, want %q", id, c.Key, err, want)
		}
	}
	read("admin/a", "ka")
	read("admin/a", "ka")
	read("admin/b", "kb")
	if n := sm.Calls("GetSecretValue"); n != 2 {
		t.Fatalf("%d reads, want one per admin secret", n)
	}
	// The admin credential is rotated: the new one is used once TTL ends.
	sm.StartRotation("admin/a", "v2")
	if _, err := sm.PutSecretValue(ctx, putCurrent("admin/a", "v2", `{"key":"ka2"}`)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(59 * time.Second)
	read("admin/a", "ka")
	now = now.Add(time.Second)
	read("admin/a", "ka2")
	if n := sm.Calls("GetSecretValue"); n != 3 {
		t.Fatalf("%d reads, want 3 (one more after the TTL)", n)
	}
}

func TestCacheKeepsNoError(t *testing.T) {
	sm := smfake.New()
	r := adminsecret.Reader{SM: sm, Cache: adminsecret.NewCache(0, nil)}
	ctx := context.Background()
	_, err := r.Read(ctx, "gateway.CreateKey", owner(t, "admin/missing"))
	if providers.KindOf(err) != providers.Invalid || !strings.Contains(err.Error(), "admin/missing") {
		t.Fatalf("missing admin secret: %v, want Invalid naming it", err)
	}
	sm.Create("admin/missing", `{"key":"k"}`, bound)
	if c, err := r.Read(ctx, "gateway.CreateKey", owner(t, "admin/missing")); err != nil || c.Key != "k" {
		t.Fatalf("after the admin secret was created: %v %v", c, err)
	}
	sm.Create("admin/bad", `{"nokey":1}`, bound)
	for i := 0; i < 2; i++ {
		if _, err := r.Read(ctx, "op", owner(t, "admin/bad")); providers.KindOf(err) != providers.Invalid {
			t.Fatalf("bad admin secret: %v", err)
		}
	}
	if d, g := sm.Calls("DescribeSecret"), sm.Calls("GetSecretValue"); d != 4 || g != 3 {
		t.Fatalf("%d describes and %d reads, want 4 and 3: failures are not cached", d, g)
	}
}

func putCurrent(name, version, value string) *secretsmanager.PutSecretValueInput {
	return &secretsmanager.PutSecretValueInput{SecretId: aws.String(name), ClientRequestToken: aws.String(version),
		SecretString: aws.String(value), VersionStages: []string{"AWSCURRENT"}}
}

func TestCredentialNeverShowsTheKeyOrKeyID(t *testing.T) {
	// KeyID is secret for Datadog (the application key), so it is hidden too.
	redacttest.Hidden(t, adminsecret.Credential{Key: "admin_secret_value_123", KeyID: "dd_application_key_456"},
		"admin_secret_value_123", "dd_application_key_456")
}
