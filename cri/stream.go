package cri

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	goruntime "runtime"
	"strconv"
	"time"

	"berth.dev/berth/node"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// streamer is the streaming server's view of berth: exec, attach and
// port-forward, each one connection the kubelet (or crictl) was handed a
// URL for by Exec, Attach or PortForward.
type streamer struct{ s *Service }

var _ streaming.Runtime = streamer{}

// observe runs one streaming session through Options.ObserveStream.
func (r streamer) observe(method string, session func() error) error {
	if r.s.opts.ObserveStream == nil {
		return session()
	}
	var err error
	_ = r.s.opts.ObserveStream(method, func() error {
		err = session()
		if _, exited := err.(exitError); exited {
			return nil // the command's own status, not a failed session
		}
		return err
	})
	return err
}

// exitError carries an exec's exit status to the streaming server, which
// reports it to the client (k8s.io/utils/exec.ExitError).
type exitError struct{ code int }

func (e exitError) Error() string   { return "command exited with status " + strconv.Itoa(e.code) }
func (e exitError) String() string  { return e.Error() }
func (e exitError) Exited() bool    { return true }
func (e exitError) ExitStatus() int { return e.code }

func (r streamer) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return r.observe("Exec", func() error { return r.exec(ctx, id, cmd, in, out, errw, tty, resize) })
}

func (r streamer) exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	var stdout, stderr io.Writer
	if out != nil {
		stdout = out
	}
	if errw != nil {
		stderr = errw
	}
	code, err := r.s.execStream(ctx, id, cmd, in, stdout, stderr, tty, resize)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitError{int(code)}
	}
	return nil
}

// Attach streams the container's output as it is logged (from now on)
// and, for a container made with stdin, writes the client's input to the
// stdin FIFO the shim keeps open; with stdin_once the end of the first
// attach's input closes the container's stdin.
func (r streamer) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return r.observe("Attach", func() error { return r.attach(ctx, id, in, out, errw, tty, resize) })
}

func (r streamer) attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	// Output from this moment on, however soon it comes: a follow that
	// started at the log's end after the first input was written would
	// miss its answer.
	since := time.Now()
	_, c, err := r.s.containers.get(id)
	if err != nil {
		return err
	}
	cfg := c.config()
	if in != nil && cfg.GetStdin() {
		f, err := os.OpenFile(r.s.stdinPath(id), os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("attach %s: stdin: %w", id, err)
		}
		go func() {
			defer f.Close()
			n, err := io.Copy(f, in)
			r.s.log.Debug("attach stdin ended", "id", id, "bytes", n, "err", err)
			if cfg.GetStdinOnce() {
				_ = r.s.node.CloseIO(context.WithoutCancel(ctx), Namespace, id, "")
			}
		}()
	}
	if resize != nil && cfg.GetTty() {
		go func() {
			for sz := range resize {
				_ = r.s.node.ResizePty(ctx, Namespace, id, "", uint32(sz.Width), uint32(sz.Height))
			}
		}()
	}
	return r.s.node.Logs(ctx, Namespace, id, node.LogOptions{Tail: -1, Since: since, Follow: true}, func(e node.LogEntry) error {
		w := io.Writer(out)
		if e.Stream == "stderr" && errw != nil && !tty {
			w = errw
		}
		if w == nil {
			return nil
		}
		b := e.Text
		if !e.Partial {
			b = append(b, '\n')
		}
		_, err := w.Write(b)
		return err
	})
}

// PortForward connects the stream to port on the pod's loopback: the
// socket is made inside the pod's network namespace.
func (r streamer) PortForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	return r.observe("PortForward", func() error { return r.portForward(ctx, podID, port, stream) })
}

func (r streamer) portForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	_, sb, err := r.s.sandboxes.get(podID)
	if err != nil {
		return err
	}
	conn, err := dialIn(ctx, sb.NetNS, net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
	if err != nil {
		return fmt.Errorf("port-forward to %d of pod %s: %w", port, sb.ID, err)
	}
	defer conn.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(conn, stream); done <- struct{}{} }()
	go func() { _, _ = io.Copy(stream, conn); done <- struct{}{} }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// dialIn dials addr from network namespace netns ("" is berthd's own).
// The socket belongs to the namespace it was made in, so only the dial
// runs on a thread moved into the pod's namespace.
func dialIn(ctx context.Context, netns, addr string) (net.Conn, error) {
	if netns == "" {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	go func() {
		goruntime.LockOSThread()
		own, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			goruntime.UnlockOSThread()
			res <- result{nil, err}
			return
		}
		defer unix.Close(own)
		target, err := unix.Open(netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			goruntime.UnlockOSThread()
			res <- result{nil, err}
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			goruntime.UnlockOSThread()
			res <- result{nil, err}
			return
		}
		d := net.Dialer{Timeout: 10 * time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		// Back to berthd's namespace; a thread that cannot go back is
		// left locked, and dies with this goroutine.
		if unix.Setns(own, unix.CLONE_NEWNET) == nil {
			goruntime.UnlockOSThread()
		}
		res <- result{c, err}
	}()
	r := <-res
	return r.c, r.err
}

// startStreaming listens on the stream address (loopback by default) and
// serves the streaming server until ctx ends.
func (s *Service) startStreaming(ctx context.Context) error {
	l, err := net.Listen("tcp", s.opts.StreamAddress)
	if err != nil {
		return fmt.Errorf("cri streaming server: %w", err)
	}
	cfg := streaming.DefaultConfig
	cfg.Addr = l.Addr().String()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: cfg.Addr}
	srv, err := streaming.NewServer(cfg, streamer{s})
	if err != nil {
		l.Close()
		return err
	}
	s.stream = srv
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(l) }()
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	s.log.Info("cri streaming serving", "address", cfg.Addr)
	return nil
}

func (s *Service) runningContainer(ctx context.Context, id string) (string, error) {
	id, c, err := s.containers.get(id)
	if err != nil {
		return "", fmt.Errorf("container %s: %w", id, err)
	}
	if st := s.state(ctx, c); st.state != runtime.ContainerState_CONTAINER_RUNNING {
		return "", fmt.Errorf("container %s is not running: %w", id, errdefs.ErrFailedPrecondition)
	}
	return id, nil
}

// Exec hands out the URL of an exec on the streaming server.
func (s *Service) Exec(ctx context.Context, req *runtime.ExecRequest) (*runtime.ExecResponse, error) {
	id, err := s.runningContainer(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	req.ContainerId = id
	return s.stream.GetExec(req)
}

func (s *Service) Attach(ctx context.Context, req *runtime.AttachRequest) (*runtime.AttachResponse, error) {
	id, err := s.runningContainer(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	req.ContainerId = id
	return s.stream.GetAttach(req)
}

func (s *Service) PortForward(ctx context.Context, req *runtime.PortForwardRequest) (*runtime.PortForwardResponse, error) {
	id, sb, err := s.sandboxes.get(req.GetPodSandboxId())
	if err != nil {
		return nil, fmt.Errorf("pod sandbox %s: %w", req.GetPodSandboxId(), err)
	}
	if s.sandboxState(ctx, sb) != runtime.PodSandboxState_SANDBOX_READY {
		return nil, fmt.Errorf("pod sandbox %s is not ready: %w", id, errdefs.ErrFailedPrecondition)
	}
	req.PodSandboxId = id
	return s.stream.GetPortForward(req)
}
