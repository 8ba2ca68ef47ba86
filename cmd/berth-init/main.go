// Command berth-init is the small init berth runs as a container's PID 1
// when the container asks for one (`init: true`, `berth run --init`), as
// docker's --init runs tini. A program that runs as PID 1 gets no default
// signal actions: busybox httpd ignores SIGTERM there, so every stop waited
// the whole stop timeout for SIGKILL. berth-init starts the program as its
// child, forwards the signals it gets to it, reaps every orphan that is
// re-parented to it, and exits with the program's status (128+N when a
// signal N killed it), so a stop takes as long as the program needs.
//
// Usage: berth-init -- PROGRAM [ARGS...]
package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "berth-init: usage: berth-init -- PROGRAM [ARGS...]")
		os.Exit(2)
	}
	os.Exit(run(args))
}

// forwarded are the signals passed on to the program. SIGCHLD is berth-
// init's own (it reaps); SIGKILL and SIGSTOP cannot be caught.
var forwarded = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGCONT, syscall.SIGALRM,
}

func run(args []string) int {
	// Outside PID 1 (tests, nested use), orphans would go to the host's
	// init; a subreaper gets them, as PID 1 does.
	_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, append([]os.Signal{syscall.SIGCHLD}, forwarded...)...)

	path, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-init: %v\n", err)
		return 127
	}
	// The child keeps berth-init's session and process group, so a
	// terminal (Terminal: true) stays its controlling terminal.
	p, err := os.StartProcess(path, args, &os.ProcAttr{Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}, Env: os.Environ()})
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth-init: start %s: %v\n", args[0], err)
		return 126
	}
	child := p.Pid
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			_ = syscall.Kill(child, sig.(syscall.Signal))
			continue
		}
		// Reap everything that has exited: SIGCHLDs coalesce, so one may
		// stand for several children.
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err != nil || pid <= 0 {
				break
			}
			if pid == child {
				return exitCode(ws)
			}
		}
	}
	return 0
}

func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}
