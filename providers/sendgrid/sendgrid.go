package sendgrid

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
	"github.com/keyrotor/keyrotor/providers/vendorhttp"
)

// Name is the provider id.
const Name = "sendgrid"

// Public API roots.
const (
	DefaultBaseURL = "https://api.sendgrid.com"
	EUBaseURL      = "https://api.eu.sendgrid.com"
)

// MaxKeys is SendGrid's limit of API keys per user.
const MaxKeys = 100

// Secret fields this provider reads.
const (
	FieldRegion     = "region"       // "eu" for the EU API root
	FieldOnBehalfOf = "on_behalf_of" // subuser for the on-behalf-of header
	FieldScopes     = "scopes"       // scopes of the key, written by Create
)

// AdminReader reads the management credential named by a secret's
// admin_secret_id (adminsecret.Reader).
type AdminReader interface {
	Read(ctx context.Context, op string, owner providers.Credential) (adminsecret.Credential, error)
}

// Config configures the provider.
type Config struct {
	// BaseURL overrides the API root (the function's API_BASE_URL) for
	// every region. "" means DefaultBaseURL, or EUBaseURL for a secret
	// with "region":"eu".
	BaseURL string
	// Admin reads the admin key. Required.
	Admin AdminReader
	// HTTP tunes the HTTP behaviour; the zero value is right for Lambda.
	HTTP vendorhttp.Options
}

// Provider rotates SendGrid API keys.
type Provider struct {
	global, eu *vendorhttp.Client
	admin      AdminReader
	now        func() time.Time
}

var (
	_ providers.Provider = (*Provider)(nil)
	_ providers.Lister   = (*Provider)(nil)
)

// New returns a provider for cfg.
func New(cfg Config) (*Provider, error) {
	if cfg.Admin == nil {
		return nil, errors.New("sendgrid: Config.Admin is required")
	}
	global, eu := DefaultBaseURL, EUBaseURL
	if cfg.BaseURL != "" {
		global, eu = cfg.BaseURL, cfg.BaseURL
	}
	p := &Provider{admin: cfg.Admin, now: cfg.HTTP.Now}
	if p.now == nil {
		p.now = time.Now
	}
	var err error
	if p.global, err = newClient(global, cfg.HTTP); err != nil {
		return nil, err
	}
	if p.eu, err = newClient(eu, cfg.HTTP); err != nil {
		return nil, err
	}
	return p, nil
}

func newClient(base string, o vendorhttp.Options) (*vendorhttp.Client, error) {
	return vendorhttp.New(vendorhttp.Config{
		Vendor:           Name,
		BaseURL:          base,
		RequestIDHeaders: []string{"X-Request-Id", "X-Message-Id"},
		Options:          o,
	})
}

// Name returns "sendgrid".
func (p *Provider) Name() string { return Name }

// client returns the client for the secret's region.
func (p *Provider) client(op string, c providers.Credential) (*vendorhttp.Client, error) {
	switch r := c.Attr(FieldRegion); strings.ToLower(r) {
	case "", "global", "us":
		return p.global, nil
	case "eu":
		return p.eu, nil
	default:
		return nil, providers.E(op, providers.Invalid, fmt.Errorf("the secret's %q field is %q; want \"eu\" or none", FieldRegion, r))
	}
}

// management returns the client, the admin key's auth and the headers for
// a management call on owner's keys.
func (p *Provider) management(ctx context.Context, op string, owner providers.Credential) (*vendorhttp.Client, vendorhttp.Auth, http.Header, error) {
	c, err := p.client(op, owner)
	if err != nil {
		return nil, nil, nil, err
	}
	admin, err := p.admin.Read(ctx, op, owner)
	if err != nil {
		return nil, nil, nil, err
	}
	var h http.Header
	if sub := owner.Attr(FieldOnBehalfOf); sub != "" {
		h = http.Header{"On-Behalf-Of": {sub}}
	}
	return c, vendorhttp.Bearer(admin.Key), h, nil
}

