// Package redacttest checks that a value holding key material never shows
// it: through slog's JSON and text handlers, fmt's %v, %+v, %#v and %s, and
// encoding/json. Tests of types with a String/GoString/LogValue that hide a
// key call Hidden.
package redacttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

// Renderings returns v as each way of printing it would show it, by name.
// json is left out when encoding/json cannot encode v.
func Renderings(v any) map[string]string {
	out := map[string]string{}
	var jb, tb bytes.Buffer
	slog.New(slog.NewJSONHandler(&jb, nil)).Info("msg", "v", v)
	out["slog JSON handler"] = jb.String()
	slog.New(slog.NewTextHandler(&tb, nil)).Info("msg", "v", v)
	out["slog text handler"] = tb.String()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		out["fmt "+verb] = fmt.Sprintf(verb, v)
	}
	if b, err := json.Marshal(v); err == nil {
		out["json.Marshal"] = string(b)
	}
	return out
}

// Hidden fails t if any rendering of v contains one of secrets. It also
// checks a pointer to a copy of v, as a value is often logged by address.
func Hidden(t testing.TB, v any, secrets ...string) {
	t.Helper()
	hidden(t, v, true, secrets)
}

// HiddenFromLogs is Hidden without encoding/json, for a wire type that is
// serialized with its key on purpose (a vendor's answer or request body).
func HiddenFromLogs(t testing.TB, v any, secrets ...string) {
	t.Helper()
	hidden(t, v, false, secrets)
}

func hidden(t testing.TB, v any, withJSON bool, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s == "" {
			t.Fatal("redacttest: an empty secret matches everything")
		}
	}
	ptr := reflect.New(reflect.TypeOf(v))
	ptr.Elem().Set(reflect.ValueOf(v))
	for _, x := range []struct {
		what string
		v    any
	}{{"", v}, {"pointer: ", ptr.Interface()}} {
		for how, got := range Renderings(x.v) {
			if how == "json.Marshal" && !withJSON {
				continue
			}
			for _, s := range secrets {
				if strings.Contains(got, s) {
					t.Errorf("%s%s shows the secret %q: %s", x.what, how, s, got)
				}
			}
		}
	}
}
