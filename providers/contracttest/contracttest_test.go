package contracttest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// exchange sends one request through a Recorder around a handler that
// answers status and respBody, and returns what was recorded.
func exchange(t *testing.T, method, path, auth, body string, status int, respBody string) Exchange {
	t.Helper()
	rec := NewRecorder(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, _ := io.ReadAll(r.Body); string(b) != body {
			t.Errorf("the handler saw body %q, want %q", b, body)
		}
		if respBody != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, respBody)
	}))
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ex := rec.Exchanges()
	if len(ex) != 1 {
		t.Fatalf("recorded %d exchanges, want 1", len(ex))
	}
	if ex[0].Status != status || string(ex[0].RespBody) != respBody || string(ex[0].Body) != body {
		t.Fatalf("recorded %+v", ex[0])
	}
	return ex[0]
}

func TestSendGridContract(t *testing.T) {
	spec := Spec(t, "sendgrid.yaml")
	const created = `{"api_key":"SG.x.y","api_key_id":"id1","name":"n","scopes":["mail.send"]}`
	cases := []struct {
		name               string
		method, path, auth string
		body               string
		status             int
		respBody           string
		wantErr            string // "" = accepted
	}{
		{"create", "POST", "/v3/api_keys", "Bearer SG.admin", `{"name":"n","scopes":["mail.send"]}`, 201, created, ""},
		{"create without name", "POST", "/v3/api_keys", "Bearer SG.admin", `{"scopes":["mail.send"]}`, 201, created, "request rejected"},
		{"create with scopes of the wrong type", "POST", "/v3/api_keys", "Bearer SG.admin", `{"name":"n","scopes":"mail.send"}`, 201, created, "request rejected"},
		{"create without credentials", "POST", "/v3/api_keys", "", `{"name":"n"}`, 201, created, "authorization"},
		{"create with basic auth", "POST", "/v3/api_keys", "Basic YTpi", `{"name":"n"}`, 201, created, "authorization"},
		{"wrong method", "PUT", "/v3/scopes", "Bearer k", "", 200, `{"scopes":[]}`, "no operation"},
		{"unknown path", "GET", "/v3/keys", "Bearer k", "", 200, `{}`, "no operation"},
		{"response of the wrong shape", "POST", "/v3/api_keys", "Bearer SG.admin", `{"name":"n"}`, 201, `{"api_key":5}`, "response does not match"},
		{"scopes response missing a required field", "GET", "/v3/scopes", "Bearer k", "", 200, `{"result":[]}`, "response does not match"},
		{"delete", "DELETE", "/v3/api_keys/id1", "Bearer SG.admin", "", 204, "", ""},
		{"error body", "GET", "/v3/scopes", "Bearer bogus", "", 401, `{"errors":[{"message":"authorization required"}]}`, ""},
		{"undocumented status", "GET", "/v3/scopes", "Bearer k", "", 429, `{"errors":[{"message":"too many requests"}]}`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ex := exchange(t, tc.method, tc.path, tc.auth, tc.body, tc.status, tc.respBody)
			errs, err := Check(spec, []Exchange{ex}, nil)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.wantErr == "" && len(errs) > 0:
				t.Fatalf("rejected: %v", errs)
			case tc.wantErr != "" && len(errs) == 0:
				t.Fatalf("accepted, want an error containing %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(errs[0].Error(), tc.wantErr):
				t.Fatalf("error %v, want one containing %q", errs[0], tc.wantErr)
			}
		})
	}
}

