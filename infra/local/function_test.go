package local

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"
)

// gateEnv, when set, makes this test binary a Lambda bootstrap (started by
// the emulator in TestFunctionInstances): for each invoke it POSTs the
// event to the URL in gateEnv and answers with what that returns, so the
// test decides when each invoke ends.
const gateEnv = "KEYROTOR_TEST_GATE"

func init() {
	if gate := os.Getenv(gateEnv); gate != "" {
		os.Exit(gatedBootstrap(gate))
	}
}

func gatedBootstrap(gate string) int {
	api := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/invocation/"
	for {
		resp, err := http.Get(api + "next")
		if err != nil {
			return 1
		}
		event, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		g, err := http.Post(gate, "application/json", bytes.NewReader(event))
		if err != nil {
			return 1
		}
		out, _ := io.ReadAll(g.Body)
		g.Body.Close()
		r, err := http.Post(api+id+"/response", "application/json", bytes.NewReader(out))
		if err != nil {
			return 1
		}
		r.Body.Close()
	}
}

// gate holds every invoke that reaches the function until the test
// releases it, and counts how many it holds at once.
type gate struct {
	arrived chan string // the event of each invoke, as it arrives
	release chan struct{}
	opened  sync.Once

	mu             sync.Mutex
	inFlight, most int
}

func newGate(t *testing.T) (*gate, string) {
	g := &gate{arrived: make(chan string, 16), release: make(chan struct{}, 16)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		event, _ := io.ReadAll(r.Body)
		g.mu.Lock()
		g.inFlight++
		g.most = max(g.most, g.inFlight)
		g.mu.Unlock()
		g.arrived <- string(event)
		<-g.release
		g.mu.Lock()
		g.inFlight--
		g.mu.Unlock()
		_, _ = w.Write(event)
	}))
	t.Cleanup(func() {
		g.open()
		srv.Close()
	})
	return g, srv.URL
}

// open lets every invoke through, now and from now on.
func (g *gate) open() { g.opened.Do(func() { close(g.release) }) }

// awaitWaiting returns once an invoke has found every instance busy, or
// fails the test when none does (a watchdog, as in await).
func awaitWaiting(t *testing.T, waiting <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-waiting:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: no invoke waited for a free instance", what)
	}
}

func (g *gate) mostAtOnce() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.most
}

// await returns the next invoke to reach the function, or fails the test
// when none comes (a watchdog: the test never waits on time otherwise).
func (g *gate) await(t *testing.T, what string) {
	t.Helper()
	select {
	case <-g.arrived:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: no invoke reached the function (%d held at once so far)", what, g.mostAtOnce())
	}
}

// startGatedFunction runs this test binary as the bootstrap of a function
// with instances emulators.
func startGatedFunction(t *testing.T, instances int, g *gate, gateURL string) *Function {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the Lambda runtime emulator: skipped with -short")
	}
	rieBin, err := FindRIE()
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := startFunction("gated", "gated", Region, self, rieBin, instances, []string{gateEnv + "=" + gateURL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.open() // a bootstrap held at the gate would outlive its emulator
		if err := f.stop(3 * time.Second); err != nil {
			t.Error(err)
		}
	})
	return f
}

// invokeAll invokes f n times at once and returns a channel of the
// results, one per invoke, each as payload or error.
func invokeAll(f *Function, n int) <-chan string {
	done := make(chan string, n)
	for i := range n {
		go func() {
			event := fmt.Sprintf(`{"invoke":%d}`, i)
			out, err := f.Invoke(context.Background(), []byte(event))
			switch {
			case err != nil:
				done <- "invoke " + event + ": " + err.Error()
			case string(out) != event:
				done <- fmt.Sprintf("invoke %s answered %s", event, out)
			default:
				done <- ""
			}
		}()
	}
	return done
}

func wantAllDone(t *testing.T, done <-chan string, n int) {
	t.Helper()
	for range n {
		if msg := <-done; msg != "" {
			t.Error(msg)
		}
	}
}

// TestFunctionInstancesRunInvokesSideBySide: with three instances, three
// invokes are inside the function at the same time (the gate holds all of
// them before releasing any), as Lambda runs one instance per concurrent
// invoke; a fourth waits for a free instance and then completes.
func TestFunctionInstancesRunInvokesSideBySide(t *testing.T) {
	const n = 3
	g, url := newGate(t)
	f := startGatedFunction(t, n, g, url)
	waiting := make(chan struct{}, 1)
	f.onWait = func() { waiting <- struct{}{} }

	done := invokeAll(f, n)
	for i := range n {
		g.await(t, fmt.Sprintf("invoke %d of %d running at once", i+1, n))
	}
	if got := g.mostAtOnce(); got != n {
		t.Fatalf("%d invokes inside the function at once, want %d", got, n)
	}
	extra := invokeAll(f, 1)
	awaitWaiting(t, waiting, "the fourth invoke, every instance busy")
	for range n {
		g.release <- struct{}{}
	}
	wantAllDone(t, done, n)
	g.await(t, "the invoke that waited for a free instance")
	g.release <- struct{}{}
	wantAllDone(t, extra, 1)
	if got := f.Invokes(); got != n+1 {
		t.Fatalf("%d invokes counted, want %d", got, n+1)
	}
}

// TestFunctionOneInstanceSerializesInvokes: with one instance, concurrent
// invokes reach the emulator one at a time (the others wait for it), so the
// emulator, which cannot take a second invoke while one runs, never sees
// two, and every invoke completes.
func TestFunctionOneInstanceSerializesInvokes(t *testing.T) {
	const n = 3
	g, url := newGate(t)
	f := startGatedFunction(t, 1, g, url)
	waiting := make(chan struct{}, n)
	f.onWait = func() { waiting <- struct{}{} }

	done := make(chan string, n)
	first := invokeAll(f, 1)
	g.await(t, "the first invoke")
	rest := invokeAll(f, n-1)
	for i := range n - 1 {
		// Both wait for the one instance, which the first holds.
		awaitWaiting(t, waiting, fmt.Sprintf("invoke %d while the first runs", i+2))
	}
	for i := range n {
		g.release <- struct{}{}
		if i == 0 {
			done <- <-first
		}
		if i < n-1 {
			g.await(t, fmt.Sprintf("invoke %d", i+2))
		}
	}
	wantAllDone(t, done, 1)
	wantAllDone(t, rest, n-1)
	if got := g.mostAtOnce(); got != 1 {
		t.Fatalf("%d invokes inside the one emulator at once, want 1", got)
	}
	if f.instances[0].proc.exited() {
		t.Fatalf("the emulator exited:\n%s", f.Logs())
	}
}
