package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/spf13/cobra"

	"github.com/keyrotor/keyrotor/internal/operator"
)

func newStatusCmd() *cobra.Command {
	var (
		asJSON   bool
		noVendor bool
	)
	cmd := &cobra.Command{
		Use:   "status [SECRET...]",
		Short: "Show every managed secret: key age, schedule, rotation state, previous key",
		Long: `status shows the named secrets, or every secret tagged keyrotor:managed=true: its
provider and key id (never the key), the key's age, the rotation interval and schedule,
the last and next rotation, whether a rotation is in progress or stuck, and whether the
previous key is still live at the vendor (its grace period) or revoked. It asks the vendor
about the previous key without using it (the key's last use or the key list), so that the
question does not count as use. The grace period is the one the rotation function uses: the
secret's keyrotor:grace-period tag, else the function's GRACE_PERIOD (read with
lambda:GetFunctionConfiguration); when neither can be read it says "grace unknown".

Problems (a stuck rotation, a key older than 1.5 × its interval, rotation not enabled, a
previous key still live long after its grace period, a vendor that cannot be asked, a
missing binding: an IAM user without the tag keyrotor:secret = the secret's ARN, an admin
secret whose keyrotor:admin-for does not match the secret's name, each with the command that
adds it) are marked with ✗ and listed under the table; then status exits with 3.

A grace period at or below 1h (the default refresh of AWS's caching libraries and External
Secrets Operator) is a warning on standard error ("warnings" in JSON), not a problem: it does
not change the exit code.`,
		Example: `  keyrotor status
  keyrotor status demo/gateway --json | jq '.[0].previous'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			op, err := newOperator(cmd)
			if err != nil {
				return err
			}
			sts, err := op.Status(cmd.Context(), args, operator.StatusOptions{NoVendor: noVendor})
			if err != nil {
				return exitWith(cmd, err)
			}
			if asJSON {
				err = printJSON(cmd.OutOrStdout(), sts)
			} else {
				printStatus(cmd.OutOrStdout(), sts, time.Now())
				// Warnings never change the exit code.
				for _, st := range sts {
					for _, w := range st.Warnings {
						fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s: %s\n", st.Secret, w)
					}
				}
			}
			if err != nil {
				return err
			}
			n := 0
			for _, st := range sts {
				if len(st.Problems) > 0 {
					n++
				}
			}
			if n > 0 {
				return exitWith(cmd, problemsError{fmt.Sprintf("%d of %d secrets have problems", n, len(sts))})
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (a list of objects) for scripts")
	cmd.Flags().BoolVar(&noVendor, "no-vendor", false, "do not ask the vendors whether previous keys are live")
	return operatorCommand(cmd, cobra.ArbitraryArgs)
}

func printStatus(w io.Writer, sts []operator.Status, now time.Time) {
	if len(sts) == 0 {
		fmt.Fprintln(w, "no managed secrets (tag keyrotor:managed=true, or run `keyrotor inventory apply`)")
		return
	}
	t := table.NewWriter()
	t.SetOutputMirror(w)
	t.SetStyle(table.StyleLight)
	t.AppendHeader(table.Row{"", "SECRET", "PROVIDER", "KEY ID", "AGE", "INTERVAL", "LAST ROTATED", "NEXT ROTATION", "ROTATION", "PREVIOUS KEY"})
	for _, st := range sts {
		mark := "✓"
		if len(st.Problems) > 0 {
			mark = "✗"
		}
		age := "-"
		if st.KeyCreatedAt != nil {
			age = operator.FormatAge(time.Duration(st.KeyAgeSeconds) * time.Second)
		}
		interval := "-"
		if st.IntervalSeconds > 0 {
			interval = operator.FormatAge(time.Duration(st.IntervalSeconds) * time.Second)
		}
		rot := st.Rotation
		if st.PendingSince != nil {
			rot += " for " + operator.FormatAge(now.Sub(*st.PendingSince))
		}
		t.AppendRow(table.Row{mark, st.Secret, st.Provider, dashIfEmpty(st.KeyID), age, interval,
			fmtWhen(st.LastRotated, now), fmtWhen(st.NextRotation, now), rot, previousCell(st, now)})
	}
	t.Render()
	for _, st := range sts {
		for _, p := range st.Problems {
			fmt.Fprintf(w, "✗ %s: %s\n", st.Secret, p)
		}
	}
}

func previousCell(st operator.Status, now time.Time) string {
	s := st.Previous
	if st.PreviousKeyID != "" {
		s += " (" + st.PreviousKeyID + ")"
	}
	inGrace := st.Previous == operator.PreviousLive || st.Previous == operator.PreviousExpires || st.Previous == operator.PreviousUnknown
	if st.GraceUntil == nil && st.GraceUnknown != "" && st.PreviousKeyID != "" && inGrace {
		s += ", grace unknown"
	}
	if st.GraceUntil != nil && inGrace {
		if now.Before(*st.GraceUntil) {
			s += ", grace ends in " + operator.FormatAge(st.GraceUntil.Sub(now))
		} else {
			s += ", grace ended " + operator.FormatAge(now.Sub(*st.GraceUntil)) + " ago"
		}
	}
	return s
}

func fmtWhen(t *time.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	s := t.UTC().Format("2006-01-02 15:04")
	if d := now.Sub(*t); d >= 0 {
		return s + " (" + operator.FormatAge(d) + " ago)"
	}
	return s + " (in " + operator.FormatAge(t.Sub(now)) + ")"
}

func dashIfEmpty(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
