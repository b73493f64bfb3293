package main

import (
	"strings"
	"sync"
	"testing"
)

// A selection that may match more than one secret, without a terminal to
// ask on and without --yes, is refused with exit 2 before any AWS call;
// one plain name keeps today's single-secret rotate (no prompt, its own
// exit codes), so scripts and the runbook never hang.
func TestRotateSelectionWithoutTerminalRefuses(t *testing.T) {
	old := stdinIsTerminal
	t.Cleanup(func() { stdinIsTerminal = old })
	var (
		mu    sync.Mutex
		calls []string
	)
	endpoint := fakeAWS(t, func(op string, _ map[string]any) awsAnswer {
		mu.Lock()
		calls = append(calls, op)
		mu.Unlock()
		return awsAnswer{errType: "ResourceNotFoundException", message: "Secrets Manager can't find the specified secret."}
	})
	awsEnv(t, endpoint, nil)
	for _, args := range [][]string{
		{"rotate", "prod/*", "--emergency"},
		{"rotate", "prod/a", "prod/b"},
		{"rotate", "--used-by", "ci-runner"},
		{"rotate", "--provider", "gateway", "--tag", "team=pay"},
	} {
		stdinIsTerminal = func(any) bool { return false }
		r := runCLI(args...)
		if r.code != 2 || !strings.Contains(r.stderr, "--yes") || len(calls) != 0 {
			t.Fatalf("%v without a terminal: exit %d, AWS calls %v\n%s", args, r.code, calls, r.stderr)
		}
	}
	r := runCLI("rotate", "prod/one")
	if r.code != 4 || !strings.Contains(r.stderr, "does not exist") {
		t.Fatalf("rotate SECRET: exit %d\n%s", r.code, r.stderr)
	}
}
