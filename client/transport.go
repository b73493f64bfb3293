package client

import (
	"cmp"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/keyrotor/keyrotor/providers/vendorhttp"
)

// Scheme puts a credential on a request. Bearer, Basic and Header are the
// usual ones.
type Scheme func(req *http.Request, cred Credential)

// Bearer sets "Authorization: Bearer <key>".
func Bearer(req *http.Request, cred Credential) {
	req.Header.Set("Authorization", "Bearer "+cred.Key)
}

// Basic sets HTTP basic authentication with the key id as user name and the
// key as password (Twilio API keys, for instance).
func Basic(req *http.Request, cred Credential) {
	req.SetBasicAuth(cred.KeyID, cred.Key)
}

// Header returns a Scheme that sets the header name to the key
// ("X-Api-Key", "DD-API-KEY").
func Header(name string) Scheme {
	return func(req *http.Request, cred Credential) { req.Header.Set(name, cred.Key) }
}

// Transport is an http.RoundTripper that authenticates the requests it
// sends to one vendor with the current key of one secret. Build it with
// Client.Transport. Set its fields before first use.
type Transport struct {
	// FallbackToPrevious makes a request that the refreshed current key
	// cannot authenticate try once more with the AWSPREVIOUS key, which the
	// vendor still accepts during a rotation's grace period (a new key that
	// has not propagated at the vendor yet, for instance).
	FallbackToPrevious bool
	// ForbiddenMeansRevoked makes a 403 mean "the key was refused", like a
	// 401. Set it for vendors that answer 403 to a revoked or unknown key:
	// Datadog (API and application keys), AWS API Gateway's x-api-key data
	// plane, Fastly automation tokens. Leave it off for vendors that answer
	// 401 to a bad key (keyrotor's gateway, SendGrid, GitLab, Stripe): their
	// 403 means a live key that lacks a permission (Stripe restricted keys,
	// SendGrid scopes and its key limit), where a refresh cannot help.
	ForbiddenMeansRevoked bool
	// ReplayNonIdempotent lets a refused request whose method is not
	// idempotent (POST, PATCH) be sent again with another key. By default
	// only idempotent requests (GET, HEAD, OPTIONS, TRACE, PUT, DELETE, or
	// any request with an Idempotency-Key or X-Idempotency-Key header) are
	// replayed. Set it for a vendor that checks the key before acting on a
	// request, so that a refused POST cannot have done anything.
	ReplayNonIdempotent bool

	base     http.RoundTripper
	keys     *Client
	secretID string
	scheme   Scheme
	hosts    []vendorHost // the hosts given to Client.Transport

	mu      sync.Mutex
	learned *vendorHost // with no hosts given: the first request's host
}

// Transport returns a RoundTripper over base (nil means
// http.DefaultTransport) that puts the current key of secretID on each
// request to the vendor with scheme.
//
// The vendor is hosts ("api.example.com", "api.example.com:8443",
// "127.0.0.1:8080"; a host without a port means the scheme's default port)
// or, when none are given, the host of the first request the Transport
// sends. Only requests to those hosts over https, or over http when the host
// is loopback (127.0.0.0/8, ::1, localhost), get the key. Any other request
// (one that an http.Client follows after a redirect to another host, plain
// http to a remote host) is sent as it is, without the key, and its answer
// triggers nothing: the key never leaves for another host, nor in clear
// text, and a redirect to a pre-signed download URL keeps working.
//
// When the vendor answers 401 (or 403 with ForbiddenMeansRevoked) it reports
// an AuthFailure and reads the secret again bypassing the cache (a
// ForcedRefresh, at most one per secret at a time). If that gave another key,
// the request is idempotent (or ReplayNonIdempotent is set) and its body can
// be replayed (it has none, or GetBody is set, as http.NewRequest does for
// in-memory bodies), it retries the request once with the new key. Otherwise
// it returns the vendor's answer, and the next request uses the new key.
func (c *Client) Transport(base http.RoundTripper, secretID string, scheme Scheme, hosts ...string) *Transport {
	if base == nil {
		base = http.DefaultTransport
	}
	t := &Transport{base: base, keys: c, secretID: secretID, scheme: scheme}
	for _, h := range hosts {
		t.hosts = append(t.hosts, parseVendorHost(h))
	}
	return t
}

