package inventory

import (
	"fmt"
	"time"
)

// ReaderRefresh is the default refresh interval of the readers most
// applications read their keys with: AWS's caching libraries for Python,
// Java, .NET and Go, and External Secrets Operator's refreshInterval, all
// 1h. A grace period at or below it leaves an application on those defaults
// no margin: it may still hold the old key when the revoker revokes it
// (docs/client.md has each reader's settings).
const ReaderRefresh = time.Hour

// GraceWarning says why a grace period leaves the common readers no
// margin, or is "" when it is longer than ReaderRefresh. It is a warning,
// not a problem: an application that reads more often (keyrotor's client,
// a short cache TTL, a re-read on 401) is safe with a shorter grace.
func GraceWarning(grace time.Duration) string {
	if grace > ReaderRefresh {
		return ""
	}
	return fmt.Sprintf("grace period %s leaves no margin over the %s default refresh of AWS's caching libraries and External Secrets Operator: a reader on those defaults may still use the old key when it is revoked; use 2h or more, or make every reader refresh well within it (docs/client.md)", formatInterval(grace), formatInterval(ReaderRefresh))
}

// Warnings are what the inventory does that is valid but risky, by line:
// a schedule whose grace period leaves the common readers no margin
// (GraceWarning). Keys keyrotor does not rotate (Stripe: key-age reminders)
// have no grace period to warn about.
func (inv *Inventory) Warnings() []Issue {
	var out []Issue
	for _, s := range inv.Schedules {
		if !s.Provider.KeyAPI {
			continue
		}
		if w := GraceWarning(s.GracePeriod); w != "" {
			out = append(out, Issue{Line: s.Line, Msg: w})
		}
	}
	return out
}
