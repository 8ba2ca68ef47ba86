package node

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	shimapi "berth.dev/berth/api/shim/v1"
	"berth.dev/berth/internal/span"
	"berth.dev/berth/observed"
	"berth.dev/berth/oci"
	shimbundle "berth.dev/berth/shim/bundle"
	"berth.dev/berth/shim/client"
	"berth.dev/berth/snapshot"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Stdio names FIFOs on the node that a task's stdio is attached to; empty
// fields leave that stream to the log only.
type Stdio struct {
	Stdin, Stdout, Stderr string
	Terminal              bool
	// StdinOpen keeps the Stdin FIFO open in the shim: writers come and
	// go, and the process's stdin ends only on CloseIO.
	StdinOpen bool
}

// TaskInfo is a task as the API shows it.
type TaskInfo struct {
	ID         string
	Pid        uint32
	Status     spec.TaskPhase
	ExitStatus uint32
	ExitedAt   time.Time
	OOMKilled  bool
}

// CreateTask mounts the container's snapshot at <bundle>/rootfs, writes
// the bundle's config.json, starts the container's shim and creates the
// task (not started). A create that fails stops the shim and removes the
// bundle again.
func (n *Node) CreateTask(ctx context.Context, ns, id string, stdio Stdio) (TaskInfo, error) {
	return n.createTaskLocked(ctx, ns, id, stdio, false)
}

// RunTask is CreateTask and StartTask in one: the shim runs the container
// with one runtime call (`runc run --detach`) instead of two, and the task
// answered is running. /tasks/create and /tasks/start are both published.
func (n *Node) RunTask(ctx context.Context, ns, id string, stdio Stdio) (TaskInfo, error) {
	return n.createTaskLocked(ctx, ns, id, stdio, true)
}

func (n *Node) createTaskLocked(ctx context.Context, ns, id string, stdio Stdio, start bool) (TaskInfo, error) {
	unlock, err := n.tt.locks.lock(ctx, ns, id, false)
	if err != nil {
		return TaskInfo{}, err
	}
	defer unlock()
	c, err := n.opts.DB.GetContainer(ctx, ns, id)
	if err != nil {
		return TaskInfo{}, err
	}
	tt := n.tasks()
	done, err := tt.reserve(ns, id)
	if err != nil {
		return TaskInfo{}, err
	}
	// The container's attachment is normally in place since its create;
	// after a reboot or a crash that undid it, it is made again here,
	// before runc joins the namespace file.
	if s, bridged := storedNetwork(c.Settings); bridged {
		if _, err := n.attach(ctx, ns, id, s); err != nil {
			done(nil)
			return TaskInfo{}, err
		}
	}
	tk, err := n.createTask(ctx, ns, c, stdio, start)
	done(tk)
	if err != nil {
		return TaskInfo{}, err
	}
	tt.wg.Add(1)
	go n.monitor(tk)
	n.publish(ctx, ns, "/tasks/create", map[string]any{"id": id, "pid": tk.pid, "bundle": tk.bundle})
	if start {
		n.publish(ctx, ns, "/tasks/start", map[string]any{"id": id, "pid": tk.pid})
		return TaskInfo{ID: id, Pid: tk.pid, Status: spec.TaskPhaseRunning}, nil
	}
	return TaskInfo{ID: id, Pid: tk.pid, Status: spec.TaskPhaseCreated}, nil
}

