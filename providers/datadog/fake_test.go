package datadog_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
	"github.com/keyrotor/keyrotor/providers/contracttest"
	"github.com/keyrotor/keyrotor/providers/datadog"
)

// fakeDatadog serves the Datadog key management API (v2) and
// /api/v1/validate with bodies shaped like Datadog's OpenAPI schemas and
// errors shaped like its {"errors":[...]}. Management calls need the admin
// API key and an application key; the current user is the application
// key's owner.
type fakeDatadog struct {
	mu       sync.Mutex
	adminAPI string
	adminApp string
	apiKeys  map[string]*fakeKey
	appKeys  map[string]*fakeKey
	// maxKeys is the limit reported in meta (0: 50 per kind) and enforced.
	maxKeys int
	fault   func(w http.ResponseWriter, r *http.Request) bool

	srv *httptest.Server
	rec *contracttest.Recorder
}

type fakeKey struct {
	id, name, key, owner string // owner: user id or "sa:<id>" for application keys
	created              time.Time
	lastUsed             *time.Time
	category             string
	remoteConfig         bool
	scopes               []string // nil: unscoped
}

const adminUser = "user-admin"

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func startFake(t *testing.T) *fakeDatadog {
	t.Helper()
	f := &fakeDatadog{adminAPI: randomHex(16), adminApp: randomHex(20), apiKeys: map[string]*fakeKey{}, appKeys: map[string]*fakeKey{}}
	f.rec = contracttest.NewRecorder(http.HandlerFunc(f.serve))
	f.srv = httptest.NewServer(f.rec)
	t.Cleanup(f.srv.Close)
	return f
}

