package integration

import (
	"fmt"
	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/internal/testenv"
	"net/http"
	"strings"
	"testing"
)

// TestReconcileSparesKeysInGraceOnMoto rotates a gateway secret four times
// in a row, within the grace period, with the compiled function against
// moto (whose superseded versions stay listed, and whose RotateSecret
// leaves an empty AWSPENDING version): every superseded key still works
// (the revoker owns it), and a key that was never stored is still revoked
// by the next rotation.
func TestReconcileSparesKeysInGraceOnMoto(t *testing.T) {
	s := newStack(t)
	secret := "prod/grace-app"
	initial := s.gatewaySecret(secret, nil)
	fn := s.function("gateway")
	graceTok := func(i int) string { return fmt.Sprintf("c%07d-0000-4000-8000-000000000000", i) }

	keys := map[string]string{initial.ID: initial.Key}
	for i := 1; i <= 4; i++ {
		s.rotate(fn, secret, graceTok(i))
		cur := s.read(secret, "AWSCURRENT")
		keys[cur.KeyID] = cur.Key
		live := s.liveGatewayKeys()
		for id, key := range keys {
			if !live[id] || s.ping(key) != http.StatusOK {
				t.Fatalf("rotation %d revoked key %s within its grace period\nfunction logs:\n%s", i, id, fn.Logs())
			}
		}
	}
	// The messages are delayed by the grace period: count the function's
	// logs of them instead.
	if n := strings.Count(fn.Logs(), "scheduled revocation of the old key"); n != 4 {
		t.Fatalf("%d revocations scheduled, want 4 (one per superseded key)", n)
	}

	orphan, err := s.gw.CreateKey(keyrotor.KeyName(testenv.IdentityOf(t, s.sm, secret), "crashed-attempt"), "")
	if err != nil {
		t.Fatal(err)
	}
	s.rotate(fn, secret, graceTok(5))
	live := s.liveGatewayKeys()
	if live[orphan.ID] {
		t.Fatalf("the never-stored key was not revoked\nfunction logs:\n%s", fn.Logs())
	}
	for id := range keys {
		if !live[id] {
			t.Fatalf("the fifth rotation revoked key %s within its grace period", id)
		}
	}
}
