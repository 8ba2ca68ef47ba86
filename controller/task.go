package controller

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"berth.dev/berth/desired"
	"berth.dev/berth/node"
	"berth.dev/berth/observed"
	"berth.dev/berth/plan"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
)

// restartState is the in-memory bookkeeping of a Task's restarts.
type restartState struct {
	failures int       // consecutive restarts, for the backoff
	nextAt   time.Time // no start before this
}

// stableAfter is how long a task must run before its backoff resets.
const stableAfter = 10 * time.Second

// restartsOf is the Task's restart bookkeeping. A controller that has
// none yet (berthd just started) takes it from the status the last one
// recorded (prev), so a restart of berthd neither resets the backoff of a
// crash-looping task nor starts it before its delay is up.
func (c *Controller) restartsOf(k spec.Key, prev spec.TaskStatus) *restartState {
	c.mu.Lock()
	defer c.mu.Unlock()
	rs, ok := c.restarts[k]
	if !ok {
		rs = &restartState{failures: prev.BackoffRestarts, nextAt: prev.NextStartAt}
		c.restarts[k] = rs
	}
	return rs
}

// keepBackoff writes rs into the status fields that carry it across a
// berthd restart.
func keepBackoff(ts *spec.TaskStatus, rs *restartState) {
	ts.BackoffRestarts, ts.NextStartAt = rs.failures, rs.nextAt
	if rs.failures == 0 {
		ts.NextStartAt = time.Time{}
	}
}

