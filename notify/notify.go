// Package notify is keyrotor's event schema and its publisher to Amazon
// EventBridge: the rotation functions and the revoker announce each outcome
// someone may act on (a key rotated, an old key revoked, a step failed, an
// emergency started or finished, a revocation deferred because a key is
// still in use), so that applications that cannot re-read a secret on their
// own get reloaded, and people get told (docs/operations.md, "Events").
//
// The contract:
//   - Every event has source "keyrotor" (Source), one of the detail-types
//     below, and a Detail of schema version DetailVersion. Fields are added,
//     never renamed or re-typed, without a new version.
//   - Delivery is at least once: "Key Rotated" is published after
//     finishSecret's label move and again by a retried finishSecret that
//     finds the version already AWSCURRENT. Consumers dedupe on
//     new_version_id.
//   - An event never holds secret material: key ids, version ids, names and
//     error texts (which never hold a key, a RotationToken or a vendor
//     response body), nothing else.
//   - Publishing never fails the work it reports: a PutEvents error, or an
//     entry EventBridge refused, is logged and counted (EventsNotPublished),
//     and the caller goes on. An alarm on the count is the operator's
//     choice; the event is lost, the rotation is not.
package notify

import (
	"context"
	"time"
)

// Source is the source of every keyrotor event.
const Source = "keyrotor"

// DetailVersion is the version of the Detail schema.
const DetailVersion = 1

// Detail-types of keyrotor events.
const (
	// KeyRotated: the new key is AWSCURRENT (finishSecret moved the label).
	// At least once per rotation; dedupe on new_version_id.
	KeyRotated = "Key Rotated"
	// KeyRevoked: the revoker revoked the old key at the vendor, or found
	// it already gone there (already_gone).
	KeyRevoked = "Key Revoked"
	// RotationFailed: a rotation step failed (step, kind, reason).
	// Secrets Manager retries the step; the event repeats per failure.
	RotationFailed = "Rotation Failed"
	// EmergencyRotationStarted: createSecret minted the new key of an
	// emergency rotation (keyrotor rotate --emergency).
	EmergencyRotationStarted = "Emergency Rotation Started"
	// EmergencyRotationFinished: the new key of an emergency rotation is
	// AWSCURRENT and every superseded key's immediate revocation is queued;
	// each revocation then yields its own Key Revoked.
	EmergencyRotationFinished = "Emergency Rotation Finished"
	// RevocationDeferred: the revoker put off revoking the old key because
	// a key is still in use (reason); once per revocation message and reason.
	RevocationDeferred = "Revocation Deferred"
)

// DetailTypes are every detail-type, in documentation order.
var DetailTypes = []string{KeyRotated, KeyRevoked, RotationFailed, EmergencyRotationStarted, EmergencyRotationFinished, RevocationDeferred}

// Reasons of a RevocationDeferred event (Detail.Reason).
const (
	// DeferOldKeyInUse: the vendor saw the old key used after the grace period.
	DeferOldKeyInUse = "old_key_in_use"
	// DeferNewKeyUnused: the vendor has not seen the new key used since the
	// rotation finished.
	DeferNewKeyUnused = "new_key_unused"
)

// Event is one keyrotor event: its detail-type and detail.
type Event struct {
	DetailType string
	Detail     Detail
}

// Detail is the detail of every keyrotor event; fields that do not apply to
// a detail-type are omitted. It holds no secret material.
type Detail struct {
	Version    int    `json:"version"`
	SecretARN  string `json:"secret_arn"`
	SecretName string `json:"secret_name,omitempty"`
	Provider   string `json:"provider"`
	// NewVersionID is the rotation's version (its ClientRequestToken): the
	// version that is or will become AWSCURRENT. The dedupe key of Key Rotated.
	NewVersionID string `json:"new_version_id,omitempty"`
	// OldVersionID is the version that held the old key.
	OldVersionID string `json:"old_version_id,omitempty"`
	// NewKeyID and OldKeyID are the vendor's ids of the keys (never keys).
	NewKeyID string `json:"new_key_id,omitempty"`
	OldKeyID string `json:"old_key_id,omitempty"`
	// Emergency is true for an emergency rotation and its revocations.
	Emergency bool `json:"emergency,omitempty"`
	// Step is the failed step (Rotation Failed).
	Step string `json:"step,omitempty"`
	// Kind is the failure's class (Rotation Failed): transient, permission,
	// not_found, conflict, invalid or other.
	Kind string `json:"kind,omitempty"`
	// Reason is why: the error text of Rotation Failed (it names the
	// secret, the step and the failed operation), DeferOldKeyInUse or
	// DeferNewKeyUnused for Revocation Deferred, the revocation message's
	// reason (rotation, emergency, abandoned) for Key Revoked.
	Reason string `json:"reason,omitempty"`
	// AlreadyGone: the vendor no longer had the old key (Key Revoked).
	AlreadyGone bool `json:"already_gone,omitempty"`
	// Time is when the outcome happened.
	Time time.Time `json:"time"`
	// RevokeAfter is when the old key's revocation is due (Key Rotated:
	// the end of its grace period; Revocation Deferred: the original
	// not_before).
	RevokeAfter time.Time `json:"revoke_after,omitzero"`
	// FinishedAt is when the rotation that superseded the old key finished
	// (Key Revoked, Revocation Deferred).
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// OldKeyLastUsed is when the vendor last saw the old key used
	// (Revocation Deferred with old_key_in_use).
	OldKeyLastUsed time.Time `json:"old_key_last_used,omitzero"`
	// RetryIn is when the deferred revocation is looked at again, in seconds.
	RetryIn int `json:"retry_in_seconds,omitempty"`
}

// Publisher publishes events. Publish never fails the caller's work: it
// logs and counts its own failures. The rotation engine and the revoker
// declare their own one-method interfaces that *Bus satisfies.
type Publisher interface {
	Publish(ctx context.Context, e Event)
}

// MaxReasonLen bounds Detail.Reason: EventBridge takes 256 KB per entry,
// and a reason is for people.
const MaxReasonLen = 2048

// Truncate cuts a reason to MaxReasonLen bytes, on a rune boundary.
func Truncate(s string) string {
	if len(s) <= MaxReasonLen {
		return s
	}
	cut := MaxReasonLen
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
