// Package integration holds the integration tests of the rotation functions:
// the compiled functions (functions/gateway, functions/iam,
// functions/revoker) run under the Lambda Runtime Interface Emulator against
// a real moto_server (Secrets Manager, SQS, IAM, STS) and the reference
// gateway over HTTP, all on 127.0.0.1. A fault proxy in front of moto and
// the gateway fails any chosen call, before or after it takes effect, to
// interrupt a rotation at every point.
//
// moto cannot run a function itself here; the tests do what Secrets Manager
// does: they begin a rotation (an empty AWSPENDING version for a new token)
// and invoke the four steps in order, retrying a failed step with the same
// token. The local stack (infra/local) drives RotateSecret end to end.
package integration
