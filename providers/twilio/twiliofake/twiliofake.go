// Package twiliofake serves the parts of api.twilio.com and iam.twilio.com
// that the twilio provider calls, over HTTP, for tests: accounts with auth
// tokens, standard and restricted keys, answers shaped like the examples
// of Twilio's OpenAPI fragments in ../shared/provider-specs, errors shaped
// like Twilio's {code, message, more_info, status}, a key limit and
// injected faults. The provider's tests and the integration tests of
// functions/twilio serve it on 127.0.0.1; both paths (/2010-04-01/...,
// /v1/Keys) are served by one server.
//
// Management calls authenticate with Basic AccountSid:AuthToken; the
// balance (the provider's Verify) with Basic KeySid:KeySecret.
package twiliofake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/providers/contracttest"
	"github.com/keyrotor/keyrotor/providers/vendorfake"
)

// Server is the fake Twilio. Hold Mu while reading or changing Accounts,
// Keys or MaxKeys.
type Server struct {
	Mu       sync.Mutex
	Accounts map[string]string // account SID -> auth token
	Keys     map[string]*Key   // by key SID
	MaxKeys  int               // per account, 0 for none
	// Fault, when set (before serving), may answer a request itself (it
	// returns true), as vendorfake.Respond does. A fault's answer should
	// carry contracttest.FaultHeader, so that Validate checks its request
	// only.
	Fault func(w http.ResponseWriter, r *http.Request) bool
}

// Key is one API key.
type Key struct {
	Account, SID, Name, Secret string
	Created                    time.Time
	Policy                     json.RawMessage // null for standard keys
}

// SpecFiles are the vendor's fragments in ../shared/provider-specs that
// Validate checks against.
var SpecFiles = []string{"twilio-api-v2010.yaml", "twilio-iam-v1.yaml"}

// New returns a fake without accounts.
func New() *Server {
	return &Server{Accounts: map[string]string{}, Keys: map[string]*Key{}}
}

// Account creates an account and returns its SID and auth token.
func (f *Server) Account() (sid, token string) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	sid, token = "AC"+vendorfake.RandomHex(16), vendorfake.RandomHex(16)
	f.Accounts[sid] = token
	return sid, token
}

// AddKey creates a key of account, as the Console would, and returns a
// copy of it: a restricted key with policy, or a standard key when policy
// is nil.
func (f *Server) AddKey(account, name string, policy json.RawMessage) Key {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	if policy == nil {
		policy = json.RawMessage("null")
	}
	k := &Key{Account: account, SID: "SK" + vendorfake.RandomHex(16), Name: name, Secret: vendorfake.RandomHex(16), Created: time.Now().UTC().Truncate(time.Second), Policy: policy}
	f.Keys[k.SID] = k
	return *k
}

// KeyCount returns the number of keys of every account.
func (f *Server) KeyCount() int {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return len(f.Keys)
}

func twilioError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg, "more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code), "status": status})
}

const rfc2822 = "Mon, 02 Jan 2006 15:04:05 -0700"

func (k *Key) json(withSecret, withPolicy bool) map[string]any {
	m := map[string]any{"sid": k.SID, "friendly_name": k.Name, "date_created": k.Created.Format(rfc2822), "date_updated": k.Created.Format(rfc2822)}
	if withSecret {
		m["secret"] = k.Secret
	}
	if withPolicy {
		m["policy"] = k.Policy // null for standard keys
	}
	return m
}

// ServeHTTP serves the REST API 2010-04-01 keys and balance, and the IAM v1
// keys.
func (f *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Twilio-Request-Id", "RQ"+vendorfake.RandomHex(16))
	if f.Fault != nil && f.Fault(w, r) {
		return
	}
	f.Mu.Lock()
	defer f.Mu.Unlock()
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
		k := f.Keys[parts[2]]
		account := ""
		if k != nil {
			account = k.Account
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
		k := f.Keys[strings.TrimSuffix(parts[4], ".json")]
		if k != nil && k.Account != parts[2] {
			k = nil
		}
		f.instance(w, r, k, false)
	case len(parts) == 4 && parts[0] == "2010-04-01" && parts[1] == "Accounts" && parts[3] == "Balance.json" && r.Method == http.MethodGet:
		user, pass, _ := r.BasicAuth()
		k := f.Keys[user]
		if k == nil || k.Account != parts[2] || k.Secret != pass {
			twilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
			return
		}
		vendorfake.WriteJSON(w, http.StatusOK, map[string]any{"account_sid": parts[2], "balance": "12.34", "currency": "USD"})
	default:
		twilioError(w, http.StatusNotFound, 20404, "The requested resource was not found")
	}
}

