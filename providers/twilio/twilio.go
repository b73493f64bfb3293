// Package twilio rotates Twilio API keys: standard keys through the REST API
// 2010-04-01 Keys resource (api.twilio.com) and restricted keys through the
// IAM v1 Keys API (iam.twilio.com), which keeps a restricted key's policy by
// reading the old key's policy and passing it to the new one.
//
// The secret value is
//
//	{"provider":"twilio","key":"<key secret>","key_id":"SK...","account_sid":"AC...",
//	 "key_type":"standard","admin_secret_id":"twilio/admin"}
//
// Applications authenticate with HTTP Basic key_id:key. key_type is
// "standard" (default) or "restricted". A restricted secret without a key yet
// (bootstrap) needs a "policy" field, the policy object of its first key
// ({"allow":["/twilio/messaging/messages/read"]}). verify_path optionally
// names the GET path on api.twilio.com that Verify reads with the new key
// (default /2010-04-01/Accounts/{account_sid}/Balance.json); a restricted key
// whose policy does not allow reading the balance needs one its policy allows.
//
// The admin secret named by admin_secret_id holds the management credential,
// which must be the account's auth token or a Main API key (standard and
// restricted keys cannot manage keys): {"key":"<auth token>"} or
// {"key":"<main key secret>","key_id":"SK<main key sid>"}. Without key_id the
// account SID is the Basic-auth user.
//
// Twilio's docs say standard keys cannot read the Account resource itself
// (/2010-04-01/Accounts/{sid}.json), so Verify reads the balance, a
// sub-resource of the account, instead.
package twilio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
	"github.com/keyrotor/keyrotor/providers/vendorhttp"
)

// Name is the provider id.
const Name = "twilio"

// Default base URLs.
const (
	DefaultAPIBaseURL = "https://api.twilio.com"
	DefaultIAMBaseURL = "https://iam.twilio.com"
)

// Secret fields read by the provider.
const (
	FieldAccountSID = "account_sid"
	FieldKeyType    = "key_type"
	FieldPolicy     = "policy"
	FieldVerifyPath = "verify_path"
)

// Key types.
const (
	KeyTypeStandard   = "standard"
	KeyTypeRestricted = "restricted"
)

// maxFriendlyName is Twilio's limit on FriendlyName.
const maxFriendlyName = 64

var (
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	keySIDPattern     = regexp.MustCompile(`^SK[0-9a-fA-F]{32}$`)
)

// AdminReader reads the management credential named by a secret's
// admin_secret_id; adminsecret.Reader is one.
type AdminReader interface {
	Read(ctx context.Context, op string, owner providers.Credential) (adminsecret.Credential, error)
}

// Config configures the provider.
type Config struct {
	// APIBaseURL is the REST API root (default https://api.twilio.com).
	APIBaseURL string
	// IAMBaseURL is the IAM API root (default https://iam.twilio.com).
	// A function's API_BASE_URL sets both: their paths (/2010-04-01/...,
	// /v1/Keys) never overlap, so one mock serves both.
	IAMBaseURL string
	// Admin reads management credentials.
	Admin AdminReader
	// HTTP tunes the HTTP behaviour (client, attempts, clock).
	HTTP vendorhttp.Options
}

// Provider rotates Twilio API keys.
type Provider struct {
	api   *vendorhttp.Client
	iam   *vendorhttp.Client
	admin AdminReader
}

var (
	_ providers.Provider = (*Provider)(nil)
	_ providers.Lister   = (*Provider)(nil)
)

