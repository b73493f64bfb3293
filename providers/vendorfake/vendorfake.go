// Package vendorfake holds what the fake vendors of the providers' tests
// (sendgridfake, cloudflarefake, datadogfake, twiliofake) share: injected
// faults that answer a request instead of the fake, and the helpers
// WriteJSON and RandomHex.
//
// Faults is a queue: each queued Fault answers the next request matching its
// method and path prefix, once, with a status, headers and a body shaped
// like the vendor's, or hangs until the request is cancelled or Release is
// called; it also counts every request it sees, answered or not (Count).
// Respond builds a fake's Fault hook instead: a function answering
// every matching request (or the first n), marking its answer with
// FaultHeader so that the contract checks validate the request
// only.
package vendorfake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// FaultHeader marks a response an injected fault sent instead of the vendor's
// answer: the contract checks (contracttest) validate the request of such an
// exchange only.
const FaultHeader = "X-Fault"

// Fault answers the next request matching Method and the Path prefix
// instead of the fake: with Status, Header and Body, or, with Hang, never
// (until the request is cancelled or Release is called).
type Fault struct {
	Method, Path string
	Status       int
	Header       map[string]string
	Body         string
	Hang         bool
}

// Faults is a queue of faults and a count of requests. The zero value is
// empty and ready; it is safe for concurrent use.
type Faults struct {
	// Prefix is put before every Fault's Path (Cloudflare's /client/v4).
	// Set it before serving.
	Prefix string

	mu          sync.Mutex
	queue       []Fault
	calls       map[string]int // "METHOD /path" → count
	release     chan struct{}
	releaseOnce sync.Once
}

// Inject queues faults.
func (q *Faults) Inject(fs ...Fault) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.queue = append(q.queue, fs...)
}

// Release ends every hanging fault, now and later. Call it before closing
// the HTTP server.
func (q *Faults) Release() {
	ch := q.releaseChan()
	q.releaseOnce.Do(func() { close(ch) })
}

func (q *Faults) releaseChan() chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.release == nil {
		q.release = make(chan struct{})
	}
	return q.release
}

// Answer counts r, answers it with the first queued fault matching it,
// which it dequeues, and reports whether it did; the fake serves r when it
// did not. A fault's body is sent as JSON.
func (q *Faults) Answer(w http.ResponseWriter, r *http.Request) bool {
	ft, ok := q.take(r)
	if !ok {
		return false
	}
	if ft.Hang {
		select {
		case <-r.Context().Done():
		case <-q.releaseChan():
		}
		return true
	}
	for k, v := range ft.Header {
		w.Header().Set(k, v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ft.Status)
	_, _ = io.WriteString(w, ft.Body)
	return true
}

func (q *Faults) take(r *http.Request) (Fault, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.calls == nil {
		q.calls = map[string]int{}
	}
	q.calls[r.Method+" "+r.URL.Path]++
	for i, ft := range q.queue {
		if ft.Method == r.Method && strings.HasPrefix(r.URL.Path, q.Prefix+ft.Path) {
			q.queue = append(q.queue[:i], q.queue[i+1:]...)
			return ft, true
		}
	}
	return Fault{}, false
}

// Count returns how many requests Answer saw with method and path (the
// whole path, Prefix included).
func (q *Faults) Count(method, path string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.calls[method+" "+path]
}

// Respond returns a fault hook that answers the requests match accepts
// (only the first times of them when times > 0) with status, body (as JSON)
// and the header name/value pairs, marked with FaultHeader.
// The hook reports whether it answered.
func Respond(match func(*http.Request) bool, times int32, status int, body string, header ...string) func(http.ResponseWriter, *http.Request) bool {
	var n atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) bool {
		if !match(r) || (times > 0 && n.Add(1) > times) {
			return false
		}
		w.Header().Set(FaultHeader, "1")
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
		return true
	}
}

// WriteJSON answers v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// RandomHex returns n random bytes, hex-encoded (2n characters): the fakes'
// ids, keys and request ids.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
