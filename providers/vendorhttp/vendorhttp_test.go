package vendorhttp

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/providers"
)

// sleeps records the waits the client asked for without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// server answers with the statuses in order (the last one repeats) and
// counts the requests.
type server struct {
	*httptest.Server
	n    atomic.Int32
	last atomic.Pointer[http.Request]
	body atomic.Pointer[string]
}

func newServer(t *testing.T, h func(w http.ResponseWriter, r *http.Request, n int)) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(s.n.Add(1))
		b, _ := io.ReadAll(r.Body)
		str := string(b)
		s.body.Store(&str)
		s.last.Store(r)
		h(w, r, n)
	}))
	t.Cleanup(s.Close)
	return s
}

func statuses(codes ...int) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, n int) {
		code := codes[min(n, len(codes))-1]
		w.Header().Set("X-Request-Id", "req-"+strconv.Itoa(code))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		if code >= 300 {
			_, _ = io.WriteString(w, `{"errors":[{"message":"SECRET-BODY SG.leaked.key"}]}`)
			return
		}
		_, _ = io.WriteString(w, `{"id":"k1"}`)
	}
}

func newClient(t *testing.T, base string, sl *sleeps, mod ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{Vendor: "acme", BaseURL: base, Options: Options{Sleep: sl.sleep}}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func asError(t *testing.T, err error) *providers.Error {
	t.Helper()
	var pe *providers.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *providers.Error", err, err)
	}
	return pe
}

func TestNewEnforcesHTTPSExceptLoopback(t *testing.T) {
	for _, ok := range []string{"https://api.sendgrid.com", "https://api.cloudflare.com/client/v4/", "http://127.0.0.1:8080", "http://[::1]:9", "http://localhost:1", "http://127.0.0.2"} {
		if _, err := New(Config{Vendor: "v", BaseURL: ok}); err != nil {
			t.Errorf("New(%s): %v, want accepted", ok, err)
		}
	}
	for _, bad := range []string{"http://api.sendgrid.com", "http://10.0.0.1", "ftp://127.0.0.1", "/v3", "", "https://user:pass@api.example.com", "https://api.example.com?x=1", "http://localhost.evil.com"} {
		_, err := New(Config{Vendor: "v", BaseURL: bad})
		if err == nil {
			t.Errorf("New(%q) accepted, want an error", bad)
			continue
		}
		if strings.Contains(err.Error(), "pass") {
			t.Errorf("error %q quotes the credentials", err)
		}
	}
	if _, err := New(Config{BaseURL: "https://x"}); err == nil {
		t.Error("New without a vendor name accepted")
	}
}

func TestBaseURLPathIsKept(t *testing.T) {
	var sl sleeps
	s := newServer(t, statuses(200))
	c := newClient(t, s.URL+"/client/v4/", &sl)
	if err := c.Do(context.Background(), Request{Op: "List", Method: "GET", Path: "/user/tokens", Query: url.Values{"page": {"2"}}}, nil); err != nil {
		t.Fatal(err)
	}
	if got := s.last.Load().URL.String(); got != "/client/v4/user/tokens?page=2" {
		t.Fatalf("request URL %s", got)
	}
}

func TestClassificationTable(t *testing.T) {
	cases := []struct {
		status int
		kinds  map[int]providers.Kind
		want   providers.Kind
	}{
		{400, nil, providers.Invalid},
		{401, nil, providers.Permission},
		{403, nil, providers.Permission},
		{404, nil, providers.NotFound},
		{409, nil, providers.Conflict},
		{418, nil, providers.Invalid},
		{422, nil, providers.Invalid},
		{302, nil, providers.Other}, // redirects are not followed
		{501, nil, providers.Other},
		{403, map[int]providers.Kind{403: providers.Conflict}, providers.Conflict},
		{400, map[int]providers.Kind{400: providers.NotFound}, providers.NotFound},
	}
	for _, tc := range cases {
		var sl sleeps
		s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
			if tc.status == 302 {
				w.Header().Set("Location", "http://127.0.0.1:1/elsewhere")
			}
			statuses(tc.status)(w, r, n)
		})
		c := newClient(t, s.URL, &sl, func(c *Config) { c.Kinds = tc.kinds })
		err := c.Do(context.Background(), Request{Op: "Get", Method: "GET", Path: "/k"}, nil)
		pe := asError(t, err)
		if pe.Kind != tc.want || pe.Status != tc.status || pe.Op != "acme.Get" {
			t.Errorf("status %d overrides %v: got kind=%v status=%d op=%q, want %v", tc.status, tc.kinds, pe.Kind, pe.Status, pe.Op, tc.want)
		}
		if n := s.n.Load(); n != 1 {
			t.Errorf("status %d (%v): %d requests, want 1 (no retry)", tc.status, tc.want, n)
		}
	}
}

