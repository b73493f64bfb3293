package inventory

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/keyrotor/keyrotor/audit"
	"github.com/keyrotor/keyrotor/rotation"
)

func parseFile(t *testing.T, name string) (*Inventory, error) {
	t.Helper()
	data, err := os.ReadFile("../../testdata/inventory/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return Parse(name, data)
}

// The guide's example (testdata/inventory/guide.yaml) is valid, and becomes
// two cron schedules and a Stripe key-age reminder.
func TestGuideExample(t *testing.T) {
	inv, err := parseFile(t, "guide.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.APIKeys) != 3 || len(inv.Schedules) != 3 {
		t.Fatalf("%d api keys, %d schedules", len(inv.APIKeys), len(inv.Schedules))
	}
	want := map[string]struct {
		provider, expr, grace, freq string
		manual                      bool
	}{
		"prod/stripe-api-key":       {"stripe", "", "2h0m0s", "30d", true},
		"prod/internal-gateway-key": {"gateway", "cron(0 3 ? * SUN *)", "1h0m0s", "7d", false},
		"prod/sendgrid-api-key":     {"sendgrid", "cron(0 2 1 1,4,7,10 ? *)", "4h0m0s", "90d", false},
	}
	entries := inv.Entries()
	if len(entries) != len(want) {
		t.Fatalf("%d entries, want %d", len(entries), len(want))
	}
	for _, e := range entries {
		w, ok := want[e.SecretID]
		if !ok {
			t.Fatalf("unexpected entry %s", e.SecretID)
		}
		if e.Provider.Name != w.provider || e.Expression != w.expr || e.Tags[rotation.TagGracePeriod] != w.grace ||
			e.Tags[audit.TagRotationFrequency] != w.freq || (e.Tags[audit.TagManual] == "true") != w.manual || e.Tags[rotation.TagManaged] != "true" {
			t.Errorf("%s: %+v", e.SecretID, e)
		}
		if !w.manual && e.Window != "3h" {
			t.Errorf("%s: window %q, want 3h", e.SecretID, e.Window)
		}
	}
}

func TestProviderSpellings(t *testing.T) {
	for in, want := range map[string]string{
		"SendGrid": "sendgrid", "Internal API Gateway": "gateway", "internal_gateway": "gateway", "gateway": "gateway",
		"Stripe": "stripe", "AWS IAM": "iam", "API Gateway": "apigateway", "Cloudflare": "cloudflare", "DataDog": "datadog", "Twilio": "twilio",
	} {
		p, ok := LookupProvider(in)
		if !ok || p.Name != want || p.Spelling != in {
			t.Errorf("LookupProvider(%q) = %+v, %v; want %s", in, p, ok, want)
		}
	}
	if p, _ := LookupProvider("Stripe"); p.KeyAPI {
		t.Error("stripe has no key API")
	}
	for _, bad := range []string{"MailChimp", "", "gate way x"} {
		if _, ok := LookupProvider(bad); ok {
			t.Errorf("LookupProvider(%q) accepted", bad)
		}
	}
}

func TestCron(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0 2 1 * *", "cron(0 2 1 * ? *)"},
		{"0 3 * * 0", "cron(0 3 ? * SUN *)"},
		{"0 3 * * 7", "cron(0 3 ? * SUN *)"},
		{"0 2 1 */3 *", "cron(0 2 1 1,4,7,10 ? *)"},
		{"0 4 * * MON-FRI", "cron(0 4 ? * MON,TUE,WED,THU,FRI *)"},
		{"0 0,12 * * *", "cron(0 0,12 * * ? *)"},
		{"0 6 15 JAN,JUL *", "cron(0 6 15 1,7 ? *)"},
	} {
		c, err := ParseCron(tc.in)
		if err != nil {
			t.Errorf("ParseCron(%q): %v", tc.in, err)
			continue
		}
		if got := c.Expression(); got != tc.want {
			t.Errorf("ParseCron(%q).Expression() = %s, want %s", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"0 2 1 *", "want 5"},
		{"30 2 * * *", "minute must be 0"},
		{"*/5 * * * *", "minute must be 0"},
		{"0 */2 * * *", "at most every 4 hours"},
		{"0 2 1 * 1", "both day-of-month and day-of-week"},
		{"0 2 31 2 *", "never fires"},
		{"0 25 * * *", "outside 0-23"},
		{"0 2 x * *", "not a number"},
		{"0 5-2 * * *", "backwards"},
	} {
		if _, err := ParseCron(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseCron(%q) = %v, want an error saying %q", tc.in, err, tc.want)
		}
	}
}

// Every mistake in bad.yaml is reported, with its line.
func TestBadInventoryLines(t *testing.T) {
	_, err := parseFile(t, "bad.yaml")
	var ie *Error
	if !errors.As(err, &ie) {
		t.Fatalf("Parse(bad.yaml) = %v, want *Error", err)
	}
	want := map[int]string{
		4: "unknown provider", 8: "criticality", 13: "rotation_frequency", 14: "supports_dual_key", 15: "unknown field",
		19: "minute must be 0", 23: "at most every 4 hours", 27: "both day-of-month", 32: "not shorter than the rotation interval",
	}
	got := map[int]string{}
	for _, is := range ie.Issues {
		got[is.Line] += is.Msg
	}
	for line, sub := range want {
		if !strings.Contains(got[line], sub) {
			t.Errorf("line %d: %q, want it to say %q (all: %v)", line, got[line], sub, ie)
		}
	}
	if len(ie.Issues) != len(want) {
		t.Errorf("%d issues, want %d:\n%v", len(ie.Issues), len(want), ie)
	}
	if _, err := parseFile(t, "bad-syntax.yaml"); err == nil || !strings.Contains(err.Error(), "not valid YAML") {
		t.Errorf("Parse(bad-syntax.yaml) = %v", err)
	}
}

func TestGraceShorterThanInterval(t *testing.T) {
	doc := `api_keys:
  - name: "k"
    provider: "gateway"
    environment: "prod"
    vault_path: "prod/k"
    rotation_frequency: "1d"
rotation_schedules:
  - secret: "prod/k"
    provider: "gateway"
    schedule: "%s"
    grace_period: "%s"
`
	for _, tc := range []struct{ cron, grace, want string }{
		// Not shorter than the schedule's interval: the field's line.
		{"0 3 * * *", "1d", "x.yaml:11: grace_period 1d is not shorter than the rotation interval"},
		// Not shorter than the api key's rotation_frequency: the schedule's line.
		{"0 3 * * 0", "2d", "x.yaml:8: grace_period 2d is not shorter than the rotation_frequency 1d"},
	} {
		_, err := Parse("x.yaml", []byte(fmt.Sprintf(doc, tc.cron, tc.grace)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("cron %q grace %s: Parse = %v, want %q", tc.cron, tc.grace, err, tc.want)
		}
	}
}

func TestValidTagValue(t *testing.T) {
	for s, want := range map[string]bool{
		"":                              true,
		"payment-service, billing":      false, // a comma is not allowed
		"payment-service billing":       true,
		"café_1/2=3+4-5@x:y.z":          true,
		"a;b":                           false,
		strings.Repeat("x", 256):        true,
		strings.Repeat("é", 257):        false,
		"tab\there":                     false,
		"https://gateway.internal/keys": true,
	} {
		if got := validTagValue(s); got != want {
			t.Errorf("validTagValue(%q) = %v, want %v", s, got, want)
		}
	}
}
