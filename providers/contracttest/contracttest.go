// Package contracttest checks that what a provider sends is what the vendor
// accepts: a Recorder wraps a fake vendor server and records every
// request/response pair, and Validate checks each pair against the vendor's
// OpenAPI fragment in ../shared/provider-specs (method, path, parameters,
// headers, request body schema, the presence and form of the credentials the
// spec asks for, and the response body schema of the documented status).
//
// The fragments' servers name the vendors' hosts; validation keeps only the
// servers' paths (Cloudflare's /client/v4), so a request recorded on
// 127.0.0.1 routes by its path. Credentials are checked for form only
// ("Authorization: Bearer <non-empty>"), never for validity.
package contracttest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/keyrotor/keyrotor/providers/vendorfake"
)

// SpecsEnv overrides where the provider specs are.
const SpecsEnv = "KEYROTOR_PROVIDER_SPECS"

// Exchange is one recorded request and the response the fake sent.
type Exchange struct {
	Method string
	URL    *url.URL // as received: path and query
	Header http.Header
	Body   []byte
	// Status is 0 when the handler wrote nothing (the client gave up).
	Status     int
	RespHeader http.Header
	RespBody   []byte
}

func (e Exchange) String() string { return e.Method + " " + e.URL.RequestURI() }

// Recorder is an http.Handler that records every exchange with next.
type Recorder struct {
	next http.Handler
	mu   sync.Mutex
	ex   []Exchange
}

// NewRecorder wraps next.
func NewRecorder(next http.Handler) *Recorder { return &Recorder{next: next} }

// ServeHTTP serves r with next and records the exchange.
func (rec *Recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	u := *r.URL
	ex := Exchange{Method: r.Method, URL: &u, Header: r.Header.Clone(), Body: body}
	cw := &captureWriter{ResponseWriter: w}
	rec.next.ServeHTTP(cw, r)
	ex.Status = cw.status
	if ex.Status == 0 && cw.body.Len() > 0 {
		ex.Status = http.StatusOK
	}
	ex.RespHeader = w.Header().Clone()
	ex.RespBody = cw.body.Bytes()
	rec.mu.Lock()
	rec.ex = append(rec.ex, ex)
	rec.mu.Unlock()
}

// Exchanges returns what was recorded so far.
func (rec *Recorder) Exchanges() []Exchange {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]Exchange(nil), rec.ex...)
}

type captureWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (c *captureWriter) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	c.body.Write(b)
	return c.ResponseWriter.Write(b)
}

// SpecsDir returns the provider-specs folder: $KEYROTOR_PROVIDER_SPECS, or
// the module root's parent + /shared/provider-specs. It skips the test when
// the folder is absent.
func SpecsDir(t testing.TB) string {
	t.Helper()
	dir, err := specsDir()
	if err != nil {
		t.Skipf("%v: contract tests need ../shared", err)
	}
	return dir
}

// Spec returns the path of the fragment file (e.g. "sendgrid.yaml"),
// skipping the test when it is absent.
func Spec(t testing.TB, file string) string {
	t.Helper()
	p, err := Lookup(file)
	if err != nil {
		t.Skipf("%v: contract tests need ../shared", err)
	}
	return p
}

// Lookup returns the path of the fragment file, or an error saying where
// it was looked for. Tests that also check other things use it to validate
// when they can instead of skipping.
func Lookup(file string) (string, error) {
	dir, err := specsDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, file)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("provider spec %s not found", p)
	}
	return p, nil
}

func specsDir() (string, error) {
	dir := os.Getenv(SpecsEnv)
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", fmt.Errorf("provider specs not found: %w", err)
		}
		dir = filepath.Join(filepath.Dir(root), "shared", "provider-specs")
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("provider specs not found at %s", dir)
	}
	return dir, nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Options adjust validation to a fragment's known defects. Each use should
// say why.
type Options struct {
	// MapPath rewrites a recorded path before routing, to validate an
	// operation the fragment lacks against one of the same shape
	// (Cloudflare's account-owned tokens against its user tokens).
	MapPath func(path string) string
	// AllowReadOnlyInRequests accepts request properties the fragment marks
	// readOnly (Cloudflare marks permission_groups[].id readOnly, yet create
	// needs it).
	AllowReadOnlyInRequests bool
	// ErrorSchema names a components schema that error (4xx, 5xx) bodies
	// are validated against instead of the operation's, for fragments whose
	// declared error schema no body can match (Cloudflare's 4XX is the
	// allOf of a success envelope requiring success=true and a failure
	// envelope requiring success=false).
	ErrorSchema string
}

