package twilio_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/adminsecret"
	"github.com/keyrotor/keyrotor/providers/contracttest"
	"github.com/keyrotor/keyrotor/providers/twilio"
)

// fakeTwilio serves the parts of api.twilio.com and iam.twilio.com the
// provider calls, with bodies shaped like the examples of Twilio's OpenAPI
// specs and errors shaped like Twilio's {code, message, more_info, status}.
type fakeTwilio struct {
	mu       sync.Mutex
	accounts map[string]string // account SID -> auth token
	keys     map[string]*fakeKey
	maxKeys  int // per account, 0 for none
	// fault, when set, may answer a request itself (it returns true).
	fault func(w http.ResponseWriter, r *http.Request) bool

	srv *httptest.Server
	rec *contracttest.Recorder
}

type fakeKey struct {
	account, sid, name, secret string
	created                    time.Time
	policy                     json.RawMessage
}

func startFake(t *testing.T) *fakeTwilio {
	t.Helper()
	f := &fakeTwilio{accounts: map[string]string{}, keys: map[string]*fakeKey{}}
	f.rec = contracttest.NewRecorder(http.HandlerFunc(f.serve))
	f.srv = httptest.NewServer(f.rec)
	t.Cleanup(f.srv.Close)
	return f
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// account creates an account and returns its SID and auth token.
func (f *fakeTwilio) account() (sid, token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sid, token = "AC"+randomHex(16), randomHex(16)
	f.accounts[sid] = token
	return sid, token
}

func (f *fakeTwilio) keyCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.keys)
}

func twilioError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg, "more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code), "status": status})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

const rfc2822 = "Mon, 02 Jan 2006 15:04:05 -0700"

func (k *fakeKey) json(withSecret, withPolicy bool) map[string]any {
	m := map[string]any{"sid": k.sid, "friendly_name": k.name, "date_created": k.created.Format(rfc2822), "date_updated": k.created.Format(rfc2822)}
	if withSecret {
		m["secret"] = k.secret
	}
	if withPolicy {
		m["policy"] = k.policy // null for standard keys
	}
	return m
}

func (f *fakeTwilio) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Twilio-Request-Id", "RQ"+randomHex(16))
	if f.fault != nil && f.fault(w, r) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch {
	case len(parts) == 2 && parts[0] == "v1" && parts[1] == "Keys":
		account := r.FormValue("AccountSid")
		if !f.admin(w, r, account) {
			return
		}
		if r.Method == http.MethodPost {
			f.create(w, r, account, true)
			return
		}
		f.list(w, r, account, true)
	case len(parts) == 3 && parts[0] == "v1" && parts[1] == "Keys":
		k := f.keys[parts[2]]
		account := ""
		if k != nil {
			account = k.account
		}
		user, _, _ := r.BasicAuth()
		if k == nil {
			account = user // a missing key: authenticate the caller's account
		}
		if !f.admin(w, r, account) {
			return
		}
		f.instance(w, r, k, true)
	case len(parts) == 4 && parts[0] == "2010-04-01" && parts[1] == "Accounts" && parts[3] == "Keys.json":
		if !f.admin(w, r, parts[2]) {
			return
		}
		if r.Method == http.MethodPost {
			f.create(w, r, parts[2], false)
			return
		}
		f.list(w, r, parts[2], false)
	case len(parts) == 5 && parts[0] == "2010-04-01" && parts[1] == "Accounts" && parts[3] == "Keys":
		if !f.admin(w, r, parts[2]) {
			return
		}
		k := f.keys[strings.TrimSuffix(parts[4], ".json")]
		if k != nil && k.account != parts[2] {
			k = nil
		}
		f.instance(w, r, k, false)
	case len(parts) == 4 && parts[0] == "2010-04-01" && parts[1] == "Accounts" && parts[3] == "Balance.json" && r.Method == http.MethodGet:
		user, pass, _ := r.BasicAuth()
		k := f.keys[user]
		if k == nil || k.account != parts[2] || k.secret != pass {
			twilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"account_sid": parts[2], "balance": "12.34", "currency": "USD"})
	default:
		twilioError(w, http.StatusNotFound, 20404, "The requested resource was not found")
	}
}

// admin checks Basic AccountSid:AuthToken for account.
func (f *fakeTwilio) admin(w http.ResponseWriter, r *http.Request, account string) bool {
	user, pass, ok := r.BasicAuth()
	token, known := f.accounts[account]
	if !ok || !known || user != account || pass != token {
		twilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return false
	}
	return true
}

func (f *fakeTwilio) create(w http.ResponseWriter, r *http.Request, account string, iam bool) {
	n := 0
	for _, k := range f.keys {
		if k.account == account {
			n++
		}
	}
	if f.maxKeys > 0 && n >= f.maxKeys {
		twilioError(w, http.StatusConflict, 20409, "Too many API keys")
		return
	}
	name := r.PostFormValue("FriendlyName")
	if len(name) > 64 {
		twilioError(w, http.StatusBadRequest, 21200, "FriendlyName is too long")
		return
	}
	k := &fakeKey{account: account, sid: "SK" + randomHex(16), name: name, secret: randomHex(16), created: time.Now().UTC().Truncate(time.Second), policy: json.RawMessage("null")}
	if iam && r.PostFormValue("KeyType") == "restricted" {
		var policy map[string]any
		if err := json.Unmarshal([]byte(r.PostFormValue("Policy")), &policy); err != nil || policy["allow"] == nil {
			twilioError(w, http.StatusBadRequest, 70002, "Policy is required for restricted keys")
			return
		}
		k.policy = json.RawMessage(r.PostFormValue("Policy"))
	}
	f.keys[k.sid] = k
	writeJSON(w, http.StatusCreated, k.json(true, iam))
}

