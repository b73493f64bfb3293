package integration

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// emfDirective is the part of an EMF line the checks below read.
type emfDirective struct {
	AWS struct {
		CloudWatchMetrics []struct {
			Namespace  string
			Dimensions [][]string
			Metrics    []struct{ Name, Unit string }
		}
	} `json:"_aws"`
}

// TestEMFOfAFullRotation runs one rotation and its revocation with the
// compiled functions and checks their EMF lines: valid EMF (every declared
// metric and dimension at the root), in the configured namespace, with the
// step outcome and duration of each of the four steps by provider and step,
// and only bounded dimensions (Provider, Step), each line with the total
// (the empty dimension set) the alarms watch.
func TestEMFOfAFullRotation(t *testing.T) {
	s := newStack(t)
	const namespace = "KeyRotationEMFTest"
	fn := s.function("gateway", "METRICS_NAMESPACE="+namespace)
	revoker := s.function("revoker", "METRICS_NAMESPACE="+namespace)
	const secret = "prod/emf/gateway-key"
	old := s.gatewaySecret(secret, map[string]string{"keyrotor:grace-period": "1s"})
	s.rotate(fn, secret, tok(1))
	s.use(secret)
	if resp := s.deliver(revoker, s.messages(3)); len(resp.BatchItemFailures) != 0 {
		t.Fatalf("revoker failed: %v\n%s", resp, revoker.Logs())
	}

	rotationLines, revokerLines := emfLines(fn.Logs()), emfLines(revoker.Logs())
	assertValidEMF(t, rotationLines, "StepSucceeded", "StepDuration", "RotationSucceeded")
	assertValidEMF(t, revokerLines, "RevocationsDone")

	stepsSeen := map[string]bool{}
	for _, l := range append(rotationLines, revokerLines...) {
		if strings.Contains(l, secret) || strings.Contains(l, old.Key) {
			t.Fatalf("an EMF line names the secret or holds a key: %s", l)
		}
		var d emfDirective
		var root map[string]any
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal([]byte(l), &root)
		for _, dir := range d.AWS.CloudWatchMetrics {
			if dir.Namespace != namespace {
				t.Fatalf("namespace %q, want %q: %s", dir.Namespace, namespace, l)
			}
			if !slices.ContainsFunc(dir.Dimensions, func(set []string) bool { return len(set) == 0 }) {
				t.Fatalf("no total (empty dimension set): %s", l)
			}
			for _, set := range dir.Dimensions {
				if k := strings.Join(set, ","); k != "" && k != "Provider" && k != "Provider,Step" {
					t.Fatalf("dimension set [%s]: only Provider and Step are bounded: %s", k, l)
				}
			}
			if root["Provider"] != "gateway" {
				t.Fatalf("Provider %v: %s", root["Provider"], l)
			}
			for _, m := range dir.Metrics {
				if m.Name == "StepDuration" {
					if m.Unit != "Milliseconds" {
						t.Fatalf("StepDuration in %q: %s", m.Unit, l)
					}
					stepsSeen[fmt.Sprint(root["Step"])] = true
				}
			}
		}
	}
	for _, st := range steps {
		if !stepsSeen[st] {
			t.Errorf("no StepDuration for %s among %d lines", st, len(rotationLines))
		}
	}
}
