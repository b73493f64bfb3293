package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/keyrotor/keyrotor/metrics"
	"github.com/keyrotor/keyrotor/notify"
)

type recordingEventBridge struct {
	in  []*eventbridge.PutEventsInput
	out *eventbridge.PutEventsOutput
}

func (r *recordingEventBridge) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	r.in = append(r.in, in)
	if r.out != nil {
		return r.out, nil
	}
	return &eventbridge.PutEventsOutput{}, nil
}

// TestEntryFollowsTheSchema: one entry with source keyrotor, the detail-type,
// the bus, the secret as resource, and the detail as documented.
func TestEntryFollowsTheSchema(t *testing.T) {
	eb := &recordingEventBridge{}
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	arn := "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/app-key-AbCdEf"
	b := &notify.Bus{Client: eb, Name: "ops"}
	b.Publish(context.Background(), notify.Event{DetailType: notify.KeyRotated, Detail: notify.Detail{
		SecretARN: arn, SecretName: "prod/app-key", Provider: "gateway", NewVersionID: "v2", OldVersionID: "v1",
		NewKeyID: "k2", OldKeyID: "k1", Time: at, RevokeAfter: at.Add(2 * time.Hour)}})
	if len(eb.in) != 1 || len(eb.in[0].Entries) != 1 {
		t.Fatalf("PutEvents inputs %+v, want one entry", eb.in)
	}
	en := eb.in[0].Entries[0]
	if aws.ToString(en.Source) != "keyrotor" || aws.ToString(en.DetailType) != "Key Rotated" || aws.ToString(en.EventBusName) != "ops" ||
		len(en.Resources) != 1 || en.Resources[0] != arn || !aws.ToTime(en.Time).Equal(at) {
		t.Fatalf("entry %+v", en)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(aws.ToString(en.Detail)), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"version": 1.0, "secret_arn": arn, "secret_name": "prod/app-key", "provider": "gateway",
		"new_version_id": "v2", "old_version_id": "v1", "new_key_id": "k2", "old_key_id": "k1",
		"time": "2026-11-25T12:00:00Z", "revoke_after": "2026-11-25T14:00:00Z"}
	if len(got) != len(want) {
		t.Fatalf("detail %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("detail[%s] = %v, want %v (detail %v)", k, got[k], v, got)
		}
	}
}

// TestRefusedEntryIsCountedAndLogged: an entry EventBridge refuses (the call
// itself succeeded) is a lost event: logged and counted, never returned.
func TestRefusedEntryIsCountedAndLogged(t *testing.T) {
	eb := &recordingEventBridge{out: &eventbridge.PutEventsOutput{FailedEntryCount: 1,
		Entries: []ebtypes.PutEventsResultEntry{{ErrorCode: aws.String("InternalFailure"), ErrorMessage: aws.String("try again")}}}}
	logs, emf := &bytes.Buffer{}, &bytes.Buffer{}
	b := &notify.Bus{Client: eb, Logger: slog.New(slog.NewJSONHandler(logs, nil)), Metrics: metrics.New(emf, "", nil)}
	b.Publish(context.Background(), notify.Event{DetailType: notify.RotationFailed, Detail: notify.Detail{SecretARN: "arn:x"}})
	if aws.ToString(eb.in[0].Entries[0].EventBusName) != notify.DefaultBusName {
		t.Fatalf("bus %q, want the default", aws.ToString(eb.in[0].Entries[0].EventBusName))
	}
	if !strings.Contains(emf.String(), `"EventsNotPublished":1`) || !strings.Contains(logs.String(), "InternalFailure") {
		t.Fatalf("a refused entry was not counted and logged:\n%s\n%s", emf, logs)
	}
	var nilBus *notify.Bus
	nilBus.Publish(context.Background(), notify.Event{}) // no client, no panic
}

// TestReasonIsBounded: a long reason is cut on a rune boundary.
func TestReasonIsBounded(t *testing.T) {
	s := strings.Repeat("é", notify.MaxReasonLen)
	got := notify.Truncate(s)
	if len(got) > notify.MaxReasonLen+len("…") || !strings.HasSuffix(got, "…") || !utf8.ValidString(got) {
		t.Fatalf("truncated to %d bytes", len(got))
	}
}
