package gateway

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ServerOptions configure the reference server.
type ServerOptions struct {
	// AdminToken authenticates the admin API (Authorization: Bearer).
	// Required. String, GoString and LogValue never show it.
	AdminToken string `json:"-"`
	// MaxKeys is the number of live keys the server holds at most; 0 means no limit.
	MaxKeys int
	// PropagationDelay is how long after its creation a key is still refused
	// by /v1/ping, like a vendor whose new keys take time to propagate.
	PropagationDelay time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// String describes o without its admin token.
func (o ServerOptions) String() string {
	return fmt.Sprintf("gateway.ServerOptions{admin_token=%s max_keys=%d propagation_delay=%s}", redacted(o.AdminToken), o.MaxKeys, o.PropagationDelay)
}

// GoString is String, so %#v does not print the admin token either.
func (o ServerOptions) GoString() string { return o.String() }

// LogValue lets slog log ServerOptions without the admin token.
func (o ServerOptions) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("max_keys", o.MaxKeys), slog.Duration("propagation_delay", o.PropagationDelay))
}

func redacted(s string) string {
	if s == "" {
		return "<none>"
	}
	return "<redacted>"
}

// ServerKey describes a live key of the reference server, without its value.
type ServerKey struct {
	ID          string
	Name        string
	Description string
	CreatedAt   time.Time
	LastUsedAt  time.Time // zero if never used
}

// CreatedKey is a key just minted: the only place its value appears.
// String, GoString and LogValue never show Key, and encoding/json leaves it
// out (the POST /v1/keys answer, which must carry it, has its own wire
// struct).
type CreatedKey struct {
	ServerKey
	Key string `json:"-"`
}

// String never shows the key.
func (k CreatedKey) String() string { return "gateway.CreatedKey{id=" + k.ID + " key=<redacted>}" }

// GoString is String.
func (k CreatedKey) GoString() string { return k.String() }

// LogValue lets slog log a CreatedKey without its key.
func (k CreatedKey) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", k.ID), slog.String("name", k.Name), slog.Time("created_at", k.CreatedAt))
}

// PingCounts counts the /v1/ping requests a server accepted and refused.
type PingCounts struct {
	Accepted int64
	Refused  int64
}

// ErrKeyLimit is returned by Server.CreateKey when MaxKeys keys are live.
var ErrKeyLimit = errors.New("key limit reached")

// Server is the in-memory reference gateway: an http.Handler serving the API
// in openapi.yaml. It keeps only a hash of each key and logs nothing. It is
// safe for concurrent use.
type Server struct {
	opts ServerOptions
	mux  *http.ServeMux

	mu      sync.Mutex
	keys    map[string]*storedKey // by id
	byValue map[[32]byte]string   // sha256(key) -> id

	accepted, refused atomic.Int64
}

// storedKey is a live key: its metadata and the hash of its value.
type storedKey struct {
	ServerKey
	hash [32]byte
}

// routes lists every operation the server serves; the OpenAPI document must
// describe each of them (see the tests).
var routes = []struct{ method, path string }{
	{http.MethodPost, "/v1/keys"},
	{http.MethodGet, "/v1/keys"},
	{http.MethodGet, "/v1/keys/{id}"},
	{http.MethodDelete, "/v1/keys/{id}"},
	{http.MethodGet, "/v1/ping"},
}

// NewServer returns a reference server with no keys. It panics if
// opts.AdminToken is empty, since the admin API would then be open.
func NewServer(opts ServerOptions) *Server {
	if opts.AdminToken == "" {
		panic("gateway: ServerOptions.AdminToken is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, mux: http.NewServeMux(), keys: map[string]*storedKey{}, byValue: map[[32]byte]string{}}
	handlers := map[string]http.HandlerFunc{
		"POST /v1/keys":        s.admin(s.handleCreate),
		"GET /v1/keys":         s.admin(s.handleList),
		"GET /v1/keys/{id}":    s.admin(s.handleGet),
		"DELETE /v1/keys/{id}": s.admin(s.handleDelete),
		"GET /v1/ping":         s.handlePing,
	}
	for _, r := range routes {
		s.mux.HandleFunc(r.method+" "+r.path, handlers[r.method+" "+r.path])
	}
	// The method-less patterns catch the other methods of a known path.
	for _, p := range []string{"/v1/keys", "/v1/keys/{id}", "/v1/ping"} {
		s.mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method "+r.Method+" is not allowed on this path")
		})
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	return s
}

// String describes s without its admin token or key hashes, which fmt
// would otherwise print from the unexported fields.
func (s *Server) String() string {
	s.mu.Lock()
	n := len(s.keys)
	s.mu.Unlock()
	return fmt.Sprintf("gateway.Server{live_keys=%d}", n)
}

// GoString is String.
func (s *Server) GoString() string { return s.String() }

// LogValue lets slog log a Server without its admin token.
func (s *Server) LogValue() slog.Value { return slog.StringValue(s.String()) }

// ServeHTTP serves the gateway API. Every response carries an X-Request-Id.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Request-Id", newRequestID())
	s.mux.ServeHTTP(w, r)
}

// CreateKey mints a key, as POST /v1/keys does. It returns ErrKeyLimit when
// MaxKeys keys are live.
func (s *Server) CreateKey(name, description string) (CreatedKey, error) {
	value := "gw_" + randomBase62(40)
	id := "key_" + randomBase62(20)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.MaxKeys > 0 && len(s.keys) >= s.opts.MaxKeys {
		return CreatedKey{}, ErrKeyLimit
	}
	k := &storedKey{
		ServerKey: ServerKey{ID: id, Name: name, Description: description, CreatedAt: s.opts.Now().UTC()},
		hash:      sha256.Sum256([]byte(value)),
	}
	s.keys[id] = k
	s.byValue[k.hash] = id
	return CreatedKey{ServerKey: k.ServerKey, Key: value}, nil
}

