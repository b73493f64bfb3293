package inventory

import (
	"context"
	"errors"
)

// The tests reach what inventory gained for issue 10 (bindings) only
// through this file, so that they can be run once against the code before
// it (this file swapped for stubs by `go test -overlay`) and fail there on
// an assertion, not on compilation.

func planIAM(ctx context.Context, sm SecretsManager, iamc *fakeIAM, entries []Entry, described Described) ([]Change, error) {
	if iamc == nil {
		return Plan(ctx, sm, nil, entries, described, functionARN)
	}
	return Plan(ctx, sm, iamc, entries, described, functionARN)
}

func applyIAM(ctx context.Context, sm SecretsManager, iamc *fakeIAM, changes []Change) error {
	if iamc == nil {
		return Apply(ctx, sm, nil, changes, nil)
	}
	return Apply(ctx, sm, iamc, changes, nil)
}

func validateBindings(ctx context.Context, sm SecretsManager, iamc *fakeIAM, entries []Entry, described Described) error {
	return CheckAllBindings(ctx, sm, iamc, "inventory.yaml", entries, described)
}

func isRefused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}

// validate runs `inventory validate`'s checks over the fakes (issue 12: one
// pass over every layer).
func validate(ctx context.Context, sm SecretsManager, iamc *fakeIAM, file string, data []byte, prefix string) error {
	_, _, err := Validate(ctx, sm, iamc, file, data, ValidateOptions{AdminSecretPrefix: prefix})
	return err
}
