package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/internal/testenv"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
	"github.com/keyrotor/keyrotor/providers/providertest"
)

// TestConformance runs the provider suite against the reference server, with
// the admin token in a real Secrets Manager (moto).
func TestConformance(t *testing.T) {
	moto := testenv.StartMoto(t, nil)
	sm := secretsmanager.NewFromConfig(moto.Config(t))
	var n atomic.Int64
	providertest.Run(t, providertest.Harness{
		New: func(t *testing.T) (providers.Provider, providers.Credential) {
			adminSecret := fmt.Sprintf("gateway/admin-%d", n.Add(1))
			token := "admin-" + randomBase62(20)
			value, _ := json.Marshal(map[string]string{"key": token})
			if _, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
				Name: aws.String(adminSecret), SecretString: aws.String(string(value)), Tags: testenv.AdminFor("app/*"),
			}); err != nil {
				t.Fatalf("create admin secret: %v", err)
			}
			ts := httptest.NewServer(NewServer(ServerOptions{AdminToken: token, MaxKeys: 2, PropagationDelay: 250 * time.Millisecond}))
			t.Cleanup(ts.Close)
			p, err := New(Config{BaseURL: ts.URL, Admin: adminsecret.Reader{SM: sm}})
			if err != nil {
				t.Fatal(err)
			}
			return p, ownerFor(adminSecret)
		},
		MaxKeys:      2,
		UnknownKeyID: "key_doesnotexist0000000",
	})
}

func ownerFor(adminSecretID string) providers.Credential {
	owner, err := providers.Credential{Provider: Name}.WithAttr(providers.FieldAdminSecretID, adminSecretID)
	if err != nil {
		panic(err)
	}
	owner.Secret = testenv.Identity("app/gateway")
	return owner
}

// staticAdmin hands out one admin token, for tests about the gateway alone.
type staticAdmin string

func (a staticAdmin) Read(ctx context.Context, op string, owner providers.Credential) (adminsecret.Credential, error) {
	return adminsecret.Credential{Key: string(a)}, nil
}

type fixture struct {
	server *Server
	faults *FaultInjector
	p      *Provider
	owner  providers.Credential
}

// newFixture serves a reference server behind a FaultInjector on 127.0.0.1.
func newFixture(t *testing.T, opts ServerOptions) fixture {
	t.Helper()
	if opts.AdminToken == "" {
		opts.AdminToken = testAdminToken
	}
	s := NewServer(opts)
	f := NewFaultInjector(s)
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	p, err := New(Config{BaseURL: ts.URL, Admin: staticAdmin(testAdminToken)})
	if err != nil {
		t.Fatal(err)
	}
	return fixture{server: s, faults: f, p: p, owner: ownerFor("gateway/admin")}
}

func (f fixture) create(t *testing.T, name string) providers.Credential {
	t.Helper()
	c, err := f.p.Create(context.Background(), providers.CreateRequest{SecretName: "app", KeyName: name, Owner: f.owner})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return c
}

func asProviderError(t *testing.T, err error) *providers.Error {
	t.Helper()
	var pe *providers.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v is not a *providers.Error", err)
	}
	return pe
}

