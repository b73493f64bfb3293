package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/jedib0t/go-pretty/v6/text"

	"github.com/keyrotor/keyrotor/internal/operator"
)

var statusNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// longSecret is a 200-character secret name: Secrets Manager allows 512.
var longSecret = "prod/" + strings.Repeat("payments-eu-west-", 11) + strings.Repeat("x", 8)

func statusFixture(t *testing.T) []operator.Status {
	t.Helper()
	if len(longSecret) != 200 {
		t.Fatalf("the fixture's long name has %d characters", len(longSecret))
	}
	at := func(d time.Duration) *time.Time { x := statusNow.Add(d); return &x }
	return []operator.Status{
		{Secret: "demo/gateway", Provider: "gateway", KeyID: "gk-3f9a2b7c1d", KeyCreatedAt: at(-2 * time.Hour), KeyAgeSeconds: 7200,
			IntervalSeconds: 30 * 86400, LastRotated: at(-2 * time.Hour), NextRotation: at(30 * 24 * time.Hour), Rotation: operator.RotationIdle,
			Previous: operator.PreviousLive, PreviousKeyID: "gk-77aa01be52", GraceUntil: at(time.Hour - 2*time.Hour + 2*time.Hour), Problems: []string{}},
		{Secret: longSecret, Provider: "sendgrid", KeyID: "SG.key-id-" + strings.Repeat("0123456789", 5), KeyCreatedAt: at(-50 * 24 * time.Hour),
			KeyAgeSeconds: 50 * 86400, IntervalSeconds: 30 * 86400, LastRotated: at(-50 * 24 * time.Hour), NextRotation: at(-20 * 24 * time.Hour),
			Rotation: operator.RotationStuck, PendingVersion: "v9", PendingSince: at(-2 * time.Hour),
			Previous: operator.PreviousRevoked, PreviousKeyID: "SG.prev-" + strings.Repeat("abcdef", 6),
			Problems: []string{"rotation stuck for 2h", "key older than 1.5 × its interval"}},
		{Secret: "ops/iam-deployer", Provider: "iam", KeyID: "AKIAIOSFODNN7EXAMPLE", Rotation: operator.RotationDisabled,
			Previous: operator.PreviousNone, Problems: []string{"rotation is not enabled"}},
	}
}

// shownWhole says whether s appears in full in out, or cut with an
// ellipsis: a prefix of at least min characters followed by "…".
func shownWhole(out, s string, min int) bool {
	if strings.Contains(out, s) {
		return true
	}
	for n := len(s) - 1; n >= min; n-- {
		if strings.Contains(out, s[:n]+"…") {
			return true
		}
	}
	return false
}

