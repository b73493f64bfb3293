package cloudflare

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
	"github.com/keyrotor/keyrotor/providers/contracttest"
)

// fakeCloudflare is an in-memory Cloudflare API token API under
// /client/v4, for user tokens and account-owned tokens, with answers shaped
// like cloudflare.yaml. A token whose policies grant the permission group
// writeTokens manages tokens; any active token verifies itself at its own
// scope's verify path.
type fakeCloudflare struct {
	mu      sync.Mutex
	tokens  map[string]*fakeToken // by id
	byValue map[string]*fakeToken
	n       int
	limits  map[string]int // by scope ("" = user, else account id)
	faults  []fault
	calls   map[string]int
	release chan struct{}
}

type fakeToken struct {
	id, value, name, status, account string
	policies                         []map[string]any
	condition                        map[string]any
	expiresOn, notBefore, issuedOn   string
}

type fault struct {
	method, path string // path prefix after /client/v4
	status       int
	header       map[string]string
	body         string
	hang         bool
}

const (
	writeTokens = "686d18d5ac6c441c867cbf6771e58a0a" // "API Tokens Write"
	zoneRead    = "c8fed203ed3043cba015a93ad1616f1f"
	adminValue  = "cf-admin-token-value-0123456789abcdefghijklmnop"
	account     = "023e105f4ecef8ad9ca31a8372d0c353"
)

func newFakeCloudflare() *fakeCloudflare {
	f := &fakeCloudflare{tokens: map[string]*fakeToken{}, byValue: map[string]*fakeToken{}, calls: map[string]int{},
		limits: map[string]int{"": MaxUserTokens, account: MaxAccountTokens}, release: make(chan struct{})}
	f.add("", "admin", []map[string]any{policyJSON(writeTokens)}, adminValue)
	return f
}

func policyJSON(group string) map[string]any {
	return map[string]any{"effect": "allow", "resources": map[string]any{"com.cloudflare.api.account.zone.eb78d65290b24279ba6f44721b3ea3c4": "*"},
		"permission_groups": []any{map[string]any{"id": group}}}
}

func rnd(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (f *fakeCloudflare) add(acct, name string, policies []map[string]any, value string) *fakeToken {
	f.n++
	if value == "" {
		value = rnd(20) // 40 characters, as the spec's iam_value wants
	}
	t := &fakeToken{id: rnd(16), value: value, name: name, status: "active", account: acct, policies: policies,
		issuedOn: time.Date(2026, 11, 25, 17, 0, f.n, 0, time.UTC).Format(time.RFC3339)}
	f.tokens[t.id] = t
	f.byValue[value] = t
	return t
}

func (f *fakeCloudflare) inject(fs ...fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, fs...)
}

func (f *fakeCloudflare) count(method, path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method+" "+path]
}

func (f *fakeCloudflare) scopeCount(acct string) int {
	n := 0
	for _, t := range f.tokens {
		if t.account == acct {
			n++
		}
	}
	return n
}

func (t *fakeToken) view() map[string]any {
	pols := make([]any, len(t.policies))
	for i, p := range t.policies {
		groups := []any{}
		for _, g := range p["permission_groups"].([]any) {
			groups = append(groups, map[string]any{"id": g.(map[string]any)["id"], "name": "Group", "meta": map[string]any{"label": "x", "scopes": "com.cloudflare.api.account"}})
		}
		// As Cloudflare answers: policies carry a read-only id, groups their names.
		pols[i] = map[string]any{"id": "pol" + strconv.Itoa(i) + t.id[:8], "effect": p["effect"], "resources": p["resources"], "permission_groups": groups}
	}
	v := map[string]any{"id": t.id, "name": t.name, "status": t.status, "policies": pols, "issued_on": t.issuedOn, "modified_on": t.issuedOn}
	if t.condition != nil {
		v["condition"] = t.condition
	}
	if t.expiresOn != "" {
		v["expires_on"] = t.expiresOn
	}
	if t.notBefore != "" {
		v["not_before"] = t.notBefore
	}
	return v
}

func ok(w http.ResponseWriter, status int, result any, info map[string]any) {
	body := map[string]any{"success": true, "errors": []any{}, "messages": []any{}, "result": result}
	if info != nil {
		body["result_info"] = info
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cf-Ray", rnd(8)+"-AMS")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func cfError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cf-Ray", rnd(8)+"-AMS")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"success": false, "errors": []any{map[string]any{"code": code, "message": msg}}, "messages": []any{}, "result": nil})
}

var scopeRE = regexp.MustCompile(`^/client/v4(?:/user|/accounts/([^/]+))/tokens(?:/([^/]+))?(/value)?$`)