func (n *Node) createTask(ctx context.Context, ns string, c observed.Container, stdio Stdio, start bool) (_ *task, err error) {
	created := time.Now()
	sn, _, err := n.Snapshotter(c.Snapshotter)
	if err != nil {
		return nil, err
	}
	rt, err := n.runtimeBinary(c.Runtime)
	if err != nil {
		return nil, err
	}
	var spec specs.Spec
	if err := json.Unmarshal(c.Spec, &spec); err != nil {
		return nil, fmt.Errorf("container %s: stored spec: %w", c.ID, err)
	}
	term := stdio.Terminal || (spec.Process != nil && spec.Process.Terminal)
	spec.Process.Terminal, stdio.Terminal = term, term
	bundle, err := n.bundleDir(ns, c.ID)
	if err != nil {
		return nil, err
	}
	logPath, err := n.LogPath(ns, c.ID)
	if err != nil {
		return nil, err
	}
	logMax := n.opts.Tasks.LogMaxSize
	if p := storedLogPath(c.Settings); p != "" {
		logPath, logMax = p, -1
	}
	// A bundle without a task in the table is a leftover of a crash
	// between mount and record: nothing runs from it (Recover adopted
	// every live shim), so it is removed.
	if _, err := os.Stat(bundle); err == nil {
		if err := n.removeBundle(ctx, ns, c.ID, rt); err != nil {
			return nil, err
		}
	}
	// A shim started ahead (a spare) becomes this bundle's: its directory
	// is renamed to the bundle before anything is put in it.
	var cl *client.Client
	endAdopt := span.Start(ctx, "shim.adopt")
	cl = n.adoptSpare(ctx, bundle)
	endAdopt()
	if err := os.MkdirAll(filepath.Join(bundle, "rootfs"), 0o700); err != nil {
		if cl != nil {
			_, _ = cl.Shutdown(context.WithoutCancel(ctx), &shimapi.ShutdownRequest{Id: c.ID, Now: true})
			cl.Close()
		}
		return nil, fmt.Errorf("create bundle: %w", err)
	}
	if err := os.Chmod(filepath.Dir(bundle), 0o700); err != nil {
		if cl != nil {
			_, _ = cl.Shutdown(context.WithoutCancel(ctx), &shimapi.ShutdownRequest{Id: c.ID, Now: true})
			cl.Close()
		}
		return nil, err
	}
	defer func() {
		if err == nil {
			return
		}
		cctx := context.WithoutCancel(ctx)
		if cl != nil {
			_, _ = cl.Shutdown(cctx, &shimapi.ShutdownRequest{Id: c.ID, Now: true})
			cl.Close()
		}
		if rerr := n.removeBundle(cctx, ns, c.ID, rt); rerr != nil {
			n.log.Warn("clean up failed task create", "id", c.ID, "err", rerr)
		}
	}()
	endMount := span.Start(ctx, "rootfs.mount")
	mounts, err := sn.Mounts(ctx, c.SnapshotKey)
	if err != nil {
		return nil, fmt.Errorf("container %s snapshot: %w", c.ID, err)
	}
	if err := snapshot.MountAll(mounts, filepath.Join(bundle, "rootfs")); err != nil {
		return nil, fmt.Errorf("mount rootfs of %s: %w", c.ID, err)
	}
	endMount()
	endWrite := span.Start(ctx, "bundle.write")
	if err := oci.WriteBundle(bundle, &spec); err != nil {
		return nil, err
	}
	endWrite()
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	if cl == nil {
		tStart := time.Now()
		cl, err = client.Start(ctx, client.Opts{ShimBinary: n.opts.Tasks.ShimBinary, Namespace: ns, ID: c.ID, Bundle: bundle, Runtime: rt})
		if err != nil {
			return nil, err
		}
		span.From(ctx).Add("shim.start", time.Since(tStart))
	}
	tShim := time.Now()
	resp, err := cl.Create(ctx, &shimapi.CreateRequest{
		Id: c.ID, Bundle: bundle, Runtime: rt, RuntimeRoot: n.runtimeRoot(ns),
		Stdio: &shimapi.Stdio{Stdin: stdio.Stdin, Stdout: stdio.Stdout, Stderr: stdio.Stderr, Terminal: stdio.Terminal, StdinOpen: stdio.StdinOpen},
		Log:   &shimapi.Log{Path: logPath, MaxSize: logMax, MaxFiles: int32(n.opts.Tasks.LogMaxFiles)},
		Start: start,
	})
	if err != nil {
		return nil, fmt.Errorf("create task %s: %w", c.ID, err)
	}
	span.From(ctx).Add("shim.create", time.Since(tShim))
	return &task{ns: ns, id: c.ID, bundle: bundle, runtime: rt, c: cl, pid: resp.Pid, done: make(chan struct{}), created: created}, nil
}

// removeBundle unmounts a bundle's rootfs, force-deletes what the runtime
// may still hold of the container, and removes the bundle directory.
func (n *Node) removeBundle(ctx context.Context, ns, id, rt string) error {
	bundle, err := n.bundleDir(ns, id)
	if err != nil {
		return err
	}
	n.forceDeleteContainer(ctx, ns, id, rt)
	endUnmount := span.Start(ctx, "rootfs.unmount")
	if err := snapshot.UnmountAll(filepath.Join(bundle, "rootfs")); err != nil {
		return fmt.Errorf("unmount rootfs of %s: %w", id, err)
	}
	endUnmount()
	defer span.Start(ctx, "bundle.remove")()
	if err := os.RemoveAll(bundle); err != nil {
		return fmt.Errorf("remove bundle of %s: %w", id, err)
	}
	return nil
}

