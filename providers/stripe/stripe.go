package stripe

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/vendorhttp"
)

// Name is the provider id.
const Name = "stripe"

// DefaultBaseURL is the public API root.
const DefaultBaseURL = "https://api.stripe.com"

// FieldPreviousKeyExpiresAt is the secret field where `keyrotor import`
// records when the rolled key expires (RFC 3339).
const FieldPreviousKeyExpiresAt = "previous_key_expires_at"

// ErrCannotMint is wrapped by Create's error: Stripe keys are rolled by hand.
var ErrCannotMint = errors.New("stripe keys cannot be created by API: roll the key in the Stripe Dashboard with an expiry for the old key, then run `keyrotor import SECRET` with the new key")

// ErrCannotRevoke is wrapped by Revoke's error: the old key expires at the
// time chosen when it was rolled in the Dashboard.
var ErrCannotRevoke = errors.New("stripe keys cannot be revoked by API: the rolled key expires at the time chosen in the Stripe Dashboard; delete it there to end it sooner")

// Config configures the provider.
type Config struct {
	// BaseURL overrides the API root (the function's API_BASE_URL). ""
	// means DefaultBaseURL.
	BaseURL string
	// HTTP tunes the HTTP behaviour; the zero value is right for Lambda.
	HTTP vendorhttp.Options
}

// Provider verifies Stripe keys.
type Provider struct {
	c *vendorhttp.Client
}

var _ providers.Provider = (*Provider)(nil)

// New returns a provider for cfg.
func New(cfg Config) (*Provider, error) {
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	c, err := vendorhttp.New(vendorhttp.Config{Vendor: Name, BaseURL: base, RequestIDHeaders: []string{"Request-Id"}, Options: cfg.HTTP})
	if err != nil {
		return nil, err
	}
	return &Provider{c: c}, nil
}

// Name returns "stripe".
func (p *Provider) Name() string { return Name }

// Create always fails with an Invalid error wrapping ErrCannotMint.
func (p *Provider) Create(context.Context, providers.CreateRequest) (providers.Credential, error) {
	return providers.Credential{}, providers.E(Name+".CreateKey", providers.Invalid, ErrCannotMint)
}

// Revoke always fails with an Invalid error wrapping ErrCannotRevoke.
func (p *Provider) Revoke(_ context.Context, _ providers.Credential, keyID string) error {
	return providers.E(Name+".RevokeKey", providers.Invalid, fmt.Errorf("key %s: %w", keyID, ErrCannotRevoke))
}

// Verify authenticates with cred.Key alone (GET /v1/balance). A 403 (a
// restricted key that may not read the balance) still proves the key live.
func (p *Provider) Verify(ctx context.Context, cred providers.Credential) error {
	const op = Name + ".GetBalance"
	if cred.Key == "" {
		return providers.E(op, providers.Invalid, errors.New("the secret has no key"))
	}
	var out struct {
		Object string `json:"object"`
	}
	err := p.c.Do(ctx, vendorhttp.Request{Op: "GetBalance", Method: http.MethodGet, Path: "/v1/balance", Auth: vendorhttp.Bearer(cred.Key)}, &out)
	var pe *providers.Error
	if errors.As(err, &pe) && pe.Status == http.StatusForbidden {
		return nil
	}
	if err != nil {
		return err
	}
	if out.Object != "balance" {
		return providers.E(op, providers.Other, errors.New("the response is not a balance object"))
	}
	return nil
}
