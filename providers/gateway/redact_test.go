package gateway

import (
	"net/http"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/internal/redacttest"
)

func TestCreatedKeyNeverShowsTheKey(t *testing.T) {
	s := NewServer(ServerOptions{AdminToken: testAdminToken})
	k, err := s.CreateKey("keyrotor-prod-app-1", "keyrotor: prod/app")
	if err != nil {
		t.Fatal(err)
	}
	redacttest.Hidden(t, k, k.Key)
	// The POST /v1/keys answer is the one place the key must appear.
	rec := serve(s, http.MethodPost, "/v1/keys", testAdminToken, `{"name":"keyrotor-prod-app-2"}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST /v1/keys: HTTP %d", rec.Code)
	}
	got := decode[createdBody](t, rec)
	if got.Key == "" {
		t.Fatal("the create answer does not return the new key to its caller")
	}
	if ping := serve(s, http.MethodGet, "/v1/ping", got.Key, ""); ping.Code != http.StatusOK {
		t.Fatalf("the key the create answer returned is refused by /v1/ping: HTTP %d", ping.Code)
	}
}

func TestServerOptionsNeverShowTheAdminToken(t *testing.T) {
	redacttest.Hidden(t, ServerOptions{AdminToken: "gw_admin_token_secret", MaxKeys: 3, PropagationDelay: time.Second}, "gw_admin_token_secret")
}

func TestServerNeverShowsItsAdminToken(t *testing.T) {
	s := NewServer(ServerOptions{AdminToken: "gw_admin_token_secret"})
	if _, err := s.CreateKey("k", ""); err != nil {
		t.Fatal(err)
	}
	redacttest.Hidden(t, s, "gw_admin_token_secret")
}
