// Package iam rotates the access keys of IAM users.
//
// # Secret
//
// A secret rotated by this provider names an IAM user that is dedicated to
// it: every access key of that user belongs to the secret.
//
//	{"provider":"iam","key":"<secret access key>","key_id":"AKIA...","created_at":"2026-11-25T17:00:00Z","user_name":"payments-bot"}
//
// Create calls iam:CreateAccessKey for user_name; Verify calls
// sts:GetCallerIdentity signed with the new key alone and checks that the
// answer names user_name; Revoke calls iam:DeleteAccessKey (a key already
// gone is success); ListKeys returns every key of the user (IAM keys have no
// names) and LastUsed reads iam:GetAccessKeyLastUsed.
//
// # Permissions
//
// The rotation function's role (and the revoker's) needs, on the users it
// rotates (arn:aws:iam::ACCOUNT:user/PATH/*, or each user's ARN):
//
//	iam:CreateAccessKey
//	iam:DeleteAccessKey
//	iam:ListAccessKeys
//	iam:GetAccessKeyLastUsed
//
// Verify needs nothing: sts:GetCallerIdentity is allowed to every identity
// and cannot be denied. The rotated user itself needs no IAM permission for
// rotation.
//
// # Two keys per user
//
// IAM allows two access keys per user, inactive ones included. During a
// rotation the user holds the current key and the new one; the old key is
// deleted by the revoker after the grace period. A rotation that starts while
// the previous old key is still in its grace period finds two keys and fails
// with a Conflict error (it never deletes the key in grace), so the grace
// period must be shorter than the rotation interval. An emergency rotation
// (grace 0) revokes the old key at once.
//
// # Propagation
//
// A new access key can take a few seconds to be accepted everywhere on AWS.
// Until then Verify returns a Permission error; the rotation engine retries
// Permission in testSecret, so Verify itself does not retry.
//
// # Errors
//
// Errors are classified from the API error code by a table (LimitExceeded is
// Conflict, NoSuchEntity NotFound, AccessDenied and the signature errors
// Permission, throttling and service errors Transient, validation errors
// Invalid); transport and context errors are Transient. Error text never
// carries a secret access key.
package iam