// On a terminal of 80 or 120 columns, no line of status is wider than the
// terminal; columns drop in the documented order; a secret name or key id
// is shown in full or cut with an ellipsis, never cut silently; --wide
// shows the full table.
func TestStatusFitsTheTerminal(t *testing.T) {
	dropOrder := []string{"LAST ROTATED", "INTERVAL", "PROVIDER", "NEXT ROTATION", "AGE"}
	for _, width := range []int{80, 120} {
		for _, fixture := range []struct {
			name string
			sts  []operator.Status
		}{{"all", statusFixture(t)}, {"short names", []operator.Status{statusFixture(t)[0], statusFixture(t)[2]}}} {
			var out, errw bytes.Buffer
			printStatus(&out, &errw, output{Terminal: true, Width: width}, fixture.sts, statusNow)
			lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			table := []string{}
			for _, l := range lines {
				if !strings.HasPrefix(l, "✗ ") {
					table = append(table, l)
				}
			}
			for _, l := range table {
				if w := text.StringWidthWithoutEscSequences(l); w > width {
					t.Fatalf("%d columns, %s: a line of %d columns:\n%s", width, fixture.name, w, out.String())
				}
			}
			header := table[0]
			for _, h := range []string{"SECRET", "KEY ID", "ROTATION", "PREVIOUS KEY"} {
				if !strings.Contains(header, h) {
					t.Fatalf("%d columns, %s: column %s dropped:\n%s", width, fixture.name, h, out.String())
				}
			}
			// The shown columns are those after a prefix of the drop order.
			dropped := 0
			for dropped < len(dropOrder) && !strings.Contains(header, dropOrder[dropped]) {
				dropped++
			}
			for _, h := range dropOrder[dropped:] {
				if !strings.Contains(header, h) {
					t.Fatalf("%d columns, %s: %s dropped before %s:\n%s", width, fixture.name, h, dropOrder[dropped], out.String())
				}
			}
			for _, st := range fixture.sts {
				if !shownWhole(out.String(), st.Secret, 8) || !shownWhole(out.String(), st.KeyID, 6) {
					t.Fatalf("%d columns, %s: %s or %s cut without an ellipsis:\n%s", width, fixture.name, st.Secret, st.KeyID, out.String())
				}
			}
			if !strings.Contains(out.String(), "✗ ops/iam-deployer: rotation is not enabled") {
				t.Fatalf("%d columns, %s: problems not listed:\n%s", width, fixture.name, out.String())
			}
		}
	}
	// 120 columns show more than 80 when the names are short.
	var narrow, wide bytes.Buffer
	short := []operator.Status{statusFixture(t)[0], statusFixture(t)[2]}
	printStatus(&narrow, &narrow, output{Terminal: true, Width: 80}, short, statusNow)
	printStatus(&wide, &wide, output{Terminal: true, Width: 120}, short, statusNow)
	if strings.Count(strings.Split(wide.String(), "\n")[0], "│") <= strings.Count(strings.Split(narrow.String(), "\n")[0], "│") {
		t.Fatalf("120 columns show no more than 80:\n%s\n%s", narrow.String(), wide.String())
	}

	// --wide shows every column and every cell in full, however wide.
	var out bytes.Buffer
	sts := statusFixture(t)
	printStatus(&out, &out, output{Terminal: true, Width: 80, Wide: true}, sts, statusNow)
	for _, h := range []string{"PROVIDER", "AGE", "INTERVAL", "LAST ROTATED", "NEXT ROTATION"} {
		if !strings.Contains(out.String(), h) {
			t.Fatalf("--wide lacks %s:\n%s", h, out.String())
		}
	}
	if strings.Contains(out.String(), "…") || !strings.Contains(out.String(), longSecret) || !strings.Contains(out.String(), sts[1].KeyID) {
		t.Fatalf("--wide cut a cell:\n%s", out.String())
	}
}

// Not on a terminal, status is plain text for scripts: tab-separated,
// header first, one row per secret with every value in full, no box
// drawing, colour or ✓/✗; the problems go to stderr.
func TestStatusPlainWhenNotATerminal(t *testing.T) {
	var out, errw bytes.Buffer
	sts := statusFixture(t)
	printStatus(&out, &errw, output{}, sts, statusNow)
	if strings.ContainsAny(out.String(), "─│┌┐└┘├┤┬┴┼✓✗\x1b") {
		t.Fatalf("plain output has box drawing, colour or a mark:\n%s", out.String())
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != len(sts)+1 {
		t.Fatalf("plain output: %d lines, want a header and %d rows:\n%s", len(lines), len(sts), out.String())
	}
	header := strings.Split(lines[0], "\t")
	if header[0] != "SECRET" || header[len(header)-1] != "PROBLEMS" {
		t.Fatalf("plain header %q", lines[0])
	}
	for i, l := range lines[1:] {
		f := strings.Split(l, "\t")
		if len(f) != len(header) || f[0] != sts[i].Secret || f[2] != sts[i].KeyID {
			t.Fatalf("plain row %d: %q, want %d fields starting %s", i, l, len(header), sts[i].Secret)
		}
	}
	if !strings.Contains(errw.String(), "ops/iam-deployer: rotation is not enabled\n") || !strings.Contains(errw.String(), longSecret+": rotation stuck for 2h\n") {
		t.Fatalf("problems on stderr:\n%s", errw.String())
	}
}
