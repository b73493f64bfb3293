package rotation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/keyrotor/keyrotor/internal/eventfake"
	"github.com/keyrotor/keyrotor/internal/testenv"
	"github.com/keyrotor/keyrotor/metrics"
	"github.com/keyrotor/keyrotor/notify"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/rotation"
)

// withEvents rebuilds e's rotator with a recording publisher.
func withEvents(e *env) *eventfake.Recorder {
	rec := &eventfake.Recorder{}
	e.events = rec
	e.r = e.rotator(time.Hour)
	return rec
}

// TestKeyRotatedEventAfterTheLabelMove: a rotation publishes one Key Rotated
// event, and only once the new version is AWSCURRENT, naming the secret, the
// versions and both key ids and when the old key's revocation is due.
func TestKeyRotatedEventAfterTheLabelMove(t *testing.T) {
	e := newEnv(t, nil)
	rec := withEvents(e)
	rec.OnPublish = func(ev notify.Event) bool {
		if ev.DetailType == notify.KeyRotated && !slices.Contains(e.sm.Stages(secretName)[token], "AWSCURRENT") {
			t.Errorf("Key Rotated published while the new version's stages are %v", e.sm.Stages(secretName)[token])
		}
		return true
	}
	start := e.now
	e.rotate(token)
	if got := rec.Types(); !slices.Equal(got, []string{notify.KeyRotated}) {
		t.Fatalf("events %q, want one Key Rotated", got)
	}
	d := rec.Events()[0].Detail
	want := notify.Detail{
		SecretARN: testenv.Identity(secretName).String(), SecretName: secretName, Provider: "fake",
		NewVersionID: token, OldVersionID: d.OldVersionID, NewKeyID: e.current().KeyID, OldKeyID: e.oldKey.ID,
		Time: d.Time, RevokeAfter: d.Time.Add(time.Hour),
	}
	if d != want || d.OldVersionID == "" || d.OldVersionID == token || d.Time.Before(start) {
		t.Fatalf("detail\n%+v\nwant\n%+v", d, want)
	}
}

// TestRetriedFinishRepublishesKeyRotated: finishSecret moves the label and
// dies before its event goes out (and before it removes AWSPENDING); the
// retry, which finds the version already AWSCURRENT, publishes Key Rotated
// with the same new_version_id and new key id.
func TestRetriedFinishRepublishesKeyRotated(t *testing.T) {
	e := newEnv(t, nil)
	rec := withEvents(e)
	e.sm.StartRotation(secretName, token)
	for _, s := range steps[:3] {
		if err := e.step(s, token); err != nil {
			t.Fatal(err)
		}
	}
	rec.OnPublish = func(ev notify.Event) bool { return ev.DetailType != notify.KeyRotated } // lost with the crash
	updates := 0
	e.sm.Before = func(op string) error {
		if op == "UpdateSecretVersionStage" {
			updates++
			if updates == 2 { // remove AWSPENDING, after the label move
				return errors.New("crash")
			}
		}
		return nil
	}
	if err := e.step(rotation.FinishSecret, token); err == nil {
		t.Fatal("want the injected crash")
	}
	rec.OnPublish = nil
	e.sm.Before = nil
	if err := e.step(rotation.FinishSecret, token); err != nil {
		t.Fatal(err)
	}
	rotated := rec.Of(notify.KeyRotated)
	if len(rotated) != 1 {
		t.Fatalf("events %q, want the retry's Key Rotated", rec.Types())
	}
	if d := rotated[0].Detail; d.NewVersionID != token || d.NewKeyID != e.current().KeyID || d.SecretName != secretName || d.OldVersionID == "" {
		t.Fatalf("re-published detail %+v", d)
	}
}

// TestFailedStepEvent: a failed step publishes Rotation Failed with the step,
// the failure's kind and its reason, and no secret material.
func TestFailedStepEvent(t *testing.T) {
	e := newEnv(t, nil)
	rec := withEvents(e)
	e.vendor.Before = func(op string) error {
		return providers.E("fake."+op, providers.Transient, errors.New("vendor down"))
	}
	e.sm.StartRotation(secretName, token)
	if err := e.step(rotation.CreateSecret, token); err == nil {
		t.Fatal("want the vendor's failure")
	}
	failed := rec.Of(notify.RotationFailed)
	if len(failed) != 1 {
		t.Fatalf("events %q, want one Rotation Failed", rec.Types())
	}
	d := failed[0].Detail
	if d.Step != "createSecret" || d.Kind != "transient" || !strings.Contains(d.Reason, "vendor down") ||
		d.SecretARN != testenv.Identity(secretName).String() || d.NewVersionID != token || d.Provider != "fake" {
		t.Fatalf("detail %+v", d)
	}
	b, _ := json.Marshal(rec.Events())
	for _, s := range []string{rotationToken, e.oldKey.Secret} {
		if strings.Contains(string(b), s) {
			t.Fatalf("a secret (len %d) appears in an event", len(s))
		}
	}
}

// TestEmergencyEvents: an emergency rotation announces its start once the
// new key is stored, and its end with Key Rotated once the new key is current.
func TestEmergencyEvents(t *testing.T) {
	e := newEnv(t, map[string]string{rotation.TagEmergencyToken: token})
	rec := withEvents(e)
	e.rotate(token)
	want := []string{notify.EmergencyRotationStarted, notify.KeyRotated, notify.EmergencyRotationFinished}
	if got := rec.Types(); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	for _, ev := range rec.Events() {
		if d := ev.Detail; !d.Emergency || d.NewKeyID != e.current().KeyID || d.OldKeyID != e.oldKey.ID {
			t.Fatalf("%s: detail %+v", ev.DetailType, d)
		}
	}
}

// failingEventBridge refuses every PutEvents.
type failingEventBridge struct{ calls int }

func (f *failingEventBridge) PutEvents(context.Context, *eventbridge.PutEventsInput, ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	f.calls++
	return nil, errors.New("AccessDeniedException: not authorized to perform events:PutEvents")
}

// TestEventFailureDoesNotFailTheStep: with a bus that refuses every event,
// the rotation still completes; each lost event is logged and counted.
func TestEventFailureDoesNotFailTheStep(t *testing.T) {
	e := newEnv(t, nil)
	eb := &failingEventBridge{}
	emf := &bytes.Buffer{}
	e.events = &notify.Bus{Client: eb, Logger: slog.New(slog.NewJSONHandler(e.logs, nil)), Metrics: metrics.New(emf, "", nil)}
	e.r = e.rotator(time.Hour)
	e.rotate(token)
	if e.current().KeyID == e.oldKey.ID || eb.calls != 1 {
		t.Fatalf("rotation done: %v, PutEvents calls %d (want 1)", e.current().KeyID != e.oldKey.ID, eb.calls)
	}
	if !strings.Contains(emf.String(), fmt.Sprintf("%q:1", notify.MetricNotPublished)) || !strings.Contains(e.logs.String(), "could not publish an event") {
		t.Fatalf("the lost event was not counted and logged:\n%s\n%s", emf, e.logs)
	}
}