// New returns a provider for cfg, or an error if a base URL is not https
// (loopback excepted) or Admin is nil.
func New(cfg Config) (*Provider, error) {
	if cfg.Admin == nil {
		return nil, errors.New("twilio: Config.Admin is nil")
	}
	if cfg.APIBaseURL == "" {
		cfg.APIBaseURL = DefaultAPIBaseURL
	}
	if cfg.IAMBaseURL == "" {
		cfg.IAMBaseURL = DefaultIAMBaseURL
	}
	client := func(base string) (*vendorhttp.Client, error) {
		return vendorhttp.New(vendorhttp.Config{Vendor: Name, BaseURL: base, RequestIDHeaders: []string{"Twilio-Request-Id"}, Options: cfg.HTTP})
	}
	api, err := client(cfg.APIBaseURL)
	if err != nil {
		return nil, err
	}
	iam, err := client(cfg.IAMBaseURL)
	if err != nil {
		return nil, err
	}
	return &Provider{api: api, iam: iam, admin: cfg.Admin}, nil
}

// Name returns "twilio".
func (p *Provider) Name() string { return Name }

// owner is what a secret says about where its keys live.
type owner struct {
	accountSID string
	restricted bool
}

func parseOwner(op string, c providers.Credential) (owner, error) {
	sid, err := c.RequireAttr(op, FieldAccountSID)
	if err != nil {
		return owner{}, err
	}
	if !accountSIDPattern.MatchString(sid) {
		return owner{}, providers.E(op, providers.Invalid, fmt.Errorf("field %q is not an account SID (AC + 32 hex digits)", FieldAccountSID))
	}
	o := owner{accountSID: sid}
	switch t := c.Attr(FieldKeyType); t {
	case "", KeyTypeStandard:
	case KeyTypeRestricted:
		o.restricted = true
	default:
		return owner{}, providers.E(op, providers.Invalid, fmt.Errorf("field %q is %q, want %q or %q", FieldKeyType, t, KeyTypeStandard, KeyTypeRestricted))
	}
	return o, nil
}

func (p *Provider) adminAuth(ctx context.Context, op string, o owner, c providers.Credential) (vendorhttp.Auth, error) {
	admin, err := p.admin.Read(ctx, op, c)
	if err != nil {
		return nil, err
	}
	user := admin.KeyID
	if user == "" {
		user = o.accountSID
	}
	return vendorhttp.Basic(user, admin.Key), nil
}

// key is a key resource of either API.
type key struct {
	SID          string          `json:"sid"`
	FriendlyName string          `json:"friendly_name"`
	DateCreated  string          `json:"date_created"`
	Secret       string          `json:"secret"`
	Policy       json.RawMessage `json:"policy"`
}

// String describes k without its secret, as do GoString and LogValue.
func (k key) String() string { return "twilio.key{sid=" + k.SID + " secret=<redacted>}" }

// GoString is String.
func (k key) GoString() string { return k.String() }

// LogValue lets slog log a key without its secret.
func (k key) LogValue() slog.Value { return slog.StringValue(k.String()) }

func (k key) created() time.Time {
	t, _ := time.Parse(time.RFC1123Z, k.DateCreated)
	return t
}

// Create mints a key named req.KeyName. A restricted key gets the policy of
// the current key (or the secret's policy field on bootstrap).
func (p *Provider) Create(ctx context.Context, req providers.CreateRequest) (providers.Credential, error) {
	const op = Name + ".Create"
	o, err := parseOwner(op, req.Owner)
	if err != nil {
		return providers.Credential{}, err
	}
	if len(req.KeyName) > maxFriendlyName {
		return providers.Credential{}, providers.E(op, providers.Invalid, fmt.Errorf("key name of %d characters is longer than Twilio's %d", len(req.KeyName), maxFriendlyName))
	}
	auth, err := p.adminAuth(ctx, op, o, req.Owner)
	if err != nil {
		return providers.Credential{}, err
	}
	var created key
	if o.restricted {
		policy, err := p.policyFor(ctx, o, auth, req.Owner)
		if err != nil {
			return providers.Credential{}, err
		}
		form := url.Values{"AccountSid": {o.accountSID}, "FriendlyName": {req.KeyName}, "KeyType": {KeyTypeRestricted}, "Policy": {string(policy)}}
		err = p.iam.Do(ctx, vendorhttp.Request{Op: "CreateKey", Method: http.MethodPost, Path: "/v1/Keys", Auth: auth, Form: form}, &created)
		if err != nil {
			return providers.Credential{}, fmt.Errorf("create restricted key %s in account %s: %w", req.KeyName, o.accountSID, err)
		}
	} else {
		form := url.Values{"FriendlyName": {req.KeyName}}
		err = p.api.Do(ctx, vendorhttp.Request{Op: "CreateKey", Method: http.MethodPost, Path: o.keysPath(), Auth: auth, Form: form}, &created)
		if err != nil {
			return providers.Credential{}, fmt.Errorf("create standard key %s in account %s: %w", req.KeyName, o.accountSID, err)
		}
	}
	if !keySIDPattern.MatchString(created.SID) || created.Secret == "" {
		err := providers.E(p.api.Op("CreateKey"), providers.Other, fmt.Errorf("create key %s in account %s: the answer has no key SID or secret", req.KeyName, o.accountSID))
		if keySIDPattern.MatchString(created.SID) {
			// Do not leave a key nobody can use behind.
			if derr := p.delete(context.WithoutCancel(ctx), o, auth, created.SID); derr != nil {
				return providers.Credential{}, errors.Join(err, derr)
			}
		}
		return providers.Credential{}, err
	}
	cred := req.Owner
	cred.Provider = Name
	cred.Key = created.Secret
	cred.KeyID = created.SID
	cred.CreatedAt = created.created()
	return cred, nil
}

