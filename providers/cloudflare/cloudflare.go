package cloudflare

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
	"github.com/keyrotor/keyrotor/providers/vendorhttp"
)

// Name is the provider id.
const Name = "cloudflare"

// DefaultBaseURL is the public API root.
const DefaultBaseURL = "https://api.cloudflare.com/client/v4"

// Cloudflare's token quotas.
const (
	MaxUserTokens    = 50
	MaxAccountTokens = 500
)

// Secret fields this provider reads.
const (
	FieldAccountID = "account_id" // account-owned tokens of this account
	// Bootstrap fields, used only while the secret has no key_id.
	FieldPolicies  = "policies"
	FieldCondition = "condition"
	FieldExpiresOn = "expires_on"
	FieldNotBefore = "not_before"
)

// perPage is the largest page the list operation allows.
const perPage = 50

// AdminReader reads the management credential named by a secret's
// admin_secret_id (adminsecret.Reader).
type AdminReader interface {
	Read(ctx context.Context, op string, owner providers.Credential) (adminsecret.Credential, error)
}

// Config configures the provider.
type Config struct {
	// BaseURL overrides the API root including its /client/v4 path (the
	// function's API_BASE_URL). "" means DefaultBaseURL.
	BaseURL string
	// Admin reads the management token. Required.
	Admin AdminReader
	// HTTP tunes the HTTP behaviour; the zero value is right for Lambda.
	HTTP vendorhttp.Options
}

// Provider rotates Cloudflare API tokens.
type Provider struct {
	c     *vendorhttp.Client
	admin AdminReader
	now   func() time.Time
}

var (
	_ providers.Provider = (*Provider)(nil)
	_ providers.Lister   = (*Provider)(nil)
)

// New returns a provider for cfg.
func New(cfg Config) (*Provider, error) {
	if cfg.Admin == nil {
		return nil, errors.New("cloudflare: Config.Admin is required")
	}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	c, err := vendorhttp.New(vendorhttp.Config{Vendor: Name, BaseURL: base, RequestIDHeaders: []string{"Cf-Ray"}, Options: cfg.HTTP})
	if err != nil {
		return nil, err
	}
	now := cfg.HTTP.Now
	if now == nil {
		now = time.Now
	}
	return &Provider{c: c, admin: cfg.Admin, now: now}, nil
}

// Name returns "cloudflare".
func (p *Provider) Name() string { return Name }

// envelope is Cloudflare's response wrapper.
type envelope[T any] struct {
	Success    bool `json:"success"`
	Result     T    `json:"result"`
	ResultInfo struct {
		Page       int `json:"page"`
		Count      int `json:"count"`
		TotalCount int `json:"total_count"`
	} `json:"result_info"`
}

type token struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Status    string          `json:"status"`
	Policies  []policy        `json:"policies"`
	Condition json.RawMessage `json:"condition"`
	ExpiresOn string          `json:"expires_on"`
	NotBefore string          `json:"not_before"`
	IssuedOn  string          `json:"issued_on"`
	Value     string          `json:"value"`
}

// String describes t without its value (the token itself, which the create
// answer carries), as do GoString and LogValue.
func (t token) String() string { return "cloudflare.token{id=" + t.ID + " value=<redacted>}" }

// GoString is String.
func (t token) GoString() string { return t.String() }

// LogValue lets slog log a token without its value.
func (t token) LogValue() slog.Value { return slog.StringValue(t.String()) }

// policy is what create accepts: no policy id, permission groups by id.
type policy struct {
	Effect           string            `json:"effect"`
	Resources        json.RawMessage   `json:"resources"`
	PermissionGroups []permissionGroup `json:"permission_groups"`
}

type permissionGroup struct {
	ID string `json:"id"`
}

type createPayload struct {
	Name      string          `json:"name"`
	Policies  []policy        `json:"policies"`
	Condition json.RawMessage `json:"condition,omitempty"`
	ExpiresOn string          `json:"expires_on,omitempty"`
	NotBefore string          `json:"not_before,omitempty"`
}

// scope is where a secret's tokens live.
type scope struct {
	path  string // "/user/tokens" or "/accounts/{id}/tokens"
	limit int
}

func scopeOf(c providers.Credential) scope {
	if id := c.Attr(FieldAccountID); id != "" {
		return scope{path: "/accounts/" + url.PathEscape(id) + "/tokens", limit: MaxAccountTokens}
	}
	return scope{path: "/user/tokens", limit: MaxUserTokens}
}

