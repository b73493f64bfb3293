package sendgrid

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
	"github.com/keyrotor/keyrotor/providers/contracttest"
	"github.com/keyrotor/keyrotor/providers/sendgrid/sendgridfake"
)

// adminKey is the fake's management key.
const adminKey = sendgridfake.AdminKey

// stubAdmin is a fake adminsecret reader over one key.
type stubAdmin struct{ key string }

func (s stubAdmin) Read(_ context.Context, op string, owner providers.Credential) (adminsecret.Credential, error) {
	if _, err := owner.RequireAttr(op, providers.FieldAdminSecretID); err != nil {
		return adminsecret.Credential{}, err
	}
	return adminsecret.Credential{Key: s.key}, nil
}

// env is a provider talking to a fake over HTTP, with its recorder.
type env struct {
	p     *Provider
	fake  *sendgridfake.Server
	rec   *contracttest.Recorder
	srv   *httptest.Server
	owner providers.Credential
	slept *sleepLog
}

// sleepLog records the waits the provider asked for, without waiting.
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

type options struct {
	noContract bool // for tests whose fake deliberately breaks the spec
}

// newEnv starts a fake SendGrid on 127.0.0.1 and a provider for it. Unless
// o.noContract, every exchange of the test is validated against
// sendgrid.yaml when the test ends.
func newEnv(t *testing.T, o options) *env {
	t.Helper()
	spec := ""
	if !o.noContract {
		var err error
		if spec, err = contracttest.Lookup(sendgridfake.SpecFiles[0]); err != nil {
			t.Logf("%v: requests are not checked against the vendor's spec (TestContract skips)", err)
		}
	}
	fake := sendgridfake.New()
	rec := contracttest.NewRecorder(fake)
	srv := httptest.NewServer(rec)
	t.Cleanup(func() {
		fake.Release()
		srv.Close()
		if spec != "" {
			contracttest.Fragments{Files: sendgridfake.SpecFiles}.Validate(t, rec.Exchanges())
		}
	})
	slept := &sleepLog{}
	cfg := Config{BaseURL: srv.URL, Admin: stubAdmin{key: adminKey}}
	cfg.HTTP.Sleep = slept.sleep
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	owner := providers.Credential{Provider: Name}
	owner, _ = owner.WithAttr(providers.FieldAdminSecretID, "sendgrid/admin")
	owner, _ = owner.WithAttr(FieldScopes, []string{"mail.send"})
	return &env{p: p, fake: fake, rec: rec, srv: srv, owner: owner, slept: slept}
}
