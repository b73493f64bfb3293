package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const testAdminToken = "admin-token-for-tests"

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// serve sends one request to h and returns the recorded answer.
func serve(h http.Handler, method, path, token, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("response (HTTP %d) is not JSON: %v", rec.Code, err)
	}
	return v
}

type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

type createdBody struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Key       string `json:"key"`
	CreatedAt string `json:"created_at"`
}

type keyBody struct {
	ID         string  `json:"id"`
	Name       string  `json:"name"`
	CreatedAt  string  `json:"created_at"`
	LastUsedAt *string `json:"last_used_at"`
}

func mustCreateKey(t *testing.T, h http.Handler, name string) createdBody {
	t.Helper()
	rec := serve(h, "POST", "/v1/keys", testAdminToken, `{"name":"`+name+`"}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST /v1/keys: HTTP %d %s", rec.Code, rec.Body)
	}
	k := decode[createdBody](t, rec)
	if k.ID == "" || k.Key == "" || k.Name != name {
		t.Fatalf("POST /v1/keys returned id=%q name=%q and an empty=%v key", k.ID, k.Name, k.Key == "")
	}
	return k
}

func TestNewServerRequiresAdminToken(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewServer without an AdminToken did not panic")
		}
	}()
	NewServer(ServerOptions{})
}

func TestServerAdminAuth(t *testing.T) {
	s := NewServer(ServerOptions{AdminToken: testAdminToken})
	k := mustCreateKey(t, s, "k")
	for _, op := range []struct{ method, path, body string }{
		{"POST", "/v1/keys", `{"name":"x"}`},
		{"GET", "/v1/keys", ""},
		{"GET", "/v1/keys/" + k.ID, ""},
		{"DELETE", "/v1/keys/" + k.ID, ""},
	} {
		for name, auth := range map[string]string{
			"none":        "",
			"wrong token": "Bearer not-the-admin-token",
			"a key":       "Bearer " + k.Key,
			"basic":       "Basic " + testAdminToken,
		} {
			req := httptest.NewRequest(op.method, op.path, strings.NewReader(op.body))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != http.StatusUnauthorized || decode[errorBody](t, rec).Error != "unauthorized" {
				t.Errorf("%s %s with %s: HTTP %d %s, want 401 unauthorized", op.method, op.path, name, rec.Code, rec.Body)
			}
		}
	}
	if got := s.LiveKeys(); len(got) != 1 || got[0].ID != k.ID {
		t.Fatalf("refused admin calls changed the keys: %+v", got)
	}
}

func TestServerRequestIDOnEveryResponse(t *testing.T) {
	s := NewServer(ServerOptions{AdminToken: testAdminToken})
	k := mustCreateKey(t, s, "k")
	seen := map[string]bool{}
	for _, c := range []struct {
		method, path, token, body string
		want                      int
	}{
		{"POST", "/v1/keys", testAdminToken, `{"name":"a"}`, 201},
		{"POST", "/v1/keys", testAdminToken, `{`, 400},
		{"GET", "/v1/keys", testAdminToken, "", 200},
		{"GET", "/v1/keys/" + k.ID, testAdminToken, "", 200},
		{"GET", "/v1/keys/key_nope", testAdminToken, "", 404},
		{"PUT", "/v1/keys/" + k.ID, testAdminToken, "", 405},
		{"POST", "/v1/ping", k.Key, "", 405},
		{"GET", "/v1/ping", k.Key, "", 200},
		{"GET", "/v1/ping", "", "", 401},
		{"GET", "/v2/elsewhere", "", "", 404},
		{"DELETE", "/v1/keys/" + k.ID, testAdminToken, "", 204},
	} {
		rec := serve(s, c.method, c.path, c.token, c.body)
		if rec.Code != c.want {
			t.Errorf("%s %s: HTTP %d, want %d", c.method, c.path, rec.Code, c.want)
		}
		id := rec.Header().Get("X-Request-Id")
		if !strings.HasPrefix(id, "req_") || seen[id] {
			t.Errorf("%s %s: X-Request-Id %q, want a fresh req_ id", c.method, c.path, id)
		}
		seen[id] = true
		if rec.Code >= 400 {
			if e := decode[errorBody](t, rec); e.Error == "" || e.Message == "" {
				t.Errorf("%s %s: error body %s lacks error or message", c.method, c.path, rec.Body)
			}
		}
	}
}

func TestServerCreateRejectsBadBodies(t *testing.T) {
	s := NewServer(ServerOptions{AdminToken: testAdminToken})
	for _, body := range []string{
		``, `{`, `[]`, `{}`, `{"name":""}`, `{"name":"  "}`, `{"name":7}`,
		`{"name":"a","extra":1}`, `{"name":"a"} {"name":"b"}`,
		`{"name":"` + strings.Repeat("n", 129) + `"}`,
		`{"name":"a","description":"` + strings.Repeat("d", 257) + `"}`,
	} {
		rec := serve(s, "POST", "/v1/keys", testAdminToken, body)
		if rec.Code != http.StatusBadRequest || decode[errorBody](t, rec).Error != "invalid_request" {
			t.Errorf("POST /v1/keys %.40q: HTTP %d %s, want 400 invalid_request", body, rec.Code, rec.Body)
		}
	}
	if n := len(s.LiveKeys()); n != 0 {
		t.Fatalf("bad bodies created %d keys", n)
	}
}

func TestServerKeyLimit(t *testing.T) {
	s := NewServer(ServerOptions{AdminToken: testAdminToken, MaxKeys: 2})
	a := mustCreateKey(t, s, "a")
	mustCreateKey(t, s, "b")
	rec := serve(s, "POST", "/v1/keys", testAdminToken, `{"name":"c"}`)
	if rec.Code != http.StatusConflict || decode[errorBody](t, rec).Error != "key_limit_reached" {
		t.Fatalf("third key: HTTP %d %s, want 409 key_limit_reached", rec.Code, rec.Body)
	}
	if n := len(s.LiveKeys()); n != 2 {
		t.Fatalf("%d live keys after a refused create, want 2", n)
	}
	if rec := serve(s, "DELETE", "/v1/keys/"+a.ID, testAdminToken, ""); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE: HTTP %d", rec.Code)
	}
	mustCreateKey(t, s, "c")
}

func TestServerPropagationDelay(t *testing.T) {
	clock := newFakeClock()
	s := NewServer(ServerOptions{AdminToken: testAdminToken, PropagationDelay: 10 * time.Second, Now: clock.Now})
	k := mustCreateKey(t, s, "k")
	if rec := serve(s, "GET", "/v1/ping", k.Key, ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("ping right after create: HTTP %d, want 401", rec.Code)
	}
	clock.Advance(10*time.Second - time.Nanosecond)
	if rec := serve(s, "GET", "/v1/ping", k.Key, ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("ping just before the delay passed: HTTP %d, want 401", rec.Code)
	}
	if used := getKey(t, s, k.ID).LastUsedAt; used != nil {
		t.Fatalf("a refused ping recorded last_used_at %s", *used)
	}
	clock.Advance(time.Nanosecond)
	rec := serve(s, "GET", "/v1/ping", k.Key, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("ping after the delay: HTTP %d, want 200", rec.Code)
	}
	if got := s.PingCounts(); got != (PingCounts{Accepted: 1, Refused: 2}) {
		t.Fatalf("PingCounts = %+v, want 1 accepted, 2 refused", got)
	}
}

func getKey(t *testing.T, h http.Handler, id string) keyBody {
	t.Helper()
	rec := serve(h, "GET", "/v1/keys/"+id, testAdminToken, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/keys/%s: HTTP %d", id, rec.Code)
	}
	return decode[keyBody](t, rec)
}

func TestServerPingAndLastUsed(t *testing.T) {
	clock := newFakeClock()
	s := NewServer(ServerOptions{AdminToken: testAdminToken, Now: clock.Now})
	k := mustCreateKey(t, s, "k")
	other := mustCreateKey(t, s, "other")
	if got := getKey(t, s, k.ID); got.LastUsedAt != nil || got.CreatedAt != clock.Now().Format(time.RFC3339Nano) {
		t.Fatalf("new key: created_at %s last_used_at %v, want %s and null", got.CreatedAt, got.LastUsedAt, clock.Now())
	}
	clock.Advance(time.Minute)
	rec := serve(s, "GET", "/v1/ping", k.Key, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("ping: HTTP %d", rec.Code)
	}
	if p := decode[struct {
		OK    bool   `json:"ok"`
		KeyID string `json:"key_id"`
	}](t, rec); !p.OK || p.KeyID != k.ID {
		t.Fatalf("ping answered %s, want ok and key_id %s", rec.Body, k.ID)
	}
	got := getKey(t, s, k.ID)
	if got.LastUsedAt == nil || *got.LastUsedAt != clock.Now().Format(time.RFC3339Nano) {
		t.Fatalf("last_used_at = %v, want %s", got.LastUsedAt, clock.Now())
	}
	if getKey(t, s, other.ID).LastUsedAt != nil {
		t.Fatal("a ping with one key recorded a use of another")
	}
	for name, auth := range map[string]string{
		"admin token":       "Bearer " + testAdminToken,
		"unknown key":       "Bearer gw_unknown",
		"key in lower case": "Bearer " + strings.ToLower(k.Key),
		"no scheme":         k.Key,
	} {
		req := httptest.NewRequest("GET", "/v1/ping", nil)
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("ping with %s: HTTP %d, want 401", name, rec.Code)
		}
	}
}

func TestServerRevokedKeyRefused(t *testing.T) {
	s := NewServer(ServerOptions{AdminToken: testAdminToken})
	k := mustCreateKey(t, s, "k")
	keep := mustCreateKey(t, s, "keep")
	if rec := serve(s, "DELETE", "/v1/keys/"+k.ID, testAdminToken, ""); rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
		t.Fatalf("DELETE: HTTP %d with %d body bytes, want 204 and no body", rec.Code, rec.Body.Len())
	}
	if rec := serve(s, "GET", "/v1/ping", k.Key, ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("ping with a revoked key: HTTP %d, want 401", rec.Code)
	}
	if rec := serve(s, "GET", "/v1/ping", keep.Key, ""); rec.Code != http.StatusOK {
		t.Fatalf("ping with the other key: HTTP %d, want 200", rec.Code)
	}
	for _, method := range []string{"GET", "DELETE"} {
		if rec := serve(s, method, "/v1/keys/"+k.ID, testAdminToken, ""); rec.Code != http.StatusNotFound || decode[errorBody](t, rec).Error != "not_found" {
			t.Fatalf("%s of a revoked key: HTTP %d %s, want 404 not_found", method, rec.Code, rec.Body)
		}
	}
	if got := s.LiveKeys(); len(got) != 1 || got[0].ID != keep.ID {
		t.Fatalf("LiveKeys = %+v, want only %s", got, keep.ID)
	}
}

func TestServerListKeys(t *testing.T) {
	clock := newFakeClock()
	s := NewServer(ServerOptions{AdminToken: testAdminToken, Now: clock.Now})
	a := mustCreateKey(t, s, "app-1")
	clock.Advance(time.Second)
	b := mustCreateKey(t, s, "app-2")
	c := mustCreateKey(t, s, "other-1")
	list := func(query string) []keyBody {
		rec := serve(s, "GET", "/v1/keys"+query, testAdminToken, "")
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /v1/keys%s: HTTP %d", query, rec.Code)
		}
		for _, k := range []createdBody{a, b, c} {
			if strings.Contains(rec.Body.String(), k.Key) {
				t.Fatalf("GET /v1/keys%s shows a key value", query)
			}
		}
		return decode[struct {
			Keys []keyBody `json:"keys"`
		}](t, rec).Keys
	}
	ids := func(keys []keyBody) string {
		var out []string
		for _, k := range keys {
			out = append(out, k.ID)
		}
		return strings.Join(out, ",")
	}
	if got, want := ids(list("?name_prefix=app-")), a.ID+","+b.ID; got != want {
		t.Fatalf("name_prefix=app-: %s, want %s (oldest first)", got, want)
	}
	if got := list(""); len(got) != 3 {
		t.Fatalf("no prefix: %d keys, want 3", len(got))
	}
	if got := list("?name_prefix=nothing"); got == nil || len(got) != 0 {
		t.Fatalf("unmatched prefix: %v, want an empty array", got)
	}
}

// TestServerConcurrentPings hammers /v1/ping over HTTP while keys are created
// and revoked; run it with -race.
func TestServerConcurrentPings(t *testing.T) {
	s := NewServer(ServerOptions{AdminToken: testAdminToken})
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	live := mustCreateKey(t, s, "live")
	const workers, pings = 8, 40
	var wg sync.WaitGroup
	failures := make(chan string, workers*pings)
	for range workers {
		wg.Go(func() {
			for range pings {
				req, _ := http.NewRequest("GET", ts.URL+"/v1/ping", nil)
				req.Header.Set("Authorization", "Bearer "+live.Key)
				resp, err := ts.Client().Do(req)
				if err != nil {
					failures <- err.Error()
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failures <- resp.Status
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			k, err := s.CreateKey("churn", "")
			if err != nil {
				failures <- err.Error()
				return
			}
			serve(s, "GET", "/v1/keys", testAdminToken, "")
			if i%2 == 0 {
				serve(s, "DELETE", "/v1/keys/"+k.ID, testAdminToken, "")
			}
		}
	})
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Errorf("ping with the live key or key churn failed: %s", f)
	}
	if got := s.PingCounts(); got.Accepted != workers*pings || got.Refused != 0 {
		t.Fatalf("PingCounts = %+v, want %d accepted", got, workers*pings)
	}
	if n := len(s.LiveKeys()); n != 11 {
		t.Fatalf("%d live keys, want 11", n)
	}
}

func TestRandomBase62(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		s := randomBase62(40)
		if len(s) != 40 || strings.Trim(s, base62) != "" || seen[s] {
			t.Fatalf("randomBase62(40) = %q: wrong length, alphabet or a repeat", s)
		}
		seen[s] = true
	}
}
