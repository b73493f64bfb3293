package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SQSAPI is what the event-source poller calls.
type SQSAPI interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
}

// Invoker invokes a function with a payload and returns its result; a
// function error is an error.
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// PollerStats counts what an event-source poller did.
type PollerStats struct {
	Batches   int // invokes
	Received  int // messages handed to the function
	Deleted   int // messages acknowledged
	Failed    int // messages left on the queue (batchItemFailures or a failed invoke)
	Errors    int // invokes that failed as a whole
	LastError string
}

// Poller is an SQS event-source mapping as Lambda runs one with
// ReportBatchItemFailures: it long-polls the queue for batches of up to
// BatchSize messages, invokes the function with an SQS event, and deletes the
// messages the function did not list in batchItemFailures. A failed invoke,
// or a response naming an unknown message, leaves the whole batch on the
// queue; the messages come back after the queue's visibility timeout, and the
// queue's RedrivePolicy moves them to the dead-letter queue after
// maxReceiveCount receives (moto applies it, as SQS does). Run and PollOnce
// may run in several goroutines at once, as Lambda runs several pollers.
type Poller struct {
	SQS       SQSAPI
	QueueURL  string
	QueueARN  string
	Region    string
	Function  Invoker
	BatchSize int32 // 1..10, default 10
	// WaitTime is the long-poll wait (default 5 s; Lambda uses 20 s).
	WaitTime time.Duration
	Logger   *slog.Logger

	mu    sync.Mutex
	stats PollerStats
}

// Stats returns the counts so far.
func (p *Poller) Stats() PollerStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Run polls until ctx ends.
func (p *Poller) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := p.PollOnce(ctx); err != nil && ctx.Err() == nil {
			p.logger().Warn("SQS poller", "queue", p.QueueURL, "error", err.Error())
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

// PollOnce receives one batch (waiting up to WaitTime) and hands it to the
// function. It returns nil when the queue was empty.
func (p *Poller) PollOnce(ctx context.Context) error {
	batch := p.BatchSize
	if batch <= 0 || batch > 10 {
		batch = 10
	}
	wait := p.WaitTime
	if wait <= 0 {
		wait = 5 * time.Second
	}
	out, err := p.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(p.QueueURL),
		MaxNumberOfMessages:         batch,
		WaitTimeSeconds:             int32(wait / time.Second),
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		MessageAttributeNames:       []string{"All"},
	})
	if err != nil {
		return fmt.Errorf("receive from %s: %w", p.QueueURL, err)
	}
	if len(out.Messages) == 0 {
		return nil
	}
	event := p.event(out.Messages)
	payload, err := json.Marshal(event)
	if err != nil {
		return fmt.Errorf("encode the SQS event: %w", err)
	}
	p.add(func(s *PollerStats) { s.Batches++; s.Received += len(out.Messages) })
	result, err := p.Function.Invoke(ctx, payload)
	if err != nil {
		// Lambda leaves the whole batch on the queue.
		p.add(func(s *PollerStats) { s.Errors++; s.Failed += len(out.Messages); s.LastError = err.Error() })
		return fmt.Errorf("invoke with %d messages: %w", len(out.Messages), err)
	}
	failed, err := batchItemFailures(result, out.Messages)
	if err != nil {
		p.add(func(s *PollerStats) { s.Errors++; s.Failed += len(out.Messages); s.LastError = err.Error() })
		return err
	}
	var entries []sqstypes.DeleteMessageBatchRequestEntry
	for i, m := range out.Messages {
		if failed[aws.ToString(m.MessageId)] {
			continue
		}
		entries = append(entries, sqstypes.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
	}
	p.add(func(s *PollerStats) { s.Failed += len(failed) })
	if len(entries) == 0 {
		return nil
	}
	del, err := p.SQS.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(p.QueueURL), Entries: entries})
	if err != nil {
		return fmt.Errorf("delete %d handled messages: %w", len(entries), err)
	}
	p.add(func(s *PollerStats) { s.Deleted += len(del.Successful) })
	if len(del.Failed) > 0 {
		return fmt.Errorf("delete handled messages: %d of %d failed", len(del.Failed), len(entries))
	}
	return nil
}

// batchItemFailures reads the function's partial batch response. Like
// Lambda, it treats a response naming an id that is not in the batch (or an
// empty id) as a failure of the whole batch.
func batchItemFailures(result []byte, batch []sqstypes.Message) (map[string]bool, error) {
	failed := map[string]bool{}
	if len(result) == 0 || string(result) == "null" {
		return failed, nil
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal(result, &resp); err != nil {
		return nil, errors.New("the function's response is not a partial batch response; the whole batch stays on the queue")
	}
	ids := map[string]bool{}
	for _, m := range batch {
		ids[aws.ToString(m.MessageId)] = true
	}
	for _, f := range resp.BatchItemFailures {
		if !ids[f.ItemIdentifier] {
			return nil, fmt.Errorf("batchItemFailures names %q, which is not in the batch; the whole batch stays on the queue", f.ItemIdentifier)
		}
		failed[f.ItemIdentifier] = true
	}
	return failed, nil
}

func (p *Poller) event(msgs []sqstypes.Message) events.SQSEvent {
	var e events.SQSEvent
	for _, m := range msgs {
		rec := events.SQSMessage{
			MessageId:         aws.ToString(m.MessageId),
			ReceiptHandle:     aws.ToString(m.ReceiptHandle),
			Body:              aws.ToString(m.Body),
			Md5OfBody:         aws.ToString(m.MD5OfBody),
			Attributes:        map[string]string{},
			MessageAttributes: map[string]events.SQSMessageAttribute{},
			EventSourceARN:    p.QueueARN,
			EventSource:       "aws:sqs",
			AWSRegion:         p.Region,
		}
		for k, v := range m.Attributes {
			rec.Attributes[k] = v
		}
		for k, v := range m.MessageAttributes {
			rec.MessageAttributes[k] = events.SQSMessageAttribute{
				DataType: aws.ToString(v.DataType), StringValue: v.StringValue, BinaryValue: v.BinaryValue,
			}
		}
		rec.Md5OfMessageAttributes = aws.ToString(m.MD5OfMessageAttributes)
		e.Records = append(e.Records, rec)
	}
	return e
}

func (p *Poller) add(f func(*PollerStats)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.stats)
}

func (p *Poller) logger() *slog.Logger {
	if p.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Logger
}
