package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	shimapi "berth.dev/berth/api/shim/v1"
	"berth.dev/berth/observed"
	"berth.dev/berth/oci"
	"berth.dev/berth/shim/logs"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ExecOptions describe a process to run in a task's container. The
// process inherits the container's process settings (user, capabilities,
// rlimits, env) with these on top.
type ExecOptions struct {
	Args  []string
	Env   []string // KEY=VALUE added to the container's
	Cwd   string   // absolute; "" is the container's
	User  string   // "uid[:gid]" or "name[:group]"; "" is the container's
	Stdio Stdio
}

// Exec creates (does not start) process execID in the task's container.
func (n *Node) Exec(ctx context.Context, ns, id, execID string, o ExecOptions) error {
	tk, err := n.task(ns, id)
	if err != nil {
		return err
	}
	data, err := n.execSpec(ctx, ns, id, filepath.Join(tk.bundle, "rootfs"), o)
	if err != nil {
		return err
	}
	if _, err := tk.c.Exec(ctx, &shimapi.ExecRequest{Id: id, ExecId: execID, Spec: data,
		Stdio: &shimapi.Stdio{Stdin: o.Stdio.Stdin, Stdout: o.Stdio.Stdout, Stderr: o.Stdio.Stderr, Terminal: o.Stdio.Terminal}}); err != nil {
		return fmt.Errorf("exec %s in %s: %w", execID, id, err)
	}
	n.publish(ctx, ns, "/tasks/exec-added", map[string]any{"id": id, "exec_id": execID})
	return nil
}

// execSpec is the OCI process of an exec: the container's own, with o's
// settings on top. A user name is looked up in the container's own
// /etc/passwd and /etc/group under rootfs (as it is now), as run -u does.
func (n *Node) execSpec(ctx context.Context, ns, id, rootfs string, o ExecOptions) ([]byte, error) {
	if len(o.Args) == 0 {
		return nil, fmt.Errorf("exec in %s: no command: %w", id, errdefs.ErrInvalidArgument)
	}
	c, err := n.opts.DB.GetContainer(ctx, ns, id)
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(c.Spec, &spec); err != nil || spec.Process == nil {
		return nil, fmt.Errorf("container %s: stored spec has no process: %v: %w", id, err, errdefs.ErrFailedPrecondition)
	}
	p := *spec.Process
	p.Args, p.Terminal, p.ConsoleSize = o.Args, o.Stdio.Terminal, nil
	p.Env = append(append([]string(nil), p.Env...), o.Env...)
	if o.Cwd != "" {
		if !path.IsAbs(o.Cwd) {
			return nil, fmt.Errorf("exec cwd %q: want an absolute path: %w", o.Cwd, errdefs.ErrInvalidArgument)
		}
		p.Cwd = o.Cwd
	}
	if o.User != "" {
		if p.User, err = oci.ResolveUser(ctx, rootfs, o.User); err != nil {
			return nil, fmt.Errorf("exec in %s: %w", id, err)
		}
	}
	return json.Marshal(&p)
}

// DeleteExec removes an exited exec process and returns its exit status.
func (n *Node) DeleteExec(ctx context.Context, ns, id, execID string) (uint32, error) {
	tk, err := n.task(ns, id)
	if err != nil {
		return 0, err
	}
	r, err := tk.c.Delete(ctx, &shimapi.DeleteRequest{Id: id, ExecId: execID})
	if err != nil {
		return 0, fmt.Errorf("delete exec %s of %s: %w", execID, id, err)
	}
	return r.ExitStatus, nil
}

// ResizePty resizes the terminal of the task's init or of an exec process.
func (n *Node) ResizePty(ctx context.Context, ns, id, execID string, w, h uint32) error {
	tk, err := n.task(ns, id)
	if err != nil {
		return err
	}
	_, err = tk.c.ResizePty(ctx, &shimapi.ResizePtyRequest{Id: id, ExecId: execID, Width: w, Height: h})
	return err
}

// CloseIO closes the stdin of the task's init or of an exec process.
func (n *Node) CloseIO(ctx context.Context, ns, id, execID string) error {
	tk, err := n.task(ns, id)
	if err != nil {
		return err
	}
	_, err = tk.c.CloseIO(ctx, &shimapi.CloseIORequest{Id: id, ExecId: execID, Stdin: true})
	return err
}

