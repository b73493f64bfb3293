// Package cloudflarefake is an in-memory Cloudflare API token API under
// /client/v4 over HTTP, for tests: user tokens and account-owned tokens,
// answers shaped like cloudflare.yaml of ../shared/provider-specs, quotas,
// injected faults and a request count. The provider's unit tests and the
// integration tests of functions/cloudflare serve it on 127.0.0.1.
//
// A token whose policies grant the permission group WriteTokens manages
// tokens; any active token verifies itself at its own scope's verify path.
// AdminValue is such a user token, present from the start.
package cloudflarefake

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/providers/contracttest"
	"github.com/keyrotor/keyrotor/providers/vendorfake"
)

// Server is the fake Cloudflare. Hold Mu while reading or changing Tokens
// or Limits, or calling Add or ScopeCount. Faults (Inject, Release) answer
// requests instead of the fake; Count counts the requests (its path with
// /client/v4).
type Server struct {
	vendorfake.Faults
	Mu      sync.Mutex
	Tokens  map[string]*Token // by id
	Limits  map[string]int    // by scope ("" = user, else account id)
	byValue map[string]*Token
	n       int
}

// Token is one API token; Account is "" for a user token.
type Token struct {
	ID, Value, Name, Status, Account string
	Policies                         []map[string]any
	Condition                        map[string]any
	ExpiresOn, NotBefore, IssuedOn   string
}

// Fault answers the next request matching Method and the Path prefix
// (after /client/v4) instead of the fake: with Status, Header and Body, or,
// with Hang, never (until the request is cancelled or Release is called).
type Fault = vendorfake.Fault

// Permission groups, accounts and the management token.
const (
	WriteTokens = "686d18d5ac6c441c867cbf6771e58a0a" // "API Tokens Write"
	ZoneRead    = "c8fed203ed3043cba015a93ad1616f1f" // "Zone Read"
	AdminValue  = "cf-admin-token-value-0123456789abcdefghijklmnop"
	Account     = "023e105f4ecef8ad9ca31a8372d0c353" // the account New knows
)

// Cloudflare's token quotas, the default Limits.
const (
	MaxUserTokens    = 50
	MaxAccountTokens = 500
)

// SpecFiles are the vendor's fragments in ../shared/provider-specs that
// Validate checks against.
var SpecFiles = []string{"cloudflare.yaml"}

// New returns a fake holding the user token AdminValue, which may manage
// tokens, and knowing Account.
func New() *Server {
	f := &Server{Tokens: map[string]*Token{}, byValue: map[string]*Token{},
		Limits: map[string]int{"": MaxUserTokens, Account: MaxAccountTokens}}
	f.Faults.Prefix = "/client/v4"
	f.Add("", "admin", []map[string]any{Policy(WriteTokens)}, AdminValue)
	return f
}

// Policy is an allow policy on one zone granting the permission group, as
// create accepts it.
func Policy(group string) map[string]any {
	return map[string]any{"effect": "allow", "resources": map[string]any{"com.cloudflare.api.account.zone.eb78d65290b24279ba6f44721b3ea3c4": "*"},
		"permission_groups": []any{map[string]any{"id": group}}}
}

// Add creates a token of account acct ("" for a user token), a random value
// when value is "". The caller holds Mu.
func (f *Server) Add(acct, name string, policies []map[string]any, value string) *Token {
	f.n++
	if value == "" {
		value = vendorfake.RandomHex(20) // 40 characters, as the spec's iam_value wants
	}
	t := &Token{ID: vendorfake.RandomHex(16), Value: value, Name: name, Status: "active", Account: acct, Policies: policies,
		IssuedOn: time.Date(2026, 11, 25, 17, 0, f.n, 0, time.UTC).Format(time.RFC3339)}
	f.Tokens[t.ID] = t
	f.byValue[value] = t
	return t
}

