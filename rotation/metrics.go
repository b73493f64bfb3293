package rotation

import (
	"time"

	"github.com/keyrotor/keyrotor/metrics"
	"github.com/keyrotor/keyrotor/providers"
)

// Metric names the rotation functions publish (namespace KeyRotation).
const (
	MetricStepSucceeded      = "StepSucceeded"
	MetricStepFailed         = "StepFailed"
	MetricStepDuration       = "StepDuration"
	MetricRotationSucceeded  = "RotationSucceeded"
	MetricRotationFailed     = "RotationFailed"
	MetricVendorAuthFailures = "VendorAuthFailures"
)

// record writes the EMF lines of one step: its outcome and duration by
// provider and step; a finished or failed rotation by provider; a vendor
// authentication failure by provider.
func (r *Rotator) record(step string, o outcome, err error, took time.Duration) {
	m := r.opts.Metrics
	if m == nil {
		return
	}
	if !validStep(step) {
		step = "unknown"
	}
	provider := metrics.Dim{Name: "Provider", Value: r.p.Name()}
	byStep := []metrics.Dim{provider, {Name: "Step", Value: step}}
	result := metrics.Metric{Name: MetricStepSucceeded, Value: 1, Unit: metrics.Count}
	if err != nil {
		result.Name = MetricStepFailed
	}
	m.Put(byStep, map[string]string{"Outcome": string(o)}, result,
		metrics.Metric{Name: MetricStepDuration, Value: float64(took.Milliseconds()), Unit: metrics.Milliseconds})
	switch {
	case err != nil:
		m.Put([]metrics.Dim{provider}, map[string]string{"Step": step, "Kind": providers.KindOf(err).String()},
			metrics.Metric{Name: MetricRotationFailed, Value: 1, Unit: metrics.Count})
		if providers.KindOf(err) == providers.Permission {
			m.Put([]metrics.Dim{provider}, map[string]string{"Step": step},
				metrics.Metric{Name: MetricVendorAuthFailures, Value: 1, Unit: metrics.Count})
		}
	case Step(step) == FinishSecret && o == done:
		m.Put([]metrics.Dim{provider}, nil, metrics.Metric{Name: MetricRotationSucceeded, Value: 1, Unit: metrics.Count})
	}
}

func validStep(s string) bool {
	switch Step(s) {
	case CreateSecret, SetSecret, TestSecret, FinishSecret:
		return true
	}
	return false
}
