package vendorfake

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// serve serves faults before a handler answering 200 "fake" on 127.0.0.1.
func serve(t *testing.T, answer func(http.ResponseWriter, *http.Request) bool) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if answer(w, r) {
			return
		}
		_, _ = io.WriteString(w, "fake")
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func get(t *testing.T, ctx context.Context, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestFaultsAnswerOnceByMethodAndPathPrefix(t *testing.T) {
	q := &Faults{Prefix: "/client/v4"}
	url := serve(t, q.Answer)
	q.Inject(Fault{Method: http.MethodPost, Path: "/user/tokens", Status: 429, Header: map[string]string{"Retry-After": "3"}, Body: `{"e":1}`})
	if _, body := get(t, context.Background(), http.MethodGet, url+"/client/v4/user/tokens"); body != "fake" {
		t.Fatalf("a GET was answered by a POST fault: %q", body)
	}
	if _, body := get(t, context.Background(), http.MethodPost, url+"/user/tokens"); body != "fake" {
		t.Fatalf("a path without the prefix was answered by the fault: %q", body)
	}
	resp, body := get(t, context.Background(), http.MethodPost, url+"/client/v4/user/tokens/x")
	if resp.StatusCode != 429 || body != `{"e":1}` || resp.Header.Get("Retry-After") != "3" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("fault answer = %d %v %q", resp.StatusCode, resp.Header, body)
	}
	if resp.Header.Get(FaultHeader) != "" {
		t.Fatal("a queued fault's answer is marked: its body would not be validated")
	}
	if _, body := get(t, context.Background(), http.MethodPost, url+"/client/v4/user/tokens"); body != "fake" {
		t.Fatalf("a fault answered twice: %q", body)
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/client/v4/user/tokens", 1},
		{http.MethodPost, "/client/v4/user/tokens", 1},
		{http.MethodPost, "/client/v4/user/tokens/x", 1}, // answered by the fault
		{http.MethodPost, "/user/tokens", 1},
		{http.MethodDelete, "/client/v4/user/tokens", 0},
	} {
		if n := q.Count(c.method, c.path); n != c.want {
			t.Errorf("Count(%s %s) = %d, want %d", c.method, c.path, n, c.want)
		}
	}
}

func TestFaultsHangUntilCancelledOrReleased(t *testing.T) {
	q := &Faults{}
	url := serve(t, q.Answer)
	q.Inject(Fault{Method: http.MethodGet, Path: "/a", Hang: true}, Fault{Method: http.MethodGet, Path: "/a", Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/a", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("a hanging fault answered")
	}
	done := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, url+"/a", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- err.Error()
			return
		}
		resp.Body.Close()
		done <- resp.Status
	}()
	q.Release()
	q.Release() // twice is fine
	if got := <-done; !strings.HasPrefix(got, "200") {
		t.Fatalf("a released hang answered %q, want 200 with no body", got)
	}
}

func TestRespondMarksItsAnswersAndCounts(t *testing.T) {
	isPost := func(r *http.Request) bool { return r.Method == http.MethodPost }
	url := serve(t, Respond(isPost, 1, 503, `{"e":1}`, "Retry-After", "7"))
	if _, body := get(t, context.Background(), http.MethodGet, url); body != "fake" {
		t.Fatalf("an unmatched request was answered: %q", body)
	}
	resp, body := get(t, context.Background(), http.MethodPost, url)
	if resp.StatusCode != 503 || body != `{"e":1}` || resp.Header.Get("Retry-After") != "7" || resp.Header.Get(FaultHeader) == "" {
		t.Fatalf("answer = %d %v %q", resp.StatusCode, resp.Header, body)
	}
	if _, body := get(t, context.Background(), http.MethodPost, url); body != "fake" {
		t.Fatalf("answered more than times: %q", body)
	}
}