// admin checks Basic AccountSid:AuthToken for account.
func (f *Server) admin(w http.ResponseWriter, r *http.Request, account string) bool {
	user, pass, ok := r.BasicAuth()
	token, known := f.Accounts[account]
	if !ok || !known || user != account || pass != token {
		twilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return false
	}
	return true
}

func (f *Server) create(w http.ResponseWriter, r *http.Request, account string, iam bool) {
	n := 0
	for _, k := range f.Keys {
		if k.Account == account {
			n++
		}
	}
	if f.MaxKeys > 0 && n >= f.MaxKeys {
		twilioError(w, http.StatusConflict, 20409, "Too many API keys")
		return
	}
	name := r.PostFormValue("FriendlyName")
	if len(name) > 64 {
		twilioError(w, http.StatusBadRequest, 21200, "FriendlyName is too long")
		return
	}
	k := &Key{Account: account, SID: "SK" + vendorfake.RandomHex(16), Name: name, Secret: vendorfake.RandomHex(16), Created: time.Now().UTC().Truncate(time.Second), Policy: json.RawMessage("null")}
	if iam && r.PostFormValue("KeyType") == "restricted" {
		var policy map[string]any
		if err := json.Unmarshal([]byte(r.PostFormValue("Policy")), &policy); err != nil || policy["allow"] == nil {
			twilioError(w, http.StatusBadRequest, 70002, "Policy is required for restricted keys")
			return
		}
		k.Policy = json.RawMessage(r.PostFormValue("Policy"))
	}
	f.Keys[k.SID] = k
	vendorfake.WriteJSON(w, http.StatusCreated, k.json(true, iam))
}

func (f *Server) list(w http.ResponseWriter, r *http.Request, account string, iam bool) {
	var all []*Key
	for _, k := range f.Keys {
		if k.Account == account {
			all = append(all, k)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].SID < all[j].SID })
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
		next = fmt.Sprintf("%s?PageSize=%d&Page=%d&PageToken=PA%s", r.URL.Path, size, page+1, all[(page+1)*size].SID)
	}
	if iam {
		self := fmt.Sprintf("https://iam.twilio.com/v1/Keys?AccountSid=%s&PageSize=%d&Page=%d", account, size, page)
		if next != nil {
			next = fmt.Sprintf("https://iam.twilio.com/v1/Keys?AccountSid=%s&PageSize=%d&Page=%d", account, size, page+1)
		}
		vendorfake.WriteJSON(w, http.StatusOK, map[string]any{"keys": keys, "meta": map[string]any{
			"page": page, "page_size": size, "first_page_url": self, "previous_page_url": nil, "url": self, "next_page_url": next, "key": "keys"}})
		return
	}
	self := fmt.Sprintf("%s?PageSize=%d&Page=%d", r.URL.Path, size, page)
	vendorfake.WriteJSON(w, http.StatusOK, map[string]any{"keys": keys, "first_page_uri": self, "uri": self, "next_page_uri": next, "previous_page_uri": nil,
		"page": page, "page_size": size, "start": page * size, "end": page*size + len(keys) - 1})
}

func (f *Server) instance(w http.ResponseWriter, r *http.Request, k *Key, iam bool) {
	if k == nil {
		twilioError(w, http.StatusNotFound, 20404, "The requested resource was not found")
		return
	}
	switch r.Method {
	case http.MethodGet:
		vendorfake.WriteJSON(w, http.StatusOK, k.json(false, iam))
	case http.MethodDelete:
		delete(f.Keys, k.SID)
		w.WriteHeader(http.StatusNoContent)
	default:
		twilioError(w, http.StatusMethodNotAllowed, 20004, "Method not allowed")
	}
}

// Validate fails t for every exchange that Twilio's fragments do not
// accept (each path against its API's fragment); exchanges answered by a
// fault (contracttest.FaultHeader) have their request validated only. It fails t
// when a fragment is absent: look SpecFiles up first (contracttest.Lookup)
// to skip instead.
func Validate(t testing.TB, exchanges []contracttest.Exchange) {
	t.Helper()
	contracttest.Fragments{Files: SpecFiles, Patch: validatableSpec, Route: func(path string) string {
		if strings.HasPrefix(path, "/v1/") {
			return SpecFiles[1]
		}
		return SpecFiles[0]
	}}.Validate(t, exchanges)
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
func validatableSpec(t testing.TB, path string) string {
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
