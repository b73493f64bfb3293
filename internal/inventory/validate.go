package inventory

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/keyrotor/keyrotor/providers"
)

// DefaultAdminSecretPrefix is the template's default AdminSecretPrefix: the
// rotation function of a provider may read only the admin secrets named
// <prefix><provider>*.
const DefaultAdminSecretPrefix = "keyrotor/admin/"

// ValidateOptions tune Validate.
type ValidateOptions struct {
	// Offline skips the checks that need AWS.
	Offline bool
	// AdminSecretPrefix is the stack's AdminSecretPrefix (default
	// DefaultAdminSecretPrefix).
	AdminSecretPrefix string
}

// Validate is `inventory validate`: it parses data and reports every problem
// in one pass, sorted by line, as one *Error: the fields of each entry, the
// checks across entries and, unless opts.Offline, the checks that need AWS
// on every entry whose fields are valid (the secret exists and holds the
// provider's value, its admin secret exists under the stack's
// AdminSecretPrefix, its bindings are in place). An operator who fixes the
// file by the list is not sent round again to find the next layer. A
// failing call (permission denied, endpoint down) is a plain error. It
// returns the inventory's valid entries with what it found.
func Validate(ctx context.Context, sm SecretsManager, iamc IAM, file string, data []byte, opts ValidateOptions) (*Inventory, []Entry, error) {
	inv, err := Parse(file, data)
	var all Error
	if !collect(&all, err) || inv == nil {
		return inv, nil, err
	}
	entries := inv.Entries()
	if !opts.Offline {
		described, err := Check(ctx, sm, file, entries)
		if !collect(&all, err) {
			return inv, entries, err
		}
		all.Issues = append(all.Issues, adminPrefixIssues(entries, described, opts.AdminSecretPrefix)...)
		if err := CheckAllBindings(ctx, sm, iamc, file, entries, described); !collect(&all, err) {
			return inv, entries, err
		}
	}
	if len(all.Issues) == 0 {
		return inv, entries, nil
	}
	all.File = file
	sortIssues(all.Issues)
	return inv, entries, &all
}

// collect adds the issues of an *Error to all; it reports false for another
// error, which ends the validation.
func collect(all *Error, err error) bool {
	var ie *Error
	switch {
	case err == nil:
		return true
	case errors.As(err, &ie):
		all.Issues = append(all.Issues, ie.Issues...)
		return true
	}
	return false
}

// adminPrefixIssues reports each admin_secret_id outside
// <prefix><provider>*, the only admin secrets the provider's rotation
// function may read (the template's ReadVendorAdminSecret statements): a rotation
// would fail on AccessDenied at its first vendor call.
func adminPrefixIssues(entries []Entry, described Described, prefix string) []Issue {
	if prefix == "" {
		prefix = DefaultAdminSecretPrefix
	}
	var out []Issue
	for _, e := range entries {
		sec, ok := described[e.SecretID]
		if !ok {
			continue
		}
		admin := sec.Current.Attr(providers.FieldAdminSecretID)
		want := prefix + e.Provider.Name
		if admin == "" || strings.HasPrefix(admin, want) {
			continue
		}
		out = append(out, Issue{e.Line, fmt.Sprintf("secret %q: admin_secret_id %q is not named %s*: the %s rotation function may read only those (the stack's AdminSecretPrefix, %s, then the provider); move the admin secret there, or pass --admin-secret-prefix if the stack sets another prefix", e.SecretID, admin, want, e.Provider.Name, prefix)})
	}
	return out
}