// forceDeleteContainer kills and deletes what the runtime still holds of a
// container whose shim is gone.
func (n *Node) forceDeleteContainer(ctx context.Context, ns, id, rt string) {
	if rt == "" {
		return
	}
	if _, err := os.Stat(filepath.Join(n.runtimeRoot(ns), id)); err != nil {
		return
	}
	cmd := osexec.CommandContext(ctx, rt, "--root", n.runtimeRoot(ns), "delete", "--force", id)
	if out, err := cmd.CombinedOutput(); err != nil {
		n.log.Warn("runtime delete of leftover container", "id", id, "err", err, "output", strings.TrimSpace(string(out)))
	}
}

func (n *Node) task(ns, id string) (*task, error) {
	tk := n.tasks().get(ns, id)
	if tk == nil {
		return nil, fmt.Errorf("task %s in namespace %s: %w", id, ns, errdefs.ErrNotFound)
	}
	return tk, nil
}

// StartTask starts a created task (execID "") or a created exec process.
func (n *Node) StartTask(ctx context.Context, ns, id, execID string) (uint32, error) {
	// Under the container's lock, so that a task being deleted (or one
	// deleted and created again) is never started through a stale handle.
	unlock, err := n.tt.locks.lock(ctx, ns, id, false)
	if err != nil {
		return 0, err
	}
	defer unlock()
	tk, err := n.task(ns, id)
	if err != nil {
		return 0, err
	}
	endStart := span.Start(ctx, "shim.start-task")
	r, err := tk.c.Start(ctx, &shimapi.StartRequest{Id: id, ExecId: execID})
	endStart()
	if err != nil {
		return 0, fmt.Errorf("start task %s: %w", id, err)
	}
	if execID == "" {
		n.publish(ctx, ns, "/tasks/start", map[string]any{"id": id, "pid": r.Pid})
	} else {
		n.publish(ctx, ns, "/tasks/exec-started", map[string]any{"id": id, "exec_id": execID, "pid": r.Pid})
	}
	return r.Pid, nil
}

// monitor waits for the task's init to exit and reports the exit once.
// When berthd stops it returns without reporting: the next berthd will.
func (n *Node) monitor(tk *task) {
	tt := n.tasks()
	defer tt.wg.Done()
	var e observed.Exit
	tWait := time.Now()
	for {
		w, err := tk.c.Wait(tt.ctx, &shimapi.WaitRequest{Id: tk.id})
		if tt.ctx.Err() != nil {
			return
		}
		if err == nil {
			e = observed.Exit{Pid: tk.pid, ExitStatus: w.ExitStatus, ExitedAt: w.ExitedAt.AsTime(), OOMKilled: w.OomKilled}
			break
		}
		if tk.c.Alive() {
			// A call that failed on a live shim: try again shortly.
			n.log.Warn("wait for task", "id", tk.id, "err", err)
			select {
			case <-tt.ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		// The shim died. Its container, now nobody's, is killed so that
		// nothing runs that berth reports as exited, and its rootfs is
		// unmounted now: no shim is left to need it, and the bundle's
		// files (the exit record) stay for DeleteTask or the next berthd.
		e = n.exitOfDeadShim(tk.bundle, tk.pid)
		n.log.Warn("shim died", "namespace", tk.ns, "id", tk.id, "exit", e.ExitStatus)
		n.forceDeleteContainer(tt.ctx, tk.ns, tk.id, tk.runtime)
		if err := snapshot.UnmountAll(filepath.Join(tk.bundle, "rootfs")); err != nil {
			n.log.Warn("unmount rootfs of a dead shim", "namespace", tk.ns, "id", tk.id, "err", err)
		}
		break
	}
	tReport := time.Now()
	n.reportExit(tt.ctx, tk.ns, tk.id, e)
	tk.exit = &e
	close(tk.done)
	// The same "spans" line the API calls log, for the step no call owns:
	// from the shim's answer to Wait until the exit is recorded.
	n.log.Debug("spans", "method", "monitor.exit", "total", time.Since(tWait), "shim.wait-after-exit", tReport.Sub(e.ExitedAt), "exit.record", time.Since(tReport))
}

// exitOfDeadShim is the durable exit record a dead shim left, or, when it
// died before its task exited, an exit of 255 now. That exit is written to
// the bundle as the shim would have, so that whoever notices the death
// next (a restarted berthd) finds the same exit, and reportExit tells it
// was reported already.
func (n *Node) exitOfDeadShim(bundle string, pid uint32) observed.Exit {
	if x, err := client.ReadExit(bundle); err == nil {
		return observed.Exit{Pid: x.Pid, ExitStatus: x.ExitStatus, ExitedAt: x.ExitedAt, OOMKilled: x.OOMKilled}
	}
	e := observed.Exit{Pid: pid, ExitStatus: 255, ExitedAt: time.Now().UTC()}
	if err := shimbundle.WriteExit(bundle, shimbundle.Exit{Pid: e.Pid, ExitStatus: e.ExitStatus, ExitedAt: e.ExitedAt}); err != nil {
		n.log.Warn("record the exit of a dead shim's task", "bundle", bundle, "err", err)
	}
	return e
}

// reportExit records the exit as the container's last and publishes
// /tasks/exit (and /tasks/oom) — unless that very exit was recorded
// already, by this berthd or an earlier one: an exit is reported once.
func (n *Node) reportExit(ctx context.Context, ns, id string, e observed.Exit) {
	ctx = context.WithoutCancel(ctx)
	seen := false
	_, err := n.opts.DB.UpdateContainer(ctx, ns, id, func(c *observed.Container) error {
		if c.LastExit != nil && c.LastExit.Pid == e.Pid && c.LastExit.ExitedAt.Equal(e.ExitedAt) {
			seen = true
		}
		c.LastExit = &e
		return nil
	})
	if err != nil {
		n.log.Warn("record task exit", "id", id, "err", err)
	}
	if seen {
		return
	}
	n.publish(ctx, ns, "/tasks/exit", map[string]any{"id": id, "pid": e.Pid, "exit_status": e.ExitStatus,
		"exited_at": e.ExitedAt, "oom_killed": e.OOMKilled})
	if e.OOMKilled {
		n.publish(ctx, ns, "/tasks/oom", map[string]any{"id": id, "pid": e.Pid})
	}
}

// GetTask reports a task's state.
func (n *Node) GetTask(ctx context.Context, ns, id string) (TaskInfo, error) {
	tk, err := n.task(ns, id)
	if err != nil {
		return TaskInfo{}, err
	}
	return n.taskInfo(ctx, tk), nil
}

// ListTasks lists the namespace's tasks in id order.
func (n *Node) ListTasks(ctx context.Context, ns string) ([]TaskInfo, error) {
	if _, err := n.opts.DB.GetNamespace(ctx, ns); err != nil {
		return nil, err
	}
	// Each live task's state is its shim's answer; the shims are asked
	// side by side (a few per core), not one after the other, so a list
	// of a hundred tasks costs about one round trip per worker.
	tks := n.tasks().list(ns)
	out := make([]TaskInfo, len(tks))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(len(tks), 4*runtime.NumCPU()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = n.taskInfo(ctx, tks[i])
			}
		}()
	}
	for i := range tks {
		next <- i
	}
	close(next)
	wg.Wait()
	sortTasks(out)
	return out, nil
}

