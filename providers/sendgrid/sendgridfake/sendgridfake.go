// Package sendgridfake is an in-memory SendGrid v3 API keys API over HTTP,
// for tests: answers shaped like sendgrid.yaml of ../shared/provider-specs,
// a key limit, injected faults and a request count. The provider's unit
// tests and the integration tests of functions/sendgrid serve it on
// 127.0.0.1.
//
// A key with the api_keys.* scopes manages keys; any live key reads its own
// scopes. AdminKey is such a key, present from the start.
package sendgridfake

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/keyrotor/keyrotor/providers/vendorfake"
)

// AdminKey is the management key every new Server holds.
const AdminKey = "SG.admin.admin-secret-value"

// MaxKeys is SendGrid's limit of API keys per user, the default Limit.
const MaxKeys = 100

// SpecFiles are the vendor's fragments in ../shared/provider-specs that
// Validate checks against.
var SpecFiles = []string{"sendgrid.yaml"}

// AdminScopes are AdminKey's scopes.
var AdminScopes = []string{"api_keys.create", "api_keys.read", "api_keys.update", "api_keys.delete", "mail.send"}

// Server is the fake SendGrid. Hold Mu while reading or changing Keys or
// Limit, or calling Add. Faults (Inject, Release) answer requests instead
// of the fake; Count counts the requests.
type Server struct {
	vendorfake.Faults
	Mu    sync.Mutex
	Keys  map[string]*Key // by key value
	Limit int             // keys per user (MaxKeys)
	order []string        // key values in creation order
	n     int
}

// Key is one API key.
type Key struct {
	ID, Value, Name string
	Scopes          []string
}

// Fault answers the next request matching Method and the Path prefix
// instead of the fake: with Status, Header and Body, or, with Hang, never
// (until the request is cancelled or Release is called).
type Fault = vendorfake.Fault

// New returns a fake holding AdminKey.
func New() *Server {
	f := &Server{Keys: map[string]*Key{}, Limit: MaxKeys}
	f.Add("admin", AdminScopes, AdminKey)
	return f
}

// Add creates a key (a random value when value is ""). The caller holds Mu.
func (f *Server) Add(name string, scopes []string, value string) *Key {
	f.n++
	id := "kid" + hex.EncodeToString([]byte{byte(f.n >> 8), byte(f.n)}) + vendorfake.RandomHex(4)
	if value == "" {
		value = "SG." + id + "." + vendorfake.RandomHex(16)
	}
	k := &Key{ID: id, Value: value, Name: name, Scopes: append([]string(nil), scopes...)}
	f.Keys[value] = k
	f.order = append(f.order, value)
	return k
}

func (f *Server) byID(id string) *Key {
	for _, v := range f.order {
		if k := f.Keys[v]; k != nil && k.ID == id {
			return k
		}
	}
	return nil
}

// writeJSON answers v with SendGrid's request id header.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("X-Request-Id", "sg-"+vendorfake.RandomHex(4))
	vendorfake.WriteJSON(w, status, v)
}

func sgError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"errors": []map[string]any{{"message": msg}}})
}

// ServeHTTP serves the API keys API.
func (f *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.Faults.Answer(w, r) {
		return
	}
	f.Mu.Lock()
	defer f.Mu.Unlock()

	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	caller := f.Keys[token]
	if !ok || caller == nil {
		sgError(w, http.StatusUnauthorized, "authorization required")
		return
	}
	can := func(scope string) bool {
		for _, s := range caller.Scopes {
			if s == scope {
				return true
			}
		}
		return false
	}
	switch path := r.URL.Path; {
	case r.Method == http.MethodGet && path == "/v3/scopes":
		writeJSON(w, http.StatusOK, map[string]any{"scopes": caller.Scopes})
	case path == "/v3/api_keys" && r.Method == http.MethodPost:
		if !can("api_keys.create") {
			sgError(w, http.StatusForbidden, "access forbidden")
			return
		}
		var body struct {
			Name   string    `json:"name"`
			Scopes *[]string `json:"scopes"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Name == "" {
			sgError(w, http.StatusBadRequest, "missing required argument")
			return
		}
		if len(f.Keys) >= f.Limit {
			sgError(w, http.StatusForbidden, "Cannot create more than 100 API Keys")
			return
		}
		scopes := caller.Scopes // omitted scopes: Full Access
		if body.Scopes != nil {
			scopes = *body.Scopes
		}
		k := f.Add(body.Name, scopes, "")
		writeJSON(w, http.StatusCreated, map[string]any{"api_key": k.Value, "api_key_id": k.ID, "name": k.Name, "scopes": k.Scopes})
	case path == "/v3/api_keys" && r.Method == http.MethodGet:
		if !can("api_keys.read") {
			sgError(w, http.StatusForbidden, "access forbidden")
			return
		}
		res := []map[string]string{}
		for _, v := range f.order {
			if k := f.Keys[v]; k != nil {
				res = append(res, map[string]string{"api_key_id": k.ID, "name": k.Name})
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"result": res})
	case strings.HasPrefix(path, "/v3/api_keys/"):
		k := f.byID(strings.TrimPrefix(path, "/v3/api_keys/"))
		need := map[string]string{http.MethodGet: "api_keys.read", http.MethodDelete: "api_keys.delete"}[r.Method]
		switch {
		case need == "":
			sgError(w, http.StatusMethodNotAllowed, "method not allowed")
		case !can(need):
			sgError(w, http.StatusForbidden, "access forbidden")
		case k == nil:
			sgError(w, http.StatusNotFound, "unable to find API Key")
		case r.Method == http.MethodGet:
			writeJSON(w, http.StatusOK, map[string]any{"result": []map[string]any{{"api_key_id": k.ID, "name": k.Name, "scopes": k.Scopes}}})
		default:
			delete(f.Keys, k.Value)
			w.WriteHeader(http.StatusNoContent)
		}
	default:
		sgError(w, http.StatusNotFound, "not found")
	}
}
