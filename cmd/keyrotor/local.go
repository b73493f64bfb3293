package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyrotor/keyrotor/infra/local"
)

func newLocalCmd() *cobra.Command {
	var (
		envFile string
		opts    local.Options
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "local",
		Short: "Run the local stack (moto, the real functions, the gateway) until interrupted",
		Long: `local builds the functions for this machine and starts, on 127.0.0.1 and free ports:
moto_server as Secrets Manager, SQS, IAM and Lambda, with Lambda invokes forwarded to the
functions; one Lambda runtime emulator per function (every folder of functions/: gateway,
iam, the other vendors, revoker, auditor); the reference gateway; the revoker's SQS poller; the auditor's schedule.
It creates demo/gateway and demo/iam, configured for rotation with a short grace period,
prints export lines for the AWS CLI and SDKs, and runs until Ctrl-C, SIGTERM or SIGHUP, then
stops every process it started. While it runs it prints, on standard error, one line per
rotation step, scheduled revocation, revocation and audit run, read from the functions' logs
(never a key): "12:00:01 rotation demo/gateway: finishSecret done", "12:05:02 revoker:
revoked key_x of demo/gateway", "12:06:00 auditor: 2 secrets, 0 problems". -v adds every
process's whole output.

With --regions, the functions, the revocation queues, the pollers and the gateway's admin
secret are set up in each region, as one deployment per region would be (the gateway is
shared, as a vendor is); the demo secrets and AWS_REGION are in the first region, and
` + "`aws --region eu-west-1 secretsmanager rotate-secret`" + ` runs eu-west-1's function.

One emulator handles one invoke at a time, so by default the invokes of a function are
queued; --concurrency N runs N emulators per function (and region), as Lambda scales out,
and each invoke goes to a free one.`,
		Example: `  keyrotor local --env-file /tmp/keyrotor.env
  # in another shell:
  source /tmp/keyrotor.env
  aws secretsmanager rotate-secret --secret-id demo/gateway
  aws secretsmanager get-secret-value --secret-id demo/gateway --version-stage AWSCURRENT
  curl -H "Authorization: Bearer <key>" $KEYROTOR_GATEWAY_URL/v1/ping
  keyrotor local --regions us-east-1,eu-west-1   # two regions, one shared gateway
  keyrotor local --concurrency 4                 # four emulators per function`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			status := cmd.ErrOrStderr()
			if verbose {
				opts.Logs = status
			}
			opts.Activity = status
			fmt.Fprintln(status, "keyrotor local: building the functions and starting the stack...")
			start := time.Now()
			stack, err := local.Start(ctx, opts)
			if err != nil {
				return err
			}
			exports := stack.Exports()
			if envFile != "" {
				if err := os.WriteFile(envFile, []byte(exports), 0o600); err != nil {
					_ = stack.Stop()
					return fmt.Errorf("write %s: %w", envFile, err)
				}
			}
			fmt.Fprint(cmd.OutOrStdout(), exports)
			printReady(status, stack, envFile, time.Since(start))
			<-ctx.Done()
			fmt.Fprintln(status, "keyrotor local: stopping...")
			err = stack.Stop()
			if envFile != "" {
				_ = os.Remove(envFile)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(status, "keyrotor local: stopped; no process left")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&envFile, "env-file", "", "also write the export lines to this file (removed on exit)")
	f.StringVar(&opts.RepoRoot, "repo", "", "the keyrotor repository to build the functions from (default: found above the working directory)")
	f.StringSliceVar(&opts.Functions, "functions", nil, "run only these functions (default: every folder of functions/)")
	f.StringSliceVar(&opts.Regions, "regions", nil, "run the functions and queues in these regions, the first one the default (default: "+local.Region+"); each region costs one emulator per function")
	f.DurationVar(&opts.GracePeriod, "grace", 10*time.Second, "grace period of the demo secrets (keyrotor:grace-period) and the functions' GRACE_PERIOD")
	f.DurationVar(&opts.MaxRevocationDelay, "max-revocation-delay", time.Millisecond, "the revoker's MAX_REVOCATION_DELAY: how long past the grace period it may wait for key use")
	f.IntVar(&opts.Concurrency, "concurrency", 1, "emulators per function (each handles one invoke at a time, as one Lambda instance does): rotations of that many secrets run side by side, and the revocation queue gets that many pollers")
	f.DurationVar(&opts.AuditInterval, "audit-interval", time.Minute, "how often the auditor runs (when functions/auditor exists)")
	f.BoolVarP(&verbose, "verbose", "v", false, "stream every process's output (moto, functions) to stderr")
	return cmd
}

func printReady(w io.Writer, s *local.Stack, envFile string, took time.Duration) {
	fmt.Fprintf(w, "keyrotor local: ready in %s\n", took.Round(10*time.Millisecond))
	fmt.Fprintf(w, "  moto (AWS)      %s\n", s.Endpoint)
	fmt.Fprintf(w, "  gateway         %s\n", s.GatewayURL)
	for _, region := range s.Regions() {
		for _, n := range s.FunctionNames() {
			f := s.InRegion(region).Function(n)
			instances := ""
			if n := f.Instances(); n > 1 {
				instances = fmt.Sprintf(" (%d emulators)", n)
			}
			fmt.Fprintf(w, "  function        %-21s %s%s\n", f.FunctionName, f.ARN, instances)
		}
	}
	fmt.Fprintf(w, "  secrets         %s, %s (grace %s)\n", local.DemoGatewaySecret, local.DemoIAMSecret, s.Options().GracePeriod)
	if envFile != "" {
		fmt.Fprintf(w, "  exports         written to %s (source it in another shell)\n", envFile)
	}
	fmt.Fprintln(w, "Press Ctrl-C to stop.")
}
