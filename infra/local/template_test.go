package local

import (
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The local stack is wired as the template wires a deployment (issue 12,
// item 11): the revocation queue sends a message to the dead-letter queue
// after as many receives, and the gateway's admin secret sits under the
// template's AdminSecretPrefix, where the rotation functions' policies
// allow reading it.
func TestLocalStackMatchesTheTemplate(t *testing.T) {
	root, err := FindRepoRoot("")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The template's !Ref, !Sub and !GetAtt tags decode as the scalars
	// they tag.
	var tpl struct {
		Parameters struct {
			AdminSecretPrefix struct {
				Default string `yaml:"Default"`
			} `yaml:"AdminSecretPrefix"`
		} `yaml:"Parameters"`
		Resources struct {
			RevocationQueue struct {
				Properties struct {
					RedrivePolicy struct {
						MaxReceiveCount int `yaml:"maxReceiveCount"`
					} `yaml:"RedrivePolicy"`
				} `yaml:"Properties"`
			} `yaml:"RevocationQueue"`
		} `yaml:"Resources"`
	}
	if err := yaml.Unmarshal(data, &tpl); err != nil {
		t.Fatal(err)
	}
	want := tpl.Resources.RevocationQueue.Properties.RedrivePolicy.MaxReceiveCount
	o := Options{RepoRoot: root}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	if want == 0 || o.MaxReceiveCount != want {
		t.Errorf("local revocation queue: maxReceiveCount %d, the template's %d", o.MaxReceiveCount, want)
	}
	prefix := tpl.Parameters.AdminSecretPrefix.Default
	if prefix == "" || GatewayAdminSecret != prefix+"gateway" {
		t.Errorf("local gateway admin secret %q, want %q (the template's AdminSecretPrefix default and the provider)", GatewayAdminSecret, prefix+"gateway")
	}
}
