package client_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/client"
)

// recordingTransport answers 200 to every request without dialing, and
// records the Authorization header each one carried.
type recordingTransport struct {
	mu   sync.Mutex
	auth map[string]string // URL -> Authorization
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	if r.auth == nil {
		r.auth = map[string]string{}
	}
	r.auth[req.URL.String()] = req.Header.Get("Authorization")
	r.mu.Unlock()
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Header: http.Header{}, Request: req}, nil
}

func (r *recordingTransport) authOf(u string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.auth[u]
}

// statusOf sends one request through rt and returns the status of the
// answer, whose body it drains.
func statusOf(t *testing.T, rt http.RoundTripper, method, url string, body io.Reader, header http.Header) int {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// wantNoRefusal fails the test if the client saw a refused key: an
// AuthFailure, a ForcedRefresh, or a second read of the secret.
func wantNoRefusal(t *testing.T, seen *events, sm *countingSM, after string) {
	t.Helper()
	if n, f := seen.Count(client.AuthFailure), seen.Count(client.ForcedRefresh); n != 0 || f != 0 {
		t.Fatalf("%d auth failures and %d forced refreshes after %s, want none", n, f, after)
	}
	if got := sm.calls.Load(); got != 1 {
		t.Fatalf("GetSecretValue calls = %d after %s, want 1", got, after)
	}
}

// TestTransportKeyOnlyToTheVendor: the key goes only to the vendor's hosts,
// over https or over http to a loopback host; every other request is sent
// without it. The base RoundTripper records instead of dialing.
func TestTransportKeyOnlyToTheVendor(t *testing.T) {
	type step struct {
		url     string
		withKey bool
	}
	cases := []struct {
		name  string
		hosts []string
		steps []step
	}{
		{"LearnedFromFirstRequest", nil, []step{
			{"https://api.example.com/v1/charges", true},
			{"http://api.example.com/v1/charges", false}, // clear text
			{"https://evil.example.com/v1/charges", false},
			{"https://api.example.com:8443/v1/charges", false},
			{"https://API.Example.com.:443/v1/charges", true},
		}},
		{"LearnedFromPlainHTTP", nil, []step{
			{"http://api.example.com/v1", false},   // learned, but clear text
			{"https://evil.example.com/v1", false}, // where that request was redirected
			{"https://api.example.com/v1", true},
		}},
		{"Given", []string{"api.example.com", "files.example.com:8443"}, []step{
			{"https://evil.example.com/", false}, // the first request teaches nothing
			{"http://api.example.com/", false},
			{"https://api.example.com/", true},
			{"https://files.example.com:8443/", true},
			{"https://files.example.com/", false},
		}},
		{"Loopback", []string{"127.0.0.1:8080", "[::1]:9000", "localhost"}, []step{
			{"http://127.0.0.1:8080/", true},
			{"http://[::1]:9000/", true},
			{"http://localhost/", true},
			{"https://localhost/", true},
			{"http://localhost:8080/", false},
			{"http://127.0.0.2:8080/", false},
			{"ftp://127.0.0.1:8080/", false},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := &recordingTransport{}
			c := client.New(newFakeSM(t, "k1"), nil)
			rt := c.Transport(base, "s", client.Bearer, tc.hosts...)
			for _, s := range tc.steps {
				statusOf(t, rt, http.MethodGet, s.url, nil, nil)
				got := base.authOf(s.url)
				if s.withKey && got != "Bearer k1" {
					t.Errorf("%s was sent with Authorization %q, want the key", s.url, got)
				}
				if !s.withKey && got != "" {
					t.Errorf("%s was sent with Authorization %q, want none", s.url, got)
				}
			}
		})
	}
}

// TestTransportKeepsKeyOffRedirects: a vendor that redirects to another
// host (a second loopback server) does not get the key sent there, and that
// host's 401 is returned as is: it says nothing about the key.
func TestTransportKeepsKeyOffRedirects(t *testing.T) {
	for _, given := range []bool{false, true} {
		name := map[bool]string{false: "LearnedHost", true: "GivenHost"}[given]
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			var elsewhere []string
			other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				elsewhere = append(elsewhere, r.Header.Get("Authorization"))
				mu.Unlock()
				w.WriteHeader(http.StatusUnauthorized)
			}))
			t.Cleanup(other.Close)
			var vendorAuth string
			vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				vendorAuth = r.Header.Get("Authorization")
				mu.Unlock()
				http.Redirect(w, r, other.URL+"/collect", http.StatusFound)
			}))
			t.Cleanup(vendor.Close)

			sm := &countingSM{SecretsManagerAPI: newFakeSM(t, "k1")}
			var seen events
			c := client.New(sm, &client.Options{TTL: ttl, Now: newTestClock().Now, OnEvent: seen.Record})
			var hosts []string
			if given {
				u, _ := url.Parse(vendor.URL)
				hosts = []string{u.Host}
			}
			hc := &http.Client{Transport: c.Transport(http.DefaultTransport, "s", client.Bearer, hosts...)}
			resp, err := hc.Get(vendor.URL + "/v1/report")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()

			mu.Lock()
			defer mu.Unlock()
			if vendorAuth != "Bearer k1" {
				t.Fatalf("the vendor got Authorization %q, want the key", vendorAuth)
			}
			if len(elsewhere) != 1 || elsewhere[0] != "" {
				t.Fatalf("the host redirected to got Authorization %q, want one request without it", elsewhere)
			}
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want the other host's 401", resp.StatusCode)
			}
			wantNoRefusal(t, &seen, sm, "another host's 401")
		})
	}
}