func TestCloudflareServerPathAndOptions(t *testing.T) {
	spec := Spec(t, "cloudflare.yaml")
	verify := `{"success":true,"errors":[],"messages":[],"result":{"id":"t1","status":"active"}}`
	at := func(path string) Exchange {
		return exchange(t, "GET", path, "Bearer tok", "", 200, verify)
	}
	if errs, _ := Check(spec, []Exchange{at("/client/v4/user/tokens/verify")}, nil); len(errs) != 0 {
		t.Fatalf("verify under the server path rejected: %v", errs)
	}
	if errs, _ := Check(spec, []Exchange{at("/user/tokens/verify")}, nil); len(errs) != 1 {
		t.Fatalf("verify without the server path /client/v4 accepted")
	}
	account := at("/client/v4/accounts/abc/tokens/verify")
	if errs, _ := Check(spec, []Exchange{account}, nil); len(errs) != 1 {
		t.Fatalf("an account path the fragment lacks accepted without MapPath")
	}
	mapped := &Options{MapPath: func(p string) string { return strings.Replace(p, "/accounts/abc/", "/user/", 1) }}
	if errs, _ := Check(spec, []Exchange{account}, mapped); len(errs) != 0 {
		t.Fatalf("mapped account path rejected: %v", errs)
	}

	// The fragment marks permission_groups[].id readOnly although create
	// needs it: rejected unless the option says so.
	create := exchange(t, "POST", "/client/v4/user/tokens", "Bearer tok",
		`{"name":"n","policies":[{"effect":"allow","resources":{"com.cloudflare.api.account.zone.1":"*"},"permission_groups":[{"id":"pg1"}]}]}`,
		200, `{"success":true,"errors":[],"messages":[],"result":{"id":"t2","value":"`+strings.Repeat("v", 40)+`"}}`)
	if errs, _ := Check(spec, []Exchange{create}, nil); len(errs) != 1 || !strings.Contains(errs[0].Error(), "readOnly") {
		t.Fatalf("create with a readOnly property: %v, want one readOnly error", errs)
	}
	if errs, _ := Check(spec, []Exchange{create}, &Options{AllowReadOnlyInRequests: true}); len(errs) != 0 {
		t.Fatalf("create rejected with AllowReadOnlyInRequests: %v", errs)
	}
}

func TestCloudflareDeleteAndErrorBodies(t *testing.T) {
	spec := Spec(t, "cloudflare.yaml")
	deleted := `{"success":true,"errors":[],"messages":[],"result":{"id":"abc"}}`
	// token_id has the empty schema {}: any segment is accepted.
	if errs, _ := Check(spec, []Exchange{exchange(t, "DELETE", "/client/v4/user/tokens/abc", "Bearer x", "{}", 200, deleted)}, nil); len(errs) != 0 {
		t.Fatalf("delete rejected: %v", errs)
	}
	if errs, _ := Check(spec, []Exchange{exchange(t, "DELETE", "/client/v4/user/tokens/abc", "Bearer x", "", 200, deleted)}, nil); len(errs) != 1 {
		t.Fatalf("delete without its required body accepted")
	}
	failure := `{"success":false,"errors":[{"code":1000,"message":"Invalid API Token"}],"messages":[],"result":null}`
	ex := exchange(t, "GET", "/client/v4/user/tokens/verify", "Bearer x", "", 401, failure)
	if errs, _ := Check(spec, []Exchange{ex}, nil); len(errs) != 1 {
		t.Fatalf("the fragment's own 4XX schema accepted a failure body; ErrorSchema may be unnecessary")
	}
	opts := &Options{ErrorSchema: "iam_api-response-common-failure"}
	if errs, _ := Check(spec, []Exchange{ex}, opts); len(errs) != 0 {
		t.Fatalf("failure body rejected by the failure schema: %v", errs)
	}
	bad := exchange(t, "GET", "/client/v4/user/tokens/verify", "Bearer x", "", 401, `{"success":false,"errors":[{"message":"no code"}],"messages":[],"result":null}`)
	if errs, _ := Check(spec, []Exchange{bad}, opts); len(errs) != 1 {
		t.Fatalf("a failure body without an error code accepted")
	}
	if _, err := Check(spec, []Exchange{ex}, &Options{ErrorSchema: "nope"}); err == nil {
		t.Fatalf("an unknown ErrorSchema accepted")
	}
}

