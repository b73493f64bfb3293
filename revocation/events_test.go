package revocation_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/internal/eventfake"
	"github.com/keyrotor/keyrotor/internal/testenv"
	"github.com/keyrotor/keyrotor/notify"
	"github.com/keyrotor/keyrotor/revocation"
)

// withEvents rebuilds e's handler with a recording publisher.
func withEvents(e *env) *eventfake.Recorder {
	rec := &eventfake.Recorder{}
	e.opts.Events = rec
	e.h = revocation.NewHandler(e.sm, e.q, e.ps, e.opts)
	return rec
}

// TestKeyRevokedEvent: a revocation publishes Key Revoked, naming the
// secret as DescribeSecret does, the key and both versions; a duplicate
// message yields another (consumers dedupe), which says already_gone where
// the vendor tells (this fake's Revoke of a gone key succeeds; its LastUsed
// says NotFound).
func TestKeyRevokedEvent(t *testing.T) {
	for _, lastUse := range []bool{false, true} {
		e := newEnv(t, lastUse)
		rec := withEvents(e)
		e.vendor.Use(e.cur.ID, e.now)
		m := e.msg(e.now.Add(-time.Second))
		m.FinishedAt = e.now.Add(-time.Hour)
		e.handle(m)
		if e.vendor.Live()[e.old.ID] {
			t.Fatal("not revoked")
		}
		e.handle(m)
		revoked := rec.Of(notify.KeyRevoked)
		if got := rec.Types(); len(got) != 2 || len(revoked) != 2 {
			t.Fatalf("lastUse=%v: events %q, want two Key Revoked", lastUse, got)
		}
		want := notify.Detail{SecretARN: testenv.Identity(secretName).String(), SecretName: secretName, Provider: "fake",
			OldVersionID: "v1", NewVersionID: "v2", OldKeyID: e.old.ID, Reason: revocation.ReasonRotation,
			FinishedAt: m.FinishedAt, Time: e.now}
		if d := revoked[0].Detail; d != want {
			t.Fatalf("lastUse=%v: detail\n%+v\nwant\n%+v", lastUse, d, want)
		}
		if d := revoked[1].Detail; d.AlreadyGone != lastUse || d.OldKeyID != e.old.ID {
			t.Fatalf("lastUse=%v: the duplicate's detail %+v, want already_gone=%v", lastUse, d, lastUse)
		}
	}
}

// TestRevocationDeferredOncePerMessageAndReason: a revocation deferred every
// few minutes announces each reason once: the new key unused, then the old
// key used after its grace period; the messages sent again carry what was
// announced.
func TestRevocationDeferredOncePerMessageAndReason(t *testing.T) {
	e := newEnv(t, true)
	rec := withEvents(e)
	nb := e.now.Add(-time.Minute)
	m := e.msg(nb)
	for range 3 { // the new key is never used
		e.handle(m)
		m = e.q.sent[len(e.q.sent)-1]
		e.now = e.now.Add(revocation.DefaultDeferInterval)
	}
	e.vendor.Use(e.cur.ID, e.now)
	e.vendor.Use(e.old.ID, e.now)
	for range 3 { // now the old key is still used
		e.handle(m)
		m = e.q.sent[len(e.q.sent)-1]
		e.now = e.now.Add(revocation.DefaultDeferInterval)
	}
	if !e.vendor.Live()[e.old.ID] || len(e.q.sent) != 6 {
		t.Fatalf("live %v, %d messages sent again: want six deferrals", e.vendor.Live()[e.old.ID], len(e.q.sent))
	}
	deferred := rec.Of(notify.RevocationDeferred)
	var reasons []string
	for _, ev := range deferred {
		reasons = append(reasons, ev.Detail.Reason)
	}
	if want := []string{notify.DeferNewKeyUnused, notify.DeferOldKeyInUse}; !slices.Equal(reasons, want) || len(rec.Events()) != 2 {
		t.Fatalf("events %q with reasons %q, want one deferral event per reason %q", rec.Types(), reasons, want)
	}
	if d := deferred[1].Detail; d.OldKeyID != e.old.ID || d.OldKeyLastUsed.IsZero() || !d.RevokeAfter.Equal(nb) || d.RetryIn != 300 {
		t.Fatalf("detail %+v", d)
	}
	if got := strings.Fields(m.Announced); !slices.Equal(got, []string{notify.DeferNewKeyUnused, notify.DeferOldKeyInUse}) {
		t.Fatalf("the message sent again announces %q", got)
	}
}
