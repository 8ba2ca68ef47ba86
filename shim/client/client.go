// Package client is what berthd uses to start a berth-shim for a bundle,
// talk to it, and find it again after berthd restarts.
//
//	c, err := client.Start(ctx, client.Opts{Namespace: "default", ID: "web", Bundle: dir})
//	_, err = c.Create(ctx, &shimapi.CreateRequest{Id: "web", Bundle: dir})
//	_, err = c.Start(ctx, &shimapi.StartRequest{Id: "web"})
//	... berthd restarts ...
//	c, err = client.Connect(ctx, dir)       // errdefs.ErrUnavailable if the shim died
//	w, err := c.Wait(ctx, &shimapi.WaitRequest{Id: "web"})
//	... or, with the shim gone:
//	exit, err := client.ReadExit(dir)       // errdefs.ErrNotFound: it never exited under a shim
//
// Errors from the shim come back as errdefs classes (errdefs.IsNotFound …);
// a call on a shim that died fails with errdefs.ErrUnavailable.
package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	shimapi "berth.dev/berth/api/shim/v1"
	shimbundle "berth.dev/berth/shim/bundle"
	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
)

// Opts say which shim to start and for what.
type Opts struct {
	ShimBinary string // default: berth-shim on PATH
	Namespace  string // default: "default"
	ID         string
	Bundle     string
	Runtime    string // default: the shim's (runc)
	Debug      bool
	// Spare starts the shim ahead of any container in Bundle, a directory
	// of its own that the caller renames to the container's bundle before
	// Create (which names that bundle); see Adopt.
	Spare bool
}

// Client is a connection to one shim. It implements the Task API, with
// errors mapped back to errdefs classes.
type Client struct {
	bundle  string
	pid     int
	taskPid uint32 // the shim's task's pid when it connected (0: none)
	conn    *ttrpc.Client
	task    shimapi.TaskService
	closed  atomic.Bool // Close was called
}

var _ shimapi.TaskService = (*Client)(nil)

// Start starts a shim for opts.Bundle and connects to it. The shim runs in
// its own session, reparented to init: it is not berthd's child (berthd
// reaps only the short-lived launcher) and survives berthd. It fails with
// errdefs.ErrAlreadyExists if a live shim already serves the bundle.
func Start(ctx context.Context, opts Opts) (*Client, error) {
	if opts.ID == "" || opts.Bundle == "" {
		return nil, fmt.Errorf("start shim: id and bundle are required: %w", errdefs.ErrInvalidArgument)
	}
	bundle, err := filepath.Abs(opts.Bundle)
	if err != nil {
		return nil, err
	}
	if c, err := Connect(ctx, bundle); err == nil {
		c.Close()
		return nil, fmt.Errorf("shim for %s: %w", bundle, errdefs.ErrAlreadyExists)
	}
	bin := opts.ShimBinary
	if bin == "" {
		bin = "berth-shim"
	}
	args := []string{"-namespace", firstOf(opts.Namespace, "default"), "-id", opts.ID, "-bundle", bundle}
	if opts.Runtime != "" {
		args = append(args, "-runtime", opts.Runtime)
	}
	if opts.Debug {
		args = append(args, "-debug")
	}
	if opts.Spare {
		args = append(args, "-spare")
	}
	if !strings.ContainsRune(bin, '/') {
		if bin, err = exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("start shim for %s: %w", opts.ID, err)
		}
	}
	// The daemon is started directly (no launcher in between: one exec
	// fewer per container) in its own session, so a signal to berthd's
	// process group never reaches it. berthd reaps it when it exits; after
	// a berthd restart init does.
	cmd, addr, err := shimbundle.StartDaemon(bin, bundle, args)
	if err != nil {
		return nil, fmt.Errorf("start shim for %s: %w", opts.ID, err)
	}
	go func() { _ = cmd.Wait() }()
	if addr != filepath.Join(bundle, shimbundle.SocketName) {
		return nil, fmt.Errorf("start shim for %s: unexpected address %q", opts.ID, addr)
	}
	return Connect(ctx, bundle)
}