// FaultHeader marks a response a fake's injected fault sent instead of the
// vendor's answer: Fragments.Validate checks the request of such an
// exchange only. The fakes set it (vendorfake.FaultHeader), which keeps the
// fakes, linked by the local stack, free of this test-only package.
const FaultHeader = vendorfake.FaultHeader

// Fragments are a vendor's fragments in ../shared/provider-specs and how
// its exchanges are checked against them.
type Fragments struct {
	// Files are the fragment files (e.g. "sendgrid.yaml").
	Files []string
	// Route returns the file an exchange of the URL path is checked
	// against; nil checks every exchange against Files[0].
	Route func(path string) string
	// Patch, when set, returns the path of a copy of the fragment at
	// specPath to check against instead, mending a defect the Options
	// cannot (Twilio's path-level servers).
	Patch func(t testing.TB, specPath string) string
	// Options adjust validation to the fragments' known defects.
	Options *Options
}

// Validate fails t for every exchange that its fragment does not accept;
// exchanges whose response carries FaultHeader have their request
// validated only. It fails t when a fragment is absent: look Files up
// first (Lookup) to skip instead.
func (fr Fragments) Validate(t testing.TB, exchanges []Exchange) {
	t.Helper()
	byFile := map[string][]Exchange{}
	for _, ex := range exchanges {
		if ex.RespHeader.Get(FaultHeader) != "" {
			ex.Status = 0
		}
		file := fr.Files[0]
		if fr.Route != nil {
			file = fr.Route(ex.URL.Path)
		}
		byFile[file] = append(byFile[file], ex)
	}
	for _, file := range fr.Files {
		if len(byFile[file]) == 0 {
			continue
		}
		path, err := Lookup(file)
		if err != nil {
			t.Fatal(err)
		}
		if fr.Patch != nil {
			path = fr.Patch(t, path)
		}
		Validate(t, path, byFile[file], fr.Options)
	}
}

// Validate fails t for every exchange the spec does not accept.
func Validate(t testing.TB, specPath string, exchanges []Exchange, opts *Options) {
	t.Helper()
	errs, err := Check(specPath, exchanges, opts)
	if err != nil {
		t.Fatalf("contract %s: %v", filepath.Base(specPath), err)
	}
	for _, e := range errs {
		t.Errorf("contract %s: %v", filepath.Base(specPath), e)
	}
}

// Check returns one error per exchange the spec does not accept; the
// second result reports a spec that cannot be loaded.
func Check(specPath string, exchanges []Exchange, opts *Options) ([]error, error) {
	if opts == nil {
		opts = &Options{}
	}
	sp, err := load(specPath)
	if err != nil {
		return nil, err
	}
	if opts.ErrorSchema != "" && sp.doc.Components.Schemas[opts.ErrorSchema] == nil {
		return nil, fmt.Errorf("%s has no schema %q", specPath, opts.ErrorSchema)
	}
	var errs []error
	for _, ex := range exchanges {
		if err := sp.check(ex, opts); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ex, err))
		}
	}
	return errs, nil
}

func (sp *spec) check(ex Exchange, opts *Options) error {
	ctx := context.Background()
	u := *ex.URL
	if opts.MapPath != nil {
		u.Path = opts.MapPath(u.Path)
		u.RawPath = ""
	}
	req, err := http.NewRequestWithContext(ctx, ex.Method, u.RequestURI(), bytes.NewReader(ex.Body))
	if err != nil {
		return err
	}
	req.Header = ex.Header.Clone()
	route, params, err := sp.router.FindRoute(req)
	if err != nil {
		return fmt.Errorf("no operation in the spec: %w", err)
	}
	fopts := &openapi3filter.Options{
		MultiError:                 true,
		AuthenticationFunc:         checkCredentialsForm,
		ExcludeReadOnlyValidations: opts.AllowReadOnlyInRequests,
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: fopts}
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
		return fmt.Errorf("request rejected by %s: %w", route.Operation.OperationID, err)
	}
	if ex.Status == 0 {
		return nil
	}
	if ex.Status >= 400 && opts.ErrorSchema != "" {
		var v any
		if err := json.Unmarshal(ex.RespBody, &v); err != nil {
			return fmt.Errorf("%d response body is not JSON", ex.Status)
		}
		if err := sp.doc.Components.Schemas[opts.ErrorSchema].Value.VisitJSON(v); err != nil {
			return fmt.Errorf("%d response does not match %s: %w", ex.Status, opts.ErrorSchema, err)
		}
		return nil
	}
	resp := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: ex.Status, Header: ex.RespHeader, Options: fopts}
	resp.SetBodyBytes(ex.RespBody)
	if err := openapi3filter.ValidateResponse(ctx, resp); err != nil {
		return fmt.Errorf("%d response does not match %s: %w", ex.Status, route.Operation.OperationID, err)
	}
	return nil
}

