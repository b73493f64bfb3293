package clitest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor/infra/local"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/internal/inventory"
	"github.com/keyrotor/keyrotor/internal/operator"
	"github.com/keyrotor/keyrotor/rotation"
)

// TestInventoryValidateOffline needs no AWS: the guide's example passes, and
// every mistake in bad.yaml is reported with its line.
func TestInventoryValidateOffline(t *testing.T) {
	c := &cli{t: t, env: os.Environ()}
	r := c.expect(0, "inventory", "validate", "--offline", "../../../testdata/inventory/guide.yaml")
	mustContain(t, "validate guide.yaml", r.stdout, "valid: 3 api keys, 3 schedules")
	r = c.expect(operator.ExitProblems, "inventory", "validate", "--offline", "../../../testdata/inventory/bad.yaml")
	for _, want := range []string{
		`bad.yaml:4: unknown provider "MailChimp"`,
		`bad.yaml:8: criticality "urgent"`,
		`bad.yaml:13: rotation_frequency: "often"`,
		`bad.yaml:14: field "supports_dual_key" must be true or false`,
		`bad.yaml:15: unknown field "colour"`,
		`bad.yaml:19: cron "*/5 * * * *": the minute must be 0`,
		`bad.yaml:23: cron "0 * * * *" rotates 1h apart`,
		`bad.yaml:27: cron "0 2 1 * 1" restricts both day-of-month and day-of-week`,
		`bad.yaml:32: grace_period 8d is not shorter than the rotation interval`,
	} {
		mustContain(t, "validate bad.yaml", r.stdout, want)
	}
	r = c.expect(operator.ExitProblems, "inventory", "validate", "--offline", "../../../testdata/inventory/bad-syntax.yaml")
	mustContain(t, "validate bad-syntax.yaml", r.stdout, "not valid YAML")
	c.expect(operator.ExitUsage, "inventory", "validate", "--offline", "no-such-file.yaml")
	c.expect(operator.ExitUsage, "inventory", "validate")
	c.expect(operator.ExitUsage, "inventory", "validate", "--no-such-flag", "x.yaml")
}

const testInventory = `api_keys:
  - name: "internal-service-api-key"
    provider: "Internal API Gateway"
    environment: "production"
    used_by: ["frontend-bff", "mobile-api"]
    vault_path: "inv/gateway-key"
    rotation_frequency: "7d"
    supports_dual_key: true
    criticality: "high"
  - name: "stripe-api-key"
    provider: "Stripe"
    environment: "production"
    used_by: ["payment-service"]
    vault_path: "inv/stripe-key"
    rotation_frequency: "30d"
    supports_dual_key: true
    criticality: "high"
%s
rotation_schedules:
  - secret: "inv/gateway-key"
    provider: "internal_gateway"
    schedule: "0 3 * * 0" # Weekly at 3 AM Sunday
    grace_period: "1h"
    alert_on_failure: true
    rollback_on_failure: true
  - secret: "inv/stripe-key"
    provider: "stripe"
    schedule: "0 2 1 * *"
    grace_period: "2h"
`

