package local

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyrotor/keyrotor/internal/rie"
)

// FunctionNamePrefix prefixes the names of the stack's functions in moto's
// Lambda: keyrotor-gateway, keyrotor-iam, keyrotor-revoker, keyrotor-auditor.
const FunctionNamePrefix = "keyrotor-"

// Function is a compiled function running under its own Lambda Runtime
// Interface Emulator.
type Function struct {
	Name         string // the folder under functions/: gateway, iam, revoker, auditor
	Region       string // the region it runs in (its AWS_REGION)
	FunctionName string // the name in moto's Lambda (FunctionNamePrefix + Name), the same in every region
	ARN          string // the ARN in moto's Lambda
	Bootstrap    string // the compiled binary
	InvokeURL    string // the emulator's invoke endpoint
	Endpoint     string // the function's AWS_ENDPOINT_URL: its own counting proxy to moto

	mu      sync.Mutex // the emulator crashes on concurrent invokes
	proc    *process
	invokes atomic.Int64
	http    *http.Client
}

// FunctionError is an error the function's handler returned, a panic or a
// timeout, as the Lambda Invoke API reports it.
type FunctionError struct {
	Function string
	Type     string
	Message  string
}

func (e *FunctionError) Error() string {
	return fmt.Sprintf("function %s failed: %s: %s", e.Function, e.Type, e.Message)
}

// startFunction runs bootstrap, function name of region, under the emulator
// rieBin on 127.0.0.1 and free ports, with env as its whole environment
// (plus PATH); label names its process in the logs.
func startFunction(name, label, region, bootstrap, rieBin string, env []string, logs io.Writer) (*Function, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	apiPort, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := rie.Command(rieBin, bootstrap, port, apiPort)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"AWS_LAMBDA_FUNCTION_NAME=" + FunctionNamePrefix + name,
		"AWS_LAMBDA_FUNCTION_TIMEOUT=60",
	}, env...)
	f := &Function{
		Name: name, Region: region, FunctionName: FunctionNamePrefix + name, Bootstrap: bootstrap,
		InvokeURL: rie.InvokeURL(port),
		http:      &http.Client{Timeout: 2 * time.Minute},
	}
	if f.proc, err = startProcess(label, cmd, logs); err != nil {
		return nil, err
	}
	if err := waitHTTP(fmt.Sprintf("http://127.0.0.1:%d/", port), f.proc, 20*time.Second); err != nil {
		_ = f.proc.stop(time.Second)
		return nil, fmt.Errorf("start function %s: %w\n%s", label, err, f.proc.logs.String())
	}
	return f, nil
}

// Logs returns what the function and its emulator printed: the function's
// JSON logs and EMF lines, and the emulator's START/END/REPORT lines.
func (f *Function) Logs() string { return f.proc.logs.String() }

// Invokes returns how many invokes the function has received.
func (f *Function) Invokes() int64 { return f.invokes.Load() }

// PID returns the process id of the emulator (the leader of the function's
// process group).
func (f *Function) PID() int { return f.proc.pgid }

// Invoke calls the function with payload and returns its result. A handler
// error, a panic or a timeout comes back as *FunctionError. Invokes are
// queued: one at a time per function, as the emulator requires.
func (f *Function) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	out, ferr, err := f.invoke(ctx, payload)
	if err != nil {
		return nil, err
	}
	if ferr != nil {
		return out, ferr
	}
	return out, nil
}

// invoke returns the payload and, for a function error, the error as well as
// the payload the Lambda API would return ({"errorType","errorMessage"}).
func (f *Function) invoke(ctx context.Context, payload []byte) ([]byte, *FunctionError, error) {
	if len(payload) == 0 {
		payload = []byte("{}")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.invokes.Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.InvokeURL, bytes.NewReader(payload))
	if err != nil {
		return nil, nil, fmt.Errorf("invoke %s: %w", f.FunctionName, err)
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("invoke %s: %w", f.FunctionName, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("invoke %s: %w", f.FunctionName, err)
	}
	var fe struct {
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
	}
	switch {
	case bytes.HasPrefix(out, []byte("Task timed out")):
		fe.ErrorType, fe.ErrorMessage = "Sandbox.Timedout", strings.TrimSpace(string(out))
	case resp.StatusCode != http.StatusOK:
		_ = json.Unmarshal(out, &fe)
		if fe.ErrorType == "" {
			fe.ErrorType = fmt.Sprintf("Runtime.HTTP%d", resp.StatusCode)
		}
	default:
		if json.Unmarshal(out, &fe) != nil || fe.ErrorType == "" {
			return out, nil, nil
		}
	}
	errOut, _ := json.Marshal(map[string]string{"errorType": fe.ErrorType, "errorMessage": fe.ErrorMessage})
	return errOut, &FunctionError{Function: f.FunctionName, Type: fe.ErrorType, Message: fe.ErrorMessage}, nil
}

// lambdaFront serves POST /regions/{region}/functions/{name}/invocations
// for the moto launcher: the one path to each emulator, so that invokes from
// moto, the SQS poller and the scheduler are queued together. fns holds the
// functions by region/FunctionName.
func lambdaFront(fns map[string]*Function) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /regions/{region}/functions/{name}/invocations", func(w http.ResponseWriter, r *http.Request) {
		f, ok := fns[r.PathValue("region")+"/"+r.PathValue("name")]
		if !ok {
			w.Header().Set("X-Amz-Function-Error", "Unhandled")
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{
				"errorType":    "Runtime.NoEmulator",
				"errorMessage": "the local stack runs no function named " + r.PathValue("name") + " in " + r.PathValue("region"),
			})
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 6<<20))
		if err != nil {
			http.Error(w, "read the payload", http.StatusBadRequest)
			return
		}
		out, ferr, err := f.invoke(r.Context(), body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if ferr != nil {
			w.Header().Set("X-Amz-Function-Error", "Unhandled")
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
	return mux
}

// waitHTTP waits until url answers anything, p exits, or timeout passes.
func waitHTTP(url string, p *process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited before answering", p.name)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %s: %w", url, timeout, err)
		}
		time.Sleep(15 * time.Millisecond)
	}
}
