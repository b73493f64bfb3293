// Package rotation is the Secrets Manager rotation engine: the four steps
// (createSecret, setSecret, testSecret, finishSecret) for one provider, with
// the staging labels AWSPENDING, AWSCURRENT and AWSPREVIOUS, following
// DESIGN §4.
//
// Every step starts with DescribeSecret and the AWS checks: rotation must not
// be disabled, the token must be a version, a token already AWSCURRENT is a
// finished retry (nil), and the token must be AWSPENDING. AWSPENDING is the
// write-ahead log: createSecret mints a key only while the token's version has
// no value, so a retry never mints twice, and a key whose storing failed is
// revoked before the error returns. finishSecret enqueues the revocation of
// the old key before it moves AWSCURRENT, because a retry after the move
// returns early and would never enqueue it.
//
// Before it mints, createSecret reconciles: a key at the vendor named as this
// secret's that no version of the secret holds is an orphan of an
// interrupted attempt and is revoked. A stored key is never an orphan, even
// without labels: superseded keys belong to the revoker and their grace
// period, however close together the rotations came.
//
// The engine publishes its outcomes (package notify) through Options.Events:
// Key Rotated right after finishSecret's label move, and again from a
// retried finishSecret that finds the version already AWSCURRENT (at least
// once; consumers dedupe on new_version_id), Rotation Failed for each failed
// step, and an emergency's start and end. Publishing never fails a step.
//
// The engine never logs a key, a RotationToken or a vendor response body.
package rotation
