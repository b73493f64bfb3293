package integration

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
)

// assertNoLeaks fails if any secret appears in any of the texts (function
// logs, errors, SQS message bodies).
func assertNoLeaks(t *testing.T, secrets []string, texts ...string) {
	t.Helper()
	all := strings.Join(texts, "\n")
	if len(all) == 0 {
		t.Fatal("nothing to search: the leak check proves nothing")
	}
	for _, s := range secrets {
		if s == "" {
			t.Fatal("an empty secret in the leak check")
		}
		if strings.Contains(all, s) {
			t.Fatalf("a secret (%d chars, starting %q) appears in logs, errors or messages", len(s), s[:min(4, len(s))])
		}
	}
}

// assertValidEMF checks that every line is valid EMF (every declared
// dimension and metric present at the root) and that the wanted metrics
// were emitted.
func assertValidEMF(t *testing.T, lines []string, want ...string) {
	t.Helper()
	seen := map[string]bool{}
	for _, l := range lines {
		var root map[string]any
		if err := json.Unmarshal([]byte(l), &root); err != nil {
			t.Fatalf("EMF line is not JSON: %s", l)
		}
		meta, _ := root["_aws"].(map[string]any)
		if _, ok := meta["Timestamp"].(float64); !ok {
			t.Fatalf("EMF line without a Timestamp: %s", l)
		}
		dirs, _ := meta["CloudWatchMetrics"].([]any)
		if len(dirs) == 0 {
			t.Fatalf("EMF line without CloudWatchMetrics: %s", l)
		}
		for _, d := range dirs {
			dir := d.(map[string]any)
			if ns, _ := dir["Namespace"].(string); ns == "" {
				t.Fatalf("no namespace: %s", l)
			}
			for _, set := range dir["Dimensions"].([]any) {
				for _, name := range set.([]any) {
					if _, ok := root[name.(string)].(string); !ok {
						t.Fatalf("dimension %v missing at the root: %s", name, l)
					}
				}
			}
			for _, m := range dir["Metrics"].([]any) {
				name := m.(map[string]any)["Name"].(string)
				if _, ok := root[name].(float64); !ok {
					t.Fatalf("metric %s missing at the root: %s", name, l)
				}
				seen[name] = true
			}
		}
	}
	for _, w := range want {
		if !seen[w] {
			t.Fatalf("no %s metric among %d EMF lines", w, len(lines))
		}
	}
}

type sentMessage struct {
	body  string
	delay int32
}

// recordingSQS sends through a real SQS client and records what it sent.
type recordingSQS struct {
	inner *sqs.Client
	mu    sync.Mutex
	sent  []sentMessage
}

func (r *recordingSQS) SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	out, err := r.inner.SendMessage(ctx, in, optFns...)
	if err == nil {
		r.mu.Lock()
		r.sent = append(r.sent, sentMessage{aws.ToString(in.MessageBody), in.DelaySeconds})
		r.mu.Unlock()
	}
	return out, err
}

// adminReader serves the gateway admin token to an in-process provider.
type adminReader struct{}

func (adminReader) Read(context.Context, string, providers.Credential) (adminsecret.Credential, error) {
	return adminsecret.Credential{Key: adminToken}, nil
}

func changeVisibility(queueURL, handle string) *sqs.ChangeMessageVisibilityInput {
	return &sqs.ChangeMessageVisibilityInput{QueueUrl: aws.String(queueURL), ReceiptHandle: aws.String(handle), VisibilityTimeout: 0}
}
