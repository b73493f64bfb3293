package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/spf13/cobra"

	"github.com/keyrotor/keyrotor/internal/inventory"
)

func newInventoryCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inventory",
		Short: "Validate, plan and apply an API key inventory (the guide's api_keys and rotation_schedules)",
		Long: `inventory manages the rotation of many secrets from one YAML file in the guide's format:
api_keys (name, provider, environment, used_by, vault_path, rotation_frequency,
supports_dual_key, provider_api, criticality) and rotation_schedules (secret, provider,
schedule as a 5-field cron in UTC, grace_period, alert_on_failure, rollback_on_failure).

  validate  checks every field and reports each problem with its line
  plan      prints what apply would change
  apply     tags the secrets and sets their rotation, without rotating them now

Providers may be spelled as in the guide ("SendGrid", "Internal API Gateway",
"internal_gateway"). A 5-field cron becomes a Secrets Manager cron(...) expression; one it
cannot run (a minute other than 0, both day fields restricted, rotations closer than 4
hours) is an error, as is a grace period not shorter than the rotation interval. A schedule
for a vendor without a key API (Stripe) becomes a key-age reminder (tags read by status), not a
rotation.`,
	}
	cmd.AddCommand(newInventoryValidateCmd(), newInventoryPlanCmd(), newInventoryApplyCmd())
	return cmd
}

