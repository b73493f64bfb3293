package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyrotor/keyrotor/internal/operator"
)

func newUnstickCmd() *cobra.Command {
	var (
		opts   operator.UnstickOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "unstick SECRET",
		Short: "Clear a stuck rotation and queue the revocation of the key it minted",
		Long: `unstick clears a rotation that will not finish (AWSPENDING on a version that is not
AWSCURRENT, which blocks every later rotation): it removes AWSPENDING, so that rotation can
run again, then queues the revocation of the key that attempt stored in the version (reason
"abandoned") to the revoker, delayed past the rotation function's timeout (read with
lambda:GetFunctionConfiguration, else 900 s) plus 2 minutes. It never revokes a key itself:
a finishSecret of the attempt that had already passed its checks can still make that version
AWSCURRENT, and the revoker revokes the key only if the version is still unlabelled when the
message fires. Keys the vendor lists under the attempt's key name that no version holds are
revoked by the next rotation's createSecret. The current and previous keys are never touched.

The revocation queue is the rotation function's REVOCATION_QUEUE_URL, else
KEYROTOR_REVOCATION_QUEUE_URL. It refuses (exit 4, nothing changed) when no rotation is
pending, when no queue is known, and when the pending rotation started less than 30 minutes
ago and may still be running, unless --force.

--skip-vendor is the way out when the vendor or the revocation queue cannot be used (the
admin secret missing or revoked): it clears AWSPENDING reading nothing but the pending
version, and only when that version holds no value (the attempt failed before it minted a
key). Otherwise it refuses and prints the aws secretsmanager update-secret-version-stage
command that clears the label by hand, after which the key the version holds must be
revoked at the vendor by hand.`,
		Example: `  keyrotor unstick demo/gateway
  keyrotor unstick demo/gateway --force && keyrotor rotate demo/gateway --wait
  keyrotor unstick demo/gateway --skip-vendor`,
		RunE: func(cmd *cobra.Command, args []string) error {
			op, err := newOperator(cmd)
			if err != nil {
				return err
			}
			res, err := op.Unstick(cmd.Context(), args[0], opts)
			if err != nil {
				return exitWith(cmd, err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return printJSON(w, res)
			}
			fmt.Fprintf(w, "%s: cleared the rotation of version %s; rotation can run again\n", res.Secret, res.Version)
			if res.QueuedKeyID != "" {
				fmt.Fprintf(w, "%s: the revocation of key %s is queued; the revoker revokes it at %s at the earliest\n", res.Secret, res.QueuedKeyID, res.RevokeNotBefore.Format(time.RFC3339))
			}
			if res.Note != "" {
				fmt.Fprintf(w, "%s: %s\n", res.Secret, res.Note)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&opts.Force, "force", false, "clear a rotation even if it started less than 30 minutes ago")
	cmd.Flags().BoolVar(&opts.SkipVendor, "skip-vendor", false, "clear a rotation that minted nothing (its version holds no value) without reading the current key, the rotation function or the queue")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return operatorCommand(cmd, cobra.ExactArgs(1))
}
