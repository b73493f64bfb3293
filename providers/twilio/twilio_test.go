package twilio_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/contracttest"
	"github.com/keyrotor/keyrotor/providers/providertest"
	"github.com/keyrotor/keyrotor/providers/twilio"
	"github.com/keyrotor/keyrotor/providers/vendorfake"
)

const unknownSID = "SK00000000000000000000000000000000"

func TestConformance(t *testing.T) {
	for _, keyType := range []string{twilio.KeyTypeStandard, twilio.KeyTypeRestricted} {
		t.Run(keyType, func(t *testing.T) {
			f := startFake(t)
			providertest.Run(t, providertest.Harness{
				New: func(t *testing.T) (providers.Provider, providers.Credential) {
					return f.setup(t, keyType, nil)
				},
				UnknownKeyID: unknownSID,
			})
			f.checkContract(t)
		})
	}
}

func create(t *testing.T, p *twilio.Provider, owner providers.Credential, token string) providers.Credential {
	t.Helper()
	c, err := p.Create(context.Background(), providers.CreateRequest{SecretName: "app/twilio", KeyName: keyrotor.KeyName(keyrotor.Identity{Name: "app/twilio"}, token), Owner: owner})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return c
}

// TestRestrictedRotationKeepsPolicy rotates a restricted key whose policy
// was changed after bootstrap: the new key gets the old key's policy, not
// the secret's.
func TestRestrictedRotationKeepsPolicy(t *testing.T) {
	f := startFake(t)
	p, owner := f.setup(t, twilio.KeyTypeRestricted, nil)
	first := create(t, p, owner, "t1")
	changed := json.RawMessage(`{"allow":["/twilio/messaging/messages/read","/twilio/voice/calls/create"]}`)
	f.Mu.Lock()
	f.Keys[first.KeyID].Policy = changed
	f.Mu.Unlock()

	second := create(t, p, first, "t2")
	f.Mu.Lock()
	got := string(f.Keys[second.KeyID].Policy)
	f.Mu.Unlock()
	var a, b any
	_ = json.Unmarshal(changed, &a)
	_ = json.Unmarshal([]byte(got), &b)
	if ja, _ := json.Marshal(a); string(ja) != mustJSON(b) {
		t.Fatalf("policy of the new key = %s, want %s", got, changed)
	}
	if second.Attr("account_sid") != owner.Attr("account_sid") || second.Attr("admin_secret_id") == "" {
		t.Fatalf("the new value lost the secret's fields: %v", second)
	}
	if err := p.Verify(context.Background(), second); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	f.checkContract(t)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestRestrictedNeedsAPolicy: a restricted rotation from a key without a
// policy (a standard key) is refused before anything is created.
func TestRestrictedNeedsAPolicy(t *testing.T) {
	f := startFake(t)
	pStd, owner := f.setup(t, twilio.KeyTypeStandard, nil)
	std := create(t, pStd, owner, "t1")
	restricted, err := std.WithAttr("key_type", "restricted")
	if err != nil {
		t.Fatal(err)
	}
	_, err = pStd.Create(context.Background(), providers.CreateRequest{SecretName: "s", KeyName: "k", Owner: restricted})
	if !providers.IsKind(err, providers.Invalid) {
		t.Fatalf("Create = %v, want Invalid", err)
	}
	if n := f.KeyCount(); n != 1 {
		t.Fatalf("%d keys, want 1", n)
	}
}

func TestListFollowsPages(t *testing.T) {
	for _, keyType := range []string{twilio.KeyTypeStandard, twilio.KeyTypeRestricted} {
		t.Run(keyType, func(t *testing.T) {
			f := startFake(t)
			p, owner := f.setup(t, keyType, nil)
			want := map[string]bool{}
			for _, tok := range []string{"a", "b", "c", "d", "e"} {
				want[create(t, p, owner, tok).KeyID] = true
			}
			keys, err := p.ListKeys(context.Background(), owner, keyrotor.KeyNamePrefix(keyrotor.Identity{Name: "app/twilio"}))
			if err != nil {
				t.Fatalf("ListKeys: %v", err)
			}
			if len(keys) != len(want) {
				t.Fatalf("ListKeys returned %d keys, want %d (pages of 2)", len(keys), len(want))
			}
			for _, k := range keys {
				if !want[k.ID] || k.CreatedAt.IsZero() {
					t.Fatalf("unexpected key %+v", k)
				}
			}
			f.checkContract(t)
		})
	}
}

func TestInvalidSecrets(t *testing.T) {
	f := startFake(t)
	p, owner := f.setup(t, twilio.KeyTypeStandard, nil)
	for name, mutate := range map[string]func(providers.Credential) providers.Credential{
		"NoAccount": func(c providers.Credential) providers.Credential { delete(c.Attrs, "account_sid"); return c },
		"BadAccount": func(c providers.Credential) providers.Credential {
			c, _ = c.WithAttr("account_sid", "AC../../x")
			return c
		},
		"BadType": func(c providers.Credential) providers.Credential { c, _ = c.WithAttr("key_type", "main"); return c },
		"NoAdmin": func(c providers.Credential) providers.Credential { delete(c.Attrs, "admin_secret_id"); return c },
	} {
		t.Run(name, func(t *testing.T) {
			c := owner
			c.Attrs = map[string]json.RawMessage{}
			for k, v := range owner.Attrs {
				c.Attrs[k] = v
			}
			_, err := p.Create(context.Background(), providers.CreateRequest{SecretName: "s", KeyName: "k", Owner: mutate(c)})
			if !providers.IsKind(err, providers.Invalid) {
				t.Fatalf("Create = %v, want Invalid", err)
			}
		})
	}
	if err := p.Revoke(context.Background(), owner, "../Balance"); !providers.IsKind(err, providers.Invalid) {
		t.Fatalf("Revoke(bad sid) = %v, want Invalid", err)
	}
	if len(f.rec.Exchanges()) != 0 {
		t.Fatalf("invalid secrets reached the vendor")
	}
}

// fault answers matching requests with status, body and headers, at most
// times times (0 for always), and marks its answers for checkContract.
func is(method, pathSuffix string) func(*http.Request) bool {
	return func(r *http.Request) bool { return r.Method == method && strings.HasSuffix(r.URL.Path, pathSuffix) }
}

func count(f *fakeTwilio, method string) int {
	n := 0
	for _, ex := range f.rec.Exchanges() {
		if ex.Method == method {
			n++
		}
	}
	return n
}

const leakyBody = `{"code":20003,"message":"Authenticate","leak":"SECRETVALUE-in-the-body"}`

func TestFaults(t *testing.T) {
	ctx := context.Background()

	t.Run("PermissionIsNotRetried", func(t *testing.T) {
		for _, status := range []int{401, 403} {
			f := startFake(t)
			p, owner := f.setup(t, twilio.KeyTypeStandard, nil)
			f.Fault = vendorfake.Respond(is("GET", "/Keys.json"), 0, status, leakyBody)
			_, err := p.ListKeys(ctx, owner, "keyrotor-")
			if !providers.IsKind(err, providers.Permission) {
				t.Fatalf("%d: ListKeys = %v, want Permission", status, err)
			}
			if n := len(f.rec.Exchanges()); n != 1 {
				t.Fatalf("%d: %d requests, want 1 (no retry)", status, n)
			}
			if strings.Contains(err.Error(), "SECRETVALUE") {
				t.Fatalf("the error quotes the response body: %v", err)
			}
			var pe *providers.Error
			if !errors.As(err, &pe) || pe.Status != status || !strings.HasPrefix(pe.RequestID, "RQ") {
				t.Fatalf("error %v does not keep the status and the Twilio-Request-Id", err)
			}
			f.checkContract(t)
		}
	})

	t.Run("RevokeOfAGoneKeyIsSuccess", func(t *testing.T) {
		f := startFake(t)
		p, owner := f.setup(t, twilio.KeyTypeStandard, nil)
		if err := p.Revoke(ctx, owner, unknownSID); err != nil {
			t.Fatalf("Revoke = %v, want nil", err)
		}
		if count(f, "DELETE") != 1 {
			t.Fatalf("no DELETE was sent")
		}
		f.checkContract(t)
	})

	t.Run("RateLimitHonoursRetryAfter", func(t *testing.T) {
		f := startFake(t)
		var waits []time.Duration
		p, owner := f.setup(t, twilio.KeyTypeStandard, func(c *twilio.Config) {
			c.HTTP.Sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
		})
		f.Fault = vendorfake.Respond(is("POST", "/Keys.json"), 1, 429, `{"code":20429,"message":"Too Many Requests","more_info":"","status":429}`, "Retry-After", "7")
		c := create(t, p, owner, "t1")
		if len(waits) != 1 || waits[0] != 7*time.Second {
			t.Fatalf("waits %v, want [7s]", waits)
		}
		if count(f, "POST") != 2 || f.KeyCount() != 1 || c.KeyID == "" {
			t.Fatalf("%d POSTs, %d keys: want 2 and 1", count(f, "POST"), f.KeyCount())
		}
		f.checkContract(t)
	})

	t.Run("ServerErrorThenSuccess", func(t *testing.T) {
		f := startFake(t)
		p, owner := f.setup(t, twilio.KeyTypeStandard, nil)
		first := create(t, p, owner, "t1")
		f.Fault = vendorfake.Respond(is("DELETE", ".json"), 1, 503, `{"code":20500,"message":"Service Unavailable","more_info":"","status":503}`)
		if err := p.Revoke(ctx, owner, first.KeyID); err != nil {
			t.Fatalf("Revoke = %v, want success after a retry", err)
		}
		if count(f, "DELETE") != 2 || f.KeyCount() != 0 {
			t.Fatalf("%d DELETEs and %d keys left, want 2 and 0", count(f, "DELETE"), f.KeyCount())
		}
		f.checkContract(t)
	})

	t.Run("TimeoutIsTransient", func(t *testing.T) {
		f := startFake(t)
		p, owner := f.setup(t, twilio.KeyTypeStandard, func(c *twilio.Config) { c.HTTP.AttemptTimeout = 50 * time.Millisecond })
		var posts atomic.Int32
		f.Fault = func(w http.ResponseWriter, r *http.Request) bool {
			posts.Add(1)
			<-r.Context().Done() // hang until the client gives up
			w.Header().Set(contracttest.FaultHeader, "1")
			return true
		}
		_, err := p.Create(ctx, providers.CreateRequest{SecretName: "s", KeyName: "k", Owner: owner})
		if !providers.IsKind(err, providers.Transient) {
			t.Fatalf("Create = %v, want Transient", err)
		}
		if n := posts.Load(); n != 1 {
			t.Fatalf("%d POSTs, want 1: a create is never retried after a timeout", n)
		}
	})

	t.Run("MalformedBody", func(t *testing.T) {
		f := startFake(t)
		p, owner := f.setup(t, twilio.KeyTypeStandard, nil)
		f.Fault = vendorfake.Respond(is("POST", "/Keys.json"), 0, 201, `{"sid":"SK1","secret":"SECRETVALUE`)
		_, err := p.Create(ctx, providers.CreateRequest{SecretName: "s", KeyName: "k", Owner: owner})
		if err == nil || strings.Contains(err.Error(), "SECRETVALUE") {
			t.Fatalf("Create = %v, want an error that does not quote the body", err)
		}
		f.checkContract(t)
	})

	t.Run("KeyLimitIsConflict", func(t *testing.T) {
		f := startFake(t)
		f.MaxKeys = 1
		p, owner := f.setup(t, twilio.KeyTypeStandard, nil)
		first := create(t, p, owner, "t1")
		_, err := p.Create(ctx, providers.CreateRequest{SecretName: "app/twilio", KeyName: keyrotor.KeyName(keyrotor.Identity{Name: "app/twilio"}, "t2"), Owner: first})
		if !providers.IsKind(err, providers.Conflict) {
			t.Fatalf("Create beyond the limit = %v, want Conflict", err)
		}
		if count(f, "DELETE") != 0 || f.KeyCount() != 1 {
			t.Fatalf("a key was deleted")
		}
		f.checkContract(t)
	})
}

func TestMainKeyAsAdmin(t *testing.T) {
	f := startFake(t)
	p, owner := f.setup(t, twilio.KeyTypeStandard, nil)
	// The fake accepts only AccountSid:AuthToken; a main key SID in key_id
	// must become the Basic-auth user, which this fake then refuses.
	sid := owner.Attr("account_sid")
	f.Mu.Lock()
	token := f.Accounts[sid]
	f.Mu.Unlock()
	p2, err := twilio.New(twilio.Config{APIBaseURL: f.srv.URL, IAMBaseURL: f.srv.URL, Admin: adminReader{owner.Attr("admin_secret_id"): {Key: token, KeyID: "SK" + strings.Repeat("1", 32)}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p2.ListKeys(context.Background(), owner, "x"); !providers.IsKind(err, providers.Permission) {
		t.Fatalf("ListKeys with a main key user = %v, want the fake to refuse it", err)
	}
	if _, err := p.ListKeys(context.Background(), owner, "x"); err != nil {
		t.Fatalf("ListKeys with the auth token: %v", err)
	}
}

func TestNewRefusesPlainHTTP(t *testing.T) {
	_, err := twilio.New(twilio.Config{APIBaseURL: "http://api.twilio.com", Admin: adminReader{}})
	if err == nil {
		t.Fatalf("New accepted a plain-http base URL that is not loopback")
	}
}
