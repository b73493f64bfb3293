package local

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/keyrotor/keyrotor/internal/rie"
)

// modulePath is the module the stack builds functions from.
const modulePath = "github.com/keyrotor/keyrotor"

// FindRepoRoot returns the folder holding keyrotor's go.mod, looking up from
// dir (the working directory if empty).
func FindRepoRoot(dir string) (string, error) {
	if dir == "" {
		var err error
		if dir, err = os.Getwd(); err != nil {
			return "", fmt.Errorf("find the keyrotor repository: %w", err)
		}
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), "module "+modulePath) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("find the keyrotor repository: no go.mod of %s above %s", modulePath, dir)
		}
	}
}

// FunctionNames returns every function the repository has: the folders
// under functions/ holding a main.go (gateway, iam, the other vendors,
// revoker, and auditor when it exists), sorted.
func FunctionNames(repoRoot string) []string {
	entries, err := os.ReadDir(filepath.Join(repoRoot, "functions"))
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(repoRoot, "functions", e.Name(), "main.go")); err == nil {
			names = append(names, e.Name())
		}
	}
	return names
}

// BuildFunctions builds functions/<name> for this machine, as deployed
// (-tags lambda.norpc -trimpath, stripped with -ldflags "-s -w", CGO off),
// into outDir/<name>/bootstrap, with one go build. It returns the paths by
// function name.
func BuildFunctions(ctx context.Context, repoRoot, outDir string, names []string) (map[string]string, error) {
	if len(names) == 0 {
		return map[string]string{}, nil
	}
	tmp := filepath.Join(outDir, ".build")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("build functions: %w", err)
	}
	args := []string{"build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", tmp + string(filepath.Separator)}
	for _, n := range names {
		args = append(args, "./functions/"+n)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build functions %s: %w\n%s", strings.Join(names, ", "), err, out)
	}
	paths := map[string]string{}
	for _, n := range names {
		dir := filepath.Join(outDir, n)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("build functions: %w", err)
		}
		p := filepath.Join(dir, "bootstrap")
		if err := os.Rename(filepath.Join(tmp, n), p); err != nil {
			return nil, fmt.Errorf("build function %s: %w", n, err)
		}
		paths[n] = p
	}
	return paths, nil
}

// FindRIE returns the path of the Lambda Runtime Interface Emulator:
// aws-lambda-rie on PATH, in GOBIN, or in GOPATH/bin (`make tools`).
func FindRIE() (string, error) { return rie.Find() }
