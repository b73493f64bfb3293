package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
	"github.com/keyrotor/keyrotor/providers/vendorhttp"
)

// Name is the provider id: the "provider" field of every gateway secret.
const Name = "gateway"

// Operation names carried by the provider's errors.
const (
	OpCreateKey = "gateway.CreateKey"
	OpPing      = "gateway.Ping"
	OpDeleteKey = "gateway.DeleteKey"
	OpListKeys  = "gateway.ListKeys"
	OpGetKey    = "gateway.GetKey"
)

// DefaultTimeout bounds each request of the default HTTP client.
const DefaultTimeout = 15 * time.Second

// AdminReader reads the admin token named by a secret's admin_secret_id.
// adminsecret.Reader satisfies it.
type AdminReader interface {
	Read(ctx context.Context, op string, owner providers.Credential) (adminsecret.Credential, error)
}

// Config configures the provider.
type Config struct {
	// BaseURL is the gateway's URL (API_BASE_URL). It must be https unless
	// its host is loopback (127.0.0.1, ::1, localhost).
	BaseURL string
	// HTTPClient is the client to use; nil means one with DefaultTimeout.
	// The provider uses a copy that never follows redirects.
	HTTPClient *http.Client
	// Admin reads the admin token. Required.
	Admin AdminReader
}

// Provider rotates gateway keys. It is safe for concurrent use.
type Provider struct {
	base  string // without a trailing slash
	hc    *http.Client
	admin AdminReader
}

var (
	_ providers.Provider        = (*Provider)(nil)
	_ providers.Lister          = (*Provider)(nil)
	_ providers.LastUseReporter = (*Provider)(nil)
)

// New returns a provider for the gateway at cfg.BaseURL.
func New(cfg Config) (*Provider, error) {
	if cfg.Admin == nil {
		return nil, errors.New("gateway: Config.Admin is required")
	}
	base, err := vendorhttp.ParseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	// The admin token must not follow a redirect to wherever it points.
	return &Provider{base: base.String(), hc: vendorhttp.NoRedirects(hc), admin: cfg.Admin}, nil
}

// Name returns "gateway".
func (p *Provider) Name() string { return Name }

// Create mints a key named req.KeyName with POST /v1/keys. The returned
// credential keeps the owner's provider fields (admin_secret_id). A full
// gateway answers 409, a Conflict error.
func (p *Provider) Create(ctx context.Context, req providers.CreateRequest) (providers.Credential, error) {
	admin, err := p.admin.Read(ctx, OpCreateKey, req.Owner)
	if err != nil {
		return providers.Credential{}, err
	}
	subject := fmt.Sprintf("create key %q", req.KeyName)
	body := map[string]string{"name": req.KeyName}
	if req.SecretName != "" {
		body["description"] = "keyrotor: " + req.SecretName
	}
	var out struct {
		ID        string `json:"id"`
		Key       string `json:"key"`
		CreatedAt string `json:"created_at"`
	}
	if err := p.do(ctx, OpCreateKey, subject, http.MethodPost, "/v1/keys", admin.Key, body, http.StatusCreated, &out); err != nil {
		return providers.Credential{}, err
	}
	if out.ID == "" || out.Key == "" {
		return providers.Credential{}, providers.E(OpCreateKey, providers.Other, fmt.Errorf("%s: the response has no id or no key", subject))
	}
	cred := providers.Credential{Provider: Name, Key: out.Key, KeyID: out.ID, Attrs: maps.Clone(req.Owner.Attrs)}
	if t, err := time.Parse(time.RFC3339, out.CreatedAt); err == nil {
		cred.CreatedAt = t
	}
	return cred, nil
}

// Verify calls GET /v1/ping with cred.Key alone. A refused key is a
// Permission error; a key that authenticates as another key id is Invalid.
func (p *Provider) Verify(ctx context.Context, cred providers.Credential) error {
	subject := "ping with key " + cred.KeyID
	if cred.Key == "" {
		return providers.E(OpPing, providers.Invalid, fmt.Errorf("%s: the credential has no key", subject))
	}
	var out struct {
		OK    bool   `json:"ok"`
		KeyID string `json:"key_id"`
	}
	if err := p.do(ctx, OpPing, subject, http.MethodGet, "/v1/ping", cred.Key, nil, http.StatusOK, &out); err != nil {
		return err
	}
	if !out.OK {
		return providers.E(OpPing, providers.Other, fmt.Errorf("%s: the gateway did not answer ok", subject))
	}
	if cred.KeyID != "" && out.KeyID != cred.KeyID {
		return providers.E(OpPing, providers.Invalid, fmt.Errorf("%s: the key authenticates as key %s", subject, out.KeyID))
	}
	return nil
}

// Revoke deletes key keyID with DELETE /v1/keys/{id}; an unknown key is nil.
func (p *Provider) Revoke(ctx context.Context, owner providers.Credential, keyID string) error {
	subject := "delete key " + keyID
	if keyID == "" {
		return providers.E(OpDeleteKey, providers.Invalid, errors.New("delete key: empty key id"))
	}
	admin, err := p.admin.Read(ctx, OpDeleteKey, owner)
	if err != nil {
		return err
	}
	err = p.do(ctx, OpDeleteKey, subject, http.MethodDelete, "/v1/keys/"+url.PathEscape(keyID), admin.Key, nil, http.StatusNoContent, nil)
	if providers.IsKind(err, providers.NotFound) {
		return nil
	}
	return err
}

