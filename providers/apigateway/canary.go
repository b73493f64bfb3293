package apigateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/vendorhttp"
)

// CanaryHeader is the header API Gateway reads an API key from.
const CanaryHeader = "x-api-key"

// Canary asks API Gateway's data plane whether it accepts an API key: it
// sends GET <URL> with the key in the x-api-key header and reads the answer
// as the gateway's verdict on the key alone.
//
//   - 401, 403: the gateway refuses the key (not yet, or not at all): a
//     Permission error, which the rotation engine retries.
//   - 2xx, and any other 4xx (404, 400, 409, ...): the request got past the
//     key check, so the key is accepted.
//   - 3xx: the URL does not answer itself (the redirect is never followed,
//     so the key never leaves for another host): an Invalid error that asks
//     for the final URL, since a redirect proves nothing about the key.
//   - 429, 5xx, timeouts and network errors: Transient.
//
// The URL is the deployment's (the function's APIGATEWAY_CANARY_URL), never
// a secret's: a secret's value must not be able to send its key elsewhere.
// It must be https unless its host is loopback, and carries no user info,
// query or fragment. Errors name the key id and the method and path, never
// the key or the response body.
type Canary struct {
	client *vendorhttp.Client
	path   string
}

// NewCanary returns a canary for rawURL, or an error naming what is wrong
// with it. opts tune the HTTP client (timeouts, retries of 429 and 5xx,
// test clocks); redirects are never followed.
func NewCanary(rawURL string, opts vendorhttp.Options) (*Canary, error) {
	u, err := vendorhttp.ParseBaseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("apigateway: canary URL: %w", err)
	}
	// ParseBaseURL drops a trailing slash, which is part of a method's path
	// here ("/prod/" is the stage's root resource).
	path := "/"
	if orig, err := url.Parse(rawURL); err == nil && orig.Path != "" {
		path = orig.Path
	}
	client, err := vendorhttp.New(vendorhttp.Config{Vendor: Name, BaseURL: u.Scheme + "://" + u.Host,
		RequestIDHeaders: []string{"x-amzn-RequestId", "x-amz-apigw-id"}, Options: opts})
	if err != nil {
		return nil, fmt.Errorf("apigateway: canary URL: %w", err)
	}
	return &Canary{client: client, path: path}, nil
}

// URL returns the URL the canary requests.
func (c *Canary) URL() string { return c.client.BaseURL() + c.path }

// check returns nil when the data plane accepts key (the API key keyID), or
// a *providers.Error for op classified as the Canary doc says.
func (c *Canary) check(ctx context.Context, op, keyID, key string) error {
	err := c.client.Do(ctx, vendorhttp.Request{
		Op: "Canary", Method: http.MethodGet, Path: c.path,
		Auth: vendorhttp.Headers(CanaryHeader, key),
	}, nil)
	if err == nil {
		return nil
	}
	var e *providers.Error
	if !errors.As(err, &e) {
		e = providers.E(op, providers.KindOf(err), err)
	}
	kind, detail := e.Kind, e.Err
	switch s := e.Status; {
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		kind = providers.Permission
	case s >= 300 && s < 400:
		kind = providers.Invalid
		detail = fmt.Errorf("%w: the canary URL redirects; point it at a URL that answers itself", detail)
	case s >= 500 || s == http.StatusTooManyRequests:
		kind = providers.Transient
	case s == 0 || kind == providers.Transient:
		// No answer (network, timeout: Transient), or a request that could
		// not be built; 408 and 425 are Transient too.
	default:
		return nil // past the key check: 2xx, 404 and the other 4xx
	}
	return &providers.Error{Op: op, Kind: kind, Status: e.Status, RequestID: e.RequestID,
		Err: fmt.Errorf("data-plane canary with API key %s: %w", keyID, detail)}
}
