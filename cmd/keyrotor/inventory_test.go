package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// --stack looks each provider's rotation function up in Lambda once, however
// many secrets name the provider.
func TestResolverLooksEachProviderUpOnce(t *testing.T) {
	var (
		mu    sync.Mutex
		calls = map[string]int{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		mu.Lock()
		calls[name]++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"Configuration":{"FunctionName":%q,"FunctionArn":"arn:aws:lambda:us-east-1:123456789012:function:%s"}}`, name, name)
	}))
	defer srv.Close()
	cfg := aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "test", "")}
	t.Setenv("KEYROTOR_GATEWAY_FUNCTION_ARN", "")
	t.Setenv("KEYROTOR_SENDGRID_FUNCTION_ARN", "")
	flags := functionARNFlags{stack: "keyrotor"}
	resolve, err := flags.resolver(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		for _, p := range []string{"gateway", "sendgrid"} {
			arn, err := resolve(p)
			if err != nil {
				t.Fatal(err)
			}
			if want := "arn:aws:lambda:us-east-1:123456789012:function:keyrotor-" + p + "-rotation"; arn != want {
				t.Fatalf("%s: %s, want %s", p, arn, want)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["keyrotor-gateway-rotation"] != 1 || calls["keyrotor-sendgrid-rotation"] != 1 || len(calls) != 2 {
		t.Errorf("lambda.GetFunction calls: %v, want one per provider", calls)
	}
}

// --function-arn names a provider keyrotor knows, with a rotation function:
// a misspelt one is a usage error, not silently unused; the guide's
// spellings resolve to the provider.
func TestFunctionARNProviders(t *testing.T) {
	const arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
	for _, bad := range []string{"mailchimp=" + arn, "sendgird=" + arn, "stripe=" + arn} {
		flags := functionARNFlags{arns: []string{bad}}
		if _, err := flags.resolver(context.Background(), aws.Config{}); err == nil {
			t.Errorf("--function-arn %s accepted", bad)
		} else if _, usage := err.(usageError); !usage {
			t.Errorf("--function-arn %s: %v, want a usage error", bad, err)
		}
	}
	t.Setenv("KEYROTOR_SENDGRID_FUNCTION_ARN", "")
	flags := functionARNFlags{arns: []string{"SendGrid=" + arn}}
	resolve, err := flags.resolver(context.Background(), aws.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := resolve("sendgrid"); err != nil || got != arn {
		t.Fatalf("resolve(sendgrid) = %q, %v", got, err)
	}
}
