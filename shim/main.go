package shim

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	shimapi "berth.dev/berth/api/shim/v1"
	"berth.dev/berth/shim/bundle"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
)

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
	bundleDir := fs.String("bundle", "", "bundle directory (config.json, rootfs/)")
	rt := fs.String("runtime", "runc", "OCI runtime binary")
	dbg := fs.Bool("debug", false, "log at debug level")
	spare := fs.Bool("spare", false, "serve from -bundle as a spare: the directory is renamed to the container's bundle before Create, which names it")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *id == "" || *bundleDir == "" {
		fmt.Fprintln(os.Stderr, "berth-shim: -id and -bundle are required")
		return 2
	}
	dir, err := filepath.Abs(*bundleDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "berth-shim:", err)
		return 1
	}
	if os.Getenv(bundle.DaemonEnv) != "1" {
		addr, err := launch(dir, args)
		if err != nil {
			fmt.Fprintln(os.Stderr, "berth-shim:", err)
			return 1
		}
		fmt.Println(addr)
		return 0
	}
	ready := os.NewFile(bundle.ReadyFd, "ready")
	if err := serve(dir, *ns, *id, *rt, *dbg, *spare, ready); err != nil {
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
func launch(dir string, args []string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	cmd, addr, err := bundle.StartDaemon(self, dir, args)
	if err != nil {
		return "", err
	}
	_ = cmd.Process.Release() // the daemon outlives us; init reaps it
	return addr, nil
}

// tuneMemory fits the Go runtime to a process that mostly waits: one P,
// and a small heap goal (GOGC 25: the minimum goal is then 1 MiB) that
// keeps the heap small without collecting all the time. The memory limit
// is only a backstop against a runaway: it counts all of the runtime's own
// memory, and at 4 MiB (below what the runtime, stacks and heap of a shim
// take together) the shim collected continuously, 75 times in its first
// 270 ms, which slowed every start and, touching the collector's code and
// tables, left a bigger RSS (3.9 MiB alone after the trim against 2.7 MiB
// with one collection).
func tuneMemory() {
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(25)
	debug.SetMemoryLimit(16 << 20)
}

func serve(dir, ns, id, rt string, dbg, spare bool, ready *os.File) error {
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
	if err := os.Chdir(dir); err != nil {
		return err
	}
	sock := filepath.Join(dir, bundle.SocketName)
	if alive(bundle.SocketName) {
		return fmt.Errorf("a shim already serves %s", sock)
	}
	_ = os.Remove(bundle.SocketName)
	old := unix.Umask(0o077)
	l, err := net.Listen("unix", bundle.SocketName)
	unix.Umask(old)
	if err != nil {
		return fmt.Errorf("listen %s: %w", sock, err)
	}
	// Relative names: a spare's directory is renamed under it, and the
	// working directory follows the rename.
	defer os.Remove(bundle.SocketName)
	if err := bundle.WriteFileSync(filepath.Join(dir, bundle.PidName), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return err
	}
	defer os.Remove(bundle.PidName)
	svc := NewService(log, ns, dir, rt)
	svc.spare = spare
	return serveUntilDone(log, l, svc, func() {
		if ready != nil {
			fmt.Fprintf(ready, "ok %s\n", sock)
			ready.Close()
		}
		log.Info("serving", "socket", sock, "pid", os.Getpid())
		// No trimming here: Create follows at once and would fault the code
		// back in from disk; Start trims once the task runs.
	})
}

// serveUntilDone serves svc's Task API on l, calls serving once it does,
// and returns when svc is Done.
func serveUntilDone(log *slog.Logger, l net.Listener, svc *Service, serving func()) error {
	conns := newConnTracker()
	srv, err := ttrpc.NewServer(
		ttrpc.WithServerHandshaker(conns.handshaker(ttrpc.UnixSocketRequireSameUser())),
		ttrpc.WithUnaryServerInterceptor(toWire),
	)
	if err != nil {
		return err
	}
	shimapi.RegisterTaskService(srv, svc)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(context.Background(), l) }()
	serving()
	select {
	case <-svc.Done():
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	}
	// No new connections; then every request taken gets its answer
	// (the Shutdown call's among them) before the server closes.
	_ = l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := conns.drain(ctx); err != nil {
		log.Warn("exiting with requests unanswered", "err", err)
	}
	_ = srv.Shutdown(ctx)
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
