// Package datadog rotates Datadog API keys and application keys on every
// Datadog site, and reports when a key was last used.
//
// The secret value is
//
//	{"provider":"datadog","key":"<key>","key_id":"<key id>","site":"datadoghq.eu",
//	 "key_kind":"api","admin_secret_id":"datadog/admin"}
//
// site is one of the Datadog sites (default datadoghq.com); the API is
// https://api.<site>. key_kind is "api" (default) or "application". An
// application key belongs to the user of the management credential
// (/api/v2/current_user/application_keys) unless the secret names a
// "service_account_id", whose keys it then rotates. On bootstrap an
// application key gets the secret's optional "scopes" (a list; absent means
// unscoped).
//
// The admin secret named by admin_secret_id holds the management
// credential: {"key":"<API key>","key_id":"<application key>"}, sent as
// DD-API-KEY and DD-APPLICATION-KEY. The application key's user needs
// api_keys_read, api_keys_write and api_keys_delete for API keys;
// user_app_keys for its own application keys; service_account_write for a
// service account's.
//
// Create copies category and remote_config_read_enabled (API keys) or scopes
// (application keys) from the current key, and first refuses with a Conflict
// error when the key limit the list reports (meta.max_allowed,
// meta.max_allowed_per_user) is reached. Verify calls GET /api/v1/validate
// with the new API key alone, or, for an application key, reads the key
// itself (GET /api/v2/current_user/application_keys/{id}) with the admin API
// key and the new application key, which therefore needs user_app_keys if it
// is scoped.
package datadog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
	"github.com/keyrotor/keyrotor/providers/vendorhttp"
)

// Name is the provider id.
const Name = "datadog"

// Secret fields read by the provider.
const (
	FieldSite             = "site"
	FieldKeyKind          = "key_kind"
	FieldServiceAccountID = "service_account_id"
	FieldScopes           = "scopes"
)

// Key kinds.
const (
	KindAPI         = "api"
	KindApplication = "application"
)

// DefaultSite is the site of a secret without a site field.
const DefaultSite = "datadoghq.com"

// Sites are the Datadog sites the provider accepts (the server enum of
// Datadog's OpenAPI spec). A site outside the list is refused, so a secret
// can never send the management credential to another host.
var Sites = []string{
	"datadoghq.com", "us3.datadoghq.com", "us5.datadoghq.com", "ap1.datadoghq.com", "ap2.datadoghq.com",
	"uk1.datadoghq.com", "datadoghq.eu", "ddog-gov.com", "us2.ddog-gov.com",
}

// AdminReader reads the management credential named by a secret's
// admin_secret_id; adminsecret.Reader is one.
type AdminReader interface {
	Read(ctx context.Context, op string, owner providers.Credential) (adminsecret.Credential, error)
}

// Config configures the provider.
type Config struct {
	// BaseURL, when set (a function's API_BASE_URL), replaces
	// https://api.<site> for every secret.
	BaseURL string
	// Admin reads management credentials.
	Admin AdminReader
	// HTTP tunes the HTTP behaviour (client, attempts, clock).
	HTTP vendorhttp.Options
}

// Provider rotates Datadog keys.
type Provider struct {
	cfg     Config
	mu      sync.Mutex
	clients map[string]*vendorhttp.Client // by base URL
}

var (
	_ providers.Provider        = (*Provider)(nil)
	_ providers.Lister          = (*Provider)(nil)
	_ providers.LastUseReporter = (*Provider)(nil)
)