func TestErrorsCarryRequestIDNotBody(t *testing.T) {
	var sl sleeps
	s := newServer(t, statuses(401))
	c := newClient(t, s.URL, &sl)
	err := c.Do(context.Background(), Request{Op: "Verify", Method: "GET", Path: "/v3/scopes", Auth: Bearer("SG.secret-key")}, nil)
	pe := asError(t, err)
	if pe.RequestID != "req-401" {
		t.Fatalf("RequestID=%q, want req-401", pe.RequestID)
	}
	for _, leak := range []string{"SECRET-BODY", "leaked", "SG.secret-key"} {
		if strings.Contains(err.Error(), leak) {
			t.Fatalf("error %q contains %q", err, leak)
		}
	}
	if !strings.Contains(err.Error(), "acme.Verify") || !strings.Contains(err.Error(), "401") {
		t.Fatalf("error %q does not name the op and status", err)
	}
}

func TestRequestIDHeadersAndSanitizing(t *testing.T) {
	var sl sleeps
	s := newServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("Cf-Ray", "abc déf"+strings.Repeat("x", 300))
		w.WriteHeader(500)
	})
	c := newClient(t, s.URL, &sl, func(c *Config) { c.RequestIDHeaders = []string{"X-Request-Id", "Cf-Ray"}; c.MaxAttempts = 1 })
	pe := asError(t, c.Do(context.Background(), Request{Op: "Get", Method: "GET"}, nil))
	if !strings.HasPrefix(pe.RequestID, "abcdfxx") || len(pe.RequestID) != maxRequestID {
		t.Fatalf("RequestID=%q (len %d)", pe.RequestID, len(pe.RequestID))
	}
}

func TestGetRetries5xxThenSucceeds(t *testing.T) {
	var sl sleeps
	s := newServer(t, statuses(503, 500, 200))
	c := newClient(t, s.URL, &sl)
	var out struct{ ID string }
	if err := c.Do(context.Background(), Request{Op: "Get", Method: "GET", Path: "/k"}, &out); err != nil {
		t.Fatal(err)
	}
	if out.ID != "k1" || s.n.Load() != 3 {
		t.Fatalf("out=%+v after %d requests, want k1 after 3", out, s.n.Load())
	}
	w := sl.waits()
	if len(w) != 2 {
		t.Fatalf("waits %v, want 2", w)
	}
	for i, d := range w {
		if d < 0 || d > backoffBase<<i {
			t.Fatalf("wait %d = %v, want within [0, %v] (full jitter)", i, d, backoffBase<<i)
		}
	}
}

func TestRetriesStopAtMaxAttempts(t *testing.T) {
	var sl sleeps
	s := newServer(t, statuses(502))
	c := newClient(t, s.URL, &sl, func(c *Config) { c.MaxAttempts = 3 })
	err := c.Do(context.Background(), Request{Op: "Del", Method: "DELETE", Path: "/k"}, nil)
	if !providers.IsKind(err, providers.Transient) || s.n.Load() != 3 {
		t.Fatalf("err=%v after %d requests, want Transient after 3", err, s.n.Load())
	}
}

