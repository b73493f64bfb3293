package client

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/keyrotor/keyrotor/metrics"
)

// EventKind says what an Event reports.
type EventKind uint8

const (
	// AuthFailure: the vendor refused the key of a request Transport sent
	// (401, or 403 with Transport.ForbiddenMeansRevoked). Status holds the
	// code.
	AuthFailure EventKind = iota + 1
	// ForcedRefresh: an authentication failure made the client read the
	// secret again, bypassing the cache.
	ForcedRefresh
	// StaleServe: a value older than the TTL was served because refreshing
	// it failed. Age is its age, Err why the refresh failed.
	StaleServe
)

func (k EventKind) String() string {
	switch k {
	case AuthFailure:
		return "AuthFailure"
	case ForcedRefresh:
		return "ForcedRefresh"
	case StaleServe:
		return "StaleServe"
	}
	return fmt.Sprintf("EventKind(%d)", k)
}

// Event is one thing the client reports through Options.OnEvent. It never
// carries a key.
type Event struct {
	Kind      EventKind
	SecretID  string
	Stage     string        // the staging label involved
	VersionID string        // the version whose key was refused, refreshed or served
	Status    int           // AuthFailure: the HTTP status
	Age       time.Duration // StaleServe: the age of the value served
	Err       error         // StaleServe: why the refresh failed
}

// DefaultNamespace is the CloudWatch namespace EMF writes to by default,
// the one keyrotor's own functions and alarms use.
const DefaultNamespace = metrics.DefaultNamespace

// Names of the metrics EMF writes, each with the dimension SecretName.
const (
	MetricAuthFailures    = "AuthFailures"
	MetricForcedRefreshes = "ForcedRefreshes"
	MetricStaleServes     = "StaleServes"
)

// EMF counts events per secret and writes them as CloudWatch Embedded
// Metric Format lines, one per secret per Flush, with the metrics
// AuthFailures, ForcedRefreshes and StaleServes (unit Count) and the
// dimension SecretName. Pass its Record as Options.OnEvent and call Flush on
// a timer (a minute suits CloudWatch's resolution) or at the end of each
// Lambda invocation, writing to stdout where the CloudWatch agent or Lambda
// picks the lines up. A secret, once seen, is written at every Flush, with
// zeros when nothing happened, so alarms see data rather than gaps.
type EMF struct {
	out *metrics.EMF

	mu     sync.Mutex
	counts map[string]*emfCounts
}

type emfCounts struct{ authFailures, forcedRefreshes, staleServes int }

// NewEMF returns an EMF writing to w under namespace ("" means
// DefaultNamespace).
func NewEMF(w io.Writer, namespace string) *EMF {
	return &EMF{out: metrics.New(w, namespace, nil), counts: make(map[string]*emfCounts)}
}

// Record counts e. It is safe for concurrent use.
func (m *EMF) Record(e Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.counts[e.SecretID]
	if n == nil {
		n = &emfCounts{}
		m.counts[e.SecretID] = n
	}
	switch e.Kind {
	case AuthFailure:
		n.authFailures++
	case ForcedRefresh:
		n.forcedRefreshes++
	case StaleServe:
		n.staleServes++
	}
}

// Flush writes one line per secret seen, in name order, with the counts
// since the last Flush, and resets them. It returns nil: like every
// keyrotor EMF line, a line that cannot be written is dropped.
func (m *EMF) Flush() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.counts))
	for name := range m.counts {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		n := m.counts[name]
		m.out.Put([]metrics.Dim{{Name: "SecretName", Value: name}}, nil,
			metrics.Metric{Name: MetricAuthFailures, Value: float64(n.authFailures), Unit: metrics.Count},
			metrics.Metric{Name: MetricForcedRefreshes, Value: float64(n.forcedRefreshes), Unit: metrics.Count},
			metrics.Metric{Name: MetricStaleServes, Value: float64(n.staleServes), Unit: metrics.Count},
		)
		*n = emfCounts{}
	}
	return nil
}