// do sends r and checks the envelope's success flag.
func do[T any](ctx context.Context, p *Provider, r vendorhttp.Request, out *envelope[T]) error {
	if err := p.c.Do(ctx, r, out); err != nil {
		return err
	}
	if !out.Success {
		return providers.E(p.c.Op(r.Op), providers.Other, errors.New("the response says success=false"))
	}
	return nil
}

func (p *Provider) adminAuth(ctx context.Context, op string, owner providers.Credential) (vendorhttp.Auth, error) {
	admin, err := p.admin.Read(ctx, op, owner)
	if err != nil {
		return nil, err
	}
	return vendorhttp.Bearer(admin.Key), nil
}

// Create mints a copy of the old token (or, on bootstrap, of the template
// in the secret). It never rolls the old token.
func (p *Provider) Create(ctx context.Context, req providers.CreateRequest) (providers.Credential, error) {
	const op = Name + ".CreateToken"
	if req.KeyName == "" || len(req.KeyName) > 120 {
		return providers.Credential{}, providers.E(op, providers.Invalid, fmt.Errorf("the token name must have 1 to 120 characters, not %d", len(req.KeyName)))
	}
	auth, err := p.adminAuth(ctx, op, req.Owner)
	if err != nil {
		return providers.Credential{}, err
	}
	sc := scopeOf(req.Owner)
	payload, err := p.template(ctx, auth, sc, req.Owner)
	if err != nil {
		return providers.Credential{}, err
	}
	payload.Name = req.KeyName
	var out envelope[token]
	err = do(ctx, p, vendorhttp.Request{Op: "CreateToken", Method: http.MethodPost, Path: sc.path, Auth: auth, JSON: payload}, &out)
	if err != nil {
		return providers.Credential{}, p.limitReached(ctx, auth, sc, err)
	}
	if out.Result.ID == "" || out.Result.Value == "" {
		return providers.Credential{}, providers.E(op, providers.Other, errors.New("the response has no token id or value"))
	}
	cred := req.Owner
	cred.Key, cred.KeyID, cred.CreatedAt = out.Result.Value, out.Result.ID, p.now().UTC()
	return cred, nil
}

// template returns the create payload copied from the old token, or from
// the secret's bootstrap fields when it has no key_id.
func (p *Provider) template(ctx context.Context, auth vendorhttp.Auth, sc scope, owner providers.Credential) (createPayload, error) {
	const op = Name + ".GetToken"
	var t token
	if owner.KeyID == "" {
		ok, err := owner.AttrInto(FieldPolicies, &t.Policies)
		if err != nil {
			return createPayload{}, providers.E(op, providers.Invalid, err)
		}
		if !ok || len(t.Policies) == 0 {
			return createPayload{}, providers.E(op, providers.Invalid, fmt.Errorf("the secret has no key_id to copy and no %q field", FieldPolicies))
		}
		t.Condition = owner.Attrs[FieldCondition]
		t.ExpiresOn, t.NotBefore = owner.Attr(FieldExpiresOn), owner.Attr(FieldNotBefore)
	} else {
		var out envelope[token]
		err := do(ctx, p, vendorhttp.Request{Op: "GetToken", Method: http.MethodGet, Path: sc.path + "/" + url.PathEscape(owner.KeyID), Auth: auth}, &out)
		if err != nil {
			return createPayload{}, err
		}
		t = out.Result
		if len(t.Policies) == 0 {
			return createPayload{}, providers.E(op, providers.Invalid, fmt.Errorf("token %s has no policies to copy", owner.KeyID))
		}
	}
	if t.ExpiresOn != "" {
		exp, err := time.Parse(time.RFC3339, t.ExpiresOn)
		if err != nil {
			return createPayload{}, providers.E(op, providers.Invalid, fmt.Errorf("expires_on %q is not an RFC 3339 time", t.ExpiresOn))
		}
		if !exp.After(p.now()) {
			return createPayload{}, providers.E(op, providers.Invalid, fmt.Errorf("the token to copy expired at %s: give it a later expiry first", t.ExpiresOn))
		}
	}
	cond := t.Condition
	if string(cond) == "null" {
		cond = nil
	}
	pol := make([]policy, len(t.Policies))
	for i, in := range t.Policies {
		pol[i] = policy{Effect: in.Effect, Resources: in.Resources}
		for _, g := range in.PermissionGroups {
			pol[i].PermissionGroups = append(pol[i].PermissionGroups, permissionGroup{ID: g.ID})
		}
	}
	return createPayload{Policies: pol, Condition: cond, ExpiresOn: t.ExpiresOn, NotBefore: t.NotBefore}, nil
}

