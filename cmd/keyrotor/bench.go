package main

import (
	"github.com/spf13/cobra"

	"github.com/keyrotor/keyrotor/infra/local"
)

func newBenchCmd() *cobra.Command {
	var (
		opts    local.BenchOptions
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the gateway and IAM functions: start-up, memory, size, rotation time, API calls",
		Long: `bench builds the gateway, iam and revoker functions for this machine, starts the local stack,
and measures for the gateway and IAM rotation functions: the time from process start to the
first handled invoke (fresh emulator and bootstrap each time), the bootstrap's peak RSS, the
stripped binary size, the wall time of a full four-step rotation through moto and the
emulator, and the Secrets Manager calls per rotation. It prints them beside the targets.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if verbose {
				opts.Logs = cmd.ErrOrStderr()
			}
			_, err := local.RunBench(cmd.Context(), cmd.OutOrStdout(), opts)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.RepoRoot, "repo", "", "the keyrotor repository to build the functions from (default: found above the working directory)")
	f.IntVar(&opts.Samples, "samples", 5, "cold starts and rotations measured per function")
	f.BoolVarP(&verbose, "verbose", "v", false, "stream every process's output to stderr")
	return cmd
}