// reconcileTask brings the container's task to the desired state, and
// restarts an exited task as its restart policy says, with backoff.
func (c *Controller) reconcileTask(ctx context.Context, e desired.Entry) (Result, error) {
	ts, _ := e.Object.TaskSpec()
	ns, id := e.Key.Namespace, ts.Container
	prev, _ := c.opts.DB.GetStatus(ctx, e.Key)
	prevTask := spec.TaskStatus{}
	if prev.Status.TaskStatus != nil {
		prevTask = *prev.Status.TaskStatus
	}
	// The plan (package plan) decides; this executes it. It is asked first
	// with who owns the container, then, once the container is ready, with
	// the task as the node has it.
	owner := c.taskOf(ns, id)
	if acts := plan.Task(e.Key.Name, ts, plan.TaskFacts{Owner: owner}); plan.Has(acts, plan.Wait) {
		c.stopProber(e.Key)
		return Result{Changed: c.record(ctx, e, observation{degraded: true, reason: "ContainerInUse",
			message: fmt.Sprintf("Task %s/%s already runs Container %s", ns, owner, id), kind: taskKind(prevTask)})}, nil
	}
	ckey := spec.Key{Namespace: ns, Kind: spec.KindContainer, Name: id}
	if _, ok := c.isReady(ctx, ckey); !ok {
		c.stopProber(e.Key)
		return Result{Changed: c.record(ctx, e, observation{reason: "WaitingForContainer", owns: id,
			message: fmt.Sprintf("waiting for Container %s/%s to be ready", ns, id), kind: taskKind(prevTask)})}, nil
	}
	info, err := c.opts.Node.GetTask(ctx, ns, id)
	exists := err == nil
	if err != nil && !errdefs.IsNotFound(err) {
		return Result{}, err
	}
	facts := plan.TaskFacts{Owner: owner}
	var lastExit *observed.Exit
	if exists {
		facts.Phase, facts.ExitStatus = info.Status, info.ExitStatus
	} else {
		facts.Replaced = c.containerReplaced(ctx, ns, id, prevTask)
		if lastExit = c.exitOfLastRun(ctx, ns, id, prevTask); lastExit != nil {
			facts.LastExit = &plan.Exit{Status: lastExit.ExitStatus}
		}
	}
	acts := plan.Task(e.Key.Name, ts, facts)
	stopTimeout := stopTimeout(string(ts.StopTimeout))
	if ts.State != spec.TaskRunning || !exists {
		// Probes watch one run of a running task; a new run gets new ones.
		c.stopProber(e.Key)
	}
	switch ts.State {
	case spec.TaskStopped:
		// A task that ended is deleted too (housekeeping, no plan verb):
		// stopTask only signals a live one, which is the plan's Stop.
		if exists {
			if err := c.stopTask(ctx, ns, id, stopTimeout); err != nil {
				return Result{}, err
			}
			prevTask.FinishedAt = time.Now().UTC()
		}
		prevTask.State, prevTask.Pid = spec.TaskPhaseStopped, 0
		return Result{Changed: c.record(ctx, e, observation{ready: true, reason: "Stopped", owns: id, kind: taskKind(prevTask)})}, nil
	case spec.TaskPaused:
		if plan.Has(acts, plan.Start) {
			return c.startTask(ctx, e, id, prevTask, exists) // starts it paused
		}
		if plan.Has(acts, plan.Pause) {
			if err := c.opts.Node.PauseTask(ctx, ns, id); err != nil {
				return Result{}, err
			}
		}
		prevTask.State, prevTask.Pid = spec.TaskPhasePaused, int(info.Pid)
		return Result{Changed: c.record(ctx, e, observation{ready: true, reason: "Paused", owns: id, kind: taskKind(prevTask)})}, nil
	}
	// Running.
	if !exists {
		switch {
		case facts.Replaced:
			// Its container was recreated on purpose: a fresh start.
			prevTask.State = ""
		case !plan.Has(acts, plan.Start):
			// The task is gone because it exited (its shim died, and a
			// restarted berthd cleaned its bundle up): not drift, an exit
			// the restart policy judges like any other.
			x := lastExit
			info := node.TaskInfo{ID: id, Status: spec.TaskPhaseStopped, ExitStatus: x.ExitStatus, ExitedAt: x.ExitedAt, OOMKilled: x.OOMKilled}
			return c.exited(ctx, e, ts, id, info, prevTask, "")
		case prevTask.State == spec.TaskPhaseRunning && prev.SpecHash == e.Hash:
			c.repaired(ctx, e.Key, "task of container "+id+" was gone; starting it again")
		}
		return c.startTask(ctx, e, id, prevTask, false)
	}
	switch {
	case plan.Has(acts, plan.Start): // created, not started
		if _, err := c.opts.Node.StartTask(ctx, ns, id, ""); err != nil {
			return Result{}, err
		}
		return c.reconcileTask(ctx, e)
	case plan.Has(acts, plan.Resume):
		if err := c.opts.Node.ResumeTask(ctx, ns, id); err != nil {
			return Result{}, err
		}
		fallthrough
	case info.Status == spec.TaskPhaseRunning || info.Status == spec.TaskPhasePaused:
		rs := c.restartsOf(e.Key, prevTask)
		prevTask.State, prevTask.Pid = spec.TaskPhaseRunning, int(info.Pid)
		if prevTask.ContainerCreatedAt.IsZero() { // a status kept by an older berthd
			prevTask.ContainerCreatedAt = c.containerCreatedAt(ctx, ns, id)
		}
		res := Result{}
		if rs.failures > 0 {
			if !prevTask.StartedAt.IsZero() && time.Since(prevTask.StartedAt) >= stableAfter {
				rs.failures = 0
			} else {
				res.RequeueAfter = stableAfter
			}
		}
		keepBackoff(&prevTask, rs)
		// Running (or resumed just now): its probes decide readiness.
		o := observation{ready: true, reason: "Running", owns: id}
		// A start time unknown (a status of an older berthd) is zero: no
		// initial delay, and the same prober at every reconcile.
		// A task recorded Ready in this very run (berthd restarted under
		// it) stays Ready until its probes say otherwise: a restart of
		// berthd must not flap what depends on its readiness.
		wasReady := false
		if rc, ok := prev.Status.Condition(spec.ConditionReady); ok && rc.Status == spec.ConditionTrue &&
			prev.Status.TaskStatus != nil && prev.Status.TaskStatus.Pid == int(info.Pid) {
			wasReady = true
		}
		if pr := c.ensureProber(e.Key, ns, id, int(info.Pid), prevTask.StartedAt, c.probesOf(e), wasReady); pr != nil {
			unhealthy, ready, reason, msg := pr.health()
			if unhealthy != "" {
				return c.stopUnhealthy(ctx, e, ts, id, prevTask, unhealthy, stopTimeout)
			}
			if !ready {
				o = observation{reason: reason, message: msg, owns: id}
			}
		}
		o.kind = taskKind(prevTask)
		res.Changed = c.record(ctx, e, o)
		return res, nil
	case info.Status == spec.TaskPhaseStopped:
		// The plan restarts it or not by its policy; exited does either.
		c.stopProber(e.Key)
		return c.exited(ctx, e, ts, id, info, prevTask, "")
	default:
		// The shim did not answer. If it died, its monitor reports the exit
		// (from the durable exit record) and the restart policy applies
		// then; a shim that is only slow is left alone.
		return Result{RequeueAfter: time.Second, Changed: c.record(ctx, e, observation{degraded: true,
			reason: "ShimUnreachable", message: "the shim of " + id + " does not answer", owns: id, kind: taskKind(prevTask)})}, nil
	}
}