// policyFor returns the policy of the current key, or the secret's policy on
// bootstrap, as compact JSON.
func (p *Provider) policyFor(ctx context.Context, o owner, auth vendorhttp.Auth, c providers.Credential) (json.RawMessage, error) {
	op := p.iam.Op("FetchKey")
	var policy json.RawMessage
	if c.KeyID == "" {
		if _, err := c.AttrInto(FieldPolicy, &policy); err != nil {
			return nil, providers.E(op, providers.Invalid, err)
		}
		if isNull(policy) {
			return nil, providers.E(op, providers.Invalid, fmt.Errorf("a restricted secret without a key needs a %q field", FieldPolicy))
		}
	} else {
		if !keySIDPattern.MatchString(c.KeyID) {
			return nil, providers.E(op, providers.Invalid, errors.New("key_id is not a key SID (SK + 32 hex digits)"))
		}
		var current key
		err := p.iam.Do(ctx, vendorhttp.Request{Op: "FetchKey", Method: http.MethodGet, Path: "/v1/Keys/" + c.KeyID, Auth: auth}, &current)
		if err != nil {
			return nil, fmt.Errorf("read the policy of key %s: %w", c.KeyID, err)
		}
		if isNull(current.Policy) {
			return nil, providers.E(op, providers.Invalid, fmt.Errorf("key %s has no policy: it is not a restricted key", c.KeyID))
		}
		policy = current.Policy
	}
	var obj map[string]any
	if err := json.Unmarshal(policy, &obj); err != nil {
		return nil, providers.E(op, providers.Invalid, errors.New("the policy is not a JSON object"))
	}
	return json.Marshal(obj)
}

func isNull(b json.RawMessage) bool {
	s := strings.TrimSpace(string(b))
	return s == "" || s == "null"
}

// Verify reads the verify path (default the account balance) with Basic
// key_id:key and nothing else.
func (p *Provider) Verify(ctx context.Context, cred providers.Credential) error {
	const op = Name + ".Verify"
	o, err := parseOwner(op, cred)
	if err != nil {
		return err
	}
	if !keySIDPattern.MatchString(cred.KeyID) || cred.Key == "" {
		return providers.E(op, providers.Invalid, errors.New("the credential has no key or a key_id that is not a key SID"))
	}
	path := "/2010-04-01/Accounts/" + o.accountSID + "/Balance.json"
	if v := cred.Attr(FieldVerifyPath); v != "" {
		if !strings.HasPrefix(v, "/") || strings.ContainsAny(v, "?#") || strings.Contains(v, "..") {
			return providers.E(op, providers.Invalid, fmt.Errorf("field %q must be a plain absolute path", FieldVerifyPath))
		}
		path = v
	}
	if err := p.api.Do(ctx, vendorhttp.Request{Op: "Verify", Method: http.MethodGet, Path: path, Auth: vendorhttp.Basic(cred.KeyID, cred.Key)}, nil); err != nil {
		return fmt.Errorf("authenticate as key %s: %w", cred.KeyID, err)
	}
	return nil
}

