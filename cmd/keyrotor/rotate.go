package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyrotor/keyrotor/internal/operator"
)

func newRotateCmd() *cobra.Command {
	var (
		opts   operator.RotateOptions
		asJSON bool
		fleet  fleetFlags
	)
	cmd := &cobra.Command{
		Use:   "rotate SECRET | rotate [NAME|GLOB...] [selectors]",
		Short: "Rotate a secret now, through Secrets Manager; --emergency revokes the old key at once",
		Long: `rotate calls Secrets Manager's RotateSecret for SECRET, with the rotation function and
schedule it already has (set by "keyrotor inventory apply"): Secrets Manager runs the four
steps, never keyrotor itself. Without --wait it returns once Secrets Manager has accepted the
rotation. It refuses (exit 4) when a rotation is already in progress, when the secret has no
rotation function, and for a while after a rollback (see "keyrotor rollback").

--wait follows the rotation step by step until the new key is AWSCURRENT, and exits 1 with
the failing step and its reason if it fails or does not finish within --timeout.

While it waits it prints, on standard error, a line each time what it waits for changes
(Secrets Manager, a step of the rotation function, the revoker), with the time elapsed, and
a "still waiting" line every 15 s on a terminal (every minute otherwise) while nothing
changes. Interrupted (Ctrl-C, SIGTERM), it stops waiting and says what it leaves behind:
the rotation goes on in Secrets Manager without keyrotor, which key is AWSCURRENT, which
keys are still live and the command that kills each.

--emergency is for a leaked key: it tags the secret keyrotor:emergency-token with this
rotation's ClientRequestToken, so the rotation function uses a grace period of 0 and the
revoker revokes the superseded keys as soon as the new key has passed testSecret, without
waiting for them to fall silent. It waits for the rotation, then, with a progress line
whenever the set changes, until the vendor confirms that every superseded key of the secret
is revoked: the leaked key, the key still in grace from the rotation before (AWSPREVIOUS),
and the keys of unlabelled versions. It exits 0 only then; otherwise, after --timeout, it
exits 1 listing each key still live with the command that revokes it now
("keyrotor revoke-key SECRET KEY_ID"), or, when the rotation itself did not finish, saying
that the leaked key is still AWSCURRENT and live and what to run. Applications still holding an old key fail until
they read the new one. A Stripe key cannot be rotated by API: it says what to do at Stripe
(roll the key in the dashboard, then "keyrotor import").

Over a selection (after an incident), rotate rotates every managed secret that matches:
names or globs ('*' matches any run, '/' included, as in keyrotor:admin-for), --provider,
--tag key=value, --criticality, --used-by (the keyrotor:used-by tag, or with --inventory
FILE the file's used_by), --from-file FILE|- (one name or glob a line). Kinds combine with
AND, repeated values of one flag with OR. It prints the plan (what each secret's rotation
function will do, and what cannot be rotated and why) and asks for confirmation on a
terminal; without a terminal it refuses (exit 2) unless --yes. --dry-run prints the plan
and changes nothing. Each secret is rotated as "rotate SECRET --wait" (or --emergency)
would, at most --max-in-flight provider=N at a time per provider and 20 per account and
region, started at most 13 per second per region (Secrets Manager's write quota); throttled
calls are retried, never given up. The report has one row per secret: its outcome, the new
key id and, for --emergency, whether every old key is confirmed dead, with the command that
kills each key still live. --incident ID names the run (one is generated and printed when
absent): a secret done in it is tagged keyrotor:incident=ID and skipped by a re-run with
the same ID, which retries the rest. --report FILE writes the JSON report. Exit codes over
a selection: 1 if a secret failed, else 3 if one needs a person, else 0; 4 when nothing was
started because nothing can be (or was confirmed).`,
		Example: `  keyrotor rotate demo/gateway --wait
  keyrotor rotate prod/internal-gateway-key --emergency   # a leaked key
  keyrotor rotate 'prod/*' --used-by ci-runner --emergency --dry-run
  keyrotor rotate --inventory api-keys.yaml --used-by payment-service --emergency --incident INC-42 --report inc-42.json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			sel, err := fleet.selector(cmd, args)
			if err != nil {
				return usageError{err}
			}
			if _, single := sel.Single(); !single || fleet.fleetOnly(cmd) {
				return runFleet(cmd, sel, fleet, opts, asJSON)
			}
			op, err := newOperator(cmd)
			if err != nil {
				return err
			}
			opts.ProgressEvery = progressEvery(cmd.ErrOrStderr())
			res, err := op.Rotate(cmd.Context(), args[0], opts)
			if err != nil {
				return exitWith(cmd, err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return printJSON(w, res)
			}
			switch {
			case res.Emergency:
				ids := make([]string, 0, len(res.Superseded))
				for _, k := range res.Superseded {
					ids = append(ids, k.KeyID)
				}
				revoked := "no other key was held by the secret"
				if len(ids) > 0 {
					revoked = "every superseded key is revoked: " + strings.Join(ids, ", ")
				}
				fmt.Fprintf(w, "%s: emergency rotation done: key %s is AWSCURRENT; %s\n", res.Secret, res.NewKeyID, revoked)
			case res.Finished:
				fmt.Fprintf(w, "%s: rotated: key %s is AWSCURRENT (version %s); the old key %s stays valid for its grace period\n", res.Secret, res.NewKeyID, res.VersionID, dashIfEmpty(res.OldKeyID))
			default:
				fmt.Fprintf(w, "%s: rotation started (version %s); follow it with `keyrotor status %s`\n", res.Secret, res.VersionID, res.Secret)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.Wait, "wait", false, "follow the rotation until the new key is AWSCURRENT")
	f.BoolVar(&opts.Emergency, "emergency", false, "grace period 0: revoke the superseded keys as soon as the new key works, and wait until every one is revoked")
	f.DurationVar(&opts.Timeout, "timeout", 15*time.Minute, "how long --wait and --emergency wait")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	fleet.register(f)
	return operatorCommand(cmd, cobra.ArbitraryArgs)
}

// progressEvery is how often a long wait repeats its state when nothing
// changes: every 15 s for a person at a terminal, every minute in a log.
func progressEvery(stderr io.Writer) time.Duration {
	if detectOutput(stderr).Terminal {
		return 15 * time.Second
	}
	return time.Minute
}