func (f *fakeCloudflare) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls[r.Method+" "+r.URL.Path]++
	for i, ft := range f.faults {
		if ft.method == r.Method && strings.HasPrefix(r.URL.Path, "/client/v4"+ft.path) {
			f.faults = append(f.faults[:i], f.faults[i+1:]...)
			f.mu.Unlock()
			if ft.hang {
				select {
				case <-r.Context().Done():
				case <-f.release:
				}
				return
			}
			for k, v := range ft.header {
				w.Header().Set(k, v)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(ft.status)
			_, _ = io.WriteString(w, ft.body)
			return
		}
	}
	defer f.mu.Unlock()

	m := scopeRE.FindStringSubmatch(r.URL.Path)
	if m == nil {
		cfError(w, http.StatusNotFound, 7003, "No route for the URI")
		return
	}
	acct, id, roll := m[1], m[2], m[3] != ""
	value, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	caller := f.byValue[value]
	if caller == nil || caller.status != "active" {
		cfError(w, http.StatusUnauthorized, 1000, "Invalid API Token")
		return
	}
	if id == "verify" && r.Method == http.MethodGet {
		if caller.account != acct { // account tokens verify at their account's path only
			cfError(w, http.StatusUnauthorized, 1000, "Invalid API Token")
			return
		}
		res := map[string]any{"id": caller.id, "status": caller.status}
		if caller.expiresOn != "" {
			res["expires_on"] = caller.expiresOn
		}
		ok(w, http.StatusOK, res, nil)
		return
	}
	canManage := false
	for _, p := range caller.policies {
		for _, g := range p["permission_groups"].([]any) {
			canManage = canManage || g.(map[string]any)["id"] == writeTokens
		}
	}
	if !canManage {
		cfError(w, http.StatusForbidden, 9109, "Unauthorized to access requested resource")
		return
	}
	switch {
	case roll:
		t := f.tokens[id]
		if t == nil || t.account != acct {
			cfError(w, http.StatusNotFound, 1003, "Token not found")
			return
		}
		delete(f.byValue, t.value)
		t.value = rnd(20)
		f.byValue[t.value] = t
		ok(w, http.StatusOK, t.value, nil)
	case id == "" && r.Method == http.MethodGet:
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
		if page < 1 {
			page = 1
		}
		if per < 5 || per > 50 {
			per = 20
		}
		var all []*fakeToken
		for _, t := range f.tokens {
			if t.account == acct {
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
		if f.scopeCount(acct) >= f.limits[acct] {
			cfError(w, http.StatusBadRequest, 1001, "Maximum number of tokens reached")
			return
		}
		t := f.add(acct, body.Name, body.Policies, "")
		t.condition, t.expiresOn, t.notBefore = body.Condition, body.ExpiresOn, body.NotBefore
		v := t.view()
		v["value"] = t.value
		ok(w, http.StatusOK, v, nil)
	case r.Method == http.MethodGet || r.Method == http.MethodDelete:
		t := f.tokens[id]
		if t == nil || t.account != acct {
			cfError(w, http.StatusNotFound, 1003, "Token not found")
			return
		}
		if r.Method == http.MethodGet {
			ok(w, http.StatusOK, t.view(), nil)
			return
		}
		delete(f.tokens, id)
		delete(f.byValue, t.value)
		ok(w, http.StatusOK, map[string]any{"id": id}, nil)
	default:
		cfError(w, http.StatusMethodNotAllowed, 7001, "Method not allowed")
	}
}

func sortTokens(ts []*fakeToken) {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j].issuedOn+ts[j].id < ts[j-1].issuedOn+ts[j-1].id; j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

type stubAdmin struct{ key string }

func (s stubAdmin) Read(_ context.Context, op string, owner providers.Credential) (adminsecret.Credential, error) {
	if _, err := owner.RequireAttr(op, providers.FieldAdminSecretID); err != nil {
		return adminsecret.Credential{}, err
	}
	return adminsecret.Credential{Key: s.key}, nil
}

type sleepLog struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleepLog) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleepLog) waits() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

type env struct {
	p     *Provider
	fake  *fakeCloudflare
	rec   *contracttest.Recorder
	owner providers.Credential
	slept *sleepLog
}

type options struct {
	noContract bool
	account    bool // account-owned tokens
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

func newEnv(t *testing.T, o options) *env {
	t.Helper()
	spec := ""
	if !o.noContract {
		var err error
		if spec, err = contracttest.Lookup("cloudflare.yaml"); err != nil {
			t.Logf("%v: requests are not checked against the vendor's spec (TestContract skips)", err)
		}
	}
	fake := newFakeCloudflare()
	rec := contracttest.NewRecorder(fake)
	srv := httptest.NewServer(rec)
	t.Cleanup(func() {
		close(fake.release)
		srv.Close()
		for _, ex := range rec.Exchanges() {
			if strings.HasSuffix(ex.URL.Path, "/value") {
				t.Errorf("the provider rolled a token: %s", ex)
			}
		}
		if spec != "" {
			contracttest.Validate(t, spec, rec.Exchanges(), contractOptions)
		}
	})
	slept := &sleepLog{}
	cfg := Config{BaseURL: srv.URL + "/client/v4", Admin: stubAdmin{key: adminValue}}
	cfg.HTTP.Sleep = slept.sleep
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	owner := providers.Credential{Provider: Name}
	owner, _ = owner.WithAttr(providers.FieldAdminSecretID, "cloudflare/admin")
	owner, _ = owner.WithAttr(FieldPolicies, []map[string]any{policyJSON(zoneRead)})
	if o.account {
		owner, _ = owner.WithAttr(FieldAccountID, account)
	}
	return &env{p: p, fake: fake, rec: rec, owner: owner, slept: slept}
}
