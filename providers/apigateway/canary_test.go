package apigateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdk "github.com/aws/aws-sdk-go-v2/service/apigateway"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/apigateway"
	"github.com/keyrotor/keyrotor/providers/vendorhttp"
)

const (
	canaryKeyID = "k1"
	canaryKey   = "the-key-value-0123456789abcdef"
	// bodyMarker is in every answer of the data plane; no error may quote it.
	bodyMarker = "BODY-OF-THE-DATA-PLANE"
)

// GetApiKey answers for canaryKeyID: enabled, with canaryKey's value, unless
// disabled is set.
func (f *fakeAPI) GetApiKey(_ context.Context, in *sdk.GetApiKeyInput, _ ...func(*sdk.Options)) (*sdk.GetApiKeyOutput, error) {
	if aws.ToString(in.ApiKey) != canaryKeyID {
		return nil, apiError("NotFoundException", 404)
	}
	return &sdk.GetApiKeyOutput{Id: in.ApiKey, Value: aws.String(canaryKey), Enabled: !f.disabled}, nil
}

// dataPlane is a stand-in for the gateway's data plane on 127.0.0.1 that
// answers status and records the API keys it was sent.
type dataPlane struct {
	mu     sync.Mutex
	status int
	keys   []string
	paths  []string
	url    string
}