func TestPostIsNotRetriedOn5xx(t *testing.T) {
	var sl sleeps
	s := newServer(t, statuses(500, 200))
	c := newClient(t, s.URL, &sl)
	err := c.Do(context.Background(), Request{Op: "Create", Method: "POST", Path: "/keys", JSON: map[string]string{"name": "n"}}, nil)
	if !providers.IsKind(err, providers.Transient) || s.n.Load() != 1 {
		t.Fatalf("err=%v after %d requests, want Transient after exactly 1 (a create must not mint twice)", err, s.n.Load())
	}
}

func TestRetryAfterSecondsHonouredOn429(t *testing.T) {
	var sl sleeps
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(429)
			return
		}
		statuses(201)(w, r, n)
	})
	c := newClient(t, s.URL, &sl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A POST is retried on 429 only: the vendor refused it without acting.
	if err := c.Do(ctx, Request{Op: "Create", Method: "POST", Path: "/keys", JSON: struct{}{}}, nil); err != nil {
		t.Fatal(err)
	}
	if w := sl.waits(); len(w) != 1 || w[0] != 7*time.Second || s.n.Load() != 2 {
		t.Fatalf("waits %v after %d requests, want [7s] and 2", w, s.n.Load())
	}
}

func TestRetryAfterHTTPDate(t *testing.T) {
	var sl sleeps
	now := time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.Header().Set("Retry-After", now.Add(3*time.Second).Format(http.TimeFormat))
			w.WriteHeader(429)
			return
		}
		statuses(200)(w, r, n)
	})
	c := newClient(t, s.URL, &sl, func(c *Config) { c.Now = func() time.Time { return now } })
	if err := c.Do(context.Background(), Request{Op: "Get", Method: "GET"}, nil); err != nil {
		t.Fatal(err)
	}
	if w := sl.waits(); len(w) != 1 || w[0] != 3*time.Second {
		t.Fatalf("waits %v, want [3s]", w)
	}
}

func TestRetryAfterBeyondDeadlineGivesUp(t *testing.T) {
	var sl sleeps
	s := newServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(429)
	})
	c := newClient(t, s.URL, &sl)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := c.Do(ctx, Request{Op: "Get", Method: "GET"}, nil)
	pe := asError(t, err)
	if pe.Kind != providers.Transient || pe.Status != 429 || s.n.Load() != 1 || len(sl.waits()) != 0 {
		t.Fatalf("err=%v, %d requests, waits %v: want a Transient 429 at once", err, s.n.Load(), sl.waits())
	}
}

func TestHangingServerTimesOutTransient(t *testing.T) {
	var sl sleeps
	release := make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	c := newClient(t, s.URL, &sl)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := c.Do(ctx, Request{Op: "Get", Method: "GET", Path: "/k"}, nil)
	pe := asError(t, err)
	if pe.Kind != providers.Transient || pe.Status != 0 {
		t.Fatalf("err=%v, want a Transient error without a status", err)
	}
}

func TestAttemptTimeoutThenRetry(t *testing.T) {
	var sl sleeps
	release := make(chan struct{})
	s := newServer(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		statuses(200)(w, r, n)
	})
	defer close(release)
	c := newClient(t, s.URL, &sl, func(c *Config) { c.AttemptTimeout = 50 * time.Millisecond })
	if err := c.Do(context.Background(), Request{Op: "Get", Method: "GET"}, nil); err != nil {
		t.Fatal(err)
	}
	if s.n.Load() != 2 {
		t.Fatalf("%d requests, want 2 (the first attempt timed out)", s.n.Load())
	}
}

func TestAttemptTimeoutFollowsDeadline(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c, err := New(Config{Vendor: "v", BaseURL: "https://x", Options: Options{Now: func() time.Time { return now }}})
	if err != nil {
		t.Fatal(err)
	}
	if d := c.attemptTimeout(context.Background()); d != DefaultAttemptTimeout {
		t.Fatalf("without deadline: %v", d)
	}
	ctx, cancel := context.WithDeadline(context.Background(), now.Add(2*time.Second))
	defer cancel()
	if d := c.attemptTimeout(ctx); d != 1800*time.Millisecond {
		t.Fatalf("with 2 s left: %v, want 1.8s", d)
	}
}

