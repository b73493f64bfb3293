package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/keyrotor/keyrotor/metrics"
)

// MetricNotPublished counts events that could not be published (PutEvents
// failed or EventBridge refused the entry).
const MetricNotPublished = "EventsNotPublished"

// DefaultBusName is the event bus when EVENT_BUS_NAME is unset.
const DefaultBusName = "default"

// publishTimeout bounds one PutEvents: an event must not hold up the step
// or the revocation it reports.
const publishTimeout = 3 * time.Second

// EventBridge is the one EventBridge call the publisher makes.
type EventBridge interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// Bus publishes events to an EventBridge bus. A nil *Bus, or one without a
// client, publishes nothing, so callers publish unconditionally.
type Bus struct {
	Client EventBridge
	// Name is the bus's name or ARN (DefaultBusName when empty).
	Name string
	// Logger receives the failures (default slog.Default()).
	Logger *slog.Logger
	// Metrics counts the failures (MetricNotPublished); nil discards.
	Metrics *metrics.EMF
	// Now stamps the entries (default time.Now).
	Now func() time.Time
}

// Publish sends one event. It never fails its caller: a failure is logged
// and counted.
func (b *Bus) Publish(ctx context.Context, e Event) {
	if b == nil || b.Client == nil {
		return
	}
	if err := b.put(ctx, e); err != nil {
		log := b.Logger
		if log == nil {
			log = slog.Default()
		}
		log.Warn("could not publish an event; the work it reports is not affected", "detail_type", e.DetailType,
			"secret_id", e.Detail.SecretARN, "error", err.Error())
		b.Metrics.Put([]metrics.Dim{{Name: "DetailType", Value: e.DetailType}}, nil, metrics.Metric{Name: MetricNotPublished, Value: 1, Unit: metrics.Count})
	}
}

func (b *Bus) put(ctx context.Context, e Event) error {
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	d := e.Detail
	d.Version = DetailVersion
	d.Reason = Truncate(d.Reason)
	if d.Time.IsZero() {
		d.Time = now().UTC()
	}
	body, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode the %s event: %w", e.DetailType, err)
	}
	name := b.Name
	if name == "" {
		name = DefaultBusName
	}
	entry := ebtypes.PutEventsRequestEntry{
		Source: aws.String(Source), DetailType: aws.String(e.DetailType), Detail: aws.String(string(body)),
		EventBusName: aws.String(name), Time: aws.Time(d.Time),
	}
	if strings.HasPrefix(d.SecretARN, "arn:") {
		entry.Resources = []string{d.SecretARN}
	}
	// The caller's deadline may be nearly spent (a failed step reports at
	// its end): keep its values, give the call its own short budget.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	out, err := b.Client.PutEvents(pctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{entry}})
	if err != nil {
		return fmt.Errorf("eventbridge.PutEvents: %w", err)
	}
	if out.FailedEntryCount > 0 {
		why := "no reason given"
		if len(out.Entries) > 0 && out.Entries[0].ErrorCode != nil {
			why = aws.ToString(out.Entries[0].ErrorCode) + ": " + aws.ToString(out.Entries[0].ErrorMessage)
		}
		return fmt.Errorf("eventbridge.PutEvents: the entry was refused (%s)", why)
	}
	return nil
}
