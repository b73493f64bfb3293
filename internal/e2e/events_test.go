package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/infra/local"
	"github.com/keyrotor/keyrotor/notify"
	"github.com/keyrotor/keyrotor/providers/gateway"
)

// TestEventsOnTheStacksQueue: on the local stack, a rotation that fails (the
// vendor is down), the rotation after it and the old key's revocation reach
// the queue keyrotor-events (KEYROTOR_EVENTS_QUEUE_URL) as keyrotor events.
func TestEventsOnTheStacksQueue(t *testing.T) {
	s := needStack(t)
	const grace = 2 * time.Second
	secret := newSecret(t, grace)
	old := key(t, secret, "AWSCURRENT")

	s.GatewayFaults.Set(gateway.FaultUnavailable)
	_, err := s.Rotate(ctx(t), secret)
	s.GatewayFaults.Set(gateway.NoFault)
	if err == nil {
		t.Fatal("the rotation succeeded while the vendor was down")
	}
	rotate(t, secret)
	cur := key(t, secret, "AWSCURRENT")
	wantPing(t, cur, 200, "the new key")
	waitRevoked(t, old, grace)

	seen := map[string]local.Event{}
	for range 10 { // the revoker's event follows its revoke within the same invoke
		evs, err := s.ReceiveEvents(ctx(t), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Detail.SecretName == secret {
				seen[e.DetailType] = e
			}
		}
		if len(seen) >= 3 && seen[notify.KeyRevoked].Source != "" {
			break
		}
	}
	for _, dt := range []string{notify.RotationFailed, notify.KeyRotated, notify.KeyRevoked} {
		if seen[dt].Source != notify.Source {
			t.Fatalf("no %q event for %s on %s (saw %v)", dt, secret, local.EventsQueueName, keys(seen))
		}
	}
	if d := seen[notify.KeyRotated].Detail; d.NewKeyID != cur.KeyID || d.OldKeyID != old.KeyID {
		t.Fatalf("Key Rotated %+v, want new key %s and old key %s", d, cur.KeyID, old.KeyID)
	}
	if d := seen[notify.KeyRevoked].Detail; d.OldKeyID != old.KeyID {
		t.Fatalf("Key Revoked %+v, want key %s", d, old.KeyID)
	}
	if d := seen[notify.RotationFailed].Detail; d.Step != "createSecret" {
		t.Fatalf("Rotation Failed %+v, want step createSecret", d)
	}
}

func keys(m map[string]local.Event) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
