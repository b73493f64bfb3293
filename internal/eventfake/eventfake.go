// Package eventfake is a recording event publisher for tests of the
// rotation engine and the revoker: it keeps every event published, in
// order, and lets a test look at the world at the moment of publishing.
package eventfake

import (
	"context"
	"sync"

	"github.com/keyrotor/keyrotor/notify"
)

// Recorder records events. The zero value is usable and safe for
// concurrent use.
type Recorder struct {
	mu     sync.Mutex
	events []notify.Event
	// OnPublish, when set, runs for each event before it is recorded;
	// returning false loses it (a function that died right after it
	// changed something, before its event went out).
	OnPublish func(notify.Event) bool
}

// Publish records e.
func (r *Recorder) Publish(_ context.Context, e notify.Event) {
	if r.OnPublish != nil && !r.OnPublish(e) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// Events returns the events recorded so far.
func (r *Recorder) Events() []notify.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notify.Event(nil), r.events...)
}

// Of returns the recorded events of one detail-type.
func (r *Recorder) Of(detailType string) []notify.Event {
	var out []notify.Event
	for _, e := range r.Events() {
		if e.DetailType == detailType {
			out = append(out, e)
		}
	}
	return out
}

// Types returns the detail-types recorded, in order.
func (r *Recorder) Types() []string {
	var out []string
	for _, e := range r.Events() {
		out = append(out, e.DetailType)
	}
	return out
}
