package operator

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/providers"
)

// States of a key the vendor holds for a secret besides AWSCURRENT's and
// AWSPREVIOUS's (Status.OtherKeys).
const (
	// OtherAbandoned: only an unlabelled version holds it (superseded by
	// rotations closer together than the grace period, or minted by a
	// rotation a manual put-secret-value abandoned). The revoker revokes it
	// after its grace period; the next createSecret queues its revocation.
	OtherAbandoned = "abandoned"
	// OtherOrphan: named for this secret's identity and held by no version
	// (a crash between the vendor's create and the store): the next
	// createSecret revokes it.
	OtherOrphan = "orphan"
	// OtherUnowned: keyrotor cannot prove it is this secret's (a key of an
	// adopted IAM user, a key named under the first naming scheme, which
	// secrets of the same name elsewhere share): never revoked by keyrotor.
	OtherUnowned = "unowned"
)

// OtherKey is a key of the secret's owner at the vendor that neither
// AWSCURRENT nor AWSPREVIOUS holds.
type OtherKey struct {
	KeyID   string `json:"key_id"`
	State   string `json:"state"`
	Version string `json:"version_id,omitempty"`
}

// otherKeys asks the vendor for the owner's keys named for this secret (every
// key of the owner at a vendor without key names), and those named under the
// first scheme, and says of each key that neither AWSCURRENT nor AWSPREVIOUS
// holds what it is, by the rules reconcile and the revoker follow. It never
// revokes anything. s.versions must be listed (versionDates).
func (o *Operator) otherKeys(ctx context.Context, s *secret, l providers.Lister, cur, prev providers.Credential) ([]OtherKey, error) {
	id, err := keyrotor.ParseARN(aws.ToString(s.desc.ARN))
	if err != nil {
		return nil, err
	}
	keys, err := l.ListKeys(ctx, cur, keyrotor.KeyNamePrefix(id))
	if err != nil {
		return nil, fmt.Errorf("list the keys at %s: %w", cur.Provider, err)
	}
	known := map[string]bool{cur.KeyID: true, prev.KeyID: true, "": true}
	nameless := false
	var candidates []providers.KeyInfo
	for _, k := range keys {
		nameless = nameless || k.Name == ""
		if !known[k.ID] {
			candidates = append(candidates, k)
		}
	}
	var out []OtherKey
	if !nameless {
		legacy, err := l.ListKeys(ctx, cur, keyrotor.LegacyKeyNamePrefix(s.name()))
		if err != nil {
			return nil, fmt.Errorf("list the keys named under the first scheme at %s: %w", cur.Provider, err)
		}
		for _, k := range legacy {
			if !known[k.ID] && !strings.HasPrefix(k.Name, keyrotor.KeyNamePrefix(id)) {
				out = append(out, OtherKey{KeyID: k.ID, State: OtherUnowned})
			}
		}
	}
	if len(candidates) == 0 {
		return out, nil
	}
	holder, labelled, err := o.keyHolders(ctx, s)
	if err != nil {
		return nil, err
	}
	for _, k := range candidates {
		v, held := holder[k.ID]
		switch {
		case held && labelled[v]:
		case held:
			out = append(out, OtherKey{KeyID: k.ID, State: OtherAbandoned, Version: v})
		case k.Name == "":
			out = append(out, OtherKey{KeyID: k.ID, State: OtherUnowned})
		default:
			out = append(out, OtherKey{KeyID: k.ID, State: OtherOrphan})
		}
	}
	return out, nil
}

// keyHolders reads every version's key id: which version holds each key,
// and which versions carry a label.
func (o *Operator) keyHolders(ctx context.Context, s *secret) (holder map[string]string, labelled map[string]bool, err error) {
	holder, labelled = map[string]string{}, map[string]bool{}
	for _, v := range s.versions {
		vid := aws.ToString(v.VersionId)
		labelled[vid] = len(v.VersionStages) > 0
		c, found, err := o.read(ctx, "status", s.id, "", vid)
		if err != nil {
			return nil, nil, err
		}
		if found && c.KeyID != "" {
			if _, seen := holder[c.KeyID]; !seen || labelled[vid] {
				holder[c.KeyID] = vid
			}
		}
	}
	return holder, labelled, nil
}
