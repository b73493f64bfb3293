package gateway

import (
	"os"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestOpenAPIDocument checks that openapi.yaml is an OpenAPI 3.0 document
// whose operations are exactly the routes the server serves, each answering
// 401 (every endpoint is authenticated), and whose local $refs all resolve.
func TestOpenAPIDocument(t *testing.T) {
	raw, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.yaml is not valid YAML: %v", err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.0.") {
		t.Fatalf("openapi: %q, want 3.0.x", v)
	}
	paths, _ := doc["paths"].(map[string]any)
	documented := map[string]bool{}
	for path, item := range paths {
		ops, _ := item.(map[string]any)
		for method, op := range ops {
			if method == "parameters" {
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = true
			responses, _ := op.(map[string]any)["responses"].(map[string]any)
			if _, ok := responses["401"]; !ok {
				t.Errorf("%s %s does not document its 401 answer", method, path)
			}
		}
	}
	var served []string
	for _, r := range routes {
		served = append(served, r.method+" "+r.path)
		if !documented[r.method+" "+r.path] {
			t.Errorf("the server serves %s %s, which openapi.yaml does not describe", r.method, r.path)
		}
	}
	if len(documented) != len(routes) {
		var docs []string
		for op := range documented {
			docs = append(docs, op)
		}
		sort.Strings(docs)
		t.Errorf("openapi.yaml describes %v, the server serves %v", docs, served)
	}
	checkRefs(t, doc, doc)
}

// checkRefs fails the test for every "$ref" under node that does not point
// at a node of root.
func checkRefs(t *testing.T, root map[string]any, node any) {
	t.Helper()
	switch n := node.(type) {
	case map[string]any:
		for k, v := range n {
			if k == "$ref" {
				ref, _ := v.(string)
				if resolve(root, ref) == nil {
					t.Errorf("$ref %q does not resolve", ref)
				}
				continue
			}
			checkRefs(t, root, v)
		}
	case []any:
		for _, v := range n {
			checkRefs(t, root, v)
		}
	}
}

func resolve(root map[string]any, ref string) any {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	var cur any = root
	for _, part := range strings.Split(rest, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}
