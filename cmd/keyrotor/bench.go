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
		Short: "Measure the functions (start-up, memory, size, rotation time, API calls), a fleet rotation and the auditor at scale",
		Long: `bench builds the gateway, iam and revoker functions for this machine, starts the local stack,
and measures for the gateway and IAM rotation functions: the time from process start to the
first handled invoke (fresh emulator and bootstrap each time), the bootstrap's peak RSS, the
stripped binary size, the wall time of a full four-step rotation through moto and the
emulator, and the Secrets Manager calls per rotation. It prints them beside the targets.

Then the fleet figure: a stack with --concurrency emulators per function, --fleet secrets
(--fleet-iam of them IAM secrets, whose rotations settle for 15 s; the others gateway
secrets), each emergency-rotated through RotateSecret with at most --in-flight at once until
its old key is confirmed dead at the vendor: wall time, rotations per second, Secrets Manager
calls per rotation. And the auditor and status at scale: --audit-secrets managed secrets on
moto, the auditor's and ` + "`keyrotor status`" + `'s calls and wall time; the bench fails if the
auditor makes more than ceil(N/100) ListSecrets or ceil(metrics/1000) PutMetricData calls.`,
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
	f.BoolVar(&opts.NoFunctions, "no-functions", false, "skip the per-function figures")
	f.IntVar(&opts.FleetSecrets, "fleet", local.DefaultFleetSecrets, "secrets of the fleet figure (0: none)")
	f.IntVar(&opts.FleetIAMSecrets, "fleet-iam", local.DefaultFleetIAMSecrets, "how many of the fleet are IAM secrets (the others: gateway)")
	f.IntVar(&opts.Concurrency, "concurrency", local.DefaultFleetConcurrency, "emulators per function in the fleet figure")
	f.IntVar(&opts.InFlight, "in-flight", local.DefaultFleetInFlight, "rotations (RotateSecret calls) in flight at once in the fleet figure")
	f.IntVar(&opts.AuditSecrets, "audit-secrets", local.DefaultAuditSecrets, "managed secrets the auditor and status run over on moto (0: none)")
	f.BoolVarP(&verbose, "verbose", "v", false, "stream every process's output to stderr")
	return cmd
}
