package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	shimapi "berth.dev/berth/api/shim/v1"
	"golang.org/x/sys/unix"
)

// ProbeOutputMax is how much of a probe's output is kept (its start).
const ProbeOutputMax = 1024

// ExecResult is what an exec probe observed.
type ExecResult struct {
	ExitStatus uint32
	// Output is the start of stdout and stderr together (at most
	// ProbeOutputMax bytes).
	Output []byte
}

var probeSeq atomic.Uint64

// probeRun makes this berthd's probe exec ids its own: a berthd killed
// mid-probe leaves that exec in the shim and its FIFO in the bundle, and
// the next berthd, counting from 1 again, would collide with them (a
// liveness probe failing to run restarts a healthy task).
var probeRun = strconv.FormatInt(time.Now().UnixNano(), 36)

// ProbeExec runs args in the task's container through its shim (the same
// runc exec `berth exec` uses, with no process of berthd's own) and
// returns its exit status and output. A process still running after
// timeout is killed and ctx's or the timeout's error returned. Unlike
// Exec it publishes no events: a probe every few seconds would drown
// the event stream.
func (n *Node) ProbeExec(ctx context.Context, ns, id string, args []string, timeout time.Duration) (ExecResult, error) {
	tk, err := n.task(ns, id)
	if err != nil {
		return ExecResult{}, err
	}
	data, err := n.execSpec(ctx, ns, id, filepath.Join(tk.bundle, "rootfs"), ExecOptions{Args: args})
	if err != nil {
		return ExecResult{}, err
	}
	execID := "probe-" + probeRun + "-" + strconv.FormatUint(probeSeq.Add(1), 10)
	fifo := filepath.Join(tk.bundle, execID+".out")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		return ExecResult{}, fmt.Errorf("probe %s: mkfifo: %w", id, err)
	}
	defer os.Remove(fifo)
	out := make(chan []byte, 1)
	opened := make(chan *os.File, 1)
	go func() { out <- readFIFO(fifo, opened) }()
	// unblock ends a reader still waiting for the shim to open its end
	// (the exec failed before): a writer that closes at once gives it EOF.
	unblock := func() {
		if w, err := os.OpenFile(fifo, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
	}
	// The exec is the shim's until deleted, whatever happens next (an Exec
	// that timed out here may have registered there). None of the
	// clean-up may use ctx, which may be done.
	cleanup := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	}
	defer func() {
		dctx, dcancel := cleanup()
		defer dcancel()
		_, _ = tk.c.Delete(dctx, &shimapi.DeleteRequest{Id: id, ExecId: execID})
	}()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := tk.c.Exec(cctx, &shimapi.ExecRequest{Id: id, ExecId: execID, Spec: data,
		Stdio: &shimapi.Stdio{Stdout: fifo, Stderr: fifo}}); err != nil {
		unblock()
		<-out
		return ExecResult{}, fmt.Errorf("probe exec in %s: %w", id, err)
	}
	// stop kills a probe that did not end by itself and waits for it: the
	// shim deletes no running process, and its output ends with it.
	stop := func() {
		dctx, dcancel := cleanup()
		defer dcancel()
		_, _ = tk.c.Kill(dctx, &shimapi.KillRequest{Id: id, ExecId: execID, Signal: uint32(syscall.SIGKILL)})
		_, _ = tk.c.Wait(dctx, &shimapi.WaitRequest{Id: id, ExecId: execID})
	}
	// output waits a little for the copiers to finish: a process that
	// left a child holding its output must not hold the probe up.
	output := func() []byte {
		select {
		case o := <-out:
			return o
		case <-time.After(time.Second):
			// A process the probe left (a daemon it started) may hold
			// the FIFO open for ever: end the read, or each run would
			// keep a goroutine and a descriptor until it dies. The FIFO
			// is pollable, so a deadline wakes the reader.
			unblock()
			select {
			case f := <-opened:
				_ = f.SetReadDeadline(time.Now())
			default: // never opened: unblock let its open return, to EOF
			}
			return nil
		}
	}
	timedOut := func(err error) error {
		if errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			return fmt.Errorf("timed out after %s", timeout)
		}
		return err
	}
	if _, err := tk.c.Start(cctx, &shimapi.StartRequest{Id: id, ExecId: execID}); err != nil {
		stop()
		unblock()
		return ExecResult{Output: output()}, timedOut(fmt.Errorf("probe exec in %s: %w", id, err))
	}
	w, err := tk.c.Wait(cctx, &shimapi.WaitRequest{Id: id, ExecId: execID})
	if err != nil {
		stop()
		return ExecResult{Output: output()}, timedOut(err)
	}
	return ExecResult{ExitStatus: w.ExitStatus, Output: output()}, nil
}

// readFIFO opens the FIFO for reading (blocking until a writer opens it),
// hands the open file to opened (so that the caller can end the read) and
// returns the start of what is written until every writer closed.
func readFIFO(path string, opened chan<- *os.File) []byte {
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	opened <- f
	var b bytes.Buffer
	_, _ = io.Copy(&b, io.LimitReader(f, ProbeOutputMax))
	_, _ = io.Copy(io.Discard, f) // the rest, so the writer never stalls on us
	return b.Bytes()
}
