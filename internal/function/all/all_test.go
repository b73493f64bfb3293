package all

import (
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/keyrotor/keyrotor/internal/function/lambdafn"
)

const module = "github.com/keyrotor/keyrotor/"

func testClients() lambdafn.Clients {
	cfg := aws.Config{Region: "us-east-1"}
	return lambdafn.NewClients(cfg)
}

func envOf(m map[string]string) lambdafn.Env { return func(k string) string { return m[k] } }

// rotationMains returns, by function name, the imports of each
// functions/<name>/main.go that starts a rotation.
func rotationMains(t *testing.T) map[string][]string {
	t.Helper()
	mains, err := filepath.Glob(filepath.Join("..", "..", "..", "functions", "*", "main.go"))
	if err != nil || len(mains) == 0 {
		t.Fatalf("no functions found (%v)", err)
	}
	found := map[string][]string{}
	for _, main := range mains {
		src, err := os.ReadFile(main)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(src), "lambdafn.StartRotation(") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), main, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		var imports []string
		for _, spec := range f.Imports {
			path, _ := strconv.Unquote(spec.Path.Value)
			imports = append(imports, path)
		}
		found[filepath.Base(filepath.Dir(main))] = imports
	}
	if len(found) < 7 {
		t.Fatalf("%d rotation functions found, want at least 7", len(found))
	}
	return found
}

// TestBuildersServeEveryRotationFunction checks that the revoker can revoke
// the keys of every rotation function: each functions/<name> that starts a
// rotation passes the builder of internal/function/build/<name>, Builders
// has an entry <name>, and its provider has that name.
func TestBuildersServeEveryRotationFunction(t *testing.T) {
	all := Builders()
	for name, imports := range rotationMains(t) {
		own := module + "internal/function/build/" + name
		builds := 0
		for _, path := range imports {
			if strings.HasPrefix(path, module+"internal/function/build/") {
				builds++
				if path != own {
					t.Errorf("functions/%s imports %s, not its own builder %s", name, path, own)
				}
			}
		}
		if builds != 1 {
			t.Errorf("functions/%s imports %d builder packages, want %s alone", name, builds, own)
		}
		if _, ok := all[name]; !ok {
			t.Errorf("functions/%s rotates keys, but Builders has no %q: the revoker could not revoke them", name, name)
		}
	}
	env := envOf(map[string]string{"API_BASE_URL": "http://127.0.0.1:1"})
	for name, build := range all {
		p, err := build(env, testClients())
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if p.Name() != name {
			t.Errorf("Builders()[%q] builds provider %q", name, p.Name())
		}
	}
}

// TestRotationFunctionsLinkOnlyTheirProvider checks what a rotation
// function's binary holds (its start-up runs the init of every package it
// links): its own provider, no other provider, not the auditor's packages
// and no AWS service client beyond those lambdafn and its provider use.
func TestRotationFunctionsLinkOnlyTheirProvider(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH")
	}
	// The AWS service packages each function may link: Secrets Manager,
	// SQS and EventBridge (lambdafn: the events of package notify) and the
	// provider's own; not package config, whose credential chain links the
	// SSO, SSO OIDC, STS and sign-in clients.
	shared := []string{"secretsmanager", "sqs", "eventbridge"}
	own := map[string][]string{"iam": {"iam", "sts"}, "apigateway": {"apigateway"}}
	for name := range rotationMains(t) {
		out, err := exec.Command("go", "list", "-deps", "../../../functions/"+name).Output()
		if err != nil {
			t.Fatalf("go list -deps functions/%s: %v", name, err)
		}
		allowed := map[string]bool{}
		for _, s := range append(shared, own[name]...) {
			allowed[s] = true
		}
		for _, dep := range strings.Fields(string(out)) {
			if rest, ok := strings.CutPrefix(dep, module+"providers/"); ok && !strings.Contains(rest, "/") {
				if rest != name && rest != "adminsecret" && rest != "vendorhttp" {
					t.Errorf("functions/%s links provider %s", name, dep)
				}
			}
			for _, pkg := range []string{module + "audit", module + "internal/inventory", module + "internal/function", module + "internal/function/all", "github.com/aws/aws-sdk-go-v2/config"} {
				if dep == pkg {
					t.Errorf("functions/%s links %s", name, dep)
				}
			}
			if rest, ok := strings.CutPrefix(dep, "github.com/aws/aws-sdk-go-v2/service/"); ok {
				if svc, _, _ := strings.Cut(rest, "/"); !allowed[svc] && svc != "internal" {
					t.Errorf("functions/%s links AWS service package %s", name, dep)
				}
			}
		}
	}
}

// TestVendorURLOverride checks <PROVIDER>_API_BASE_URL and API_BASE_URL:
// a plain-http URL to a remote host is refused by every HTTP vendor's
// builder, the provider's own variable wins over API_BASE_URL, and no
// override at all means the vendor's public https root.
func TestVendorURLOverride(t *testing.T) {
	for _, name := range []string{"sendgrid", "twilio", "datadog", "cloudflare"} {
		t.Run(name, func(t *testing.T) {
			build := Builders()[name]
			prefix := strings.ToUpper(name) + "_API_BASE_URL"
			if _, err := build(envOf(map[string]string{"API_BASE_URL": "http://vendor.example.com"}), testClients()); err == nil {
				t.Error("API_BASE_URL with plain http to a remote host accepted")
			}
			if _, err := build(envOf(map[string]string{prefix: "http://vendor.example.com", "API_BASE_URL": "http://127.0.0.1:1"}), testClients()); err == nil {
				t.Errorf("%s with plain http to a remote host accepted (or API_BASE_URL won over it)", prefix)
			}
			if _, err := build(envOf(map[string]string{prefix: "http://127.0.0.1:1", "API_BASE_URL": "http://vendor.example.com"}), testClients()); err != nil {
				t.Errorf("%s on loopback refused: %v", prefix, err)
			}
			if _, err := build(envOf(nil), testClients()); err != nil {
				t.Errorf("no override: %v", err)
			}
		})
	}
}

// TestAuditorLinksNoProvider: the auditor reads ListSecrets and writes
// metrics; it must not link any vendor's provider (or their SDK clients),
// nor the CLI's inventory parsing.
func TestAuditorLinksNoProvider(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH")
	}
	out, err := exec.Command("go", "list", "-deps", "../../../functions/auditor").Output()
	if err != nil {
		t.Fatalf("go list -deps functions/auditor: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if rest, ok := strings.CutPrefix(dep, module+"providers/"); ok && rest != "adminsecret" {
			t.Errorf("functions/auditor links provider package %s", dep)
		}
		if dep == module+"internal/function/all" || dep == module+"internal/inventory" {
			t.Errorf("functions/auditor links %s", dep)
		}
	}
}

// TestNoProgramLinksTestCode: no function and not the keyrotor CLI links the
// test-only packages (testing, the contract checks and their OpenAPI
// validator): the local stack's vendor stand-ins, which the CLI links, must
// stay free of them.
func TestNoProgramLinksTestCode(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH")
	}
	out, err := exec.Command("go", "list", "-deps", "../../../functions/...", "../../../cmd/keyrotor").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "testing" || dep == module+"providers/contracttest" || strings.HasPrefix(dep, "github.com/getkin/kin-openapi") {
			t.Errorf("a program links the test-only package %s", dep)
		}
	}
}
