package sendgrid

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/internal/testenv"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
	"github.com/keyrotor/keyrotor/providers/contracttest"
	"github.com/keyrotor/keyrotor/providers/providertest"
	"github.com/keyrotor/keyrotor/providers/sendgrid/sendgridfake"
)

func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) (providers.Provider, providers.Credential) {
			e := newEnv(t, options{})
			return e.p, e.owner
		},
		UnknownKeyID: "kid-does-not-exist",
	})
}

func createReq(owner providers.Credential) providers.CreateRequest {
	return providers.CreateRequest{SecretName: "app/sendgrid", KeyName: keyrotor.KeyName(keyrotor.Identity{Name: "app/sendgrid"}, "tok-1"), Owner: owner}
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

func TestCreateCopiesTheOldKeysScopes(t *testing.T) {
	e := newEnv(t, options{})
	scopes := []string{"mail.send", "alerts.read"}
	e.fake.Mu.Lock()
	old := e.fake.Add("legacy key", scopes, "")
	e.fake.Mu.Unlock()
	owner := e.owner
	owner.Key, owner.KeyID = old.Value, old.ID
	owner, _ = owner.WithAttr(FieldScopes, []string{"stale"}) // the live key wins over the secret
	owner, _ = owner.WithAttr(FieldOnBehalfOf, "subuser-1")

	cred, err := e.p.Create(context.Background(), createReq(owner))
	if err != nil {
		t.Fatal(err)
	}
	e.fake.Mu.Lock()
	got := e.fake.Keys[cred.Key]
	e.fake.Mu.Unlock()
	if got == nil || !slices.Equal(got.Scopes, scopes) || got.Name != createReq(owner).KeyName {
		t.Fatalf("created key %+v, want scopes %v and the rotation's name", got, scopes)
	}
	var recorded []string
	if _, err := cred.AttrInto(FieldScopes, &recorded); err != nil || !slices.Equal(recorded, scopes) {
		t.Fatalf("credential scopes %v, want %v", recorded, scopes)
	}
	if cred.Attr(providers.FieldAdminSecretID) != "sendgrid/admin" || cred.Attr(FieldOnBehalfOf) != "subuser-1" || cred.Provider != Name || cred.CreatedAt.IsZero() {
		t.Fatalf("credential %v lost the owner's fields", cred)
	}
	if err := e.p.Verify(context.Background(), cred); err != nil {
		t.Fatal(err)
	}
	for _, ex := range e.rec.Exchanges() {
		if ex.Method == http.MethodPost && ex.Header.Get("On-Behalf-Of") != "subuser-1" {
			t.Fatalf("create sent without the on-behalf-of header")
		}
	}
}

func TestCreateRefusesAFullAccessKey(t *testing.T) {
	e := newEnv(t, options{noContract: true}) // nothing is sent
	owner := providers.Credential{Provider: Name}
	owner, _ = owner.WithAttr(providers.FieldAdminSecretID, "sendgrid/admin")
	_, err := e.p.Create(context.Background(), createReq(owner))
	wantKind(t, err, providers.Invalid)
	if n := e.fake.Count(http.MethodPost, "/v3/api_keys"); n != 0 {
		t.Fatalf("%d create requests, want none", n)
	}
}

func TestVerifyReportsMissingScopes(t *testing.T) {
	e := newEnv(t, options{})
	cred, err := e.p.Create(context.Background(), createReq(e.owner))
	if err != nil {
		t.Fatal(err)
	}
	cred, _ = cred.WithAttr(FieldScopes, []string{"mail.send", "billing.read"})
	err = e.p.Verify(context.Background(), cred)
	wantKind(t, err, providers.Invalid)
	if !strings.Contains(err.Error(), "billing.read") || strings.Contains(err.Error(), cred.Key) {
		t.Fatalf("error %q should name the missing scope and not the key", err)
	}
}

func TestRegion(t *testing.T) {
	p, err := New(Config{Admin: stubAdmin{}})
	if err != nil {
		t.Fatal(err)
	}
	for region, want := range map[string]string{"": DefaultBaseURL, "eu": EUBaseURL, "EU": EUBaseURL} {
		c := providers.Credential{Provider: Name}
		if region != "" {
			c, _ = c.WithAttr(FieldRegion, region)
		}
		got, err := p.client("op", c)
		if err != nil || got.BaseURL() != want {
			t.Errorf("region %q: %v %v, want %s", region, got.BaseURL(), err, want)
		}
	}
	c, _ := providers.Credential{Provider: Name}.WithAttr(FieldRegion, "mars")
	_, err = p.client("sendgrid.Op", c)
	wantKind(t, err, providers.Invalid)

	if _, err := New(Config{Admin: stubAdmin{}, BaseURL: "http://api.sendgrid.com"}); err == nil {
		t.Fatal("plain http to a non-loopback host accepted")
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without an admin reader accepted")
	}
}

func TestPermissionIsNotRetried(t *testing.T) {
	e := newEnv(t, options{})
	e.p.admin = stubAdmin{key: "SG.not.an-admin"}
	_, err := e.p.Create(context.Background(), createReq(e.owner))
	if pe := wantKind(t, err, providers.Permission); pe.Status != 401 || pe.RequestID == "" {
		t.Fatalf("status %d request id %q", pe.Status, pe.RequestID)
	}
	if n := e.fake.Count(http.MethodPost, "/v3/api_keys"); n != 1 {
		t.Fatalf("%d create requests, want 1", n)
	}

	e.fake.Inject(sendgridfake.Fault{Method: http.MethodGet, Path: "/v3/scopes", Status: 403, Body: `{"errors":[{"message":"access forbidden"}]}`})
	err = e.p.Verify(context.Background(), providers.Credential{Provider: Name, Key: adminKey})
	wantKind(t, err, providers.Permission)
	if n := e.fake.Count(http.MethodGet, "/v3/scopes"); n != 1 {
		t.Fatalf("%d verify requests, want 1", n)
	}
}

func TestRevokeOfAMissingKeyIsSuccess(t *testing.T) {
	e := newEnv(t, options{})
	if err := e.p.Revoke(context.Background(), e.owner, "kid-gone"); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.Count(http.MethodDelete, "/v3/api_keys/kid-gone"); n != 1 {
		t.Fatalf("%d delete requests, want 1", n)
	}
}

func TestRetryAfterHonouredOn429(t *testing.T) {
	e := newEnv(t, options{})
	e.fake.Inject(sendgridfake.Fault{Method: http.MethodGet, Path: "/v3/scopes", Status: 429, Header: map[string]string{"Retry-After": "3"}, Body: `{"errors":[{"message":"too many requests"}]}`})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.p.Verify(ctx, providers.Credential{Provider: Name, Key: adminKey}); err != nil {
		t.Fatal(err)
	}
	if w := e.slept.waits(); len(w) != 1 || w[0] != 3*time.Second {
		t.Fatalf("waits %v, want [3s]", w)
	}
	if n := e.fake.Count(http.MethodGet, "/v3/scopes"); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

func TestServerErrorThenSuccessOnAGet(t *testing.T) {
	e := newEnv(t, options{})
	e.fake.Inject(sendgridfake.Fault{Method: http.MethodGet, Path: "/v3/api_keys", Status: 500, Body: `{"errors":[{"message":"internal server error"}]}`})
	if _, err := e.p.ListKeys(context.Background(), e.owner, "keyrotor-"); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.Count(http.MethodGet, "/v3/api_keys"); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

func TestCreateIsNotRetriedAfterAServerError(t *testing.T) {
	e := newEnv(t, options{})
	e.fake.Inject(sendgridfake.Fault{Method: http.MethodPost, Path: "/v3/api_keys", Status: 500, Body: `{"errors":[{"message":"internal server error"}]}`})
	_, err := e.p.Create(context.Background(), createReq(e.owner))
	wantKind(t, err, providers.Transient)
	if n := e.fake.Count(http.MethodPost, "/v3/api_keys"); n != 1 {
		t.Fatalf("%d create requests, want 1: a create must not mint twice", n)
	}
}

func TestTimeoutIsTransient(t *testing.T) {
	e := newEnv(t, options{})
	for range 8 { // more than vendorhttp's attempts
		e.fake.Inject(sendgridfake.Fault{Method: http.MethodGet, Path: "/v3/scopes", Hang: true})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := e.p.Verify(ctx, providers.Credential{Provider: Name, Key: adminKey})
	wantKind(t, err, providers.Transient)
}

func TestMalformedBodyIsNotQuoted(t *testing.T) {
	e := newEnv(t, options{noContract: true}) // the body breaks the spec on purpose
	e.fake.Inject(sendgridfake.Fault{Method: http.MethodPost, Path: "/v3/api_keys", Status: 201, Body: `{"api_key":"SG.leaked.secret","api_key_id":`})
	_, err := e.p.Create(context.Background(), createReq(e.owner))
	wantKind(t, err, providers.Other)
	if strings.Contains(err.Error(), "SG.leaked") {
		t.Fatalf("error %q quotes the body", err)
	}
}

func TestKeyLimitIsAConflictAndDeletesNothing(t *testing.T) {
	e := newEnv(t, options{})
	e.fake.Mu.Lock()
	for len(e.fake.Keys) < MaxKeys {
		e.fake.Add("someone else's key", []string{"mail.send"}, "")
	}
	e.fake.Mu.Unlock()
	_, err := e.p.Create(context.Background(), createReq(e.owner))
	pe := wantKind(t, err, providers.Conflict)
	if pe.Status != 403 || !strings.Contains(err.Error(), "100") {
		t.Fatalf("error %v", err)
	}
	e.fake.Mu.Lock()
	n := len(e.fake.Keys)
	e.fake.Mu.Unlock()
	if n != MaxKeys {
		t.Fatalf("%d keys after the failed create, want %d", n, MaxKeys)
	}
	for _, ex := range e.rec.Exchanges() {
		if ex.Method == http.MethodDelete {
			t.Fatalf("a key was deleted: %s", ex)
		}
	}
}

func TestForbiddenBelowTheLimitStaysPermission(t *testing.T) {
	e := newEnv(t, options{})
	e.fake.Inject(sendgridfake.Fault{Method: http.MethodPost, Path: "/v3/api_keys", Status: 403, Body: `{"errors":[{"message":"access forbidden"}]}`})
	_, err := e.p.Create(context.Background(), createReq(e.owner))
	wantKind(t, err, providers.Permission)
}

func TestGetKeyAcceptsBothShapes(t *testing.T) {
	for _, body := range []string{
		`{"result":[{"api_key_id":"k1","name":"n","scopes":["a"]}]}`,
		`{"api_key_id":"k1","name":"n","scopes":["a"]}`,
	} {
		e := newEnv(t, options{})
		e.fake.Inject(sendgridfake.Fault{Method: http.MethodGet, Path: "/v3/api_keys/k1", Status: 200, Body: body})
		c, auth, h, err := e.p.management(context.Background(), "op", e.owner)
		if err != nil {
			t.Fatal(err)
		}
		k, err := e.p.getKey(context.Background(), c, auth, h, "k1")
		if err != nil || k.ID != "k1" || !slices.Equal(k.Scopes, []string{"a"}) {
			t.Fatalf("body %s: %+v %v", body, k, err)
		}
	}
}

// TestAdminSecretFromMoto reads the admin key from a real Secrets Manager
// (moto) through adminsecret.Reader.
func TestAdminSecretFromMoto(t *testing.T) {
	m := testenv.StartMoto(t, nil)
	sm := secretsmanager.NewFromConfig(m.Config(t))
	ctx := context.Background()
	v, _ := json.Marshal(map[string]string{"key": adminKey})
	if _, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("sendgrid/admin"), SecretString: aws.String(string(v)), Tags: testenv.AdminFor("app/*")}); err != nil {
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
	missing, _ := e.owner.WithAttr(providers.FieldAdminSecretID, "sendgrid/nope")
	_, err = e.p.Create(ctx, createReq(missing))
	wantKind(t, err, providers.Invalid)
}

// TestContract runs a rotation's requests against a fake whose exchanges
// are all validated against sendgrid.yaml (newEnv validates every test's
// exchanges when the spec is present; this test says so when it is not).
func TestContract(t *testing.T) {
	contracttest.Spec(t, "sendgrid.yaml")
	e := newEnv(t, options{})
	ctx := context.Background()
	first, err := e.p.Create(ctx, createReq(e.owner))
	if err != nil {
		t.Fatal(err)
	}
	second, err := e.p.Create(ctx, createReq(first)) // copies first's scopes
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
