package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/keyrotor/keyrotor/internal/testenv"
	"github.com/keyrotor/keyrotor/revocation"
)

// TestSampleEvents checks that events/*.json are the real shapes (typed
// decoding keeps every field; steps are camelCase) and drives the compiled
// gateway function with the four rotation events, after pointing them at a
// secret in moto, and the revoker with revoke-sqs.json.
func TestSampleEvents(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(t), "events")
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	s := newStack(t)
	fn := s.function("gateway")
	const secret = "demo/gateway"
	s.gatewaySecret(secret, map[string]string{"keyrotor:grace-period": "0s"})
	var token string
	for i, step := range steps {
		var e events.SecretsManagerSecretRotationEvent
		if err := json.Unmarshal(read(step+".json"), &e); err != nil {
			t.Fatal(err)
		}
		if e.Step != step || !strings.HasPrefix(e.SecretID, "arn:aws:secretsmanager:") || e.ClientRequestToken == "" || e.RotationToken == "" {
			t.Fatalf("%s.json: %+v", step, e)
		}
		if i == 0 {
			token = e.ClientRequestToken
			s.beginRotation(secret, token)
		} else if e.ClientRequestToken != token {
			t.Fatalf("%s.json has another ClientRequestToken", step)
		}
		// moto gives the secret another ARN suffix: use its name.
		e.SecretID = secret
		if _, err := fn.Invoke(context.Background(), e); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	if st := s.stages(secret)[token]; len(st) != 1 || st[0] != "AWSCURRENT" {
		t.Fatalf("stages %v after the sample events", st)
	}

	var sqsEvent events.SQSEvent
	if err := json.Unmarshal(read("revoke-sqs.json"), &sqsEvent); err != nil || len(sqsEvent.Records) != 1 {
		t.Fatalf("revoke-sqs.json: %v", err)
	}
	if _, err := revocation.Decode(sqsEvent.Records[0].Body); err != nil {
		t.Fatalf("revoke-sqs.json body: %v", err)
	}
	revoker := s.function("revoker")
	out, err := revoker.Invoke(context.Background(), read("revoke-sqs.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The sample names a secret this moto does not hold: the revoker must
	// report that one message as failed, not fail the batch.
	var resp events.SQSEventResponse
	if err := json.Unmarshal(out, &resp); err != nil || len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != sqsEvent.Records[0].MessageId {
		t.Fatalf("revoker response %s (%v)", out, err)
	}

	var sched events.EventBridgeEvent
	if err := json.Unmarshal(read("audit-schedule.json"), &sched); err != nil || sched.DetailType != "Scheduled Event" {
		t.Fatalf("audit-schedule.json: %v %+v", err, sched)
	}
}