// limitReached turns a refused create into a Conflict when the owner holds
// as many tokens as Cloudflare allows: the limit's answer is undocumented.
func (p *Provider) limitReached(ctx context.Context, auth vendorhttp.Auth, sc scope, err error) error {
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Status < 400 || pe.Status >= 500 || pe.Status == http.StatusUnauthorized || pe.Status == http.StatusTooManyRequests {
		return err
	}
	tokens, lerr := p.list(ctx, auth, sc)
	if lerr != nil || len(tokens) < sc.limit {
		return err
	}
	return &providers.Error{Op: pe.Op, Kind: providers.Conflict, Status: pe.Status, RequestID: pe.RequestID,
		Err: fmt.Errorf("%d tokens exist, Cloudflare's limit is %d: delete unused tokens", len(tokens), sc.limit)}
}

func (p *Provider) list(ctx context.Context, auth vendorhttp.Auth, sc scope) ([]token, error) {
	var all []token
	// The page bound covers the largest quota with room to spare.
	for page := 1; page <= 2*MaxAccountTokens/perPage; page++ {
		var out envelope[[]token]
		q := url.Values{"page": {strconv.Itoa(page)}, "per_page": {strconv.Itoa(perPage)}}
		if err := do(ctx, p, vendorhttp.Request{Op: "ListTokens", Method: http.MethodGet, Path: sc.path, Query: q, Auth: auth}, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Result...)
		if len(out.Result) < perPage || (out.ResultInfo.TotalCount > 0 && len(all) >= out.ResultInfo.TotalCount) {
			break
		}
	}
	return all, nil
}

// Verify authenticates with cred.Key alone and requires an active token.
func (p *Provider) Verify(ctx context.Context, cred providers.Credential) error {
	const op = Name + ".VerifyToken"
	if cred.Key == "" {
		return providers.E(op, providers.Invalid, errors.New("the secret has no key"))
	}
	var out envelope[token]
	err := do(ctx, p, vendorhttp.Request{Op: "VerifyToken", Method: http.MethodGet, Path: scopeOf(cred).path + "/verify", Auth: vendorhttp.Bearer(cred.Key)}, &out)
	if err != nil {
		return err
	}
	if out.Result.Status != "active" {
		return providers.E(op, providers.Permission, fmt.Errorf("token %s is %q, not active", cred.KeyID, out.Result.Status))
	}
	return nil
}

// Revoke deletes token keyID; a token already gone is success.
func (p *Provider) Revoke(ctx context.Context, owner providers.Credential, keyID string) error {
	const op = Name + ".DeleteToken"
	if keyID == "" {
		return providers.E(op, providers.Invalid, errors.New("no token id to revoke"))
	}
	auth, err := p.adminAuth(ctx, op, owner)
	if err != nil {
		return err
	}
	var out envelope[json.RawMessage]
	// The spec requires a JSON body on DELETE.
	err = do(ctx, p, vendorhttp.Request{Op: "DeleteToken", Method: http.MethodDelete, Path: scopeOf(owner).path + "/" + url.PathEscape(keyID), Auth: auth, JSON: struct{}{}}, &out)
	if providers.IsKind(err, providers.NotFound) {
		return nil
	}
	return err
}

// ListKeys returns the owner's tokens whose names start with namePrefix.
func (p *Provider) ListKeys(ctx context.Context, owner providers.Credential, namePrefix string) ([]providers.KeyInfo, error) {
	auth, err := p.adminAuth(ctx, Name+".ListTokens", owner)
	if err != nil {
		return nil, err
	}
	tokens, err := p.list(ctx, auth, scopeOf(owner))
	if err != nil {
		return nil, err
	}
	var out []providers.KeyInfo
	for _, t := range tokens {
		if !strings.HasPrefix(t.Name, namePrefix) {
			continue
		}
		k := providers.KeyInfo{ID: t.ID, Name: t.Name}
		if ts, err := time.Parse(time.RFC3339, t.IssuedOn); err == nil {
			k.CreatedAt = ts
		}
		out = append(out, k)
	}
	return out, nil
}