// ScopeCount returns the number of tokens of account acct ("" for user
// tokens). The caller holds Mu.
func (f *Server) ScopeCount(acct string) int {
	n := 0
	for _, t := range f.Tokens {
		if t.Account == acct {
			n++
		}
	}
	return n
}

func (t *Token) view() map[string]any {
	pols := make([]any, len(t.Policies))
	for i, p := range t.Policies {
		groups := []any{}
		for _, g := range p["permission_groups"].([]any) {
			groups = append(groups, map[string]any{"id": g.(map[string]any)["id"], "name": "Group", "meta": map[string]any{"label": "x", "scopes": "com.cloudflare.api.account"}})
		}
		// As Cloudflare answers: policies carry a read-only id, groups their names.
		pols[i] = map[string]any{"id": "pol" + strconv.Itoa(i) + t.ID[:8], "effect": p["effect"], "resources": p["resources"], "permission_groups": groups}
	}
	v := map[string]any{"id": t.ID, "name": t.Name, "status": t.Status, "policies": pols, "issued_on": t.IssuedOn, "modified_on": t.IssuedOn}
	if t.Condition != nil {
		v["condition"] = t.Condition
	}
	if t.ExpiresOn != "" {
		v["expires_on"] = t.ExpiresOn
	}
	if t.NotBefore != "" {
		v["not_before"] = t.NotBefore
	}
	return v
}

func ok(w http.ResponseWriter, status int, result any, info map[string]any) {
	body := map[string]any{"success": true, "errors": []any{}, "messages": []any{}, "result": result}
	if info != nil {
		body["result_info"] = info
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cf-Ray", vendorfake.RandomHex(8)+"-AMS")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func cfError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cf-Ray", vendorfake.RandomHex(8)+"-AMS")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"success": false, "errors": []any{map[string]any{"code": code, "message": msg}}, "messages": []any{}, "result": nil})
}

var scopeRE = regexp.MustCompile(`^/client/v4(?:/user|/accounts/([^/]+))/tokens(?:/([^/]+))?(/value)?$`)

