package shim

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	shimapi "berth.dev/berth/api/shim/v1"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
)

// daemonEnv marks the re-executed, detached shim.
const daemonEnv = "BERTH_SHIM_DAEMON"

// readyFd is the pipe on which the daemon tells its launcher it serves.
const readyFd = 3

// Main is berth-shim's main:
//
//	berth-shim -namespace NS -id ID -bundle DIR [-runtime runc] [-debug]
//
// The process started so is a launcher: it re-executes itself detached
// (own session, stdio on /dev/null and <bundle>/shim.log), waits until
// that daemon serves, prints the socket address on stdout and exits 0, so
// whoever started it can reap it at once and the daemon is nobody's child
// but init's. On failure it prints the reason on stderr and exits 1.
func Main(args []string) int {
	fs := flag.NewFlagSet("berth-shim", flag.ContinueOnError)
	ns := fs.String("namespace", "default", "namespace of the container")
	id := fs.String("id", "", "id of the container")
	bundle := fs.String("bundle", "", "bundle directory (config.json, rootfs/)")
	rt := fs.String("runtime", "runc", "OCI runtime binary")
	dbg := fs.Bool("debug", false, "log at debug level")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *id == "" || *bundle == "" {
		fmt.Fprintln(os.Stderr, "berth-shim: -id and -bundle are required")
		return 2
	}
	dir, err := filepath.Abs(*bundle)
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth-shim:", err)
		return 1
	}
	if os.Getenv(daemonEnv) != "1" {
		addr, err := launch(dir, args)
		if err != nil {
			fmt.Fprintln(os.Stderr, "berth-shim:", err)
			return 1
		}
		fmt.Println(addr)
		return 0
	}
	ready := os.NewFile(readyFd, "ready")
	if err := serve(dir, *ns, *id, *rt, *dbg, ready); err != nil {
		fmt.Fprintln(os.Stderr, "berth-shim:", err)
		if ready != nil {
			fmt.Fprintf(ready, "error %s\n", err)
		}
		return 1
	}
	return 0
}

// launch starts the daemon for the berth-shim command line and exits
// once it serves, leaving the daemon to init.
func launch(bundle string, args []string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	cmd, addr, err := StartDaemon(self, bundle, args)
	if err != nil {
		return "", err
	}
	_ = cmd.Process.Release() // the daemon outlives us; init reaps it
	return addr, nil
}

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
	cmd.Env = append(os.Environ(), daemonEnv+"=1")
	cmd.Dir = bundle
	cmd.Stdout, cmd.Stderr = logf, logf // stdin stays /dev/null
	cmd.ExtraFiles = []*os.File{w}
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

func tuneMemory() {
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(25)
	debug.SetMemoryLimit(4 << 20)
}

func serve(bundle, ns, id, rt string, dbg bool, ready *os.File) error {
	tuneMemory()
	level := slog.LevelInfo
	if dbg {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("ns", ns, "id", id)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set child subreaper: %w", err)
	}
	// Bind relative to the bundle: its absolute path may pass the 108-byte
	// limit of unix socket addresses.
	if err := os.Chdir(bundle); err != nil {
		return err
	}
	sock := filepath.Join(bundle, SocketName)
	if alive(SocketName) {
		return fmt.Errorf("a shim already serves %s", sock)
	}
	_ = os.Remove(SocketName)
	old := unix.Umask(0o077)
	l, err := net.Listen("unix", SocketName)
	unix.Umask(old)
	if err != nil {
		return fmt.Errorf("listen %s: %w", sock, err)
	}
	defer os.Remove(filepath.Join(bundle, SocketName))
	if err := writeFileSync(filepath.Join(bundle, PidName), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(bundle, PidName))
	svc := NewService(log, ns, bundle, rt)
	srv, err := ttrpc.NewServer(
		ttrpc.WithServerHandshaker(ttrpc.UnixSocketRequireSameUser()),
		ttrpc.WithUnaryServerInterceptor(toWire),
	)
	if err != nil {
		return err
	}
	shimapi.RegisterTaskService(srv, svc)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(context.Background(), l) }()
	if ready != nil {
		fmt.Fprintf(ready, "ok %s\n", sock)
		ready.Close()
	}
	log.Info("serving", "socket", sock, "pid", os.Getpid())
	// No trimming here: Create follows at once and would fault the code
	// back in from disk; Start trims once the task runs.
	select {
	case <-svc.Done():
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx) // lets the Shutdown call's answer go out
	log.Info("shim exits")
	return nil
}

// alive reports whether something accepts connections on the socket.
func alive(sock string) bool {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