func startDataPlane(t *testing.T, status int) *dataPlane {
	t.Helper()
	d := &dataPlane{status: status}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.keys = append(d.keys, r.Header.Get(apigateway.CanaryHeader))
		d.paths = append(d.paths, r.URL.Path)
		status := d.status
		d.mu.Unlock()
		if status >= 300 && status < 400 {
			w.Header().Set("Location", "http://127.0.0.1:1/elsewhere")
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"message":"` + bodyMarker + `","key":"` + r.Header.Get(apigateway.CanaryHeader) + `"}`))
	}))
	t.Cleanup(srv.Close)
	d.url = srv.URL
	return d
}

func (d *dataPlane) requests() (keys, paths []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.keys...), append([]string(nil), d.paths...)
}

// canaryOptions make one attempt per Verify and never wait.
var canaryOptions = vendorhttp.Options{
	MaxAttempts: 1,
	Sleep:       func(context.Context, time.Duration) error { return nil },
}

func canaryProvider(t *testing.T, f *fakeAPI, url string) *apigateway.Provider {
	t.Helper()
	c, err := apigateway.NewCanary(url, canaryOptions)
	if err != nil {
		t.Fatalf("NewCanary(%s): %v", url, err)
	}
	return apigateway.NewWithAPI(f).WithCanary(c)
}

func canaryCred(t *testing.T) providers.Credential {
	t.Helper()
	c := owner(t, canaryKeyID)
	c.Key = canaryKey
	return c
}

// TestVerifyAsksTheDataPlane shows that Verify does not stop at the
// management API: a key the data plane refuses (401, 403: not propagated
// yet) is a Permission error, one it lets through (2xx, 404 and the other
// non-auth answers) is verified, and a throttled or failing data plane is
// Transient. The key goes in x-api-key to the configured path, and no error
// quotes the key or the answer's body.
func TestVerifyAsksTheDataPlane(t *testing.T) {
	const accepted = providers.Kind(255)
	cases := []struct {
		status int
		want   providers.Kind
	}{
		{http.StatusForbidden, providers.Permission},
		{http.StatusUnauthorized, providers.Permission},
		{http.StatusOK, accepted},
		{http.StatusNoContent, accepted},
		{http.StatusNotFound, accepted},
		{http.StatusBadRequest, accepted},
		{http.StatusTooManyRequests, providers.Transient},
		{http.StatusInternalServerError, providers.Transient},
		{http.StatusNotImplemented, providers.Transient},
		{http.StatusServiceUnavailable, providers.Transient},
	}
	for _, c := range cases {
		t.Run(http.StatusText(c.status), func(t *testing.T) {
			d := startDataPlane(t, c.status)
			p := canaryProvider(t, &fakeAPI{}, d.url+"/prod/ping")
			err := p.Verify(context.Background(), canaryCred(t))
			if c.want == accepted {
				if err != nil {
					t.Fatalf("Verify with the data plane answering %d = %v, want nil", c.status, err)
				}
			} else {
				if got := providers.KindOf(err); err == nil || got != c.want {
					t.Fatalf("Verify with the data plane answering %d = %v, want a %v error", c.status, err, c.want)
				}
				msg := err.Error()
				if strings.Contains(msg, canaryKey) || strings.Contains(msg, bodyMarker) {
					t.Fatalf("the error quotes the key or the answer's body: %s", msg)
				}
				if !strings.HasPrefix(msg, "apigateway.Verify: ") || !strings.Contains(msg, canaryKeyID) {
					t.Fatalf("error %q does not name its op and the key id", msg)
				}
			}
			keys, paths := d.requests()
			if len(keys) != 1 || keys[0] != canaryKey || paths[0] != "/prod/ping" {
				t.Fatalf("the data plane got keys %d and paths %v, want the key once at /prod/ping", len(keys), paths)
			}
		})
	}
}

// TestVerifyCanaryNetworkErrorIsTransient: a data plane that cannot be
// reached says nothing about the key.
func TestVerifyCanaryNetworkErrorIsTransient(t *testing.T) {
	// A port nothing listens on any more.
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	err := canaryProvider(t, &fakeAPI{}, closedURL+"/prod/ping").Verify(context.Background(), canaryCred(t))
	if !providers.IsKind(err, providers.Transient) {
		t.Fatalf("Verify with the data plane unreachable = %v, want Transient", err)
	}
	if strings.Contains(err.Error(), canaryKey) {
		t.Fatalf("the error quotes the key: %v", err)
	}
}

// TestVerifyCanaryDoesNotFollowRedirects: a redirect would carry the key to
// wherever it points, and proves nothing about the key: it is not followed
// and is an Invalid error (a canary URL to fix), not a pass.
func TestVerifyCanaryDoesNotFollowRedirects(t *testing.T) {
	target := startDataPlane(t, http.StatusOK)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.url+"/prod/ping", http.StatusFound)
	}))
	t.Cleanup(redirect.Close)
	err := canaryProvider(t, &fakeAPI{}, redirect.URL+"/prod/ping").Verify(context.Background(), canaryCred(t))
	if !providers.IsKind(err, providers.Invalid) {
		t.Fatalf("Verify with a redirecting canary URL = %v, want Invalid", err)
	}
	if keys, _ := target.requests(); len(keys) != 0 {
		t.Fatalf("the redirect was followed: its target got %d requests", len(keys))
	}
	if strings.Contains(err.Error(), canaryKey) {
		t.Fatalf("the error quotes the key: %v", err)
	}
}

// TestVerifyCanaryAfterTheManagementAPI: the data plane is asked about a
// key only once the management API accepts it; a key the management API
// refuses is never sent there.
func TestVerifyCanaryAfterTheManagementAPI(t *testing.T) {
	d := startDataPlane(t, http.StatusOK)
	f := &fakeAPI{}
	p := canaryProvider(t, f, d.url+"/prod/ping")
	if err := p.Verify(context.Background(), canaryCred(t)); err != nil {
		t.Fatalf("Verify of an enabled key = %v", err)
	}
	if keys, _ := d.requests(); len(keys) != 1 {
		t.Fatalf("the data plane got %d requests for an enabled key, want 1", len(keys))
	}
	f.disabled = true
	if err := p.Verify(context.Background(), canaryCred(t)); !providers.IsKind(err, providers.Permission) {
		t.Fatalf("Verify of a disabled key = %v, want Permission", err)
	}
	if keys, _ := d.requests(); len(keys) != 1 {
		t.Fatalf("the data plane got %d requests, want none for a key the management API refuses", len(keys)-1)
	}
}

// TestNewCanaryRefusesUnsafeURLs: the key travels to the canary URL, so it
// must be https (loopback aside) and carry no credentials, query or
// fragment.
func TestNewCanaryRefusesUnsafeURLs(t *testing.T) {
	for _, bad := range []string{
		"http://abc123.execute-api.us-east-1.amazonaws.com/prod/ping",
		"http://10.0.0.1/prod/ping",
		"ftp://example.com/ping",
		"https://user:pw@example.com/prod/ping",
		"https://example.com/prod/ping?x=1",
		"https://example.com/prod/ping#f",
		"/prod/ping",
		"",
	} {
		if c, err := apigateway.NewCanary(bad, vendorhttp.Options{}); err == nil {
			t.Errorf("NewCanary(%q) = %v, nil; want an error", bad, c)
		}
	}
	for _, good := range []string{
		"https://abc123.execute-api.us-east-1.amazonaws.com/prod/ping",
		"https://api.example.com/",
		"http://127.0.0.1:8080/prod/ping",
		"http://localhost:8080/prod/ping",
	} {
		c, err := apigateway.NewCanary(good, vendorhttp.Options{})
		if err != nil {
			t.Errorf("NewCanary(%q) = %v, want a canary", good, err)
			continue
		}
		if c.URL() != good {
			t.Errorf("NewCanary(%q).URL() = %q", good, c.URL())
		}
	}
}
