package operator

import (
	"context"
	"slices"
	"time"

	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/rotation"
)

// keyLimits are the vendors that allow an owner only so many keys: IAM,
// two access keys per user, inactive ones included. A plain rotation that
// starts while the previous key is in its grace period finds the user at
// the limit and fails at createSecret (it never deletes a key in grace).
var keyLimits = map[string]int{"iam": 2}

// refuseAtKeyLimit refuses a plain rotation up front when the owner of the
// current key holds the vendor's maximum of keys and one of them is the
// previous key, still in its grace period: the rotation would fail at
// createSecret and leave AWSPENDING behind. The refusal says when the
// rotation becomes possible: the end of the grace period, when the revoker
// deletes the previous key. When any of that cannot be read it refuses
// nothing: the rotation's own error then says what failed. An emergency
// never comes here (it supersedes the previous key at once).
func (o *Operator) refuseAtKeyLimit(ctx context.Context, op string, s *secret, cur providers.Credential) error {
	limit, ok := keyLimits[cur.Provider]
	if !ok || s.previous == "" {
		return nil
	}
	p, err := o.provider(cur.Provider)
	if err != nil {
		return nil
	}
	l, ok := p.(providers.Lister)
	if !ok {
		return nil
	}
	keys, err := l.ListKeys(ctx, cur, "")
	if err != nil || len(keys) < limit {
		return nil
	}
	prev, found, err := o.read(ctx, op, s.id, rotation.Previous, "")
	if err != nil || !found || prev.KeyID == "" || prev.KeyID == cur.KeyID ||
		!slices.ContainsFunc(keys, func(k providers.KeyInfo) bool { return k.ID == prev.KeyID }) {
		return nil
	}
	grace, known, _ := o.grace(ctx, s)
	if !known || o.versionDates(ctx, op, s) != nil {
		return nil
	}
	switched := s.created[s.current]
	if lr := s.desc.LastRotatedDate; lr != nil && lr.After(switched) {
		switched = *lr
	}
	if switched.IsZero() {
		return nil
	}
	until := switched.Add(grace)
	if !o.now().Before(until) {
		return nil
	}
	return refused(op, s.id, "%s allows %d keys per owner and the owner holds %d, one of them the previous key %s, in its grace period until %s: the rotation would fail at createSecret. Rotation is possible after %s, when the grace period ends and the revoker deletes that key (rotate --emergency does not wait: it revokes the previous key at once)",
		cur.Provider, limit, len(keys), prev.KeyID, until.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
}
