package client_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/client"
	"github.com/keyrotor/keyrotor/internal/testenv"
)

const ttl = 5 * time.Minute

// TestMoto runs the cache against a real moto_server, one secret per subtest.
func TestMoto(t *testing.T) {
	m := testenv.StartMoto(t, nil)
	admin := motoSM(t, m, "")

	t.Run("CacheHitMakesNoCall", func(t *testing.T) {
		createSecret(t, admin, "hit", "k1", "id1")
		clock := newTestClock()
		sm := &countingSM{SecretsManagerAPI: admin}
		c := client.New(sm, &client.Options{TTL: ttl, Now: clock.Now})
		ctx := context.Background()
		for i := range 10 {
			cred, err := c.Key(ctx, "hit")
			if err != nil {
				t.Fatal(err)
			}
			if cred.Key != "k1" || cred.KeyID != "id1" || cred.Provider != "gateway" || cred.Stage != client.StageCurrent || cred.VersionID == "" {
				t.Fatalf("read %d: got %v with key %q", i, cred, cred.Key)
			}
			clock.Advance(ttl / 20) // stays below the earliest refresh-ahead point (80%)
		}
		if got := sm.calls.Load(); got != 1 {
			t.Fatalf("GetSecretValue calls = %d, want 1", got)
		}
	})

	t.Run("ExpiryRefreshesOnceUnder100Readers", func(t *testing.T) {
		createSecret(t, admin, "herd", "k1", "id1")
		clock := newTestClock()
		sm := &countingSM{SecretsManagerAPI: admin}
		c := client.New(sm, &client.Options{TTL: ttl, Now: clock.Now})
		ctx := context.Background()
		if _, err := c.Key(ctx, "herd"); err != nil {
			t.Fatal(err)
		}
		rotateSecret(t, admin, "herd", "k2", "id2", "00000000-0000-4000-8000-000000000001")
		clock.Advance(ttl + time.Second)

		start := make(chan struct{})
		var wg sync.WaitGroup
		keys := make([]string, 100)
		errs := make([]error, 100)
		for i := range 100 {
			wg.Go(func() {
				<-start
				cred, err := c.Key(ctx, "herd")
				keys[i], errs[i] = cred.Key, err
			})
		}
		close(start)
		wg.Wait()
		for i := range 100 {
			if errs[i] != nil || keys[i] != "k2" {
				t.Fatalf("reader %d: key %q, err %v; want k2", i, keys[i], errs[i])
			}
		}
		if got := sm.calls.Load(); got != 2 {
			t.Fatalf("GetSecretValue calls = %d, want 2 (the first read and one refresh)", got)
		}
	})

	t.Run("RotationPickedUpWithinTTL", func(t *testing.T) {
		createSecret(t, admin, "rotate", "k1", "id1")
		clock := newTestClock()
		sm := &countingSM{SecretsManagerAPI: admin}
		c := client.New(sm, &client.Options{TTL: ttl, Now: clock.Now})
		ctx := context.Background()
		first, err := c.Key(ctx, "rotate")
		if err != nil {
			t.Fatal(err)
		}
		version := rotateSecret(t, admin, "rotate", "k2", "id2", "00000000-0000-4000-8000-000000000002")
		if cred, _ := c.Key(ctx, "rotate"); cred.Key != "k1" {
			t.Fatalf("right after the rotation got %q, want the cached k1", cred.Key)
		}
		// 90% of the TTL is past the random refresh-ahead point: the read
		// answers from the cache and starts a background refresh, which
		// lands before the TTL is over (the clock does not move again).
		clock.Advance(ttl * 9 / 10)
		if cred, _ := c.Key(ctx, "rotate"); cred.Key != "k1" {
			t.Fatalf("at 90%% of the TTL got %q, want the cached k1 while refreshing", cred.Key)
		}
		cred := waitForKey(t, c, "rotate", "k2")
		if cred.VersionID != version || cred.VersionID == first.VersionID || cred.KeyID != "id2" {
			t.Fatalf("got %v, want version %s", cred, version)
		}
		if got := sm.calls.Load(); got != 2 {
			t.Fatalf("GetSecretValue calls = %d, want 2", got)
		}
	})

	t.Run("SecretsManagerDownServesStaleAndRecovers", func(t *testing.T) {
		createSecret(t, admin, "outage", "k1", "id1")
		proxy := startSwitchProxy(t, strings.TrimPrefix(m.URL, "http://"))
		clock := newTestClock()
		sm := &countingSM{SecretsManagerAPI: motoSM(t, m, proxy.URL())}
		var seen events
		const maxStale = time.Hour
		c := client.New(sm, &client.Options{TTL: ttl, MaxStale: maxStale, Now: clock.Now, OnEvent: seen.Record})
		ctx := context.Background()
		if _, err := c.Key(ctx, "outage"); err != nil {
			t.Fatal(err)
		}

		proxy.SetDown(true)
		clock.Advance(ttl + time.Second)
		cred, err := c.Key(ctx, "outage")
		if err != nil || cred.Key != "k1" || !cred.Stale {
			t.Fatalf("during the outage: %v (key %q), err %v; want the stale k1", cred, cred.Key, err)
		}
		ev, ok := seen.Last(client.StaleServe)
		if !ok || ev.SecretID != "outage" || ev.Err == nil || ev.Age != ttl+time.Second {
			t.Fatalf("stale serve event = %+v, %t", ev, ok)
		}
		// Right after a failed refresh the client does not ask again.
		calls := sm.calls.Load()
		if cred, err := c.Key(ctx, "outage"); err != nil || cred.Key != "k1" || !cred.Stale {
			t.Fatalf("second read during the outage: key %q, err %v", cred.Key, err)
		}
		if got := sm.calls.Load(); got != calls {
			t.Fatalf("GetSecretValue calls went from %d to %d within the retry interval", calls, got)
		}
		if got := seen.Count(client.StaleServe); got != 2 {
			t.Fatalf("stale serves = %d, want 2", got)
		}

		// Past MaxStale the cached key is no longer served.
		clock.Advance(maxStale)
		if cred, err := c.Key(ctx, "outage"); err == nil {
			t.Fatalf("past MaxStale got %v, want an error", cred)
		} else if strings.Contains(err.Error(), "k1") || !strings.Contains(err.Error(), "outage") {
			t.Fatalf("error %q should name the secret and not quote the key", err)
		}

		// The key rotated during the outage; once Secrets Manager is back
		// the client reads the new one.
		rotateSecret(t, admin, "outage", "k2", "id2", "00000000-0000-4000-8000-000000000003")
		proxy.SetDown(false)
		clock.Advance(10 * time.Second) // past the retry interval
		cred, err = c.Key(ctx, "outage")
		if err != nil || cred.Key != "k2" || cred.Stale {
			t.Fatalf("after recovery: %v (key %q), err %v; want a fresh k2", cred, cred.Key, err)
		}
	})
}

