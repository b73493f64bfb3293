package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor/infra/local"
	"github.com/keyrotor/keyrotor/internal/inventory"
	"github.com/keyrotor/keyrotor/internal/operator"
	"github.com/keyrotor/keyrotor/internal/testenv"
	"github.com/keyrotor/keyrotor/providers/sendgrid/sendgridfake"
)

// Onboarding's names: the secrets guide.yaml's schedules name, and the two
// api keys the test adds to its copy of the inventory.
const (
	onboardStripe   = "prod/stripe-api-key"
	onboardGateway  = "prod/internal-gateway-key"
	onboardSendGrid = "prod/sendgrid-api-key"
	onboardIAM      = "prod/deploy-bot-aws-key"
	onboardIAMUser  = "keyrotor-onboard-deploy-bot"
	// onboardBroken's IAM user is not bound to it (no iam_user in the
	// inventory, so apply does not bind it): the binding an operator forgets.
	onboardBroken     = "prod/legacy-ci-aws-key"
	onboardBrokenUser = "keyrotor-onboard-legacy-ci"
	onboardSGAdmin    = "keyrotor/admin/sendgrid"
)

// onboardingExtra are the api keys the test adds to guide.yaml: an IAM key
// (iam_user names the user apply binds) and one without iam_user, whose
// user nobody binds. (Another gateway or SendGrid key would leave the
// guide's schedules without their api key: a schedule without one in
// its vault_path takes the only key of its provider.)
const onboardingExtra = `  - name: "deploy-bot-aws-key"
    provider: "AWS IAM"
    environment: "production"
    used_by: ["deploy-bot"]
    vault_path: "` + onboardIAM + `"
    rotation_frequency: "30d"
    supports_dual_key: true
    provider_api: "https://iam.amazonaws.com"
    criticality: "high"
    iam_user: "` + onboardIAMUser + `"
  - name: "legacy-ci-aws-key"
    provider: "AWS IAM"
    environment: "production"
    used_by: ["legacy-ci"]
    vault_path: "` + onboardBroken + `"
    rotation_frequency: "7d"
    supports_dual_key: true
    provider_api: "https://iam.amazonaws.com"
    criticality: "low"
`

