package main

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mainArgsEnv makes the test binary run keyrotor's main with these
// arguments (separated by \x1f) instead of the tests: a subprocess that is
// keyrotor, to which a test can send signals.
const mainArgsEnv = "KEYROTOR_TEST_MAIN_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(mainArgsEnv); args != "" {
		os.Args = append([]string{"keyrotor"}, strings.Split(args, "\x1f")...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// `keyrotor local` stops on SIGHUP (the terminal closed), SIGTERM and SIGINT
// alike: it stops the stack, removes its env file and exits 0.
func TestLocalStopsOnSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts the local stack")
	}
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			envFile := filepath.Join(t.TempDir(), "keyrotor.env")
			// The timeout only ends a hung child; nothing is asserted on time.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), mainArgsEnv+"="+strings.Join([]string{"local", "--env-file", envFile, "--functions", "gateway"}, "\x1f"))
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // no signal from this test's terminal
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var log strings.Builder
			lines := bufio.NewScanner(stderr)
			ready := false
			for !ready && lines.Scan() {
				log.WriteString(lines.Text() + "\n")
				ready = lines.Text() == "Press Ctrl-C to stop."
			}
			if !ready {
				_ = cmd.Wait()
				t.Fatalf("keyrotor local did not get ready:\n%s", log.String())
			}
			if _, err := os.Stat(envFile); err != nil {
				t.Fatalf("the env file is not written: %v", err)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			for lines.Scan() {
				log.WriteString(lines.Text() + "\n")
			}
			err = cmd.Wait()
			if err != nil {
				t.Errorf("keyrotor local after %s: %v, want exit 0\n%s", sig, err, log.String())
			}
			if _, err := os.Stat(envFile); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("after %s the env file %s is still there (%v)", sig, envFile, err)
			}
			if !strings.Contains(log.String(), "keyrotor local: stopped; no process left") {
				t.Errorf("after %s keyrotor local did not say it stopped everything:\n%s", sig, log.String())
			}
		})
	}
}