// RoundTrip implements http.RoundTripper. It never changes req.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.authenticates(req.URL) {
		return t.base.RoundTrip(req)
	}
	ctx := req.Context()
	cred, err := t.keys.Key(ctx, t.secretID)
	if err != nil {
		closeBody(req)
		return nil, fmt.Errorf("client: authenticate %s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	resp, err := t.send(req, cred, false)
	if err != nil || !t.refused(resp) {
		return resp, err
	}
	t.authFailure(cred, resp.StatusCode)

	tried := []string{cred.Key}
	fresh, err := t.keys.forceRefresh(ctx, cacheKey{t.secretID, StageCurrent}, cred.VersionID)
	if err != nil || !t.replayable(req) {
		// The vendor's answer says more than the refresh error.
		return resp, nil
	}
	if fresh.Key != cred.Key {
		discard(resp)
		if resp, err = t.send(req, fresh, true); err != nil || !t.refused(resp) {
			return resp, err
		}
		t.authFailure(fresh, resp.StatusCode)
		tried = append(tried, fresh.Key)
	}
	if !t.FallbackToPrevious {
		return resp, nil
	}
	prev, err := t.keys.Previous(ctx, t.secretID)
	if err != nil || slices.Contains(tried, prev.Key) {
		return resp, nil
	}
	discard(resp)
	if resp, err = t.send(req, prev, true); err != nil || !t.refused(resp) {
		return resp, err
	}
	t.authFailure(prev, resp.StatusCode)
	return resp, nil
}

// authenticates reports whether a request to u gets the key: its host is
// the vendor's, and the key travels encrypted (https) or stays on this
// machine (http to a loopback host).
func (t *Transport) authenticates(u *url.URL) bool {
	hosts := t.hosts
	if len(hosts) == 0 {
		// Learn the host from the first request whatever its scheme, so
		// that a plain-http first request redirected elsewhere cannot make
		// the other host the vendor.
		t.mu.Lock()
		if t.learned == nil {
			t.learned = &vendorHost{name: normalHost(u.Hostname()), port: u.Port()}
		}
		hosts = []vendorHost{*t.learned}
		t.mu.Unlock()
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !vendorhttp.IsLoopback(u.Hostname()) {
			return false
		}
	default:
		return false
	}
	return slices.ContainsFunc(hosts, func(h vendorHost) bool { return h.matches(u) })
}

// refused reports whether resp says that the vendor refused the key.
func (t *Transport) refused(resp *http.Response) bool {
	return resp.StatusCode == http.StatusUnauthorized ||
		(t.ForbiddenMeansRevoked && resp.StatusCode == http.StatusForbidden)
}

// replayable reports whether req may be sent again with another key: its
// body can be sent again, and sending it twice is harmless or the caller
// said the vendor refuses a bad key before acting.
func (t *Transport) replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	if t.ReplayNonIdempotent {
		return true
	}
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || req.Header.Get("X-Idempotency-Key") != ""
}

// vendorHost is a host a Transport authenticates: a lower-case name and a
// port, "" for the default port of the request's scheme.
type vendorHost struct{ name, port string }

// parseVendorHost reads "name", "name:port", "[v6]:port" or a bare IPv6
// address.
func parseVendorHost(s string) vendorHost {
	s = strings.TrimSpace(s)
	if _, err := netip.ParseAddr(s); err == nil {
		return vendorHost{name: normalHost(s)}
	}
	u := url.URL{Host: s}
	return vendorHost{name: normalHost(u.Hostname()), port: u.Port()}
}

func (h vendorHost) matches(u *url.URL) bool {
	if normalHost(u.Hostname()) != h.name {
		return false
	}
	port, defaultPort := u.Port(), "443"
	if u.Scheme == "http" {
		defaultPort = "80"
	}
	if port == "" {
		port = defaultPort
	}
	return port == cmp.Or(h.port, defaultPort)
}

// normalHost folds the spellings of one host name: case, and the trailing
// dot of a fully qualified name.
func normalHost(name string) string {
	return strings.TrimSuffix(strings.ToLower(name), ".")
}

// send sends a copy of req authenticated with cred; a replay gets a fresh
// copy of the body.
func (t *Transport) send(req *http.Request, cred Credential, replay bool) (*http.Response, error) {
	out := req.Clone(req.Context())
	if replay && req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("client: replay %s %s: %w", req.Method, req.URL.Redacted(), err)
		}
		out.Body = body
	}
	t.scheme(out, cred)
	return t.base.RoundTrip(out)
}

func (t *Transport) authFailure(cred Credential, status int) {
	t.keys.emit(Event{Kind: AuthFailure, SecretID: t.secretID, Stage: cred.Stage, VersionID: cred.VersionID, Status: status})
}

// discard drains a little of a refused response, so that its connection
// can be reused, and closes it. The body is never read into memory or logs.
func discard(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
