package inventory

import (
	"fmt"
	"strings"
	"testing"
)

// A schedule whose grace period is at or below the 1h default refresh of
// AWS's caching libraries and External Secrets Operator is warned about,
// with its line, and is still valid: the guide's own example (grace 1h for
// the gateway key) parses without a problem and gets one warning. Keys
// keyrotor does not rotate (Stripe) get none.
func TestGraceWarnings(t *testing.T) {
	inv, err := parseFile(t, "guide.yaml")
	if err != nil {
		t.Fatalf("guide.yaml: %v, want valid", err)
	}
	w := warnings(inv)
	if len(w) != 1 || w[0].Line != 40 || !strings.Contains(w[0].Msg, "grace period 1h") || !strings.Contains(w[0].Msg, "docs/client.md") {
		t.Fatalf("guide.yaml warnings %+v, want one on line 40 (the gateway schedule's grace 1h)", w)
	}

	const file = `api_keys:
  - {name: gw, provider: gateway, environment: prod, vault_path: s/gw, rotation_frequency: 7d}
  - {name: sg, provider: sendgrid, environment: prod, vault_path: s/sg, rotation_frequency: 7d}
  - {name: tw, provider: twilio, environment: prod, vault_path: s/tw, rotation_frequency: 7d}
  - {name: st, provider: stripe, environment: prod, vault_path: s/st, rotation_frequency: 30d}
rotation_schedules:
  - {secret: s/gw, provider: gateway, schedule: "0 3 * * 0", grace_period: %q}
  - {secret: s/sg, provider: sendgrid, schedule: "0 3 * * 0", grace_period: "61m"}
  - {secret: s/tw, provider: twilio, schedule: "0 3 * * 0", grace_period: "30m"}
  - {secret: s/st, provider: stripe, schedule: "0 2 1 * *", grace_period: "1h"}
`
	for _, tc := range []struct {
		grace string
		lines []int
	}{
		{"1h", []int{7, 9}},
		{"2h", []int{9}},
		{"0s", []int{7, 9}},
	} {
		inv, err := Parse("inv.yaml", []byte(fmt.Sprintf(file, tc.grace)))
		if err != nil {
			t.Fatalf("grace %s: %v", tc.grace, err)
		}
		var lines []int
		for _, is := range warnings(inv) {
			lines = append(lines, is.Line)
		}
		if fmt.Sprint(lines) != fmt.Sprint(tc.lines) {
			t.Errorf("gateway grace %s: warnings on lines %v, want %v", tc.grace, lines, tc.lines)
		}
	}
}
