package shim

import (
	"errors"
	"os/exec"
	"testing"
	"time"

	shimapi "berth.dev/berth/api/shim/v1"
	"golang.org/x/sys/unix"
)

// Between the reaper's wait4 of init and the exit's record, init's pid is
// free (the kernel may give it to another process) while init still reads
// RUNNING. A kill then must not be sent to that pid.
func TestSignalProcess_ReapedNotRecorded(t *testing.T) {
	t.Parallel()
	other := exec.Command("sleep", "30") // stands for the process the pid went to
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Process.Kill(); _ = other.Wait() }()
	s := bareService(t)
	s.rt = &runc{reaper: &reaper{waiting: map[int]chan int{}}}
	s.exitq.init(s.handleExit)
	s.init = newProcess("", nil)
	s.init.pid, s.init.status = other.Process.Pid, shimapi.Status_RUNNING

	s.mu.Lock() // a Kill holds it; the exit's record waits for it
	// The reaper collected init (its pid now free) and queued the exit.
	s.rt.reaper.mu.Lock()
	s.exitq.push(s.init.pid, 0, time.Now())
	s.rt.reaper.mu.Unlock()
	err := s.signalProcess(s.init, unix.SIGKILL)
	s.mu.Unlock()
	if !errors.Is(err, unix.ESRCH) {
		t.Errorf("signal: got %v, want ESRCH (the process is gone)", err)
	}
	if e := other.Process.Signal(unix.Signal(0)); e != nil {
		t.Fatalf("got the process now holding the reaped pid killed (%v), want it left alone", e)
	}
}
