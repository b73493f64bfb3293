package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/keyrotor/keyrotor/internal/operator"
)

// Every result --json prints names a Secrets Manager version id the same
// way: version_id, or <what>_version_id; never "version" or "<what>_version".
func TestJSONVersionIDNames(t *testing.T) {
	for _, v := range []any{
		[]operator.Status{}, operator.RotateResult{}, operator.RollbackResult{}, operator.UnstickResult{},
		operator.RevokeKeyResult{}, operator.ImportResult{},
	} {
		checkVersionNames(t, reflect.TypeOf(v), reflect.TypeOf(v).String(), map[reflect.Type]bool{})
	}
}

func checkVersionNames(t *testing.T, typ reflect.Type, path string, seen map[reflect.Type]bool) {
	t.Helper()
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Array {
		typ = typ.Elem()
	}
	if typ.Kind() != reflect.Struct || seen[typ] {
		return
	}
	seen[typ] = true
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if name == "version" || strings.HasSuffix(name, "_version") {
			t.Errorf("%s.%s: JSON field %q, want %q", path, f.Name, name, name+"_id")
		}
		checkVersionNames(t, f.Type, path+"."+f.Name, seen)
	}
}
