package lambdafn

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/keyrotor/keyrotor/internal/testenv"
)

// The functions' default grace period is 2h: twice the 1h default refresh
// of AWS's caching libraries and External Secrets Operator (issue 12, item
// 14), so that an application on those defaults re-reads the key, with a
// margin, before the old one is revoked. GRACE_PERIOD still sets it.
func TestGracePeriodDefaultHasMarginOverTheCommonRefresh(t *testing.T) {
	got, err := gracePeriod(envOf(nil))
	if err != nil || got != 2*time.Hour {
		t.Fatalf("GRACE_PERIOD unset: grace %v (%v), want 2h", got, err)
	}
	got, err = gracePeriod(envOf(map[string]string{"GRACE_PERIOD": "30m"}))
	if err != nil || got != 30*time.Minute {
		t.Fatalf("GRACE_PERIOD=30m: grace %v (%v), want 30m", got, err)
	}
}

// The template's GracePeriod parameter defaults to the functions' own
// default, so that a stack deployed with defaults and a function run
// without GRACE_PERIOD agree (and status, which falls back to the same
// constant).
func TestTemplateGracePeriodDefaultIsTheFunctions(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Parameters struct {
			GracePeriod struct {
				Default string `yaml:"Default"`
			} `yaml:"GracePeriod"`
		} `yaml:"Parameters"`
	}
	// The template's !Ref and !Sub tags decode as the scalars they tag.
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	d, err := time.ParseDuration(doc.Parameters.GracePeriod.Default)
	if err != nil {
		t.Fatalf("template.yaml: GracePeriod default %q: %v", doc.Parameters.GracePeriod.Default, err)
	}
	if want, _ := gracePeriod(envOf(nil)); d != want {
		t.Fatalf("template.yaml: GracePeriod default %v, the functions' default (GRACE_PERIOD unset) %v", d, want)
	}
}
