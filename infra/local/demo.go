package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// DemoOptions configure RunDemo.
type DemoOptions struct {
	// RepoRoot is the repository to build from (default: found above the
	// working directory).
	RepoRoot string
	// GracePeriod of demo/gateway (default 5s).
	GracePeriod time.Duration
	// Logs receives every process's output (nil: kept in memory).
	Logs io.Writer
}

// alarmMetrics are the metrics of the template's alarms that the functions
// write as EMF, and the alarm each feeds.
var alarmMetrics = []struct{ metric, alarm string }{
	{"RotationFailed", "rotation-failure"},
	{"StepFailed", "rotation-failure (dashboard)"},
	{"VendorAuthFailures", "vendor-auth-failures"},
	{"RevocationsFailed", "revocation-failures"},
	{"OldKeyInUse", "old-key-in-use"},
}

// RunDemo starts the stack (the gateway and revoker functions), tells the
// story of one rotation of demo/gateway on w, and stops the stack. It never
// prints a key: keys are shown by their key_id.
func RunDemo(ctx context.Context, w io.Writer, opts DemoOptions) (err error) {
	if opts.GracePeriod <= 0 {
		opts.GracePeriod = 5 * time.Second
	}
	begin := time.Now()
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	pingLine := func(ctx context.Context, s *Stack, indent, what string, k KeyVersion) error {
		code, err := s.Ping(ctx, k.Key)
		if err != nil {
			return err
		}
		p("%s%s -> %s", indent, what, status(code))
		return nil
	}
	p("keyrotor demo: one zero-downtime rotation of %s, on this machine, with nothing mocked", DemoGatewaySecret)
	p("")
	p("Building the functions and starting the local stack...")
	s, err := Start(ctx, Options{
		RepoRoot: opts.RepoRoot, GracePeriod: opts.GracePeriod, Logs: opts.Logs,
		Functions: []string{"gateway", "revoker"},
	})
	if err != nil {
		return err
	}
	defer func() {
		p("")
		p("Stopping the stack...")
		if serr := s.Stop(); serr != nil {
			err = errors.Join(err, serr)
			return
		}
		p("  every process the demo started has stopped. Done in %s.", since(begin))
	}()
	p("  moto_server       %s  (Secrets Manager, SQS, IAM, Lambda; Lambda invokes go to the emulators)", s.Endpoint)
	for _, n := range s.FunctionNames() {
		f := s.Function(n)
		p("  %-17s the real functions/%s binary under its own Lambda runtime emulator", f.FunctionName, n)
	}
	p("  gateway           %s  (the reference internal API gateway, the vendor)", s.GatewayURL)
	p("  ready in %s; %s was created and rotated once to get its first key", since(begin), DemoGatewaySecret)
	p("  (tags keyrotor:managed=true, keyrotor:grace-period=%s).", opts.GracePeriod)

	// Before.
	old, err := s.ReadKey(ctx, DemoGatewaySecret, "AWSCURRENT")
	if err != nil {
		return err
	}
	p("")
	p("1. Before the rotation")
	p("   AWSCURRENT is %s.", old)
	if err := pingLine(ctx, s, "   ", "GET /v1/ping with it", old); err != nil {
		return err
	}
	p("   Live keys at the gateway: %s.", liveKeys(s))

	// Rotate.
	p("")
	p("2. Rotation: RotateSecret(%s), what `aws secretsmanager rotate-secret` calls", DemoGatewaySecret)
	metricsBefore := len(s.Metrics())
	callsBefore := s.FunctionAPICalls("gateway")
	rotStart := time.Now()
	if _, err := s.Rotate(ctx, DemoGatewaySecret); err != nil {
		return err
	}
	finished := time.Now()
	rotMetrics := s.Metrics()[metricsBefore:]
	var steps []string
	for _, m := range rotMetrics {
		if m.Function == "gateway" && m.Name == "StepDuration" {
			steps = append(steps, fmt.Sprintf("%s %gms", m.Dimensions["Step"], m.Value))
		}
	}
	p("   Secrets Manager invoked %s step by step: %s.", s.Function("gateway").FunctionName, strings.Join(steps, ", "))
	p("   The rotation took %s and made %d Secrets Manager calls.", finished.Sub(rotStart).Round(time.Millisecond), s.FunctionAPICalls("gateway").Sub(callsBefore).Service("secretsmanager"))
	cur, err := s.ReadKey(ctx, DemoGatewaySecret, "AWSCURRENT")
	if err != nil {
		return err
	}
	prev, err := s.ReadKey(ctx, DemoGatewaySecret, "AWSPREVIOUS")
	if err != nil {
		return err
	}
	p("   AWSCURRENT  is now %s (new).", cur)
	p("   AWSPREVIOUS is now %s (the old key).", prev)
	if prev.KeyID != old.KeyID || cur.KeyID == old.KeyID {
		return fmt.Errorf("demo: after the rotation AWSPREVIOUS is %s and AWSCURRENT %s; want the old key %s as AWSPREVIOUS", prev.KeyID, cur.KeyID, old.KeyID)
	}
	p("   finishSecret queued the revocation of %s on %s, due %s after the rotation.", old.KeyID, QueueName, opts.GracePeriod)

	// Grace period.
	p("")
	p("3. Grace period: both keys work, so applications still holding the old key keep working")
	waitCtx, cancel := context.WithTimeout(ctx, opts.GracePeriod+2*time.Minute)
	defer cancel()
	revoked := make(chan error, 1)
	go func() { revoked <- s.WaitRevoked(waitCtx, old.KeyID) }()
	// Call with both keys every second while the grace period runs, and
	// stop calling with the old key just before it ends: a call after it
	// would count as the old key still in use (OldKeyInUse).
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for time.Since(finished) < opts.GracePeriod-700*time.Millisecond {
		oldStatus, err := s.Ping(ctx, old.Key)
		if err != nil {
			return err
		}
		newStatus, err := s.Ping(ctx, cur.Key)
		if err != nil {
			return err
		}
		p("   +%-5s old %s -> %s   new %s -> %s", since(finished), old.KeyID, status(oldStatus), cur.KeyID, status(newStatus))
		if oldStatus != http.StatusOK || newStatus != http.StatusOK {
			return fmt.Errorf("demo: a key was refused during the grace period")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	p("   +%-5s the grace period (%s) ends; no more calls with the old key", since(finished), opts.GracePeriod)

	// Revocation.
	if err := <-revoked; err != nil {
		return err
	}
	// The poller deletes the message once the invoke has returned.
	st := s.Revocations.Stats()
	for end := time.Now().Add(10 * time.Second); st.Deleted+st.Failed < st.Received && time.Now().Before(end); st = s.Revocations.Stats() {
		time.Sleep(20 * time.Millisecond)
	}
	p("")
	p("4. Revocation")
	p("   +%-5s the SQS poller delivered the delayed message to %s, which revoked %s", since(finished), s.Function("revoker").FunctionName, old.KeyID)
	p("          (messages received %d, deleted %d, failed %d).", st.Received, st.Deleted, st.Failed)

	// After.
	p("")
	p("5. After the grace period: only the new key works")
	if err := pingLine(ctx, s, "   ", "old "+old.KeyID, old); err != nil {
		return err
	}
	if err := pingLine(ctx, s, "   ", "new "+cur.KeyID, cur); err != nil {
		return err
	}
	p("   Live keys at the gateway: %s.", liveKeys(s))
	if code, _ := s.Ping(ctx, old.Key); code == http.StatusOK {
		return fmt.Errorf("demo: the old key %s still works after its revocation", old.KeyID)
	}
	if code, _ := s.Ping(ctx, cur.Key); code != http.StatusOK {
		return fmt.Errorf("demo: the new key %s does not work", cur.KeyID)
	}

	// Metrics.
	records := s.Metrics()[metricsBefore:]
	p("")
	p("6. Metrics the rotation and the revocation emitted (EMF lines in the functions' logs, namespace KeyRotation)")
	for _, m := range SummarizeMetrics(records) {
		unit := ""
		if m.Unit == "Milliseconds" {
			unit = " ms"
		}
		p("   %-20s %-38s %g%s", m.Name, m.Dimensions, m.Sum, unit)
	}
	sums := map[string]float64{}
	for _, r := range records {
		sums[r.Name] += r.Value
	}
	p("   The alarms' metrics:")
	for _, a := range alarmMetrics {
		p("   %-20s %-38s %g", a.metric, "(alarm "+a.alarm+")", sums[a.metric])
	}
	if sums["OldKeyInUse"] > 0 {
		p("   OldKeyInUse: the revoker saw the old key used after the grace period had ended (the demo's")
		p("   own last call was late). Locally MAX_REVOCATION_DELAY is 1ms, so it revoked at once; with the")
		p("   deployed default it would have deferred the revocation and the old-key-in-use alarm would fire.")
	} else {
		p("   All zero: nothing for the alarms. (Calls with the old key after the grace period would raise")
		p("   OldKeyInUse; a failed step, RotationFailed and StepFailed; a failed revocation, RevocationsFailed.)")
	}
	return nil
}

func status(code int) string { return fmt.Sprintf("%d %s", code, http.StatusText(code)) }

func since(t time.Time) string { return time.Since(t).Round(100 * time.Millisecond).String() }

func liveKeys(s *Stack) string {
	keys := s.Gateway.LiveKeys()
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	return fmt.Sprintf("%d (%s)", len(keys), strings.Join(ids, ", "))
}
