package inventory

import "testing"

// Commands keyrotor prints hold names from secret values: pasted, they run
// nothing else.
func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"payments-bot": "payments-bot",
		"a b":          "'a b'",
		"x;rm -rf /":   "'x;rm -rf /'",
		"it's":         `'it'\''s'`,
		"prod/*":       "'prod/*'",
		"":             "''",
	} {
		if got := ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}
