package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/client"
	"github.com/keyrotor/keyrotor/internal/testenv"
	"github.com/keyrotor/keyrotor/providers/gateway"
)

// TestRevokedUnderLongCache rotates a gateway key and revokes the old one
// after a grace period shorter than the readers' cache TTL, the mistake the
// guide warns about. An application using Transport sees no failed request;
// one that puts the cached key on requests itself does.
func TestRevokedUnderLongCache(t *testing.T) {
	const (
		longTTL = 2 * time.Hour
		grace   = time.Minute
		secret  = "gateway/app"
	)
	m := testenv.StartMoto(t, nil)
	admin := motoSM(t, m, "")
	clock := newTestClock()
	gw := gateway.NewServer(gateway.ServerOptions{AdminToken: "admin-token", Now: clock.Now})
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)

	old, err := gw.CreateKey("app-1", "")
	if err != nil {
		t.Fatal(err)
	}
	createSecret(t, admin, secret, old.Key, old.ID)

	sm := &countingSM{SecretsManagerAPI: admin}
	var seen events
	withTransport := client.New(sm, &client.Options{TTL: longTTL, Now: clock.Now, OnEvent: seen.Record})
	app := &http.Client{Transport: withTransport.Transport(srv.Client().Transport, secret, client.Bearer)}
	withoutTransport := client.New(admin, &client.Options{TTL: longTTL, Now: clock.Now})

	ping := func(c *http.Client, key string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL+"/v1/ping", nil)
		if err != nil {
			t.Fatal(err)
		}
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("ping: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	naivePing := func() int {
		t.Helper()
		cred, err := withoutTransport.Key(context.Background(), secret)
		if err != nil {
			t.Fatal(err)
		}
		return ping(srv.Client(), cred.Key)
	}

	if got := ping(app, ""); got != http.StatusOK {
		t.Fatalf("before the rotation: status %d", got)
	}
	if got := naivePing(); got != http.StatusOK {
		t.Fatalf("before the rotation, without Transport: status %d", got)
	}

	// Rotate, then revoke the old key once the grace period is over, while
	// both caches still hold it.
	clock.Advance(time.Hour)
	next, err := gw.CreateKey("app-2", "")
	if err != nil {
		t.Fatal(err)
	}
	rotateSecret(t, admin, secret, next.Key, next.ID, "00000000-0000-4000-8000-0000000000aa")
	if got := ping(app, ""); got != http.StatusOK {
		t.Fatalf("during the grace period: status %d", got)
	}
	clock.Advance(grace)
	if !gw.RevokeKey(old.ID) {
		t.Fatal("the old key was not live")
	}

	// Without Transport the cached, revoked key fails.
	if got := naivePing(); got != http.StatusUnauthorized {
		t.Fatalf("without Transport after the revocation: status %d, want 401", got)
	}

	// With it, 50 concurrent requests all succeed, with one forced refresh.
	const n = 50
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { statuses[i] = ping(app, "") })
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("request %d after the revocation: status %d", i, s)
		}
	}
	for range 5 {
		if got := ping(app, ""); got != http.StatusOK {
			t.Fatalf("later request: status %d", got)
		}
	}
	failures := seen.Count(client.AuthFailure)
	if failures < 1 || failures > n {
		t.Fatalf("auth failures seen = %d, want 1..%d", failures, n)
	}
	if got := seen.Count(client.ForcedRefresh); got != 1 {
		t.Fatalf("forced refreshes = %d, want 1", got)
	}
	if got := sm.calls.Load(); got != 2 {
		t.Fatalf("GetSecretValue calls = %d, want 2", got)
	}
	// Every refusal at the gateway is one the client saw (plus the naive one).
	if got := gw.PingCounts().Refused; got != int64(failures)+1 {
		t.Fatalf("gateway refused %d pings, client reported %d auth failures (+1 naive)", got, failures)
	}
	if ev, _ := seen.Last(client.AuthFailure); ev.Status != http.StatusUnauthorized || ev.SecretID != secret {
		t.Fatalf("auth failure event = %+v", ev)
	}

	// Two more rotations, each revoking the key the cache holds: still no
	// failed request, one forced refresh and one read each.
	live := next
	for i, token := range []string{"00000000-0000-4000-8000-0000000000ab", "00000000-0000-4000-8000-0000000000ac"} {
		clock.Advance(time.Hour)
		fresh, err := gw.CreateKey(fmt.Sprint("app-", i+3), "")
		if err != nil {
			t.Fatal(err)
		}
		rotateSecret(t, admin, secret, fresh.Key, fresh.ID, token)
		clock.Advance(grace)
		if !gw.RevokeKey(live.ID) {
			t.Fatalf("rotation %d: the old key was not live", i+2)
		}
		live = fresh
		for j := range statuses {
			wg.Go(func() { statuses[j] = ping(app, "") })
		}
		wg.Wait()
		for j, s := range statuses {
			if s != http.StatusOK {
				t.Fatalf("rotation %d, request %d: status %d", i+2, j, s)
			}
		}
	}
	if got := seen.Count(client.ForcedRefresh); got != 3 {
		t.Fatalf("forced refreshes after 3 rotations = %d, want 3", got)
	}
	if got := sm.calls.Load(); got != 4 {
		t.Fatalf("GetSecretValue calls after 3 rotations = %d, want 4", got)
	}
}

// TestFallbackToPrevious: a new key that the gateway does not accept yet
// (propagation) is refused even freshly read; the AWSPREVIOUS key, still in
// its grace period, is accepted.
func TestFallbackToPrevious(t *testing.T) {
	const secret = "gateway/propagating"
	m := testenv.StartMoto(t, nil)
	admin := motoSM(t, m, "")
	clock := newTestClock()
	gw := gateway.NewServer(gateway.ServerOptions{AdminToken: "admin-token", Now: clock.Now, PropagationDelay: time.Hour})
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)

	old, err := gw.CreateKey("app-1", "")
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour) // the old key has propagated
	createSecret(t, admin, secret, old.Key, old.ID)
	next, err := gw.CreateKey("app-2", "")
	if err != nil {
		t.Fatal(err)
	}
	rotateSecret(t, admin, secret, next.Key, next.ID, "00000000-0000-4000-8000-0000000000bb")

	var seen events
	c := client.New(admin, &client.Options{TTL: ttl, Now: clock.Now, OnEvent: seen.Record})
	strict := c.Transport(srv.Client().Transport, secret, client.Bearer)
	lenient := c.Transport(srv.Client().Transport, secret, client.Bearer)
	lenient.FallbackToPrevious = true

	ping := func(rt http.RoundTripper) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/v1/ping", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := ping(strict); got != http.StatusUnauthorized {
		t.Fatalf("without fallback: status %d, want 401 (the new key has not propagated)", got)
	}
	if got := ping(lenient); got != http.StatusOK {
		t.Fatalf("with fallback: status %d, want 200 from the previous key", got)
	}
	if got := seen.Count(client.ForcedRefresh); got != 0 {
		t.Fatalf("forced refreshes = %d, want 0 (the key was read moments ago)", got)
	}
}
