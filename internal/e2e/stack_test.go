package e2e

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/keyrotor/keyrotor/infra/local"
)

// TestExports checks the export lines `keyrotor local` prints: the names
// the issue promises, all on 127.0.0.1, and never a key or the gateway's
// admin token.
func TestExports(t *testing.T) {
	s := needStack(t)
	ex := s.Exports()
	for _, name := range []string{"AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "KEYROTOR_GATEWAY_URL"} {
		if !strings.Contains(ex, "export "+name+"=") {
			t.Errorf("the exports lack %s:\n%s", name, ex)
		}
	}
	for _, v := range s.Env() {
		if strings.HasPrefix(v.Value, "http") && !strings.HasPrefix(v.Value, "http://127.0.0.1:") {
			t.Errorf("%s=%s is not on 127.0.0.1", v.Name, v.Value)
		}
	}
	if keyPattern.MatchString(ex) {
		t.Error("the exports hold a key or the admin token")
	}
}

// TestLambdaInvoke checks that moto's Invoke reaches the real function, as
// `aws lambda invoke` does: the revoker answers an empty SQS event with an
// empty partial batch response, and a bad event with a function error.
func TestLambdaInvoke(t *testing.T) {
	s := needStack(t)
	lc := lambda.NewFromConfig(s.Config())
	out, err := lc.Invoke(ctx(t), &lambda.InvokeInput{
		FunctionName: aws.String(s.Function("revoker").FunctionName), Payload: []byte(`{"Records":[]}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.FunctionError != nil || !bytes.Contains(out.Payload, []byte("batchItemFailures")) {
		t.Fatalf("invoke the revoker: error %q, payload %s", aws.ToString(out.FunctionError), out.Payload)
	}
	out, err = lc.Invoke(ctx(t), &lambda.InvokeInput{
		FunctionName: aws.String(s.Function("gateway").FunctionName),
		Payload:      []byte(`{"Step":"createSecret","SecretId":"e2e/does-not-exist","ClientRequestToken":"00000000-0000-4000-8000-000000000000"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.FunctionError == nil || !bytes.Contains(out.Payload, []byte("errorMessage")) {
		t.Fatalf("invoke the gateway function for a missing secret: error %q, payload %s; want a function error", aws.ToString(out.FunctionError), out.Payload)
	}
}

// TestDemo runs the demo and checks its story, and that it never prints a
// key.
func TestDemo(t *testing.T) {
	needStack(t)
	var out bytes.Buffer
	c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := local.RunDemo(c, &out, local.DemoOptions{GracePeriod: 2 * time.Second}); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	story := out.String()
	t.Logf("demo output:\n%s", story)
	for _, want := range []string{"Before the rotation", "200 OK", "Grace period", "Revocation", "401 Unauthorized", "RotationSucceeded", "RevocationsDone", "every process the demo started has stopped"} {
		if !strings.Contains(story, want) {
			t.Errorf("the demo does not say %q", want)
		}
	}
	if m := keyPattern.FindString(story); m != "" {
		t.Errorf("the demo printed a key or the admin token (%d characters starting %q)", len(m), m[:3])
	}
}

// TestBench runs the benchmark with one sample and checks that it measured
// everything (the targets are the benchmark's business, not a test's).
func TestBench(t *testing.T) {
	needStack(t)
	c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	rs, err := local.RunBench(c, &out, local.BenchOptions{Samples: 1})
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out.String())
	}
	t.Logf("bench output:\n%s", out.String())
	if len(rs) != 2 {
		t.Fatalf("bench measured %d functions, want gateway and iam", len(rs))
	}
	for _, r := range rs {
		if r.ColdStart <= 0 || r.PeakRSS <= 0 || r.BinarySize <= 0 || r.Rotation <= 0 || r.SMCalls <= 0 || r.RevokerSMCalls <= 0 {
			t.Errorf("%s: a figure was not measured: %+v", r.Function, r)
		}
	}
	if keyPattern.MatchString(out.String()) {
		t.Error("the bench printed a key")
	}
}