// Process is one process of a task.
type Process struct {
	Pid     uint32
	Command string
	ExecID  string
}

// TaskPids lists the processes of the task's container.
func (n *Node) TaskPids(ctx context.Context, ns, id string) ([]Process, error) {
	tk, err := n.task(ns, id)
	if err != nil {
		return nil, err
	}
	r, err := tk.c.Pids(ctx, &shimapi.PidsRequest{Id: id})
	if err != nil {
		return nil, fmt.Errorf("pids of %s: %w", id, err)
	}
	var out []Process
	for _, p := range r.Processes {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.Pid))
		out = append(out, Process{Pid: p.Pid, ExecID: p.ExecId, Command: strings.TrimSpace(string(comm))})
	}
	return out, nil
}

// Metrics are a task's cgroup figures; a limit of 0 is unlimited.
type Metrics struct {
	CPUUsageNs, MemoryUsage, MemoryLimit, MemoryMaxUsage uint64
	OOMKills, PidsCurrent, PidsLimit                     uint64
	Timestamp                                            time.Time
}

// TaskMetrics reads the task's cgroup statistics.
func (n *Node) TaskMetrics(ctx context.Context, ns, id string) (Metrics, error) {
	tk, err := n.task(ns, id)
	if err != nil {
		return Metrics{}, err
	}
	r, err := tk.c.Stats(ctx, &shimapi.StatsRequest{Id: id})
	if err != nil {
		return Metrics{}, fmt.Errorf("metrics of %s: %w", id, err)
	}
	return Metrics{CPUUsageNs: r.CpuUsageNs, MemoryUsage: r.MemoryUsage, MemoryLimit: r.MemoryLimit,
		MemoryMaxUsage: r.MemoryMaxUsage, OOMKills: r.OomKillCount, PidsCurrent: r.PidsCurrent,
		PidsLimit: r.PidsLimit, Timestamp: time.Now().UTC()}, nil
}

// LogEntry is one record of a container's output log.
type LogEntry struct {
	Time    time.Time
	Stream  string
	Partial bool
	Text    []byte // valid only during the callback
}

// followGrace lets the shim's copiers write a task's last output after its
// exit before a follower stops.
const followGrace = 500 * time.Millisecond

// Logs delivers the container's output log to fn: the last opts.Tail
// records (< 0: all) inside the Since/Until window, then, with Follow and
// while the task runs, new ones.
// The log lives under the root, so it outlives the task and a reboot.
//
// The container must exist, and is looked up before any path is built:
// Logs is served on a stream, which the API's namespace check does not
// see, so ns and id here are as the client sent them.
// LogOptions select what Logs delivers.
type LogOptions struct {
	// Tail is how many of the last records to deliver; < 0 means all.
	Tail int
	// Follow keeps delivering new records while the task runs.
	Follow bool
	// Since and Until bound the records by the time they were written
	// (zero: no bound).
	Since, Until time.Time
	// Restarts, with Follow, follows the container across the runs of its
	// task. When a run ends, or none runs at first, it is asked with that
	// run's exit (nil: none known) whether another run will come: true
	// keeps following, and the first record of each run begun since is
	// preceded by an entry of Stream RestartStream (its Text the marker
	// line). Following ends when it says false or the container goes.
	Restarts func(exit *observed.Exit) bool
}

// RestartStream is the Stream of the marker entry Logs delivers between
// two runs of a task when following across restarts.
const RestartStream = "restart"

// restartPoll is how often a follower across restarts looks for the
// container's next run, and (every restartRecheck) whether one will come.
const (
	restartPoll    = 100 * time.Millisecond
	restartRecheck = time.Second
)

