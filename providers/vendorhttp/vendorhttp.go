// Package vendorhttp is the one HTTP behaviour every vendor provider shares:
// https enforced unless the host is loopback, a per-attempt timeout derived
// from the context deadline (the Lambda deadline), retries with exponential
// backoff and full jitter for transient failures of idempotent requests only,
// Retry-After honoured on 429 and 503 within the deadline, and errors
// classified by a status table into a *providers.Error that carries the
// operation, the HTTP status and the vendor's request id, and never the
// response body. It never logs.
//
// # Retries and key creation
//
// Only idempotent requests (GET, HEAD, OPTIONS, PUT, DELETE) are retried
// after a timeout, a lost connection or a 5xx: repeating them cannot change
// the outcome. A POST that creates a key is not, because the vendor may have
// minted the key before the connection broke; a blind retry would mint a
// second one. The one exception is 429: a vendor that answers 429 refused the
// request without acting on it, so a POST is retried after Retry-After too.
// A create that fails ambiguously returns a Transient error; the rotation
// engine's reconcile finds and revokes the orphan by its name.
package vendorhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyrotor/keyrotor/providers"
)

// Defaults of Options.
const (
	DefaultMaxAttempts    = 4
	DefaultAttemptTimeout = 10 * time.Second
	// DefaultMaxRetryAfter bounds a Retry-After wait when the context has
	// no deadline.
	DefaultMaxRetryAfter = 30 * time.Second
	backoffBase          = 200 * time.Millisecond
	backoffCap           = 5 * time.Second
	// maxBody bounds how much of a response body is read.
	maxBody = 1 << 20
	// maxRequestID bounds the request id copied into errors.
	maxRequestID = 128
)

// Options are the knobs a provider's Config passes through unchanged. The
// zero value means the defaults.
type Options struct {
	// HTTPClient sends the requests; nil means a new client without a
	// global timeout (each attempt has its own). Redirects are never
	// followed: a vendor API that redirects is an error.
	HTTPClient *http.Client
	// MaxAttempts bounds the attempts of one retryable request (default 4).
	MaxAttempts int
	// AttemptTimeout caps one attempt (default 10 s); the context deadline
	// may shorten it.
	AttemptTimeout time.Duration
	// Sleep waits d or until ctx is done; tests inject one that records the
	// waits. nil means a real timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock used for deadlines and Retry-After dates (default
	// time.Now).
	Now func() time.Time
}

// Config describes one vendor API.
type Config struct {
	// Vendor is the provider name; errors have Op "<Vendor>.<Operation>".
	Vendor string
	// BaseURL is the API root, possibly with a path
	// ("https://api.cloudflare.com/client/v4"). It must be https unless the
	// host is loopback (127.0.0.1, ::1, localhost), and must carry no user
	// info, query or fragment.
	BaseURL string
	// RequestIDHeaders are the response headers that may hold the vendor's
	// request id, first non-empty wins. nil means X-Request-Id.
	RequestIDHeaders []string
	// Kinds overrides DefaultKinds for this vendor's statuses.
	Kinds map[int]providers.Kind
	Options
}

// Client sends requests to one vendor API. It is safe for concurrent use.
type Client struct {
	vendor      string
	base        *url.URL
	hc          *http.Client
	requestIDs  []string
	kinds       map[int]providers.Kind
	maxAttempts int
	attemptMax  time.Duration
	sleep       func(context.Context, time.Duration) error
	now         func() time.Time
}

