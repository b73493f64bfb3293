package clitest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/internal/testenv"
)

// walkthroughMark precedes each shell block of docs/operator.md's local
// walkthrough (an HTML comment: a reader of the rendered page does not see it).
const walkthroughMark = "<!-- walkthrough"

// walkthroughEnvFile is the env file the walkthrough names; the test puts its
// own in its place, so that runs do not share one.
const walkthroughEnvFile = "/tmp/keyrotor.env"

// exitComment is a line's documented exit code: "# exit 4: why".
var exitComment = regexp.MustCompile(`#\s*exit (\d+)\b`)

// docLine is one command line of the walkthrough.
type docLine struct {
	n        int    // line number in the doc
	command  string // as written, continuation lines joined
	wantExit int
}

// walkthroughLines returns the command lines of the doc's walkthrough
// blocks, in order.
func walkthroughLines(t *testing.T, doc string) []docLine {
	t.Helper()
	var (
		out             []docLine
		marked, inBlock bool
		pending         *docLine
	)
	sc := bufio.NewScanner(strings.NewReader(doc))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case !inBlock && strings.HasPrefix(trimmed, walkthroughMark):
			marked = true
		case !inBlock && marked && strings.HasPrefix(trimmed, "```"):
			if trimmed != "```sh" {
				t.Fatalf("docs/operator.md:%d: a walkthrough block must be ```sh, not %s", n, trimmed)
			}
			inBlock = true
		case !inBlock:
			if trimmed != "" {
				marked = false
			}
		case trimmed == "```":
			inBlock, marked = false, false
		case trimmed == "" || strings.HasPrefix(trimmed, "#"):
		default:
			if pending == nil {
				pending = &docLine{n: n}
			}
			cont := strings.HasSuffix(line, `\`)
			pending.command += strings.TrimSuffix(line, `\`)
			if cont {
				pending.command += "\n"
				continue
			}
			if m := exitComment.FindStringSubmatch(pending.command); m != nil {
				pending.wantExit, _ = strconv.Atoi(m[1])
			}
			out = append(out, *pending)
			pending = nil
		}
	}
	if len(out) == 0 {
		t.Fatal("docs/operator.md has no walkthrough block (" + walkthroughMark + " before a ```sh block)")
	}
	return out
}

