package operator

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/rotation"
)

// started reports whether a rotation of secret was started (a version
// labelled AWSPENDING and not AWSCURRENT).
func started(e *env, secret string) bool {
	for _, st := range e.sm.Stages(secret) {
		if slices.Contains(st, rotation.Pending) && !slices.Contains(st, rotation.Current) {
			return true
		}
	}
	return false
}

const secret2Keys = "svc/two-keys"

// atKeyLimit returns an env whose vendor allows two keys per owner, with
// the managed secret svc/two-keys; rotated once, its owner is at the limit.
func atKeyLimit(t *testing.T) *env {
	e := newEnv(t)
	limitKeys(t, "fake", 2)
	e.sm.SM.Now = func() time.Time { return e.now }
	e.managedSecret(secret2Keys)
	return e
}

// Issue 12, item 10: at a vendor's key limit (IAM: two access keys per
// user) with the previous key in its grace period, a plain rotate refuses up
// front (exit 4) and says when it becomes possible; an emergency proceeds;
// once the grace period has ended the plain rotate proceeds too.
func TestRotateRefusesAtTheKeyLimit(t *testing.T) {
	e := atKeyLimit(t)
	const secret = secret2Keys
	e.rotate(secret, "t-1") // the user now holds the previous key (in grace, 1h) and the current one
	if live := len(e.p.Live()); live != 2 {
		t.Fatalf("%d live keys, want 2", live)
	}
	rotated := e.now
	e.now = rotated.Add(20 * time.Minute)
	stop := errors.New("stop following")
	e.op.Sleep = func(context.Context, time.Duration) error { return stop }

	_, err := e.op.Rotate(context.Background(), secret, RotateOptions{})
	var r *RefusedError
	until := rotated.Add(time.Hour).UTC().Format(time.RFC3339)
	if !errors.As(err, &r) || ExitCode(err) != ExitRefused || !strings.Contains(r.Reason, "possible after "+until) {
		t.Fatalf("rotate at the key limit: %v (exit %d), want refused, possible after %s", err, ExitCode(err), until)
	}
	if started(e, secret) {
		t.Fatal("a refused rotate started a rotation")
	}

	if _, err := e.op.Rotate(context.Background(), secret, RotateOptions{Emergency: true}); errors.As(err, &r) {
		t.Fatalf("emergency at the key limit refused: %v", err)
	}
	if !started(e, secret) {
		t.Fatal("the emergency started no rotation")
	}
}

// Past the grace period (the revoker late) the limit no longer refuses: the
// rotation runs and its own error, if any, says what failed.
func TestRotateAfterTheGracePeriodIsNotRefused(t *testing.T) {
	e := atKeyLimit(t)
	const secret = secret2Keys
	e.rotate(secret, "t-1")
	e.now = e.now.Add(2 * time.Hour)
	if _, err := e.op.Rotate(context.Background(), secret, RotateOptions{}); err != nil {
		t.Fatalf("rotate after the grace period: %v", err)
	}
	if !started(e, secret) {
		t.Fatal("no rotation started")
	}
}
