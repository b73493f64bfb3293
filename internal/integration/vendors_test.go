package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdkapigateway "github.com/aws/aws-sdk-go-v2/service/apigateway"
	agtypes "github.com/aws/aws-sdk-go-v2/service/apigateway/types"

	"github.com/keyrotor/keyrotor/infra/local"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/cloudflare/cloudflarefake"
	"github.com/keyrotor/keyrotor/providers/contracttest"
	"github.com/keyrotor/keyrotor/providers/datadog/datadogfake"
	"github.com/keyrotor/keyrotor/providers/sendgrid/sendgridfake"
	"github.com/keyrotor/keyrotor/providers/twilio/twiliofake"
	"github.com/keyrotor/keyrotor/revocation"
)

// vendorCase is a fake vendor for one rotation through a compiled function.
type vendorCase struct {
	provider string   // the provider's name, which is also its function's
	specs    []string // the vendor's fragments in ../shared/provider-specs
	handler  http.Handler
	// validate fails the test for every exchange the fragments refuse.
	validate func(testing.TB, []contracttest.Exchange)
	release  func() // ends the fake's hanging requests (nil: none)
	basePath string // appended to the server's URL in <PROVIDER>_API_BASE_URL
	admin    string // the value of the admin secret
	// initial creates the secret's first key at the vendor and returns the
	// secret's value.
	initial func(adminSecretID string) string
	// live returns the secret's keys at the vendor, id → key, management
	// credentials excluded.
	live func() map[string]string
	// secrets are the vendor's management credentials, for the leak check.
	secrets []string
	// use records an application's use of the new key at a vendor that
	// reports last use (nil: it reports none): the revoker waits for use
	// after the rotation finished.
	use func(cur providers.Credential)
}

// requireSpecs skips the test when the vendor's fragments are absent: the
// point of these tests is a rotation that sends only what the spec accepts.
func requireSpecs(t *testing.T, files []string) {
	t.Helper()
	for _, f := range files {
		if _, err := contracttest.Lookup(f); err != nil {
			t.Skipf("%v: this rotation is checked against the vendor's OpenAPI fragment, which needs ../shared/provider-specs", err)
		}
	}
}

// startVendor serves v on 127.0.0.1 behind a contract recorder, until the
// test ends, and returns its base URL.
func startVendor(t *testing.T, v vendorCase) (string, *contracttest.Recorder) {
	t.Helper()
	rec := contracttest.NewRecorder(v.handler)
	srv := httptest.NewServer(rec)
	t.Cleanup(func() {
		if v.release != nil {
			v.release()
		}
		srv.Close()
	})
	return srv.URL + v.basePath, rec
}

