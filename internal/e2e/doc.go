// Package e2e holds the end-to-end tests of keyrotor on the local stack
// (package infra/local): moto_server behind the launcher that forwards
// Lambda invokes, the real functions built for this machine under the Lambda
// Runtime Interface Emulator, the reference gateway and the revoker's SQS
// poller, all on 127.0.0.1. Rotations are driven as on AWS, with
// Secrets Manager's RotateSecret (and the aws CLI).
//
// The tests are the six scenarios of the guide's "Testing and Validation"
// (happy path, grace period, rollback, vendor outage, Secrets Manager outage,
// concurrent rotations), the zero-downtime test (an application simulator
// reading the key through package client while rotations run), and checks
// of the demo and of the stack's own promises (no process left, no key
// printed). The tests that need two regions (the same secret name rotating
// in two regions against one shared gateway) start a second, two-region
// stack on first use. They are skipped with -short.
package e2e
