// Package datadogfake serves the Datadog key management API (v2) and
// /api/v1/validate over HTTP, for tests: API keys, application keys of the
// current user and of service accounts, last use, the key limit reported in
// meta, answers shaped like Datadog's OpenAPI fragments in
// ../shared/provider-specs, errors shaped like its {"errors":[...]} and
// injected faults. The provider's tests and the integration tests of
// functions/datadog serve it on 127.0.0.1.
//
// Management calls need the admin API key (AdminAPI) and an application key
// (AdminApp, the admin user's); the current user is the application key's
// owner.
package datadogfake

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/providers/contracttest"
	"github.com/keyrotor/keyrotor/providers/vendorfake"
)

// Server is the fake Datadog. Hold Mu while reading or changing APIKeys,
// AppKeys or MaxKeys.
type Server struct {
	Mu       sync.Mutex
	AdminAPI string          // the admin API key
	AdminApp string          // the admin user's application key
	APIKeys  map[string]*Key // by id
	AppKeys  map[string]*Key // by id
	// MaxKeys is the limit reported in meta (0: 50 per kind) and enforced.
	MaxKeys int
	// Fault, when set (before serving), may answer a request itself (it
	// returns true), as vendorfake.Respond does. A fault's answer should
	// carry contracttest.FaultHeader, so that Validate checks its request
	// only.
	Fault func(w http.ResponseWriter, r *http.Request) bool
}

// Key is an API key or an application key.
type Key struct {
	ID, Name, Key, Owner string // Owner: user id or "sa:<id>" for application keys
	Created              time.Time
	LastUsed             *time.Time
	Category             string
	RemoteConfig         bool
	Scopes               []string // nil: unscoped
}

// AdminUser owns AdminApp.
const AdminUser = "user-admin"

// SpecFiles are the vendor's fragments in ../shared/provider-specs that
// Validate checks against.
var SpecFiles = []string{"datadog.yaml", "datadog-v1-validate.yaml"}

// New returns a fake with a random admin API key and application key, and
// no other keys.
func New() *Server {
	return &Server{AdminAPI: vendorfake.RandomHex(16), AdminApp: vendorfake.RandomHex(20), APIKeys: map[string]*Key{}, AppKeys: map[string]*Key{}}
}

// AddAPIKey creates an API key as a user would. The caller holds Mu.
func (f *Server) AddAPIKey(name string) *Key {
	k := &Key{ID: vendorfake.RandomHex(18), Name: name, Key: vendorfake.RandomHex(16), Created: time.Now().UTC()}
	f.APIKeys[k.ID] = k
	return k
}

