package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/infra/local"
	"github.com/keyrotor/keyrotor/internal/testenv"
	"github.com/keyrotor/keyrotor/notify"
	"github.com/keyrotor/keyrotor/providers/gateway"
)

// TestEventsReachTheQueue drives the compiled gateway function and revoker
// on moto, whose default bus delivers keyrotor's events to a queue as the
// local stack's does: a failed step, a finishSecret that dies after the
// label move (its removal of AWSPENDING fails once, and the step is retried),
// and the old key's revocation each reach the queue.
func TestEventsReachTheQueue(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	queue, err := local.CreateEventsQueue(ctx, s.moto.Config(t), testenv.Region)
	if err != nil {
		t.Fatal(err)
	}
	fn := s.function("gateway")
	const secret, token = "prod/events", "eeeeeeee-1111-2222-3333-444444444444"
	old := s.gatewaySecret(secret, map[string]string{"keyrotor:grace-period": "0s"})

	s.beginRotation(secret, token)
	s.faults.Set(gateway.FaultUnavailable)
	if err := s.step(fn, "createSecret", secret, token); err == nil {
		t.Fatal("createSecret succeeded while the vendor was down")
	}
	s.faults.Set(gateway.NoFault)
	for _, st := range steps[:3] {
		if err := s.step(fn, st, secret, token); err != nil {
			t.Fatalf("%s: %v\n%s", st, err, fn.Logs())
		}
	}
	s.plan.mu.Lock()
	s.plan.failWhen = func(target string, body []byte) bool {
		return target == "secretsmanager.UpdateSecretVersionStage" && bytes.Contains(body, []byte(`"AWSPENDING"`)) && !bytes.Contains(body, []byte("MoveToVersionId"))
	}
	s.plan.mu.Unlock()
	if err := s.step(fn, "finishSecret", secret, token); err == nil {
		t.Fatal("finishSecret succeeded although removing AWSPENDING failed")
	}
	if st := s.stages(secret)[token]; !slices.Contains(st, "AWSCURRENT") || !slices.Contains(st, "AWSPENDING") {
		t.Fatalf("stages %v: want the label moved and AWSPENDING left", st)
	}
	if err := s.step(fn, "finishSecret", secret, token); err != nil {
		t.Fatalf("retried finishSecret: %v\n%s", err, fn.Logs())
	}
	newKey := s.read(secret, "AWSCURRENT").KeyID

	s.use(secret)
	s.deliver(s.function("revoker"), s.messages(1))
	if s.liveGatewayKeys()[old.ID] {
		t.Fatal("the old key was not revoked")
	}

	var got []local.Event
	for range 5 { // moto delivers on PutEvents: the events are there already
		evs, err := local.ReceiveEvents(ctx, s.sqs, queue, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, evs...)
	}
	var types []string
	for _, e := range got {
		types = append(types, e.DetailType)
		d := e.Detail
		if e.Source != notify.Source || d.SecretName != secret || d.Version != notify.DetailVersion || !strings.HasPrefix(d.SecretARN, "arn:aws:secretsmanager:") ||
			len(e.Resources) != 1 || e.Resources[0] != d.SecretARN {
			t.Errorf("event %+v", e)
		}
		switch e.DetailType {
		case notify.KeyRotated:
			if d.NewVersionID != token || d.NewKeyID != newKey {
				t.Errorf("Key Rotated %+v, want version %s and key %s", d, token, newKey)
			}
		case notify.KeyRevoked:
			if d.OldKeyID != old.ID || d.NewVersionID != token {
				t.Errorf("Key Revoked %+v, want key %s", d, old.ID)
			}
		case notify.RotationFailed:
			if d.Step != "createSecret" && d.Step != "finishSecret" {
				t.Errorf("Rotation Failed %+v", d)
			}
		}
	}
	want := []string{notify.RotationFailed, notify.KeyRotated, notify.RotationFailed, notify.KeyRotated, notify.KeyRevoked}
	slices.Sort(types)
	slices.Sort(want)
	if !slices.Equal(types, want) {
		t.Fatalf("events on the queue %q, want %q\n%s", types, want, fn.Logs())
	}
	all, _ := json.Marshal(got)
	assertNoLeaks(t, []string{old.Key, s.read(secret, "AWSCURRENT").Key, rotationTokenFor(token)}, string(all))
}