// TestInventoryApply: validate finds the missing secrets by line; plan
// shows the changes; apply tags the secrets and sets their schedules
// without rotating them, with progress; a second apply changes nothing.
func TestInventoryApply(t *testing.T) {
	c := newCLI(t)
	const bulk = 6
	var extra strings.Builder
	for i := range bulk {
		fmt.Fprintf(&extra, "  - name: \"bulk-%d\"\n    provider: \"gateway\"\n    environment: \"staging\"\n    vault_path: \"inv/bulk-%d\"\n    rotation_frequency: \"30d\"\n", i, i)
	}
	file := filepath.Join(t.TempDir(), "inventory.yaml")
	content := fmt.Sprintf(testInventory, strings.TrimRight(extra.String(), "\n"))
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	total := bulk + 2

	r := c.expect(operator.ExitProblems, "inventory", "validate", file)
	mustContain(t, "validate without the secrets", r.stdout,
		fmt.Sprintf(`inventory.yaml:%d: secret "inv/gateway-key" does not exist`, lineOf(t, content, `- secret: "inv/gateway-key"`)),
		fmt.Sprintf(`inventory.yaml:%d: secret "inv/stripe-key" does not exist`, lineOf(t, content, `- secret: "inv/stripe-key"`)),
		fmt.Sprintf(`inventory.yaml:%d: secret "inv/bulk-5" does not exist`, lineOf(t, content, `- name: "bulk-5"`)))

	c.keyedGatewaySecret("inv/gateway-key")
	for i := range bulk {
		c.keyedGatewaySecret(fmt.Sprintf("inv/bulk-%d", i))
	}
	if _, err := c.sm().CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String("inv/stripe-key"), SecretString: aws.String(`{"provider":"stripe","key":"sk_test_INV000000000000000000001"}`),
	}); err != nil {
		t.Fatal(err)
	}
	c.expect(0, "inventory", "validate", file)

	r = c.expect(0, "inventory", "plan", file)
	mustContain(t, "plan", r.stdout,
		"~ inv/gateway-key", "schedule cron(0 3 ? * SUN *), window 3h", "tag keyrotor:provider = gateway",
		"~ inv/bulk-0", "schedule rate(30 days)",
		"~ inv/stripe-key", "key-age reminder",
		fmt.Sprintf("%d of %d secrets would change", total, total))
	if b := planBlock(r.stdout, "inv/stripe-key"); strings.Contains(b, "rotation:") {
		t.Fatalf("plan sets a rotation for stripe:\n%s", b)
	}

	secrets := []string{"inv/gateway-key", "inv/stripe-key"}
	for i := range bulk {
		secrets = append(secrets, fmt.Sprintf("inv/bulk-%d", i))
	}
	before := map[string]string{}
	for _, s := range secrets {
		before[s] = fmt.Sprint(c.stages(s))
	}

	r = c.expect(0, "inventory", "apply", file)
	mustContain(t, "apply", r.stdout, fmt.Sprintf("%d secrets updated, 0 unchanged, 0 failed", total))
	mustContain(t, "apply progress", r.stderr, fmt.Sprintf("[1/%d] inv/gateway-key: updated", total), fmt.Sprintf("[%d/%d]", total, total))
	for _, s := range secrets {
		if after := fmt.Sprint(c.stages(s)); after != before[s] {
			t.Fatalf("apply rotated %s: labels %s -> %s", s, before[s], after)
		}
	}
	desc, err := c.sm().DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String("inv/gateway-key")})
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]string{}
	for _, tg := range desc.Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if aws.ToString(desc.RotationLambdaARN) != c.s.Function("gateway").ARN || tags[rotation.TagGracePeriod] != "1h0m0s" ||
		tags[rotation.TagManaged] != "true" || tags[inventory.TagProvider] != "gateway" || tags[inventory.TagUsedBy] != "frontend-bff mobile-api" {
		t.Fatalf("after apply: function %s, tags %v", aws.ToString(desc.RotationLambdaARN), tags)
	}
	if st := c.status("inv/stripe-key"); st.Schedule != "reminder every 30d" || st.IntervalSeconds != 30*24*3600 || len(st.Problems) != 0 {
		t.Fatalf("status of the stripe reminder: %+v", st)
	}
	if st := c.status("inv/gateway-key"); st.Rotation != operator.RotationIdle || len(st.Problems) != 0 {
		t.Fatalf("status after apply: %+v", st)
	}

	r = c.expect(0, "inventory", "apply", file)
	mustContain(t, "second apply", r.stdout, fmt.Sprintf("0 secrets updated, %d unchanged, 0 failed", total))
	for _, s := range secrets {
		if after := fmt.Sprint(c.stages(s)); after != before[s] {
			t.Fatalf("the second apply changed %s: %s -> %s", s, before[s], after)
		}
	}
	r = c.expect(0, "inventory", "plan", file)
	mustContain(t, "plan after apply", r.stdout, fmt.Sprintf("0 of %d secrets would change", total))

	// The schedule apply set is the one rotate uses.
	c.expect(0, "rotate", "inv/gateway-key", "--wait")
}

// lineOf returns the 1-based line of the first line of content holding sub.
func lineOf(t *testing.T, content, sub string) int {
	t.Helper()
	for i, l := range strings.Split(content, "\n") {
		if strings.Contains(l, sub) {
			return i + 1
		}
	}
	t.Fatalf("no line holds %q", sub)
	return 0
}

// planBlock returns the lines plan printed about one secret.
func planBlock(out, secret string) string {
	var b strings.Builder
	in := false
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "~ ") || strings.HasPrefix(l, "= ") {
			in = strings.HasPrefix(l[2:], secret+" ")
		}
		if in {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// keyedGatewaySecret creates a gateway secret holding a live key, with
// rotation enabled by an earlier configuration (every 30 days): what an
// inventory meets in an account.
func (c *cli) keyedGatewaySecret(name string) {
	c.t.Helper()
	ctx := context.Background()
	k, err := c.s.Gateway.CreateKey(keyrotor.KeyName(keyrotor.Identity{Name: name}, "initial"), "")
	if err != nil {
		c.t.Fatal(err)
	}
	value := fmt.Sprintf(`{"provider":"gateway","key":%q,"key_id":%q,"admin_secret_id":%q}`, k.Key, k.ID, local.GatewayAdminSecret)
	if _, err := c.sm().CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)}); err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.sm().RotateSecret(ctx, &secretsmanager.RotateSecretInput{
		SecretId: aws.String(name), RotationLambdaARN: aws.String(c.s.Function("gateway").ARN),
		RotationRules: &smtypes.RotationRulesType{AutomaticallyAfterDays: aws.Int64(30)}, RotateImmediately: aws.Bool(false),
	}); err != nil {
		c.t.Fatal(err)
	}
}
