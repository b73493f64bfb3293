package lambdafn

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

func envOf(m map[string]string) Env { return func(k string) string { return m[k] } }

func lambdaEnv(extra map[string]string) map[string]string {
	m := map[string]string{"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-example", "AWS_SESSION_TOKEN": "session-token-example"}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func TestConfigFromLambdaEnvironment(t *testing.T) {
	cfg, err := Config(envOf(lambdaEnv(nil)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "eu-west-1" || cfg.BaseEndpoint != nil || cfg.HTTPClient != nil {
		t.Errorf("region %q, endpoint %v, HTTP client %v", cfg.Region, cfg.BaseEndpoint, cfg.HTTPClient)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil || creds.AccessKeyID != "AKIDEXAMPLE" || creds.SecretAccessKey != "wJalrXUtnFEMI-example" || creds.SessionToken != "session-token-example" {
		t.Errorf("credentials not the environment's (err %v)", err)
	}
	cfg, err = Config(envOf(lambdaEnv(map[string]string{"AWS_REGION": "", "AWS_DEFAULT_REGION": "us-west-2", "AWS_MAX_ATTEMPTS": "7", "AWS_RETRY_MODE": "adaptive"})))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Region != "us-west-2" || cfg.RetryMaxAttempts != 7 || cfg.RetryMode != aws.RetryModeAdaptive {
		t.Errorf("region %q, attempts %d, mode %q", cfg.Region, cfg.RetryMaxAttempts, cfg.RetryMode)
	}
	if got := secretsmanager.NewFromConfig(cfg).Options().RetryMaxAttempts; got != 7 {
		t.Errorf("Secrets Manager client: %d attempts, want 7", got)
	}
}

func TestConfigRefusesABrokenEnvironment(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "bundle.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, extra := range map[string]map[string]string{
		"no region":              {"AWS_REGION": ""},
		"no access key":          {"AWS_ACCESS_KEY_ID": ""},
		"no secret key":          {"AWS_SECRET_ACCESS_KEY": ""},
		"attempts not a number":  {"AWS_MAX_ATTEMPTS": "many"},
		"attempts zero":          {"AWS_MAX_ATTEMPTS": "0"},
		"unknown retry mode":     {"AWS_RETRY_MODE": "eager"},
		"FIPS not a boolean":     {"AWS_USE_FIPS_ENDPOINT": "yes please"},
		"dual-stack not boolean": {"AWS_USE_DUALSTACK_ENDPOINT": "2"},
		"CA bundle missing":      {"AWS_CA_BUNDLE": filepath.Join(dir, "absent.pem")},
		"CA bundle not PEM":      {"AWS_CA_BUNDLE": notPEM},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Config(envOf(lambdaEnv(extra)))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, v := range []string{"wJalrXUtnFEMI-example", "session-token-example"} {
				if strings.Contains(err.Error(), v) {
					t.Errorf("error quotes a credential: %v", err)
				}
			}
		})
	}
}

// TestConfigEndpoints checks the endpoint variables as the SDK clients
// resolve them (they also read the process environment themselves, hence
// t.Setenv and os.Getenv).
func TestConfigEndpoints(t *testing.T) {
	cases := []struct {
		name                        string
		global, sm, ignore          string
		wantSecretsManager, wantSQS string
	}{
		{"none", "", "", "", "", ""},
		{"AWS_ENDPOINT_URL", "http://127.0.0.1:5000", "", "", "http://127.0.0.1:5000", "http://127.0.0.1:5000"},
		{"the service variable wins", "http://127.0.0.1:5000", "http://127.0.0.1:6000", "", "http://127.0.0.1:6000", "http://127.0.0.1:5000"},
		{"the service variable alone", "", "http://127.0.0.1:6000", "", "http://127.0.0.1:6000", ""},
		{"ignored", "http://127.0.0.1:5000", "http://127.0.0.1:6000", "true", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range lambdaEnv(map[string]string{
				"AWS_ENDPOINT_URL":                    c.global,
				"AWS_ENDPOINT_URL_SECRETS_MANAGER":    c.sm,
				"AWS_ENDPOINT_URL_SQS":                "",
				"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": c.ignore,
				"AWS_CA_BUNDLE":                       "",
			}) {
				t.Setenv(k, v)
			}
			if c.global == "" {
				os.Unsetenv("AWS_ENDPOINT_URL") // the SDK clients test its presence
			}
			if c.sm == "" {
				os.Unsetenv("AWS_ENDPOINT_URL_SECRETS_MANAGER")
			}
			os.Unsetenv("AWS_ENDPOINT_URL_SQS")
			cl, err := LambdaClients(os.Getenv)
			if err != nil {
				t.Fatal(err)
			}
			if got := aws.ToString(cl.SecretsManager.Options().BaseEndpoint); got != c.wantSecretsManager {
				t.Errorf("Secrets Manager endpoint %q, want %q", got, c.wantSecretsManager)
			}
			if got := aws.ToString(cl.SQS.Options().BaseEndpoint); got != c.wantSQS {
				t.Errorf("SQS endpoint %q, want %q", got, c.wantSQS)
			}
		})
	}
}