// Connect connects to the shim serving bundle, as after a berthd restart.
// It fails with errdefs.ErrUnavailable when no shim serves it (none
// started, or it died: socket stale, pid gone) and with
// errdefs.ErrNotFound when there never was one.
func Connect(ctx context.Context, bundle string) (*Client, error) {
	bundle, err := filepath.Abs(bundle)
	if err != nil {
		return nil, err
	}
	pid, err := readPid(bundle)
	if err != nil {
		return nil, err
	}
	if !processAlive(pid) {
		return nil, fmt.Errorf("shim of %s (pid %d) is dead: %w", bundle, pid, errdefs.ErrUnavailable)
	}
	conn, err := dial(ctx, bundle)
	if err != nil {
		return nil, fmt.Errorf("shim of %s (pid %d): %v: %w", bundle, pid, err, errdefs.ErrUnavailable)
	}
	c := &Client{bundle: bundle, pid: pid, conn: ttrpc.NewClient(conn)}
	c.task = shimapi.NewTaskClient(c.conn)
	r, err := c.Connect(ctx, &shimapi.ConnectRequest{})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("shim of %s: %w", bundle, err)
	}
	if int(r.ShimPid) != pid {
		c.Close()
		return nil, fmt.Errorf("shim of %s: serves as pid %d, pid file says %d: %w", bundle, r.ShimPid, pid, errdefs.ErrUnavailable)
	}
	c.taskPid = r.TaskPid
	return c, nil
}

// dial connects to <bundle>/shim.sock. A path past the 108-byte limit of
// socket addresses is reached through /proc/self/fd of the directory.
func dial(ctx context.Context, bundle string) (net.Conn, error) {
	var d net.Dialer
	sock := filepath.Join(bundle, shimbundle.SocketName)
	if len(sock) < 100 {
		return d.DialContext(ctx, "unix", sock)
	}
	dir, err := os.Open(bundle)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	return d.DialContext(ctx, "unix", fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), shimbundle.SocketName))
}

func readPid(bundle string) (int, error) {
	b, err := os.ReadFile(filepath.Join(bundle, shimbundle.PidName))
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("no shim for %s (no %s): %w", bundle, shimbundle.PidName, errdefs.ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("shim pid file of %s: %q: %w", bundle, b, errdefs.ErrUnavailable)
	}
	return pid, nil
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses, which may contain
	// anything, so look after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z' && b[i+2] != 'X'
}

// ReadExit returns the durable exit record of the task in bundle, for use
// when its shim is gone. errdefs.ErrNotFound means no exit was recorded.
func ReadExit(bundle string) (*shimbundle.Exit, error) { return shimbundle.ReadExit(bundle) }

// TaskPid is the pid of the shim's task as it answered Connect, 0 when it
// had none (never created, or deleted).
func (c *Client) TaskPid() uint32 { return c.taskPid }

// Pid is the shim's pid.
func (c *Client) Pid() int { return c.pid }

// Bundle is the bundle the shim serves.
func (c *Client) Bundle() string { return c.bundle }

// Alive reports whether the shim process still runs.
func (c *Client) Alive() bool { return processAlive(c.pid) }

// Close closes the connection; the shim and its task go on.
func (c *Client) Close() error {
	c.closed.Store(true)
	return c.conn.Close()
}

func firstOf(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// Adopt moves the spare shim serving spareDir (started with Opts.Spare) to
// bundle, which must not exist, by renaming the directory (the shim's
// socket, pid file and working directory go with it), and connects to it
// there. The Create that follows must name bundle. On an error the caller
// still owns spareDir or bundle, whichever exists, and the shim.
func Adopt(ctx context.Context, spareDir, bundle string) (*Client, error) {
	if err := os.Rename(spareDir, bundle); err != nil {
		return nil, fmt.Errorf("adopt spare shim: %w", err)
	}
	return Connect(ctx, bundle)
}
