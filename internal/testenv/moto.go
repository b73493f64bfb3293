// Package testenv starts the real parts tests run against: moto_server on
// 127.0.0.1 and a free port, stopped by the test that started it, AWS SDK
// configurations pointed at it, and compiled functions under the runtime
// emulator; with the checks tests share on them (a secret's stages and
// values, a key's ping to the reference gateway).
package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Region and test credentials used with moto.
const (
	Region          = "us-east-1"
	AccessKeyID     = "testing"
	SecretAccessKey = "testing"
)

// Moto is a running moto_server.
type Moto struct {
	URL  string // http://127.0.0.1:PORT
	cmd  *exec.Cmd
	done chan struct{}
}

// MotoOptions tune StartMoto.
type MotoOptions struct {
	// Env is added to moto's environment, e.g. INITIAL_NO_AUTH_ACTION_COUNT=N
	// to make moto check signatures and IAM policies after N calls.
	Env []string
}

// StartMoto starts moto_server on 127.0.0.1 and a free port, waits until it
// answers, and stops it when t ends. A missing moto_server fails the test.
func StartMoto(t testing.TB, opts *MotoOptions) *Moto {
	t.Helper()
	if opts == nil {
		opts = &MotoOptions{}
	}
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		t.Fatalf("moto_server is not installed: %v", err)
	}
	port := FreePort(t)
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	cmd.Env = append(os.Environ(), opts.Env...)
	logf, err := os.Create(filepath.Join(t.TempDir(), "moto.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start moto_server: %v", err)
	}
	m := &Moto{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(m.done) }()
	t.Cleanup(func() { m.Stop(); logf.Close() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(m.URL + "/moto-api/")
		if err == nil {
			resp.Body.Close()
			return m
		}
		select {
		case <-m.done:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("moto_server exited: %s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("moto_server did not answer within 30s: %v", err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Stop kills moto and waits for it. It is safe to call twice.
func (m *Moto) Stop() {
	select {
	case <-m.done:
		return
	default:
	}
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	<-m.done
}

// Reset wipes moto's state.
func (m *Moto) Reset(t testing.TB) {
	t.Helper()
	resp, err := http.Post(m.URL+"/moto-api/reset", "application/json", strings.NewReader(""))
	if err != nil {
		t.Fatalf("reset moto: %v", err)
	}
	resp.Body.Close()
}

// Config returns an AWS configuration for moto with static test credentials
// and a single attempt per call (moto answers unimplemented actions with 500).
func (m *Moto) Config(t testing.TB) aws.Config {
	t.Helper()
	return m.ConfigWithKeys(t, AccessKeyID, SecretAccessKey)
}

// ConfigWithKeys is Config with other credentials (an IAM user's access key).
func (m *Moto) ConfigWithKeys(t testing.TB, id, secret string) aws.Config {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion(Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(id, secret, "")),
		config.WithBaseEndpoint(m.URL),
		config.WithRetryMaxAttempts(1),
	)
	if err != nil {
		t.Fatalf("aws config: %v", err)
	}
	return cfg
}

// Env returns the environment variables that point an AWS SDK or CLI at moto.
func (m *Moto) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL=" + m.URL,
		"AWS_REGION=" + Region,
		"AWS_DEFAULT_REGION=" + Region,
		"AWS_ACCESS_KEY_ID=" + AccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + SecretAccessKey,
	}
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
