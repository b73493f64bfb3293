package revocation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// MessageVersion is the version of the message format this code writes.
// Version 2 added Reason and FinishedAt; version-1 messages still in the queue
// after an upgrade (they can wait hours) are still read and honoured.
const MessageVersion = 2

// Reasons a revocation was asked for (Message.Reason).
const (
	// ReasonRotation: a rotation superseded the key; it is revoked after the
	// grace period, once the new key is in use where the vendor says so.
	ReasonRotation = "rotation"
	// ReasonEmergency: an emergency rotation superseded the key (it may have
	// leaked); revoked as soon as not_before passes, without waiting for use.
	ReasonEmergency = "emergency"
	// ReasonAbandoned: the key was minted by a rotation that never finished
	// (`keyrotor unstick`, or AWSPENDING dropped by a manual put); it was
	// never AWSCURRENT, and is revoked once no step can still be running.
	ReasonAbandoned = "abandoned"
)

// MaxDelay is the longest delay SQS allows on a message.
const MaxDelay = 900 * time.Second

// Message asks the revoker to revoke the old key of a secret once NotBefore
// has passed. It carries no secret material: the revoker reads the secret
// for the provider fields it needs.
type Message struct {
	Version      int    `json:"version"`
	SecretID     string `json:"secret_id"`
	Provider     string `json:"provider"`
	KeyID        string `json:"key_id"`
	OldVersionID string `json:"old_version_id"`
	// NewVersionID is the version the rotation made AWSCURRENT. While the
	// old version is AWSPREVIOUS under another current version, a later
	// rotation owns this key's revocation (see Handler).
	NewVersionID string    `json:"new_version_id,omitempty"`
	NotBefore    time.Time `json:"not_before"`
	// Attempt counts the times the message was sent again: while waiting
	// for NotBefore and while deferring a key still in use.
	Attempt int `json:"attempt"`
	// Reason says why the key is to be revoked (ReasonRotation,
	// ReasonEmergency, ReasonAbandoned). Decode fills it for version 1.
	Reason string `json:"reason,omitempty"`
	// FinishedAt is when finishSecret queued the message: only use of the
	// new key after it counts as use by applications (testSecret's own
	// verification happens before). Zero in version 1 and for abandoned keys.
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// Announced lists, space-separated, the reasons (notify.DeferOldKeyInUse,
	// notify.DeferNewKeyUnused) a Revocation Deferred event was already
	// published for, so that a message deferred every few minutes for hours
	// announces each reason once. (A string keeps Message comparable.)
	Announced string `json:"announced,omitempty"`
	// Emergency is version 1's spelling of ReasonEmergency; Decode turns it
	// into Reason and it is never written.
	Emergency bool `json:"emergency,omitempty"`
}

// normalized spells version 1's Emergency as Reason, and an empty Reason as
// ReasonRotation.
func (m Message) normalized() Message {
	if m.Reason == "" {
		m.Reason = ReasonRotation
		if m.Emergency {
			m.Reason = ReasonEmergency
		}
	}
	m.Emergency = false
	return m
}

// IsEmergency reports whether the revocation must not wait for use.
func (m Message) IsEmergency() bool { return m.Reason == ReasonEmergency || m.Emergency }

// ErrInvalidMessage is wrapped by Decode's errors.
var ErrInvalidMessage = errors.New("invalid revocation message")

// Decode parses and checks a message body.
func Decode(body string) (Message, error) {
	var m Message
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return Message{}, fmt.Errorf("%w: not JSON of the expected shape", ErrInvalidMessage)
	}
	switch {
	case m.Version != 1 && m.Version != MessageVersion:
		return Message{}, fmt.Errorf("%w: version %d, want 1 or %d", ErrInvalidMessage, m.Version, MessageVersion)
	case m.SecretID == "", m.Provider == "", m.KeyID == "", m.OldVersionID == "":
		return Message{}, fmt.Errorf("%w: secret_id, provider, key_id and old_version_id are required", ErrInvalidMessage)
	case m.NotBefore.IsZero():
		return Message{}, fmt.Errorf("%w: not_before is required", ErrInvalidMessage)
	}
	m = m.normalized()
	switch m.Reason {
	case ReasonRotation, ReasonEmergency, ReasonAbandoned:
	default:
		return Message{}, fmt.Errorf("%w: reason %q is not rotation, emergency or abandoned", ErrInvalidMessage, m.Reason)
	}
	return m, nil
}

// SQS is the one SQS call the queue makes.
type SQS interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// Queue sends revocation messages to the revocation queue.
type Queue struct {
	SQS SQS
	URL string
}

// Send sends m with a delay of min(delay, 15 min). A delay ≤ 0 sends it
// without delay.
func (q Queue) Send(ctx context.Context, m Message, delay time.Duration) error {
	if q.URL == "" {
		return errors.New("no revocation queue configured (REVOCATION_QUEUE_URL)")
	}
	m.Version = MessageVersion
	if m.Reason == "" {
		m.Reason = ReasonRotation
	}
	m.Emergency = false
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = q.SQS.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:     aws.String(q.URL),
		MessageBody:  aws.String(string(b)),
		DelaySeconds: DelaySeconds(delay),
	})
	if err != nil {
		return fmt.Errorf("sqs.SendMessage: revocation of key %s of %s: %w", m.KeyID, m.SecretID, err)
	}
	return nil
}

// DelaySeconds converts a delay to SQS DelaySeconds: rounded up, at most 900.
func DelaySeconds(d time.Duration) int32 {
	if d <= 0 {
		return 0
	}
	if d >= MaxDelay {
		return int32(MaxDelay / time.Second)
	}
	return int32((d + time.Second - 1) / time.Second)
}
