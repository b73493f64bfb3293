package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/providers"
)

// SecretsManagerAPI is the one Secrets Manager call the client makes; a
// *secretsmanager.Client satisfies it.
type SecretsManagerAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Staging labels the client reads.
const (
	StageCurrent  = "AWSCURRENT"
	StagePrevious = "AWSPREVIOUS"
)

// Defaults for Options.
const (
	DefaultTTL          = 5 * time.Minute
	DefaultMaxStale     = time.Hour
	DefaultFetchTimeout = 10 * time.Second
)

const (
	// retryInterval is how long a failed refresh keeps the next attempt
	// away, so that an outage costs one call per secret per interval.
	retryInterval = 5 * time.Second
	// minForcedRefreshInterval bounds the Secrets Manager calls that a
	// vendor refusing even a freshly read key can cause.
	minForcedRefreshInterval = time.Second
)

// ErrNoKey is wrapped by Key's error when the secret holds no key yet (it was
// created without one and has not been rotated).
var ErrNoKey = errors.New("the secret has no key")

// Options tune a Client. A nil *Options or a zero field means the default.
type Options struct {
	// TTL is how long a value read from Secrets Manager is served without
	// asking again (default 5 minutes). A refresh starts in the background
	// at a random point between 80% and 90% of it, so that instances spread
	// their calls. The secret's grace period must exceed the TTL plus the
	// deploy lag.
	TTL time.Duration
	// MaxStale is the age (since it was read) up to which a cached value is
	// still served when refreshing it fails (default 1 hour). Beyond it Key
	// returns the error.
	MaxStale time.Duration
	// FetchTimeout bounds one GetSecretValue call (default 10 seconds). A
	// refresh runs detached from the reader's context, which only bounds
	// how long that reader waits.
	FetchTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnEvent, if set, is called for every Event, synchronously and without
	// locks held. It must be fast and safe for concurrent use; EMF.Record
	// is one.
	OnEvent func(Event)
}

// Client reads keys from Secrets Manager through a cache. It is safe for
// concurrent use; build one per process and share it.
type Client struct {
	sm           SecretsManagerAPI
	ttl          time.Duration
	maxStale     time.Duration
	fetchTimeout time.Duration
	now          func() time.Time
	onEvent      func(Event)

	mu      sync.Mutex
	entries map[cacheKey]*entry
}

type cacheKey struct{ secretID, stage string }

// entry is the cached state of one secret version stage. All fields are
// guarded by Client.mu.
type entry struct {
	cred      Credential // valid when loaded
	loaded    bool
	fetchedAt time.Time
	refreshAt time.Time // a read after this starts a background refresh
	expiresAt time.Time // a read after this waits for a refresh
	retryAt   time.Time // no refresh before this after a failed one
	lastErr   error     // why the last refresh failed
	flight    *flight   // the refresh in progress, if any
}

// flight is one GetSecretValue call that any number of readers wait for.
type flight struct {
	done chan struct{}
	cred Credential
	err  error
}