// RevokeKey deletes key id, as DELETE /v1/keys/{id} does. It reports whether
// the key existed.
func (s *Server) RevokeKey(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[id]
	if !ok {
		return false
	}
	delete(s.keys, id)
	delete(s.byValue, k.hash)
	return true
}

// LiveKeys returns the live keys, oldest first.
func (s *Server) LiveKeys() []ServerKey {
	return s.listKeys("")
}

// PingCounts returns how many /v1/ping requests were accepted and refused.
func (s *Server) PingCounts() PingCounts {
	return PingCounts{Accepted: s.accepted.Load(), Refused: s.refused.Load()}
}

func (s *Server) listKeys(prefix string) []ServerKey {
	s.mu.Lock()
	out := make([]ServerKey, 0, len(s.keys))
	for _, k := range s.keys {
		if strings.HasPrefix(k.Name, prefix) {
			out = append(out, k.ServerKey)
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// authorize returns the id of the live, propagated key that the request's
// bearer token is, and records its use.
func (s *Server) authorize(r *http.Request) (string, bool) {
	token, ok := bearer(r)
	if !ok {
		return "", false
	}
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.byValue[sha256.Sum256([]byte(token))]
	if !ok {
		return "", false
	}
	k := s.keys[id]
	if now.Before(k.CreatedAt.Add(s.opts.PropagationDelay)) {
		return "", false
	}
	k.LastUsedAt = now.UTC()
	return id, true
}

func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(s.opts.AdminToken)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gateway-admin"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "a valid admin token is required")
			return
		}
		h(w, r)
	}
}

const (
	maxBodyBytes       = 64 << 10
	maxNameLen         = 128
	maxDescriptionLen  = 256
	wireTimeFormat     = time.RFC3339Nano
	errInvalidRequest  = "invalid_request"
	errKeyLimitReached = "key_limit_reached"
)

// keyJSON is a key's metadata on the wire.
type keyJSON struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	Description string  `json:"description,omitempty"`
	CreatedAt   string  `json:"created_at"`
	LastUsedAt  *string `json:"last_used_at"`
}

func toJSON(k ServerKey) keyJSON {
	out := keyJSON{ID: k.ID, Name: k.Name, Description: k.Description, CreatedAt: k.CreatedAt.Format(wireTimeFormat)}
	if !k.LastUsedAt.IsZero() {
		t := k.LastUsedAt.Format(wireTimeFormat)
		out.LastUsedAt = &t
	}
	return out
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name        *string `json:"name"`
		Description string  `json:"description"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.More() {
		writeError(w, http.StatusBadRequest, errInvalidRequest, "the body must be one JSON object with a name and an optional description")
		return
	}
	switch {
	case req.Name == nil || strings.TrimSpace(*req.Name) == "":
		writeError(w, http.StatusBadRequest, errInvalidRequest, "name is required")
		return
	case len(*req.Name) > maxNameLen:
		writeError(w, http.StatusBadRequest, errInvalidRequest, fmt.Sprintf("name is longer than %d bytes", maxNameLen))
		return
	case len(req.Description) > maxDescriptionLen:
		writeError(w, http.StatusBadRequest, errInvalidRequest, fmt.Sprintf("description is longer than %d bytes", maxDescriptionLen))
		return
	}
	k, err := s.CreateKey(*req.Name, req.Description)
	if errors.Is(err, ErrKeyLimit) {
		writeError(w, http.StatusConflict, errKeyLimitReached, fmt.Sprintf("the gateway holds at most %d keys", s.opts.MaxKeys))
		return
	}
	writeJSON(w, http.StatusCreated, struct {
		ID        string `json:"id"`
		Name      string `json:"name"`
		Key       string `json:"key"`
		CreatedAt string `json:"created_at"`
	}{k.ID, k.Name, k.Key, k.CreatedAt.Format(wireTimeFormat)})
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	keys := s.listKeys(r.URL.Query().Get("name_prefix"))
	out := struct {
		Keys []keyJSON `json:"keys"`
	}{Keys: make([]keyJSON, 0, len(keys))}
	for _, k := range keys {
		out.Keys = append(out.Keys, toJSON(k))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	k, ok := s.keys[r.PathValue("id")]
	var v ServerKey
	if ok {
		v = k.ServerKey
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "no such key")
		return
	}
	writeJSON(w, http.StatusOK, toJSON(v))
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	if !s.RevokeKey(r.PathValue("id")) {
		writeError(w, http.StatusNotFound, "not_found", "no such key")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handlePing(w http.ResponseWriter, r *http.Request) {
	id, ok := s.authorize(r)
	if !ok {
		s.refused.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="gateway"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", "a live key is required")
		return
	}
	s.accepted.Add(1)
	writeJSON(w, http.StatusOK, struct {
		OK    bool   `json:"ok"`
		KeyID string `json:"key_id"`
	}{true, id})
}

func bearer(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}{code, message})
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomBase62 returns n characters drawn uniformly from crypto/rand.
func randomBase62(n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2)
	for len(out) < n {
		_, _ = rand.Read(buf) // never fails (crypto/rand's contract since Go 1.24)
		for _, b := range buf {
			// 248 = 4*62: rejecting larger bytes keeps the draw uniform.
			if b < 248 && len(out) < n {
				out = append(out, base62[b%62])
			}
		}
	}
	return string(out)
}
