package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/keyrotor/keyrotor/internal/inventory"
	"github.com/keyrotor/keyrotor/internal/operator"
)

// Every operator command has a summary, a description that documents the
// exit codes, and an example.
func TestOperatorHelp(t *testing.T) {
	root := newRootCmd()
	for _, path := range [][]string{
		{"status"}, {"rotate"}, {"rollback"}, {"unstick"}, {"revoke-key"}, {"import"},
		{"inventory", "validate"}, {"inventory", "plan"}, {"inventory", "apply"},
	} {
		cmd, _, err := root.Find(path)
		if err != nil || cmd == root {
			t.Fatalf("keyrotor %s is not a command: %v", strings.Join(path, " "), err)
		}
		if cmd.Short == "" || cmd.Example == "" || !strings.Contains(cmd.Long, "Exit codes: 0 done; 1 failed") {
			t.Errorf("keyrotor %s: help lacks a summary, an example or the exit codes", strings.Join(path, " "))
		}
		if cmd.RunE == nil {
			t.Errorf("keyrotor %s does nothing", strings.Join(path, " "))
		}
	}
	inv, _, _ := root.Find([]string{"inventory"})
	if inv.Long == "" || len(inv.Commands()) != 3 {
		t.Error("keyrotor inventory: no description, or not validate, plan and apply")
	}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("secretsmanager.DescribeSecret: boom"), 1},
		{usageError{errors.New("bad flag")}, 2},
		{fmt.Errorf("wrapped: %w", usageError{errors.New("bad")}), 2},
		{problemsError{"2 problems"}, 3},
		{&operator.RefusedError{Op: "rollback", Secret: "s", Reason: "no previous version"}, 4},
		{fmt.Errorf("x: %w", &operator.RefusedError{Op: "rotate"}), 4},
		{&inventory.RefusedError{Refusals: []string{"s: bound elsewhere"}}, 4},
		{&operator.StepError{Secret: "s", Step: "createSecret", Reason: "vendor down"}, 1},
	} {
		if got := cliExitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