// New returns a client for cfg or an error naming what is wrong with it.
func New(cfg Config) (*Client, error) {
	if cfg.Vendor == "" {
		return nil, errors.New("vendorhttp: the vendor name is empty")
	}
	base, err := ParseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("vendorhttp: %s: %w", cfg.Vendor, err)
	}
	c := &Client{
		vendor:      cfg.Vendor,
		base:        base,
		hc:          NoRedirects(cfg.HTTPClient),
		requestIDs:  cfg.RequestIDHeaders,
		kinds:       cfg.Kinds,
		maxAttempts: cfg.MaxAttempts,
		attemptMax:  cfg.AttemptTimeout,
		sleep:       cfg.Sleep,
		now:         cfg.Now,
	}
	if c.requestIDs == nil {
		c.requestIDs = []string{"X-Request-Id"}
	}
	if c.maxAttempts <= 0 {
		c.maxAttempts = DefaultMaxAttempts
	}
	if c.attemptMax <= 0 {
		c.attemptMax = DefaultAttemptTimeout
	}
	if c.sleep == nil {
		c.sleep = Sleep
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// ParseBaseURL checks an API root: absolute, https unless the host is
// loopback, no user info, query or fragment. The trailing slash is dropped.
func ParseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("base URL %q is not an absolute URL", raw)
	}
	if u.User != nil {
		return nil, errors.New("base URL must not carry credentials")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("base URL %s must not have a query or fragment", u.Redacted())
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !IsLoopback(u.Hostname()) {
			return nil, fmt.Errorf("base URL %s: plain http is allowed only for loopback hosts (127.0.0.1, ::1, localhost); use https", u.Redacted())
		}
	default:
		return nil, fmt.Errorf("base URL %s: scheme %q is not https", u.Redacted(), u.Scheme)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// NoRedirects returns a copy of hc (nil means a new http.Client) that never
// follows a redirect: it returns the 3xx answer to the caller, which treats
// it as an error. A request carries a vendor credential, and a redirect may
// point anywhere; net/http keeps an Authorization header on a redirect to
// the same host name on another port, and to any subdomain.
func NoRedirects(hc *http.Client) *http.Client {
	c := &http.Client{}
	if hc != nil {
		*c = *hc
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// IsLoopback reports whether host is localhost or a loopback IP address.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Auth sets the credentials of one request.
type Auth func(h http.Header)

// Bearer authenticates with "Authorization: Bearer <token>".
func Bearer(token string) Auth {
	return func(h http.Header) { h.Set("Authorization", "Bearer "+token) }
}

// Basic authenticates with HTTP Basic user:password.
func Basic(user, password string) Auth {
	return func(h http.Header) {
		r := http.Request{Header: h}
		r.SetBasicAuth(user, password)
	}
}

// Headers authenticates with header name/value pairs (Datadog's DD-API-KEY
// and DD-APPLICATION-KEY).
func Headers(nameValues ...string) Auth {
	return func(h http.Header) {
		for i := 0; i+1 < len(nameValues); i += 2 {
			h.Set(nameValues[i], nameValues[i+1])
		}
	}
}

// Request is one call to the vendor.
type Request struct {
	// Op names the vendor operation ("CreateApiKey"); errors carry
	// Op "<vendor>.<Op>".
	Op     string
	Method string
	// Path is appended to the base URL's path. Escape variable segments
	// with url.PathEscape.
	Path   string
	Query  url.Values
	Header http.Header
	Auth   Auth
	// JSON, when non-nil, is sent as an application/json body.
	JSON any
	// Form, when non-nil, is sent as an application/x-www-form-urlencoded
	// body.
	Form url.Values
}

// Op returns the full operation name "<vendor>.<op>" for errors a provider
// makes itself.
func (c *Client) Op(op string) string { return c.vendor + "." + op }

// BaseURL returns the API root the client talks to.
func (c *Client) BaseURL() string { return c.base.String() }

// Do sends r, retrying as the package doc describes, and decodes a 2xx JSON
// body into out when out is non-nil. Every error is a *providers.Error.
func (c *Client) Do(ctx context.Context, r Request, out any) error {
	op := c.Op(r.Op)
	body, contentType, err := encodeBody(r)
	if err != nil {
		return providers.E(op, providers.Invalid, err)
	}
	u := *c.base
	u.Path = c.base.Path + r.Path
	if r.Query != nil {
		u.RawQuery = r.Query.Encode()
	}
	retryable := idempotent(r.Method)
	var last *providers.Error
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			if last != nil {
				return last
			}
			return providers.E(op, providers.Transient, fmt.Errorf("%s %s: %w", r.Method, r.Path, err))
		}
		res, perr := c.attempt(ctx, op, r, u.String(), body, contentType)
		if perr == nil {
			if out == nil || len(bytes.TrimSpace(res.body)) == 0 {
				return nil
			}
			if err := decodeJSON(op, res.body, out); err != nil {
				err.Status, err.RequestID = res.status, res.requestID
				return err
			}
			return nil
		}
		last = perr
		if perr.Kind != providers.Transient || attempt+1 >= c.maxAttempts {
			return perr
		}
		if !retryable && res.status != http.StatusTooManyRequests {
			return perr
		}
		wait := res.retryAfter
		if wait < 0 {
			wait = backoff(attempt)
		}
		if !c.fits(ctx, wait) {
			return perr
		}
		if err := c.sleep(ctx, wait); err != nil {
			return perr
		}
	}
}

// result is what one attempt learned.
type result struct {
	status     int // 0 without a response
	requestID  string
	body       []byte        // a 2xx body
	retryAfter time.Duration // the wait the vendor asked for, -1 if none
}

// attempt sends one request.
func (c *Client) attempt(ctx context.Context, op string, r Request, target string, body []byte, contentType string) (result, *providers.Error) {
	res := result{retryAfter: -1}
	actx, cancel := context.WithTimeout(ctx, c.attemptTimeout(ctx))
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, r.Method, target, rd)
	if err != nil {
		return res, providers.E(op, providers.Invalid, fmt.Errorf("build %s %s: %w", r.Method, r.Path, err))
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "keyrotor")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if r.Auth != nil {
		r.Auth(req.Header)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// url.Error quotes the URL, which holds no credentials (ParseBaseURL
		// refuses user info); say which attempt timed out rather than why.
		cause := err
		if actx.Err() != nil && ctx.Err() == nil {
			cause = fmt.Errorf("attempt timed out: %w", context.DeadlineExceeded)
		} else if ctx.Err() != nil {
			cause = ctx.Err()
		} else {
			var ue *url.Error
			if errors.As(err, &ue) {
				cause = ue.Err
			}
		}
		return res, providers.E(op, providers.Transient, fmt.Errorf("%s %s: %w", r.Method, r.Path, cause))
	}
	defer resp.Body.Close()
	respBody, readErr := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	res.status, res.requestID = resp.StatusCode, c.requestID(resp.Header)
	fail := func(kind providers.Kind, err error) (result, *providers.Error) {
		return res, &providers.Error{Op: op, Kind: kind, Status: res.status, RequestID: res.requestID, Err: err}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		switch {
		case readErr != nil:
			return fail(providers.Transient, fmt.Errorf("%s %s: reading the response body failed", r.Method, r.Path))
		case len(respBody) > maxBody:
			return fail(providers.Other, fmt.Errorf("%s %s: response body larger than %d bytes", r.Method, r.Path, maxBody))
		}
		res.body = respBody
		return res, nil
	}
	kind := c.Kind(resp.StatusCode)
	if kind == providers.Transient && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), c.now()); ok {
			res.retryAfter = d
		}
	}
	return fail(kind, fmt.Errorf("%s %s: %s", r.Method, r.Path, statusText(resp.StatusCode)))
}

