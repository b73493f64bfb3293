package cloudflare

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/internal/testenv"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
	"github.com/keyrotor/keyrotor/providers/cloudflare/cloudflarefake"
	"github.com/keyrotor/keyrotor/providers/contracttest"
	"github.com/keyrotor/keyrotor/providers/providertest"
)

func TestConformanceUserTokens(t *testing.T) {
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) (providers.Provider, providers.Credential) {
			e := newEnv(t, options{})
			return e.p, e.owner
		},
		UnknownKeyID: "0123456789abcdef0123456789abcdef",
	})
}

func TestConformanceAccountTokens(t *testing.T) {
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) (providers.Provider, providers.Credential) {
			e := newEnv(t, options{account: true})
			return e.p, e.owner
		},
		UnknownKeyID: "0123456789abcdef0123456789abcdef",
	})
}

func createReq(owner providers.Credential) providers.CreateRequest {
	return providers.CreateRequest{SecretName: "app/cf", KeyName: keyrotor.KeyName(keyrotor.Identity{Name: "app/cf"}, "tok-1"), Owner: owner}
}

func wantKind(t *testing.T, err error, k providers.Kind) *providers.Error {
	t.Helper()
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Kind != k {
		t.Fatalf("err = %v, want a *providers.Error of kind %v", err, k)
	}
	if !strings.HasPrefix(pe.Op, Name+".") {
		t.Fatalf("Op %q does not name the vendor", pe.Op)
	}
	return pe
}