func TestValidateFailsTheTest(t *testing.T) {
	spec := Spec(t, "sendgrid.yaml")
	good := exchange(t, "GET", "/v3/scopes", "Bearer k", "", 200, `{"scopes":["mail.send"]}`)
	bad := exchange(t, "POST", "/v3/scopes", "Bearer k", "", 200, `{"scopes":["mail.send"]}`)
	ft := &fakeT{TB: t}
	Validate(ft, spec, []Exchange{good}, nil)
	if ft.failed {
		t.Fatal("Validate failed a good exchange")
	}
	Validate(ft, spec, []Exchange{good, bad}, nil)
	if !ft.failed {
		t.Fatal("Validate passed a request the spec rejects")
	}
}

func TestFragmentsValidate(t *testing.T) {
	Spec(t, "sendgrid.yaml")
	Spec(t, "datadog.yaml")
	good := exchange(t, "GET", "/v3/scopes", "Bearer k", "", 200, `{"scopes":["mail.send"]}`)
	badResp := exchange(t, "POST", "/v3/api_keys", "Bearer SG.admin", `{"name":"n"}`, 201, `{"api_key":5}`)
	badReq := exchange(t, "POST", "/v3/scopes", "Bearer k", "", 200, `{"scopes":["mail.send"]}`)
	faulted := func(ex Exchange) Exchange {
		ex.RespHeader = ex.RespHeader.Clone()
		ex.RespHeader.Set(FaultHeader, "1")
		return ex
	}
	sendgrid := Fragments{Files: []string{"sendgrid.yaml"}}
	patched := 0
	routed := Fragments{Files: []string{"datadog.yaml", "sendgrid.yaml"},
		Route: func(path string) string {
			if strings.HasPrefix(path, "/v3/") {
				return "sendgrid.yaml"
			}
			return "datadog.yaml"
		},
		Patch: func(_ testing.TB, specPath string) string { patched++; return specPath },
	}
	for _, tc := range []struct {
		name     string
		fr       Fragments
		ex       []Exchange
		wantFail bool
	}{
		{"good", sendgrid, []Exchange{good}, false},
		{"bad response", sendgrid, []Exchange{badResp}, true},
		{"bad response of a fault: request only", sendgrid, []Exchange{faulted(badResp)}, false},
		{"bad request of a fault", sendgrid, []Exchange{faulted(badReq)}, true},
		{"routed to its fragment", routed, []Exchange{good}, false},
		{"unrouted: the first fragment", Fragments{Files: routed.Files}, []Exchange{good}, true},
	} {
		ft := &fakeT{TB: t}
		tc.fr.Validate(ft, tc.ex)
		if ft.failed != tc.wantFail {
			t.Errorf("%s: failed = %v, want %v", tc.name, ft.failed, tc.wantFail)
		}
	}
	if patched != 1 {
		t.Errorf("Patch called %d times, want 1 (for sendgrid.yaml, the only fragment with exchanges)", patched)
	}
}

func TestSpecsDirSkipsWhenAbsent(t *testing.T) {
	t.Setenv(SpecsEnv, filepath.Join(t.TempDir(), "missing"))
	var skipped bool
	t.Run("inner", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		SpecsDir(t)
	})
	if !skipped {
		t.Fatal("SpecsDir did not skip for a missing folder")
	}
}

func TestServerPath(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.cloudflare.com/client/v4": "/client/v4",
		"https://api.stripe.com/":              "",
		"https://{subdomain}.{site}":           "",
		"/v1":                                  "/v1",
	} {
		if got := serverPath(in); got != want {
			t.Errorf("serverPath(%q) = %q, want %q", in, got, want)
		}
	}
}

type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Errorf(string, ...any) { f.failed = true }
func (f *fakeT) Fatalf(string, ...any) { f.failed = true }