// TestTransport403IsNotARefusal: by default a 403 comes back as it is: no
// event, no forced refresh, no replay (Stripe answers 403 to a live
// restricted key that lacks a permission).
func TestTransport403IsNotARefusal(t *testing.T) {
	fake := newFakeSM(t, "k1")
	sm := &countingSM{SecretsManagerAPI: fake}
	clock := newTestClock()
	var seen events
	c := client.New(sm, &client.Options{TTL: ttl, Now: clock.Now, OnEvent: seen.Record})
	ks, srv := startKeyServer(t, "k1", bearerOf)
	ks.refuse = http.StatusForbidden
	rt := c.Transport(srv.Client().Transport, "s", client.Bearer)
	get := func() int { return statusOf(t, rt, http.MethodGet, srv.URL, nil, nil) }
	if got := get(); got != http.StatusOK {
		t.Fatalf("status %d", got)
	}
	rotateUnderCache(t, fake, ks, clock, "v2", "k2")
	before := len(ks.requests())
	if got := get(); got != http.StatusForbidden {
		t.Fatalf("status %d, want the vendor's 403 as it is", got)
	}
	if n := len(ks.requests()) - before; n != 1 {
		t.Fatalf("vendor saw %d requests, want 1 (no replay)", n)
	}
	wantNoRefusal(t, &seen, sm, "a 403")
}

// TestTransportDoesNotReplayPost: a refused POST is not sent again with
// another key unless it carries an idempotency key; the key is still
// refreshed, so the next request succeeds. Idempotent methods are replayed.
func TestTransportDoesNotReplayPost(t *testing.T) {
	sm := newFakeSM(t, "k1")
	clock := newTestClock()
	var seen events
	c := client.New(sm, &client.Options{TTL: ttl, Now: clock.Now, OnEvent: seen.Record})
	ks, srv := startKeyServer(t, "k1", bearerOf)
	rt := c.Transport(srv.Client().Transport, "s", client.Bearer)
	send := func(method, body string, header http.Header) int {
		t.Helper()
		return statusOf(t, rt, method, srv.URL+"/charge", strings.NewReader(body), header)
	}
	if got := send(http.MethodPost, "zero", nil); got != http.StatusOK {
		t.Fatalf("status %d", got)
	}

	rotateUnderCache(t, sm, ks, clock, "v2", "k2")
	before := len(ks.requests())
	if got := send(http.MethodPost, "one", nil); got != http.StatusUnauthorized {
		t.Fatalf("POST: status %d, want the vendor's 401 (no replay)", got)
	}
	if n := len(ks.requests()) - before; n != 1 {
		t.Fatalf("POST: vendor saw %d requests, want 1", n)
	}
	if got := seen.Count(client.ForcedRefresh); got != 1 {
		t.Fatalf("forced refreshes = %d, want 1 (the key is refreshed all the same)", got)
	}
	if got := send(http.MethodPost, "two", nil); got != http.StatusOK {
		t.Fatalf("next POST: status %d, want 200 with the refreshed key", got)
	}

	for i, tc := range []struct {
		method string
		header http.Header
	}{
		{http.MethodPost, http.Header{"Idempotency-Key": {"charge-42"}}},
		{http.MethodPut, nil},
		{http.MethodDelete, nil},
	} {
		n := fmt.Sprint(i + 3)
		rotateUnderCache(t, sm, ks, clock, "v"+n, "k"+n)
		before := len(ks.requests())
		if got := send(tc.method, "idempotent", tc.header); got != http.StatusOK {
			t.Fatalf("%s %v: status %d, want 200 after one replay", tc.method, tc.header, got)
		}
		if n := len(ks.requests()) - before; n != 2 {
			t.Fatalf("%s %v: vendor saw %d requests, want 2", tc.method, tc.header, n)
		}
	}
}

// rotateUnderCache moves Secrets Manager and the vendor to key while the
// client's cache still holds the previous one.
func rotateUnderCache(t *testing.T, sm *fakeSM, ks *keyServer, clock *testClock, version, key string) {
	t.Helper()
	sm.set(t, client.StageCurrent, version, key)
	ks.setLive(key)
	clock.Advance(time.Minute)
}
