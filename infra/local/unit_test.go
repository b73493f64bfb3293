package local

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseEMF(t *testing.T) {
	logs := strings.Join([]string{
		`START RequestId: 1 Version: $LATEST`,
		`{"Outcome":"done","Provider":"gateway","Step":"createSecret","StepDuration":42,"StepSucceeded":1,"_aws":{"CloudWatchMetrics":[{"Namespace":"KeyRotation","Dimensions":[["Provider","Step"],[]],"Metrics":[{"Name":"StepSucceeded","Unit":"Count"},{"Name":"StepDuration","Unit":"Milliseconds"}]}],"Timestamp":1796150332520}}`,
		`{"time":"2026-12-01T18:38:52Z","level":"INFO","msg":"step done"}`,
		`[gateway] {"Provider":"gateway","RotationSucceeded":1,"_aws":{"CloudWatchMetrics":[{"Namespace":"KeyRotation","Dimensions":[["Provider"],[]],"Metrics":[{"Name":"RotationSucceeded","Unit":"Count"}]}],"Timestamp":1796150332610}}`,
		`{"Provider":"gateway","RotationSucceeded":1,"_aws":{"CloudWatchMetrics":[{"Namespace":"KeyRotation","Dimensions":[["Provider"],[]],"Metrics":[{"Name":"RotationSucceeded","Unit":"Count"}]}],"Timestamp":1796150332710}}`,
		`{"_aws": broken`,
	}, "\n")
	recs := ParseEMF("gateway", logs)
	if len(recs) != 4 {
		t.Fatalf("%d records, want 4: %+v", len(recs), recs)
	}
	if r := recs[1]; r.Name != "StepDuration" || r.Value != 42 || r.Unit != "Milliseconds" || r.Dimensions["Step"] != "createSecret" || r.Function != "gateway" {
		t.Fatalf("second record: %+v", r)
	}
	sum := SummarizeMetrics(recs)
	var got []string
	for _, m := range sum {
		got = append(got, m.String())
	}
	want := []string{
		"KeyRotation/RotationSucceeded{Provider=gateway} sum=2 (2 values)",
		"KeyRotation/StepDuration{Provider=gateway Step=createSecret} sum=42 Milliseconds (1 values)",
		"KeyRotation/StepSucceeded{Provider=gateway Step=createSecret} sum=1 (1 values)",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("summary:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestOperationNames(t *testing.T) {
	c, err := newAPICounter("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		target, auth, query, want string
	}{
		{"secretsmanager.GetSecretValue", "", "", "secretsmanager.GetSecretValue"},
		{"AmazonSQS.SendMessage", "", "", "sqs.SendMessage"},
		{"", "AWS4-HMAC-SHA256 Credential=testing/20261201/us-east-1/iam/aws4_request, SignedHeaders=host", "Action=ListAccessKeys", "iam.ListAccessKeys"},
	} {
		r := httptest.NewRequest(http.MethodPost, "/?"+tc.query, nil)
		if tc.target != "" {
			r.Header.Set("X-Amz-Target", tc.target)
		}
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		if got := operation(r); got != tc.want {
			t.Errorf("operation(%s %s) = %q, want %q", tc.target, tc.query, got, tc.want)
		}
		c.calls[operation(r)]++
	}
	calls := APICalls(c.snapshot())
	if calls.Service("secretsmanager") != 1 || calls.Service("sqs") != 1 {
		t.Fatalf("calls %v", calls)
	}
	if d := calls.Sub(APICalls{"sqs.SendMessage": 1}); len(d) != 2 || d["sqs.SendMessage"] != 0 {
		t.Fatalf("Sub: %v", d)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:4566": "http://127.0.0.1:4566",
		"a b":                   "'a b'",
		"it's":                  `'it'\''s'`,
		"":                      "''",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestKeyVersionNeverPrintsTheKey(t *testing.T) {
	k := KeyVersion{VersionID: "0123456789abcdef", KeyID: "key_1", Key: "gw_secretsecretsecret"}
	for _, s := range []string{k.String(), fmt.Sprintf("%v %+v %#v %s", k, k, k, k)} {
		if strings.Contains(s, k.Key) {
			t.Fatalf("the key is printed: %s", s)
		}
	}
}

func TestFunctionNamesAndSelection(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"gateway", "iam", "revoker", "auditor", "notes"} {
		if err := os.MkdirAll(filepath.Join(root, "functions", d), 0o755); err != nil {
			t.Fatal(err)
		}
		if d != "notes" {
			if err := os.WriteFile(filepath.Join(root, "functions", d, "main.go"), []byte("package main\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := FunctionNames(root); !slices.Equal(got, []string{"auditor", "gateway", "iam", "revoker"}) {
		t.Fatalf("FunctionNames = %v", got)
	}
	if got, err := selectFunctions(root, []string{"gateway", "revoker"}); err != nil || !slices.Equal(got, []string{"gateway", "revoker"}) {
		t.Fatalf("selectFunctions = %v, %v", got, err)
	}
	if _, err := selectFunctions(root, []string{"stripe"}); err == nil || !strings.Contains(err.Error(), "stripe") {
		t.Fatalf("an unknown function: %v", err)
	}
}