// exited handles a task that ended while it should run; unhealthy says
// why a failing probe stopped it ("" for an exit of its own).
func (c *Controller) exited(ctx context.Context, e desired.Entry, ts spec.TaskSpec, id string, info node.TaskInfo, prev spec.TaskStatus, unhealthy string) (Result, error) {
	if unhealthy == "" && prev.Unhealthy != "" && !prev.UnhealthyAt.Before(info.ExitedAt) {
		// The exit of the stop a failing probe made, seen again (its
		// /tasks/exit event, a resync): the probe stays its reason.
		unhealthy = prev.Unhealthy
	}
	prev.State, prev.Pid, prev.ExitCode, prev.FinishedAt = spec.TaskPhaseExited, 0, int(info.ExitStatus), info.ExitedAt
	prev.OOMKilled = info.OOMKilled
	how := fmt.Sprintf("exited with status %d", info.ExitStatus)
	if info.OOMKilled {
		how = fmt.Sprintf("killed for exceeding its memory limit (OOMKilled), status %d", info.ExitStatus)
	}
	if !restarts(ts, info.ExitStatus) {
		o := observation{reason: "Completed", owns: id, kind: taskKind(prev), ready: info.ExitStatus == 0,
			message: fmt.Sprintf("%s; restartPolicy %s", how, ts.RestartPolicy)}
		if info.ExitStatus != 0 {
			o.reason, o.degraded = "Failed", true
		}
		if info.OOMKilled {
			o.reason, o.degraded = "OOMKilled", true
		}
		if unhealthy != "" {
			o.reason, o.degraded, o.ready = "Unhealthy", true, false
			o.message = unhealthy + "; " + o.message
		}
		return Result{Changed: c.record(ctx, e, o)}, nil
	}
	if _, err := c.opts.Node.DeleteTask(ctx, e.Key.Namespace, id, true); err != nil && !errdefs.IsNotFound(err) {
		return Result{}, err
	}
	rs := c.restartsOf(e.Key, prev)
	var delay time.Duration // the first restart is immediate, then 1 s, 2 s, 4 s …
	if rs.failures > 0 {
		delay = Backoff(time.Second, c.opts.MaxBackoff, rs.failures-1)
	}
	rs.failures++
	rs.nextAt = time.Now().Add(delay)
	keepBackoff(&prev, rs)
	msg := fmt.Sprintf("%s; restarting in %s", how, delay.Round(time.Millisecond))
	reason := "BackOff"
	if unhealthy != "" {
		reason, msg = "Unhealthy", unhealthy+"; "+msg
	}
	changed := c.record(ctx, e, observation{reason: reason, message: msg, owns: id, kind: taskKind(prev)})
	return Result{RequeueAfter: max(delay, time.Millisecond), Changed: changed}, nil
}

// restarts reports whether the restart policy restarts a task that exited
// with status.
func restarts(ts spec.TaskSpec, status uint32) bool {
	return plan.Restarts(ts.RestartPolicy, status)
}

// exitOfLastRun is the container's recorded exit if it is the exit of the
// task's last run as its status kept it (nil otherwise): the exit the
// status already shows, or the exit of the pid it shows running.
func (c *Controller) exitOfLastRun(ctx context.Context, ns, id string, prev spec.TaskStatus) *observed.Exit {
	ctr, err := c.opts.DB.GetContainer(ctx, ns, id)
	if err != nil || ctr.LastExit == nil {
		return nil
	}
	if x := ctr.LastExit; plan.IsLastRun(prev, x.Pid, x.ExitedAt) {
		return x
	}
	return nil
}

// startTask creates and starts the task, honouring a pending backoff.
func (c *Controller) startTask(ctx context.Context, e desired.Entry, id string, prev spec.TaskStatus, stale bool) (Result, error) {
	ns := e.Key.Namespace
	ts, _ := e.Object.TaskSpec()
	if o, waiting := c.waitForDependencies(ctx, e, ts, prev); waiting {
		// What it waits for wakes it (dependents); a cycle is not retried.
		return Result{Changed: c.record(ctx, e, o)}, nil
	}
	rs := c.restartsOf(e.Key, prev)
	if wait := time.Until(rs.nextAt); wait > 0 {
		return Result{RequeueAfter: wait}, nil
	}
	if stale {
		if _, err := c.opts.Node.DeleteTask(ctx, ns, id, true); err != nil && !errdefs.IsNotFound(err) {
			return Result{}, err
		}
	}
	// Created and started in one runtime call (runc run --detach); a
	// failure leaves no task behind.
	ti, err := c.opts.Node.RunTask(ctx, ns, id, node.Stdio{})
	if err != nil {
		prev.LastError = err.Error()
		c.record(ctx, e, observation{degraded: true, reason: "StartFailed", message: err.Error(), owns: id, kind: taskKind(prev)})
		return Result{}, err
	}
	pid := ti.Pid
	if prev.State != "" {
		prev.RestartCount++
	}
	prev.State, prev.Pid, prev.StartedAt, prev.LastError = spec.TaskPhaseRunning, int(pid), time.Now().UTC(), ""
	prev.ContainerCreatedAt = c.containerCreatedAt(ctx, ns, id)
	prev.StartedAfter = nil
	for _, d := range ts.DependsOn {
		prev.StartedAfter = append(prev.StartedAfter, d.Task)
	}
	if ts.State == spec.TaskPaused {
		if err := c.opts.Node.PauseTask(ctx, ns, id); err != nil {
			return Result{}, err
		}
		prev.State = spec.TaskPhasePaused
	}
	o := observation{ready: true, reason: "Running", owns: id, kind: taskKind(prev)}
	if ts.State == spec.TaskRunning {
		if pr := c.ensureProber(e.Key, ns, id, int(pid), prev.StartedAt, c.probesOf(e), false); pr != nil {
			if _, ready, reason, msg := pr.health(); !ready {
				o.ready, o.reason, o.message = false, reason, msg
			}
		}
	}
	return Result{Changed: c.record(ctx, e, o)}, nil
}

