package local

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/keyrotor/keyrotor/internal/testenv"
)

// fakeFunction stands for the revoker: it fails the records whose body is
// "fail" (batchItemFailures) and records what it was handed.
type fakeFunction struct {
	mu      sync.Mutex
	batches [][]string // bodies per invoke
	err     error      // fail whole invokes
}

func (f *fakeFunction) Invoke(_ context.Context, payload []byte) ([]byte, error) {
	var ev events.SQSEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var bodies []string
	resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
	for _, r := range ev.Records {
		bodies = append(bodies, r.Body)
		if r.Body == "fail" {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
		}
	}
	f.batches = append(f.batches, bodies)
	if f.err != nil {
		return nil, f.err
	}
	return json.Marshal(resp)
}

func (f *fakeFunction) handed() (map[string]int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := map[string]int{}
	largest := 0
	for _, b := range f.batches {
		largest = max(largest, len(b))
		for _, body := range b {
			n[body]++
		}
	}
	return n, largest
}

// queues creates a queue with a 1 s visibility timeout and a DLQ after
// maxReceive receives, in a moto of its own.
func queues(t *testing.T, maxReceive int) (*sqs.Client, string, string) {
	t.Helper()
	m := testenv.StartMoto(t, nil)
	c := sqs.NewFromConfig(m.Config(t))
	ctx := context.Background()
	dlq, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("dlq")})
	if err != nil {
		t.Fatal(err)
	}
	redrive, _ := json.Marshal(map[string]string{"deadLetterTargetArn": queueARN(Region, "dlq"), "maxReceiveCount": strconv.Itoa(maxReceive)})
	q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("q"), Attributes: map[string]string{
		"VisibilityTimeout": "1", "RedrivePolicy": string(redrive),
	}})
	if err != nil {
		t.Fatal(err)
	}
	return c, aws.ToString(q.QueueUrl), aws.ToString(dlq.QueueUrl)
}

func send(t *testing.T, c *sqs.Client, url string, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if _, err := c.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPollerDeletesOnlyHandledAndRedrives: batches respect BatchSize; the
// messages the function did not list in batchItemFailures are deleted and
// never handed again; a failed message comes back after the visibility
// timeout and reaches the DLQ after maxReceiveCount receives.
func TestPollerDeletesOnlyHandledAndRedrives(t *testing.T) {
	if testing.Short() {
		t.Skip("starts moto_server")
	}
	c, url, dlq := queues(t, 2)
	send(t, c, url, "ok1", "ok2", "ok3", "fail")
	fn := &fakeFunction{}
	p := &Poller{SQS: c, QueueURL: url, QueueARN: queueARN(Region, "q"), Region: Region, Function: fn, BatchSize: 3, WaitTime: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(time.Minute)
	var inDLQ []string
	for len(inDLQ) == 0 {
		if time.Now().After(deadline) {
			n, _ := fn.handed()
			t.Fatalf("the failed message did not reach the DLQ; handed %v, stats %+v", n, p.Stats())
		}
		out, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(dlq), WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			inDLQ = append(inDLQ, aws.ToString(m.Body))
		}
	}
	n, largest := fn.handed()
	if len(inDLQ) != 1 || inDLQ[0] != "fail" {
		t.Fatalf("DLQ holds %v, want only the failed message", inDLQ)
	}
	if n["ok1"] != 1 || n["ok2"] != 1 || n["ok3"] != 1 {
		t.Fatalf("handled messages were handed %v times; want once each (deleted after success)", n)
	}
	if n["fail"] != 2 {
		t.Fatalf("the failed message was handed %d times, want maxReceiveCount=2", n["fail"])
	}
	if largest > 3 {
		t.Fatalf("a batch of %d messages, BatchSize is 3", largest)
	}
	if st := p.Stats(); st.Deleted != 3 || st.Failed != 2 {
		t.Fatalf("stats %+v, want 3 deleted and 2 failed", st)
	}
}

// TestPollerKeepsBatchOnInvokeError: a failed invoke leaves the whole batch
// on the queue, as Lambda does.
func TestPollerKeepsBatchOnInvokeError(t *testing.T) {
	if testing.Short() {
		t.Skip("starts moto_server")
	}
	c, url, _ := queues(t, 5)
	send(t, c, url, "a", "b")
	fn := &fakeFunction{err: errors.New("function crashed")}
	p := &Poller{SQS: c, QueueURL: url, QueueARN: queueARN(Region, "q"), Region: Region, Function: fn, BatchSize: 10, WaitTime: time.Second}
	ctx := context.Background()
	for p.Stats().Received < 2 {
		_ = p.PollOnce(ctx)
	}
	fn.mu.Lock()
	fn.err = nil
	fn.mu.Unlock()
	deadline := time.Now().Add(time.Minute)
	for p.Stats().Deleted < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the batch did not come back after the failed invoke: %+v", p.Stats())
		}
		if err := p.PollOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := fn.handed(); n["a"] < 2 || n["b"] < 2 {
		t.Fatalf("handed %v: the batch of the failed invoke was deleted", n)
	}
}

// TestBatchItemFailuresUnknownID: a response naming a message that is not in
// the batch fails the whole batch, as Lambda does.
func TestBatchItemFailuresUnknownID(t *testing.T) {
	batch := []sqstypes.Message{{MessageId: aws.String("m1")}, {MessageId: aws.String("m2")}}
	if _, err := batchItemFailures([]byte(`{"batchItemFailures":[{"itemIdentifier":"nope"}]}`), batch); err == nil {
		t.Fatal("an unknown id was accepted")
	}
	failed, err := batchItemFailures([]byte(`{"batchItemFailures":[{"itemIdentifier":"m2"}]}`), batch)
	if err != nil || !failed["m2"] || failed["m1"] {
		t.Fatalf("failed=%v err=%v, want only m2", failed, err)
	}
	if failed, err := batchItemFailures([]byte(`null`), batch); err != nil || len(failed) != 0 {
		t.Fatalf("a null response: %v %v, want nothing failed", failed, err)
	}
}
