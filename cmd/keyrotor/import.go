package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyrotor/keyrotor/internal/operator"
)

func newImportCmd() *cobra.Command {
	var (
		opts    operator.ImportOptions
		expires string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "import SECRET --old-key-expires WHEN < new-key",
		Short: "Store a key rolled by hand (Stripe) after the vendor accepts it",
		Long: `import is the rotation of vendors without a key API (Stripe): roll the key in the
vendor's dashboard, choosing an expiry for the old key that leaves applications time to
read the new one, then pipe the new key into this command. It reads the key from standard
input (one line; it is never printed), verifies it at the vendor with the key alone, and
only then stores it as the secret's new AWSCURRENT version, recording when the old key
expires (previous_key_expires_at) so that status can track it. It schedules
no revocation: the vendor expires the old key.

--old-key-expires is the old key's expiry: an RFC 3339 time, or a duration from now (1h, 24h).
It refuses (exit 4, nothing stored) when the vendor does not accept the key, when the
secret's vendor has a key API (use "keyrotor rotate"), or while a rotation is in progress.`,
		Example: `  pbpaste | keyrotor import prod/stripe-api-key --old-key-expires 24h`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if expires == "" {
				return exitWith(cmd, usageError{errors.New("--old-key-expires is required: when does the vendor expire the old key?")})
			}
			when, err := parseExpiry(expires, time.Now())
			if err != nil {
				return exitWith(cmd, usageError{err})
			}
			opts.OldKeyExpiresAt = when
			key, err := readKeyFromStdin(cmd.InOrStdin())
			if err != nil {
				return exitWith(cmd, usageError{err})
			}
			opts.Key = key
			op, err := newOperator(cmd)
			if err != nil {
				return err
			}
			res, err := op.Import(cmd.Context(), args[0], opts)
			if err != nil {
				return exitWith(cmd, err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return printJSON(w, res)
			}
			fmt.Fprintf(w, "%s: the new key is verified and AWSCURRENT (version %s); the old key expires %s\n", res.Secret, res.VersionID, res.PreviousKeyExpiresAt.Format(time.RFC3339))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&expires, "old-key-expires", "", "when the vendor expires the old key: RFC 3339 time or a duration from now (required)")
	f.StringVar(&opts.KeyID, "key-id", "", "the vendor's id of the new key, if it has one")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return operatorCommand(cmd, cobra.ExactArgs(1))
}

// parseExpiry reads an RFC 3339 time or a duration from now.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(d), nil
	}
	return time.Time{}, fmt.Errorf("--old-key-expires %q is neither an RFC 3339 time nor a duration such as 24h", s)
}

// readKeyFromStdin reads the first line of r: the key.
func readKeyFromStdin(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 64<<10)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the new key from standard input: %w", err)
	}
	key := strings.TrimSpace(line)
	if key == "" {
		return "", errors.New("no key on standard input: pipe the new key into keyrotor import")
	}
	return key, nil
}
