package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	ctrapi "berth.dev/berth/api/containers/v1"
	imagesapi "berth.dev/berth/api/images/v1"
	tasksapi "berth.dev/berth/api/tasks/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func init() { extraCommands = append(extraCommands, newRunCmd) }

// fifos are the named pipes a task's stdio is attached to, in a private
// directory of berth's own (0700) on the node.
//
// FIFOs, not sockets, because the shim opens them by path and can reopen
// them after a berthd restart; and the CLI, not berthd, makes them, so an
// attached session's data never passes through berthd.
type fifos struct {
	dir                   string
	stdin, stdout, stderr string
	terminal              bool
	copies                sync.WaitGroup
}

// newFIFOs makes the FIFOs of a process's stdio. Without withStdin the
// process gets no stdin at all (EOF), as `exec` without -i.
func newFIFOs(terminal, withStdin bool) (*fifos, error) {
	dir, err := os.MkdirTemp("", "berth-io-")
	if err != nil {
		return nil, err
	}
	f := &fifos{dir: dir, terminal: terminal, stdout: filepath.Join(dir, "stdout")}
	if withStdin {
		f.stdin = filepath.Join(dir, "stdin")
	}
	if !terminal {
		f.stderr = filepath.Join(dir, "stderr")
	}
	for _, p := range []string{f.stdin, f.stdout, f.stderr} {
		if p == "" {
			continue
		}
		if err := unix.Mkfifo(p, 0o600); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("mkfifo %s: %w", p, err)
		}
	}
	return f, nil
}

// stdio is the paths the shim is given; with a terminal there is no
// stderr FIFO, since a pty has one output.
func (f *fifos) stdio() *tasksapi.Stdio {
	return &tasksapi.Stdio{Stdin: f.stdin, Stdout: f.stdout, Stderr: f.stderr, Terminal: f.terminal}
}