// TestOperatorWalkthrough follows docs/operator.md's local walkthrough as a
// reader would: it starts the walkthrough's `keyrotor local --grace 5m` (the
// built binary, first on PATH as keyrotor) and runs every other line, in
// order, in one bash session, as typed in the second terminal, asserting the
// exit code the doc gives next to it (`# exit N`, else 0). It then checks
// that `keyrotor local` printed a line for the rotation steps and the
// revocations, never a key, and that Ctrl-C stops it and removes its env
// file. The only change to the lines: the test's own env file stands in for
// /tmp/keyrotor.env.
func TestOperatorWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the walkthrough starts its own local stack")
	}
	for _, tool := range []string{"bash", "aws", "jq", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the walkthrough uses %s, which is not installed", tool)
		}
	}
	root := testenv.RepoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, "docs", "operator.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := walkthroughLines(t, string(doc))
	bin := keyrotorBin(t)
	dir := t.TempDir()
	envFile := filepath.Join(dir, "keyrotor.env")

	// The reader's environment: the binary first on PATH, no AWS or
	// keyrotor settings but those the env file gives.
	env := []string{"PATH=" + filepath.Dir(bin) + string(os.PathListSeparator) + os.Getenv("PATH")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "KEYROTOR_") && !strings.Contains(kv, "_API_BASE_URL=") {
			env = append(env, kv)
		}
	}
	env = append(env, "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")

	// The first terminal: keyrotor local, until Ctrl-C.
	start := lines[0]
	if !strings.HasPrefix(start.command, "keyrotor local ") || !strings.Contains(start.command, "--grace 5m") {
		t.Fatalf("docs/operator.md:%d: the walkthrough must start with `keyrotor local --grace 5m ...`, not %q", start.n, start.command)
	}
	lines = lines[1:]
	localErr, err := os.Create(filepath.Join(dir, "local.stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer localErr.Close()
	local := exec.Command("bash", "-c", "exec "+strings.ReplaceAll(start.command, walkthroughEnvFile, envFile))
	local.Dir, local.Env = root, env
	local.Stdout, local.Stderr = localErr, localErr
	local.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := local.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- local.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = syscall.Kill(-local.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}()
	localOutput := func() string {
		b, _ := os.ReadFile(localErr.Name())
		return string(b)
	}
	// Wait for the env file, as the reader waits for "ready".
	for deadline := time.Now().Add(10 * time.Minute); ; {
		if b, err := os.ReadFile(envFile); err == nil && strings.Contains(string(b), "KEYROTOR_GATEWAY_URL") {
			break
		}
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("docs/operator.md:%d: %s exited before writing its env file: %v\n%s", start.n, start.command, err, localOutput())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("docs/operator.md:%d: %s did not write its env file:\n%s", start.n, start.command, localOutput())
		}
	}

	// The second terminal: one bash session; after each line its exit
	// code goes to fd 3.
	var script strings.Builder
	for i, l := range lines {
		cmdline := strings.ReplaceAll(l.command, walkthroughEnvFile, envFile)
		fmt.Fprintf(&script, "printf '%%s\\n' %s\n%s\necho %d $? >&3\n", shellQuote("$ "+l.command), cmdline, i)
	}
	codes, err := os.Create(filepath.Join(dir, "exit-codes"))
	if err != nil {
		t.Fatal(err)
	}
	defer codes.Close()
	session := exec.Command("bash", "--noprofile", "--norc", "-c", script.String())
	session.Dir, session.Env = root, env
	session.ExtraFiles = []*os.File{codes}
	transcript, err := session.CombinedOutput()
	if err != nil {
		t.Fatalf("the walkthrough's session ended early: %v\n%s", err, transcript)
	}
	got, err := os.ReadFile(codes.Name())
	if err != nil {
		t.Fatal(err)
	}
	exitOf := map[int]int{}
	for _, f := range strings.Split(strings.TrimSpace(string(got)), "\n") {
		var i, code int
		if _, err := fmt.Sscanf(f, "%d %d", &i, &code); err == nil {
			exitOf[i] = code
		}
	}
	for i, l := range lines {
		code, ran := exitOf[i]
		switch {
		case !ran:
			t.Errorf("docs/operator.md:%d: %s: did not run", l.n, l.command)
		case code != l.wantExit:
			t.Errorf("docs/operator.md:%d: %s: exit %d, the doc says %d", l.n, l.command, code, l.wantExit)
		}
	}
	t.Logf("the session's transcript:\n%s", transcript)

	// The first terminal showed the rotation and the revocations. The
	// revoker logs a revocation right after the key is gone at the gateway,
	// which the emergency rotation waits for: wait for its line too.
	wantActivity := []*regexp.Regexp{
		regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d rotation demo/gateway: finishSecret done$`),
		regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d rotation demo/gateway: revocation of key_\w+ scheduled for \d\d:\d\d:\d\d \(emergency\)$`),
		regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d revoker: revoked key_\w+ of demo/gateway$`),
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		var missing []string
		for _, re := range wantActivity {
			if !re.MatchString(localOutput()) {
				missing = append(missing, re.String())
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("keyrotor local printed no line matching %s", strings.Join(missing, ", "))
			break
		}
	}

	// Ctrl-C in the first terminal.
	if err := local.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Errorf("keyrotor local after Ctrl-C: %v", err)
	}
	stopped = true
	if _, err := os.Stat(envFile); !os.IsNotExist(err) {
		t.Errorf("the env file is still there after Ctrl-C (%v)", err)
	}
	if printedKey.MatchString(localOutput() + string(transcript)) {
		t.Error("the walkthrough printed a key of the gateway")
	}
	t.Logf("keyrotor local printed:\n%s", localOutput())
}

// printedKey matches the reference gateway's keys (the walkthrough reads and
// uses the key of demo/gateway).
var printedKey = regexp.MustCompile(`gw_[A-Za-z0-9_-]{16,}`)

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
