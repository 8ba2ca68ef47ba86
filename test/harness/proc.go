package harness

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// proc is one child process whose stdout and stderr go to a log file. A
// goroutine reaps it, so exit can be observed without blocking and a zombie
// never outlives the test.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // the result of Wait; valid once done is closed
}

// startProc starts path with args, appending stdout and stderr to logPath.
// The file is handed to the child directly (no pipe), so a child that logs a
// lot can never block on a test that stopped reading.
func startProc(path string, args, env []string, logPath string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", logPath, err)
	}
	defer f.Close() // the child holds its own copy
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdout = f
	cmd.Stderr = f
	// If the test binary dies without running its cleanups (a -timeout panic),
	// the kernel kills the child instead of leaving it behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended (and been reaped).
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to timeout for the process to end.
func (p *proc) wait(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// stop sends SIGTERM, waits up to timeout, then SIGKILLs. forced says
// whether SIGKILL was needed; exitErr is what Wait returned.
func (p *proc) stop(timeout time.Duration) (forced bool, exitErr error) {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if !p.wait(timeout) {
			forced = true
			p.kill()
		}
	}
	<-p.done
	return forced, p.err
}

// kill sends SIGKILL and waits for the process to be reaped.
func (p *proc) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// exitDescription says how the process ended, for messages.
func (p *proc) exitDescription() string {
	if !p.exited() {
		return "still running"
	}
	if p.err == nil {
		return "exit status 0"
	}
	return p.err.Error()
}

// cleanExit reports whether err (from Wait) is a zero exit status.
func cleanExit(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode() == 0
	}
	return err == nil
}

// freeAddr returns 127.0.0.1:PORT with a port that was free a moment ago.
// Another process may take it before the caller binds it; callers that
// start a server on it retry with a new port when the bind fails.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(l.Addr().(*net.TCPAddr).Port)), nil
}
