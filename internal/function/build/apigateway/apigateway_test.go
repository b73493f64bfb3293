package apigateway

import (
	"bytes"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
)

func envOf(m map[string]string) lambdafn.Env { return func(k string) string { return m[k] } }

var clients = lambdafn.Clients{Config: aws.Config{Region: "us-east-1"}}

// TestBuildWiresTheCanary: APIGATEWAY_CANARY_URL becomes the provider's
// data-plane canary, and a URL that would send keys in clear text to another
// host stops the function from starting.
func TestBuildWiresTheCanary(t *testing.T) {
	const url = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/ping"
	var logs bytes.Buffer
	p, err := build(envOf(map[string]string{CanaryURLVar: url}), clients, &logs)
	if err != nil {
		t.Fatalf("build with %s=%s: %v", CanaryURLVar, url, err)
	}
	if c := p.Canary(); c == nil || c.URL() != url {
		t.Fatalf("the provider's canary is %v, want one for %s", c, url)
	}
	if !strings.Contains(logs.String(), "data plane") || !strings.Contains(logs.String(), url) {
		t.Fatalf("the log does not say that keys are verified at %s: %s", url, logs.String())
	}

	for _, bad := range []string{"http://abc123.execute-api.us-east-1.amazonaws.com/prod/ping", "https://u:p@example.com/x"} {
		if _, err := build(envOf(map[string]string{CanaryURLVar: bad}), clients, &logs); err == nil || !strings.Contains(err.Error(), CanaryURLVar) {
			t.Fatalf("build with %s=%s = %v, want an error naming %s", CanaryURLVar, bad, err, CanaryURLVar)
		}
	}
}

// TestBuildWithoutCanarySaysVerifyIsManagementOnly: no canary, and a log
// line that says what that means.
func TestBuildWithoutCanarySaysVerifyIsManagementOnly(t *testing.T) {
	var logs bytes.Buffer
	p, err := build(envOf(nil), clients, &logs)
	if err != nil {
		t.Fatal(err)
	}
	if p.Canary() != nil {
		t.Fatal("a canary without APIGATEWAY_CANARY_URL")
	}
	if !strings.Contains(logs.String(), CanaryURLVar+" is not set") || !strings.Contains(logs.String(), "management API only") {
		t.Fatalf("the log does not say that Verify is management-only: %s", logs.String())
	}
}
