package e2e

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/client"
)

// appSim is the application simulator: workers goroutines read the key
// through package client (the guide's Pattern 2, a TTL cache) and call the
// gateway's /v1/ping with it, continuously. It does not retry a refused
// call, so that every refusal counts.
type appSim struct {
	ok, refused, readErrors atomic.Int64
	stop                    context.CancelFunc
	wg                      sync.WaitGroup
}

func startApp(secret string, ttl time.Duration, workers int) *appSim {
	keys := client.New(stack.SecretsManager(), &client.Options{TTL: ttl})
	c, cancel := context.WithCancel(context.Background())
	a := &appSim{stop: cancel}
	for i := 0; i < workers; i++ {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for c.Err() == nil {
				cred, err := keys.Key(c, secret)
				if err != nil {
					if c.Err() == nil {
						a.readErrors.Add(1)
					}
					continue
				}
				req, _ := http.NewRequestWithContext(c, http.MethodGet, stack.GatewayURL+"/v1/ping", nil)
				req.Header.Set("Authorization", "Bearer "+cred.Key)
				resp, err := httpClient.Do(req)
				switch {
				case err != nil:
					if c.Err() == nil {
						a.refused.Add(1)
					}
				case resp.StatusCode == http.StatusOK:
					a.ok.Add(1)
				default:
					a.refused.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	return a
}

func (a *appSim) halt() {
	a.stop()
	a.wg.Wait()
}

// runRotations starts the simulator on a new secret with grace, rotates it
// n times (waiting pause between rotations), waits until only the current
// key is live at the gateway, stops the simulator and returns it.
func runRotations(t *testing.T, grace, ttl time.Duration, n int, pause time.Duration) (*appSim, string) {
	t.Helper()
	secret := newSecret(t, grace)
	app := startApp(secret, ttl, 4)
	defer app.halt()
	time.Sleep(100 * time.Millisecond) // the application has read the key
	for i := 0; i < n; i++ {
		rotate(t, secret)
		time.Sleep(pause)
	}
	waitLiveKeys(t, secret, 1, grace+2*time.Minute)
	time.Sleep(ttl) // keep calling with the last key for a while
	app.halt()
	t.Logf("%d rotations, grace %s, cache TTL %s: %d calls succeeded, %d refused, %d key reads failed",
		n, grace, ttl, app.ok.Load(), app.refused.Load(), app.readErrors.Load())
	return app, secret
}

// TestZeroDowntime is the zero-downtime proof: with a grace period longer
// than the application's cache TTL, 20 rotations in a row cost not one
// failed call, and at the end exactly one key is live at the gateway.
//
// Rotations are spaced by more than the grace period, as the README
// requires (grace < rotation interval). (Rotations closer together than
// the grace period are safe too: reconcile spares every key a version of
// the secret holds, and internal/integration's
// TestReconcileSparesKeysInGraceOnMoto proves it.)
func TestZeroDowntime(t *testing.T) {
	needStack(t)
	const grace = 2500 * time.Millisecond
	app, secret := runRotations(t, grace, 500*time.Millisecond, 20, grace+200*time.Millisecond)
	if app.refused.Load() != 0 || app.readErrors.Load() != 0 {
		t.Fatalf("%d calls refused and %d key reads failed during the rotations; want none", app.refused.Load(), app.readErrors.Load())
	}
	if app.ok.Load() == 0 {
		t.Fatal("the application made no successful call")
	}
	ids := liveIDs(secret)
	cur := key(t, secret, "AWSCURRENT")
	if len(ids) != 1 || ids[0] != cur.KeyID {
		t.Fatalf("live keys at the end: %v, want only AWSCURRENT %s", ids, cur.KeyID)
	}
}

// TestZeroDowntimeDetectsShortGrace is the same scenario with a grace
// period shorter than the cache TTL: the application keeps using the old
// key after it is revoked, and the simulator must see those failures (so
// TestZeroDowntime can fail). The TTL is far longer than the test, so the
// outcome does not depend on how fast this machine revokes.
func TestZeroDowntimeDetectsShortGrace(t *testing.T) {
	needStack(t)
	secret := newSecret(t, time.Second)
	app := startApp(secret, time.Hour, 4)
	defer app.halt()
	deadline := time.Now().Add(2 * time.Minute)
	for app.ok.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // the application has read and used the key
	}
	rotate(t, secret)
	waitLiveKeys(t, secret, 1, 2*time.Minute) // the old key, still cached by the application, is revoked
	for app.refused.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	app.halt()
	t.Logf("grace 1s, cache TTL 1h: %d calls succeeded, %d refused", app.ok.Load(), app.refused.Load())
	if app.refused.Load() == 0 {
		t.Fatal("no call failed although the grace period is shorter than the cache TTL: the simulator cannot detect downtime")
	}
}
