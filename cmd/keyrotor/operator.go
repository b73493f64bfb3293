package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/spf13/cobra"

	"github.com/keyrotor/keyrotor/internal/function"
	"github.com/keyrotor/keyrotor/internal/function/all"
	"github.com/keyrotor/keyrotor/internal/inventory"
	"github.com/keyrotor/keyrotor/internal/operator"
	"github.com/keyrotor/keyrotor/providers"
	"github.com/keyrotor/keyrotor/providers/stripe"
)

// exitCodesHelp is appended to the help of every operator command.
const exitCodesHelp = `

Exit codes: 0 done; 1 failed (an AWS or vendor call, a rotation); 2 usage (bad arguments,
flags or input); 3 problems found (status, an invalid inventory); 4 refused (a precondition
does not hold, nothing was changed).`

// vendorEnv is what the CLI reads its vendor configuration from: the functions'
// variables (<PROVIDER>_API_BASE_URL, API_BASE_URL), and for the gateway the
// local stack's KEYROTOR_GATEWAY_URL when GATEWAY_API_BASE_URL is unset.
func vendorEnv(name string) string {
	v := os.Getenv(name)
	if v == "" && name == "GATEWAY_API_BASE_URL" && os.Getenv("API_BASE_URL") == "" {
		v = os.Getenv("KEYROTOR_GATEWAY_URL")
	}
	return v
}

// newAWSClients loads the AWS SDK's default configuration and checks, before
// any call, what every call needs: a region and credentials. Their absence
// is a *noRegionError or *noCredentialsError, which the CLI explains in one
// line instead of the SDK's chain from the first call that fails.
func newAWSClients(cmd *cobra.Command) (function.Clients, error) {
	ctx := cmd.Context()
	c, err := function.NewClients(ctx)
	if err != nil {
		return c, err
	}
	if c.Config.Region == "" {
		return c, &noRegionError{&aws.MissingRegionError{}}
	}
	if c.Config.Credentials == nil {
		return c, &noCredentialsError{errors.New("no credential provider")}
	}
	// Cached by the configuration: the calls that follow reuse them.
	if _, err := c.Config.Credentials.Retrieve(ctx); err != nil {
		if ctx.Err() != nil {
			return c, ctx.Err()
		}
		return c, &noCredentialsError{err}
	}
	return c, nil
}

// newOperator builds the operator over the AWS SDK's default configuration,
// with the providers built as the functions build them (internal/function).
func newOperator(cmd *cobra.Command) (*operator.Operator, error) {
	c, err := newAWSClients(cmd)
	if err != nil {
		return nil, err
	}
	var (
		mu    sync.Mutex
		built = map[string]providers.Provider{}
	)
	lookup := func(name string) (providers.Provider, error) {
		mu.Lock()
		defer mu.Unlock()
		if p, ok := built[name]; ok {
			return p, nil
		}
		var (
			p   providers.Provider
			err error
		)
		if b, ok := all.Builders()[name]; ok {
			p, err = b(vendorEnv, c)
		} else if name == stripe.Name {
			// Stripe has no rotation function, so no builder: verify only.
			p, err = stripe.New(stripe.Config{BaseURL: function.APIBaseURL(vendorEnv, stripe.Name)})
		} else {
			err = fmt.Errorf("this keyrotor has no provider %q", name)
		}
		if err != nil {
			return nil, err
		}
		built[name] = p
		return p, nil
	}
	stderr := cmd.ErrOrStderr()
	return &operator.Operator{
		SM:        c.SecretsManager,
		Providers: lookup,
		Progress:  func(msg string) { fmt.Fprintln(stderr, msg) },
		Lambda:    lambda.NewFromConfig(c.Config),
		SQS:       c.SQS,
		IAM:       iam.NewFromConfig(c.Config),
		// Used only when the rotation function's own REVOCATION_QUEUE_URL
		// cannot be read (the local stack exports it).
		RevocationQueueURL: os.Getenv("KEYROTOR_REVOCATION_QUEUE_URL"),
	}, nil
}

// usageError is an error in the command line or its input: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// problemsError says that problems were found (already printed): exit code 3.
type problemsError struct{ msg string }

func (e problemsError) Error() string { return e.msg }

// cliExitCode maps an error to the documented exit codes.
func cliExitCode(err error) int {
	var u usageError
	var p problemsError
	var r *inventory.RefusedError
	switch {
	case err == nil:
		return operator.ExitOK
	case errors.As(err, &u):
		return operator.ExitUsage
	case errors.As(err, &p):
		return operator.ExitProblems
	case errors.As(err, &r):
		return operator.ExitRefused
	}
	return operator.ExitCode(err)
}

// exitWith ends an operator command with err; run prints it and turns it
// into the exit code.
func exitWith(_ *cobra.Command, err error) error { return err }

// operatorCommand sets what every operator command shares: the exit codes
// in its help, and its arguments (a wrong number is a usage error, exit 2,
// as for every command: see usageErrors).
func operatorCommand(cmd *cobra.Command, args cobra.PositionalArgs) *cobra.Command {
	cmd.Long += exitCodesHelp
	cmd.Args = args
	return cmd
}

// usageErrors makes every mistake in a command line a usageError (exit 2)
// in cmd and every command under it: an unknown command, an unknown or bad
// flag, wrong arguments. A command that only groups others (keyrotor,
// keyrotor inventory) prints its help when run alone.
func usageErrors(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		usageErrors(c)
	}
	if cmd.HasSubCommands() && !cmd.Runnable() {
		cmd.Args = unknownCommand
		cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	}
	if args := cmd.Args; args != nil {
		cmd.Args = func(c *cobra.Command, a []string) error {
			if err := args(c, a); err != nil {
				return usageError{err}
			}
			return nil
		}
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
}

// unknownCommand refuses any argument to a command that only groups others.
func unknownCommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return errors.New(msg)
}

// printJSON writes v as indented JSON. A failure after it prints no JSON
// error object (see run): stdout stays one JSON document.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
