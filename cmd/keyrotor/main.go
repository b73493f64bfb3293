// Command keyrotor is keyrotor's command line: the local stack, the demo and
// the benchmark, and the operator commands over Secrets Manager.
//
// Each command is built by a small constructor in its own file and added to
// the root in newRootCmd: a new command is one file and one line there.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/keyrotor/keyrotor/internal/operator"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "keyrotor",
		Short: "Zero-downtime rotation of API keys stored in AWS Secrets Manager",
		Long: `keyrotor rotates API keys held in AWS Secrets Manager with zero downtime: a rotation
function per key provider creates the new key, Secrets Manager moves AWSCURRENT to it, and
the old key stays valid for a grace period before the revoker deletes it.

This command runs the local stack (the real functions under the Lambda runtime emulator,
against moto, on 127.0.0.1), tells the story of one rotation, measures the functions, and
gives operators commands over the secrets it manages.

AWS access comes from the usual SDK settings (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL, ...);
after "keyrotor local", eval its exports to point everything at the local stack.`,
		Example: `  keyrotor local --env-file .keyrotor.env   # start the stack; in another shell: source .keyrotor.env
  aws secretsmanager rotate-secret --secret-id demo/gateway
  keyrotor demo                              # one rotation, told step by step
  keyrotor bench                             # start-up, memory, size, API calls per rotation`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newLocalCmd(),
		newDemoCmd(),
		newBenchCmd(),
		newStatusCmd(),
		newRotateCmd(),
		newRollbackCmd(),
		newUnstickCmd(),
		newRevokeKeyCmd(),
		newImportCmd(),
		newInventoryCmd(),
	)
	return root
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, newRootCmd(), os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes root with args and returns the exit code; it is main without
// the process around it, so that tests run commands in-process.
func run(ctx context.Context, root *cobra.Command, args []string, stdout, stderr io.Writer) int {
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return operator.ExitOK
	}
	code := cliExitCode(err)
	var u usageError
	switch {
	case errors.As(err, &u):
		fmt.Fprintf(stderr, "keyrotor: %v\nRun '%s --help' for usage.\n", u.err, cmd.CommandPath())
	case code != operator.ExitFailure || !errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "keyrotor:", err)
	}
	return code
}
