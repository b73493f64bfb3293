package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// A failure (exit 1) is one line on standard error: what failed, why, what
// to do. The SDK's chain (operation error ..., https response error ...,
// request ids) appears only under --debug, after that line.

// sdkChainMarks are pieces of the AWS SDK's error chain that the one line
// must not carry.
var sdkChainMarks = []string{"operation error", "https response error", "RequestID", "failed to refresh cached credentials", "endpoint rule error"}

// failsInOneLine runs args without and with --debug and checks the one line
// (it contains every want, and no piece of the SDK's chain) and that chain,
// which only the --debug run prints.
func failsInOneLine(t *testing.T, args []string, chain string, wants ...string) string {
	t.Helper()
	r := runCLI(args...)
	if r.code != 1 {
		t.Fatalf("keyrotor %s: exit %d, want 1\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	if n := strings.Count(r.stderr, "\n"); n != 1 || !strings.HasPrefix(r.stderr, "keyrotor: ") {
		t.Errorf("keyrotor %s: want one line \"keyrotor: ...\" on stderr, got %d lines:\n%s", strings.Join(args, " "), n, r.stderr)
	}
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("keyrotor %s: the line does not say %q:\n%s", strings.Join(args, " "), w, r.stderr)
		}
	}
	for _, m := range append(sdkChainMarks, chain) {
		if strings.Contains(r.stderr, m) {
			t.Errorf("keyrotor %s: the line carries the SDK's chain (%q) without --debug:\n%s", strings.Join(args, " "), m, r.stderr)
		}
	}
	d := runCLI(append([]string{"--debug"}, args...)...)
	if d.code != 1 {
		t.Fatalf("keyrotor --debug %s: exit %d, want 1\n%s", strings.Join(args, " "), d.code, d.stderr)
	}
	if !strings.HasPrefix(d.stderr, r.stderr) || !strings.Contains(d.stderr[len(r.stderr):], chain) {
		t.Errorf("keyrotor --debug %s: want the same line, then the full chain with %q:\n%s", strings.Join(args, " "), chain, d.stderr)
	}
	return r.stderr
}

func deniedAWS(t *testing.T) string {
	return fakeAWS(t, func(op string, _ map[string]any) awsAnswer {
		return awsAnswer{status: http.StatusForbidden, errType: "AccessDeniedException",
			message: "User: arn:aws:iam::123456789012:user/ops is not authorized to perform: " + strings.Replace(op, ".", ":", 1)}
	})
}

// No credentials anywhere in the SDK's chain (the env file not sourced): the
// line says to configure credentials or source the local stack's env file.
func TestFailureNoCredentials(t *testing.T) {
	awsEnv(t, deniedAWS(t), map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""})
	failsInOneLine(t, []string{"rollback", "prod/gw"}, "no EC2 IMDS role found",
		"no AWS credentials", "source", "keyrotor local")
}

// No region (and no endpoint): the line says to set AWS_REGION.
func TestFailureNoRegion(t *testing.T) {
	awsEnv(t, "", map[string]string{"AWS_REGION": "", "AWS_ENDPOINT_URL": ""})
	failsInOneLine(t, []string{"rollback", "prod/gw"}, "an AWS region is required", "no AWS region", "AWS_REGION")
}

// AccessDenied names the IAM action that was denied and the secret.
func TestFailureAccessDenied(t *testing.T) {
	awsEnv(t, deniedAWS(t), nil)
	failsInOneLine(t, []string{"rollback", "prod/gw"}, "StatusCode: 403",
		"rollback prod/gw", "access denied", "secretsmanager:DescribeSecret", "AccessDenied")
}

// Throttling (after the SDK's own retries) says to retry.
func TestFailureThrottled(t *testing.T) {
	awsEnv(t, fakeAWS(t, func(string, map[string]any) awsAnswer {
		return awsAnswer{errType: "ThrottlingException", message: "Rate exceeded"}
	}), nil)
	failsInOneLine(t, []string{"rollback", "prod/gw"}, "exceeded maximum number of attempts",
		"rollback prod/gw", "throttled", "retry")
}

