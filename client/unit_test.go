package client_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor/client"
)

// fakeSM is an in-memory Secrets Manager holding one secret, by stage. It
// refuses reads that do not name a stage. With a gate set, reads wait for
// it, after signalling on started.
type fakeSM struct {
	mu       sync.Mutex
	versions map[string][2]string // stage -> version id, value
	gate     chan struct{}
	started  chan struct{}
}

func newFakeSM(t *testing.T, key string) *fakeSM {
	f := &fakeSM{versions: map[string][2]string{}}
	f.set(t, client.StageCurrent, "v1", key)
	return f
}

func (f *fakeSM) set(t *testing.T, stage, version, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.versions[stage] = [2]string{version, secretValue(t, key, "id-"+key)}
}

// block makes reads wait until the returned function is called.
func (f *fakeSM) block(t *testing.T) (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate, f.started = make(chan struct{}), make(chan struct{}, 100)
	var once sync.Once
	release = func() { once.Do(func() { close(f.gate) }) }
	t.Cleanup(release)
	return release
}

func (f *fakeSM) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	f.mu.Lock()
	gate, started := f.gate, f.started
	f.mu.Unlock()
	if gate != nil {
		started <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if in.VersionStage == nil {
		return nil, errors.New("fakeSM: read without a VersionStage")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.versions[*in.VersionStage]
	if !ok {
		return nil, &smtypes.ResourceNotFoundException{Message: aws.String("no such version")}
	}
	return &secretsmanager.GetSecretValueOutput{VersionId: aws.String(v[0]), SecretString: aws.String(v[1])}, nil
}

// guard fails the test if fn does not return within a generous bound, so
// that a reader blocked by mistake fails instead of hanging the suite.
func guard[T any](t *testing.T, what string, fn func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- fn() }()
	select {
	case v := <-done:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("%s blocked", what)
		panic("unreachable")
	}
}

func TestBackgroundRefreshDoesNotBlockReaders(t *testing.T) {
	sm := newFakeSM(t, "k1")
	clock := newTestClock()
	c := client.New(sm, &client.Options{TTL: ttl, Now: clock.Now})
	ctx := context.Background()
	if _, err := c.Key(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	release := sm.block(t)
	sm.set(t, client.StageCurrent, "v2", "k2")
	clock.Advance(ttl * 9 / 10)
	for range 3 {
		cred := guard(t, "a read during the refresh", func() client.Credential { cred, _ := c.Key(ctx, "s"); return cred })
		if cred.Key != "k1" || cred.Stale {
			t.Fatalf("during the background refresh got %v (key %q), want the fresh cached k1", cred, cred.Key)
		}
	}
	guard(t, "waiting for the background refresh to start", func() bool { <-sm.started; return true })
	release()
	waitForKey(t, c, "s", "k2")
	if len(sm.started) != 0 {
		t.Fatalf("%d more refreshes started, want one", len(sm.started))
	}
}

func TestReaderDeadlineServesStale(t *testing.T) {
	sm := newFakeSM(t, "k1")
	clock := newTestClock()
	var seen events
	c := client.New(sm, &client.Options{TTL: ttl, Now: clock.Now, OnEvent: seen.Record})
	if _, err := c.Key(context.Background(), "s"); err != nil {
		t.Fatal(err)
	}
	sm.block(t) // Secrets Manager hangs
	clock.Advance(ttl)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-sm.started; cancel() }()
	type result struct {
		cred client.Credential
		err  error
	}
	r := guard(t, "a read whose context ended", func() result {
		cred, err := c.Key(ctx, "s")
		return result{cred, err}
	})
	cred, err := r.cred, r.err
	if err != nil || cred.Key != "k1" || !cred.Stale {
		t.Fatalf("got %v (key %q), want the stale k1", cred, cred.Key)
	}
	if ev, ok := seen.Last(client.StaleServe); !ok || !errors.Is(ev.Err, context.Canceled) {
		t.Fatalf("stale serve event = %+v, %t; want one caused by the cancellation", ev, ok)
	}
}

func TestKeyErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("NoSuchSecret", func(t *testing.T) {
		sm := &fakeSM{versions: map[string][2]string{}}
		_, err := client.New(sm, nil).Key(ctx, "missing")
		var nf *smtypes.ResourceNotFoundException
		if !errors.As(err, &nf) || !strings.Contains(err.Error(), "missing") {
			t.Fatalf("err = %v, want a ResourceNotFoundException naming the secret", err)
		}
	})
	t.Run("NoKeyYet", func(t *testing.T) {
		sm := &fakeSM{versions: map[string][2]string{client.StageCurrent: {"v1", `{"provider":"gateway","user_name":"bot"}`}}}
		if _, err := client.New(sm, nil).Key(ctx, "bootstrap"); !errors.Is(err, client.ErrNoKey) {
			t.Fatalf("err = %v, want ErrNoKey", err)
		}
	})
	t.Run("NotJSON", func(t *testing.T) {
		sm := &fakeSM{versions: map[string][2]string{client.StageCurrent: {"v1", `sk_live_plaintext`}}}
		_, err := client.New(sm, nil).Key(ctx, "plain")
		if err == nil || strings.Contains(err.Error(), "sk_live") {
			t.Fatalf("err = %v, want an error that does not quote the value", err)
		}
	})
}

