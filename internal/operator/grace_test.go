package operator

import (
	"context"
	"strings"
	"testing"

	"github.com/keyrotor/keyrotor/audit"
	"github.com/keyrotor/keyrotor/rotation"
)

// Status falls back to the built-in 2h when the rotation function sets no
// GRACE_PERIOD, and warns (never a problem, so never exit 3) when a
// secret's grace period is at or below the 1h default refresh of AWS's
// caching libraries and External Secrets Operator; a manual key (rotated by
// hand, no grace period of keyrotor's) gets no such warning.
func TestStatusWarnsOfAGraceWithoutMargin(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fnEnv  map[string]string
		tag    string
		manual bool
		grace  int64
		warn   bool
	}{
		{"FunctionDefault", map[string]string{}, "", false, 2 * 3600, false},
		{"FunctionOneHour", map[string]string{"GRACE_PERIOD": "1h"}, "", false, 3600, true},
		{"TagAboveTheRefresh", map[string]string{"GRACE_PERIOD": "1h"}, "61m", false, 61 * 60, false},
		{"TagBelowTheRefresh", map[string]string{}, "30m", false, 30 * 60, true},
		{"ManualKey", map[string]string{}, "30m", true, 30 * 60, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.lambda.env = tc.fnEnv
			const secret = "svc/key"
			e.managedSecret(secret)
			if tc.tag != "" {
				e.sm.Tag(secret, rotation.TagGracePeriod, tc.tag)
			}
			if tc.manual {
				e.sm.Tag(secret, audit.TagManual, "true")
			}
			e.rotate(secret, "v2")
			sts, err := e.op.Status(context.Background(), []string{secret}, StatusOptions{NoVendor: true})
			if err != nil {
				t.Fatal(err)
			}
			st := sts[0]
			if st.GraceSeconds != tc.grace {
				t.Fatalf("grace %ds, want %ds", st.GraceSeconds, tc.grace)
			}
			w := warningsOf(st)
			warned := len(w) == 1 && strings.Contains(w[0], "no margin over the 1h default refresh") && strings.Contains(w[0], "docs/client.md")
			if warned != tc.warn || (!tc.warn && len(w) > 0) {
				t.Fatalf("warnings %q, want a grace warning: %v", w, tc.warn)
			}
			for _, p := range st.Problems {
				if strings.Contains(p, "refresh") {
					t.Fatalf("the grace warning is a problem too (status would exit 3): %q", p)
				}
			}
		})
	}
}