func (n *Node) taskInfo(ctx context.Context, tk *task) TaskInfo {
	info := TaskInfo{ID: tk.id, Pid: tk.pid, Status: spec.TaskPhaseUnknown}
	select {
	case <-tk.done:
		info.Status, info.ExitStatus, info.ExitedAt, info.OOMKilled = spec.TaskPhaseStopped, tk.exit.ExitStatus, tk.exit.ExitedAt, tk.exit.OOMKilled
		return info
	default:
	}
	st, err := tk.c.State(ctx, &shimapi.StateRequest{Id: tk.id})
	if err != nil {
		return info
	}
	info.Status = spec.TaskPhase(strings.ToLower(st.Status.String()))
	info.ExitStatus, info.OOMKilled = st.ExitStatus, st.OomKilled
	if st.ExitedAt != nil && st.Status == shimapi.Status_STOPPED {
		info.ExitedAt = st.ExitedAt.AsTime()
	}
	return info
}

// KillTask signals the task's init (or an exec process, or with all every
// process of the container).
func (n *Node) KillTask(ctx context.Context, ns, id, execID string, sig syscall.Signal, all bool) error {
	tk, err := n.task(ns, id)
	if err != nil {
		return err
	}
	if _, err := tk.c.Kill(ctx, &shimapi.KillRequest{Id: id, ExecId: execID, Signal: uint32(sig), All: all}); err != nil {
		return fmt.Errorf("kill task %s: %w", id, err)
	}
	return nil
}

// PauseTask freezes every process of the task.
func (n *Node) PauseTask(ctx context.Context, ns, id string) error {
	tk, err := n.task(ns, id)
	if err != nil {
		return err
	}
	if _, err := tk.c.Pause(ctx, &shimapi.PauseRequest{Id: id}); err != nil {
		return fmt.Errorf("pause task %s: %w", id, err)
	}
	n.publish(ctx, ns, "/tasks/paused", map[string]any{"id": id})
	return nil
}