type apiKey struct {
	ID     string   `json:"api_key_id"`
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
}

// Create mints a key with the old key's scopes (or the secret's "scopes" on
// bootstrap). It never creates a Full Access key by omitting the scopes.
func (p *Provider) Create(ctx context.Context, req providers.CreateRequest) (providers.Credential, error) {
	const op = Name + ".CreateApiKey"
	if req.KeyName == "" {
		return providers.Credential{}, providers.E(op, providers.Invalid, errors.New("the key name is empty"))
	}
	c, auth, h, err := p.management(ctx, op, req.Owner)
	if err != nil {
		return providers.Credential{}, err
	}
	scopes, err := p.scopesToCopy(ctx, c, auth, h, req.Owner)
	if err != nil {
		return providers.Credential{}, err
	}
	var out struct {
		APIKey   string `json:"api_key"`
		APIKeyID string `json:"api_key_id"`
	}
	body := struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}{req.KeyName, scopes}
	err = c.Do(ctx, vendorhttp.Request{Op: "CreateApiKey", Method: http.MethodPost, Path: "/v3/api_keys", Header: h, Auth: auth, JSON: body}, &out)
	if err != nil {
		return providers.Credential{}, p.limitReached(ctx, c, auth, h, err)
	}
	if out.APIKey == "" || out.APIKeyID == "" {
		return providers.Credential{}, providers.E(op, providers.Other, errors.New("the response has no api_key or api_key_id"))
	}
	cred := req.Owner
	cred.Key, cred.KeyID, cred.CreatedAt = out.APIKey, out.APIKeyID, p.now().UTC()
	return cred.WithAttr(FieldScopes, scopes)
}

// scopesToCopy returns the old key's scopes, or on bootstrap the secret's.
func (p *Provider) scopesToCopy(ctx context.Context, c *vendorhttp.Client, auth vendorhttp.Auth, h http.Header, owner providers.Credential) ([]string, error) {
	const op = Name + ".GetApiKey"
	var fromSecret []string
	if _, err := owner.AttrInto(FieldScopes, &fromSecret); err != nil {
		return nil, providers.E(op, providers.Invalid, err)
	}
	if owner.KeyID == "" {
		if len(fromSecret) == 0 {
			return nil, providers.E(op, providers.Invalid, fmt.Errorf("the secret has no key_id to copy scopes from and no %q field; refusing to create a Full Access key", FieldScopes))
		}
		return fromSecret, nil
	}
	k, err := p.getKey(ctx, c, auth, h, owner.KeyID)
	if providers.IsKind(err, providers.NotFound) && len(fromSecret) > 0 {
		return fromSecret, nil // the old key is gone; the secret still says what it could do
	}
	if err != nil {
		return nil, err
	}
	if len(k.Scopes) == 0 {
		return nil, providers.E(op, providers.Invalid, fmt.Errorf("key %s has no scopes to copy; refusing to create a Full Access key", owner.KeyID))
	}
	return k.Scopes, nil
}

// getKey reads one key. The spec declares {"result":[{...}]}, its example
// only ids and names, so a bare {"api_key_id",...} object is accepted too.
func (p *Provider) getKey(ctx context.Context, c *vendorhttp.Client, auth vendorhttp.Auth, h http.Header, id string) (apiKey, error) {
	var out struct {
		Result []apiKey `json:"result"`
		apiKey
	}
	err := c.Do(ctx, vendorhttp.Request{Op: "GetApiKey", Method: http.MethodGet, Path: "/v3/api_keys/" + url.PathEscape(id), Header: h, Auth: auth}, &out)
	if err != nil {
		return apiKey{}, err
	}
	if out.apiKey.ID == id {
		return out.apiKey, nil
	}
	for _, k := range out.Result {
		if k.ID == id {
			return k, nil
		}
	}
	if len(out.Result) == 1 && out.Result[0].ID == "" {
		return out.Result[0], nil
	}
	return apiKey{}, providers.E(c.Op("GetApiKey"), providers.Other, fmt.Errorf("the response does not describe key %s", id))
}