// checkCredentialsForm checks that the request carries the credentials a
// security scheme asks for, in its form. It does not judge their value.
func checkCredentialsForm(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s := in.SecurityScheme
	h := in.RequestValidationInput.Request.Header
	switch {
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		scheme, token, ok := strings.Cut(h.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			return in.NewError(errors.New("no Authorization: Bearer <token> header"))
		}
	case s.Type == "http" && strings.EqualFold(s.Scheme, "basic"):
		scheme, cred, ok := strings.Cut(h.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Basic") {
			return in.NewError(errors.New("no Authorization: Basic header"))
		}
		if b, err := base64.StdEncoding.DecodeString(cred); err != nil || len(b) == 0 {
			return in.NewError(errors.New("the Basic credentials are not base64"))
		}
	case s.Type == "apiKey" && s.In == "header":
		if h.Get(s.Name) == "" {
			return in.NewError(fmt.Errorf("no %s header", s.Name))
		}
	case s.Type == "apiKey" && s.In == "query":
		if in.RequestValidationInput.Request.URL.Query().Get(s.Name) == "" {
			return in.NewError(fmt.Errorf("no %s query parameter", s.Name))
		}
	default:
		return in.NewError(fmt.Errorf("security scheme %s (%s %s) is not supported by contracttest", in.SecuritySchemeName, s.Type, s.Scheme))
	}
	return nil
}

// spec is a loaded fragment and its router.
type spec struct {
	doc    *openapi3.T
	router routers.Router
}

var (
	specsMu sync.Mutex
	specs   = map[string]*spec{}
)

// load loads a fragment once and routes by the paths of its servers.
func load(specPath string) (*spec, error) {
	specsMu.Lock()
	defer specsMu.Unlock()
	if sp, ok := specs[specPath]; ok {
		return sp, nil
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(specPath)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", specPath, err)
	}
	seen := map[string]bool{}
	var servers openapi3.Servers
	for _, s := range doc.Servers {
		p := serverPath(s.URL)
		if !seen[p] {
			seen[p] = true
			servers = append(servers, &openapi3.Server{URL: p})
		}
	}
	doc.Servers = servers
	typeUntypedPathParams(doc)
	r, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("route %s: %w", specPath, err)
	}
	sp := &spec{doc: doc, router: r}
	specs[specPath] = sp
	return sp, nil
}

// typeUntypedPathParams gives path parameters with an empty schema ({},
// any value) the string type. A path segment is always a string, so this
// changes nothing the spec accepts; kin-openapi decodes an untyped path
// parameter as empty and would reject every request (Cloudflare's
// token_id is {}).
func typeUntypedPathParams(doc *openapi3.T) {
	fix := func(params openapi3.Parameters) {
		for _, p := range params {
			if p.Value == nil || p.Value.In != openapi3.ParameterInPath || p.Value.Schema == nil {
				continue
			}
			s := p.Value.Schema.Value
			if s == nil || (s.Type == nil && len(s.AllOf)+len(s.AnyOf)+len(s.OneOf) == 0 && s.Not == nil) {
				p.Value.Schema = openapi3.NewStringSchema().NewRef()
			}
		}
	}
	for _, item := range doc.Paths.Map() {
		fix(item.Parameters)
		for _, op := range item.Operations() {
			fix(op.Parameters)
		}
	}
}

// serverPath returns the path of a server URL such as
// "https://{subdomain}.{site}/client/v4" ("/client/v4"), "" for none.
func serverPath(raw string) string {
	rest := raw
	if _, after, ok := strings.Cut(raw, "://"); ok {
		rest = after
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			return ""
		}
		rest = rest[i:]
	}
	return strings.TrimRight(rest, "/")
}
