package e2e

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/infra/local"
)

// TestKeyrotorLocalCommand runs `keyrotor local --env-file` as a user
// would: it waits for the env file, rotates demo/gateway with the
// exported settings, interrupts the command, and checks that it exits 0,
// removes the env file and leaves no process behind.
func TestKeyrotorLocalCommand(t *testing.T) {
	needStack(t)
	root, err := local.FindRepoRoot("")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "keyrotor")
	build := exec.Command("go", "build", "-o", bin, "./cmd/keyrotor")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build keyrotor: %v\n%s", err, out)
	}
	envFile := filepath.Join(dir, "keyrotor.env")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "local", "--env-file", envFile, "--functions", "gateway,revoker", "--grace", "2s")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}()

	deadline := time.Now().Add(5 * time.Minute)
	var env map[string]string
	for env == nil {
		if b, err := os.ReadFile(envFile); err == nil && strings.Contains(string(b), "KEYROTOR_GATEWAY_URL") {
			env = parseExports(t, string(b))
			break
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("keyrotor local exited early: %v\n%s", err, stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("keyrotor local did not write %s:\n%s", envFile, stderr.String())
		}
	}
	if !strings.Contains(stdout.String(), "export AWS_ENDPOINT_URL=") {
		t.Errorf("stdout lacks the export lines:\n%s", stdout.String())
	}
	workDir := stackWorkDir(env["AWS_ENDPOINT_URL"])
	if workDir == "" {
		t.Fatal("no moto launcher process serves " + env["AWS_ENDPOINT_URL"])
	}

	// Rotate with the exported settings, as `aws secretsmanager
	// rotate-secret` would (the SDK reads the same variables).
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(c,
		config.WithRegion(env["AWS_REGION"]),
		config.WithBaseEndpoint(env["AWS_ENDPOINT_URL"]),
		config.WithRetryMaxAttempts(1),
		config.WithCredentialsProvider(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: env["AWS_ACCESS_KEY_ID"], SecretAccessKey: env["AWS_SECRET_ACCESS_KEY"]}, nil
		})))
	if err != nil {
		t.Fatal(err)
	}
	sm := secretsmanager.NewFromConfig(cfg)
	if _, err := sm.RotateSecret(c, &secretsmanager.RotateSecretInput{SecretId: aws.String(local.DemoGatewaySecret)}); err != nil {
		t.Fatalf("rotate %s on the command's stack: %v", local.DemoGatewaySecret, err)
	}

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("keyrotor local after Ctrl-C: %v\n%s", err, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("keyrotor local did not stop within a minute after Ctrl-C:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "no process left") {
		t.Errorf("stderr does not confirm the stop:\n%s", stderr.String())
	}
	if _, err := os.Stat(envFile); !os.IsNotExist(err) {
		t.Errorf("the env file is still there after the stop (%v)", err)
	}
	if left := processesWith(workDir); len(left) > 0 {
		t.Errorf("processes left behind: %v", left)
	}
	if keyPattern.MatchString(stdout.String() + stderr.String()) {
		t.Error("keyrotor local printed a key or the admin token")
	}
}

// parseExports reads `export NAME=value` lines (values plain or single-quoted).
func parseExports(t *testing.T, s string) map[string]string {
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "export ")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		env[k] = strings.Trim(v, "'")
	}
	for _, k := range []string{"AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "KEYROTOR_GATEWAY_URL"} {
		if env[k] == "" {
			t.Fatalf("the env file lacks %s:\n%s", k, s)
		}
	}
	return env
}

// stackWorkDir finds the work dir of the stack whose moto listens at
// endpoint, from the moto launcher's command line.
func stackWorkDir(endpoint string) string {
	port := endpoint[strings.LastIndex(endpoint, ":")+1:]
	for _, p := range processesWith("moto_launcher.py") {
		if strings.HasSuffix(p, " -p "+port) {
			launcher := strings.Fields(p)[1]
			return filepath.Dir(launcher)
		}
	}
	return ""
}

// processesWith returns the command lines of the processes whose command
// line contains s.
func processesWith(s string) []string {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []string
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		line := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}
