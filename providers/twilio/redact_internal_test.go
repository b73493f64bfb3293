package twilio

import (
	"testing"

	"github.com/keyrotor/keyrotor/internal/redacttest"
)

// The vendor's answer carries the key on purpose, so encoding/json is not
// checked: only what a log line or an error would show.
func TestKeyNeverShowsItsSecret(t *testing.T) {
	redacttest.HiddenFromLogs(t, key{SID: "SK00000000000000000000000000000001", FriendlyName: "keyrotor-prod-tw-1", Secret: "twilio_secret_value_123"}, "twilio_secret_value_123")
}
