package clitest

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// A grace period at or below the common 1h refresh is a warning on standard
// error (or "warnings" in JSON), never a change of exit code: the guide's
// own example (grace 1h) validates with exit 0.
func TestInventoryValidateWarnsOfAShortGrace(t *testing.T) {
	c := &cli{t: t, env: os.Environ()}
	r := c.expect(0, "inventory", "validate", "--offline", "../../../testdata/inventory/guide.yaml")
	mustContain(t, "validate guide.yaml (stderr)", r.stderr, "guide.yaml:40: warning: grace period 1h leaves no margin over the 1h default refresh")
	if strings.Contains(r.stdout, "warning") {
		t.Fatalf("the warning is on standard output:\n%s", r.stdout)
	}
}

func TestStatusWarnsOfAShortGrace(t *testing.T) {
	c := newCLI(t)
	c.gatewaySecret("grace/short", 10*time.Second)
	c.gatewaySecret("grace/long", 3*time.Hour)
	long := c.run("", nil, "status", "--no-vendor", "grace/long")
	short := c.run("", nil, "status", "--no-vendor", "grace/short")
	if short.code != long.code {
		t.Fatalf("status exits %d with a 10s grace, %d with 3h: a warning changed the exit code\nstdout:\n%s\nstderr:\n%s", short.code, long.code, short.stdout, short.stderr)
	}
	mustContain(t, "status grace/short (stderr)", short.stderr, "warning: grace/short: grace period 10s leaves no margin")
	if strings.Contains(long.stderr, "warning") || strings.Contains(short.stdout, "warning") {
		t.Fatalf("warning where none belongs: grace/long stderr:\n%s\ngrace/short stdout:\n%s", long.stderr, short.stdout)
	}
	js := c.run("", nil, "status", "--no-vendor", "--json", "grace/short")
	if js.code != short.code {
		t.Fatalf("status --json exits %d, without --json %d", js.code, short.code)
	}
	var sts []struct {
		Warnings []string `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(js.stdout), &sts); err != nil || len(sts) != 1 || len(sts[0].Warnings) != 1 || !strings.Contains(sts[0].Warnings[0], "grace period 10s") {
		t.Fatalf("status --json: %v, warnings %+v, want one grace warning:\n%s", err, sts, js.stdout)
	}
}
