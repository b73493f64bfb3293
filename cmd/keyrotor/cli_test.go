package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
)

// awsAnswer is a fake AWS endpoint's answer to one call: an HTTP status, and
// either a JSON body or an error code (X-Amzn-Errortype) with its message.
type awsAnswer struct {
	status  int
	body    string
	errType string
	message string
}

// fakeAWS serves the JSON protocol of Secrets Manager (and the other
// JSON-1.1 services the CLI calls) on 127.0.0.1: answer maps an operation
// ("secretsmanager.DescribeSecret") and its input to the answer. Unknown
// operations are a 400 the test did not expect.
func fakeAWS(t *testing.T, answer func(op string, in map[string]any) awsAnswer) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op := r.Header.Get("X-Amz-Target")
		var in map[string]any
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &in)
		a := answer(op, in)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if a.errType != "" {
			w.Header().Set("X-Amzn-Errortype", a.errType)
			if a.status == 0 {
				a.status = http.StatusBadRequest
			}
			w.WriteHeader(a.status)
			fmt.Fprintf(w, `{"__type":%q,"message":%q}`, a.errType, a.message)
			return
		}
		if a.status == 0 {
			a.status = http.StatusOK
		}
		w.WriteHeader(a.status)
		fmt.Fprint(w, a.body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// awsEnv points the SDK's default chain at endpoint with static test
// credentials and a region, and at nothing else of this machine: no
// config or credentials file, no profile, no instance metadata, one attempt
// per call. overrides are applied last ("" unsets a variable for the SDK).
func awsEnv(t *testing.T, endpoint string, overrides map[string]string) {
	t.Helper()
	dir := t.TempDir()
	env := map[string]string{
		"AWS_ENDPOINT_URL":                       endpoint,
		"AWS_REGION":                             "us-east-1",
		"AWS_DEFAULT_REGION":                     "",
		"AWS_ACCESS_KEY_ID":                      "AKIDEXAMPLE",
		"AWS_SECRET_ACCESS_KEY":                  "test-secret-access-key",
		"AWS_SESSION_TOKEN":                      "",
		"AWS_PROFILE":                            "",
		"AWS_DEFAULT_PROFILE":                    "",
		"AWS_CONFIG_FILE":                        filepath.Join(dir, "config"),
		"AWS_SHARED_CREDENTIALS_FILE":            filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED":              "true",
		"AWS_WEB_IDENTITY_TOKEN_FILE":            "",
		"AWS_ROLE_ARN":                           "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI":     "",
		"AWS_MAX_ATTEMPTS":                       "1",
		"KEYROTOR_REVOCATION_QUEUE_URL":          "",
	}
	for k, v := range overrides {
		env[k] = v
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}

// cliRun is one in-process run of keyrotor.
type cliRun struct {
	code           int
	stdout, stderr string
}

func runCLI(args ...string) cliRun {
	var out, errOut bytes.Buffer
	code := run(context.Background(), newRootCmd(), args, &out, &errOut)
	return cliRun{code: code, stdout: out.String(), stderr: errOut.String()}
}
