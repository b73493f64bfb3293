package local

import (
	"bufio"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// MetricRecord is one metric value of an EMF line a function printed.
type MetricRecord struct {
	Function   string // the stack's name of the function: gateway, revoker...
	Namespace  string
	Name       string
	Value      float64
	Unit       string
	Dimensions map[string]string
	Time       time.Time
}

// ParseEMF returns the metric values of the CloudWatch Embedded Metric Format
// lines in a function's output, in order.
func ParseEMF(function, logs string) []MetricRecord {
	var out []MetricRecord
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, `{`)
		if i < 0 || !strings.Contains(line, `"_aws"`) {
			continue
		}
		var root map[string]json.RawMessage
		if json.Unmarshal([]byte(line[i:]), &root) != nil {
			continue
		}
		var meta struct {
			Timestamp         int64 `json:"Timestamp"`
			CloudWatchMetrics []struct {
				Namespace  string     `json:"Namespace"`
				Dimensions [][]string `json:"Dimensions"`
				Metrics    []struct {
					Name string `json:"Name"`
					Unit string `json:"Unit"`
				} `json:"Metrics"`
			} `json:"CloudWatchMetrics"`
		}
		if json.Unmarshal(root["_aws"], &meta) != nil {
			continue
		}
		str := func(k string) string {
			var s string
			_ = json.Unmarshal(root[k], &s)
			return s
		}
		for _, d := range meta.CloudWatchMetrics {
			dims := map[string]string{}
			for _, set := range d.Dimensions {
				for _, k := range set {
					dims[k] = str(k)
				}
			}
			for _, m := range d.Metrics {
				var v float64
				if json.Unmarshal(root[m.Name], &v) != nil {
					continue
				}
				out = append(out, MetricRecord{
					Function: function, Namespace: d.Namespace, Name: m.Name, Value: v, Unit: m.Unit,
					Dimensions: dims, Time: time.UnixMilli(meta.Timestamp),
				})
			}
		}
	}
	return out
}

// MetricSummary aggregates the values of one metric with one set of
// dimensions.
type MetricSummary struct {
	Namespace  string
	Name       string
	Dimensions string // "Provider=gateway Step=createSecret"
	Unit       string
	Count      int
	Sum        float64
}

// SummarizeMetrics groups records by namespace, name and dimensions, sorted.
func SummarizeMetrics(records []MetricRecord) []MetricSummary {
	idx := map[string]int{}
	var out []MetricSummary
	for _, r := range records {
		keys := make([]string, 0, len(r.Dimensions))
		for k := range r.Dimensions {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, k+"="+r.Dimensions[k])
		}
		dims := strings.Join(parts, " ")
		key := r.Namespace + "\x00" + r.Name + "\x00" + dims
		i, ok := idx[key]
		if !ok {
			i = len(out)
			idx[key] = i
			out = append(out, MetricSummary{Namespace: r.Namespace, Name: r.Name, Dimensions: dims, Unit: r.Unit})
		}
		out[i].Count++
		out[i].Sum += r.Value
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Dimensions < b.Dimensions
	})
	return out
}

// String is one line: "KeyRotation/StepSucceeded{Provider=gateway Step=createSecret} sum=1 (1 value)".
func (m MetricSummary) String() string {
	unit := ""
	if m.Unit != "" && m.Unit != "Count" && m.Unit != "None" {
		unit = " " + m.Unit
	}
	return fmt.Sprintf("%s/%s{%s} sum=%g%s (%d values)", m.Namespace, m.Name, m.Dimensions, m.Sum, unit, m.Count)
}
