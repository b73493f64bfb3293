package stripe

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/contracttest"
)

const (
	liveKey       = "sk_test_51Hx0000000000000000000000000000live"
	restrictedKey = "rk_test_51Hx00000000000000000000000restricted"
)

// fakeStripe answers GET /v1/balance as Stripe does: a balance object for a
// secret key, 403 for a restricted key without balance access, 401 for an
// unknown key. Queued faults answer first.
type fakeStripe struct {
	mu      sync.Mutex
	faults  []fault
	calls   int
	release chan struct{}
}

type fault struct {
	status int
	header map[string]string
	body   string
	hang   bool
}

func stripeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Request-Id", "req_fake123")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"type": typ, "message": msg}})
}

func (f *fakeStripe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls++
	if len(f.faults) > 0 {
		ft := f.faults[0]
		f.faults = f.faults[1:]
		f.mu.Unlock()
		if ft.hang {
			select {
			case <-r.Context().Done():
			case <-f.release:
			}
			return
		}
		for k, v := range ft.header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(ft.status)
		_, _ = io.WriteString(w, ft.body)
		return
	}
	f.mu.Unlock()
	if r.Method != http.MethodGet || r.URL.Path != "/v1/balance" {
		stripeError(w, http.StatusNotFound, "invalid_request_error", "Unrecognized request URL")
		return
	}
	switch strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") {
	case liveKey:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Request-Id", "req_fake123")
		_, _ = io.WriteString(w, `{"object":"balance","livemode":false,"available":[{"amount":0,"currency":"usd","source_types":{"card":0}}],"pending":[{"amount":0,"currency":"usd"}]}`)
	case restrictedKey:
		stripeError(w, http.StatusForbidden, "invalid_request_error", "The provided key does not have the required permissions for this endpoint.")
	default:
		stripeError(w, http.StatusUnauthorized, "invalid_request_error", "Invalid API Key provided.")
	}
}

func (f *fakeStripe) inject(fs ...fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, fs...)
}

func (f *fakeStripe) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

type env struct {
	p     *Provider
	fake  *fakeStripe
	waits *[]time.Duration
}

// newEnv starts a fake Stripe; unless noContract, every exchange is
// validated against stripe.yaml when the test ends.
func newEnv(t *testing.T, noContract bool) *env {
	t.Helper()
	spec := ""
	if !noContract {
		var err error
		if spec, err = contracttest.Lookup("stripe.yaml"); err != nil {
			t.Logf("%v: requests are not checked against the vendor's spec (TestContract skips)", err)
		}
	}
	fake := &fakeStripe{release: make(chan struct{})}
	rec := contracttest.NewRecorder(fake)
	srv := httptest.NewServer(rec)
	t.Cleanup(func() {
		close(fake.release)
		srv.Close()
		if spec != "" {
			contracttest.Validate(t, spec, rec.Exchanges(), nil)
		}
	})
	var mu sync.Mutex
	waits := &[]time.Duration{}
	cfg := Config{BaseURL: srv.URL}
	cfg.HTTP.Sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		*waits = append(*waits, d)
		mu.Unlock()
		return ctx.Err()
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{p: p, fake: fake, waits: waits}
}

func cred(key string) providers.Credential { return providers.Credential{Provider: Name, Key: key} }

func wantKind(t *testing.T, err error, k providers.Kind) *providers.Error {
	t.Helper()
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Kind != k || !strings.HasPrefix(pe.Op, Name+".") {
		t.Fatalf("err = %v, want a *providers.Error of kind %v with a stripe Op", err, k)
	}
	return pe
}

func TestVerify(t *testing.T) {
	e := newEnv(t, false)
	ctx := context.Background()
	if err := e.p.Verify(ctx, cred(liveKey)); err != nil {
		t.Fatalf("live key: %v", err)
	}
	if err := e.p.Verify(ctx, cred(restrictedKey)); err != nil {
		t.Fatalf("restricted key without balance access: %v, want nil (403 proves the key live)", err)
	}
	bogus := "sk_test_bogus_" + strings.Repeat("x", 24)
	err := e.p.Verify(ctx, cred(bogus))
	if pe := wantKind(t, err, providers.Permission); pe.Status != 401 || pe.RequestID != "req_fake123" {
		t.Fatalf("status %d request id %q", pe.Status, pe.RequestID)
	}
	if strings.Contains(err.Error(), bogus) || strings.Contains(err.Error(), "Invalid API Key") {
		t.Fatalf("error %q quotes the key or the body", err)
	}
	if n := e.fake.count(); n != 3 {
		t.Fatalf("%d requests, want 3 (no retry of 401 or 403)", n)
	}
	wantKind(t, e.p.Verify(ctx, cred("")), providers.Invalid)
}

