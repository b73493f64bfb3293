package local

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// bootstrapStartup runs a function's bootstrap on its own, without the
// emulator, against a minimal Lambda Runtime API on 127.0.0.1 that hands it
// event once, and returns the time from starting the process to its
// response (or error report) for that event: the process start, the
// function's initialisation and the handler.
func bootstrapStartup(ctx context.Context, bootstrap string, env []string, event []byte) (time.Duration, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("runtime API: %w", err)
	}
	answered := make(chan time.Time, 1)
	var handed atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, r *http.Request) {
		if handed.Swap(true) {
			<-r.Context().Done() // one invoke only
			return
		}
		w.Header().Set("Lambda-Runtime-Aws-Request-Id", newUUID())
		w.Header().Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10))
		w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:"+Region+":123456789012:function:bench")
		_, _ = w.Write(event)
	})
	done := func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
		select {
		case answered <- now:
		default:
		}
	}
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", done)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", done)
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", done)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()

	cmd := exec.Command(bootstrap)
	cmd.Env = append([]string{
		"AWS_LAMBDA_RUNTIME_API=" + l.Addr().String(),
		"AWS_LAMBDA_FUNCTION_NAME=bench",
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
	}, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", bootstrap, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}()
	select {
	case t := <-answered:
		return t.Sub(start), nil
	case <-exited:
		return 0, fmt.Errorf("%s exited before answering its first invoke", bootstrap)
	case <-ctx.Done():
		return 0, fmt.Errorf("%s did not answer its first invoke: %w", bootstrap, ctx.Err())
	case <-time.After(time.Minute):
		return 0, fmt.Errorf("%s did not answer its first invoke within a minute", bootstrap)
	}
}
