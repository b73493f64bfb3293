package operator

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/revocation"
)

// An emergency whose superseded key stays live (the key in grace from the
// rotation before, its revocation stuck): the wait says what it waits for
// with the time elapsed, once per change plus one line every 15 s of the
// injected clock, never once per poll; on timeout it says the key is still
// live and the exact command that kills it.
func TestLongWaitShowsElapsedAndWhatItWaitsFor(t *testing.T) {
	e := newEnv(t)
	const secret = "svc/leaked"
	key1 := e.managedSecret(secret)
	e.rotate(secret, "v2")
	key2 := e.current(secret)
	e.sm.rotate = e.steps
	revoker := revocation.NewHandler(e.sm, e.q, map[string]providers.Provider{"fake": e.p}, revocation.Options{Now: func() time.Time { return e.now }, Logger: quiet})
	var progress []string
	e.op.Progress = func(m string) { progress = append(progress, m) }
	polls := 0
	e.op.Sleep = func(context.Context, time.Duration) error {
		polls++
		msgs := e.q.msgs
		e.q.msgs = nil
		for _, m := range msgs {
			if m.KeyID == key2.KeyID {
				if _, err := revoker.Process(context.Background(), m); err != nil {
					t.Fatal(err)
				}
			}
		}
		e.now = e.now.Add(time.Second)
		return nil
	}
	_, err := e.op.Rotate(context.Background(), secret, RotateOptions{Emergency: true, Timeout: 2 * time.Minute})
	all := strings.Join(progress, "\n")
	if polls < 100 {
		t.Fatalf("only %d polls: the test lost its point", polls)
	}
	// 2 minutes at one line per 15 s, plus the changes (RotateSecret, the
	// steps, finishSecret, the revoker's first revocation).
	if len(progress) > 120/15+8 {
		t.Fatalf("%d progress lines for %d polls: more than one per change plus one per 15s:\n%s", len(progress), polls, all)
	}
	for _, want := range []string{
		"[0s] waiting for the revoker: 2 of 2 superseded keys still live",
		"[1s] waiting for the revoker: 1 of 2 superseded keys still live at fake: " + key1.KeyID + "\n",
		"[16s] still waiting for the revoker: 1 of 2 superseded keys still live at fake: " + key1.KeyID + " (gives up in 1m44s)",
		"[1m46s] still waiting for the revoker",
	} {
		if !strings.Contains(all, want) {
			t.Fatalf("progress lacks %q:\n%s", want, all)
		}
	}
	if err == nil || !strings.Contains(err.Error(), "still live") || !strings.Contains(err.Error(), "after 2m0s") ||
		!strings.Contains(err.Error(), "keyrotor revoke-key "+secret+" "+key1.KeyID) {
		t.Fatalf("timeout: %v; want the live key, the time waited and `keyrotor revoke-key %s %s`", err, secret, key1.KeyID)
	}
}

// An emergency whose rotation never finishes: on timeout it says plainly
// that the leaked key is still AWSCURRENT and live, and what to run.
func TestEmergencyTimeoutSaysTheLeakedKeyIsLive(t *testing.T) {
	e := newEnv(t)
	const secret = "svc/leaked"
	key1 := e.managedSecret(secret)
	e.op.Sleep = func(context.Context, time.Duration) error { e.now = e.now.Add(10 * time.Second); return nil }
	_, err := e.op.Rotate(context.Background(), secret, RotateOptions{Emergency: true, Timeout: time.Minute})
	var se *StepError
	if !errors.As(err, &se) {
		t.Fatalf("emergency that never finishes: %v", err)
	}
	for _, want := range []string{"leaked key " + key1.KeyID + " is still AWSCURRENT and live", "keyrotor unstick " + secret + " --force && keyrotor rotate " + secret + " --emergency"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("timeout: %v\nwant %q", err, want)
		}
	}
}

// SIGINT or SIGTERM during a wait (the command's context cancelled) stop
// it, and the error says where the rotation stands and what to do; it is
// not a bare context.Canceled, which the CLI would not print.
func TestStoppedWaitSaysWhatItLeavesBehind(t *testing.T) {
	t.Run("rotate --wait", func(t *testing.T) {
		e := newEnv(t)
		const secret = "svc/slow"
		key1 := e.managedSecret(secret)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		polls := 0
		e.op.Sleep = func(ctx context.Context, _ time.Duration) error {
			if polls++; polls == 3 {
				cancel()
				return ctx.Err()
			}
			e.now = e.now.Add(time.Second)
			return nil
		}
		e.op.NewToken = func() string { return "v-stopped" }
		_, err := e.op.Rotate(ctx, secret, RotateOptions{Wait: true})
		if err == nil || errors.Is(err, context.Canceled) {
			t.Fatalf("stopped wait: %v; want an error saying what is left", err)
		}
		for _, want := range []string{"stopped after 2s", "version v-stopped", "old key " + key1.KeyID + " stays AWSCURRENT", "keyrotor status " + secret} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("stopped wait: %v\nwant %q", err, want)
			}
		}
	})
	t.Run("emergency waiting for the revoker", func(t *testing.T) {
		e := newEnv(t)
		const secret = "svc/leaked"
		key1 := e.managedSecret(secret)
		e.rotate(secret, "v2")
		e.sm.rotate = e.steps
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		polls := 0
		e.op.Sleep = func(ctx context.Context, _ time.Duration) error {
			// No revoker runs: both superseded keys stay live.
			if polls++; polls == 3 {
				cancel()
				return ctx.Err()
			}
			e.now = e.now.Add(time.Second)
			return nil
		}
		_, err := e.op.Rotate(ctx, secret, RotateOptions{Emergency: true})
		if err == nil || errors.Is(err, context.Canceled) {
			t.Fatalf("stopped emergency: %v; want an error saying what is left", err)
		}
		for _, want := range []string{"stopped after", "is AWSCURRENT", "keyrotor revoke-key " + secret + " " + key1.KeyID} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("stopped emergency: %v\nwant %q", err, want)
			}
		}
	})
}
