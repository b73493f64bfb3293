package local

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// process is a child started in its own process group, so that stopping it
// also stops what it started (the runtime emulator's bootstrap).
type process struct {
	name string
	cmd  *exec.Cmd
	pgid int
	done chan struct{}
	logs *logBuffer
}

// startProcess starts cmd in a new process group. Its output goes to a
// buffer and, if out is not nil, to out with each line prefixed by name.
// The child is killed if this process dies first (Pdeathsig).
func startProcess(name string, cmd *exec.Cmd, out io.Writer) (*process, error) {
	p := &process{name: name, cmd: cmd, done: make(chan struct{}), logs: &logBuffer{prefix: "[" + name + "] ", out: out}}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.pgid = cmd.Process.Pid
	go func() { _ = cmd.Wait(); p.logs.flush(); close(p.done) }()
	return p, nil
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after grace, and
// waits for the leader. It returns an error if any member of the group is
// still alive afterwards.
func (p *process) stop(grace time.Duration) error {
	_ = syscall.Kill(-p.pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
		<-p.done
	}
	// The leader is gone; kill what may remain of its group (a bootstrap
	// whose emulator died first) and check that nothing is left.
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := syscall.Kill(-p.pgid, 0)
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stop %s: processes of group %d are still alive", p.name, p.pgid)
		}
		_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
		time.Sleep(10 * time.Millisecond)
	}
}

// maxLogBytes bounds the output kept in memory per process.
const maxLogBytes = 16 << 20

// logBuffer keeps everything a process printed and copies whole lines,
// prefixed, to out.
type logBuffer struct {
	prefix string
	out    io.Writer

	mu      sync.Mutex
	all     bytes.Buffer
	partial []byte
}

func (l *logBuffer) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.all.Len() > maxLogBytes {
		// Keep the newer half: a long-running stack must not grow forever.
		rest := append([]byte(nil), l.all.Bytes()[l.all.Len()/2:]...)
		l.all.Reset()
		l.all.Write(rest)
	}
	l.all.Write(b)
	if l.out == nil {
		return len(b), nil
	}
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		_, _ = fmt.Fprintf(l.out, "%s%s\n", l.prefix, l.partial[:i])
		l.partial = l.partial[i+1:]
	}
	return len(b), nil
}

func (l *logBuffer) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.out != nil && len(l.partial) > 0 {
		_, _ = fmt.Fprintf(l.out, "%s%s\n", l.prefix, l.partial)
		l.partial = nil
	}
}

// String returns everything written so far.
func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}