func TestCanceledContextIsTransient(t *testing.T) {
	var sl sleeps
	s := newServer(t, statuses(200))
	c := newClient(t, s.URL, &sl)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := c.Do(ctx, Request{Op: "Create", Method: "POST"}, nil)
	if !providers.IsKind(err, providers.Transient) || s.n.Load() != 0 {
		t.Fatalf("err=%v after %d requests", err, s.n.Load())
	}
	asError(t, err)
}

func TestMalformedBodyIsAnErrorWithoutTheBody(t *testing.T) {
	for _, body := range []string{`{"api_key":"SG.abc.SECRET`, `{"id": 12345678901}`, `<html>SECRET</html>`} {
		var sl sleeps
		s := newServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
			w.Header().Set("X-Request-Id", "r1")
			_, _ = io.WriteString(w, body)
		})
		c := newClient(t, s.URL, &sl)
		var out struct{ ID string }
		err := c.Do(context.Background(), Request{Op: "Get", Method: "GET"}, &out)
		pe := asError(t, err)
		if pe.Kind != providers.Other || pe.Status != 200 || pe.RequestID != "r1" {
			t.Fatalf("body %q: err=%v, want Other with status and request id", body, err)
		}
		for _, leak := range []string{"SECRET", "12345678901", "SG."} {
			if strings.Contains(err.Error(), leak) {
				t.Fatalf("error %q quotes the body", err)
			}
		}
	}
}

func TestAuthAndBodies(t *testing.T) {
	var sl sleeps
	s := newServer(t, statuses(200))
	c := newClient(t, s.URL, &sl)
	ctx := context.Background()

	if err := c.Do(ctx, Request{Op: "A", Method: "POST", Auth: Bearer("tok"), JSON: map[string]any{"name": "n"}, Header: http.Header{"On-Behalf-Of": {"sub"}}}, nil); err != nil {
		t.Fatal(err)
	}
	r := s.last.Load()
	if r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("Content-Type") != "application/json" || *s.body.Load() != `{"name":"n"}` || r.Header.Get("On-Behalf-Of") != "sub" {
		t.Fatalf("JSON request: headers %v body %q", r.Header, *s.body.Load())
	}

	if err := c.Do(ctx, Request{Op: "B", Method: "POST", Auth: Basic("SK1", "sec"), Form: url.Values{"FriendlyName": {"x y"}}}, nil); err != nil {
		t.Fatal(err)
	}
	r = s.last.Load()
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("SK1:sec"))
	if r.Header.Get("Authorization") != want || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || *s.body.Load() != "FriendlyName=x+y" {
		t.Fatalf("form request: headers %v body %q", r.Header, *s.body.Load())
	}

	if err := c.Do(ctx, Request{Op: "C", Method: "GET", Auth: Headers("DD-API-KEY", "a", "DD-APPLICATION-KEY", "b")}, nil); err != nil {
		t.Fatal(err)
	}
	r = s.last.Load()
	if r.Header.Get("DD-API-KEY") != "a" || r.Header.Get("DD-APPLICATION-KEY") != "b" || r.Header.Get("Content-Type") != "" {
		t.Fatalf("header auth: %v", r.Header)
	}

	err := c.Do(ctx, Request{Op: "D", Method: "POST", JSON: 1, Form: url.Values{}}, nil)
	if !providers.IsKind(err, providers.Invalid) {
		t.Fatalf("JSON and form together: %v", err)
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{"0": 0, "15": 15 * time.Second, now.Add(-time.Minute).Format(http.TimeFormat): 0, now.Add(time.Minute).Format(http.TimeFormat): time.Minute} {
		if d, ok := retryAfter(in, now); !ok || d != want {
			t.Errorf("retryAfter(%q) = %v, %v; want %v", in, d, ok, want)
		}
	}
	for _, in := range []string{"", "-3", "soon"} {
		if _, ok := retryAfter(in, now); ok {
			t.Errorf("retryAfter(%q) accepted", in)
		}
	}
}