func TestCreateAndRevokeRefuseAndSayWhatToDo(t *testing.T) {
	e := newEnv(t, true) // nothing is sent
	p := e.p
	if p.Name() != Name {
		t.Fatalf("Name %q", p.Name())
	}
	_, err := p.Create(context.Background(), providers.CreateRequest{SecretName: "app/stripe", KeyName: "k", Owner: cred(liveKey)})
	wantKind(t, err, providers.Invalid)
	if !errors.Is(err, ErrCannotMint) || !strings.Contains(err.Error(), "keyrotor import") {
		t.Fatalf("Create error %v does not point to keyrotor import", err)
	}
	err = p.Revoke(context.Background(), cred(liveKey), "sk_live_…abcd")
	wantKind(t, err, providers.Invalid)
	if !errors.Is(err, ErrCannotRevoke) || strings.Contains(err.Error(), liveKey) {
		t.Fatalf("Revoke error %v", err)
	}
	if n := e.fake.count(); n != 0 {
		t.Fatalf("%d requests, want none", n)
	}
}

func TestRetryAfterHonouredOn429(t *testing.T) {
	e := newEnv(t, false)
	e.fake.inject(fault{status: 429, header: map[string]string{"Retry-After": "2"}, body: `{"error":{"type":"rate_limit_error","message":"Too many requests"}}`})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.p.Verify(ctx, cred(liveKey)); err != nil {
		t.Fatal(err)
	}
	if len(*e.waits) != 1 || (*e.waits)[0] != 2*time.Second || e.fake.count() != 2 {
		t.Fatalf("waits %v after %d requests, want [2s] and 2", *e.waits, e.fake.count())
	}
}

func TestServerErrorThenSuccess(t *testing.T) {
	e := newEnv(t, false)
	e.fake.inject(fault{status: 500, body: `{"error":{"type":"api_error","message":"internal"}}`})
	if err := e.p.Verify(context.Background(), cred(liveKey)); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.count(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

func TestTimeoutIsTransient(t *testing.T) {
	e := newEnv(t, false)
	for range 8 {
		e.fake.inject(fault{hang: true})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	wantKind(t, e.p.Verify(ctx, cred(liveKey)), providers.Transient)
}

func TestMalformedOrForeignBodyIsAnError(t *testing.T) {
	for _, body := range []string{`{"object":"balance","available":[{"amount":SECRET`, `{"object":"customer","id":"cus_SECRET"}`} {
		e := newEnv(t, true) // the bodies break the spec on purpose
		e.fake.inject(fault{status: 200, body: body})
		err := e.p.Verify(context.Background(), cred(liveKey))
		wantKind(t, err, providers.Other)
		if strings.Contains(err.Error(), "SECRET") {
			t.Fatalf("error %q quotes the body", err)
		}
	}
}

func TestNewChecksTheBaseURL(t *testing.T) {
	if _, err := New(Config{BaseURL: "http://api.stripe.com"}); err == nil {
		t.Fatal("plain http to a non-loopback host accepted")
	}
	p, err := New(Config{})
	if err != nil || p.c.BaseURL() != DefaultBaseURL {
		t.Fatalf("default: %v", err)
	}
}

// TestContract checks Verify's request and the fake's answers against
// stripe.yaml (newEnv validates every test's exchanges when the spec is
// present; this test says so when it is not).
func TestContract(t *testing.T) {
	contracttest.Spec(t, "stripe.yaml")
	e := newEnv(t, false)
	if err := e.p.Verify(context.Background(), cred(liveKey)); err != nil {
		t.Fatal(err)
	}
}
