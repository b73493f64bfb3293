package operator

import (
	"context"

	"github.com/keyrotor/keyrotor/audit"
)

// The tests reach what the operator gained for issue 10 only through this
// file, so that they can be run once against the code before it (with this
// file swapped for stubs by `go test -overlay`) and fail there on an
// assertion, not on compilation.

// wire gives the operator the rotation function's configuration, the
// revocation queue and IAM.
func wire(e *env) {
	e.op.Lambda, e.op.SQS, e.op.IAM = e.lambda, e.sqs, e.iam
}

func setFallbackQueue(op *Operator, url string) { op.RevocationQueueURL = url }

const abandonMargin = AbandonMarginDefault

func graceUnknown(st Status) string { return st.GraceUnknown }

func revokeKey(op *Operator, secret, keyID string) (bool, error) {
	res, err := op.RevokeKey(context.Background(), secret, keyID)
	return res.Revoked, err
}

// auditDisabled is whether the auditor counts the secret as rotation
// disabled (issue 12: the rule status shares).
func auditDisabled(a audit.Status) bool { return a.RotationDisabled() }

// skipVendor sets unstick's --skip-vendor (issue 12).
func skipVendor(opts *UnstickOptions) { opts.SkipVendor = true }

// limitKeys makes provider allow n keys per owner for the test (issue 12:
// IAM's two-key limit, over the fake vendor).
func limitKeys(t interface{ Cleanup(func()) }, provider string, n int) {
	keyLimits[provider] = n
	t.Cleanup(func() { delete(keyLimits, provider) })
}
