package notify_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/keyrotor/keyrotor/internal/testenv"
	"github.com/keyrotor/keyrotor/notify"
)

// TestSchemaIsDocumented: docs/operations.md names every detail-type and
// every detail field, so that a field added to the code is documented too.
func TestSchemaIsDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	_, section, _ := strings.Cut(doc, "\n## Events\n")
	section, _, _ = strings.Cut(section, "\n## ")
	if section == "" {
		t.Fatal("docs/operations.md has no Events section")
	}
	for _, dt := range notify.DetailTypes {
		if !strings.Contains(section, "| `"+dt+"` |") {
			t.Errorf("detail-type %q is not in the Events section's table", dt)
		}
	}
	typ := reflect.TypeFor[notify.Detail]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if !strings.Contains(section, "`"+name+"`") {
			t.Errorf("detail field %q is not documented in the Events section", name)
		}
	}
}
