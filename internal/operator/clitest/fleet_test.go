package clitest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/internal/operator"
)

// The "done when" for fleet rotation: 50 secrets over two
// providers (the gateway, IAM) emergency-rotated by one command; every old
// key is refused by its vendor afterwards, the report matches the vendors'
// own key lists, and a re-run with the same incident does nothing.
func TestFleetEmergencyRotation(t *testing.T) {
	c := newCLI(t)
	const gateways, iams = 46, 4 // an IAM rotation takes ≥15 s (settle rule)
	ctx := context.Background()
	var (
		names  []string
		users  = map[string]string{}
		wg     sync.WaitGroup
		iamErr error
	)
	wg.Add(1)
	go func() { // IAM users are created while the gateway secrets are
		defer wg.Done()
		for i := range iams {
			name, user := fmt.Sprintf("ops/fleet/iam-%02d", i), fmt.Sprintf("fleet-user-%02d", i)
			if _, err := c.s.CreateIAMSecret(ctx, name, user, time.Hour); err != nil {
				iamErr = err
				return
			}
		}
	}()
	for i := range gateways {
		name := fmt.Sprintf("ops/fleet/gw-%02d", i)
		c.gatewaySecret(name, time.Hour)
		names = append(names, name)
	}
	wg.Wait()
	if iamErr != nil {
		t.Fatal(iamErr)
	}
	for i := range iams {
		name := fmt.Sprintf("ops/fleet/iam-%02d", i)
		names = append(names, name)
		users[name] = fmt.Sprintf("fleet-user-%02d", i)
	}
	oldKeys := map[string]string{} // secret -> old key (gateway) or key id (IAM)
	for _, n := range names {
		k := c.read(n, "AWSCURRENT")
		oldKeys[n] = k.Key
		if users[n] != "" {
			oldKeys[n] = k.KeyID
		}
	}

	report := filepath.Join(t.TempDir(), "report.json")
	args := []string{"rotate", "ops/fleet/*", "--emergency", "--yes", "--incident", "inc-e2e", "--json", "--report", report, "--max-in-flight", "iam=4", "--timeout", "3m"}
	r := c.expect(0, args...)
	var rep operator.FleetReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, r.stdout)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var written operator.FleetReport
	if err := json.Unmarshal(data, &written); err != nil || len(written.Secrets) != len(names) {
		t.Fatalf("--report: %v\n%s", err, data)
	}
	if len(rep.Secrets) != len(names) || rep.Counts[operator.OutcomeRotated] != len(names) || rep.Started != len(names) {
		t.Fatalf("report: %d rows, counts %v, started %d; want %d rotated", len(rep.Secrets), rep.Counts, rep.Started, len(names))
	}
	for _, it := range rep.Secrets {
		if it.OldKeysDead == nil || !*it.OldKeysDead || len(it.LiveKeys) != 0 || it.NewKeyID == "" {
			t.Fatalf("%s: %+v", it.Secret, it)
		}
		if cur := c.read(it.Secret, "AWSCURRENT"); cur.KeyID != it.NewKeyID {
			t.Fatalf("%s: the report says new key %s, AWSCURRENT holds %s", it.Secret, it.NewKeyID, cur.KeyID)
		}
		// The vendor's own key list: only the new key is left.
		if user := users[it.Secret]; user != "" {
			ids, err := c.s.AccessKeyIDs(ctx, user)
			if err != nil || !slices.Equal(ids, []string{it.NewKeyID}) {
				t.Fatalf("%s: IAM user %s holds %v (%v), the report says %s", it.Secret, user, ids, err, it.NewKeyID)
			}
			continue
		}
		if live := c.liveKeys(it.Secret); len(live) != 1 || !live[it.NewKeyID] {
			t.Fatalf("%s: the gateway holds %v, the report says %s", it.Secret, live, it.NewKeyID)
		}
		if code := c.ping(oldKeys[it.Secret]); code != http.StatusUnauthorized {
			t.Fatalf("%s: the old key answers %d, want 401", it.Secret, code)
		}
	}

	again := c.expect(0, args...)
	var rep2 operator.FleetReport
	if err := json.Unmarshal([]byte(again.stdout), &rep2); err != nil {
		t.Fatal(err)
	}
	if rep2.Started != 0 || rep2.Counts[operator.OutcomeSkipped] != len(names) {
		t.Fatalf("re-run: started %d, counts %v; want every secret skipped", rep2.Started, rep2.Counts)
	}
	for _, it := range rep.Secrets {
		if cur := c.read(it.Secret, "AWSCURRENT"); cur.KeyID != it.NewKeyID {
			t.Fatalf("the re-run rotated %s", it.Secret)
		}
	}
	c.noKeyPrinted(names)
}
