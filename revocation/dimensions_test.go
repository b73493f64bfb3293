package revocation_test

import (
	"strings"
	"testing"
	"time"
)

// TestProviderDimensionStaysBounded: a message naming a provider this
// revoker does not have is counted under Provider "unknown", never under
// the name the message carries.
func TestProviderDimensionStaysBounded(t *testing.T) {
	e := newEnv(t, false)
	m := e.msg(e.now.Add(-2 * time.Second))
	m.Provider = "made-up-provider-0123456789"
	if resp := e.handle(m); len(resp.BatchItemFailures) != 1 {
		t.Fatalf("response %v, want the message failed", resp)
	}
	out := e.emf.String()
	if !strings.Contains(out, `"RevocationsFailed":1`) || !strings.Contains(out, `"Provider":"unknown"`) || strings.Contains(out, "made-up-provider") {
		t.Fatalf("EMF %s: want RevocationsFailed under Provider unknown", out)
	}
}