func TestCredentialNeverShowsKey(t *testing.T) {
	sm := &fakeSM{versions: map[string][2]string{client.StageCurrent: {"v1", `{"provider":"twilio","key":"s3cr3t-value","key_id":"SK1","account_sid":"AC1"}`}}}
	cred, err := client.New(sm, nil).Key(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	if cred.Key != "s3cr3t-value" || cred.KeyID != "SK1" || cred.Attr("account_sid") != "AC1" {
		t.Fatalf("fields: key_id %q, account_sid %q", cred.KeyID, cred.Attr("account_sid"))
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("read", "cred", cred)
	js, _ := json.Marshal(cred)
	for _, s := range []string{fmt.Sprint(cred), fmt.Sprintf("%+v", cred), fmt.Sprintf("%#v", cred), logged.String(), string(js), fmt.Sprint([]client.Credential{cred})} {
		if strings.Contains(s, "s3cr3t") {
			t.Fatalf("the key leaked: %s", s)
		}
		if !strings.Contains(s, "SK1") {
			t.Fatalf("the key id is missing: %s", s)
		}
	}
}

func TestEMF(t *testing.T) {
	var out bytes.Buffer
	m := client.NewEMF(&out, "")
	m.Record(client.Event{Kind: client.AuthFailure, SecretID: "b"})
	m.Record(client.Event{Kind: client.AuthFailure, SecretID: "b"})
	m.Record(client.Event{Kind: client.ForcedRefresh, SecretID: "b"})
	m.Record(client.Event{Kind: client.StaleServe, SecretID: "a"})
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := m.Flush(); err != nil { // zeros for the secrets seen
		t.Fatal(err)
	}
	type line struct {
		AWS struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
		SecretName                                 string
		AuthFailures, ForcedRefreshes, StaleServes *int
	}
	var lines []line
	for _, raw := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var l line
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("not JSON: %q", raw)
		}
		lines = append(lines, l)
	}
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want 4:\n%s", len(lines), out.String())
	}
	want := []struct {
		name         string
		auth, forced int
		stale        int
	}{{"a", 0, 0, 1}, {"b", 2, 1, 0}, {"a", 0, 0, 0}, {"b", 0, 0, 0}}
	for i, l := range lines {
		w := want[i]
		if l.SecretName != w.name || l.AuthFailures == nil || *l.AuthFailures != w.auth || *l.ForcedRefreshes != w.forced || *l.StaleServes != w.stale {
			t.Fatalf("line %d = %+v, want %+v", i, l, w)
		}
		if l.AWS.Timestamp <= 0 || len(l.AWS.CloudWatchMetrics) != 1 {
			t.Fatalf("line %d: bad _aws %+v", i, l.AWS)
		}
		d := l.AWS.CloudWatchMetrics[0]
		// The SecretName dimension set is declared (package metrics may
		// add others, such as the total).
		if d.Namespace != "KeyRotation" || !slices.ContainsFunc(d.Dimensions, func(set []string) bool { return slices.Equal(set, []string{"SecretName"}) }) || len(d.Metrics) != 3 {
			t.Fatalf("line %d: bad directive %+v", i, d)
		}
		for j, name := range []string{"AuthFailures", "ForcedRefreshes", "StaleServes"} {
			if d.Metrics[j].Name != name || d.Metrics[j].Unit != "Count" {
				t.Fatalf("line %d: metric %d = %+v, want %s/Count", i, j, d.Metrics[j], name)
			}
		}
	}
	out.Reset()
	custom := client.NewEMF(&out, "Apps")
	custom.Record(client.Event{Kind: client.StaleServe, SecretID: "a"})
	if err := custom.Flush(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"Namespace":"Apps"`) {
		t.Fatalf("namespace not applied: %s", out.String())
	}
}

// keyServer is a vendor that accepts one key at a time and records the
// requests it saw.
type keyServer struct {
	mu     sync.Mutex
	live   string
	refuse int // the status of a refusal; 0 means 401
	header func(*http.Request) string
	seen   []seenRequest
}

type seenRequest struct {
	status int
	body   string
}

func (s *keyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	status := http.StatusOK
	if s.header(r) != s.live {
		status = cmp.Or(s.refuse, http.StatusUnauthorized)
	}
	s.seen = append(s.seen, seenRequest{status, string(body)})
	w.WriteHeader(status)
}

func (s *keyServer) setLive(key string) {
	s.mu.Lock()
	s.live = key
	s.mu.Unlock()
}

func (s *keyServer) requests() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenRequest(nil), s.seen...)
}

func startKeyServer(t *testing.T, live string, header func(*http.Request) string) (*keyServer, *httptest.Server) {
	ks := &keyServer{live: live, header: header}
	srv := httptest.NewServer(ks)
	t.Cleanup(srv.Close)
	return ks, srv
}

func bearerOf(r *http.Request) string {
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

// TestTransportReplaysBody: with ReplayNonIdempotent, a refused POST whose
// body can be sent again is replayed with the refreshed key.
func TestTransportReplaysBody(t *testing.T) {
	sm := newFakeSM(t, "k1")
	clock := newTestClock()
	var seen events
	c := client.New(sm, &client.Options{TTL: ttl, Now: clock.Now, OnEvent: seen.Record})
	ks, srv := startKeyServer(t, "k1", bearerOf)
	rt := c.Transport(srv.Client().Transport, "s", client.Bearer)
	rt.ReplayNonIdempotent = true
	hc := &http.Client{Transport: rt}

	post := func(body io.Reader) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/charge", body)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if req.Header.Get("Authorization") != "" {
			t.Fatal("Transport changed the caller's request")
		}
		return resp.StatusCode
	}
	if got := post(strings.NewReader("one")); got != http.StatusOK {
		t.Fatalf("status %d", got)
	}
	// The vendor now only accepts k2, which Secrets Manager holds.
	sm.set(t, client.StageCurrent, "v2", "k2")
	ks.setLive("k2")
	clock.Advance(time.Minute)

	t.Run("Replayable", func(t *testing.T) {
		if got := post(strings.NewReader("two")); got != http.StatusOK {
			t.Fatalf("status %d, want 200 after one retry", got)
		}
		seenReqs := ks.requests()
		last := seenReqs[len(seenReqs)-2:]
		if last[0] != (seenRequest{401, "two"}) || last[1] != (seenRequest{200, "two"}) {
			t.Fatalf("vendor saw %+v, want the body twice, refused then accepted", last)
		}
		if seen.Count(client.ForcedRefresh) != 1 || seen.Count(client.AuthFailure) != 1 {
			t.Fatalf("events: %d forced refreshes, %d auth failures; want 1 and 1", seen.Count(client.ForcedRefresh), seen.Count(client.AuthFailure))
		}
	})

	t.Run("NotReplayable", func(t *testing.T) {
		sm.set(t, client.StageCurrent, "v3", "k3")
		ks.setLive("k3")
		clock.Advance(time.Minute)
		before := len(ks.requests())
		// A body without GetBody cannot be sent twice: the 401 comes back,
		// but the key is refreshed for the next request.
		if got := post(io.NopCloser(strings.NewReader("three"))); got != http.StatusUnauthorized {
			t.Fatalf("status %d, want the vendor's 401", got)
		}
		if n := len(ks.requests()) - before; n != 1 {
			t.Fatalf("vendor saw %d requests, want 1 (no retry)", n)
		}
		if got := post(io.NopCloser(strings.NewReader("four"))); got != http.StatusOK {
			t.Fatalf("next request: status %d, want 200 with the refreshed key", got)
		}
		if seen.Count(client.ForcedRefresh) != 2 {
			t.Fatalf("forced refreshes = %d, want 2", seen.Count(client.ForcedRefresh))
		}
	})

	t.Run("VendorKeepsRefusing", func(t *testing.T) {
		ks.setLive("nobody")
		clock.Advance(time.Minute)
		before := len(ks.requests())
		if got := post(nil); got != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", got)
		}
		// The refreshed key is the same: no retry with it.
		if n := len(ks.requests()) - before; n != 1 {
			t.Fatalf("vendor saw %d requests, want 1", n)
		}
		// Moments later another refusal does not call Secrets Manager again.
		forced := seen.Count(client.ForcedRefresh)
		post(nil)
		if got := seen.Count(client.ForcedRefresh); got != forced {
			t.Fatalf("forced refreshes went from %d to %d within a second", forced, got)
		}
	})
}

func TestTransportSchemes(t *testing.T) {
	cases := []struct {
		name   string
		scheme client.Scheme
		header func(*http.Request) string
		want   string
	}{
		{"Bearer", client.Bearer, bearerOf, "k1"},
		{"Basic", client.Basic, func(r *http.Request) string { u, p, _ := r.BasicAuth(); return u + ":" + p }, "id-k1:k1"},
		{"Header", client.Header("X-Api-Key"), func(r *http.Request) string { return r.Header.Get("X-Api-Key") }, "k1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := client.New(newFakeSM(t, "k1"), nil)
			_, srv := startKeyServer(t, tc.want, tc.header)
			req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			resp, err := c.Transport(srv.Client().Transport, "s", tc.scheme).RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: the vendor did not find %q", resp.StatusCode, tc.want)
			}
		})
	}
}

func TestTransportKeyError(t *testing.T) {
	c := client.New(&fakeSM{versions: map[string][2]string{}}, nil)
	_, srv := startKeyServer(t, "k1", bearerOf)
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	resp, err := c.Transport(srv.Client().Transport, "missing", client.Bearer).RoundTrip(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("want an error when there is no key to send")
	}
	if !strings.Contains(err.Error(), "missing") {
		t.Fatalf("err = %v, want it to name the secret", err)
	}
}

// TestTransportForbiddenMeansRevoked: with ForbiddenMeansRevoked (Datadog,
// API Gateway), a 403 is a refusal too. The request is retried once with the
// refreshed key and, when that is refused as well, not again.
func TestTransportForbiddenMeansRevoked(t *testing.T) {
	sm := newFakeSM(t, "k1")
	clock := newTestClock()
	var seen events
	c := client.New(sm, &client.Options{TTL: ttl, Now: clock.Now, OnEvent: seen.Record})
	header := func(r *http.Request) string { return r.Header.Get("X-Api-Key") }
	ks, srv := startKeyServer(t, "k1", header)
	ks.refuse = http.StatusForbidden
	rt := c.Transport(srv.Client().Transport, "s", client.Header("X-Api-Key"))
	rt.ForbiddenMeansRevoked = true
	get := func() int { return statusOf(t, rt, http.MethodGet, srv.URL, nil, nil) }
	if got := get(); got != http.StatusOK {
		t.Fatalf("status %d", got)
	}

	rotateUnderCache(t, sm, ks, clock, "v2", "k2")
	if got := get(); got != http.StatusOK {
		t.Fatalf("after a 403: status %d, want 200 after one retry", got)
	}
	if ev, ok := seen.Last(client.AuthFailure); !ok || ev.Status != http.StatusForbidden || ev.VersionID != "v1" {
		t.Fatalf("auth failure event = %+v, %t", ev, ok)
	}

	// Secrets Manager holds k3, the vendor wants k4: one retry, then the
	// vendor's answer.
	sm.set(t, client.StageCurrent, "v3", "k3")
	ks.setLive("k4")
	clock.Advance(time.Minute)
	before := len(ks.requests())
	if got := get(); got != http.StatusForbidden {
		t.Fatalf("status %d, want 403", got)
	}
	if n := len(ks.requests()) - before; n != 2 {
		t.Fatalf("vendor saw %d requests, want 2 (one retry)", n)
	}
	if got := seen.Count(client.ForcedRefresh); got != 2 {
		t.Fatalf("forced refreshes = %d, want 2", got)
	}
}

// TestRefreshAheadWindow: the background refresh starts at a random point
// in (80%, 90%] of the TTL, never earlier.
func TestRefreshAheadWindow(t *testing.T) {
	for i := range 20 { // the point is random
		fake := newFakeSM(t, "k1")
		sm := &countingSM{SecretsManagerAPI: fake}
		clock := newTestClock()
		c := client.New(sm, &client.Options{TTL: ttl, Now: clock.Now})
		ctx := context.Background()
		if _, err := c.Key(ctx, "s"); err != nil {
			t.Fatal(err)
		}
		fake.set(t, client.StageCurrent, "v2", "k2")
		clock.Advance(ttl * 8 / 10)
		if cred, err := c.Key(ctx, "s"); err != nil || cred.Key != "k1" {
			t.Fatalf("run %d: at 80%% of the TTL got key %q, err %v; want the cached k1", i, cred.Key, err)
		}
		if got := sm.calls.Load(); got != 1 {
			t.Fatalf("run %d: %d calls at 80%% of the TTL, want 1 (no refresh yet)", i, got)
		}
		clock.Advance(ttl / 10)
		waitForKey(t, c, "s", "k2")
		if got := sm.calls.Load(); got != 2 {
			t.Fatalf("run %d: %d calls, want 2", i, got)
		}
	}
}

// TestFailedReadNotRepeatedAtOnce: a secret that could not be read is not
// asked for again within the retry interval, so that readers of a missing
// secret or a Secrets Manager outage do not turn into a call each.
func TestFailedReadNotRepeatedAtOnce(t *testing.T) {
	fake := &fakeSM{versions: map[string][2]string{}}
	sm := &countingSM{SecretsManagerAPI: fake}
	clock := newTestClock()
	c := client.New(sm, &client.Options{Now: clock.Now})
	ctx := context.Background()
	for range 3 {
		if _, err := c.Key(ctx, "s"); !isNotFound(err) {
			t.Fatalf("err = %v, want ResourceNotFoundException", err)
		}
	}
	if got := sm.calls.Load(); got != 1 {
		t.Fatalf("GetSecretValue calls = %d, want 1", got)
	}
	fake.set(t, client.StageCurrent, "v1", "k1")
	clock.Advance(10 * time.Second)
	if cred, err := c.Key(ctx, "s"); err != nil || cred.Key != "k1" {
		t.Fatalf("after the retry interval: key %q, err %v", cred.Key, err)
	}
	if got := sm.calls.Load(); got != 2 {
		t.Fatalf("GetSecretValue calls = %d, want 2", got)
	}
}
