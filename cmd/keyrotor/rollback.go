package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newRollbackCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rollback SECRET",
		Short: "Restore the previous key when the new key does not work",
		Long: `rollback is the guide's rollback procedure for a new key that does not work:

  1. It refuses (exit 4, nothing changed) when the secret has no previous version, when
     the previous key is no longer valid at the vendor (already revoked: then rotate
     instead), or while a rotation is in progress (see "keyrotor unstick").
  2. It tags the secret keyrotor:rollback-until with now + the grace period + 15 minutes
     (the grace of the secret's tag, else of its rotation function, else 2h). Until then
     plain rotations are refused (an emergency rotation is not) and the revoker does not
     revoke the secret's superseded keys.
  3. It moves AWSCURRENT back to the previous version: applications read the previous key
     again at their next cache refresh.
  4. It checks at the vendor that the restored key works. If it does not (the revoker
     revoked it after step 1's check), it moves AWSCURRENT back to the new key, revokes
     nothing, lifts the hold and exits 1 saying so: rotate then.
  5. It revokes the failed new key at the vendor.

The rotation being rolled back has queued the revocation of the key now restored. The
revoker skips it when it fires: the key is AWSCURRENT again or, if a later rotation has
made it AWSPREVIOUS, that rotation revokes it after its own grace period.`,
		Example: `  keyrotor rollback prod/internal-gateway-key`,
		RunE: func(cmd *cobra.Command, args []string) error {
			op, err := newOperator(cmd)
			if err != nil {
				return err
			}
			res, err := op.Rollback(cmd.Context(), args[0])
			if err != nil {
				return exitWith(cmd, err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return printJSON(w, res)
			}
			fmt.Fprintf(w, "%s: rolled back: key %s (version %s) is AWSCURRENT again and works\n", res.Secret, res.RestoredKeyID, res.RestoredVersion)
			if res.HeldUntil != nil {
				fmt.Fprintf(w, "%s: plain rotations are held until %s (keyrotor:rollback-until)\n", res.Secret, res.HeldUntil.Format(time.RFC3339))
			}
			if res.FailedKeyRevoked {
				fmt.Fprintf(w, "%s: the failed key %s is revoked\n", res.Secret, res.FailedKeyID)
			}
			if res.Note != "" {
				fmt.Fprintf(w, "%s: %s\n", res.Secret, res.Note)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return operatorCommand(cmd, cobra.ExactArgs(1))
}
