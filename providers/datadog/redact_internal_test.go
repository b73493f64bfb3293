package datadog

import (
	"testing"

	"github.com/keyrotor/keyrotor/internal/redacttest"
)

// The vendor's answer carries the key on purpose, so encoding/json is not
// checked: only what a log line or an error would show.
func TestKeyAttributesNeverShowTheKey(t *testing.T) {
	redacttest.HiddenFromLogs(t, keyAttributes{Key: "dd_api_key_secret_value", Name: "keyrotor-prod-dd-1"}, "dd_api_key_secret_value")
}
