package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyrotor/keyrotor/internal/operator"
)

func newStatusCmd() *cobra.Command {
	var (
		asJSON   bool
		noVendor bool
		wide     bool
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

On a terminal the table fits its width: long names, key ids and previous-key cells are cut
with "…", and columns drop in this order: LAST ROTATED, INTERVAL, PROVIDER, NEXT ROTATION,
AGE. --wide shows the full table. Not on a terminal (a pipe, a file) it is plain text:
tab-separated, header first, no box drawing or marks, a PROBLEMS column with the number of
problems, and the problems on standard error.

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
				out := detectOutput(cmd.OutOrStdout())
				out.Wide = wide
				printStatus(cmd.OutOrStdout(), cmd.ErrOrStderr(), out, sts, time.Now())
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
	cmd.Flags().BoolVar(&wide, "wide", false, "on a terminal, show every column in full however wide the table gets")
	cmd.Flags().BoolVar(&noVendor, "no-vendor", false, "do not ask the vendors whether previous keys are live")
	return operatorCommand(cmd, cobra.ArbitraryArgs)
}

// statusColumns are status's columns. On a terminal too narrow for all of
// them (docs/operator.md), SECRET, KEY ID and PREVIOUS KEY cells longer
// than 40, 24 and 48 columns are cut with an ellipsis; then columns drop in
// this order: LAST ROTATED, INTERVAL, PROVIDER, NEXT ROTATION, AGE; then
// the widest of SECRET, KEY ID and PREVIOUS KEY is cut further, down to 16,
// 12 and 16 columns. The mark, SECRET, KEY ID, ROTATION and PREVIOUS KEY
// always stay. In plain text (not a terminal) the
// mark becomes the PROBLEMS column, the count of the secret's problems.
var statusColumns = []column{
	{Header: "", TerminalOnly: true},
	{Header: "SECRET", Cap: 40, Min: 16},
	{Header: "PROVIDER", Drop: 3},
	{Header: "KEY ID", Cap: 24, Min: 12},
	{Header: "AGE", Drop: 5},
	{Header: "INTERVAL", Drop: 2},
	{Header: "LAST ROTATED", Drop: 1},
	{Header: "NEXT ROTATION", Drop: 4},
	{Header: "ROTATION"},
	{Header: "PREVIOUS KEY", Cap: 48, Min: 16},
	{Header: "PROBLEMS"},
}

// printStatus writes the status table to w and the problems after it: on a
// terminal each problem as a "✗ SECRET: problem" line under the table; in
// plain text the table alone, each problem as a "SECRET: problem" line on
// errw, so that the table stays one row per secret for scripts.
func printStatus(w, errw io.Writer, out output, sts []operator.Status, now time.Time) {
	if len(sts) == 0 {
		fmt.Fprintln(w, "no managed secrets (tag keyrotor:managed=true, or run `keyrotor inventory apply`)")
		return
	}
	cols := statusColumns
	if out.Terminal {
		cols = cols[:len(cols)-1] // the mark says it
	}
	rows := make([][]string, 0, len(sts))
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
		row := []string{mark, st.Secret, st.Provider, dashIfEmpty(st.KeyID), age, interval,
			fmtWhen(st.LastRotated, now), fmtWhen(st.NextRotation, now), rot, previousCell(st, now)}
		if !out.Terminal {
			row = append(row, strconv.Itoa(len(st.Problems)))
		}
		rows = append(rows, row)
	}
	renderTable(w, out, cols, rows)
	for _, st := range sts {
		for _, p := range st.Problems {
			if out.Terminal {
				fmt.Fprintf(w, "✗ %s: %s\n", st.Secret, p)
			} else {
				fmt.Fprintf(errw, "%s: %s\n", st.Secret, p)
			}
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