func ddError(w http.ResponseWriter, status int, msg string) {
	vendorfake.WriteJSON(w, status, map[string]any{"errors": []string{msg}})
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00") }

func (k *Key) api(full bool) map[string]any {
	a := map[string]any{"name": k.Name, "last4": k.Key[len(k.Key)-4:], "created_at": stamp(k.Created), "modified_at": stamp(k.Created),
		"category": k.Category, "remote_config_read_enabled": k.RemoteConfig, "date_last_used": nil}
	if k.LastUsed != nil {
		a["date_last_used"] = stamp(*k.LastUsed)
	}
	if full {
		a["key"] = k.Key
	}
	return map[string]any{"id": k.ID, "type": "api_keys", "attributes": a}
}

func (k *Key) app(withKey bool) map[string]any {
	a := map[string]any{"name": k.Name, "last4": k.Key[len(k.Key)-4:], "created_at": stamp(k.Created), "scopes": k.Scopes, "last_used_at": nil}
	if k.LastUsed != nil {
		a["last_used_at"] = stamp(*k.LastUsed)
	}
	if withKey {
		a["key"] = k.Key
	}
	return map[string]any{"id": k.ID, "type": "application_keys", "attributes": a}
}

// caller authenticates a management call and returns the current user.
func (f *Server) caller(r *http.Request) (string, bool) {
	if r.Header.Get("DD-API-KEY") != f.AdminAPI && f.apiKeyByValue(r.Header.Get("DD-API-KEY")) == nil {
		return "", false
	}
	app := r.Header.Get("DD-APPLICATION-KEY")
	if app != "" && app == f.AdminApp {
		return AdminUser, true
	}
	for _, k := range f.AppKeys {
		if k.Key == app {
			now := time.Now().UTC()
			k.LastUsed = &now
			return k.Owner, true
		}
	}
	return "", false
}

func (f *Server) apiKeyByValue(v string) *Key {
	for _, k := range f.APIKeys {
		if v != "" && k.Key == v {
			return k
		}
	}
	return nil
}

// ServeHTTP serves the key management API and /api/v1/validate.
func (f *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.Fault != nil && f.Fault(w, r) {
		return
	}
	f.Mu.Lock()
	defer f.Mu.Unlock()
	if r.URL.Path == "/api/v1/validate" && r.Method == http.MethodGet {
		k := f.apiKeyByValue(r.Header.Get("DD-API-KEY"))
		if k == nil && r.Header.Get("DD-API-KEY") != f.AdminAPI {
			ddError(w, http.StatusForbidden, "Forbidden")
			return
		}
		if k != nil {
			now := time.Now().UTC()
			k.LastUsed = &now
		}
		vendorfake.WriteJSON(w, http.StatusOK, map[string]any{"valid": true})
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
		f.collection(w, r, f.APIKeys, "", false)
	case parts[0] == "api_keys" && len(parts) == 2:
		f.instance(w, r, f.APIKeys, "", parts[1], false)
	case parts[0] == "current_user" && len(parts) >= 2 && parts[1] == "application_keys":
		if len(parts) == 2 {
			f.collection(w, r, f.AppKeys, user, true)
		} else {
			f.instance(w, r, f.AppKeys, user, parts[2], true)
		}
	case parts[0] == "service_accounts" && len(parts) >= 3 && parts[2] == "application_keys":
		owner := "sa:" + parts[1]
		if len(parts) == 3 {
			f.collection(w, r, f.AppKeys, owner, true)
		} else {
			f.instance(w, r, f.AppKeys, owner, parts[3], true)
		}
	default:
		ddError(w, http.StatusNotFound, "Not found")
	}
}

func (f *Server) limit() int {
	if f.MaxKeys > 0 {
		return f.MaxKeys
	}
	return 50
}

func (f *Server) collection(w http.ResponseWriter, r *http.Request, keys map[string]*Key, owner string, app bool) {
	var mine []*Key
	for _, k := range keys {
		if k.Owner == owner {
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
		k := &Key{ID: vendorfake.RandomHex(18), Name: a.Name, Key: vendorfake.RandomHex(16), Owner: owner, Created: time.Now().UTC(), Category: a.Category, RemoteConfig: a.RemoteConfig}
		if app {
			k.Key = vendorfake.RandomHex(20)
			if a.Scopes != nil {
				k.Scopes = *a.Scopes
			}
			keys[k.ID] = k
			vendorfake.WriteJSON(w, http.StatusCreated, map[string]any{"data": k.app(true)})
			return
		}
		keys[k.ID] = k
		vendorfake.WriteJSON(w, http.StatusCreated, map[string]any{"data": k.api(true)})
	case http.MethodGet:
		q := r.URL.Query()
		var matched []*Key
		for _, k := range mine {
			if strings.Contains(k.Name, q.Get("filter")) {
				matched = append(matched, k)
			}
		}
		sort.Slice(matched, func(i, j int) bool { return matched[i].Name < matched[j].Name })
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
		vendorfake.WriteJSON(w, http.StatusOK, map[string]any{"data": data, "meta": meta})
	default:
		ddError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
	}
}

func (f *Server) instance(w http.ResponseWriter, r *http.Request, keys map[string]*Key, owner, id string, app bool) {
	k := keys[id]
	if k == nil || k.Owner != owner {
		ddError(w, http.StatusNotFound, "Not found")
		return
	}
	switch r.Method {
	case http.MethodGet:
		switch {
		case !app:
			vendorfake.WriteJSON(w, http.StatusOK, map[string]any{"data": k.api(true)})
		default:
			// One-Time-Read: an application key's secret is never shown again.
			vendorfake.WriteJSON(w, http.StatusOK, map[string]any{"data": k.app(false)})
		}
	case http.MethodDelete:
		delete(keys, id)
		w.WriteHeader(http.StatusNoContent)
	default:
		ddError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
	}
}

// KeyCount returns the number of API and application keys.
func (f *Server) KeyCount() int {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return len(f.APIKeys) + len(f.AppKeys)
}

// Validate fails t for every exchange that Datadog's fragments do not
// accept (/api/v1/validate against datadog-v1-validate.yaml, the rest
// against datadog.yaml); exchanges answered by a fault (contracttest.FaultHeader)
// have their request validated only. It fails t when a fragment is absent:
// look SpecFiles up first (contracttest.Lookup) to skip instead.
func Validate(t testing.TB, exchanges []contracttest.Exchange) {
	t.Helper()
	contracttest.Fragments{Files: SpecFiles, Route: func(path string) string {
		if strings.HasPrefix(path, "/api/v1/") {
			return SpecFiles[1]
		}
		return SpecFiles[0]
	}}.Validate(t, exchanges)
}