// notManagedAWS is a secret that keyrotor does not manage: no keyrotor tag,
// a previous version, and a value without "provider" (a plain password).
func notManagedAWS(t *testing.T) string {
	return fakeAWS(t, func(op string, _ map[string]any) awsAnswer {
		switch op {
		case "secretsmanager.DescribeSecret":
			return awsAnswer{body: `{"ARN":"arn:aws:secretsmanager:us-east-1:123456789012:secret:db/pass-AbCdEf","Name":"db/pass","VersionIdsToStages":{"v1":["AWSPREVIOUS"],"v2":["AWSCURRENT"]}}`}
		case "secretsmanager.GetSecretValue":
			return awsAnswer{body: `{"ARN":"arn:aws:secretsmanager:us-east-1:123456789012:secret:db/pass-AbCdEf","Name":"db/pass","VersionId":"v2","SecretString":"{\"password\":\"hunter2-not-a-key\"}"}`}
		}
		return awsAnswer{errType: "InvalidRequestException", message: "unexpected " + op}
	})
}

// A secret not managed by keyrotor says so, not `field "provider" is missing`,
// and since nothing was changed it is a refusal (exit 4), not a failure.
func TestFailureNotManaged(t *testing.T) {
	awsEnv(t, notManagedAWS(t), nil)
	r := runCLI("rollback", "db/pass")
	if r.code != 4 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "not managed by keyrotor (no keyrotor:managed tag") ||
		strings.Contains(r.stderr, `field "provider" is missing`) {
		t.Fatalf("keyrotor rollback db/pass: exit %d, stderr %q; want exit 4 and one line saying it is not managed by keyrotor", r.code, r.stderr)
	}
	if strings.Contains(r.stderr+r.stdout, "hunter2") {
		t.Errorf("the secret's value was printed: %s", r.stderr)
	}
}

// jsonError is the one object --json prints on a failure.
type jsonError struct {
	Error *struct {
		ExitCode int     `json:"exit_code"`
		Kind     string  `json:"kind"`
		Message  string  `json:"message"`
		Hint     *string `json:"hint"`
	} `json:"error"`
}

// With --json, every failure prints only {"error":{...}} on stdout, with the
// exit code and its kind, and nothing on stderr.
func TestJSONFailure(t *testing.T) {
	denied := deniedAWS(t)
	missing := fakeAWS(t, func(op string, _ map[string]any) awsAnswer {
		return awsAnswer{errType: "ResourceNotFoundException", message: "Secrets Manager can't find the specified secret."}
	})
	for _, tc := range []struct {
		name     string
		endpoint string
		args     []string
		code     int
		kind     string
		message  string
	}{
		{"failed", denied, []string{"rollback", "prod/gw", "--json"}, 1, "failed", "secretsmanager:DescribeSecret"},
		{"refused", missing, []string{"rollback", "prod/gw", "--json"}, 4, "refused", "does not exist"},
		{"usage: arguments", denied, []string{"rollback", "--json"}, 2, "usage", "accepts 1 arg"},
		{"usage: unknown flag", denied, []string{"unstick", "prod/gw", "--json", "--bogus"}, 2, "usage", "--bogus"},
		{"usage: revoke-key", denied, []string{"revoke-key", "--json", "prod/gw"}, 2, "usage", "accepts 2 arg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			awsEnv(t, tc.endpoint, nil)
			r := runCLI(tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			var got jsonError
			dec := json.NewDecoder(strings.NewReader(r.stdout))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil || got.Error == nil || dec.More() {
				t.Fatalf("stdout is not one {\"error\":{...}} object (%v):\n%s", err, r.stdout)
			}
			e := got.Error
			if e.ExitCode != tc.code || e.Kind != tc.kind || !strings.Contains(e.Message, tc.message) || e.Hint == nil {
				t.Errorf("error = %+v, want exit_code %d, kind %q, a message with %q and a hint", *e, tc.code, tc.kind, tc.message)
			}
			if r.stderr != "" {
				t.Errorf("stderr is not empty with --json:\n%s", r.stderr)
			}
		})
	}
}