// ServeHTTP serves the token API.
func (f *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.Faults.Answer(w, r) {
		return
	}
	f.Mu.Lock()
	defer f.Mu.Unlock()

	m := scopeRE.FindStringSubmatch(r.URL.Path)
	if m == nil {
		cfError(w, http.StatusNotFound, 7003, "No route for the URI")
		return
	}
	acct, id, roll := m[1], m[2], m[3] != ""
	value, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	caller := f.byValue[value]
	if caller == nil || caller.Status != "active" {
		cfError(w, http.StatusUnauthorized, 1000, "Invalid API Token")
		return
	}
	if id == "verify" && r.Method == http.MethodGet {
		if caller.Account != acct { // account tokens verify at their account's path only
			cfError(w, http.StatusUnauthorized, 1000, "Invalid API Token")
			return
		}
		res := map[string]any{"id": caller.ID, "status": caller.Status}
		if caller.ExpiresOn != "" {
			res["expires_on"] = caller.ExpiresOn
		}
		ok(w, http.StatusOK, res, nil)
		return
	}
	canManage := false
	for _, p := range caller.Policies {
		for _, g := range p["permission_groups"].([]any) {
			canManage = canManage || g.(map[string]any)["id"] == WriteTokens
		}
	}
	if !canManage {
		cfError(w, http.StatusForbidden, 9109, "Unauthorized to access requested resource")
		return
	}
	switch {
	case roll:
		t := f.Tokens[id]
		if t == nil || t.Account != acct {
			cfError(w, http.StatusNotFound, 1003, "Token not found")
			return
		}
		delete(f.byValue, t.Value)
		t.Value = vendorfake.RandomHex(20)
		f.byValue[t.Value] = t
		ok(w, http.StatusOK, t.Value, nil)
	case id == "" && r.Method == http.MethodGet:
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
		if page < 1 {
			page = 1
		}
		if per < 5 || per > 50 {
			per = 20
		}
		var all []*Token
		for _, t := range f.Tokens {
			if t.Account == acct {
				all = append(all, t)
			}
		}
		sortTokens(all)
		res := []any{}
		for i := (page - 1) * per; i < len(all) && i < page*per; i++ {
			res = append(res, all[i].view())
		}
		ok(w, http.StatusOK, res, map[string]any{"page": page, "per_page": per, "count": len(res), "total_count": len(all)})
	case id == "" && r.Method == http.MethodPost:
		var body struct {
			Name      string           `json:"name"`
			Policies  []map[string]any `json:"policies"`
			Condition map[string]any   `json:"condition"`
			ExpiresOn string           `json:"expires_on"`
			NotBefore string           `json:"not_before"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Name == "" || len(body.Name) > 120 || len(body.Policies) == 0 {
			cfError(w, http.StatusBadRequest, 1001, "Invalid request body")
			return
		}
		for _, p := range body.Policies {
			if _, has := p["id"]; has {
				cfError(w, http.StatusBadRequest, 1001, "policy id is read-only")
				return
			}
		}
		if f.ScopeCount(acct) >= f.Limits[acct] {
			cfError(w, http.StatusBadRequest, 1001, "Maximum number of tokens reached")
			return
		}
		t := f.Add(acct, body.Name, body.Policies, "")
		t.Condition, t.ExpiresOn, t.NotBefore = body.Condition, body.ExpiresOn, body.NotBefore
		v := t.view()
		v["value"] = t.Value
		ok(w, http.StatusOK, v, nil)
	case r.Method == http.MethodGet || r.Method == http.MethodDelete:
		t := f.Tokens[id]
		if t == nil || t.Account != acct {
			cfError(w, http.StatusNotFound, 1003, "Token not found")
			return
		}
		if r.Method == http.MethodGet {
			ok(w, http.StatusOK, t.view(), nil)
			return
		}
		delete(f.Tokens, id)
		delete(f.byValue, t.Value)
		ok(w, http.StatusOK, map[string]any{"id": id}, nil)
	default:
		cfError(w, http.StatusMethodNotAllowed, 7001, "Method not allowed")
	}
}

func sortTokens(ts []*Token) {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j].IssuedOn+ts[j].ID < ts[j-1].IssuedOn+ts[j-1].ID; j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

// contractOptions adapt validation to cloudflare.yaml's known defects.
var contractOptions = &contracttest.Options{
	// Account-owned tokens have the user tokens' shape (provider-specs
	// README); this fragment version lacks their paths.
	MapPath: func(p string) string {
		if rest, ok := strings.CutPrefix(p, "/client/v4/accounts/"); ok {
			if _, tail, ok := strings.Cut(rest, "/tokens"); ok {
				return "/client/v4/user/tokens" + tail
			}
		}
		return p
	},
	// permission_groups[].id is marked readOnly, yet create needs it.
	AllowReadOnlyInRequests: true,
	// The 4XX schemas require success to be both true and false.
	ErrorSchema: "iam_api-response-common-failure",
}

// Validate fails t for every exchange that cloudflare.yaml does not
// accept, allowing for the fragment's known defects, and for any roll of a
// token (the provider copies, never rolls); it also fails t when the
// fragment is absent: look SpecFiles up first (contracttest.Lookup) to skip
// instead.
func Validate(t testing.TB, exchanges []contracttest.Exchange) {
	t.Helper()
	NoRolls(t, exchanges)
	contracttest.Fragments{Files: SpecFiles, Options: contractOptions}.Validate(t, exchanges)
}

// NoRolls fails t for every exchange that rolled a token.
func NoRolls(t testing.TB, exchanges []contracttest.Exchange) {
	t.Helper()
	for _, ex := range exchanges {
		if strings.HasSuffix(ex.URL.Path, "/value") {
			t.Errorf("a token was rolled: %s", ex)
		}
	}
}
