package function

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

func testClients() Clients {
	cfg := aws.Config{Region: "us-east-1"}
	return Clients{Config: cfg, SecretsManager: secretsmanager.NewFromConfig(cfg)}
}

func envOf(m map[string]string) Env { return func(k string) string { return m[k] } }

// TestAllServesEveryRotationFunction checks that the revoker can revoke the
// keys of every rotation function: each functions/<name> that starts a
// rotation has a builder named <name> in All, whose provider has that name.
func TestAllServesEveryRotationFunction(t *testing.T) {
	all := All()
	dirs, err := filepath.Glob(filepath.Join("..", "..", "functions", "*", "main.go"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no functions found (%v)", err)
	}
	rotations := 0
	for _, main := range dirs {
		name := filepath.Base(filepath.Dir(main))
		src, err := os.ReadFile(main)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(src), "function.StartRotation(") {
			continue
		}
		rotations++
		if _, ok := all[name]; !ok {
			t.Errorf("functions/%s rotates keys, but All has no %q: the revoker could not revoke them", name, name)
		}
	}
	if rotations < 7 {
		t.Fatalf("%d rotation functions found, want at least 7", rotations)
	}
	env := envOf(map[string]string{"API_BASE_URL": "http://127.0.0.1:1"})
	for name, build := range all {
		p, err := build(env, testClients())
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if p.Name() != name {
			t.Errorf("All()[%q] builds provider %q", name, p.Name())
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
			build := All()[name]
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
