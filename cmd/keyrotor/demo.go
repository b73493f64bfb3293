package main

import (
	"github.com/spf13/cobra"

	"github.com/keyrotor/keyrotor/infra/local"
)

func newDemoCmd() *cobra.Command {
	var (
		opts    local.DemoOptions
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start the local stack, rotate demo/gateway and tell the story, stop everything",
		Long: `demo builds the gateway and revoker functions for this machine, starts the local stack
(see "keyrotor local"), and rotates demo/gateway once through Secrets Manager's RotateSecret:
the key before, both keys valid during the grace period (real calls to the gateway's
/v1/ping), the revocation by the revoker, only the new key valid after, and the metrics
the functions emitted. Keys are shown by their key_id only. It then stops every process.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if verbose {
				opts.Logs = cmd.ErrOrStderr()
			}
			return local.RunDemo(cmd.Context(), cmd.OutOrStdout(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.RepoRoot, "repo", "", "the keyrotor repository to build the functions from (default: found above the working directory)")
	f.DurationVar(&opts.GracePeriod, "grace", 5e9, "grace period of demo/gateway")
	f.BoolVarP(&verbose, "verbose", "v", false, "stream every process's output to stderr")
	return cmd
}
