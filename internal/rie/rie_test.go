package rie

import (
	"slices"
	"testing"
)

func TestCommandListensOnLoopbackOnly(t *testing.T) {
	cmd := Command("/bin/aws-lambda-rie", "/tmp/bootstrap", 9001, 9002, "--log-level", "error")
	want := []string{"/bin/aws-lambda-rie",
		"--runtime-interface-emulator-address", "127.0.0.1:9001",
		"--runtime-api-address", "127.0.0.1:9002",
		"--log-level", "error", "/tmp/bootstrap"}
	if !slices.Equal(cmd.Args, want) {
		t.Fatalf("args = %q, want %q", cmd.Args, want)
	}
	if got := InvokeURL(9001); got != "http://127.0.0.1:9001/2015-03-31/functions/function/invocations" {
		t.Fatalf("InvokeURL = %q", got)
	}
}

func TestFind(t *testing.T) {
	p, err := Find()
	if err != nil {
		t.Skipf("%v", err)
	}
	if p == "" {
		t.Fatal("Find returned an empty path without an error")
	}
}