// rotateAtVendor is the vendors' "done when": the compiled function
// rotates a secret through moto and the fake vendor, AWSCURRENT ends with
// the new key and AWSPREVIOUS with the old one, both live at the vendor
// during the grace period; one revocation message names the old key; after
// the revoker has run only the new key is left; every request sent (and
// every answer of the fake) is one the vendor's OpenAPI fragment accepts;
// no key, token or admin credential appears in logs or messages.
func rotateAtVendor(t *testing.T, v vendorCase) {
	requireSpecs(t, v.specs)
	s := newStack(t)
	url, rec := startVendor(t, v)
	urlEnv := strings.ToUpper(v.provider) + "_API_BASE_URL=" + url
	fn := s.function(v.provider, urlEnv)
	revoker := s.function("revoker", urlEnv)

	adminID := "keyrotor/admin/" + v.provider
	s.createSecret(adminID, v.admin, map[string]string{"keyrotor:managed": "false", "keyrotor:admin-for": "prod/*"})
	secret := "prod/payments/" + v.provider + "-key"
	s.createSecret(secret, v.initial(adminID), map[string]string{"keyrotor:grace-period": "1s"})
	old := s.read(secret, "AWSCURRENT")
	if old.KeyID == "" || old.Key == "" {
		t.Fatalf("the initial secret has no key: %v", old)
	}

	s.rotate(fn, secret, tok(1))
	st := s.stages(secret)
	if fmt.Sprint(st[tok(1)]) != "[AWSCURRENT]" || len(st) != 2 {
		t.Fatalf("stages %v, want %s AWSCURRENT alone and one AWSPREVIOUS", st, tok(1))
	}
	cur, prev := s.read(secret, "AWSCURRENT"), s.read(secret, "AWSPREVIOUS")
	if prev.KeyID != old.KeyID || prev.Key != old.Key || cur.KeyID == old.KeyID || cur.Key == old.Key || cur.Key == "" {
		t.Fatalf("AWSCURRENT %v, AWSPREVIOUS %v: want a new key and the old one", cur, prev)
	}
	if cur.Provider != v.provider || cur.Attr(providers.FieldAdminSecretID) != adminID {
		t.Fatalf("AWSCURRENT %v lost the secret's provider or admin_secret_id", cur)
	}
	if live := v.live(); len(live) != 2 || live[old.KeyID] != old.Key || live[cur.KeyID] != cur.Key {
		t.Fatalf("during the grace period the vendor holds keys %v, want the old %s and the new %s, both live", slices.Sorted(maps.Keys(live)), old.KeyID, cur.KeyID)
	}

	if v.use != nil {
		v.use(cur)
	}
	msgs := s.messages(3)
	if len(msgs) != 1 {
		t.Fatalf("%d revocation messages, want 1", len(msgs))
	}
	m, err := revocation.Decode(msgs[0].Body)
	if err != nil || m.KeyID != old.KeyID || m.Provider != v.provider || !strings.Contains(m.SecretID, secret) {
		t.Fatalf("message %+v (%v), want the revocation of %s", m, err, old.KeyID)
	}
	if resp := s.deliver(revoker, msgs); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("revoker failed: %v\n%s", resp, revoker.Logs())
	}
	if rest := s.messages(0); len(rest) != 0 {
		t.Fatalf("the revoker deferred or re-queued the revocation: %d messages left\n%s", len(rest), revoker.Logs())
	}
	if live := v.live(); len(live) != 1 || live[cur.KeyID] != cur.Key {
		t.Fatalf("after the revoker the vendor holds keys %v, want only %s", slices.Sorted(maps.Keys(live)), cur.KeyID)
	}

	exchanges := rec.Exchanges()
	if len(exchanges) == 0 {
		t.Fatal("nothing reached the fake vendor: the contract check proves nothing")
	}
	v.validate(t, exchanges)
	assertNoLeaks(t, append([]string{old.Key, cur.Key, rotationTokenFor(tok(1))}, v.secrets...), fn.Logs(), revoker.Logs(), msgs[0].Body)
	assertValidEMF(t, emfLines(fn.Logs()), "StepSucceeded", "RotationSucceeded")
	assertValidEMF(t, emfLines(revoker.Logs()), "RevocationsDone")
	if !t.Failed() {
		t.Logf("%d requests to the fake %s, all accepted by %s", len(exchanges), v.provider, strings.Join(v.specs, ", "))
	}
}

func TestSendgridRotation(t *testing.T) {
	f := sendgridfake.New()
	rotateAtVendor(t, vendorCase{
		provider: "sendgrid",
		specs:    sendgridfake.SpecFiles,
		handler:  f,
		validate: contracttest.Fragments{Files: sendgridfake.SpecFiles}.Validate,
		release:  f.Release,
		admin:    fmt.Sprintf(`{"key":%q}`, sendgridfake.AdminKey),
		initial: func(adminID string) string {
			f.Mu.Lock()
			k := f.Add("payments mail key", []string{"mail.send", "alerts.read"}, "")
			f.Mu.Unlock()
			return fmt.Sprintf(`{"provider":"sendgrid","key":%q,"key_id":%q,"admin_secret_id":%q,"scopes":["mail.send","alerts.read"]}`, k.Value, k.ID, adminID)
		},
		live: func() map[string]string {
			f.Mu.Lock()
			defer f.Mu.Unlock()
			out := map[string]string{}
			for v, k := range f.Keys {
				if v != sendgridfake.AdminKey {
					if !slices.Equal(k.Scopes, []string{"mail.send", "alerts.read"}) {
						t.Errorf("key %s has scopes %v, want the old key's", k.ID, k.Scopes)
					}
					out[k.ID] = v
				}
			}
			return out
		},
		secrets: []string{sendgridfake.AdminKey},
	})
}