// Revoke deletes key keyID. A key that is already gone is success.
func (p *Provider) Revoke(ctx context.Context, c providers.Credential, keyID string) error {
	const op = Name + ".Revoke"
	o, err := parseOwner(op, c)
	if err != nil {
		return err
	}
	if !keySIDPattern.MatchString(keyID) {
		return providers.E(op, providers.Invalid, fmt.Errorf("%q is not a key SID (SK + 32 hex digits)", keyID))
	}
	auth, err := p.adminAuth(ctx, op, o, c)
	if err != nil {
		return err
	}
	return p.delete(ctx, o, auth, keyID)
}

func (p *Provider) delete(ctx context.Context, o owner, auth vendorhttp.Auth, keyID string) error {
	var err error
	if o.restricted {
		err = p.iam.Do(ctx, vendorhttp.Request{Op: "DeleteKey", Method: http.MethodDelete, Path: "/v1/Keys/" + keyID, Auth: auth}, nil)
	} else {
		err = p.api.Do(ctx, vendorhttp.Request{Op: "DeleteKey", Method: http.MethodDelete, Path: o.keyPath(keyID), Auth: auth}, nil)
	}
	if err != nil && !providers.IsKind(err, providers.NotFound) {
		return fmt.Errorf("delete key %s of account %s: %w", keyID, o.accountSID, err)
	}
	return nil
}

// ListKeys returns the account's keys whose friendly names start with
// namePrefix. Twilio cannot filter by name, so it reads every page.
func (p *Provider) ListKeys(ctx context.Context, c providers.Credential, namePrefix string) ([]providers.KeyInfo, error) {
	const op = Name + ".ListKeys"
	o, err := parseOwner(op, c)
	if err != nil {
		return nil, err
	}
	auth, err := p.adminAuth(ctx, op, o, c)
	if err != nil {
		return nil, err
	}
	client, path := p.api, o.keysPath()
	query := url.Values{"PageSize": {"1000"}}
	if o.restricted {
		client, path = p.iam, "/v1/Keys"
		query.Set("AccountSid", o.accountSID)
	}
	var keys []providers.KeyInfo
	for page := 0; ; page++ {
		var out struct {
			Keys        []key  `json:"keys"`
			NextPageURI string `json:"next_page_uri"` // 2010
			Meta        struct {
				NextPageURL string `json:"next_page_url"` // IAM v1
			} `json:"meta"`
		}
		if err := client.Do(ctx, vendorhttp.Request{Op: "ListKeys", Method: http.MethodGet, Path: path, Query: query, Auth: auth}, &out); err != nil {
			return nil, fmt.Errorf("list keys of account %s: %w", o.accountSID, err)
		}
		for _, k := range out.Keys {
			if strings.HasPrefix(k.FriendlyName, namePrefix) {
				keys = append(keys, providers.KeyInfo{ID: k.SID, Name: k.FriendlyName, CreatedAt: k.created()})
			}
		}
		next := out.NextPageURI + out.Meta.NextPageURL
		if next == "" || len(out.Keys) == 0 {
			return keys, nil
		}
		// Follow the next page on our own base URL: only its query is taken.
		u, err := url.Parse(next)
		if err != nil || page > 1000 {
			return nil, providers.E(client.Op("ListKeys"), providers.Other, fmt.Errorf("list keys of account %s: unusable next page link", o.accountSID))
		}
		query = u.Query()
	}
}

func (o owner) keysPath() string { return "/2010-04-01/Accounts/" + o.accountSID + "/Keys.json" }

func (o owner) keyPath(sid string) string {
	return "/2010-04-01/Accounts/" + o.accountSID + "/Keys/" + sid + ".json"
}
