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
	"strings"
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
		Version:       version(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.PersistentFlags().Bool("debug", false, "on a failure, also print the full error chain (AWS SDK operation, request ids)")
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
		newVersionCmd(),
	)
	usageErrors(root)
	return root
}

// stopSignals end a command the way Ctrl-C does: its context is cancelled
// and it cleans up (keyrotor local stops the stack and removes its env
// file). SIGHUP is a closed terminal, SIGTERM a service manager or kill.
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
	code := run(ctx, newRootCmd(), os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes root with args and returns the exit code; it is main without
// the process around it, so that tests run commands in-process.
//
// A command's error is printed here, once: as one line on stderr (what
// failed, why, what to do; see describeFailure), followed under --debug by
// the full error; with --json, as {"error":{...}} on stdout instead, unless
// the command already printed its JSON result (status --json with problems).
func run(ctx context.Context, root *cobra.Command, args []string, stdout, stderr io.Writer) int {
	out := &countingWriter{w: stdout}
	root.SetArgs(args)
	root.SetOut(out)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return operator.ExitOK
	}
	command := strings.TrimSpace(strings.TrimPrefix(cmd.CommandPath(), root.Name()))
	if command == "" {
		command = root.Name()
	}
	f := describeFailure(err, command)
	debug := flagGiven(cmd, args, "debug")
	switch {
	case flagGiven(cmd, args, "json") && out.n == 0:
		_ = printJSON(stdout, struct {
			Error failure `json:"error"`
		}{f})
	case f.Kind == kindUsage:
		fmt.Fprintf(stderr, "keyrotor: %s\nRun '%s --help' for usage.\n", f.Message, cmd.CommandPath())
	case errors.Is(err, context.Canceled) && f.Kind == kindFailed:
		// Interrupted: the command has said what it stopped.
	default:
		fmt.Fprintln(stderr, "keyrotor:", f.line())
	}
	if debug {
		fmt.Fprintf(stderr, "keyrotor: --debug: the full error: %v\n", err)
	}
	return f.ExitCode
}

// flagGiven says whether the boolean flag name is set for cmd: parsed, or,
// when parsing stopped at a bad flag, present in args before "--".
func flagGiven(cmd *cobra.Command, args []string, name string) bool {
	if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
		return f.Value.String() == "true"
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "--"+name || a == "--"+name+"=true" || a == "--"+name+"=1" {
			return true
		}
	}
	return false
}

// countingWriter counts what a command wrote to stdout.
type countingWriter struct {
	w io.Writer
	n int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += n
	return n, err
}
