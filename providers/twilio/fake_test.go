package twilio_test

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
	"github.com/keyrotor/keyrotor/providers/twilio"
	"github.com/keyrotor/keyrotor/providers/twilio/twiliofake"
)

// fakeTwilio is the fake vendor on 127.0.0.1, with its recorder.
type fakeTwilio struct {
	*twiliofake.Server
	srv *httptest.Server
	rec *contracttest.Recorder
}

func startFake(t *testing.T) *fakeTwilio {
	t.Helper()
	f := &fakeTwilio{Server: twiliofake.New()}
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

// setup is a provider talking to f for a fresh account, and that account's
// secret value (without a key).
func (f *fakeTwilio) setup(t *testing.T, keyType string, opts func(*twilio.Config)) (*twilio.Provider, providers.Credential) {
	t.Helper()
	sid, token := f.Account()
	cfg := twilio.Config{APIBaseURL: f.srv.URL, IAMBaseURL: f.srv.URL, Admin: adminReader{"twilio/admin-" + sid: {Key: token}}}
	cfg.HTTP.Sleep = func(context.Context, time.Duration) error { return nil }
	if opts != nil {
		opts(&cfg)
	}
	p, err := twilio.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v := map[string]any{"provider": "twilio", "account_sid": sid, "key_type": keyType, "admin_secret_id": "twilio/admin-" + sid}
	if keyType == twilio.KeyTypeRestricted {
		v["policy"] = map[string]any{"allow": []string{"/twilio/messaging/messages/read"}}
	}
	b, _ := json.Marshal(v)
	owner, err := providers.ParseSecret(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return p, owner
}

// checkContract validates every exchange recorded so far against Twilio's
// specs; exchanges answered by a fault have their request validated only.
func (f *fakeTwilio) checkContract(t *testing.T) {
	t.Helper()
	t.Run("Contract", func(t *testing.T) {
		for _, spec := range twiliofake.SpecFiles {
			contracttest.Spec(t, spec) // skips when absent
		}
		twiliofake.Validate(t, f.rec.Exchanges())
	})
}
