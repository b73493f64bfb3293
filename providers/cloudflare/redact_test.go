package cloudflare

import (
	"testing"

	"github.com/keyrotor/keyrotor/internal/redacttest"
)

// The vendor's answer carries the key on purpose, so encoding/json is not
// checked: only what a log line or an error would show.
func TestTokenNeverShowsItsValue(t *testing.T) {
	redacttest.HiddenFromLogs(t, token{ID: "tok_1", Name: "keyrotor-prod-cf-1", Value: "cf_token_value_secret"}, "cf_token_value_secret")
}
