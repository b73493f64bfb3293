package cloudflare

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
	"github.com/keyrotor/keyrotor/providers/cloudflare/cloudflarefake"
	"github.com/keyrotor/keyrotor/providers/contracttest"
)

// The fake's names, short.
const (
	zoneRead   = cloudflarefake.ZoneRead
	adminValue = cloudflarefake.AdminValue
	account    = cloudflarefake.Account
)

var policyJSON = cloudflarefake.Policy

type stubAdmin struct{ key string }

func (s stubAdmin) Read(_ context.Context, op string, owner providers.Credential) (adminsecret.Credential, error) {
	if _, err := owner.RequireAttr(op, providers.FieldAdminSecretID); err != nil {
		return adminsecret.Credential{}, err
	}
	return adminsecret.Credential{Key: s.key}, nil
}

type sleepLog struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleepLog) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepLog) waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

type env struct {
	p     *Provider
	fake  *cloudflarefake.Server
	rec   *contracttest.Recorder
	owner providers.Credential
	slept *sleepLog
}

type options struct {
	noContract bool
	account    bool // account-owned tokens
}

func newEnv(t *testing.T, o options) *env {
	t.Helper()
	spec := ""
	if !o.noContract {
		var err error
		if spec, err = contracttest.Lookup(cloudflarefake.SpecFiles[0]); err != nil {
			t.Logf("%v: requests are not checked against the vendor's spec (TestContract skips)", err)
		}
	}
	fake := cloudflarefake.New()
	rec := contracttest.NewRecorder(fake)
	srv := httptest.NewServer(rec)
	t.Cleanup(func() {
		fake.Release()
		srv.Close()
		if spec != "" {
			cloudflarefake.Validate(t, rec.Exchanges())
		} else {
			cloudflarefake.NoRolls(t, rec.Exchanges())
		}
	})
	slept := &sleepLog{}
	cfg := Config{BaseURL: srv.URL + "/client/v4", Admin: stubAdmin{key: adminValue}}
	cfg.HTTP.Sleep = slept.sleep
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	owner := providers.Credential{Provider: Name}
	owner, _ = owner.WithAttr(providers.FieldAdminSecretID, "cloudflare/admin")
	owner, _ = owner.WithAttr(FieldPolicies, []map[string]any{policyJSON(zoneRead)})
	if o.account {
		owner, _ = owner.WithAttr(FieldAccountID, account)
	}
	return &env{p: p, fake: fake, rec: rec, owner: owner, slept: slept}
}
