package operator

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor"
	"github.com/keyrotor/keyrotor/internal/inventory"
)

// Selector picks managed secrets for a fleet rotation. Kinds combine with
// AND, the values of one kind with OR; an empty kind selects everything.
// Names (positional arguments and --from-file together) are exact names or
// globs with the keyrotor:admin-for matcher ('*' matches any run, '/'
// included: keyrotor.MatchAdminFor), so one syntax names secrets everywhere.
type Selector struct {
	Names         []string
	Providers     []string
	Tags          []TagFilter
	Criticalities []string
	UsedBy        []string
	// Inventory, when set, is where UsedBy and Criticalities are read
	// (each secret's keyrotor:used-by and keyrotor:criticality as the file
	// says) instead of the secrets' own tags.
	Inventory *inventory.Inventory
}

// TagFilter is one --tag key=value.
type TagFilter struct{ Key, Value string }

// ParseTagFilter parses "key=value".
func ParseTagFilter(s string) (TagFilter, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return TagFilter{}, fmt.Errorf("--tag %q: want key=value", s)
	}
	return TagFilter{Key: k, Value: v}, nil
}

// Empty reports whether the selector names nothing at all (which would
// select every managed secret: refused by the CLI).
func (sel Selector) Empty() bool {
	return len(sel.Names) == 0 && len(sel.Providers) == 0 && len(sel.Tags) == 0 && len(sel.Criticalities) == 0 && len(sel.UsedBy) == 0
}

// MayMatchMany reports whether the selection can match more than one
// secret: anything but one exact name. Only then does the CLI ask for a
// confirmation, so that the single-secret runbook never prompts.
func (sel Selector) MayMatchMany() bool {
	exact := 0
	for _, n := range sel.Names {
		if strings.ContainsAny(n, "*,") {
			return true
		}
		exact++
	}
	return exact != 1
}

// Single returns the one exact name of a selection made of it alone.
func (sel Selector) Single() (string, bool) {
	if len(sel.Names) != 1 || strings.ContainsAny(sel.Names[0], "*,") {
		return "", false
	}
	other := sel
	other.Names = nil
	return sel.Names[0], other.Empty()
}

// matchesListed applies every kind but the provider, which needs the
// secret's value: the name, the tags, and used-by and criticality from the
// tags or the inventory.
func (sel Selector) matchesListed(name string, tags map[string]string, inv map[string]map[string]string) bool {
	if len(sel.Names) > 0 && !slices.ContainsFunc(sel.Names, func(p string) bool { return keyrotor.MatchAdminFor(p, name) }) {
		return false
	}
	if len(sel.Tags) > 0 && !slices.ContainsFunc(sel.Tags, func(f TagFilter) bool { v, ok := tags[f.Key]; return ok && v == f.Value }) {
		return false
	}
	meta := tags
	if sel.Inventory != nil {
		meta = inv[name] // nil: the file does not list it
	}
	if len(sel.Criticalities) > 0 && !slices.Contains(sel.Criticalities, meta[inventory.TagCriticality]) {
		return false
	}
	if len(sel.UsedBy) > 0 && !slices.ContainsFunc(strings.Fields(meta[inventory.TagUsedBy]), func(app string) bool { return slices.Contains(sel.UsedBy, app) }) {
		return false
	}
	return true
}

// matchesProvider applies the provider kind.
func (sel Selector) matchesProvider(provider string) bool {
	return len(sel.Providers) == 0 || slices.Contains(sel.Providers, provider)
}

// selectListed lists the managed secrets (one ListSecrets pass, tags
// included) that match every kind but the provider, by name.
func (o *Operator) selectListed(ctx context.Context, sel Selector) ([]smtypes.SecretListEntry, error) {
	entries, err := o.managed(ctx)
	if err != nil {
		return nil, err
	}
	var inv map[string]map[string]string
	if sel.Inventory != nil {
		inv = map[string]map[string]string{}
		for _, e := range sel.Inventory.Entries() {
			inv[e.SecretID] = e.Tags
		}
	}
	var out []smtypes.SecretListEntry
	for _, e := range entries {
		tags := map[string]string{}
		for _, t := range e.Tags {
			tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
		if sel.matchesListed(aws.ToString(e.Name), tags, inv) {
			out = append(out, e)
		}
	}
	return out, nil
}