func newInventoryValidateCmd() *cobra.Command {
	var opts inventory.ValidateOptions
	cmd := &cobra.Command{
		Use:   "validate FILE",
		Short: "Check an inventory file; every problem is reported with its line",
		Long: `validate parses FILE and checks every field: known providers, 5-field cron schedules
Secrets Manager can run, durations, grace periods shorter than the rotation interval,
secret names, duplicate entries, iam_user on IAM keys only. A grace period at or below
1h (the default refresh of AWS's caching libraries and External Secrets Operator) is a
warning on standard error, not a problem. Unless --offline, it also checks
in Secrets Manager that every secret exists and holds a value of the inventory's provider,
that the admin secret a value names (admin_secret_id) exists and is named
<AdminSecretPrefix><provider>..., the only admin secrets the rotation function may read,
and lists the bindings each secret lacks, with the command that adds each: an IAM user
without the tag keyrotor:secret = the secret's ARN, an admin secret whose keyrotor:admin-for
patterns do not match the secret's name. Every problem is found in one pass (the checks in
Secrets Manager run on each entry whose fields are valid) and printed as FILE:LINE: message,
sorted by line; validate then exits 3.`,
		Example: `  keyrotor inventory validate --offline inventory.yaml
  keyrotor inventory validate inventory.yaml
  keyrotor inventory validate --admin-secret-prefix team-a/admin/ inventory.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readInventory(args[0])
			if err != nil {
				return exitWith(cmd, err)
			}
			var (
				sm   inventory.SecretsManager
				iamc inventory.IAM
			)
			if !opts.Offline {
				c, err := newAWSClients(cmd)
				if err != nil {
					return err
				}
				sm, iamc = c.SecretsManager, iam.NewFromConfig(c.Config)
			}
			inv, entries, err := inventory.Validate(cmd.Context(), sm, iamc, args[0], data, opts)
			printWarnings(cmd, args[0], inv)
			if err != nil {
				return exitWith(cmd, inventoryProblems(cmd, err))
			}
			mode := "checked in Secrets Manager"
			if opts.Offline {
				mode = "offline: secrets not checked"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid: %s, %s, %s (%s)\n", args[0], inventory.Count(len(inv.APIKeys), "api key"),
				inventory.Count(len(inv.Schedules), "schedule"), inventory.Count(len(entries), "secret"), mode)
			return nil
		},
	}
	cmd.Flags().BoolVar(&opts.Offline, "offline", false, "skip the checks that need AWS (secrets exist and hold the right provider)")
	cmd.Flags().StringVar(&opts.AdminSecretPrefix, "admin-secret-prefix", inventory.DefaultAdminSecretPrefix, "the stack's AdminSecretPrefix: admin_secret_id must name <prefix><provider>...")
	return operatorCommand(cmd, cobra.ExactArgs(1))
}

// functionARNFlags resolve the rotation function of each provider.
type functionARNFlags struct {
	arns  []string
	stack string
}

func (a *functionARNFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&a.arns, "function-arn", nil, "PROVIDER=ARN: the rotation function of a provider (repeatable)")
	cmd.Flags().StringVar(&a.stack, "stack", "", "the SAM stack name: find the function STACK-PROVIDER-rotation in Lambda")
}

// resolver returns the function ARN of each provider; --stack looks each
// provider up in Lambda once, with cfg.
func (a *functionARNFlags) resolver(ctx context.Context, cfg aws.Config) (inventory.FunctionARNs, error) {
	given := map[string]string{}
	for _, kv := range a.arns {
		p, arn, ok := strings.Cut(kv, "=")
		if !ok || p == "" || arn == "" {
			return nil, usageError{fmt.Errorf("--function-arn %q: want PROVIDER=ARN", kv)}
		}
		prov, known := inventory.LookupProvider(p)
		if !known {
			return nil, usageError{fmt.Errorf("--function-arn %q: unknown provider %q (known: %s)", kv, p, strings.Join(inventory.ProviderNames(), ", "))}
		}
		if !prov.KeyAPI {
			return nil, usageError{fmt.Errorf("--function-arn %q: %s has no key API and no rotation function (its schedule is a key-age reminder)", kv, prov.Name)}
		}
		given[prov.Name] = arn
	}
	var (
		lc    *lambda.Client
		found = map[string]string{}
	)
	return func(provider string) (string, error) {
		if arn := given[provider]; arn != "" {
			return arn, nil
		}
		if arn := os.Getenv("KEYROTOR_" + strings.ToUpper(provider) + "_FUNCTION_ARN"); arn != "" {
			return arn, nil
		}
		if a.stack != "" {
			if arn := found[provider]; arn != "" {
				return arn, nil
			}
			if lc == nil {
				lc = lambda.NewFromConfig(cfg)
			}
			name := a.stack + "-" + provider + "-rotation"
			out, err := lc.GetFunction(ctx, &lambda.GetFunctionInput{FunctionName: aws.String(name)})
			if err != nil {
				return "", fmt.Errorf("find the rotation function of %s: lambda.GetFunction(%s): %w", provider, name, err)
			}
			found[provider] = aws.ToString(out.Configuration.FunctionArn)
			return found[provider], nil
		}
		return "", fmt.Errorf("no rotation function for provider %q: pass --function-arn %s=ARN or --stack NAME, or set KEYROTOR_%s_FUNCTION_ARN", provider, provider, strings.ToUpper(provider))
	}, nil
}

func newInventoryPlanCmd() *cobra.Command {
	var arns functionARNFlags
	cmd := &cobra.Command{
		Use:   "plan FILE",
		Short: "Print what inventory apply would change",
		Long: `plan validates FILE (as validate does, with the Secrets Manager checks), then compares
each secret with the inventory and prints what apply would change: tags to set, and the
rotation to set (function ARN, cron(...) or rate(...) schedule, window). Nothing is changed.

The rotation function of each provider comes from --function-arn PROVIDER=ARN, else the
variable KEYROTOR_<PROVIDER>_FUNCTION_ARN (the local stack exports them), else --stack.`,
		Example: `  keyrotor inventory plan inventory.yaml --stack keyrotor`,
		RunE: func(cmd *cobra.Command, args []string) error {
			changes, _, _, err := inventoryPlan(cmd, args[0], &arns)
			if err != nil {
				return exitWith(cmd, err)
			}
			printInventoryPlan(cmd.OutOrStdout(), changes)
			return exitWith(cmd, inventory.Refusals(changes))
		},
	}
	arns.add(cmd)
	return operatorCommand(cmd, cobra.ExactArgs(1))
}

func newInventoryApplyCmd() *cobra.Command {
	var (
		arns  functionARNFlags
		quiet bool
	)
	cmd := &cobra.Command{
		Use:   "apply FILE",
		Short: "Tag the secrets and set their rotation schedules (never rotates now)",
		Long: `apply validates FILE and plans as plan does, then changes what differs: it tags each
secret (keyrotor:managed, keyrotor:grace-period, keyrotor:provider, the inventory's fields),
binds the IAM user an api key names in iam_user (iam:TagUser keyrotor:secret = the secret's
ARN; on failure it prints the aws command that does it), then sets its rotation with
RotateSecret and RotateImmediately=false, so that nothing rotates now. Applying the same
file twice changes nothing the second time. It goes on past a secret it cannot change,
reports one progress line per secret on standard error, and exits 1 if any secret failed.

It never writes an admin secret's keyrotor:admin-for (that widens what a management
credential may be used for): it prints the command instead. It refuses (exit 4, nothing
changed for any secret) when a secret's value names another IAM user than its iam_user, when
the user is bound to another secret, or when the user does not exist.`,
		Example: `  keyrotor inventory apply inventory.yaml --function-arn gateway=arn:aws:lambda:...`,
		RunE: func(cmd *cobra.Command, args []string) error {
			changes, sm, iamc, err := inventoryPlan(cmd, args[0], &arns)
			if err != nil {
				return exitWith(cmd, err)
			}
			if err := inventory.Refusals(changes); err != nil {
				return exitWith(cmd, err)
			}
			stderr := cmd.ErrOrStderr()
			for _, c := range changes {
				for _, note := range c.Notes {
					fmt.Fprintf(stderr, "%s: note: %s\n", c.Entry.SecretID, note)
				}
			}
			changed, failed := 0, 0
			err = inventory.Apply(cmd.Context(), sm, iamc, changes, func(done, total int, c inventory.Change, err error) {
				status := "unchanged"
				switch {
				case err != nil:
					status = "FAILED: " + err.Error()
					failed++
				case !c.Empty():
					status = "updated"
					changed++
				}
				if !quiet || err != nil {
					fmt.Fprintf(stderr, "[%d/%d] %s: %s\n", done, total, c.Entry.SecretID, status)
				}
			})
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s updated, %d unchanged, %d failed\n", args[0], inventory.Count(changed, "secret"), len(changes)-changed-failed, failed)
			if err != nil {
				return fmt.Errorf("inventory apply %s: %d of %s failed (see above)", args[0], failed, inventory.Count(len(changes), "secret"))
			}
			return nil
		},
	}
	arns.add(cmd)
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only failures and the summary")
	return operatorCommand(cmd, cobra.ExactArgs(1))
}

// inventoryLoad reads and parses FILE; an invalid inventory prints its
// problems and is a problemsError. Its warnings (a grace period at or below
// the common 1h refresh) are printed on standard error.
func inventoryLoad(cmd *cobra.Command, file string) (*inventory.Inventory, error) {
	data, err := readInventory(file)
	if err != nil {
		return nil, err
	}
	inv, err := inventory.Parse(file, data)
	if err != nil {
		return nil, inventoryProblems(cmd, err)
	}
	printWarnings(cmd, file, inv)
	return inv, nil
}

// printWarnings prints an inventory's warnings on standard error: they never
// change the exit code.
func printWarnings(cmd *cobra.Command, file string, inv *inventory.Inventory) {
	if inv == nil {
		return
	}
	for _, w := range inv.Warnings() {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s:%d: warning: %s\n", file, w.Line, w.Msg)
	}
}

// readInventory reads FILE; failing to is a usage error.
func readInventory(file string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, usageError{fmt.Errorf("read inventory: %w", err)}
	}
	return data, nil
}

// inventoryProblems prints an *inventory.Error's issues and turns it into a
// problemsError; other errors pass.
func inventoryProblems(cmd *cobra.Command, err error) error {
	var ie *inventory.Error
	if !errors.As(err, &ie) {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), ie.Error())
	return problemsError{ie.Summary()}
}

// inventoryPlan loads, checks and plans FILE with one AWS configuration,
// and returns the Secrets Manager and IAM clients apply goes on with.
func inventoryPlan(cmd *cobra.Command, file string, arns *functionARNFlags) ([]inventory.Change, inventory.SecretsManager, inventory.IAMTagger, error) {
	inv, err := inventoryLoad(cmd, file)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := newAWSClients(cmd)
	if err != nil {
		return nil, nil, nil, err
	}
	resolve, err := arns.resolver(cmd.Context(), c.Config)
	if err != nil {
		return nil, nil, nil, err
	}
	entries := inv.Entries()
	described, err := inventory.Check(cmd.Context(), c.SecretsManager, file, entries)
	if err != nil {
		return nil, nil, nil, inventoryProblems(cmd, err)
	}
	iamc := iam.NewFromConfig(c.Config)
	changes, err := inventory.Plan(cmd.Context(), c.SecretsManager, iamc, entries, described, resolve)
	return changes, c.SecretsManager, iamc, err
}

func printInventoryPlan(w io.Writer, changes []inventory.Change) {
	n := 0
	for _, c := range changes {
		mark := "="
		if !c.Empty() {
			mark = "~"
			n++
		}
		fmt.Fprintf(w, "%s %s (%s, line %d)\n", mark, c.Entry.SecretID, c.Entry.Provider.Name, c.Entry.Line)
		keys := make([]string, 0, len(c.SetTags))
		for k := range c.SetTags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "    tag %s = %s\n", k, c.SetTags[k])
		}
		if c.BindUser != "" {
			fmt.Fprintf(w, "    bind IAM user %s: tag keyrotor:secret = this secret's ARN\n", c.BindUser)
		}
		if r := c.Rotation; r != nil {
			fmt.Fprintf(w, "    rotation: %s, schedule %s, window %s (not rotated now)\n", r.FunctionARN, r.Expression, r.Window)
		}
		if c.Refused != "" {
			fmt.Fprintf(w, "    REFUSED: %s\n", c.Refused)
		}
		for _, note := range c.Notes {
			fmt.Fprintf(w, "    note: %s\n", note)
		}
	}
	fmt.Fprintf(w, "%d of %s would change\n", n, inventory.Count(len(changes), "secret"))
}