// New returns a provider for cfg, or an error if BaseURL is not https
// (loopback excepted) or Admin is nil.
func New(cfg Config) (*Provider, error) {
	if cfg.Admin == nil {
		return nil, errors.New("datadog: Config.Admin is nil")
	}
	p := &Provider{cfg: cfg, clients: map[string]*vendorhttp.Client{}}
	if cfg.BaseURL != "" {
		if _, err := p.client(cfg.BaseURL); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Name returns "datadog".
func (p *Provider) Name() string { return Name }

func (p *Provider) client(base string) (*vendorhttp.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[base]; ok {
		return c, nil
	}
	c, err := vendorhttp.New(vendorhttp.Config{Vendor: Name, BaseURL: base, Options: p.cfg.HTTP})
	if err != nil {
		return nil, err
	}
	p.clients[base] = c
	return c, nil
}

// target is what a secret says about where its keys live, with the client
// for its site.
type target struct {
	c              *vendorhttp.Client
	application    bool
	serviceAccount string
}

func (p *Provider) target(op string, cred providers.Credential) (target, error) {
	var t target
	switch k := cred.Attr(FieldKeyKind); k {
	case "", KindAPI:
	case KindApplication:
		t.application = true
		t.serviceAccount = cred.Attr(FieldServiceAccountID)
	default:
		return target{}, providers.E(op, providers.Invalid, fmt.Errorf("field %q is %q, want %q or %q", FieldKeyKind, k, KindAPI, KindApplication))
	}
	base := p.cfg.BaseURL
	if base == "" {
		site := cred.Attr(FieldSite)
		if site == "" {
			site = DefaultSite
		}
		if !slices.Contains(Sites, site) {
			return target{}, providers.E(op, providers.Invalid, fmt.Errorf("field %q is %q, not a Datadog site (%s)", FieldSite, site, strings.Join(Sites, ", ")))
		}
		base = "https://api." + site
	}
	c, err := p.client(base)
	if err != nil {
		return target{}, providers.E(op, providers.Invalid, err)
	}
	t.c = c
	return t, nil
}

// keysPath is the collection of the secret's keys.
func (t target) keysPath() string {
	switch {
	case !t.application:
		return "/api/v2/api_keys"
	case t.serviceAccount != "":
		return "/api/v2/service_accounts/" + url.PathEscape(t.serviceAccount) + "/application_keys"
	}
	return "/api/v2/current_user/application_keys"
}

func (t target) keyPath(id string) string { return t.keysPath() + "/" + url.PathEscape(id) }

func (t target) what() string {
	if t.application {
		return "application key"
	}
	return "API key"
}

func (p *Provider) adminAuth(ctx context.Context, op string, cred providers.Credential) (adminsecret.Credential, error) {
	admin, err := p.cfg.Admin.Read(ctx, op, cred)
	if err != nil {
		return adminsecret.Credential{}, err
	}
	if admin.KeyID == "" {
		return adminsecret.Credential{}, providers.E(op, providers.Invalid, errors.New("the admin secret has no key_id (the application key beside its API key)"))
	}
	return admin, nil
}

func adminHeaders(a adminsecret.Credential) vendorhttp.Auth {
	return vendorhttp.Headers("DD-API-KEY", a.Key, "DD-APPLICATION-KEY", a.KeyID)
}

// keyAttributes covers the attributes of both key kinds, full or partial.
type keyAttributes struct {
	Key                     string    `json:"key,omitempty"`
	Name                    string    `json:"name,omitempty"`
	CreatedAt               string    `json:"created_at,omitempty"`
	Category                *string   `json:"category,omitempty"`
	RemoteConfigReadEnabled *bool     `json:"remote_config_read_enabled,omitempty"`
	Scopes                  *[]string `json:"scopes,omitempty"`
	DateLastUsed            *string   `json:"date_last_used,omitempty"`
	LastUsedAt              *string   `json:"last_used_at,omitempty"`
}

// String describes a without its key, as do GoString and LogValue.
func (a keyAttributes) String() string {
	return "datadog.keyAttributes{name=" + a.Name + " key=<redacted>}"
}

// GoString is String.
func (a keyAttributes) GoString() string { return a.String() }

// LogValue lets slog log keyAttributes without the key.
func (a keyAttributes) LogValue() slog.Value { return slog.StringValue(a.String()) }

type keyData struct {
	ID         string        `json:"id,omitempty"`
	Type       string        `json:"type"`
	Attributes keyAttributes `json:"attributes"`
}

type keyDocument struct {
	Data keyData `json:"data"`
}

type listDocument struct {
	Data []keyData `json:"data"`
	Meta struct {
		MaxAllowed        int64 `json:"max_allowed"`
		MaxAllowedPerUser int64 `json:"max_allowed_per_user"`
		Page              struct {
			TotalFilteredCount int64 `json:"total_filtered_count"`
		} `json:"page"`
	} `json:"meta"`
}

// Create mints a key named req.KeyName with the settings of the current key.
// It fails with a Conflict error, before creating anything, when the key
// limit is reached.
func (p *Provider) Create(ctx context.Context, req providers.CreateRequest) (providers.Credential, error) {
	const op = Name + ".Create"
	t, err := p.target(op, req.Owner)
	if err != nil {
		return providers.Credential{}, err
	}
	admin, err := p.adminAuth(ctx, op, req.Owner)
	if err != nil {
		return providers.Credential{}, err
	}
	auth := adminHeaders(admin)
	if err := p.checkLimit(ctx, t, auth); err != nil {
		return providers.Credential{}, err
	}
	attrs, err := p.copiedAttributes(ctx, t, auth, req.Owner)
	if err != nil {
		return providers.Credential{}, err
	}
	attrs.Name = req.KeyName
	body := keyDocument{Data: keyData{Type: "api_keys", Attributes: attrs}}
	if t.application {
		body.Data.Type = "application_keys"
	}
	var out keyDocument
	if err := t.c.Do(ctx, vendorhttp.Request{Op: "CreateKey", Method: http.MethodPost, Path: t.keysPath(), Auth: auth, JSON: body}, &out); err != nil {
		return providers.Credential{}, fmt.Errorf("create %s %s: %w", t.what(), req.KeyName, err)
	}
	if out.Data.ID == "" || out.Data.Attributes.Key == "" {
		err := providers.E(t.c.Op("CreateKey"), providers.Other, fmt.Errorf("create %s %s: the answer has no id or key", t.what(), req.KeyName))
		if out.Data.ID != "" {
			// Do not leave a key nobody can use behind.
			if derr := p.delete(context.WithoutCancel(ctx), t, auth, out.Data.ID); derr != nil {
				return providers.Credential{}, errors.Join(err, derr)
			}
		}
		return providers.Credential{}, err
	}
	cred := req.Owner
	cred.Provider = Name
	cred.Key = out.Data.Attributes.Key
	cred.KeyID = out.Data.ID
	cred.CreatedAt = parseTime(out.Data.Attributes.CreatedAt)
	return cred, nil
}

// checkLimit fails with a Conflict error when the list says that the key
// limit is reached.
func (p *Provider) checkLimit(ctx context.Context, t target, auth vendorhttp.Auth) error {
	var out listDocument
	q := url.Values{"page[size]": {"1"}}
	if err := t.c.Do(ctx, vendorhttp.Request{Op: "ListKeys", Method: http.MethodGet, Path: t.keysPath(), Query: q, Auth: auth}, &out); err != nil {
		return fmt.Errorf("count %ss: %w", t.what(), err)
	}
	limit := out.Meta.MaxAllowed
	if t.application {
		limit = out.Meta.MaxAllowedPerUser
	}
	if limit > 0 && out.Meta.Page.TotalFilteredCount >= limit {
		return providers.E(t.c.Op("CreateKey"), providers.Conflict, fmt.Errorf("the %s limit of %d is reached: wait for the revoker to delete the previous key", t.what(), limit))
	}
	return nil
}

// copiedAttributes reads the settings the new key takes from the current
// one: category and remote config for API keys, scopes for application
// keys (from the secret's scopes field on bootstrap).
func (p *Provider) copiedAttributes(ctx context.Context, t target, auth vendorhttp.Auth, owner providers.Credential) (keyAttributes, error) {
	var attrs keyAttributes
	if owner.KeyID == "" {
		if t.application {
			var scopes []string
			ok, err := owner.AttrInto(FieldScopes, &scopes)
			if err != nil {
				return attrs, providers.E(t.c.Op("CreateKey"), providers.Invalid, err)
			}
			if ok && scopes != nil {
				attrs.Scopes = &scopes
			}
		}
		return attrs, nil
	}
	// A current key that cannot be read is an error: an application key
	// created without its scopes would get all of its user's rights.
	var cur keyDocument
	if err := t.c.Do(ctx, vendorhttp.Request{Op: "GetKey", Method: http.MethodGet, Path: t.keyPath(owner.KeyID), Auth: auth}, &cur); err != nil {
		return attrs, fmt.Errorf("read current %s %s: %w", t.what(), owner.KeyID, err)
	}
	a := cur.Data.Attributes
	if t.application {
		attrs.Scopes = a.Scopes
	} else {
		attrs.Category, attrs.RemoteConfigReadEnabled = a.Category, a.RemoteConfigReadEnabled
	}
	return attrs, nil
}

// Verify authenticates with the new key: an API key alone at
// /api/v1/validate; an application key, with the admin API key, by reading
// itself.
func (p *Provider) Verify(ctx context.Context, cred providers.Credential) error {
	const op = Name + ".Verify"
	t, err := p.target(op, cred)
	if err != nil {
		return err
	}
	if cred.Key == "" || cred.KeyID == "" {
		return providers.E(op, providers.Invalid, errors.New("the credential has no key or key_id"))
	}
	if !t.application {
		var out struct {
			Valid bool `json:"valid"`
		}
		if err := t.c.Do(ctx, vendorhttp.Request{Op: "Validate", Method: http.MethodGet, Path: "/api/v1/validate", Auth: vendorhttp.Headers("DD-API-KEY", cred.Key)}, &out); err != nil {
			return fmt.Errorf("validate API key %s: %w", cred.KeyID, err)
		}
		if !out.Valid {
			return providers.E(t.c.Op("Validate"), providers.Permission, fmt.Errorf("validate API key %s: the key is not valid", cred.KeyID))
		}
		return nil
	}
	admin, err := p.adminAuth(ctx, op, cred)
	if err != nil {
		return err
	}
	path := "/api/v2/current_user/application_keys/" + url.PathEscape(cred.KeyID)
	auth := vendorhttp.Headers("DD-API-KEY", admin.Key, "DD-APPLICATION-KEY", cred.Key)
	if err := t.c.Do(ctx, vendorhttp.Request{Op: "VerifyApplicationKey", Method: http.MethodGet, Path: path, Auth: auth}, nil); err != nil {
		return fmt.Errorf("authenticate with application key %s: %w", cred.KeyID, err)
	}
	return nil
}

// Revoke deletes key keyID. A key that is already gone is success.
func (p *Provider) Revoke(ctx context.Context, owner providers.Credential, keyID string) error {
	const op = Name + ".Revoke"
	t, err := p.target(op, owner)
	if err != nil {
		return err
	}
	admin, err := p.adminAuth(ctx, op, owner)
	if err != nil {
		return err
	}
	return p.delete(ctx, t, adminHeaders(admin), keyID)
}

func (p *Provider) delete(ctx context.Context, t target, auth vendorhttp.Auth, keyID string) error {
	err := t.c.Do(ctx, vendorhttp.Request{Op: "DeleteKey", Method: http.MethodDelete, Path: t.keyPath(keyID), Auth: auth}, nil)
	if err != nil && !providers.IsKind(err, providers.NotFound) {
		return fmt.Errorf("delete %s %s: %w", t.what(), keyID, err)
	}
	return nil
}

// LastUsed returns date_last_used (API keys) or last_used_at (application
// keys), the zero time if the key was never used, and a NotFound error if
// the key does not exist.
func (p *Provider) LastUsed(ctx context.Context, owner providers.Credential, keyID string) (time.Time, error) {
	const op = Name + ".LastUsed"
	t, err := p.target(op, owner)
	if err != nil {
		return time.Time{}, err
	}
	admin, err := p.adminAuth(ctx, op, owner)
	if err != nil {
		return time.Time{}, err
	}
	var out keyDocument
	if err := t.c.Do(ctx, vendorhttp.Request{Op: "GetKey", Method: http.MethodGet, Path: t.keyPath(keyID), Auth: adminHeaders(admin)}, &out); err != nil {
		return time.Time{}, fmt.Errorf("read %s %s: %w", t.what(), keyID, err)
	}
	used := out.Data.Attributes.DateLastUsed
	if t.application {
		used = out.Data.Attributes.LastUsedAt
	}
	if used == nil || *used == "" {
		return time.Time{}, nil
	}
	ts := parseTime(*used)
	if ts.IsZero() {
		return time.Time{}, providers.E(t.c.Op("GetKey"), providers.Other, fmt.Errorf("read %s %s: the last-use time is not RFC 3339", t.what(), keyID))
	}
	return ts, nil
}

// ListKeys returns the keys whose names start with namePrefix.
func (p *Provider) ListKeys(ctx context.Context, owner providers.Credential, namePrefix string) ([]providers.KeyInfo, error) {
	const op = Name + ".ListKeys"
	t, err := p.target(op, owner)
	if err != nil {
		return nil, err
	}
	admin, err := p.adminAuth(ctx, op, owner)
	if err != nil {
		return nil, err
	}
	const pageSize = 100
	var keys []providers.KeyInfo
	for page := 0; page < 1000; page++ {
		q := url.Values{"filter": {namePrefix}, "page[size]": {strconv.Itoa(pageSize)}, "page[number]": {strconv.Itoa(page)}}
		var out listDocument
		if err := t.c.Do(ctx, vendorhttp.Request{Op: "ListKeys", Method: http.MethodGet, Path: t.keysPath(), Query: q, Auth: adminHeaders(admin)}, &out); err != nil {
			return nil, fmt.Errorf("list %ss named %s*: %w", t.what(), namePrefix, err)
		}
		for _, k := range out.Data {
			// filter matches anywhere in the name; keep prefixes only.
			if strings.HasPrefix(k.Attributes.Name, namePrefix) {
				keys = append(keys, providers.KeyInfo{ID: k.ID, Name: k.Attributes.Name, CreatedAt: parseTime(k.Attributes.CreatedAt)})
			}
		}
		if len(out.Data) < pageSize {
			return keys, nil
		}
	}
	return keys, nil
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