// attach copies our stdin to the task and its output to our stdout and
// stderr. Each FIFO is opened in its own goroutine: an open blocks until
// the shim opens the other end, which it does while creating the process.
func (f *fifos) attach(stdin io.Reader, stdout, stderr io.Writer) {
	out := func(path string, w io.Writer) {
		f.copies.Add(1)
		go func() {
			defer f.copies.Done()
			r, err := os.OpenFile(path, os.O_RDONLY, 0)
			if err != nil {
				return
			}
			defer r.Close()
			_, _ = io.Copy(w, r)
		}()
	}
	out(f.stdout, stdout)
	if f.stderr != "" {
		out(f.stderr, stderr)
	}
	if f.stdin == "" {
		return
	}
	go func() {
		w, err := os.OpenFile(f.stdin, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		_, _ = io.Copy(w, stdin)
		w.Close()
	}()
}

// drain waits (boundedly) for the output copies to reach the end.
//
// The bound is for a process that left a child holding the pipes open: the
// exit has been reported, and the CLI must not hang on a grandchild.
func (f *fifos) drain(timeout time.Duration) {
	done := make(chan struct{})
	go func() { f.copies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

// close removes the FIFOs' directory; the shim has its own descriptors.
func (f *fifos) close() { os.RemoveAll(f.dir) }

// rawTerminal puts our terminal in raw mode and returns how to restore it.
//
// Raw mode hands every key (Ctrl-C included) to the container's pty, as
// docker run -t does: the container's terminal does the line editing and
// signals, not ours.
func rawTerminal(fd int) (func(), error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, err
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}

// resizer keeps the task's terminal the size of ours, on SIGWINCH.
//
// It sends the size once before the first SIGWINCH, so a full-screen
// program starts at the right size.
func resizer(ctx context.Context, tasks tasksapi.TasksClient, ns, id, execID string) func() {
	resize := func() {
		ws, err := unix.IoctlGetWinsize(int(os.Stdin.Fd()), unix.TIOCGWINSZ)
		if err != nil {
			return
		}
		_, _ = tasks.ResizePty(ctx, &tasksapi.ResizePtyRequest{Namespace: ns, ContainerId: id, ExecId: execID, Width: uint32(ws.Col), Height: uint32(ws.Row)})
	}
	resize()
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				resize()
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}

// forwardSignals sends SIGINT, SIGTERM, SIGHUP and SIGQUIT we receive to
// the task's process instead of dying of them, as ctr run's sig-proxy does.
func forwardSignals(ctx context.Context, tasks tasksapi.TasksClient, ns, id, execID string) func() {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-ch:
				_, _ = tasks.Kill(ctx, &tasksapi.KillTaskRequest{Namespace: ns, ContainerId: id, ExecId: execID, Signal: uint32(s.(syscall.Signal))})
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}

// attachAndWait attaches our stdio to a created process, starts it, waits
// for its exit and returns its status. start starts the process.
//
// The order matters: the FIFOs are opened before start, so nothing the
// process writes early is lost; signals are forwarded from before start,
// so a Ctrl-C during start reaches the process, not berth; and the output
// is drained after the exit, so the last lines are printed before berth
// exits with the process's status.
func attachAndWait(ctx context.Context, tasks tasksapi.TasksClient, ns, id, execID string, f *fifos, start func() error) (uint32, error) {
	f.attach(os.Stdin, os.Stdout, os.Stderr)
	if f.terminal {
		if restore, err := rawTerminal(int(os.Stdin.Fd())); err == nil {
			defer restore()
		}
	}
	stopSig := forwardSignals(ctx, tasks, ns, id, execID)
	defer stopSig()
	if err := start(); err != nil {
		return 0, err
	}
	if f.terminal {
		defer resizer(ctx, tasks, ns, id, execID)()
	}
	w, err := tasks.Wait(ctx, &tasksapi.WaitTaskRequest{Namespace: ns, ContainerId: id, ExecId: execID})
	if err != nil {
		return 0, err
	}
	t := time.Now()
	f.drain(2 * time.Second)
	cliSpans.Add("output.drain", time.Since(t))
	return w.ExitStatus, nil
}

// newRunCmd is container create + task create + start + wait (+ delete
// with --rm), as ctr run. Each step is a separate API call rather than
// one "run" call so that berthd keeps no client session: if the CLI dies,
// the container and task are ordinary ones the user can inspect.
func newRunCmd(g *globals) *cobra.Command {
	var cf containerFlags
	var rm, detach bool
	var pull string
	cmd := &cobra.Command{
		Use:   "run [flags] IMAGE ID [--] [CMD...]",
		Short: "Create a container, run its task attached to this terminal, and exit with its exit code",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := cf.request(g.namespace, args[0], args[1], commandArgs(args[2:]))
			if err != nil {
				return err
			}
			if pull != "missing" && pull != "never" {
				return fmt.Errorf("--pull %q: want missing or never", pull)
			}
			// Signals go to the container, not to the RPCs in flight.
			ctx := context.WithoutCancel(cmd.Context())
			conn, err := g.dial(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			ns, id := g.namespace, args[1]
			containers, tasks := ctrapi.NewContainersClient(conn), tasksapi.NewTasksClient(conn)
			_, err = containers.Create(withLease(ctx, cf.lease), req)
			if err != nil && pull == "missing" && imageMissing(err) {
				// As nerdctl run: an image the namespace lacks is pulled.
				fmt.Fprintf(cmd.ErrOrStderr(), "pulling %s\n", args[0])
				if perr := pullQuiet(withLease(ctx, cf.lease), imagesapi.NewImagesClient(conn), ns, args[0]); perr != nil {
					return errors.Join(err, perr)
				}
				_, err = containers.Create(withLease(ctx, cf.lease), req)
			}
			if err != nil {
				return err
			}
			// --rm removes the container on every way out, so a
			// failed start does not leave a container behind under
			// the name the user will retry with.
			cleanup := func() error {
				if !rm {
					return nil
				}
				_, err := containers.Delete(ctx, &ctrapi.DeleteContainerRequest{Namespace: ns, Id: id})
				return err
			}
			// Created and started in one call (one runtime run instead of
			// create then start).
			if detach {
				if _, err := tasks.Create(ctx, &tasksapi.CreateTaskRequest{Namespace: ns, ContainerId: id, Start: true}); err != nil {
					return errors.Join(err, cleanup())
				}
				return nil
			}
			t := time.Now()
			f, err := newFIFOs(cf.tty, true)
			if err != nil {
				return errors.Join(err, cleanup())
			}
			defer f.close()
			cliSpans.Add("fifos", time.Since(t))
			created := false
			status, err := attachAndWait(ctx, tasks, ns, id, "", f, func() error {
				_, err := tasks.Create(ctx, &tasksapi.CreateTaskRequest{Namespace: ns, ContainerId: id, Stdio: f.stdio(), Start: true})
				created = err == nil
				return err
			})
			if !created {
				return errors.Join(err, cleanup())
			}
			// As ctr run: the task goes once it has exited; the container
			// stays unless --rm.
			_, derr := tasks.Delete(ctx, &tasksapi.DeleteTaskRequest{Namespace: ns, ContainerId: id, Force: err != nil})
			if err != nil {
				return errors.Join(err, errgrpc.ToNative(derr), cleanup())
			}
			if derr != nil {
				return derr
			}
			if err := cleanup(); err != nil {
				return err
			}
			if status != 0 {
				return &exitError{code: int(status)}
			}
			return nil
		},
	}
	cf.add(cmd)
	cmd.Flags().StringVar(&pull, "pull", "missing", "pull the image when the namespace does not hold it: missing or never")
	cmd.Flags().BoolVar(&rm, "rm", false, "delete the container after its task exits")
	cmd.Flags().BoolVarP(&detach, "detach", "d", false, "start the task and return (output goes to its log)")
	// Flags stop at the first argument, so the container's own flags
	// (run busybox x ls -l) are its arguments, not berth's.
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// commandArgs is the container command after the positional arguments.
// Commands that stop parsing flags at their first argument (so that the
// container's own flags reach it) see a "--" written after that argument
// literally; it ends berth's flags as it does everywhere, it is not the
// program to run.
func commandArgs(rest []string) []string {
	if len(rest) > 0 && rest[0] == "--" {
		return rest[1:]
	}
	return rest
}

// imageMissing reports whether a container create failed because the
// namespace holds no such image.
func imageMissing(err error) bool {
	err = errgrpc.ToNative(err)
	return errdefs.IsNotFound(err) && strings.Contains(err.Error(), "image ")
}

// pullQuiet pulls ref into namespace ns (unpacked), without progress.
func pullQuiet(ctx context.Context, images imagesapi.ImagesClient, ns, ref string) error {
	stream, err := images.Pull(ctx, &imagesapi.PullRequest{Namespace: ns, Ref: ref, Unpack: true})
	if err != nil {
		return err
	}
	for {
		if _, err := stream.Recv(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("pull %s: %w", ref, err)
		}
	}
}
