package redacttest

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

type leaky struct{ Key string }

type hiding struct{ Key string }

func (h hiding) String() string       { return "hiding{key=<redacted>}" }
func (h hiding) GoString() string     { return h.String() }
func (h hiding) LogValue() slog.Value { return slog.StringValue(h.String()) }
func (h hiding) MarshalJSON() ([]byte, error) {
	return []byte(`{}`), nil
}

// recorder is a testing.TB that records failures instead of failing.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestHiddenCatchesEveryRendering(t *testing.T) {
	r := &recorder{TB: t}
	Hidden(r, leaky{Key: "sk_live_secret"}, "sk_live_secret")
	all := strings.Join(r.errs, "\n")
	for _, how := range []string{"slog JSON handler", "slog text handler", "fmt %v", "fmt %+v", "fmt %#v", "fmt %s", "json.Marshal", "pointer: fmt %v"} {
		if !strings.Contains(all, how+" shows") {
			t.Errorf("a leak through %s is not reported; reports:\n%s", how, all)
		}
	}
}

func TestHiddenPassesARedactedValue(t *testing.T) {
	r := &recorder{TB: t}
	Hidden(r, hiding{Key: "sk_live_secret"}, "sk_live_secret")
	if len(r.errs) > 0 {
		t.Fatalf("false reports: %v", r.errs)
	}
}

func TestHiddenFromLogsAllowsJSON(t *testing.T) {
	type wire struct {
		Key string `json:"key"`
	}
	r := &recorder{TB: t}
	HiddenFromLogs(r, wire{Key: "sk_live_secret"}, "sk_live_secret")
	all := strings.Join(r.errs, "\n")
	if strings.Contains(all, "json.Marshal") {
		t.Errorf("HiddenFromLogs checks encoding/json: %s", all)
	}
	if !strings.Contains(all, "slog JSON handler shows") {
		t.Errorf("HiddenFromLogs misses a leak through slog: %s", all)
	}
}