// Logs is described above LogOptions.
func (n *Node) Logs(ctx context.Context, ns, id string, opts LogOptions, fn func(LogEntry) error) error {
	follow := opts.Follow
	c, err := n.opts.DB.GetContainer(ctx, ns, id)
	if err != nil {
		return err
	}
	p, err := n.LogPath(ns, id)
	if err != nil {
		return err
	}
	if sp := storedLogPath(c.Settings); sp != "" {
		p = sp
	}
	across := follow && opts.Restarts != nil
	tk := n.tasks().get(ns, id)
	if tk == nil && !(across && opts.Restarts(c.LastExit)) {
		follow, across = false, false
	}
	if len(logs.Files(p)) == 0 && !follow {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if follow {
		go n.followRuns(ctx, cancel, ns, id, c.CreatedAt, tk, opts.Restarts)
	}
	// announced is the run whose records are being delivered; a record
	// written after a newer run's creation began is that run's.
	announced, lastExit := tk, c.LastExit
	err = logs.Read(ctx, p, logs.ReadOptions{Tail: opts.Tail, Follow: follow, Since: opts.Since, Until: opts.Until}, func(e logs.Entry) error {
		if across {
			if cur := n.tasks().get(ns, id); cur != nil && cur != announced && !cur.created.IsZero() && !e.Time.Before(cur.created) {
				if announced != nil {
					select {
					case <-announced.done:
						lastExit = announced.exit
					default:
					}
				}
				first := announced == nil && lastExit == nil // the container's first run: nothing to mark
				announced = cur
				if first {
					return fn(LogEntry{Time: e.Time, Stream: e.Stream, Partial: e.Partial, Text: e.Text})
				}
				if err := fn(LogEntry{Time: cur.created, Stream: RestartStream, Text: []byte(restartMarker(id, cur.created, lastExit))}); err != nil {
					return err
				}
			}
		}
		return fn(LogEntry{Time: e.Time, Stream: e.Stream, Partial: e.Partial, Text: e.Text})
	})
	if follow && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// followRuns ends a follower (cancel) once the task's run ends, after a
// grace for its last output; with restarts, only once no other run will
// come. created is when the container followed was made.
func (n *Node) followRuns(ctx context.Context, cancel context.CancelFunc, ns, id string, created time.Time, cur *task, restarts func(*observed.Exit) bool) {
	defer cancel()
	// will asks whether another run comes after exit. A container being
	// recreated (gone, or newer than the one followed: a changed spec)
	// has its Task started afresh whatever the policy says of the exit,
	// so it is asked as of an exit not known. Its log file is the same.
	will := func(exit *observed.Exit) bool {
		if restarts == nil {
			return false
		}
		c, err := n.opts.DB.GetContainer(ctx, ns, id)
		switch {
		case errdefs.IsNotFound(err):
			exit = nil
		case err != nil:
			return false
		case !c.CreatedAt.Equal(created):
			exit = nil
		}
		return restarts(exit)
	}
	var exit *observed.Exit
	for {
		if cur != nil {
			select {
			case <-cur.done:
			case <-ctx.Done():
				return
			}
			select {
			case <-time.After(followGrace):
			case <-ctx.Done():
				return
			}
			exit = cur.exit
			if !will(exit) {
				return
			}
		}
		// Wait for the next run; give up if none will come after all
		// (the Task was stopped or deleted).
		checked := time.Now()
		for {
			if next := n.tasks().get(ns, id); next != nil && next != cur {
				cur = next
				if c, err := n.opts.DB.GetContainer(ctx, ns, id); err == nil {
					created = c.CreatedAt
				}
				break
			}
			if time.Since(checked) >= restartRecheck {
				checked = time.Now()
				if !will(exit) {
					return
				}
			}
			select {
			case <-time.After(restartPoll):
			case <-ctx.Done():
				return
			}
		}
	}
}

// restartMarker is the line between two runs in logs -f: which container
// started again, when, and how its last run ended.
func restartMarker(id string, at time.Time, last *observed.Exit) string {
	how := ""
	switch {
	case last == nil:
	case last.OOMKilled:
		how = fmt.Sprintf(" (its last run was killed for exceeding its memory limit, OOMKilled, status %d)", last.ExitStatus)
	default:
		how = fmt.Sprintf(" (its last run exited with status %d)", last.ExitStatus)
	}
	return fmt.Sprintf("--- berth: %s restarted at %s%s ---", id, at.UTC().Format(time.RFC3339), how)
}

// storedLogPath is the log path a container record's settings chose, ""
// for the default under the root.
func storedLogPath(raw json.RawMessage) string {
	var s ContainerSettings
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s.LogPath
}