// attemptTimeout is AttemptTimeout, shortened to nine tenths of the time left
// before the context deadline so that the error still gets reported.
func (c *Client) attemptTimeout(ctx context.Context) time.Duration {
	d := c.attemptMax
	if dl, ok := ctx.Deadline(); ok {
		left := dl.Sub(c.now()) * 9 / 10
		if left < d {
			d = left
		}
	}
	if d <= 0 {
		d = time.Millisecond
	}
	return d
}

// fits reports whether waiting d leaves time for another attempt.
func (c *Client) fits(ctx context.Context, d time.Duration) bool {
	dl, ok := ctx.Deadline()
	if !ok {
		return d <= DefaultMaxRetryAfter
	}
	return c.now().Add(d).Before(dl)
}

func (c *Client) requestID(h http.Header) string {
	for _, name := range c.requestIDs {
		if v := h.Get(name); v != "" {
			return sanitize(v)
		}
	}
	return ""
}

// sanitize keeps a header value printable and short enough for an error.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= maxRequestID {
			break
		}
		if r > 0x20 && r < 0x7f {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// DefaultKinds classifies statuses every vendor shares. Statuses absent
// here: other 4xx are Invalid, other 5xx Transient, anything else Other.
var DefaultKinds = map[int]providers.Kind{
	http.StatusBadRequest:          providers.Invalid,
	http.StatusUnauthorized:        providers.Permission,
	http.StatusForbidden:           providers.Permission,
	http.StatusNotFound:            providers.NotFound,
	http.StatusGone:                providers.NotFound,
	http.StatusRequestTimeout:      providers.Transient,
	http.StatusConflict:            providers.Conflict,
	http.StatusTooEarly:            providers.Transient,
	http.StatusUnprocessableEntity: providers.Invalid,
	http.StatusTooManyRequests:     providers.Transient,
	http.StatusNotImplemented:      providers.Other,
}

// Kind classifies an HTTP status for this vendor: its overrides first, then
// DefaultKinds, then the status class.
func (c *Client) Kind(status int) providers.Kind {
	if k, ok := c.kinds[status]; ok {
		return k
	}
	if k, ok := DefaultKinds[status]; ok {
		return k
	}
	switch {
	case status >= 500 && status < 600:
		return providers.Transient
	case status >= 400 && status < 500:
		return providers.Invalid
	}
	return providers.Other
}

// DecodeJSON decodes a vendor response body into v. A malformed body or one
// of the wrong shape becomes an Other error for op that says so without
// quoting any of the body.
func DecodeJSON(op string, body []byte, v any) error {
	if err := decodeJSON(op, body, v); err != nil {
		return err
	}
	return nil
}

func decodeJSON(op string, body []byte, v any) *providers.Error {
	if err := json.Unmarshal(body, v); err != nil {
		var what string
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			what = fmt.Sprintf("malformed JSON at byte %d", se.Offset)
		case errors.As(err, &te):
			// Value may be "number 123": keep the type word only.
			what = fmt.Sprintf("a JSON %s where a %s was expected", strings.Fields(te.Value + " ?")[0], te.Type)
		default:
			what = "not the expected JSON"
		}
		return providers.E(op, providers.Other, fmt.Errorf("response body (%d bytes) is %s", len(body), what))
	}
	return nil
}

func encodeBody(r Request) ([]byte, string, error) {
	switch {
	case r.JSON != nil && r.Form != nil:
		return nil, "", errors.New("a request has a JSON or a form body, not both")
	case r.JSON != nil:
		b, err := json.Marshal(r.JSON)
		if err != nil {
			return nil, "", fmt.Errorf("encode request body: %w", err)
		}
		return b, "application/json", nil
	case r.Form != nil:
		return []byte(r.Form.Encode()), "application/x-www-form-urlencoded", nil
	}
	return nil, "", nil
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// backoff is exponential backoff with full jitter: a random wait in
// [0, min(cap, base·2^attempt)].
func backoff(attempt int) time.Duration {
	d := backoffCap
	if attempt < 16 {
		d = min(backoffCap, backoffBase<<attempt)
	}
	return rand.N(d + 1)
}

// retryAfter parses a Retry-After value: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

func statusText(status int) string {
	if t := http.StatusText(status); t != "" {
		return fmt.Sprintf("vendor answered %d %s", status, t)
	}
	return fmt.Sprintf("vendor answered %d", status)
}

// Sleep waits d, or until ctx is done (it then returns ctx.Err()): the
// default of Config.Sleep.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
