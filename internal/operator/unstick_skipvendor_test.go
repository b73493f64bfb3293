package operator

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/keyrotor/keyrotor/rotation"
)

// Issue 12, item 9: a rotation that failed before it minted anything (the
// admin secret missing or revoked: the vendor cannot be asked, and what the
// failure left may not be readable) is cleared by --skip-vendor, which reads
// nothing but the pending version: not the current value, the rotation
// function or the queue.
func TestUnstickSkipVendorClearsWhenNothingWasMinted(t *testing.T) {
	e := newEnv(t)
	const secret = "svc/vendor-down"
	e.sm.Create(secret, `{}`, map[string]string{rotation.TagManaged: "true"}) // not keyrotor's value
	e.sm.StartRotation(secret, "v2")                                          // AWSPENDING, no value
	e.lambda.err = errDenied
	e.op.Providers = nil
	opts := UnstickOptions{Force: true}
	skipVendor(&opts)
	res, err := e.op.Unstick(context.Background(), secret, opts)
	if err != nil {
		t.Fatalf("unstick --skip-vendor of a version without a value: %v", err)
	}
	if st := e.sm.Stages(secret)["v2"]; len(st) != 0 || res.Version != "v2" || res.QueuedKeyID != "" {
		t.Fatalf("v2 labelled %v, result %+v", st, res)
	}
	if e.lambda.calls != 0 || len(e.sqs.msgs) != 0 {
		t.Fatalf("--skip-vendor read the function (%d) or queued %v", e.lambda.calls, e.sqs.msgs)
	}
}

// When the pending version holds a value (a key may have been minted)
// --skip-vendor refuses, changes nothing, and gives the command that clears
// the label by hand.
func TestUnstickSkipVendorRefusesAMintedKey(t *testing.T) {
	e := newEnv(t)
	const secret = "svc/stuck"
	_, pending := stuckRotation(e, secret)
	before := e.sm.Stages(secret)
	opts := UnstickOptions{Force: true}
	skipVendor(&opts)
	_, err := e.op.Unstick(context.Background(), secret, opts)
	var r *RefusedError
	const manual = "aws secretsmanager update-secret-version-stage --secret-id svc/stuck --version-stage AWSPENDING --remove-from-version-id v2"
	if !errors.As(err, &r) || !strings.Contains(r.Reason, manual) || strings.Contains(r.Reason, pending.Key) {
		t.Fatalf("unstick --skip-vendor of a minted key: %v, want refused with %q", err, manual)
	}
	if after := e.sm.Stages(secret); len(after["v2"]) != len(before["v2"]) || len(e.sqs.msgs) != 0 || !e.p.Live()[pending.KeyID] {
		t.Fatalf("a refused unstick changed something: %v -> %v, queued %v", before, after, e.sqs.msgs)
	}
}
