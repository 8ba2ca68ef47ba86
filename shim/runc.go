package shim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
)

// runc drives the OCI runtime binary directly. go-runc would do, but it
// brings logrus and a process monitor the shim's reaper already is; the
// command lines are simple enough to write out.
type runc struct {
	bin     string // runtime binary
	root    string // --root: the runtime's state directory
	logPath string // --log: where runc puts its errors as JSON lines
	reaper  *reaper
}

const runcTimeout = 30 * time.Second

func (r *runc) args(args ...string) []string {
	return append([]string{"--root", r.root, "--log", r.logPath, "--log-format", "json"}, args...)
}

// stdio are the files a created process gets as fds 0, 1 and 2.
type stdioFiles struct {
	in, out, err *os.File
}

// runIO runs runc with the given stdio (passed through to the container
// process for create and exec) and reports runc's own error from its log.
func (r *runc) runIO(fds stdioFiles, args ...string) error {
	cmd := exec.Command(r.bin, r.args(args...)...)
	// A nil *os.File in the io.Reader interface is not a nil reader: exec
	// would hand the process a bad descriptor instead of /dev/null.
	if fds.in != nil {
		cmd.Stdin = fds.in
	}
	if fds.out != nil {
		cmd.Stdout = fds.out
	}
	if fds.err != nil {
		cmd.Stderr = fds.err
	}
	off := r.logSize()
	ch, err := r.reaper.start(cmd)
	if err != nil {
		return fmt.Errorf("start %s: %w", r.bin, err)
	}
	st, err := r.reaper.wait(cmd, ch, runcTimeout)
	if err != nil {
		return err
	}
	if st != 0 {
		return fmt.Errorf("%s %s: exit %d: %s", filepath.Base(r.bin), args[0], st, r.lastError(off))
	}
	return nil
}

// run runs runc with its output captured and returns its stdout.
func (r *runc) run(args ...string) ([]byte, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(r.bin, r.args(args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	ch, err := r.reaper.start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", r.bin, err)
	}
	st, err := r.reaper.wait(cmd, ch, runcTimeout)
	if err != nil {
		return nil, err
	}
	if st != 0 {
		msg := strings.TrimSpace(errb.String())
		return nil, classify(fmt.Errorf("%s %s: exit %d: %s", filepath.Base(r.bin), args[0], st, msg))
	}
	return out.Bytes(), nil
}

// classify maps runc's messages to error classes callers can act on.
func classify(err error) error {
	s := err.Error()
	switch {
	case strings.Contains(s, "does not exist"), strings.Contains(s, "not found"):
		return fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
	case strings.Contains(s, "not running"), strings.Contains(s, "is paused"), strings.Contains(s, "not paused"),
		strings.Contains(s, "cannot delete"), strings.Contains(s, "already"):
		return fmt.Errorf("%w: %w", errdefs.ErrFailedPrecondition, err)
	}
	return err
}

func (r *runc) logSize() int64 {
	st, err := os.Stat(r.logPath)
	if err != nil {
		return 0
	}
	return st.Size()
}

// lastError returns the last error message runc logged after offset off.
func (r *runc) lastError(off int64) string {
	f, err := os.Open(r.logPath)
	if err != nil {
		return "no runc log"
	}
	defer f.Close()
	if _, err := f.Seek(off, 0); err != nil {
		return err.Error()
	}
	buf := make([]byte, 64*1024)
	n, _ := f.Read(buf)
	msg := "unknown error (see " + r.logPath + ")"
	for _, line := range bytes.Split(buf[:n], []byte{'\n'}) {
		var e struct{ Level, Msg string }
		if json.Unmarshal(line, &e) == nil && (e.Level == "error" || e.Level == "fatal") {
			msg = e.Msg
		}
	}
	return msg
}

func (r *runc) create(id, bundle, pidFile, consoleSocket string, fds stdioFiles) (int, error) {
	args := []string{"create", "--bundle", bundle, "--pid-file", pidFile}
	if consoleSocket != "" {
		args = append(args, "--console-socket", consoleSocket)
	}
	if err := r.runIO(fds, append(args, id)...); err != nil {
		return 0, err
	}
	return readPidFile(pidFile)
}

// runDetached creates and starts the container in one runtime call.
func (r *runc) runDetached(id, bundle, pidFile, consoleSocket string, fds stdioFiles) (int, error) {
	args := []string{"run", "--detach", "--bundle", bundle, "--pid-file", pidFile}
	if consoleSocket != "" {
		args = append(args, "--console-socket", consoleSocket)
	}
	if err := r.runIO(fds, append(args, id)...); err != nil {
		return 0, err
	}
	return readPidFile(pidFile)
}

func (r *runc) exec(id, specPath, pidFile, consoleSocket string, fds stdioFiles) (int, error) {
	args := []string{"exec", "--process", specPath, "--detach", "--pid-file", pidFile}
	if consoleSocket != "" {
		args = append(args, "--console-socket", consoleSocket)
	}
	if err := r.runIO(fds, append(args, id)...); err != nil {
		return 0, err
	}
	return readPidFile(pidFile)
}

func (r *runc) start(id string) error { _, err := r.run("start", id); return err }
func (r *runc) pause(id string) error { _, err := r.run("pause", id); return err }
func (r *runc) resume(id string) error {
	_, err := r.run("resume", id)
	return err
}

func (r *runc) kill(id string, sig int, all bool) error {
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	_, err := r.run(append(args, id, strconv.Itoa(sig))...)
	return err
}

func (r *runc) delete(id string, force bool) error {
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	_, err := r.run(append(args, id)...)
	return err
}

func (r *runc) ps(id string) ([]int, error) {
	out, err := r.run("ps", "--format", "json", id)
	if err != nil {
		return nil, err
	}
	var pids []int
	if err := json.Unmarshal(out, &pids); err != nil {
		return nil, fmt.Errorf("runc ps output: %w", err)
	}
	return pids, nil
}

func readPidFile(p string) (int, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, fmt.Errorf("read pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("pid file %s: %w", filepath.Base(p), err)
	}
	return pid, nil
}