// containerReplaced reports whether the container is not the one the task
// last ran in, as observed (the container record's creation time against
// the one the task's status kept), so no memory a restart loses is needed.
// A status from before that time was kept says no.
func (c *Controller) containerReplaced(ctx context.Context, ns, id string, prev spec.TaskStatus) bool {
	ctr, err := c.opts.DB.GetContainer(ctx, ns, id)
	return err == nil && plan.Replaced(prev, ctr.CreatedAt)
}

// containerCreatedAt is when the container's record was made (zero if it
// has none).
func (c *Controller) containerCreatedAt(ctx context.Context, ns, id string) time.Time {
	ctr, err := c.opts.DB.GetContainer(ctx, ns, id)
	if err != nil {
		return time.Time{}
	}
	return ctr.CreatedAt
}

func taskKind(ts spec.TaskStatus) func(*spec.Status) {
	return func(st *spec.Status) {
		t := ts
		st.TaskStatus = &t
	}
}

// probesOf are the probes the Task's task runs: the Task's own, else its
// Container's.
func (c *Controller) probesOf(e desired.Entry) spec.Probes {
	ts, _ := e.Object.TaskSpec()
	var cs spec.ContainerSpec
	if ce, ok := c.opts.Desired.Get(spec.Key{Namespace: e.Key.Namespace, Kind: spec.KindContainer, Name: ts.Container}); ok {
		cs, _ = ce.Object.ContainerSpec()
	}
	return spec.EffectiveProbes(ts, cs)
}

// stopUnhealthy stops a task a liveness or startup probe found failing and
// hands its exit to the restart policy, with why as the reason.
func (c *Controller) stopUnhealthy(ctx context.Context, e desired.Entry, ts spec.TaskSpec, id string, prev spec.TaskStatus, why string, timeout time.Duration) (Result, error) {
	ns := e.Key.Namespace
	c.stopProber(e.Key)
	c.log.Info("task unhealthy: stopping it", "object", e.Key.String(), "reason", why)
	c.opts.Bus.Publish(ctx, ns, "/tasks/unhealthy", map[string]any{"kind": e.Key.Kind, "name": e.Key.Name, "id": id, "reason": why})
	if po, ok := c.opts.Observer.(ProbeObserver); ok {
		po.Unhealthy()
	}
	x, err := c.killTask(ctx, ns, id, timeout)
	if err != nil {
		return Result{}, fmt.Errorf("stop unhealthy task %s/%s: %w", ns, id, err)
	}
	prev.Unhealthy, prev.UnhealthyAt = why, time.Now().UTC()
	info := node.TaskInfo{ID: id, Status: spec.TaskPhaseStopped, ExitStatus: x.ExitStatus, ExitedAt: x.ExitedAt, OOMKilled: x.OOMKilled}
	return c.exited(ctx, e, ts, id, info, prev, why)
}

// killTask stops the task's init as a stop does (its stop signal, SIGKILL
// after timeout) and returns its exit; the task is left to be deleted.
func (c *Controller) killTask(ctx context.Context, ns, id string, timeout time.Duration) (observed.Exit, error) {
	_ = c.opts.Node.KillTask(ctx, ns, id, "", c.opts.Node.StopSignal(ctx, ns, id), false)
	wctx, cancel := context.WithTimeout(ctx, timeout)
	x, err := c.opts.Node.WaitTask(wctx, ns, id, "")
	cancel()
	if err == nil {
		return x, nil
	}
	_ = c.opts.Node.KillTask(ctx, ns, id, "", syscall.SIGKILL, true)
	kctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.opts.Node.WaitTask(kctx, ns, id, "")
}
