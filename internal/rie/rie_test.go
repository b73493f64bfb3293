package rie

import (
	"os"
	"path/filepath"
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

// fakeRIE writes an executable aws-lambda-rie in a new directory and
// returns the directory and the file's path.
func fakeRIE(t *testing.T) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "aws-lambda-rie")
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, path
}

// TestFind points PATH, GOBIN and GOPATH at temporary directories (PATH
// without the go tool, so that only GOBIN is searched after PATH).
func TestFind(t *testing.T) {
	t.Run("on PATH", func(t *testing.T) {
		dir, want := fakeRIE(t)
		t.Setenv("PATH", dir)
		t.Setenv("GOBIN", t.TempDir())
		t.Setenv("GOPATH", t.TempDir())
		got, err := Find()
		if err != nil || got != want {
			t.Fatalf("Find() = %q, %v; want %q", got, err, want)
		}
	})
	t.Run("in GOBIN", func(t *testing.T) {
		dir, want := fakeRIE(t)
		t.Setenv("PATH", t.TempDir())
		t.Setenv("GOBIN", dir)
		t.Setenv("GOPATH", t.TempDir())
		got, err := Find()
		if err != nil || got != want {
			t.Fatalf("Find() = %q, %v; want %q", got, err, want)
		}
	})
	t.Run("absent", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		t.Setenv("GOBIN", t.TempDir())
		t.Setenv("GOPATH", t.TempDir())
		got, err := Find()
		if err == nil || got != "" {
			t.Fatalf("Find() = %q, %v; want an error", got, err)
		}
		if want := "aws-lambda-rie is not installed: run `make tools`"; err.Error() != want {
			t.Fatalf("error %q, want %q", err, want)
		}
	})
}
