package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newRevokeKeyCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "revoke-key SECRET KEY_ID",
		Short: "Revoke now a superseded key of a secret (what an emergency rotation prints for a key still live)",
		Long: `revoke-key revokes KEY_ID at the vendor now, through the secret's provider, without
waiting for the revoker. It is the command an emergency rotation prints for each superseded
key still live when it stops waiting.

It revokes only a key it can prove is this secret's: one held by a version of the secret
(deprecated versions included), with that version's fields as the key's owner (the IAM user,
the admin secret), so the provider's binding checks apply. It refuses (exit 4, nothing
changed) a key held by the AWSCURRENT or AWSPENDING version (rotate instead, --emergency for
a leaked key), a key no version holds, and keys of vendors without a key API (delete them in
the vendor's dashboard).`,
		Example: `  keyrotor revoke-key prod/internal-gateway-key key_0123456789`,
		RunE: func(cmd *cobra.Command, args []string) error {
			op, err := newOperator(cmd)
			if err != nil {
				return err
			}
			res, err := op.RevokeKey(cmd.Context(), args[0], args[1])
			if err != nil {
				return exitWith(cmd, err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: key %s (version %s) is revoked\n", res.Secret, res.KeyID, res.Version)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return operatorCommand(cmd, cobra.ExactArgs(2))
}
