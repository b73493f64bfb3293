// Package revocation revokes old keys after their grace period: the message
// a rotation function sends to the revocation queue (DESIGN §5; no secret
// material in it), and the SQS handler of the revoker function.
//
// SQS delays stop at 15 minutes, so while a message's not_before is ahead the
// handler sends it again with the remaining delay and acknowledges the
// original. At fire time it reads the secret and refuses to revoke a key
// that is AWSCURRENT or AWSPENDING again (a rollback happened); where the
// vendor reports last use it defers while the new key is unused or the old
// key was used after the grace period, up to a maximum delay. Revoking a key
// that is already gone is success. Failures are reported per message
// (batchItemFailures) so that they return after the visibility timeout and
// end in the dead-letter queue, which is alarmed.
package revocation