func TestCreateCopiesTheOldToken(t *testing.T) {
	for _, acct := range []bool{false, true} {
		e := newEnv(t, options{account: acct})
		scope := ""
		if acct {
			scope = account
		}
		expires := time.Now().Add(90 * 24 * time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
		notBefore := "2026-01-01T00:00:00Z"
		pols := []map[string]any{policyJSON(zoneRead), policyJSON("82e64a83756745bbbb1c9c2701bf816b")}
		cond := map[string]any{"request.ip": map[string]any{"in": []any{"192.0.2.0/24"}, "not_in": []any{"192.0.2.7/32"}}}
		e.fake.Mu.Lock()
		old := e.fake.Add(scope, "app token", pols, "")
		old.Condition, old.ExpiresOn, old.NotBefore = cond, expires, notBefore
		e.fake.Mu.Unlock()
		owner := e.owner
		owner.Key, owner.KeyID = old.Value, old.ID
		owner.Attrs = map[string]json.RawMessage{}
		owner, _ = owner.WithAttr(providers.FieldAdminSecretID, "cloudflare/admin")
		if acct {
			owner, _ = owner.WithAttr(FieldAccountID, account)
		}

		cred, err := e.p.Create(context.Background(), createReq(owner))
		if err != nil {
			t.Fatal(err)
		}
		e.fake.Mu.Lock()
		got := e.fake.Tokens[cred.KeyID]
		e.fake.Mu.Unlock()
		if got == nil || got.Value != cred.Key || got.Account != scope || got.Name != createReq(owner).KeyName {
			t.Fatalf("account=%v: created token %+v", acct, got)
		}
		if !jsonEqual(got.Policies, pols) || !jsonEqual(got.Condition, cond) || got.ExpiresOn != expires || got.NotBefore != notBefore {
			t.Fatalf("account=%v: copy has policies %v condition %v expiry %s/%s; want the old token's", acct, got.Policies, got.Condition, got.ExpiresOn, got.NotBefore)
		}
		if cred.Attr(FieldAccountID) != owner.Attr(FieldAccountID) || cred.Attr(providers.FieldAdminSecretID) == "" {
			t.Fatalf("credential %v lost the owner's fields", cred)
		}
		if err := e.p.Verify(context.Background(), cred); err != nil {
			t.Fatal(err)
		}
		// The old token still works: no roll happened (the env checks it too).
		if err := e.p.Verify(context.Background(), owner); err != nil {
			t.Fatalf("old token no longer verifies: %v", err)
		}
	}
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	var va, vb any
	_ = json.Unmarshal(ja, &va)
	_ = json.Unmarshal(jb, &vb)
	return reflect.DeepEqual(va, vb)
}

func TestCreateRefusesAnExpiredTemplate(t *testing.T) {
	e := newEnv(t, options{})
	e.fake.Mu.Lock()
	old := e.fake.Add("", "app token", []map[string]any{policyJSON(zoneRead)}, "")
	old.ExpiresOn = "2020-01-01T00:00:00Z"
	e.fake.Mu.Unlock()
	owner := e.owner
	owner.KeyID = old.ID
	_, err := e.p.Create(context.Background(), createReq(owner))
	wantKind(t, err, providers.Invalid)
	if n := e.fake.Count(http.MethodPost, "/client/v4/user/tokens"); n != 0 {
		t.Fatalf("%d creates, want none", n)
	}
}

func TestCreateWithoutATemplateIsInvalid(t *testing.T) {
	e := newEnv(t, options{noContract: true})
	owner := providers.Credential{Provider: Name}
	owner, _ = owner.WithAttr(providers.FieldAdminSecretID, "cloudflare/admin")
	_, err := e.p.Create(context.Background(), createReq(owner))
	wantKind(t, err, providers.Invalid)
}

func TestVerifyRejectsADisabledToken(t *testing.T) {
	e := newEnv(t, options{})
	cred, err := e.p.Create(context.Background(), createReq(e.owner))
	if err != nil {
		t.Fatal(err)
	}
	e.fake.Mu.Lock()
	e.fake.Tokens[cred.KeyID].Status = "disabled"
	e.fake.Mu.Unlock()
	wantKind(t, e.p.Verify(context.Background(), cred), providers.Permission)
	e.fake.Inject(cloudflarefake.Fault{Method: http.MethodGet, Path: "/user/tokens/verify", Status: 200,
		Body: `{"success":true,"errors":[],"messages":[],"result":{"id":"` + cred.KeyID + `","status":"expired"}}`})
	wantKind(t, e.p.Verify(context.Background(), cred), providers.Permission)
}

func TestPermissionIsNotRetried(t *testing.T) {
	e := newEnv(t, options{})
	e.p.admin = stubAdmin{key: "not-a-cloudflare-token-0123456789abcdef"}
	_, err := e.p.Create(context.Background(), createReq(e.owner))
	if pe := wantKind(t, err, providers.Permission); pe.Status != 401 || pe.RequestID == "" {
		t.Fatalf("status %d request id %q", pe.Status, pe.RequestID)
	}
	if n := e.fake.Count(http.MethodPost, "/client/v4/user/tokens"); n != 1 {
		t.Fatalf("%d creates, want 1", n)
	}
	e.fake.Inject(cloudflarefake.Fault{Method: http.MethodGet, Path: "/user/tokens/verify", Status: 403,
		Body: `{"success":false,"errors":[{"code":9109,"message":"Unauthorized to access requested resource"}],"messages":[],"result":null}`})
	wantKind(t, e.p.Verify(context.Background(), providers.Credential{Provider: Name, Key: adminValue}), providers.Permission)
	if n := e.fake.Count(http.MethodGet, "/client/v4/user/tokens/verify"); n != 1 {
		t.Fatalf("%d verifies, want 1", n)
	}
}

func TestRevokeOfAMissingTokenIsSuccess(t *testing.T) {
	e := newEnv(t, options{})
	if err := e.p.Revoke(context.Background(), e.owner, "ed17574386854bf78a67040be0a770b0"); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.Count(http.MethodDelete, "/client/v4/user/tokens/ed17574386854bf78a67040be0a770b0"); n != 1 {
		t.Fatalf("%d deletes, want 1", n)
	}
}

func TestRetryAfterHonouredOn429(t *testing.T) {
	e := newEnv(t, options{})
	e.fake.Inject(cloudflarefake.Fault{Method: http.MethodGet, Path: "/user/tokens/verify", Status: 429, Header: map[string]string{"Retry-After": "4"},
		Body: `{"success":false,"errors":[{"code":10000,"message":"Rate limited"}],"messages":[],"result":null}`})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.p.Verify(ctx, providers.Credential{Provider: Name, Key: adminValue}); err != nil {
		t.Fatal(err)
	}
	if w := e.slept.waits(); len(w) != 1 || w[0] != 4*time.Second {
		t.Fatalf("waits %v, want [4s]", w)
	}
}

func TestServerErrorThenSuccessOnAGet(t *testing.T) {
	e := newEnv(t, options{})
	e.fake.Inject(cloudflarefake.Fault{Method: http.MethodGet, Path: "/user/tokens", Status: 502, Body: `{"success":false,"errors":[{"code":10001,"message":"bad gateway"}],"messages":[],"result":null}`})
	if _, err := e.p.ListKeys(context.Background(), e.owner, "keyrotor-"); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.Count(http.MethodGet, "/client/v4/user/tokens"); n != 2 {
		t.Fatalf("%d lists, want 2", n)
	}
}

func TestCreateIsNotRetriedAfterAServerError(t *testing.T) {
	e := newEnv(t, options{})
	e.fake.Inject(cloudflarefake.Fault{Method: http.MethodPost, Path: "/user/tokens", Status: 500, Body: `{"success":false,"errors":[{"code":10001,"message":"internal"}],"messages":[],"result":null}`})
	_, err := e.p.Create(context.Background(), createReq(e.owner))
	wantKind(t, err, providers.Transient)
	if n := e.fake.Count(http.MethodPost, "/client/v4/user/tokens"); n != 1 {
		t.Fatalf("%d creates, want 1: a create must not mint twice", n)
	}
}

func TestTimeoutIsTransient(t *testing.T) {
	e := newEnv(t, options{})
	for range 8 {
		e.fake.Inject(cloudflarefake.Fault{Method: http.MethodGet, Path: "/user/tokens/verify", Hang: true})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	wantKind(t, e.p.Verify(ctx, providers.Credential{Provider: Name, Key: adminValue}), providers.Transient)
}

func TestMalformedBodyIsNotQuoted(t *testing.T) {
	e := newEnv(t, options{noContract: true}) // the body breaks the spec on purpose
	e.fake.Inject(cloudflarefake.Fault{Method: http.MethodPost, Path: "/user/tokens", Status: 200, Body: `{"success":true,"result":{"id":"x","value":"LEAKED-TOKEN-VALUE`})
	_, err := e.p.Create(context.Background(), createReq(e.owner))
	wantKind(t, err, providers.Other)
	if strings.Contains(err.Error(), "LEAKED") {
		t.Fatalf("error %q quotes the body", err)
	}
}

func TestKeyLimitIsAConflictAndDeletesNothing(t *testing.T) {
	e := newEnv(t, options{})
	e.fake.Mu.Lock()
	for e.fake.ScopeCount("") < MaxUserTokens {
		e.fake.Add("", "someone else's token", []map[string]any{policyJSON(zoneRead)}, "")
	}
	e.fake.Mu.Unlock()
	_, err := e.p.Create(context.Background(), createReq(e.owner))
	wantKind(t, err, providers.Conflict)
	if !strings.Contains(err.Error(), "50") {
		t.Fatalf("error %v does not name the limit", err)
	}
	e.fake.Mu.Lock()
	n := e.fake.ScopeCount("")
	e.fake.Mu.Unlock()
	if n != MaxUserTokens {
		t.Fatalf("%d tokens after the refused create, want %d", n, MaxUserTokens)
	}
	for _, ex := range e.rec.Exchanges() {
		if ex.Method == http.MethodDelete {
			t.Fatalf("a token was deleted: %s", ex)
		}
	}
}

func TestRefusedCreateBelowTheLimitKeepsItsKind(t *testing.T) {
	e := newEnv(t, options{})
	e.fake.Inject(cloudflarefake.Fault{Method: http.MethodPost, Path: "/user/tokens", Status: 400, Body: `{"success":false,"errors":[{"code":1001,"message":"Invalid request body"}],"messages":[],"result":null}`})
	_, err := e.p.Create(context.Background(), createReq(e.owner))
	wantKind(t, err, providers.Invalid)
}

func TestListKeysPages(t *testing.T) {
	e := newEnv(t, options{account: true})
	prefix := keyrotor.KeyNamePrefix(keyrotor.Identity{Name: "app/cf"})
	e.fake.Mu.Lock()
	for i := range 62 {
		e.fake.Add(account, prefix+strings.Repeat("x", i%5), []map[string]any{policyJSON(zoneRead)}, "")
	}
	e.fake.Add(account, "unrelated", []map[string]any{policyJSON(zoneRead)}, "")
	e.fake.Mu.Unlock()
	keys, err := e.p.ListKeys(context.Background(), e.owner, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 62 || keys[0].CreatedAt.IsZero() {
		t.Fatalf("%d keys (first %+v), want 62 with creation times", len(keys), keys[0])
	}
	if n := e.fake.Count(http.MethodGet, "/client/v4/accounts/"+account+"/tokens"); n != 2 {
		t.Fatalf("%d list pages, want 2", n)
	}
}

func TestNewChecksTheBaseURL(t *testing.T) {
	if _, err := New(Config{Admin: stubAdmin{}, BaseURL: "http://api.cloudflare.com/client/v4"}); err == nil {
		t.Fatal("plain http to a non-loopback host accepted")
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without an admin reader accepted")
	}
	p, err := New(Config{Admin: stubAdmin{}})
	if err != nil || p.c.BaseURL() != DefaultBaseURL {
		t.Fatalf("default base URL: %v %v", p, err)
	}
}

// TestAdminSecretFromMoto reads the management token from a real Secrets
// Manager (moto) through adminsecret.Reader.
func TestAdminSecretFromMoto(t *testing.T) {
	m := testenv.StartMoto(t, nil)
	sm := secretsmanager.NewFromConfig(m.Config(t))
	ctx := context.Background()
	v, _ := json.Marshal(map[string]string{"key": adminValue})
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("cloudflare/admin"), SecretString: aws.String(string(v)), Tags: testenv.AdminFor("app/*")}); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, options{})
	e.owner.Secret = testenv.Identity("app/x")
	e.p.admin = adminsecret.Reader{SM: sm}
	cred, err := e.p.Create(ctx, createReq(e.owner))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.p.Verify(ctx, cred); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Revoke(ctx, e.owner, cred.KeyID); err != nil {
		t.Fatal(err)
	}
	wantKind(t, e.p.Verify(ctx, cred), providers.Permission)
}

// TestContract runs a rotation's requests against a fake whose exchanges
// are all validated against cloudflare.yaml (newEnv validates every test's
// exchanges when the spec is present; this test says so when it is not).
func TestContract(t *testing.T) {
	contracttest.Spec(t, "cloudflare.yaml")
	for _, acct := range []bool{false, true} {
		e := newEnv(t, options{account: acct})
		ctx := context.Background()
		first, err := e.p.Create(ctx, createReq(e.owner))
		if err != nil {
			t.Fatal(err)
		}
		second, err := e.p.Create(ctx, createReq(first)) // copies first
		if err != nil {
			t.Fatal(err)
		}
		if err := e.p.Verify(ctx, second); err != nil {
			t.Fatal(err)
		}
		if _, err := e.p.ListKeys(ctx, second, "keyrotor-"); err != nil {
			t.Fatal(err)
		}
		if err := e.p.Revoke(ctx, second, first.KeyID); err != nil {
			t.Fatal(err)
		}
		if n := len(e.rec.Exchanges()); n != 6 {
			t.Fatalf("%d exchanges recorded, want 6", n)
		}
	}
}
