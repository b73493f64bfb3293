package local

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/keyrotor/keyrotor/notify"
)

// EventsQueueName is the queue that receives, in each region, every keyrotor
// event the functions publish to the default bus (rule EventsRuleName), so
// that tests and the demo can show them: on AWS, a rule of the operator's
// choosing does what this one does (docs/operations.md, "Events").
const (
	EventsQueueName = "keyrotor-events"
	EventsRuleName  = "keyrotor-events"
)

// createEventsQueue creates the region's events queue and its rule.
func (r *RegionStack) createEventsQueue(ctx context.Context) (err error) {
	r.EventsQueueURL, err = CreateEventsQueue(ctx, r.aws, r.Name)
	return err
}

// CreateEventsQueue creates, on the moto cfg points at, the queue
// EventsQueueName and the rule on the default bus that delivers every event
// of source keyrotor to it, and returns the queue's URL.
func CreateEventsQueue(ctx context.Context, cfg aws.Config, region string) (string, error) {
	q, err := sqs.NewFromConfig(cfg).CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(EventsQueueName)})
	if err != nil {
		return "", fmt.Errorf("create queue %s: %w", EventsQueueName, err)
	}
	eb := eventbridge.NewFromConfig(cfg)
	pattern, _ := json.Marshal(map[string][]string{"source": {notify.Source}})
	if _, err := eb.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String(EventsRuleName), EventBusName: aws.String(notify.DefaultBusName),
		EventPattern: aws.String(string(pattern))}); err != nil {
		return "", fmt.Errorf("create the events rule %s: %w", EventsRuleName, err)
	}
	if _, err := eb.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String(EventsRuleName), EventBusName: aws.String(notify.DefaultBusName),
		Targets: []ebtypes.Target{{Id: aws.String(EventsQueueName), Arn: aws.String(queueARN(region, EventsQueueName))}}}); err != nil {
		return "", fmt.Errorf("target the events rule at queue %s: %w", EventsQueueName, err)
	}
	return aws.ToString(q.QueueUrl), nil
}

// Event is one keyrotor event as the events queue holds it: EventBridge's
// envelope around notify's detail.
type Event struct {
	ID         string        `json:"id"`
	Source     string        `json:"source"`
	DetailType string        `json:"detail-type"`
	Time       time.Time     `json:"time"`
	Resources  []string      `json:"resources"`
	Detail     notify.Detail `json:"detail"`
}

// ReceiveEvents takes the events waiting on the region's events queue (at
// most one receive's worth, waiting up to wait for the first).
func (r *RegionStack) ReceiveEvents(ctx context.Context, wait time.Duration) ([]Event, error) {
	return ReceiveEvents(ctx, r.clients.sqs, r.EventsQueueURL, wait)
}

// ReceiveEvents takes the events waiting on the first region's events queue.
func (s *Stack) ReceiveEvents(ctx context.Context, wait time.Duration) ([]Event, error) {
	return s.primary().ReceiveEvents(ctx, wait)
}

// EventsSQS is what ReceiveEvents calls.
type EventsSQS interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
}

// ReceiveEvents takes the events waiting on an events queue (at most one
// receive's worth, waiting up to wait for the first) and deletes them. A
// body that is not an event is skipped.
func ReceiveEvents(ctx context.Context, c EventsSQS, queueURL string, wait time.Duration) ([]Event, error) {
	out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(queueURL),
		MaxNumberOfMessages: 10, WaitTimeSeconds: int32(wait / time.Second)})
	if err != nil {
		return nil, fmt.Errorf("receive from queue %s: %w", EventsQueueName, err)
	}
	var events []Event
	for _, m := range out.Messages {
		var e Event
		if json.Unmarshal([]byte(aws.ToString(m.Body)), &e) == nil {
			events = append(events, e)
		}
		if _, err := c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(queueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
			return events, fmt.Errorf("delete from queue %s: %w", EventsQueueName, err)
		}
	}
	return events, nil
}