// limitReached turns a 403 from create into a Conflict when the user holds
// MaxKeys keys: SendGrid answers the limit with the status of a refused
// credential.
func (p *Provider) limitReached(ctx context.Context, c *vendorhttp.Client, auth vendorhttp.Auth, h http.Header, err error) error {
	var pe *providers.Error
	if !errors.As(err, &pe) || pe.Status != http.StatusForbidden {
		return err
	}
	keys, lerr := p.list(ctx, c, auth, h)
	if lerr != nil || len(keys) < MaxKeys {
		return err
	}
	return &providers.Error{Op: pe.Op, Kind: providers.Conflict, Status: pe.Status, RequestID: pe.RequestID,
		Err: fmt.Errorf("the user holds %d API keys, SendGrid's limit is %d: delete unused keys", len(keys), MaxKeys)}
}

func (p *Provider) list(ctx context.Context, c *vendorhttp.Client, auth vendorhttp.Auth, h http.Header) ([]apiKey, error) {
	var out struct {
		Result []apiKey `json:"result"`
	}
	q := url.Values{"limit": {strconv.Itoa(MaxKeys)}}
	err := c.Do(ctx, vendorhttp.Request{Op: "ListApiKey", Method: http.MethodGet, Path: "/v3/api_keys", Query: q, Header: h, Auth: auth}, &out)
	return out.Result, err
}

// Verify authenticates with cred.Key alone (GET /v3/scopes) and checks that
// the key holds every scope the secret records.
func (p *Provider) Verify(ctx context.Context, cred providers.Credential) error {
	const op = Name + ".ListScope"
	c, err := p.client(op, cred)
	if err != nil {
		return err
	}
	if cred.Key == "" {
		return providers.E(op, providers.Invalid, errors.New("the secret has no key"))
	}
	var out struct {
		Scopes []string `json:"scopes"`
	}
	if err := c.Do(ctx, vendorhttp.Request{Op: "ListScope", Method: http.MethodGet, Path: "/v3/scopes", Auth: vendorhttp.Bearer(cred.Key)}, &out); err != nil {
		return err
	}
	var want []string
	if _, err := cred.AttrInto(FieldScopes, &want); err != nil {
		return providers.E(op, providers.Invalid, err)
	}
	var missing []string
	for _, s := range want {
		if !slices.Contains(out.Scopes, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return providers.E(op, providers.Invalid, fmt.Errorf("key %s lacks %d of its %d scopes: %s", cred.KeyID, len(missing), len(want), strings.Join(missing, ", ")))
	}
	return nil
}

// Revoke deletes key keyID; a key already gone is success.
func (p *Provider) Revoke(ctx context.Context, owner providers.Credential, keyID string) error {
	const op = Name + ".DeleteApiKey"
	if keyID == "" {
		return providers.E(op, providers.Invalid, errors.New("no key id to revoke"))
	}
	c, auth, h, err := p.management(ctx, op, owner)
	if err != nil {
		return err
	}
	err = c.Do(ctx, vendorhttp.Request{Op: "DeleteApiKey", Method: http.MethodDelete, Path: "/v3/api_keys/" + url.PathEscape(keyID), Header: h, Auth: auth}, nil)
	if providers.IsKind(err, providers.NotFound) {
		return nil
	}
	return err
}

// ListKeys returns the user's keys whose names start with namePrefix.
// SendGrid reports no creation time.
func (p *Provider) ListKeys(ctx context.Context, owner providers.Credential, namePrefix string) ([]providers.KeyInfo, error) {
	c, auth, h, err := p.management(ctx, Name+".ListApiKey", owner)
	if err != nil {
		return nil, err
	}
	keys, err := p.list(ctx, c, auth, h)
	if err != nil {
		return nil, err
	}
	var out []providers.KeyInfo
	for _, k := range keys {
		if strings.HasPrefix(k.Name, namePrefix) {
			out = append(out, providers.KeyInfo{ID: k.ID, Name: k.Name})
		}
	}
	return out, nil
}
