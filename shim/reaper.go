package shim

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// reaper reaps every child of the shim: the runtime commands it runs and,
// since the shim is a child subreaper, the container's processes that runc
// leaves behind. A command's exit goes to the caller that started it; every
// other exit goes to onExit.
//
// Commands are started under mu, the lock the reaping loop holds, so a
// command that exits at once cannot be reaped before it is registered.
type reaper struct {
	mu      sync.Mutex
	waiting map[int]chan int
	onExit  func(pid, status int, at time.Time)
	sigc    chan os.Signal
}

func newReaper(onExit func(pid, status int, at time.Time)) *reaper {
	r := &reaper{waiting: map[int]chan int{}, onExit: onExit, sigc: make(chan os.Signal, 16)}
	signal.Notify(r.sigc, unix.SIGCHLD)
	go func() {
		for range r.sigc {
			r.reap()
		}
	}()
	return r
}

// stop ends the reaping. A shim never does (it has one reaper for its
// life); a test process that makes one Service after another must, or the
// earlier reapers take the later ones' children.
func (r *reaper) stop() {
	signal.Stop(r.sigc)
	close(r.sigc)
}

type reaped struct {
	pid, status int
}

func (r *reaper) reap() {
	var others []reaped
	r.mu.Lock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			break
		}
		st := exitStatus(ws)
		if ch, ok := r.waiting[pid]; ok {
			delete(r.waiting, pid)
			ch <- st
			continue
		}
		others = append(others, reaped{pid, st})
	}
	// Handed on before the lock goes: a signal sent under it (the
	// service's signalProcess) then sees every pid reaped so far as
	// exited, never a freed pid as its process's. onExit only queues.
	now := time.Now()
	for _, e := range others {
		r.onExit(e.pid, e.status, now)
	}
	r.mu.Unlock()
}

// exitStatus is the shell's convention: the code, or 128+signal.
func exitStatus(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// start starts cmd and returns the channel its exit status arrives on.
// The caller must call wait, never cmd.Wait alone.
func (r *reaper) start(cmd *exec.Cmd) (chan int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := make(chan int, 1)
	r.waiting[cmd.Process.Pid] = ch
	return ch, nil
}

// wait waits for cmd's exit (killing it after timeout) and then lets
// os/exec finish its copying goroutines; cmd.Wait's own wait fails with
// ECHILD because the reaper has already collected the child.
func (r *reaper) wait(cmd *exec.Cmd, ch chan int, timeout time.Duration) (int, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	var st int
	select {
	case st = <-ch:
	case <-t.C:
		_ = cmd.Process.Signal(unix.SIGKILL)
		st = <-ch
		_ = cmd.Wait()
		return st, fmt.Errorf("%s: timed out after %s", cmd.Path, timeout)
	}
	_ = cmd.Wait()
	return st, nil
}
