package metrics

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestPutWritesOneValidLine(t *testing.T) {
	var buf bytes.Buffer
	at := time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC)
	e := New(&buf, "", func() time.Time { return at })
	e.Put([]Dim{{"Provider", "gateway"}, {"Step", "createSecret"}}, map[string]string{"Outcome": "created"},
		Metric{Name: "StepSucceeded", Value: 1, Unit: Count},
		Metric{Name: "StepDuration", Value: 12, Unit: Milliseconds})
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d lines, want 1: %q", len(lines), buf.String())
	}
	var root struct {
		AWS struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
		Provider, Step, Outcome     string
		StepSucceeded, StepDuration float64
	}
	if err := json.Unmarshal([]byte(lines[0]), &root); err != nil {
		t.Fatal(err)
	}
	d := root.AWS.CloudWatchMetrics
	if root.AWS.Timestamp != at.UnixMilli() || len(d) != 1 || d[0].Namespace != DefaultNamespace {
		t.Fatalf("directive %+v", root.AWS)
	}
	if got := d[0].Dimensions; len(got) != 2 || strings.Join(got[0], ",") != "Provider,Step" || len(got[1]) != 0 {
		t.Fatalf("dimension sets %v, want [[Provider Step] []] (by provider and step, and the total)", got)
	}
	if root.Provider != "gateway" || root.Step != "createSecret" || root.Outcome != "created" || root.StepSucceeded != 1 || root.StepDuration != 12 {
		t.Fatalf("root members %+v", root)
	}
	if d[0].Metrics[1].Name != "StepDuration" || d[0].Metrics[1].Unit != Milliseconds {
		t.Fatalf("metrics %+v", d[0].Metrics)
	}
}

func TestPutWithoutDimensionsDeclaresTheEmptySet(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, "Custom", nil).Put(nil, nil, Metric{Name: "X", Value: 2, Unit: Count})
	if !strings.Contains(buf.String(), `"Dimensions":[[]]`) || !strings.Contains(buf.String(), `"Namespace":"Custom"`) {
		t.Fatalf("line %s", buf.String())
	}
}

func TestNilAndEmptyPutWriteNothing(t *testing.T) {
	var e *EMF
	e.Put([]Dim{{"Provider", "x"}}, nil, Metric{Name: "X", Value: 1})
	var buf bytes.Buffer
	New(&buf, "", nil).Put([]Dim{{"Provider", "x"}}, nil)
	if buf.Len() != 0 {
		t.Fatalf("wrote %q without metrics", buf.String())
	}
}