// ListKeys returns the keys whose names start with namePrefix (GET
// /v1/keys?name_prefix=). It filters again on its side, so a gateway that
// ignored the prefix could not make the caller revoke another secret's keys.
func (p *Provider) ListKeys(ctx context.Context, owner providers.Credential, namePrefix string) ([]providers.KeyInfo, error) {
	subject := fmt.Sprintf("list keys with prefix %q", namePrefix)
	admin, err := p.admin.Read(ctx, OpListKeys, owner)
	if err != nil {
		return nil, err
	}
	var out struct {
		Keys []struct {
			ID        string `json:"id"`
			Name      string `json:"name"`
			CreatedAt string `json:"created_at"`
		} `json:"keys"`
	}
	path := "/v1/keys?" + url.Values{"name_prefix": {namePrefix}}.Encode()
	if err := p.do(ctx, OpListKeys, subject, http.MethodGet, path, admin.Key, nil, http.StatusOK, &out); err != nil {
		return nil, err
	}
	keys := make([]providers.KeyInfo, 0, len(out.Keys))
	for _, k := range out.Keys {
		if k.ID == "" || !strings.HasPrefix(k.Name, namePrefix) {
			continue
		}
		info := providers.KeyInfo{ID: k.ID, Name: k.Name}
		if t, err := time.Parse(time.RFC3339, k.CreatedAt); err == nil {
			info.CreatedAt = t
		}
		keys = append(keys, info)
	}
	return keys, nil
}

// LastUsed returns key keyID's last_used_at (GET /v1/keys/{id}), the zero
// time if it was never used, and a NotFound error for an unknown key.
func (p *Provider) LastUsed(ctx context.Context, owner providers.Credential, keyID string) (time.Time, error) {
	subject := "get key " + keyID
	if keyID == "" {
		return time.Time{}, providers.E(OpGetKey, providers.Invalid, errors.New("get key: empty key id"))
	}
	admin, err := p.admin.Read(ctx, OpGetKey, owner)
	if err != nil {
		return time.Time{}, err
	}
	var out struct {
		LastUsedAt *string `json:"last_used_at"`
	}
	if err := p.do(ctx, OpGetKey, subject, http.MethodGet, "/v1/keys/"+url.PathEscape(keyID), admin.Key, nil, http.StatusOK, &out); err != nil {
		return time.Time{}, err
	}
	if out.LastUsedAt == nil {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, *out.LastUsedAt)
	if err != nil {
		return time.Time{}, providers.E(OpGetKey, providers.Other, fmt.Errorf("%s: last_used_at is not an RFC 3339 time", subject))
	}
	return t, nil
}

// statusKinds classifies the gateway's error statuses; any other 5xx is
// Transient and anything else Other.
var statusKinds = map[int]providers.Kind{
	http.StatusBadRequest:          providers.Invalid,
	http.StatusUnprocessableEntity: providers.Invalid,
	http.StatusUnauthorized:        providers.Permission,
	http.StatusForbidden:           providers.Permission,
	http.StatusNotFound:            providers.NotFound,
	http.StatusConflict:            providers.Conflict,
	http.StatusRequestTimeout:      providers.Transient,
	http.StatusTooManyRequests:     providers.Transient,
}

func kindOfStatus(status int) providers.Kind {
	if k, ok := statusKinds[status]; ok {
		return k
	}
	if status >= 500 {
		return providers.Transient
	}
	return providers.Other
}

// maxResponseBytes bounds how much of a response is read.
const maxResponseBytes = 1 << 20

// errorCode matches the gateway's short error codes; anything else from a
// response body is never put in an error.
var errorCode = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// do sends one request authenticated with token and decodes a wantStatus
// answer into out (nil: ignore the body). Every failure is a *providers.Error
// of op carrying the HTTP status and the gateway's X-Request-Id.
func (p *Provider) do(ctx context.Context, op, subject, method, path, token string, in any, wantStatus int, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return providers.E(op, providers.Invalid, fmt.Errorf("%s: encode request: %w", subject, err))
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, body)
	if err != nil {
		return providers.E(op, providers.Invalid, fmt.Errorf("%s: build request: %w", subject, err))
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.hc.Do(req)
	if err != nil {
		// Transport errors, timeouts and ended contexts may all pass on retry.
		return providers.E(op, providers.Transient, fmt.Errorf("%s: %w", subject, err))
	}
	defer resp.Body.Close()
	raw, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	fail := func(kind providers.Kind, err error) error {
		e := providers.E(op, kind, err)
		e.Status = resp.StatusCode
		e.RequestID = resp.Header.Get("X-Request-Id")
		return e
	}
	if resp.StatusCode != wantStatus {
		var v struct {
			Error string `json:"error"`
		}
		msg := subject + ": the gateway refused"
		if json.Unmarshal(raw, &v) == nil && errorCode.MatchString(v.Error) {
			msg = subject + ": " + v.Error
		}
		return fail(kindOfStatus(resp.StatusCode), errors.New(msg))
	}
	if readErr != nil {
		return fail(providers.Transient, fmt.Errorf("%s: read response: %w", subject, readErr))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			// The error of encoding/json quotes no input, but keep even that out.
			return fail(providers.Other, fmt.Errorf("%s: the response is not the expected JSON", subject))
		}
	}
	return nil
}
