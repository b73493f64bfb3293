package gateway

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
)

// Fault is what a FaultInjector does to admin calls.
type Fault int32

const (
	// NoFault passes every request through.
	NoFault Fault = iota
	// FaultUnavailable answers admin calls with 503.
	FaultUnavailable
	// FaultRateLimited answers admin calls with 429 and Retry-After: 1.
	FaultRateLimited
	// FaultHang holds admin calls until their request context ends, so
	// clients must bound those calls with a deadline (or httptest.Server.Close
	// waits for them).
	FaultHang
)

// FaultInjector wraps a gateway handler and, while a fault is set, fails the
// admin API (/v1/keys...) the way an outage would, while /v1/ping keeps
// working: "vendor outage during rotation". It is safe for concurrent use.
type FaultInjector struct {
	next  http.Handler
	fault atomic.Int32
}

// NewFaultInjector wraps next with no fault set.
func NewFaultInjector(next http.Handler) *FaultInjector {
	return &FaultInjector{next: next}
}

// Set makes the following admin calls fail with f (NoFault to heal).
func (f *FaultInjector) Set(fault Fault) { f.fault.Store(int32(fault)) }

// ServeHTTP applies the current fault to admin calls and passes everything
// else to the wrapped handler.
func (f *FaultInjector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/keys" && !strings.HasPrefix(r.URL.Path, "/v1/keys/") {
		f.next.ServeHTTP(w, r)
		return
	}
	switch Fault(f.fault.Load()) {
	case FaultUnavailable:
		w.Header().Set("X-Request-Id", newRequestID())
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the gateway admin API is unavailable")
	case FaultRateLimited:
		w.Header().Set("X-Request-Id", newRequestID())
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "rate_limited", "too many admin requests")
	case FaultHang:
		// The server notices a closed connection only once the body is read.
		_, _ = io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	default:
		f.next.ServeHTTP(w, r)
	}
}
