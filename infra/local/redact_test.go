package local

import (
	"testing"

	"github.com/keyrotor/keyrotor/internal/redacttest"
)

func TestKeyVersionNeverShowsTheKey(t *testing.T) {
	redacttest.Hidden(t, KeyVersion{VersionID: "0123456789abcdef", KeyID: "key_1", Key: "gw_secretsecretsecret"}, "gw_secretsecretsecret")
}

func TestStackNeverShowsTheAdminToken(t *testing.T) {
	redacttest.Hidden(t, &Stack{Endpoint: "http://127.0.0.1:1", GatewayURL: "http://127.0.0.1:2", adminToken: "gw_admin_token_secret"}, "gw_admin_token_secret")
}