// TestMotoStopped: with Secrets Manager gone for good, the cached key is
// still served, and reported as stale.
func TestMotoStopped(t *testing.T) {
	m := testenv.StartMoto(t, nil)
	admin := motoSM(t, m, "")
	createSecret(t, admin, "stopped", "k1", "id1")
	clock := newTestClock()
	var seen events
	c := client.New(admin, &client.Options{TTL: ttl, Now: clock.Now, OnEvent: seen.Record})
	ctx := context.Background()
	if _, err := c.Key(ctx, "stopped"); err != nil {
		t.Fatal(err)
	}
	m.Stop()
	clock.Advance(ttl + time.Second)
	for range 3 {
		cred, err := c.Key(ctx, "stopped")
		if err != nil || cred.Key != "k1" || !cred.Stale {
			t.Fatalf("with moto stopped: %v (key %q), err %v; want the stale k1", cred, cred.Key, err)
		}
	}
	if got := seen.Count(client.StaleServe); got != 3 {
		t.Fatalf("stale serves = %d, want 3", got)
	}
}

// waitForKey reads secretID until it gives key, without moving the clock.
func waitForKey(t *testing.T, c *client.Client, secretID, key string) client.Credential {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a hang guard, not a timing assertion
	for {
		cred, err := c.Key(context.Background(), secretID)
		if err == nil && cred.Key == key {
			return cred
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never gave the expected key (last %v, err %v)", secretID, cred, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
