package datadog_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/contracttest"
	"github.com/keyrotor/keyrotor/providers/datadog"
	"github.com/keyrotor/keyrotor/providers/providertest"
	"github.com/keyrotor/keyrotor/providers/vendorfake"
	"github.com/keyrotor/keyrotor/providers/vendorhttp"
)

var variants = map[string]map[string]any{
	"APIKey":                   {"key_kind": "api"},
	"ApplicationKey":           {"key_kind": "application"},
	"ServiceAccountAppKey":     {"key_kind": "application", "service_account_id": "00000000-0000-0000-0000-00000000000a"},
	"ScopedApplicationKey":     {"key_kind": "application", "scopes": []string{"user_app_keys", "dashboards_read"}},
	"DefaultKindOnDefaultSite": {"site": nil},
}

func TestConformance(t *testing.T) {
	for name, attrs := range variants {
		t.Run(name, func(t *testing.T) {
			f := startFake(t)
			providertest.Run(t, providertest.Harness{
				New: func(t *testing.T) (providers.Provider, providers.Credential) {
					return f.setup(t, attrs, nil)
				},
				UnknownKeyID: "00000000-dead-beef-0000-000000000000",
			})
			f.checkContract(t)
		})
	}
}

func create(t *testing.T, p *datadog.Provider, owner providers.Credential, token string) providers.Credential {
	t.Helper()
	c, err := p.Create(context.Background(), providers.CreateRequest{SecretName: "app/dd", KeyName: keyrotor.KeyName(keyrotor.Identity{Name: "app/dd"}, token), Owner: owner})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return c
}

func TestRotationCopiesSettings(t *testing.T) {
	t.Run("APIKey", func(t *testing.T) {
		f := startFake(t)
		p, owner := f.setup(t, variants["APIKey"], nil)
		first := create(t, p, owner, "t1")
		f.Mu.Lock()
		f.APIKeys[first.KeyID].Category, f.APIKeys[first.KeyID].RemoteConfig = "default", true
		f.Mu.Unlock()
		second := create(t, p, first, "t2")
		f.Mu.Lock()
		k := f.APIKeys[second.KeyID]
		f.Mu.Unlock()
		if k.Category != "default" || !k.RemoteConfig {
			t.Fatalf("new key has category %q and remote config %v, want the old key's", k.Category, k.RemoteConfig)
		}
		f.checkContract(t)
	})
	t.Run("ApplicationKey", func(t *testing.T) {
		f := startFake(t)
		p, owner := f.setup(t, variants["ApplicationKey"], nil)
		first := create(t, p, owner, "t1")
		f.Mu.Lock()
		f.AppKeys[first.KeyID].Scopes = []string{"user_app_keys", "metrics_read"}
		f.Mu.Unlock()
		second := create(t, p, first, "t2")
		f.Mu.Lock()
		k := f.AppKeys[second.KeyID]
		f.Mu.Unlock()
		if !slices.Equal(k.Scopes, []string{"user_app_keys", "metrics_read"}) {
			t.Fatalf("new key has scopes %v, want the old key's", k.Scopes)
		}
		if err := p.Verify(context.Background(), second); err != nil {
			t.Fatalf("Verify: %v", err)
		}
		f.checkContract(t)
	})
	t.Run("MissingCurrentAppKeyIsAnError", func(t *testing.T) {
		// Without the old key's scopes, a new key would get all of its
		// user's rights: refuse.
		f := startFake(t)
		p, owner := f.setup(t, variants["ApplicationKey"], nil)
		owner.KeyID = "00000000-dead-beef-0000-000000000000"
		_, err := p.Create(context.Background(), providers.CreateRequest{SecretName: "s", KeyName: "k", Owner: owner})
		if !providers.IsKind(err, providers.NotFound) || f.KeyCount() != 0 {
			t.Fatalf("Create = %v with %d keys, want NotFound and no key", err, f.KeyCount())
		}
	})
}

func TestLastUsed(t *testing.T) {
	f := startFake(t)
	p, owner := f.setup(t, variants["APIKey"], nil)
	k := create(t, p, owner, "t1")
	used, err := p.LastUsed(context.Background(), owner, k.KeyID)
	if err != nil || !used.IsZero() {
		t.Fatalf("LastUsed of an unused key = %v, %v; want zero", used, err)
	}
	before := time.Now().Add(-time.Second)
	if err := p.Verify(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	used, err = p.LastUsed(context.Background(), owner, k.KeyID)
	if err != nil || used.Before(before) {
		t.Fatalf("LastUsed after use = %v, %v", used, err)
	}
}

func TestSites(t *testing.T) {
	var hosts []string
	p, err := datadog.New(datadog.Config{Admin: adminReader{}, HTTP: noNetwork(&hosts)})
	if err != nil {
		t.Fatal(err)
	}
	for _, site := range []string{"datadoghq.com", "us3.datadoghq.com", "us5.datadoghq.com", "datadoghq.eu", "ap1.datadoghq.com", "ddog-gov.com"} {
		c, _ := providers.ParseSecret(`{"provider":"datadog","key":"k","key_id":"id","site":"` + site + `"}`)
		_ = p.Verify(context.Background(), c)
		if got := hosts[len(hosts)-1]; got != "https://api."+site+"/api/v1/validate" {
			t.Fatalf("site %s: request to %s", site, got)
		}
	}
	c, _ := providers.ParseSecret(`{"provider":"datadog","key":"k","key_id":"id","site":"evil.example.com"}`)
	n := len(hosts)
	if err := p.Verify(context.Background(), c); !providers.IsKind(err, providers.Invalid) || len(hosts) != n {
		t.Fatalf("Verify on an unknown site = %v after %d requests, want Invalid and none", err, len(hosts)-n)
	}
}

// noNetwork is an HTTP client that records the URLs it is asked for and
// answers 403 without any network.
func noNetwork(urls *[]string) (o vendorhttp.Options) {
	o.HTTPClient = &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
		*urls = append(*urls, r.URL.String())
		return &http.Response{StatusCode: 403, Body: http.NoBody, Header: http.Header{}, Request: r}, nil
	})}
	return o
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// fault answers matching requests with status and body, at most times
// times (0 for always), and marks its answers for checkContract.
func is(method, path string) func(*http.Request) bool {
	return func(r *http.Request) bool { return r.Method == method && strings.HasPrefix(r.URL.Path, path) }
}