// New returns a Client that reads through sm.
func New(sm SecretsManagerAPI, opts *Options) *Client {
	if opts == nil {
		opts = &Options{}
	}
	c := &Client{
		sm:           sm,
		ttl:          opts.TTL,
		maxStale:     opts.MaxStale,
		fetchTimeout: opts.FetchTimeout,
		now:          opts.Now,
		onEvent:      opts.OnEvent,
		entries:      make(map[cacheKey]*entry),
	}
	if c.ttl <= 0 {
		c.ttl = DefaultTTL
	}
	if c.maxStale <= 0 {
		c.maxStale = DefaultMaxStale
	}
	if c.fetchTimeout <= 0 {
		c.fetchTimeout = DefaultFetchTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Key returns the AWSCURRENT key of secretID (a name or an ARN). It answers
// from the cache while the value is younger than the TTL, waits for one
// shared refresh once it is older, and, if that refresh fails, serves the
// cached value (Stale set, a StaleServe event reported) while it is younger
// than MaxStale. A failed read is not repeated for a few seconds: reads in
// between get the cached value or the same error. The error names the secret
// and never quotes its value.
func (c *Client) Key(ctx context.Context, secretID string) (Credential, error) {
	return c.get(ctx, cacheKey{secretID, StageCurrent})
}

// Previous returns the AWSPREVIOUS key of secretID, cached like Key. During
// a rotation's grace period it is the old key, still valid at the vendor.
func (c *Client) Previous(ctx context.Context, secretID string) (Credential, error) {
	return c.get(ctx, cacheKey{secretID, StagePrevious})
}

// entryLocked returns the cache entry of k, adding an empty one. The caller
// holds c.mu.
func (c *Client) entryLocked(k cacheKey) *entry {
	e := c.entries[k]
	if e == nil {
		e = &entry{}
		c.entries[k] = e
	}
	return e
}

func (c *Client) get(ctx context.Context, k cacheKey) (Credential, error) {
	c.mu.Lock()
	e := c.entryLocked(k)
	now := c.now()
	if e.loaded && now.Before(e.expiresAt) {
		// Past the refresh-ahead point, start one background refresh and
		// answer from the cache meanwhile.
		if !now.Before(e.refreshAt) && !now.Before(e.retryAt) && e.flight == nil {
			c.startLocked(ctx, k, e)
		}
		cred := e.cred
		c.mu.Unlock()
		return cred, nil
	}
	f := e.flight
	if f == nil {
		if now.Before(e.retryAt) {
			// A read failed moments ago: do not ask again yet. Serve the
			// cached value if there is one young enough, else that error.
			err := e.lastErr
			c.mu.Unlock()
			return c.stale(k, e, err)
		}
		f = c.startLocked(ctx, k, e)
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		if f.err == nil {
			return f.cred, nil
		}
		return c.stale(k, e, f.err)
	case <-ctx.Done():
		return c.stale(k, e, readError(k, ctx.Err()))
	}
}

// stale serves e's value after a failed refresh if it is young enough, and
// otherwise returns cause.
func (c *Client) stale(k cacheKey, e *entry, cause error) (Credential, error) {
	c.mu.Lock()
	cred, loaded, age := e.cred, e.loaded, c.now().Sub(e.fetchedAt)
	c.mu.Unlock()
	if !loaded || age >= c.maxStale {
		return Credential{}, cause
	}
	cred.Stale = true
	c.emit(Event{Kind: StaleServe, SecretID: k.secretID, Stage: k.stage, VersionID: cred.VersionID, Age: age, Err: cause})
	return cred, nil
}

// startLocked starts a refresh of k. c.mu must be held.
func (c *Client) startLocked(ctx context.Context, k cacheKey, e *entry) *flight {
	f := &flight{done: make(chan struct{})}
	e.flight = f
	// The refresh outlives the reader that started it: keep the context's
	// values (tracing), drop its cancellation.
	fctx := context.WithoutCancel(ctx)
	go func() {
		ctx, cancel := context.WithTimeout(fctx, c.fetchTimeout)
		defer cancel()
		cred, err := c.fetch(ctx, k)
		c.mu.Lock()
		now := c.now()
		e.flight = nil
		if err != nil {
			e.retryAt, e.lastErr = now.Add(retryInterval), err
		} else {
			cred.FetchedAt = now
			e.cred, e.loaded, e.fetchedAt = cred, true, now
			e.expiresAt = now.Add(c.ttl)
			e.refreshAt = now.Add(refreshAhead(c.ttl))
			e.retryAt, e.lastErr = time.Time{}, nil
		}
		f.cred, f.err = cred, err
		c.mu.Unlock()
		close(f.done)
	}()
	return f
}

// forceRefresh re-reads k bypassing the TTL because the vendor refused the
// key of version used. It does not call Secrets Manager when the cache
// already holds another version, when a refresh is in flight (it joins it),
// or when the value was read or a refresh failed moments ago.
func (c *Client) forceRefresh(ctx context.Context, k cacheKey, used string) (Credential, error) {
	c.mu.Lock()
	e := c.entryLocked(k)
	now := c.now()
	f := e.flight
	forced := false
	switch {
	case f != nil:
	case e.loaded && e.cred.VersionID != used:
		cred := e.cred
		c.mu.Unlock()
		return cred, nil
	case e.loaded && (now.Sub(e.fetchedAt) < minForcedRefreshInterval || now.Before(e.retryAt)):
		cred := e.cred
		c.mu.Unlock()
		return cred, nil
	default:
		f = c.startLocked(ctx, k, e)
		forced = true
	}
	c.mu.Unlock()
	if forced {
		c.emit(Event{Kind: ForcedRefresh, SecretID: k.secretID, Stage: k.stage, VersionID: used})
	}
	select {
	case <-f.done:
		return f.cred, f.err
	case <-ctx.Done():
		return Credential{}, readError(k, ctx.Err())
	}
}

func (c *Client) fetch(ctx context.Context, k cacheKey) (Credential, error) {
	// Always name the stage: a read without one is served from moto's
	// default version, which label moves do not update.
	out, err := c.sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:     aws.String(k.secretID),
		VersionStage: aws.String(k.stage),
	})
	if err != nil {
		return Credential{}, readError(k, err)
	}
	v, err := providers.ParseSecret(aws.ToString(out.SecretString))
	if err != nil {
		return Credential{}, readError(k, err)
	}
	if v.Key == "" {
		return Credential{}, readError(k, ErrNoKey)
	}
	return Credential{
		Key:       v.Key,
		KeyID:     v.KeyID,
		Provider:  v.Provider,
		CreatedAt: v.CreatedAt,
		VersionID: aws.ToString(out.VersionId),
		Stage:     k.stage,
		value:     v,
	}, nil
}

// refreshAhead returns when, after a read, the background refresh of its
// value starts: a random point in (80%, 90%] of ttl, so that instances that
// read at the same moment spread their next calls.
func refreshAhead(ttl time.Duration) time.Duration {
	jitter := time.Duration(0)
	if span := ttl / 10; span > 0 {
		jitter = rand.N(span)
	}
	return ttl*9/10 - jitter
}

func readError(k cacheKey, err error) error {
	return fmt.Errorf("client: read %s %s: %w", k.secretID, k.stage, err)
}

func (c *Client) emit(e Event) {
	if c.onEvent != nil {
		c.onEvent(e)
	}
}
