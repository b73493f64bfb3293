package client

import (
	"fmt"
	"io"
	"net/http"
	"slices"
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

// Transport is an http.RoundTripper that authenticates every request with
// the current key of one secret. Build it with Client.Transport.
type Transport struct {
	// FallbackToPrevious makes a request that the refreshed current key
	// cannot authenticate try once more with the AWSPREVIOUS key, which the
	// vendor still accepts during a rotation's grace period (a new key that
	// has not propagated at the vendor yet, for instance). Set it before
	// first use.
	FallbackToPrevious bool

	base     http.RoundTripper
	keys     *Client
	secretID string
	scheme   Scheme
}

// Transport returns a RoundTripper over base (nil means
// http.DefaultTransport) that puts the current key of secretID on each
// request with scheme. When the vendor answers 401 or 403 it reports an
// AuthFailure, reads the secret again bypassing the cache (a ForcedRefresh,
// at most one per secret at a time), and, if that gave another key and the
// request's body can be replayed (it has none, or GetBody is set, as
// http.NewRequest does for in-memory bodies), retries the request once with
// the new key. Otherwise it returns the vendor's answer.
//
// It authenticates every request it sends, whatever its host: use it in an
// http.Client that talks to that vendor only.
func (c *Client) Transport(base http.RoundTripper, secretID string, scheme Scheme) *Transport {
	if base == nil {
		base = http.DefaultTransport
	}
	return &Transport{base: base, keys: c, secretID: secretID, scheme: scheme}
}

// RoundTrip implements http.RoundTripper. It never changes req.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	cred, err := t.keys.Key(ctx, t.secretID)
	if err != nil {
		closeBody(req)
		return nil, fmt.Errorf("client: authenticate %s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	resp, err := t.send(req, cred, false)
	if err != nil || !refused(resp) {
		return resp, err
	}
	t.authFailure(cred, resp.StatusCode)
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil

	tried := []string{cred.Key}
	fresh, err := t.keys.forceRefresh(ctx, cacheKey{t.secretID, StageCurrent}, cred.VersionID)
	if err != nil || !replayable {
		// The vendor's answer says more than the refresh error.
		return resp, nil
	}
	if fresh.Key != cred.Key {
		discard(resp)
		if resp, err = t.send(req, fresh, true); err != nil || !refused(resp) {
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
	if resp, err = t.send(req, prev, true); err != nil || !refused(resp) {
		return resp, err
	}
	t.authFailure(prev, resp.StatusCode)
	return resp, nil
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

func refused(resp *http.Response) bool {
	return resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden
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
