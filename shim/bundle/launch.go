package bundle

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// DaemonEnv marks the re-executed, detached shim: berth-shim started
// without it is the launcher, with it the daemon.
const DaemonEnv = "BERTH_SHIM_DAEMON"

// ReadyFd is the pipe on which the daemon tells its launcher it serves:
// "ok <socket>\n" or "error <reason>\n".
const ReadyFd = 3

// StartDaemon starts the shim binary bin as the detached daemon for bundle
// (its own session, stdio to shim.log, cwd the bundle) with the given
// command-line args, and returns once it serves, with the socket address
// it reported. The caller owns cmd: Wait on it to reap the shim when it
// exits, or Release it to leave that to init.
func StartDaemon(bin, bundle string, args []string) (*exec.Cmd, string, error) {
	if st, err := os.Stat(bundle); err != nil || !st.IsDir() {
		return nil, "", fmt.Errorf("bundle %s: not a directory", bundle)
	}
	logf, err := os.OpenFile(filepath.Join(bundle, LogName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, "", err
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, "", err
	}
	defer r.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), DaemonEnv+"=1")
	cmd.Dir = bundle
	cmd.Stdout, cmd.Stderr = logf, logf // stdin stays /dev/null
	cmd.ExtraFiles = []*os.File{w}      // fd 3: ReadyFd
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, "", fmt.Errorf("start daemon: %w", err)
	}
	w.Close()
	_ = r.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	if after, ok := strings.CutPrefix(line, "ok "); ok {
		return cmd, after, nil
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if after, ok := strings.CutPrefix(line, "error "); ok {
		return nil, "", errors.New(after)
	}
	return nil, "", fmt.Errorf("daemon did not start (%v); see %s", err, filepath.Join(bundle, LogName))
}