func (f *fakeTwilio) list(w http.ResponseWriter, r *http.Request, account string, iam bool) {
	var all []*fakeKey
	for _, k := range f.keys {
		if k.account == account {
			all = append(all, k)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].sid < all[j].sid })
	size, page := 50, 0
	if v, err := strconv.Atoi(r.FormValue("PageSize")); err == nil && v > 0 {
		size = min(v, 2) // small pages, so that paging is exercised
	}
	if v, err := strconv.Atoi(r.FormValue("Page")); err == nil {
		page = v
	}
	keys := []map[string]any{}
	for i := page * size; i < len(all) && i < (page+1)*size; i++ {
		m := all[i].json(false, false)
		if iam {
			m["flags"] = []string{"rest_api", "signing"}
		}
		keys = append(keys, m)
	}
	var next any
	if (page+1)*size < len(all) {
		next = fmt.Sprintf("%s?PageSize=%d&Page=%d&PageToken=PA%s", r.URL.Path, size, page+1, all[(page+1)*size].sid)
	}
	if iam {
		self := fmt.Sprintf("https://iam.twilio.com/v1/Keys?AccountSid=%s&PageSize=%d&Page=%d", account, size, page)
		if next != nil {
			next = fmt.Sprintf("https://iam.twilio.com/v1/Keys?AccountSid=%s&PageSize=%d&Page=%d", account, size, page+1)
		}
		writeJSON(w, http.StatusOK, map[string]any{"keys": keys, "meta": map[string]any{
			"page": page, "page_size": size, "first_page_url": self, "previous_page_url": nil, "url": self, "next_page_url": next, "key": "keys"}})
		return
	}
	self := fmt.Sprintf("%s?PageSize=%d&Page=%d", r.URL.Path, size, page)
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys, "first_page_uri": self, "uri": self, "next_page_uri": next, "previous_page_uri": nil,
		"page": page, "page_size": size, "start": page * size, "end": page*size + len(keys) - 1})
}

func (f *fakeTwilio) instance(w http.ResponseWriter, r *http.Request, k *fakeKey, iam bool) {
	if k == nil {
		twilioError(w, http.StatusNotFound, 20404, "The requested resource was not found")
		return
	}
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, k.json(false, iam))
	case http.MethodDelete:
		delete(f.keys, k.sid)
		w.WriteHeader(http.StatusNoContent)
	default:
		twilioError(w, http.StatusMethodNotAllowed, 20004, "Method not allowed")
	}
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

// setup is a provider talking to f for a fresh account, and that account's
// secret value (without a key).
func (f *fakeTwilio) setup(t *testing.T, keyType string, opts func(*twilio.Config)) (*twilio.Provider, providers.Credential) {
	t.Helper()
	sid, token := f.account()
	cfg := twilio.Config{APIBaseURL: f.srv.URL, IAMBaseURL: f.srv.URL, Admin: adminReader{"twilio/admin-" + sid: {Key: token}}}
	cfg.HTTP.Sleep = func(context.Context, time.Duration) error { return nil }
	if opts != nil {
		opts(&cfg)
	}
	p, err := twilio.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v := map[string]any{"provider": "twilio", "account_sid": sid, "key_type": keyType, "admin_secret_id": "twilio/admin-" + sid}
	if keyType == twilio.KeyTypeRestricted {
		v["policy"] = map[string]any{"allow": []string{"/twilio/messaging/messages/read"}}
	}
	b, _ := json.Marshal(v)
	owner, err := providers.ParseSecret(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return p, owner
}

// checkContract validates every exchange recorded so far against Twilio's
// specs; exchanges answered by a fault have their request validated only.
func (f *fakeTwilio) checkContract(t *testing.T) {
	t.Helper()
	t.Run("Contract", func(t *testing.T) {
		byHost := map[string][]contracttest.Exchange{}
		for _, ex := range f.rec.Exchanges() {
			if ex.RespHeader.Get("X-Fault") != "" {
				ex.Status = 0
			}
			spec := "twilio-api-v2010.yaml"
			if strings.HasPrefix(ex.URL.Path, "/v1/") {
				spec = "twilio-iam-v1.yaml"
			}
			byHost[spec] = append(byHost[spec], ex)
		}
		for spec, exs := range byHost {
			contracttest.Validate(t, validatableSpec(t, contracttest.Spec(t, spec)), exs, nil)
		}
	})
}

// pathServers matches the path-level servers of Twilio's fragments
// ("servers: - url: https://api.twilio.com" under each path).
var pathServers = regexp.MustCompile(`(?m)^    servers:\n    - url: https://[a-z.]+\n`)

// formPolicy matches the Policy form parameter of the IAM requests, which
// the fragment declares without a type.
var formPolicy = regexp.MustCompile(`(?m)^( +)Policy:\n( +)description:`)

// validatableSpec returns a copy of the spec at path, in a temporary folder,
// that kin-openapi can check requests to 127.0.0.1 against:
//   - without path-level servers: contracttest drops only the document's
//     servers' hosts, and kin-openapi routes a path by its own servers when
//     it has some, so Twilio's paths would only match on api.twilio.com and
//     iam.twilio.com;
//   - with "type: string" on the form parameter Policy: kin-openapi decodes
//     a typeless form value as null and then rejects it. The fragment's own
//     example sends the policy as a JSON string, which the fake checks is a
//     policy object.
func validatableSpec(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := pathServers.ReplaceAll(b, nil)
	if bytes.Equal(out, b) {
		t.Fatalf("%s has no path-level servers any more: revisit validatableSpec", path)
	}
	out = formPolicy.ReplaceAll(out, []byte("${1}Policy:\n${2}type: string\n${2}description:"))
	dst := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(dst, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return dst
}
