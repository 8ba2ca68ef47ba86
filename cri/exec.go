package cri

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"berth.dev/berth/node"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// maxExecOutput bounds what ExecSync keeps of each stream: the kubelet's
// probes read a few lines, and a runaway command must not fill berthd.
const maxExecOutput = 16 << 20

// execDrain is how long output may still arrive after an exec exits (the
// shim's copiers finish the pipe).
const execDrain = 2 * time.Second

// ExecSync runs a command in a running container and returns its output
// and exit code; with a timeout, a command still running then is killed
// and the call fails with DeadlineExceeded, as the kubelet's probes expect.
func (s *Service) ExecSync(ctx context.Context, req *runtime.ExecSyncRequest) (*runtime.ExecSyncResponse, error) {
	id, _, err := s.containers.get(req.GetContainerId())
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", req.GetContainerId(), err)
	}
	if len(req.GetCmd()) == 0 {
		return nil, fmt.Errorf("exec in %s: no command: %w", id, errdefs.ErrInvalidArgument)
	}
	if t := req.GetTimeout(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Second)
		defer cancel()
	}
	var stdout, stderr limitedBuffer
	code, err := s.execCapture(ctx, id, req.GetCmd(), &stdout, &stderr)
	if err != nil {
		return nil, err
	}
	return &runtime.ExecSyncResponse{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: int32(code)}, nil
}

// execCapture runs cmd in container id with its output copied to stdout
// and stderr through FIFOs, and returns its exit status.
func (s *Service) execCapture(ctx context.Context, id string, cmd []string, stdout, stderr io.Writer) (uint32, error) {
	return s.execStream(ctx, id, cmd, nil, stdout, stderr, false, nil)
}

// execStream runs cmd in container id with stdin (nil: none), stdout and
// stderr (nil: discarded) connected through FIFOs to the shim, a terminal
// when tty (stderr is then part of stdout) resized from resize, and
// returns its exit status once it exits and its output has drained.
func (s *Service) execStream(ctx context.Context, id string, cmd []string, stdin io.Reader, stdout, stderr io.Writer, tty bool, resize <-chan remotecommand.TerminalSize) (uint32, error) {
	if err := os.MkdirAll(s.opts.TempDir, 0o700); err != nil {
		return 0, err
	}
	dir, err := os.MkdirTemp(s.opts.TempDir, "exec-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	var stdio node.Stdio
	stdio.Terminal = tty
	outs := []struct {
		path *string
		w    io.Writer
	}{{&stdio.Stdout, stdout}, {&stdio.Stderr, stderr}}
	if tty {
		outs = outs[:1]
	}
	var fifos []string
	for i, o := range outs {
		if o.w == nil {
			continue
		}
		*o.path = filepath.Join(dir, []string{"stdout", "stderr"}[i])
		fifos = append(fifos, *o.path)
	}
	if stdin != nil {
		stdio.Stdin = filepath.Join(dir, "stdin")
		fifos = append(fifos, stdio.Stdin)
	}
	for _, p := range fifos {
		if err := unix.Mkfifo(p, 0o600); err != nil {
			return 0, fmt.Errorf("exec fifo: %w", err)
		}
	}
	// Each FIFO is opened from its own goroutine: an open blocks until the
	// shim opens the other end while it creates the process.
	var copies sync.WaitGroup
	opened := make(chan *os.File, 3)
	for _, o := range outs {
		if o.w == nil {
			continue
		}
		copies.Add(1)
		go func(path string, w io.Writer) {
			defer copies.Done()
			f, err := os.OpenFile(path, os.O_RDONLY, 0)
			if err != nil {
				return
			}
			opened <- f
			_, _ = io.Copy(w, f)
		}(*o.path, o.w)
	}
	if stdin != nil {
		go func() {
			f, err := os.OpenFile(stdio.Stdin, os.O_WRONLY, 0)
			if err != nil {
				return
			}
			opened <- f
			_, _ = io.Copy(f, stdin)
			f.Close() // EOF for the process
		}()
	}
	defer func() {
		// Unblock an open that still waits (the exec never started), and
		// close what is open once drained or the drain timed out.
		for _, p := range fifos {
			if f, err := os.OpenFile(p, os.O_RDWR|unix.O_NONBLOCK, 0); err == nil {
				f.Close()
			}
		}
		done := make(chan struct{})
		go func() { copies.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(execDrain):
		}
		for {
			select {
			case f := <-opened:
				f.Close()
				continue
			default:
			}
			break
		}
		<-done
	}()
	execID := "exec-" + newID()[:16]
	if err := s.node.Exec(ctx, Namespace, id, execID, node.ExecOptions{Args: cmd, Stdio: stdio}); err != nil {
		return 0, err
	}
	cctx := context.WithoutCancel(ctx)
	defer func() {
		if _, err := s.node.DeleteExec(cctx, Namespace, id, execID); err != nil && !errdefs.IsNotFound(err) {
			s.log.Debug("delete exec", "id", id, "exec", execID, "err", err)
		}
	}()
	if _, err := s.node.StartTask(ctx, Namespace, id, execID); err != nil {
		return 0, err
	}
	if tty && resize != nil {
		rctx, stop := context.WithCancel(ctx)
		defer stop()
		go func() {
			for {
				select {
				case <-rctx.Done():
					return
				case sz, ok := <-resize:
					if !ok {
						return
					}
					_ = s.node.ResizePty(rctx, Namespace, id, execID, uint32(sz.Width), uint32(sz.Height))
				}
			}
		}()
	}
	e, err := s.node.WaitTask(ctx, Namespace, id, execID)
	if err != nil {
		if ctx.Err() != nil {
			_ = s.node.KillTask(cctx, Namespace, id, execID, syscall.SIGKILL, false)
			wctx, cancel := context.WithTimeout(cctx, 5*time.Second)
			_, _ = s.node.WaitTask(wctx, Namespace, id, execID)
			cancel()
			return 0, fmt.Errorf("exec in %s: command timed out: %w", id, context.DeadlineExceeded)
		}
		return 0, err
	}
	return e.ExitStatus, nil
}

// limitedBuffer keeps the first maxExecOutput bytes written to it.
type limitedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := maxExecOutput - l.b.Len(); room > 0 {
		if len(p) > room {
			l.b.Write(p[:room])
		} else {
			l.b.Write(p)
		}
	}
	return len(p), nil
}

func (l *limitedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}