func ddError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"errors": []string{msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00") }

func (k *fakeKey) api(full bool) map[string]any {
	a := map[string]any{"name": k.name, "last4": k.key[len(k.key)-4:], "created_at": stamp(k.created), "modified_at": stamp(k.created),
		"category": k.category, "remote_config_read_enabled": k.remoteConfig, "date_last_used": nil}
	if k.lastUsed != nil {
		a["date_last_used"] = stamp(*k.lastUsed)
	}
	if full {
		a["key"] = k.key
	}
	return map[string]any{"id": k.id, "type": "api_keys", "attributes": a}
}

func (k *fakeKey) app(withKey bool) map[string]any {
	a := map[string]any{"name": k.name, "last4": k.key[len(k.key)-4:], "created_at": stamp(k.created), "scopes": k.scopes, "last_used_at": nil}
	if k.lastUsed != nil {
		a["last_used_at"] = stamp(*k.lastUsed)
	}
	if withKey {
		a["key"] = k.key
	}
	return map[string]any{"id": k.id, "type": "application_keys", "attributes": a}
}

// caller authenticates a management call and returns the current user.
func (f *fakeDatadog) caller(r *http.Request) (string, bool) {
	if r.Header.Get("DD-API-KEY") != f.adminAPI && f.apiKeyByValue(r.Header.Get("DD-API-KEY")) == nil {
		return "", false
	}
	app := r.Header.Get("DD-APPLICATION-KEY")
	if app != "" && app == f.adminApp {
		return adminUser, true
	}
	for _, k := range f.appKeys {
		if k.key == app {
			now := time.Now().UTC()
			k.lastUsed = &now
			return k.owner, true
		}
	}
	return "", false
}

func (f *fakeDatadog) apiKeyByValue(v string) *fakeKey {
	for _, k := range f.apiKeys {
		if v != "" && k.key == v {
			return k
		}
	}
	return nil
}

func (f *fakeDatadog) serve(w http.ResponseWriter, r *http.Request) {
	if f.fault != nil && f.fault(w, r) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path == "/api/v1/validate" && r.Method == http.MethodGet {
		k := f.apiKeyByValue(r.Header.Get("DD-API-KEY"))
		if k == nil && r.Header.Get("DD-API-KEY") != f.adminAPI {
			ddError(w, http.StatusForbidden, "Forbidden")
			return
		}
		if k != nil {
			now := time.Now().UTC()
			k.lastUsed = &now
		}
		writeJSON(w, http.StatusOK, map[string]any{"valid": true})
		return
	}
	user, ok := f.caller(r)
	if !ok {
		ddError(w, http.StatusForbidden, "Forbidden")
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/api/v2/"), "/")
	switch {
	case parts[0] == "api_keys" && len(parts) == 1:
		f.collection(w, r, f.apiKeys, "", false)
	case parts[0] == "api_keys" && len(parts) == 2:
		f.instance(w, r, f.apiKeys, "", parts[1], false)
	case parts[0] == "current_user" && len(parts) >= 2 && parts[1] == "application_keys":
		if len(parts) == 2 {
			f.collection(w, r, f.appKeys, user, true)
		} else {
			f.instance(w, r, f.appKeys, user, parts[2], true)
		}
	case parts[0] == "service_accounts" && len(parts) >= 3 && parts[2] == "application_keys":
		owner := "sa:" + parts[1]
		if len(parts) == 3 {
			f.collection(w, r, f.appKeys, owner, true)
		} else {
			f.instance(w, r, f.appKeys, owner, parts[3], true)
		}
	default:
		ddError(w, http.StatusNotFound, "Not found")
	}
}

func (f *fakeDatadog) limit() int {
	if f.maxKeys > 0 {
		return f.maxKeys
	}
	return 50
}

func (f *fakeDatadog) collection(w http.ResponseWriter, r *http.Request, keys map[string]*fakeKey, owner string, app bool) {
	var mine []*fakeKey
	for _, k := range keys {
		if k.owner == owner {
			mine = append(mine, k)
		}
	}
	switch r.Method {
	case http.MethodPost:
		if len(mine) >= f.limit() {
			ddError(w, http.StatusBadRequest, "Key limit reached")
			return
		}
		var body struct {
			Data struct {
				Type       string `json:"type"`
				Attributes struct {
					Name         string    `json:"name"`
					Category     string    `json:"category"`
					RemoteConfig bool      `json:"remote_config_read_enabled"`
					Scopes       *[]string `json:"scopes"`
				} `json:"attributes"`
			} `json:"data"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Data.Attributes.Name == "" {
			ddError(w, http.StatusBadRequest, "Bad Request")
			return
		}
		a := body.Data.Attributes
		k := &fakeKey{id: randomHex(18), name: a.Name, key: randomHex(16), owner: owner, created: time.Now().UTC(), category: a.Category, remoteConfig: a.RemoteConfig}
		if app {
			k.key = randomHex(20)
			if a.Scopes != nil {
				k.scopes = *a.Scopes
			}
			keys[k.id] = k
			writeJSON(w, http.StatusCreated, map[string]any{"data": k.app(true)})
			return
		}
		keys[k.id] = k
		writeJSON(w, http.StatusCreated, map[string]any{"data": k.api(true)})
	case http.MethodGet:
		q := r.URL.Query()
		var matched []*fakeKey
		for _, k := range mine {
			if strings.Contains(k.name, q.Get("filter")) {
				matched = append(matched, k)
			}
		}
		sort.Slice(matched, func(i, j int) bool { return matched[i].name < matched[j].name })
		size, page := 10, 0
		if v, err := strconv.Atoi(q.Get("page[size]")); err == nil && v > 0 {
			size = min(v, 100)
		}
		if v, err := strconv.Atoi(q.Get("page[number]")); err == nil {
			page = v
		}
		data := []map[string]any{}
		for i := page * size; i < len(matched) && i < (page+1)*size; i++ {
			if app {
				data = append(data, matched[i].app(false))
			} else {
				data = append(data, matched[i].api(false))
			}
		}
		meta := map[string]any{"page": map[string]any{"total_filtered_count": len(matched)}}
		if app {
			meta["max_allowed_per_user"] = f.limit()
		} else {
			meta["max_allowed"] = f.limit()
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": data, "meta": meta})
	default:
		ddError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
	}
}

func (f *fakeDatadog) instance(w http.ResponseWriter, r *http.Request, keys map[string]*fakeKey, owner, id string, app bool) {
	k := keys[id]
	if k == nil || k.owner != owner {
		ddError(w, http.StatusNotFound, "Not found")
		return
	}
	switch r.Method {
	case http.MethodGet:
		switch {
		case !app:
			writeJSON(w, http.StatusOK, map[string]any{"data": k.api(true)})
		default:
			// One-Time-Read: an application key's secret is never shown again.
			writeJSON(w, http.StatusOK, map[string]any{"data": k.app(false)})
		}
	case http.MethodDelete:
		delete(keys, id)
		w.WriteHeader(http.StatusNoContent)
	default:
		ddError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
	}
}

func (f *fakeDatadog) keyCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.apiKeys) + len(f.appKeys)
}

// adminReader is a fixed management credential per admin secret id.
type adminReader map[string]adminsecret.Credential

func (a adminReader) Read(_ context.Context, op string, owner providers.Credential) (adminsecret.Credential, error) {
	id, err := owner.RequireAttr(op, providers.FieldAdminSecretID)
	if err != nil {
		return adminsecret.Credential{}, err
	}
	c, ok := a[id]
	if !ok {
		return adminsecret.Credential{}, providers.E(op, providers.Invalid, fmt.Errorf("admin secret %s does not exist", id))
	}
	return c, nil
}

// setup returns a provider talking to f and a secret value without a key
// for the given key kind (and service account, for application keys).
func (f *fakeDatadog) setup(t *testing.T, attrs map[string]any, opts func(*datadog.Config)) (*datadog.Provider, providers.Credential) {
	t.Helper()
	cfg := datadog.Config{BaseURL: f.srv.URL, Admin: adminReader{"datadog/admin": {Key: f.adminAPI, KeyID: f.adminApp}}}
	cfg.HTTP.Sleep = func(context.Context, time.Duration) error { return nil }
	if opts != nil {
		opts(&cfg)
	}
	p, err := datadog.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v := map[string]any{"provider": "datadog", "site": "datadoghq.eu", "admin_secret_id": "datadog/admin"}
	for k, a := range attrs {
		v[k] = a
	}
	b, _ := json.Marshal(v)
	owner, err := providers.ParseSecret(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return p, owner
}

// checkContract validates every exchange recorded so far against Datadog's
// specs; exchanges answered by a fault have their request validated only.
func (f *fakeDatadog) checkContract(t *testing.T) {
	t.Helper()
	t.Run("Contract", func(t *testing.T) {
		bySpec := map[string][]contracttest.Exchange{}
		for _, ex := range f.rec.Exchanges() {
			if ex.RespHeader.Get("X-Fault") != "" {
				ex.Status = 0
			}
			spec := "datadog.yaml"
			if strings.HasPrefix(ex.URL.Path, "/api/v1/") {
				spec = "datadog-v1-validate.yaml"
			}
			bySpec[spec] = append(bySpec[spec], ex)
		}
		for spec, exs := range bySpec {
			contracttest.Validate(t, contracttest.Spec(t, spec), exs, nil)
		}
	})
}
