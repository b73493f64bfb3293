package datadog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
	"github.com/keyrotor/keyrotor/providers/contracttest"
	"github.com/keyrotor/keyrotor/providers/datadog"
	"github.com/keyrotor/keyrotor/providers/datadog/datadogfake"
)

// fakeDatadog is the fake vendor on 127.0.0.1, with its recorder.
type fakeDatadog struct {
	*datadogfake.Server
	srv *httptest.Server
	rec *contracttest.Recorder
}

func startFake(t *testing.T) *fakeDatadog {
	t.Helper()
	f := &fakeDatadog{Server: datadogfake.New()}
	f.rec = contracttest.NewRecorder(f.Server)
	f.srv = httptest.NewServer(f.rec)
	t.Cleanup(f.srv.Close)
	return f
}

// adminReader is a fixed management credential per admin secret id.
type adminReader map[string]adminsecret.Credential

func (a adminReader) Read(_ context.Context, op string, owner providers.Credential) (adminsecret.Credential, error) {
	id, err := owner.RequireAttr(op, providers.FieldAdminSecretID)
	if err != nil {
		return adminsecret.Credential{}, err
	}
	c, ok := a[id]
	if !ok {
		return adminsecret.Credential{}, providers.E(op, providers.Invalid, fmt.Errorf("admin secret %s does not exist", id))
	}
	return c, nil
}

// setup returns a provider talking to f and a secret value without a key
// for the given key kind (and service account, for application keys).
func (f *fakeDatadog) setup(t *testing.T, attrs map[string]any, opts func(*datadog.Config)) (*datadog.Provider, providers.Credential) {
	t.Helper()
	cfg := datadog.Config{BaseURL: f.srv.URL, Admin: adminReader{"datadog/admin": {Key: f.AdminAPI, KeyID: f.AdminApp}}}
	cfg.HTTP.Sleep = func(context.Context, time.Duration) error { return nil }
	if opts != nil {
		opts(&cfg)
	}
	p, err := datadog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v := map[string]any{"provider": "datadog", "site": "datadoghq.eu", "admin_secret_id": "datadog/admin"}
	for k, a := range attrs {
		v[k] = a
	}
	b, _ := json.Marshal(v)
	owner, err := providers.ParseSecret(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return p, owner
}

// checkContract validates every exchange recorded so far against Datadog's
// specs; exchanges answered by a fault have their request validated only.
func (f *fakeDatadog) checkContract(t *testing.T) {
	t.Helper()
	t.Run("Contract", func(t *testing.T) {
		for _, spec := range datadogfake.SpecFiles {
			contracttest.Spec(t, spec) // skips when absent
		}
		datadogfake.Validate(t, f.rec.Exchanges())
	})
}
