package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/internal/rie"
)

// RepoRoot returns the module root (the folder holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's folder")
		}
		dir = parent
	}
}

var (
	buildMu sync.Mutex
	built   = map[string]string{}
)

// BuildFunction builds ./functions/<name> for this machine, as the Lambda
// runtime runs it (-tags lambda.norpc), once per test process.
func BuildFunction(t testing.TB, name string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[name]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "keyrotor-fn-")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-o", out, "./functions/"+name)
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build functions/%s: %v\n%s", name, err, b)
	}
	built[name] = out
	return out
}

// RIEPath finds the Lambda Runtime Interface Emulator (make tools installs it).
func RIEPath(t testing.TB) string {
	t.Helper()
	p, err := rie.Find()
	if err != nil {
		t.Fatalf("%v (see README)", err)
	}
	return p
}

// Function is a compiled function running under the runtime emulator.
type Function struct {
	Name string
	URL  string // the invoke URL
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	logs *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartFunction builds functions/<name> and runs it under the runtime
// emulator on 127.0.0.1, with env added to this process's environment. It is
// stopped when t ends.
func StartFunction(t testing.TB, name string, env []string) *Function {
	t.Helper()
	bootstrap := BuildFunction(t, name)
	port, apiPort := FreePort(t), FreePort(t)
	cmd := rie.Command(RIEPath(t), bootstrap, port, apiPort, "--log-level", "error")
	cmd.Env = append(append(os.Environ(), "AWS_LAMBDA_FUNCTION_NAME="+name, "AWS_LAMBDA_FUNCTION_TIMEOUT=60"), env...)
	f := &Function{Name: name, URL: rie.InvokeURL(port),
		cmd: cmd, done: make(chan struct{}), logs: &lockedBuffer{}}
	cmd.Stdout, cmd.Stderr = f.logs, f.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s under the runtime emulator: %v", name, err)
	}
	go func() { _ = cmd.Wait(); close(f.done) }()
	t.Cleanup(f.Stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err == nil {
			conn.Body.Close()
			return f
		}
		select {
		case <-f.done:
			t.Fatalf("the runtime emulator for %s exited: %s", name, f.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runtime emulator for %s did not listen within 20s", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop stops the emulator and the function.
func (f *Function) Stop() {
	select {
	case <-f.done:
		return
	default:
	}
	_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
	<-f.done
}

// Logs returns what the function and the emulator printed.
func (f *Function) Logs() string { return f.logs.String() }

// InvokeError is a function error reported by the emulator.
type InvokeError struct {
	Type, Message string
}

func (e *InvokeError) Error() string { return e.Type + ": " + e.Message }

// Invoke calls the function with payload (marshalled to JSON unless it is
// []byte) and returns its result. A handler error comes back as
// *InvokeError. Invokes are serialised: the emulator crashes on concurrent
// ones.
func (f *Function) Invoke(ctx context.Context, payload any) (json.RawMessage, error) {
	body, ok := payload.([]byte)
	if !ok {
		var err error
		if body, err = json.Marshal(payload); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("invoke %s: %w", f.Name, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("invoke %s: %w", f.Name, err)
	}
	var fe struct {
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
	}
	if resp.StatusCode != http.StatusOK {
		_ = json.Unmarshal(out, &fe)
		return nil, &InvokeError{Type: fmt.Sprintf("HTTP %d %s", resp.StatusCode, fe.ErrorType), Message: fe.ErrorMessage}
	}
	if bytes.HasPrefix(out, []byte("Task timed out")) {
		return nil, &InvokeError{Type: "Timeout", Message: string(out)}
	}
	if json.Unmarshal(out, &fe) == nil && fe.ErrorType != "" {
		return nil, &InvokeError{Type: fe.ErrorType, Message: fe.ErrorMessage}
	}
	return out, nil
}
