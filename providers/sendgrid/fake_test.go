package sendgrid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
	"github.com/keyrotor/keyrotor/providers/contracttest"
)

// fakeSendGrid is an in-memory SendGrid v3 API keys API whose answers have
// the shapes of sendgrid.yaml. A key with the api_keys.* scopes manages
// keys; any live key reads its own scopes.
type fakeSendGrid struct {
	mu      sync.Mutex
	keys    map[string]*fakeKey // by key value
	order   []string            // key values in creation order
	n       int
	limit   int
	faults  []fault
	calls   map[string]int // "METHOD /path" → count
	release chan struct{}
}

type fakeKey struct {
	id, value, name string
	scopes          []string
}

// fault answers the next request matching method and path prefix instead
// of the fake.
type fault struct {
	method, path string
	status       int
	header       map[string]string
	body         string
	hang         bool
}

const adminKey = "SG.admin.admin-secret-value"

var adminScopes = []string{"api_keys.create", "api_keys.read", "api_keys.update", "api_keys.delete", "mail.send"}

func newFakeSendGrid() *fakeSendGrid {
	f := &fakeSendGrid{keys: map[string]*fakeKey{}, limit: MaxKeys, calls: map[string]int{}, release: make(chan struct{})}
	f.add("admin", adminScopes, adminKey)
	return f
}

func (f *fakeSendGrid) add(name string, scopes []string, value string) *fakeKey {
	f.n++
	id := "kid" + hex.EncodeToString([]byte{byte(f.n >> 8), byte(f.n)}) + rnd(4)
	if value == "" {
		value = "SG." + id + "." + rnd(16)
	}
	k := &fakeKey{id: id, value: value, name: name, scopes: append([]string(nil), scopes...)}
	f.keys[value] = k
	f.order = append(f.order, value)
	return k
}

func rnd(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (f *fakeSendGrid) inject(fs ...fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, fs...)
}

func (f *fakeSendGrid) count(method, path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method+" "+path]
}

func (f *fakeSendGrid) byID(id string) *fakeKey {
	for _, v := range f.order {
		if k := f.keys[v]; k != nil && k.id == id {
			return k
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Request-Id", "sg-"+rnd(4))
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func sgError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"errors": []map[string]any{{"message": msg}}})
}

func (f *fakeSendGrid) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls[r.Method+" "+r.URL.Path]++
	for i, ft := range f.faults {
		if ft.method == r.Method && strings.HasPrefix(r.URL.Path, ft.path) {
			f.faults = append(f.faults[:i], f.faults[i+1:]...)
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
	}
	defer f.mu.Unlock()

	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	caller := f.keys[token]
	if !ok || caller == nil {
		sgError(w, http.StatusUnauthorized, "authorization required")
		return
	}
	can := func(scope string) bool {
		for _, s := range caller.scopes {
			if s == scope {
				return true
			}
		}
		return false
	}
	switch path := r.URL.Path; {
	case r.Method == http.MethodGet && path == "/v3/scopes":
		writeJSON(w, http.StatusOK, map[string]any{"scopes": caller.scopes})
	case path == "/v3/api_keys" && r.Method == http.MethodPost:
		if !can("api_keys.create") {
			sgError(w, http.StatusForbidden, "access forbidden")
			return
		}
		var body struct {
			Name   string    `json:"name"`
			Scopes *[]string `json:"scopes"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Name == "" {
			sgError(w, http.StatusBadRequest, "missing required argument")
			return
		}
		if len(f.keys) >= f.limit {
			sgError(w, http.StatusForbidden, "Cannot create more than 100 API Keys")
			return
		}
		scopes := caller.scopes // omitted scopes: Full Access
		if body.Scopes != nil {
			scopes = *body.Scopes
		}
		k := f.add(body.Name, scopes, "")
		writeJSON(w, http.StatusCreated, map[string]any{"api_key": k.value, "api_key_id": k.id, "name": k.name, "scopes": k.scopes})
	case path == "/v3/api_keys" && r.Method == http.MethodGet:
		if !can("api_keys.read") {
			sgError(w, http.StatusForbidden, "access forbidden")
			return
		}
		res := []map[string]string{}
		for _, v := range f.order {
			if k := f.keys[v]; k != nil {
				res = append(res, map[string]string{"api_key_id": k.id, "name": k.name})
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"result": res})
	case strings.HasPrefix(path, "/v3/api_keys/"):
		k := f.byID(strings.TrimPrefix(path, "/v3/api_keys/"))
		need := map[string]string{http.MethodGet: "api_keys.read", http.MethodDelete: "api_keys.delete"}[r.Method]
		switch {
		case need == "":
			sgError(w, http.StatusMethodNotAllowed, "method not allowed")
		case !can(need):
			sgError(w, http.StatusForbidden, "access forbidden")
		case k == nil:
			sgError(w, http.StatusNotFound, "unable to find API Key")
		case r.Method == http.MethodGet:
			writeJSON(w, http.StatusOK, map[string]any{"result": []map[string]any{{"api_key_id": k.id, "name": k.name, "scopes": k.scopes}}})
		default:
			delete(f.keys, k.value)
			w.WriteHeader(http.StatusNoContent)
		}
	default:
		sgError(w, http.StatusNotFound, "not found")
	}
}

// stubAdmin is a fake adminsecret reader over one key.
type stubAdmin struct{ key string }

func (s stubAdmin) Read(_ context.Context, op string, owner providers.Credential) (adminsecret.Credential, error) {
	if _, err := owner.RequireAttr(op, providers.FieldAdminSecretID); err != nil {
		return adminsecret.Credential{}, err
	}
	return adminsecret.Credential{Key: s.key}, nil
}

// env is a provider talking to a fake over HTTP, with its recorder.
type env struct {
	p     *Provider
	fake  *fakeSendGrid
	rec   *contracttest.Recorder
	srv   *httptest.Server
	owner providers.Credential
	slept *sleepLog
}

// sleepLog records the waits the provider asked for, without waiting.
type sleepLog struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleepLog) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepLog) waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

type options struct {
	noContract bool // for tests whose fake deliberately breaks the spec
}

// newEnv starts a fake SendGrid on 127.0.0.1 and a provider for it. Unless
// o.noContract, every exchange of the test is validated against
// sendgrid.yaml when the test ends.
func newEnv(t *testing.T, o options) *env {
	t.Helper()
	spec := ""
	if !o.noContract {
		var err error
		if spec, err = contracttest.Lookup("sendgrid.yaml"); err != nil {
			t.Logf("%v: requests are not checked against the vendor's spec (TestContract skips)", err)
		}
	}
	fake := newFakeSendGrid()
	rec := contracttest.NewRecorder(fake)
	srv := httptest.NewServer(rec)
	t.Cleanup(func() {
		close(fake.release)
		srv.Close()
		if spec != "" {
			contracttest.Validate(t, spec, rec.Exchanges(), nil)
		}
	})
	slept := &sleepLog{}
	cfg := Config{BaseURL: srv.URL, Admin: stubAdmin{key: adminKey}}
	cfg.HTTP.Sleep = slept.sleep
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	owner := providers.Credential{Provider: Name}
	owner, _ = owner.WithAttr(providers.FieldAdminSecretID, "sendgrid/admin")
	owner, _ = owner.WithAttr(FieldScopes, []string{"mail.send"})
	return &env{p: p, fake: fake, rec: rec, srv: srv, owner: owner, slept: slept}
}
