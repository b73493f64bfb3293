package main

import (
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

// An unknown command or flag, or wrong arguments, is a usage error: exit 2,
// for every command, not only the operator commands.
func TestUsageExit2(t *testing.T) {
	for _, args := range [][]string{
		{"bogus"},
		{"--bogus"},
		{"status", "--bogus"},
		{"local", "--bogus"},
		{"local", "extra"},
		{"demo", "--bogus"},
		{"inventory", "bogus"},
		{"inventory", "validate"},
		{"version", "extra"},
	} {
		r := runCLI(args...)
		if r.code != 2 {
			t.Errorf("keyrotor %s: exit %d, want 2\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, "--help") {
			t.Errorf("keyrotor %s: the message does not point to --help:\n%s", strings.Join(args, " "), r.stderr)
		}
	}
	for _, args := range [][]string{{}, {"inventory"}, {"--help"}, {"status", "--help"}} {
		if r := runCLI(args...); r.code != 0 {
			t.Errorf("keyrotor %s: exit %d, want 0 (help)\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

// `keyrotor version` and `keyrotor --version` print "keyrotor <module
// version> <vcs revision>" and exit 0.
func TestVersion(t *testing.T) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Skip("no build information in this binary")
	}
	want := regexp.MustCompile(`^keyrotor ` + regexp.QuoteMeta(bi.Main.Version) + ` \S+\n$`)
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := runCLI(args...)
		if r.code != 0 || !want.MatchString(r.stdout) {
			t.Errorf("keyrotor %s: exit %d, stdout %q; want exit 0 and %q", strings.Join(args, " "), r.code, r.stdout, want)
		}
	}
}