// TestOnboardGuideInventory is issue 12's item 1: the guide's inventory
// (testdata/inventory/guide.yaml, plus an IAM key and a misconfigured key)
// is onboarded on an empty local stack as an operator would: create the
// secrets and their admin secrets, `keyrotor inventory apply` (its code
// path: check, plan, apply), then rotate. Apply must configure every
// secret without failing and leave no AWSPENDING behind; each secret with a
// rotation function then rotates to a new key that works at its vendor;
// Stripe is left to `keyrotor import`; the secret whose IAM user is not
// bound to it fails at createSecret, saying `keyrotor unstick`, which clears
// it, after which (binding added) it rotates.
func TestOnboardGuideInventory(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	s := onboardingStack(t)
	c := ctx(t)
	sm := s.SecretsManager()
	iamc := iam.NewFromConfig(s.Config())

	// The operator's setup: the admin secrets, the IAM user, the secrets.
	create := func(name, value string, tags map[string]string) {
		t.Helper()
		in := &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)}
		for k, v := range tags {
			in.Tags = append(in.Tags, smtypes.Tag{Key: aws.String(k), Value: aws.String(v)})
		}
		if _, err := sm.CreateSecret(c, in); err != nil {
			t.Fatalf("create secret %s: %v", name, err)
		}
	}
	value := func(fields map[string]any) string {
		b, _ := json.Marshal(fields)
		return string(b)
	}
	create(onboardSGAdmin, value(map[string]any{"key": sendgridfake.AdminKey}), map[string]string{local.TagAdminFor: "prod/*"})
	for _, u := range []string{onboardIAMUser, onboardBrokenUser} {
		if _, err := iamc.CreateUser(c, &iam.CreateUserInput{UserName: aws.String(u)}); err != nil {
			t.Fatal(err)
		}
	}
	create(onboardStripe, value(map[string]any{"provider": "stripe", "key": "rk_live_onboarding", "key_id": "rk_onboarding"}), nil)
	create(onboardGateway, value(map[string]any{"provider": "gateway", "admin_secret_id": local.GatewayAdminSecret}), nil)
	create(onboardSendGrid, value(map[string]any{"provider": "sendgrid", "admin_secret_id": onboardSGAdmin, "scopes": []string{"mail.send"}}), nil)
	create(onboardIAM, value(map[string]any{"provider": "iam", "user_name": onboardIAMUser}), nil)
	create(onboardBroken, value(map[string]any{"provider": "iam", "user_name": onboardBrokenUser}), nil)

	// keyrotor inventory apply, in process.
	file := onboardingInventory(t)
	changes := applyInventory(t, s, file)
	var brokenNotes, stripeNotes []string
	for _, ch := range changes {
		switch ch.Entry.SecretID {
		case onboardBroken:
			brokenNotes = ch.Notes
		case onboardStripe:
			stripeNotes = ch.Notes
		}
	}
	if len(changes) != 5 {
		t.Fatalf("apply planned %d secrets, want 5", len(changes))
	}
	if !strings.Contains(strings.Join(brokenNotes, "\n"), local.TagBoundSecret) {
		t.Errorf("apply's notes on %s %q do not name the missing %s binding", onboardBroken, brokenNotes, local.TagBoundSecret)
	}
	if !strings.Contains(strings.Join(stripeNotes, "\n"), "keyrotor import") {
		t.Errorf("apply's notes on %s %q do not point at `keyrotor import`", onboardStripe, stripeNotes)
	}
	rotating := []string{onboardGateway, onboardSendGrid, onboardIAM, onboardBroken}
	for _, id := range append([]string{onboardStripe}, rotating...) {
		d, err := sm.DescribeSecret(c, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
		if err != nil {
			t.Fatal(err)
		}
		if want := id != onboardStripe; aws.ToBool(d.RotationEnabled) != want {
			t.Errorf("%s after apply: RotationEnabled %v, want %v", id, aws.ToBool(d.RotationEnabled), want)
		}
		noPending(t, sm, id, "after apply")
	}
	// Applying again changes nothing.
	for _, ch := range applyInventory(t, s, file) {
		if !ch.Empty() {
			t.Errorf("the second apply would still change %s: tags %v, rotation %v", ch.Entry.SecretID, ch.SetTags, ch.Rotation)
		}
	}

	// Each secret with a rotation function rotates to a key that works at
	// its vendor (`aws secretsmanager rotate-secret --secret-id`).
	for _, id := range rotating[:3] {
		if _, err := s.Rotate(c, id); err != nil {
			t.Fatalf("rotate %s after onboarding: %v", id, err)
		}
		noPending(t, sm, id, "after its rotation")
	}
	gw := currentKey(t, s, onboardGateway)
	if code, err := s.Ping(c, gw.Key); err != nil || code != http.StatusOK || gw.KeyID == "" {
		t.Errorf("%s: AWSCURRENT %s: the gateway answered %d, %v; want a new key it accepts", onboardGateway, gw, code, err)
	}
	sg := currentKey(t, s, onboardSendGrid)
	if code := sendGridScopes(t, s, sg.Key); code != http.StatusOK || sg.KeyID == "" {
		t.Errorf("%s: AWSCURRENT %s: SendGrid answered %d, want a new key it accepts", onboardSendGrid, sg, code)
	}
	ik := currentKey(t, s, onboardIAM)
	if ids, err := s.AccessKeyIDs(c, onboardIAMUser); err != nil || !slices.Contains(ids, ik.KeyID) || !strings.HasPrefix(ik.KeyID, "AKIA") {
		t.Errorf("%s: AWSCURRENT %s; IAM user %s has keys %v (%v): want the new access key among them", onboardIAM, ik, onboardIAMUser, ids, err)
	}

	// Stripe has no key API: rotate refuses and points at keyrotor import.
	op := operatorFor(s)
	if _, err := op.Rotate(c, onboardStripe, operator.RotateOptions{}); err == nil || !strings.Contains(err.Error(), "keyrotor import") {
		t.Errorf("rotate %s: %v, want a refusal pointing at `keyrotor import`", onboardStripe, err)
	}

	// The secret whose IAM user is not bound fails at createSecret and says
	// how to clear what it leaves behind.
	_, err := op.Rotate(c, onboardBroken, operator.RotateOptions{})
	if err == nil || !strings.Contains(err.Error(), "createSecret") || !strings.Contains(err.Error(), "keyrotor unstick "+onboardBroken) {
		t.Fatalf("rotate %s (admin secret not bound): %v; want a failure at createSecret that says `keyrotor unstick %s`", onboardBroken, err, onboardBroken)
	}
	t.Logf("the failed rotation says: %v", err)
	if _, err := op.Rotate(c, onboardBroken, operator.RotateOptions{}); err == nil || !strings.Contains(err.Error(), "keyrotor unstick") {
		t.Fatalf("rotate %s again with AWSPENDING left: %v, want a refusal naming `keyrotor unstick`", onboardBroken, err)
	}
	res, err := op.Unstick(c, onboardBroken, operator.UnstickOptions{Force: true})
	if err != nil {
		t.Fatalf("keyrotor unstick %s --force: %v", onboardBroken, err)
	}
	if res.QueuedKeyID != "" {
		t.Errorf("unstick queued the revocation of %s: the failed attempt minted nothing", res.QueuedKeyID)
	}
	noPending(t, sm, onboardBroken, "after unstick")
	// The operator adds the binding (the command apply's note printed); the
	// secret then rotates.
	d, err := sm.DescribeSecret(c, &secretsmanager.DescribeSecretInput{SecretId: aws.String(onboardBroken)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iamc.TagUser(c, &iam.TagUserInput{
		UserName: aws.String(onboardBrokenUser),
		Tags:     []iamtypes.Tag{{Key: aws.String(local.TagBoundSecret), Value: d.ARN}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := op.Rotate(c, onboardBroken, operator.RotateOptions{}); err != nil {
		t.Fatalf("rotate %s once bound: %v", onboardBroken, err)
	}
	bk := currentKey(t, s, onboardBroken)
	if ids, err := s.AccessKeyIDs(c, onboardBrokenUser); err != nil || !slices.Contains(ids, bk.KeyID) || !strings.HasPrefix(bk.KeyID, "AKIA") {
		t.Errorf("%s: AWSCURRENT %s; IAM user %s has keys %v (%v): want the new access key among them", onboardBroken, bk, onboardBrokenUser, ids, err)
	}
}

// onboardingStack starts an empty local stack (no demo secrets) with the
// functions the inventory needs, stopped when t ends.
func onboardingStack(t *testing.T) *local.Stack {
	t.Helper()
	root, err := local.FindRepoRoot("")
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := local.Start(c, local.Options{
		RepoRoot: root, Functions: []string{"gateway", "sendgrid", "iam", "revoker"}, NoDemoSecrets: true,
	})
	if err != nil {
		t.Fatalf("start an empty local stack: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range s.FunctionNames() {
				l := s.Function(n).Logs()
				if len(l) > 3000 {
					l = l[len(l)-3000:]
				}
				t.Logf("--- %s (end of its logs) ---\n%s", n, l)
			}
		}
		if !stopChecked("the onboarding stack", s) {
			t.Error("the onboarding stack left processes behind")
		}
	})
	return s
}

// onboardingInventory writes guide.yaml with onboardingExtra added to its
// api_keys and returns the file's path.
func onboardingInventory(t *testing.T) string {
	t.Helper()
	root, err := local.FindRepoRoot("")
	if err != nil {
		t.Fatal(err)
	}
	guide, err := os.ReadFile(filepath.Join(root, "testdata", "inventory", "guide.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	before, after, ok := strings.Cut(string(guide), "\n# Rotation schedule configuration")
	if !ok {
		t.Fatal("guide.yaml no longer has its \"# Rotation schedule configuration\" comment: the test cannot add its api keys")
	}
	file := filepath.Join(t.TempDir(), "inventory.yaml")
	if err := os.WriteFile(file, []byte(before+"\n"+onboardingExtra+"\n# Rotation schedule configuration"+after), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// applyInventory runs `keyrotor inventory apply FILE` in process: parse,
// check in Secrets Manager, plan with the stack's function ARNs, apply. It
// fails t on any problem, refusal or failed secret, and returns the plan.
func applyInventory(t *testing.T, s *local.Stack, file string) []inventory.Change {
	t.Helper()
	c := ctx(t)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Parse(file, data)
	if err != nil {
		t.Fatalf("parse the inventory: %v", err)
	}
	sm, iamc := s.SecretsManager(), iam.NewFromConfig(s.Config())
	entries := inv.Entries()
	described, err := inventory.Check(c, sm, file, entries)
	if err != nil {
		t.Fatalf("check the inventory in Secrets Manager: %v", err)
	}
	arns := func(provider string) (string, error) {
		if f := s.Function(provider); f != nil {
			return f.ARN, nil
		}
		return "", fmt.Errorf("the stack runs no %s function", provider)
	}
	changes, err := inventory.Plan(c, sm, iamc, entries, described, arns)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if err := inventory.Apply(c, sm, iamc, changes, nil); err != nil {
		var refused *inventory.RefusedError
		if errors.As(err, &refused) {
			t.Fatalf("apply refused: %v", err)
		}
		t.Fatalf("inventory apply: %v", err)
	}
	return changes
}

// noPending fails t when id has AWSPENDING on a version that is not
// AWSCURRENT: a rotation left behind, which blocks the next one.
func noPending(t *testing.T, sm *secretsmanager.Client, id, when string) {
	t.Helper()
	for v, st := range testenv.Stages(t, sm, id) {
		if slices.Contains(st, "AWSPENDING") && !slices.Contains(st, "AWSCURRENT") {
			t.Errorf("%s %s: AWSPENDING is left on version %s (%v)", id, when, v, st)
		}
	}
}

// sendGridScopes calls the SendGrid stand-in's GET /v3/scopes with key and
// returns the status: 200 for a live key.
func sendGridScopes(t *testing.T, s *local.Stack, key string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx(t), http.MethodGet, s.SendGridURL+"/v3/scopes", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// currentKey reads id's AWSCURRENT key on s.
func currentKey(t *testing.T, s *local.Stack, id string) local.KeyVersion {
	t.Helper()
	k, err := s.ReadKey(ctx(t), id, "AWSCURRENT")
	if err != nil {
		t.Fatal(err)
	}
	return k
}
