package inventory

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

// issues returns the problems validate found, as "LINE: message".
func issues(t *testing.T, err error) []Issue {
	t.Helper()
	var ie *Error
	if !errors.As(err, &ie) {
		t.Fatalf("validate = %v, want an *Error", err)
	}
	return ie.Issues
}

// A field error, a cross-entry error and a Secrets Manager error are all
// reported by one validate, in line order: fixing the file by the list does
// not reveal another layer.
func TestValidateReportsEveryLayerInOnePass(t *testing.T) {
	data, err := os.ReadFile("testdata/one-pass.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f := newRotateSM()
	f.Create("prod/sendgrid", `{"provider":"sendgrid","key":"SG.k","key_id":"id-1"}`, nil)
	err = validate(context.Background(), f, &fakeIAM{}, "one-pass.yaml", data, "")
	got := issues(t, err)
	want := []struct {
		line int
		says string
	}{
		{5, `secret "prod/gateway-missing" does not exist`},
		{16, "grace_period 2d is not shorter than the rotation_frequency 1d"},
		{23, "minute must be 0"},
	}
	if len(got) != len(want) {
		t.Fatalf("%d problems, want %d:\n%v", len(got), len(want), err)
	}
	for i, w := range want {
		if got[i].Line != w.line || !strings.Contains(got[i].Msg, w.says) {
			t.Errorf("problem %d: line %d %q, want line %d saying %q", i+1, got[i].Line, got[i].Msg, w.line, w.says)
		}
	}
}

// The admin secret a value names must exist and be named
// <AdminSecretPrefix><provider>..., the only admin secrets the provider's
// rotation function may read; a stack with another prefix passes it.
func TestValidateChecksTheAdminSecret(t *testing.T) {
	const doc = `api_keys:
  - name: "sendgrid-key"
    provider: "sendgrid"
    environment: "production"
    vault_path: "prod/sendgrid"
    rotation_frequency: "30d"
  - name: "twilio-key"
    provider: "twilio"
    environment: "production"
    vault_path: "prod/twilio"
    rotation_frequency: "30d"
`
	ctx := context.Background()
	f := newRotateSM()
	f.Create("admin/sendgrid", `{"token":"t"}`, map[string]string{"keyrotor:admin-for": "prod/*"})
	f.Create("prod/sendgrid", `{"provider":"sendgrid","key":"SG.k","key_id":"id-1","admin_secret_id":"admin/sendgrid"}`, nil)
	f.Create("prod/twilio", `{"provider":"twilio","key":"k","key_id":"SK1","admin_secret_id":"keyrotor/admin/twilio"}`, nil)
	got := issues(t, validate(ctx, f, &fakeIAM{}, "inv.yaml", []byte(doc), ""))
	if len(got) != 2 || got[0].Line != 2 || !strings.Contains(got[0].Msg, `admin_secret_id "admin/sendgrid" is not named keyrotor/admin/sendgrid*`) ||
		got[1].Line != 7 || !strings.Contains(got[1].Msg, "admin secret keyrotor/admin/twilio named by admin_secret_id does not exist") {
		t.Fatalf("problems %v, want the sendgrid admin secret's prefix (line 2) and the missing twilio one (line 7)", got)
	}
	f.Create("keyrotor/admin/twilio", `{"token":"t"}`, map[string]string{"keyrotor:admin-for": "prod/twilio"})
	got = issues(t, validate(ctx, f, &fakeIAM{}, "inv.yaml", []byte(doc), "admin/"))
	if len(got) != 1 || got[0].Line != 7 || !strings.Contains(got[0].Msg, `"keyrotor/admin/twilio" is not named admin/twilio*`) {
		t.Fatalf("with the stack's prefix admin/: %v, want only the twilio admin secret outside it", got)
	}
}

// An empty file (or one of comments only) says so, not "line 0: not valid
// YAML: EOF"; one problem is "1 problem".
func TestValidateEmptyInventory(t *testing.T) {
	for _, doc := range []string{"", "# nothing yet\n"} {
		_, err := Parse("inv.yaml", []byte(doc))
		var ie *Error
		if !errors.As(err, &ie) {
			t.Fatalf("Parse(%q) = %v", doc, err)
		}
		if msg := ie.Error(); !strings.HasPrefix(msg, "inv.yaml: the file is empty") || strings.Contains(msg, "EOF") {
			t.Errorf("Parse(%q): %q, want it to say the file is empty", doc, msg)
		}
		if s := ie.Summary(); s != "inv.yaml: 1 problem" {
			t.Errorf("summary %q", s)
		}
	}
}