// TestTwilioRotation rotates a standard key (REST API 2010-04-01) and a
// restricted key (IAM v1 Keys API, policy copied).
func TestTwilioRotation(t *testing.T) {
	for _, keyType := range []string{"standard", "restricted"} {
		t.Run(keyType, func(t *testing.T) {
			f := twiliofake.New()
			account, authToken := f.Account()
			var policy json.RawMessage
			if keyType == "restricted" {
				policy = json.RawMessage(`{"allow":["/twilio/messaging/messages/read","/twilio/messaging/messages/create"]}`)
			}
			rotateAtVendor(t, vendorCase{
				provider: "twilio",
				specs:    twiliofake.SpecFiles,
				handler:  f,
				validate: twiliofake.Validate,
				admin:    fmt.Sprintf(`{"key":%q}`, authToken),
				initial: func(adminID string) string {
					k := f.AddKey(account, "payments sms key", policy)
					return fmt.Sprintf(`{"provider":"twilio","key":%q,"key_id":%q,"account_sid":%q,"key_type":%q,"admin_secret_id":%q}`, k.Secret, k.SID, account, keyType, adminID)
				},
				live: func() map[string]string {
					f.Mu.Lock()
					defer f.Mu.Unlock()
					out := map[string]string{}
					for _, k := range f.Keys {
						if k.Account != account {
							continue
						}
						if policy != nil && !sameJSON(k.Policy, policy) {
							t.Errorf("key %s has policy %s, want the old key's %s", k.SID, k.Policy, policy)
						}
						out[k.SID] = k.Secret
					}
					return out
				},
				secrets: []string{authToken},
			})
		})
	}
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

func TestDatadogRotation(t *testing.T) {
	f := datadogfake.New()
	rotateAtVendor(t, vendorCase{
		provider: "datadog",
		specs:    datadogfake.SpecFiles,
		handler:  f,
		validate: datadogfake.Validate,
		admin:    fmt.Sprintf(`{"key":%q,"key_id":%q}`, f.AdminAPI, f.AdminApp),
		initial: func(adminID string) string {
			f.Mu.Lock()
			k := f.AddAPIKey("payments agent key")
			k.Category, k.RemoteConfig = "default", true
			f.Mu.Unlock()
			return fmt.Sprintf(`{"provider":"datadog","key":%q,"key_id":%q,"site":"datadoghq.eu","key_kind":"api","admin_secret_id":%q}`, k.Key, k.ID, adminID)
		},
		use: func(cur providers.Credential) {
			f.Mu.Lock()
			defer f.Mu.Unlock()
			now := time.Now().UTC()
			f.APIKeys[cur.KeyID].LastUsed = &now
		},
		live: func() map[string]string {
			f.Mu.Lock()
			defer f.Mu.Unlock()
			out := map[string]string{}
			for id, k := range f.APIKeys {
				if k.Category != "default" || !k.RemoteConfig {
					t.Errorf("API key %s has category %q, remote config %v: want the old key's", id, k.Category, k.RemoteConfig)
				}
				out[id] = k.Key
			}
			return out
		},
		secrets: []string{f.AdminAPI, f.AdminApp},
	})
}

func TestCloudflareRotation(t *testing.T) {
	f := cloudflarefake.New()
	policies := []map[string]any{cloudflarefake.Policy(cloudflarefake.ZoneRead)}
	rotateAtVendor(t, vendorCase{
		provider: "cloudflare",
		specs:    cloudflarefake.SpecFiles,
		handler:  f,
		validate: cloudflarefake.Validate,
		release:  f.Release,
		basePath: "/client/v4",
		admin:    fmt.Sprintf(`{"key":%q}`, cloudflarefake.AdminValue),
		initial: func(adminID string) string {
			f.Mu.Lock()
			tk := f.Add(cloudflarefake.Account, "payments dns token", policies, "")
			tk.ExpiresOn = "2030-01-01T00:00:00Z"
			f.Mu.Unlock()
			return fmt.Sprintf(`{"provider":"cloudflare","key":%q,"key_id":%q,"account_id":%q,"admin_secret_id":%q}`, tk.Value, tk.ID, cloudflarefake.Account, adminID)
		},
		live: func() map[string]string {
			f.Mu.Lock()
			defer f.Mu.Unlock()
			out := map[string]string{}
			for id, tk := range f.Tokens {
				if tk.Value == cloudflarefake.AdminValue {
					continue
				}
				if tk.Account != cloudflarefake.Account || tk.ExpiresOn != "2030-01-01T00:00:00Z" || fmt.Sprint(tk.Policies) != fmt.Sprint(policies) {
					t.Errorf("token %s (account %q, expiry %q, policies %v) is not a copy of the old token", id, tk.Account, tk.ExpiresOn, tk.Policies)
				}
				out[id] = tk.Value
			}
			return out
		},
		secrets: []string{cloudflarefake.AdminValue},
	})
}

// TestAPIGatewayRotation rotates an API Gateway API key end to end against
// moto's API Gateway: the new key joins the old key's usage plans, the
// revoker takes the old key out of them and deletes it. The function's
// APIGATEWAY_CANARY_URL is the local stack's data-plane stand-in, which
// refuses the new key for a while after the management API knows it, as
// API Gateway does: testSecret retries until the data plane accepts the key,
// so the key is AWSCURRENT only once applications can use it.
func TestAPIGatewayRotation(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	ag := sdkapigateway.NewFromConfig(s.moto.Config(t))
	dataPlane := local.NewAPIGatewayDataPlane(ag, time.Second, nil)
	dataPlaneSrv := httptest.NewServer(dataPlane)
	t.Cleanup(dataPlaneSrv.Close)
	fn := s.function("apigateway", "APIGATEWAY_CANARY_URL="+dataPlaneSrv.URL+"/prod/ping")
	revoker := s.function("revoker")
	var plans []string
	for _, name := range []string{"gold", "partners"} {
		p, err := ag.CreateUsagePlan(ctx, &sdkapigateway.CreateUsagePlanInput{Name: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		plans = append(plans, aws.ToString(p.Id))
	}
	k, err := ag.CreateApiKey(ctx, &sdkapigateway.CreateApiKeyInput{Name: aws.String("partner-portal"), Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	oldID, oldValue := aws.ToString(k.Id), aws.ToString(k.Value)
	for _, p := range plans {
		if _, err := ag.CreateUsagePlanKey(ctx, &sdkapigateway.CreateUsagePlanKeyInput{UsagePlanId: aws.String(p), KeyId: aws.String(oldID), KeyType: aws.String("API_KEY")}); err != nil {
			t.Fatal(err)
		}
	}
	planKeys := func(plan string) []string {
		out, err := ag.GetUsagePlanKeys(ctx, &sdkapigateway.GetUsagePlanKeysInput{UsagePlanId: aws.String(plan)})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, k := range out.Items {
			ids = append(ids, aws.ToString(k.Id))
		}
		slices.Sort(ids)
		return ids
	}
	apiKeys := func() map[string]agtypes.ApiKey {
		out, err := ag.GetApiKeys(ctx, &sdkapigateway.GetApiKeysInput{IncludeValues: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]agtypes.ApiKey{}
		for _, k := range out.Items {
			m[aws.ToString(k.Id)] = k
		}
		return m
	}

	const secret = "prod/partner-portal/apigateway-key"
	s.createSecret(secret, fmt.Sprintf(`{"provider":"apigateway","key":%q,"key_id":%q}`, oldValue, oldID), map[string]string{"keyrotor:grace-period": "1s"})
	s.rotate(fn, secret, tok(1))
	if st := s.stages(secret); fmt.Sprint(st[tok(1)]) != "[AWSCURRENT]" || len(st) != 2 {
		t.Fatalf("stages %v, want %s AWSCURRENT alone and one AWSPREVIOUS", st, tok(1))
	}
	cur, prev := s.read(secret, "AWSCURRENT"), s.read(secret, "AWSPREVIOUS")
	if prev.KeyID != oldID || prev.Key != oldValue || cur.KeyID == oldID || cur.Key == "" || cur.Key == oldValue {
		t.Fatalf("AWSCURRENT %v, AWSPREVIOUS %v: want a new key and the old one", cur, prev)
	}
	var recorded []string
	if _, err := cur.AttrInto("usage_plan_ids", &recorded); err != nil || !slices.Equal(recorded, slices.Sorted(slices.Values(plans))) {
		t.Fatalf("AWSCURRENT records usage plans %v (%v), want %v", recorded, err, plans)
	}
	both := []string{oldID, cur.KeyID}
	slices.Sort(both)
	for _, p := range plans {
		if got := planKeys(p); !slices.Equal(got, both) {
			t.Fatalf("during the grace period plan %s holds keys %v, want %v", p, got, both)
		}
	}
	if k := apiKeys()[cur.KeyID]; aws.ToString(k.Value) != cur.Key || !k.Enabled {
		t.Fatal("the new key in API Gateway is not AWSCURRENT's enabled key")
	}
	// The data plane refused the new key first (it always does: its lag
	// starts when it first finds the key usable), and testSecret passed only
	// once it accepted it.
	answers := dataPlane.Answers(cur.KeyID)
	if firstOK := slices.Index(answers, http.StatusOK); len(answers) == 0 || answers[0] != http.StatusForbidden || firstOK < 0 ||
		slices.ContainsFunc(answers[firstOK:], func(s int) bool { return s != http.StatusOK }) {
		t.Fatalf("the data plane answered %v for the new key, want 403s until it accepts it, then 200s\nfunction logs:\n%s", answers, fn.Logs())
	}

	msgs := s.messages(3)
	if len(msgs) != 1 {
		t.Fatalf("%d revocation messages, want 1", len(msgs))
	}
	m, err := revocation.Decode(msgs[0].Body)
	if err != nil || m.KeyID != oldID || m.Provider != "apigateway" {
		t.Fatalf("message %+v (%v)", m, err)
	}
	if resp := s.deliver(revoker, msgs); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("revoker failed: %v\n%s", resp, revoker.Logs())
	}
	if keys := apiKeys(); len(keys) != 1 || aws.ToString(keys[cur.KeyID].Value) != cur.Key {
		t.Fatalf("after the revoker API Gateway holds keys %v, want only %s", slices.Sorted(maps.Keys(keys)), cur.KeyID)
	}
	for _, p := range plans {
		if got := planKeys(p); !slices.Equal(got, []string{cur.KeyID}) {
			t.Fatalf("after the revoker plan %s holds keys %v, want only %s", p, got, cur.KeyID)
		}
	}
	assertNoLeaks(t, []string{oldValue, cur.Key, rotationTokenFor(tok(1))}, fn.Logs(), revoker.Logs(), msgs[0].Body)
	assertValidEMF(t, emfLines(revoker.Logs()), "RevocationsDone")
}

// failureLog records the failures of a check instead of failing the test.
type failureLog struct {
	testing.TB
	failures []string
}

func (e *failureLog) Helper()           {}
func (e *failureLog) Error(args ...any) { e.failures = append(e.failures, fmt.Sprint(args...)) }
func (e *failureLog) Errorf(f string, a ...any) {
	e.failures = append(e.failures, fmt.Sprintf(f, a...))
}
func (e *failureLog) Fatal(args ...any)         { e.Error(args...) }
func (e *failureLog) Fatalf(f string, a ...any) { e.Errorf(f, a...) }

// TestVendorContractCheckCatchesViolations shows that the contract check
// of the rotations above fails on a request the vendor's spec refuses: the
// key list without credentials.
func TestVendorContractCheckCatchesViolations(t *testing.T) {
	twilioFake := twiliofake.New()
	account, _ := twilioFake.Account()
	for _, c := range []struct {
		name     string
		specs    []string
		handler  http.Handler
		validate func(testing.TB, []contracttest.Exchange)
		path     string
	}{
		{"sendgrid", sendgridfake.SpecFiles, sendgridfake.New(), contracttest.Fragments{Files: sendgridfake.SpecFiles}.Validate, "/v3/api_keys"},
		{"twilio", twiliofake.SpecFiles, twilioFake, twiliofake.Validate, "/2010-04-01/Accounts/" + account + "/Keys.json"},
		{"datadog", datadogfake.SpecFiles, datadogfake.New(), datadogfake.Validate, "/api/v2/api_keys"},
		{"cloudflare", cloudflarefake.SpecFiles, cloudflarefake.New(), cloudflarefake.Validate, "/client/v4/user/tokens"},
	} {
		t.Run(c.name, func(t *testing.T) {
			requireSpecs(t, c.specs)
			url, rec := startVendor(t, vendorCase{handler: c.handler})
			resp, err := http.Get(url + c.path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			check := &failureLog{TB: t}
			c.validate(check, rec.Exchanges())
			if len(check.failures) == 0 {
				t.Fatalf("GET %s without credentials passed the contract check", c.path)
			}
			t.Logf("refused as expected: %s", check.failures[0])
		})
	}
}