func count(f *fakeDatadog, method string) int {
	n := 0
	for _, ex := range f.rec.Exchanges() {
		if ex.Method == method {
			n++
		}
	}
	return n
}

func TestFaults(t *testing.T) {
	ctx := context.Background()

	t.Run("PermissionIsNotRetried", func(t *testing.T) {
		for _, status := range []int{401, 403} {
			f := startFake(t)
			p, owner := f.setup(t, variants["APIKey"], nil)
			f.Fault = vendorfake.Respond(is("GET", "/api/v2/api_keys"), 0, status, `{"errors":["Forbidden SECRETVALUE"]}`)
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
			f.checkContract(t)
		}
	})

	t.Run("RevokeOfAGoneKeyIsSuccess", func(t *testing.T) {
		for name, attrs := range variants {
			f := startFake(t)
			p, owner := f.setup(t, attrs, nil)
			if err := p.Revoke(ctx, owner, "00000000-dead-beef-0000-000000000000"); err != nil {
				t.Fatalf("%s: Revoke = %v, want nil", name, err)
			}
			if count(f, "DELETE") != 1 {
				t.Fatalf("%s: no DELETE was sent", name)
			}
			f.checkContract(t)
		}
	})

	t.Run("RateLimitHonoursRetryAfter", func(t *testing.T) {
		f := startFake(t)
		var waits []time.Duration
		p, owner := f.setup(t, variants["APIKey"], func(c *datadog.Config) {
			c.HTTP.Sleep = func(_ context.Context, d time.Duration) error { waits = append(waits, d); return nil }
		})
		f.Fault = vendorfake.Respond(is("POST", "/api/v2/api_keys"), 1, 429, `{"errors":["Too many requests"]}`, "Retry-After", "3")
		c := create(t, p, owner, "t1")
		if len(waits) != 1 || waits[0] != 3*time.Second {
			t.Fatalf("waits %v, want [3s]", waits)
		}
		if count(f, "POST") != 2 || f.KeyCount() != 1 || c.KeyID == "" {
			t.Fatalf("%d POSTs, %d keys: want 2 and 1", count(f, "POST"), f.KeyCount())
		}
		f.checkContract(t)
	})

	t.Run("ServerErrorThenSuccess", func(t *testing.T) {
		f := startFake(t)
		p, owner := f.setup(t, variants["APIKey"], nil)
		k := create(t, p, owner, "t1")
		f.Fault = vendorfake.Respond(is("GET", "/api/v1/validate"), 1, 502, `{"errors":["Bad Gateway"]}`)
		if err := p.Verify(ctx, k); err != nil {
			t.Fatalf("Verify = %v, want success after a retry", err)
		}
		if count(f, "GET") != 3 { // count before create, two validates
			t.Fatalf("%d GETs, want 3", count(f, "GET"))
		}
		f.checkContract(t)
	})

	t.Run("TimeoutIsTransient", func(t *testing.T) {
		f := startFake(t)
		p, owner := f.setup(t, variants["APIKey"], func(c *datadog.Config) { c.HTTP.AttemptTimeout = 50 * time.Millisecond })
		var posts atomic.Int32
		f.Fault = func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodPost {
				return false
			}
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
		p, owner := f.setup(t, variants["APIKey"], nil)
		f.Fault = vendorfake.Respond(is("POST", "/api/v2/api_keys"), 0, 201, `{"data":{"id":"x","attributes":{"key":"SECRETVALUE`)
		_, err := p.Create(ctx, providers.CreateRequest{SecretName: "s", KeyName: "k", Owner: owner})
		if err == nil || strings.Contains(err.Error(), "SECRETVALUE") {
			t.Fatalf("Create = %v, want an error that does not quote the body", err)
		}
		f.checkContract(t)
	})

	t.Run("KeyLimitIsConflict", func(t *testing.T) {
		for _, name := range []string{"APIKey", "ApplicationKey"} {
			f := startFake(t)
			f.MaxKeys = 1
			p, owner := f.setup(t, variants[name], nil)
			first := create(t, p, owner, "t1")
			_, err := p.Create(ctx, providers.CreateRequest{SecretName: "app/dd", KeyName: keyrotor.KeyName(keyrotor.Identity{Name: "app/dd"}, "t2"), Owner: first})
			if !providers.IsKind(err, providers.Conflict) {
				t.Fatalf("%s: Create beyond the limit = %v, want Conflict", name, err)
			}
			if count(f, "DELETE") != 0 || count(f, "POST") != 1 || f.KeyCount() != 1 {
				t.Fatalf("%s: %d DELETEs, %d POSTs, %d keys: want 0, 1, 1", name, count(f, "DELETE"), count(f, "POST"), f.KeyCount())
			}
			f.checkContract(t)
		}
	})
}
