package revocation

import (
	"context"

	"github.com/keyrotor/keyrotor/notify"
)

// publish sends one event, if the Handler has a publisher.
func (h *Handler) publish(ctx context.Context, detailType string, d notify.Detail) {
	if h.opts.Events == nil {
		return
	}
	h.opts.Events.Publish(ctx, notify.Event{DetailType: detailType, Detail: d})
}

// detail names the secret (as DescribeSecret does), the key and the
// rotation that superseded it.
func (h *Handler) detail(m Message, sec described) notify.Detail {
	return notify.Detail{SecretARN: sec.id.String(), SecretName: sec.id.Name, Provider: m.Provider,
		OldVersionID: m.OldVersionID, NewVersionID: m.NewVersionID, OldKeyID: m.KeyID,
		Emergency: m.IsEmergency(), FinishedAt: m.FinishedAt, Time: h.opts.Now().UTC()}
}

// revoked announces that the old key is dead at its vendor.
func (h *Handler) revoked(ctx context.Context, m Message, sec described, alreadyGone bool) {
	d := h.detail(m, sec)
	d.Reason, d.AlreadyGone = m.Reason, alreadyGone
	h.publish(ctx, notify.KeyRevoked, d)
}
