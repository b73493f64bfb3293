package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

// Function is a compiled function running under one or more Lambda
// Runtime Interface Emulators: its instances. One emulator handles one
// invoke at a time (a second concurrent invoke crashes it), while Lambda
// runs as many instances as invokes arrive; Options.Concurrency sets how
// many the local stack starts per function, and an invoke goes to a free
// instance, or waits for one.
type Function struct {
	Name         string // the folder under functions/: gateway, iam, revoker, auditor
	Region       string // the region it runs in (its AWS_REGION)
	FunctionName string // the name in moto's Lambda (FunctionNamePrefix + Name), the same in every region
	ARN          string // the ARN in moto's Lambda
	Bootstrap    string // the compiled binary
	InvokeURL    string // the first instance's invoke endpoint
	Endpoint     string // the function's AWS_ENDPOINT_URL: its own counting proxy to moto

	instances []*instance
	free      chan *instance // the idle instances: an invoke takes one and puts it back
	invokes   atomic.Int64
	onWait    func() // tests: called when an invoke finds every instance busy
}

// instance is one emulator running the function's bootstrap.
type instance struct {
	proc      *process
	invokeURL string
	http      *http.Client
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

// startFunction runs bootstrap, function name of region, under instances
// emulators (at least one) at path rieBin on 127.0.0.1 and free ports, each
// with env as its whole environment (plus PATH); label names their
// processes in the logs. On error the instances started are stopped.
func startFunction(name, label, region, bootstrap, rieBin string, instances int, env []string, logs io.Writer) (*Function, error) {
	f := &Function{
		Name: name, Region: region, FunctionName: FunctionNamePrefix + name, Bootstrap: bootstrap,
		free: make(chan *instance, max(instances, 1)),
	}
	for range max(instances, 1) {
		in, err := startInstance(f.FunctionName, label, bootstrap, rieBin, env, logs)
		if err != nil {
			_ = f.stop(time.Second)
			return nil, err
		}
		f.instances = append(f.instances, in)
		f.free <- in
	}
	f.InvokeURL = f.instances[0].invokeURL
	return f, nil
}

// startInstance starts one emulator of function functionName and waits
// until it answers.
func startInstance(functionName, label, bootstrap, rieBin string, env []string, logs io.Writer) (*instance, error) {
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
		"AWS_LAMBDA_FUNCTION_NAME=" + functionName,
		"AWS_LAMBDA_FUNCTION_TIMEOUT=60",
	}, env...)
	in := &instance{invokeURL: rie.InvokeURL(port), http: &http.Client{Timeout: 2 * time.Minute}}
	if in.proc, err = startProcess(label, cmd, logs); err != nil {
		return nil, err
	}
	if err := waitHTTP(fmt.Sprintf("http://127.0.0.1:%d/", port), in.proc, 20*time.Second); err != nil {
		_ = in.proc.stop(time.Second)
		return nil, fmt.Errorf("start function %s: %w\n%s", label, err, in.proc.logs.String())
	}
	return in, nil
}

// stop stops every instance, waiting grace for each, and returns their
// errors.
func (f *Function) stop(grace time.Duration) error {
	errs := make([]error, len(f.instances))
	var wg sync.WaitGroup
	for i, in := range f.instances {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = in.proc.stop(grace) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pids returns the process group ids of the instances.
func (f *Function) pids() []int {
	out := make([]int, len(f.instances))
	for i, in := range f.instances {
		out[i] = in.proc.pgid
	}
	return out
}

// Instances returns how many emulators run the function.
func (f *Function) Instances() int { return len(f.instances) }

// Logs returns what the function and its emulators printed: the function's
// JSON logs and EMF lines, and the emulator's START/END/REPORT lines, one
// instance after the other.
func (f *Function) Logs() string {
	if len(f.instances) == 1 {
		return f.instances[0].proc.logs.String()
	}
	var b strings.Builder
	for _, in := range f.instances {
		l := in.proc.logs.String()
		b.WriteString(l)
		if l != "" && !strings.HasSuffix(l, "\n") {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// Invokes returns how many invokes the function has received.
func (f *Function) Invokes() int64 { return f.invokes.Load() }

// PID returns the process id of the first instance's emulator (the leader
// of its process group).
func (f *Function) PID() int { return f.instances[0].proc.pgid }

// Invoke calls the function with payload and returns its result. A handler
// error, a panic or a timeout comes back as *FunctionError. Each invoke
// goes to a free instance and waits for one when all are busy: one invoke
// at a time per emulator, as the emulator requires.
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
	var in *instance
	select {
	case in = <-f.free:
	default:
		if f.onWait != nil {
			f.onWait()
		}
		select {
		case in = <-f.free:
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("invoke %s: waiting for a free instance: %w", f.FunctionName, ctx.Err())
		}
	}
	defer func() { f.free <- in }()
	f.invokes.Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.invokeURL, bytes.NewReader(payload))
	if err != nil {
		return nil, nil, fmt.Errorf("invoke %s: %w", f.FunctionName, err)
	}
	resp, err := in.http.Do(req)
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
// for the moto launcher: the one path to each function's emulators, so that
// invokes from moto, the SQS poller and the scheduler share its instances. fns holds the
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
