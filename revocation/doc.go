// Package revocation revokes old keys after their grace period: the message
// a rotation function sends to the revocation queue (DESIGN §5; no secret
// material in it), and the SQS handler of the revoker function.
//
// SQS delays stop at 15 minutes, so while a message's not_before is ahead the
// handler sends it again with the remaining delay and acknowledges the
// original.
//
// A message is a request, not an authority: anyone who can send to the queue,
// or one compromised rotation function, could name any key. At fire time the
// handler reads the version the message names (old_version_id) and revokes
// only if that version holds the message's key_id under its provider, the key
// is not an admin secret's credential, and no AWSCURRENT or AWSPENDING holds
// it; it revokes at the old version's owner (its fields say whose key it is),
// and the providers check that owner's binding to the secret. A message
// nothing proves is refused: acknowledged, logged and counted
// (RevocationsRefused, alarmed). A key of an abandoned rotation is revoked
// only if the vendor lists it under this secret's identity names.
//
// Labels are checked before the vendor calls and again right before the
// revoke: a rollback (which sets keyrotor:rollback-until before it moves
// labels, and makes the revoker defer) or a later rotation may have moved
// them meanwhile. A message whose rotation has not finished yet (an
// emergency's grace-0 message is visible before the label move) is sent
// again, never dropped; one whose rotation was abandoned is acknowledged and
// counted (RevocationsAbandoned), since its key is still live.
//
// Where the vendor reports last use, the handler defers while the new key has
// not been used since the rotation finished (finished_at; testSecret's own
// verification comes before) or the old key was used after the grace period,
// up to a maximum delay. Revoking a key that is already gone at its owner is
// success. Each key revoked (or found gone) is announced with a Key Revoked
// event, and each deferral for use with a Revocation Deferred event, once per
// message and reason (the message sent again records the reasons announced);
// publishing never fails a message (package notify). Failures are reported per message (batchItemFailures), each message
// with its own share of the batch's time, so that they return after the
// visibility timeout and end in the dead-letter queue, which is alarmed.
package revocation
