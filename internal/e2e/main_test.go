package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/infra/local"
)

// stack is the local stack every test of the package shares (starting one
// builds four functions: too slow to do per test on a small machine). Tests
// use their own secrets and do not run in parallel, since some inject
// faults into the shared gateway.
var stack *local.Stack

// startErr is why the stack did not start.
var startErr error

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	fns := []string{"gateway", "iam", "revoker"}
	root, err := local.FindRepoRoot("")
	if err == nil {
		for _, n := range local.FunctionNames(root) {
			if n == "auditor" {
				fns = append(fns, n)
			}
		}
		stack, startErr = local.Start(ctx, local.Options{
			RepoRoot:    root,
			GracePeriod: 3 * time.Second,
			Functions:   fns,
			// A message the revoker failed comes back soon.
			VisibilityTimeout: 3 * time.Second,
		})
	} else {
		startErr = err
	}
	cancel()
	code := m.Run()
	if !stopChecked("the two-region stack", twoRegions.stack) {
		code = 1
	}
	if !stopChecked("the local stack", stack) {
		code = 1
	}
	os.Exit(code)
}

// stopChecked stops s (if it started) and reports whether it stopped
// leaving no process behind: every process group it started (moto, the
// emulators and their bootstraps) must be gone.
func stopChecked(what string, s *local.Stack) bool {
	if s == nil {
		return true
	}
	ok := true
	pids := s.PIDs()
	if err := s.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stop %s: %v\n", what, err)
		ok = false
	}
	for _, pgid := range pids {
		if err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH) {
			fmt.Fprintf(os.Stderr, "process group %d of %s is still alive after Stop (kill 0: %v)\n", pgid, what, err)
			ok = false
		}
	}
	return ok
}

// needStack skips under -short and fails when the stack did not start.
func needStack(t *testing.T) *local.Stack {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	if stack == nil {
		t.Fatalf("the local stack did not start: %v", startErr)
	}
	t.Cleanup(func() {
		stack.GatewayFaults.Set(0)
		if t.Failed() {
			logTail(t)
		}
	})
	return stack
}

// logTail logs the end of the functions' logs (they never hold a key).
func logTail(t *testing.T) {
	for _, n := range stack.FunctionNames() {
		l := stack.Function(n).Logs()
		if len(l) > 3000 {
			l = l[len(l)-3000:]
		}
		t.Logf("--- %s (end of its logs) ---\n%s", n, l)
	}
}

var secretSeq atomic.Int64

// newSecret creates a gateway secret for t, configured for rotation with
// grace, and returns its name once its first key exists.
func newSecret(t *testing.T, grace time.Duration) string {
	t.Helper()
	name := fmt.Sprintf("e2e/%s-%d", strings.ReplaceAll(strings.ToLower(t.Name()), "/", "-"), secretSeq.Add(1))
	if _, err := stack.CreateGatewaySecret(ctx(t), name, grace); err != nil {
		t.Fatal(err)
	}
	return name
}

// ctx bounds one call of a test generously.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return c
}

func key(t *testing.T, secret, stage string) local.KeyVersion {
	t.Helper()
	k, err := stack.ReadKey(ctx(t), secret, stage)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ping(t *testing.T, k local.KeyVersion) int {
	t.Helper()
	code, err := stack.Ping(ctx(t), k.Key)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func wantPing(t *testing.T, k local.KeyVersion, want int, what string) {
	t.Helper()
	if got := ping(t, k); got != want {
		t.Fatalf("%s (%s): /v1/ping answered %d, want %d", what, k, got, want)
	}
}

func rotate(t *testing.T, secret string) {
	t.Helper()
	if _, err := stack.Rotate(ctx(t), secret); err != nil {
		t.Fatal(err)
	}
}

// waitRevoked waits (up to grace + 2 minutes) for the revoker to revoke k.
func waitRevoked(t *testing.T, k local.KeyVersion, grace time.Duration) {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), grace+2*time.Minute)
	defer cancel()
	if err := stack.WaitRevoked(c, k.KeyID); err != nil {
		t.Fatal(err)
	}
}

// waitLiveKeys waits until the gateway holds exactly n keys of secret.
func waitLiveKeys(t *testing.T, secret string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if got := len(stack.LiveKeys(secret)); got == n {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("%s: %d live keys at the gateway after %s, want %d", secret, got, timeout, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// liveIDs returns the ids of the gateway's live keys of secret.
func liveIDs(secret string) []string {
	var ids []string
	for _, k := range stack.LiveKeys(secret) {
		ids = append(ids, k.ID)
	}
	return ids
}

// metricSum sums the values of metric name the functions emitted so far.
func metricSum(name string) float64 {
	var n float64
	for _, r := range stack.Metrics() {
		if r.Name == name {
			n += r.Value
		}
	}
	return n
}

// waitMetric waits until metric name's sum exceeds before.
func waitMetric(t *testing.T, name string, before float64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for metricSum(name) <= before {
		if time.Now().After(deadline) {
			t.Fatalf("metric %s did not grow within %s", name, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// keyPattern matches a reference gateway key and its admin token.
var keyPattern = regexp.MustCompile(`gw_[A-Za-z0-9]{20,}|adm_[0-9a-f]{16,}`)

var httpClient = &http.Client{Timeout: 30 * time.Second}
