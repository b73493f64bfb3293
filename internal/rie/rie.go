// Package rie runs a compiled Lambda function under the AWS Lambda Runtime
// Interface Emulator (aws-lambda-rie) on 127.0.0.1: it finds the emulator
// and builds its command line and invoke URL, for the local stack
// (infra/local) and the tests' environment (internal/testenv), which start,
// wait for and stop the process each in their own way.
package rie

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Find returns the path of the emulator: aws-lambda-rie on PATH, in
// $GOBIN, or in go env's GOBIN or GOPATH/bin (`make tools` installs it).
func Find() (string, error) {
	if p, err := exec.LookPath("aws-lambda-rie"); err == nil {
		return p, nil
	}
	dirs := []string{os.Getenv("GOBIN")}
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) == 2 {
			dirs = append(dirs, strings.TrimSpace(lines[0]), filepath.Join(strings.TrimSpace(lines[1]), "bin"))
		}
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		p := filepath.Join(d, "aws-lambda-rie")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("aws-lambda-rie is not installed: run `make tools`")
}

// Command returns the command running bootstrap under the emulator at path
// rie, answering invokes on 127.0.0.1:port (InvokeURL) and serving the
// Runtime API to the function on 127.0.0.1:apiPort; flags are more of the
// emulator's flags. The caller sets its environment and output.
func Command(rie, bootstrap string, port, apiPort int, flags ...string) *exec.Cmd {
	args := append([]string{
		"--runtime-interface-emulator-address", fmt.Sprintf("127.0.0.1:%d", port),
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", apiPort),
	}, flags...)
	return exec.Command(rie, append(args, bootstrap)...)
}

// InvokeURL returns the invoke endpoint of the emulator listening on
// 127.0.0.1:port.
func InvokeURL(port int) string {
	return fmt.Sprintf("http://127.0.0.1:%d/2015-03-31/functions/function/invocations", port)
}