// ResumeTask thaws a paused task.
func (n *Node) ResumeTask(ctx context.Context, ns, id string) error {
	tk, err := n.task(ns, id)
	if err != nil {
		return err
	}
	if _, err := tk.c.Resume(ctx, &shimapi.ResumeRequest{Id: id}); err != nil {
		return fmt.Errorf("resume task %s: %w", id, err)
	}
	n.publish(ctx, ns, "/tasks/resumed", map[string]any{"id": id})
	return nil
}

// WaitTask blocks until the task's init exits (execID "") or an exec
// process does, and returns its exit.
func (n *Node) WaitTask(ctx context.Context, ns, id, execID string) (observed.Exit, error) {
	tk, err := n.task(ns, id)
	if err != nil {
		return observed.Exit{}, err
	}
	if execID != "" {
		w, err := tk.c.Wait(ctx, &shimapi.WaitRequest{Id: id, ExecId: execID})
		if err != nil {
			return observed.Exit{}, err
		}
		return observed.Exit{ExitStatus: w.ExitStatus, ExitedAt: w.ExitedAt.AsTime(), OOMKilled: w.OomKilled}, nil
	}
	select {
	case <-tk.done:
		return *tk.exit, nil
	case <-ctx.Done():
		return observed.Exit{}, ctx.Err()
	}
}

// DeleteTask removes a stopped task: the shim's record of it, the shim,
// the rootfs mount and the bundle. A running task is refused unless force,
// which kills it first. The container and its log stay.
//
// It holds the container's lock throughout, waits for the exit included:
// the task is going, and nothing that must progress meanwhile (the
// monitor, KillTask, WaitTask) takes the lock. A second DeleteTask of the
// same task waits and then finds none (NotFound): the task is cleaned up,
// and /tasks/delete published, once.
func (n *Node) DeleteTask(ctx context.Context, ns, id string, force bool) (observed.Exit, error) {
	unlock, err := n.tt.locks.lock(ctx, ns, id, false)
	if err != nil {
		return observed.Exit{}, err
	}
	defer unlock()
	tk, err := n.task(ns, id)
	if err != nil {
		return observed.Exit{}, err
	}
	endInfo := span.Start(ctx, "shim.state")
	info := n.taskInfo(ctx, tk)
	endInfo()
	if info.Status == spec.TaskPhaseRunning || info.Status == spec.TaskPhasePaused {
		if !force {
			return observed.Exit{}, fmt.Errorf("task %s is %s (stop it first, or delete with --force): %w", id, info.Status, errdefs.ErrFailedPrecondition)
		}
		_, _ = tk.c.Kill(ctx, &shimapi.KillRequest{Id: id, Signal: uint32(syscall.SIGKILL), All: true})
		if info.Status == spec.TaskPhasePaused {
			_, _ = tk.c.Resume(ctx, &shimapi.ResumeRequest{Id: id})
		}
	}
	if info.Status != spec.TaskPhaseCreated {
		select {
		case <-tk.done:
		case <-time.After(10 * time.Second):
			return observed.Exit{}, fmt.Errorf("task %s did not exit after SIGKILL: %w", id, errdefs.ErrUnavailable)
		case <-ctx.Done():
			return observed.Exit{}, ctx.Err()
		}
	}
	endDel := span.Start(ctx, "shim.delete")
	_, err = tk.c.Delete(ctx, &shimapi.DeleteRequest{Id: id})
	endDel()
	if err != nil && !errdefs.IsNotFound(err) && !errdefs.IsUnavailable(err) {
		return observed.Exit{}, fmt.Errorf("delete task %s: %w", id, err)
	}
	select { // a created task's init is killed by the delete; let its exit be reported first
	case <-tk.done:
	case <-time.After(5 * time.Second):
	}
	endShut := span.Start(ctx, "shim.shutdown")
	_, _ = tk.c.Shutdown(ctx, &shimapi.ShutdownRequest{Id: id, Now: true})
	tk.c.Close()
	endShut()
	if !n.tasks().remove(tk) {
		// Not reachable under the lock; kept so that a path outside it
		// can never unmount a task it does not own.
		return observed.Exit{}, fmt.Errorf("task %s in namespace %s: %w", id, ns, errdefs.ErrNotFound)
	}
	if err := n.removeBundle(ctx, ns, id, tk.runtime); err != nil {
		return observed.Exit{}, err
	}
	var e observed.Exit
	if tk.exit != nil {
		e = *tk.exit
	}
	n.publish(ctx, ns, "/tasks/delete", map[string]any{"id": id, "pid": tk.pid, "exit_status": e.ExitStatus})
	return e, nil
}

func sortTasks(ts []TaskInfo) {
	sort.Slice(ts, func(i, j int) bool { return ts[i].ID < ts[j].ID })
}
