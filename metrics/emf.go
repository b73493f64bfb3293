// Package metrics writes CloudWatch Embedded Metric Format (EMF) lines: one
// JSON object per line on a writer (a Lambda function's stdout), which
// CloudWatch Logs turns into metrics without any API call.
//
// Dimensions stay few and bounded (Provider, Step); a secret's name is a
// dimension only on the metrics an alarm needs per secret. Every line also
// declares the empty dimension set, so each metric exists as a total over all
// providers too: the template's alarms watch those totals (an alarm cannot
// sum over a dimension) and the dashboard breaks them down by provider.
package metrics

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// DefaultNamespace is the namespace of every keyrotor metric.
const DefaultNamespace = "KeyRotation"

// Units used by keyrotor metrics.
const (
	Count        = "Count"
	Milliseconds = "Milliseconds"
	Seconds      = "Seconds"
	None         = "None"
)

// Metric is one value to publish.
type Metric struct {
	Name  string
	Value float64
	Unit  string
}

// Dim is one dimension.
type Dim struct{ Name, Value string }

// EMF writes EMF lines. The zero value is not usable; use New. A nil *EMF
// discards everything, so code can record unconditionally.
type EMF struct {
	mu        sync.Mutex
	w         io.Writer
	namespace string
	now       func() time.Time
}

// New returns an EMF writer for namespace (DefaultNamespace if empty). now may
// be nil (time.Now).
func New(w io.Writer, namespace string, now func() time.Time) *EMF {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	if now == nil {
		now = time.Now
	}
	return &EMF{w: w, namespace: namespace, now: now}
}

type directive struct {
	Namespace  string       `json:"Namespace"`
	Dimensions [][]string   `json:"Dimensions"`
	Metrics    []metricDecl `json:"Metrics"`
}

type metricDecl struct {
	Name string `json:"Name"`
	Unit string `json:"Unit,omitempty"`
}

// Put writes one EMF line with the given dimensions and metrics. The line
// declares two dimension sets: dims, and the empty set (the total). Extra properties (not dimensions) may be given in props, for
// example a secret name or a version id for log searches; they must never be
// secret material.
func (e *EMF) Put(dims []Dim, props map[string]string, ms ...Metric) {
	if e == nil || len(ms) == 0 {
		return
	}
	root := make(map[string]any, len(dims)+len(ms)+len(props)+1)
	for k, v := range props {
		root[k] = v
	}
	names := make([]string, 0, len(dims))
	for _, d := range dims {
		root[d.Name] = d.Value
		names = append(names, d.Name)
	}
	decls := make([]metricDecl, 0, len(ms))
	for _, m := range ms {
		root[m.Name] = m.Value
		decls = append(decls, metricDecl{Name: m.Name, Unit: m.Unit})
	}
	root["_aws"] = map[string]any{
		"Timestamp":         e.now().UnixMilli(),
		"CloudWatchMetrics": []directive{{Namespace: e.namespace, Dimensions: dimensionSets(names), Metrics: decls}},
	}
	b, err := json.Marshal(root)
	if err != nil {
		return
	}
	b = append(b, '\n')
	e.mu.Lock()
	defer e.mu.Unlock()
	_, _ = e.w.Write(b)
}

// dimensionSets returns names and the empty set (the total), or only the
// empty set when there are no dimensions.
func dimensionSets(names []string) [][]string {
	if len(names) == 0 {
		return [][]string{{}}
	}
	return [][]string{names, {}}
}