func TestProviderCreateKeepsOwnerFields(t *testing.T) {
	f := newFixture(t, ServerOptions{})
	c := f.create(t, "keyrotor-app-1")
	if c.Provider != Name || c.Attr(providers.FieldAdminSecretID) != "gateway/admin" || c.CreatedAt.IsZero() {
		t.Fatalf("Create returned %v created at %v, want provider gateway, the owner's admin_secret_id and a creation time", c, c.CreatedAt)
	}
	live := f.server.LiveKeys()
	if len(live) != 1 || live[0].ID != c.KeyID || live[0].Name != "keyrotor-app-1" || live[0].Description != "keyrotor: app" {
		t.Fatalf("server holds %+v, want the one key %s named keyrotor-app-1", live, c.KeyID)
	}
	if err := f.p.Verify(context.Background(), c); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

// TestProviderAdminFaults simulates an admin API outage during rotation: every
// admin call fails with the right Kind while Verify keeps working.
func TestProviderAdminFaults(t *testing.T) {
	for _, c := range []struct {
		fault      Fault
		wantStatus int
	}{
		{FaultUnavailable, http.StatusServiceUnavailable},
		{FaultRateLimited, http.StatusTooManyRequests},
		{FaultHang, 0},
	} {
		t.Run(fmt.Sprint(c.wantStatus), func(t *testing.T) {
			f := newFixture(t, ServerOptions{})
			key := f.create(t, "before-outage")
			f.faults.Set(c.fault)
			calls := map[string]func(ctx context.Context) error{
				"Create": func(ctx context.Context) error {
					_, err := f.p.Create(ctx, providers.CreateRequest{KeyName: "during-outage", Owner: f.owner})
					return err
				},
				"Revoke": func(ctx context.Context) error { return f.p.Revoke(ctx, f.owner, key.KeyID) },
				"ListKeys": func(ctx context.Context) error {
					_, err := f.p.ListKeys(ctx, f.owner, "")
					return err
				},
				"LastUsed": func(ctx context.Context) error {
					_, err := f.p.LastUsed(ctx, f.owner, key.KeyID)
					return err
				},
			}
			for name, call := range calls {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				if c.fault == FaultHang {
					ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
				}
				err := call(ctx)
				cancel()
				if !providers.IsKind(err, providers.Transient) {
					t.Fatalf("%s during the outage: err=%v, want Transient", name, err)
				}
				pe := asProviderError(t, err)
				if pe.Status != c.wantStatus {
					t.Fatalf("%s: Status %d, want %d", name, pe.Status, c.wantStatus)
				}
				if c.fault == FaultHang && !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("%s: err=%v, want it to wrap context.DeadlineExceeded", name, err)
				}
				if c.fault != FaultHang && !strings.HasPrefix(pe.RequestID, "req_") {
					t.Fatalf("%s: RequestID %q, want the gateway's X-Request-Id", name, pe.RequestID)
				}
			}
			if err := f.p.Verify(context.Background(), key); err != nil {
				t.Fatalf("Verify during the admin outage: %v", err)
			}
			if live := f.server.LiveKeys(); len(live) != 1 || live[0].ID != key.KeyID {
				t.Fatalf("the outage changed the keys: %+v", live)
			}
			f.faults.Set(NoFault)
			if err := f.p.Revoke(context.Background(), f.owner, key.KeyID); err != nil {
				t.Fatalf("Revoke after the outage: %v", err)
			}
		})
	}
}

func TestProviderWrongAdminTokenIsPermission(t *testing.T) {
	f := newFixture(t, ServerOptions{AdminToken: "the-real-admin-token"})
	_, err := f.p.Create(context.Background(), providers.CreateRequest{KeyName: "k", Owner: f.owner})
	if !providers.IsKind(err, providers.Permission) {
		t.Fatalf("Create with a wrong admin token: err=%v, want Permission", err)
	}
	if pe := asProviderError(t, err); pe.Op != OpCreateKey || pe.Status != http.StatusUnauthorized || !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("err=%v, want op %s, HTTP 401 and the code unauthorized", err, OpCreateKey)
	}
	if err := f.p.Revoke(context.Background(), f.owner, "key_x"); !providers.IsKind(err, providers.Permission) {
		t.Fatalf("Revoke with a wrong admin token: err=%v, want Permission (not the nil of a 404)", err)
	}
}

func TestProviderRevokeUnknownAndTwice(t *testing.T) {
	f := newFixture(t, ServerOptions{})
	if err := f.p.Revoke(context.Background(), f.owner, "key_unknown"); err != nil {
		t.Fatalf("Revoke(unknown) = %v, want nil", err)
	}
	c := f.create(t, "k")
	for range 2 {
		if err := f.p.Revoke(context.Background(), f.owner, c.KeyID); err != nil {
			t.Fatalf("Revoke = %v, want nil", err)
		}
	}
	if err := f.p.Revoke(context.Background(), f.owner, ""); !providers.IsKind(err, providers.Invalid) {
		t.Fatalf("Revoke(\"\") = %v, want Invalid", err)
	}
}

