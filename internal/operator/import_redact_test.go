package operator

import (
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/internal/redacttest"
)

func TestImportOptionsNeverShowTheKey(t *testing.T) {
	opts := ImportOptions{Key: "sk_live_rolledbyhand123", KeyID: "key_2", OldKeyExpiresAt: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	redacttest.Hidden(t, opts, opts.Key)
}
