package main

import (
	"fmt"
	"strings"

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
		Short: "Clear a stuck rotation and revoke the key it minted",
		Long: `unstick clears a rotation that will not finish (AWSPENDING on a version that is not
AWSCURRENT, which blocks every later rotation): it revokes at the vendor the key that attempt
minted (the pending version's key and any key the vendor lists under that attempt's name),
then removes AWSPENDING, so that rotation can run again. The current and previous keys are
never touched.

It refuses (exit 4) when no rotation is pending, and when the pending rotation started less
than 30 minutes ago and may still be running, unless --force.`,
		Example: `  keyrotor unstick demo/gateway
  keyrotor unstick demo/gateway --force && keyrotor rotate demo/gateway --wait`,
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
			revoked := "no key had been minted"
			if len(res.Revoked) > 0 {
				revoked = "revoked " + strings.Join(res.Revoked, ", ")
			}
			fmt.Fprintf(w, "%s: cleared the rotation of version %s (%s); rotation can run again\n", res.Secret, res.Version, revoked)
			return nil
		},
	}
	cmd.Flags().BoolVar(&opts.Force, "force", false, "clear a rotation even if it started less than 30 minutes ago")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return operatorCommand(cmd, cobra.ExactArgs(1))
}