func TestProviderLastUsed(t *testing.T) {
	clock := newFakeClock()
	f := newFixture(t, ServerOptions{Now: clock.Now})
	c := f.create(t, "k")
	used, err := f.p.LastUsed(context.Background(), f.owner, c.KeyID)
	if err != nil || !used.IsZero() {
		t.Fatalf("LastUsed of an unused key = %v, %v; want the zero time", used, err)
	}
	clock.Advance(90 * time.Second)
	if err := f.p.Verify(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	used, err = f.p.LastUsed(context.Background(), f.owner, c.KeyID)
	if err != nil || !used.Equal(clock.Now()) {
		t.Fatalf("LastUsed = %v, %v; want %v", used, err, clock.Now())
	}
	_, err = f.p.LastUsed(context.Background(), f.owner, "key_unknown")
	if !providers.IsKind(err, providers.NotFound) {
		t.Fatalf("LastUsed(unknown) err=%v, want NotFound", err)
	}
}

func TestProviderVerifyRefusals(t *testing.T) {
	f := newFixture(t, ServerOptions{PropagationDelay: time.Hour})
	c := f.create(t, "k")
	err := f.p.Verify(context.Background(), c)
	if !providers.IsKind(err, providers.Permission) {
		t.Fatalf("Verify before propagation: err=%v, want Permission", err)
	}
	if pe := asProviderError(t, err); pe.Op != OpPing || strings.Contains(err.Error(), c.Key) {
		t.Fatalf("err=%v: want op %s and no key in the text", err, OpPing)
	}
	noKey := c
	noKey.Key = ""
	if err := f.p.Verify(context.Background(), noKey); !providers.IsKind(err, providers.Invalid) {
		t.Fatalf("Verify without a key: err=%v, want Invalid", err)
	}
	if got := f.server.PingCounts(); got.Refused != 1 {
		t.Fatalf("the server saw %d refused pings, want 1 (none for the empty key)", got.Refused)
	}
}

// vendorStub answers every request with one status, headers and body.
func vendorStub(t *testing.T, status int, body string) *Provider {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req_stub")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(ts.Close)
	p, err := New(Config{BaseURL: ts.URL, Admin: staticAdmin(testAdminToken)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProviderStatusKinds(t *testing.T) {
	const canary = "CANARY-vendor-detail"
	for status, want := range map[int]providers.Kind{
		400: providers.Invalid, 401: providers.Permission, 403: providers.Permission,
		404: providers.NotFound, 408: providers.Transient, 409: providers.Conflict,
		418: providers.Other, 422: providers.Invalid, 429: providers.Transient,
		500: providers.Transient, 502: providers.Transient, 503: providers.Transient,
	} {
		p := vendorStub(t, status, `{"error":"some_code","message":"`+canary+`"}`)
		_, err := p.Create(context.Background(), providers.CreateRequest{KeyName: "k", Owner: ownerFor("a")})
		if got := providers.KindOf(err); got != want {
			t.Errorf("HTTP %d: kind %v, want %v (%v)", status, got, want, err)
			continue
		}
		pe := asProviderError(t, err)
		if pe.Status != status || pe.RequestID != "req_stub" || pe.Op != OpCreateKey {
			t.Errorf("HTTP %d: error %+v, want the status, request id req_stub and op %s", status, pe, OpCreateKey)
		}
		if strings.Contains(err.Error(), canary) || !strings.Contains(err.Error(), "some_code") {
			t.Errorf("HTTP %d: error %q must name the code some_code and never the message", status, err)
		}
	}
}

func TestProviderMalformedBodies(t *testing.T) {
	const canary = "CANARY-not-json"
	ctx := context.Background()
	owner := ownerFor("a")
	cases := []struct {
		name   string
		status int
		body   string
		call   func(p *Provider) error
	}{
		{"create not json", 201, "{" + canary, func(p *Provider) error {
			_, err := p.Create(ctx, providers.CreateRequest{KeyName: "k", Owner: owner})
			return err
		}},
		{"create without key", 201, `{"id":"key_1"}`, func(p *Provider) error {
			_, err := p.Create(ctx, providers.CreateRequest{KeyName: "k", Owner: owner})
			return err
		}},
		{"ping not json", 200, canary, func(p *Provider) error {
			return p.Verify(ctx, providers.Credential{Provider: Name, Key: "gw_x", KeyID: "key_1"})
		}},
		{"ping not ok", 200, `{"ok":false}`, func(p *Provider) error {
			return p.Verify(ctx, providers.Credential{Provider: Name, Key: "gw_x", KeyID: "key_1"})
		}},
		{"ping as another key", 200, `{"ok":true,"key_id":"key_2"}`, func(p *Provider) error {
			return p.Verify(ctx, providers.Credential{Provider: Name, Key: "gw_x", KeyID: "key_1"})
		}},
		{"list wrong shape", 200, `{"keys":{"id":"` + canary + `"}}`, func(p *Provider) error {
			_, err := p.ListKeys(ctx, owner, "")
			return err
		}},
		{"last used bad time", 200, `{"id":"key_1","last_used_at":"` + canary + `"}`, func(p *Provider) error {
			_, err := p.LastUsed(ctx, owner, "key_1")
			return err
		}},
		{"error body not json", 500, "<html>" + canary, func(p *Provider) error {
			return p.Revoke(ctx, owner, "key_1")
		}},
		{"error code not a code", 409, `{"error":"` + canary + ` with spaces"}`, func(p *Provider) error {
			_, err := p.Create(ctx, providers.CreateRequest{KeyName: "k", Owner: owner})
			return err
		}},
	}
	for _, c := range cases {
		err := c.call(vendorStub(t, c.status, c.body))
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		asProviderError(t, err)
		if strings.Contains(err.Error(), canary) {
			t.Errorf("%s: the error quotes the response body: %v", c.name, err)
		}
	}
}

func TestProviderListFiltersPrefix(t *testing.T) {
	// A gateway that ignores name_prefix must not make the caller see (and
	// revoke) another secret's keys.
	p := vendorStub(t, 200, `{"keys":[
		{"id":"key_1","name":"keyrotor-app-1","created_at":"2026-11-25T17:00:00Z","last_used_at":null},
		{"id":"key_2","name":"keyrotor-other-1","created_at":"2026-11-25T17:00:00Z","last_used_at":null}]}`)
	keys, err := p.ListKeys(context.Background(), ownerFor("a"), "keyrotor-app-")
	if err != nil {
		t.Fatal(err)
	}
	want := providers.KeyInfo{ID: "key_1", Name: "keyrotor-app-1", CreatedAt: time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC)}
	if len(keys) != 1 || keys[0] != want {
		t.Fatalf("ListKeys = %+v, want only %+v", keys, want)
	}
}

func TestProviderSendsPrefixAndEscapesIDs(t *testing.T) {
	var got []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Method+" "+r.URL.EscapedPath()+"?"+r.URL.RawQuery+" "+r.Header.Get("Authorization"))
		w.WriteHeader(http.StatusNotFound)
	}))
	t.Cleanup(ts.Close)
	p, err := New(Config{BaseURL: ts.URL + "/gw/", Admin: staticAdmin("adm")})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = p.ListKeys(context.Background(), ownerFor("a"), "keyrotor-a b&c-")
	_ = p.Revoke(context.Background(), ownerFor("a"), "key/../x")
	want := []string{
		"GET /gw/v1/keys?name_prefix=keyrotor-a+b%26c- Bearer adm",
		"DELETE /gw/v1/keys/key%2F..%2Fx? Bearer adm",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestProviderRefusesRedirects: a gateway that redirects (to a second
// loopback server, on another port, where net/http would keep the
// Authorization header) never gets the admin token, nor a key being
// verified, sent there, with the default HTTP client or a caller's. The
// redirect is an error of the call.
func TestProviderRefusesRedirects(t *testing.T) {
	var mu sync.Mutex
	var elsewhere []string // the requests the other server received
	tokens := 0            // how many of them carried the admin token
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		elsewhere = append(elsewhere, r.Method+" "+r.URL.Path)
		if strings.Contains(r.Header.Get("Authorization"), testAdminToken) {
			tokens++
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(other.Close)
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirecting.Close)

	for name, hc := range map[string]*http.Client{"DefaultClient": nil, "CallersClient": {Timeout: time.Minute}} {
		t.Run(name, func(t *testing.T) {
			mu.Lock()
			elsewhere, tokens = nil, 0
			mu.Unlock()
			p, err := New(Config{BaseURL: redirecting.URL, HTTPClient: hc, Admin: staticAdmin(testAdminToken)})
			if err != nil {
				t.Fatal(err)
			}
			owner := ownerFor("gateway/admin")
			ctx := context.Background()
			calls := map[string]func() error{
				"Create": func() error {
					_, err := p.Create(ctx, providers.CreateRequest{KeyName: "k", Owner: owner})
					return err
				},
				"Revoke": func() error { return p.Revoke(ctx, owner, "key_x") },
				"ListKeys": func() error {
					_, err := p.ListKeys(ctx, owner, "")
					return err
				},
				"LastUsed": func() error {
					_, err := p.LastUsed(ctx, owner, "key_x")
					return err
				},
				"Verify": func() error { return p.Verify(ctx, providers.Credential{Provider: Name, Key: "gw_k", KeyID: "key_x"}) },
			}
			for call, fn := range calls {
				err := fn()
				if err == nil {
					t.Errorf("%s through a redirect succeeded, want an error", call)
				} else if pe := asProviderError(t, err); pe.Status != http.StatusTemporaryRedirect {
					t.Errorf("%s: Status %d, want the 307", call, pe.Status)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if tokens != 0 || len(elsewhere) != 0 {
				t.Fatalf("the host redirected to received %q, %d of them with the admin token; want no request", elsewhere, tokens)
			}
			if hc != nil && hc.CheckRedirect != nil {
				t.Fatal("New changed the caller's http.Client")
			}
		})
	}
}

func TestProviderAdminReadErrorPassesThrough(t *testing.T) {
	p, err := New(Config{BaseURL: "https://gateway.invalid", Admin: adminsecret.Reader{}})
	if err != nil {
		t.Fatal(err)
	}
	// No admin_secret_id: the reader refuses before any call is made.
	_, err = p.Create(context.Background(), providers.CreateRequest{KeyName: "k", Owner: providers.Credential{Provider: Name}})
	if !providers.IsKind(err, providers.Invalid) || !strings.Contains(err.Error(), providers.FieldAdminSecretID) {
		t.Fatalf("Create without admin_secret_id: err=%v, want Invalid naming the field", err)
	}
}

func TestNewChecksConfig(t *testing.T) {
	for url, ok := range map[string]bool{
		"https://gateway.internal":     true,
		"https://gateway.internal/api": true,
		"http://127.0.0.1:8080":        true,
		"http://127.1.2.3":             true,
		"http://[::1]:8080/":           true,
		"http://localhost:9000":        true,
		"http://LOCALHOST":             true,
		"http://gateway.internal":      false,
		"http://10.0.0.1:8080":         false,
		"http://localhost.evil.com":    false,
		"http://[::ffff:10.0.0.1]":     false,
		"ftp://127.0.0.1":              false,
		"127.0.0.1:8080":               false,
		"":                             false,
		"https://u:p@gateway.internal": false,
		"https://gateway.internal?x=1": false,
	} {
		_, err := New(Config{BaseURL: url, Admin: staticAdmin("a")})
		if (err == nil) != ok {
			t.Errorf("New(BaseURL %q): err=%v, want ok=%v", url, err, ok)
		}
		if err != nil && strings.Contains(err.Error(), ":p@") {
			t.Errorf("New(BaseURL %q): the error shows the password: %v", url, err)
		}
	}
	if _, err := New(Config{BaseURL: "https://gateway.internal"}); err == nil {
		t.Error("New without an admin reader succeeded")
	}
	p, err := New(Config{BaseURL: "https://gateway.internal", Admin: staticAdmin("a")})
	if err != nil || p.hc.Timeout != DefaultTimeout || p.Name() != "gateway" {
		t.Fatalf("New defaults: %v, timeout %v, name %q", err, p.hc.Timeout, p.Name())
	}
}
