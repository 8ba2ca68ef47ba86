package controller

import (
	"context"
	"time"

	"berth.dev/berth/desired"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
)

// teardown removes what an object no longer declared had made: a Task's
// task, a Container's container and snapshot (and task). An Image's record
// is dropped if the Image made it (st.Owns: not one pulled by hand before
// it was declared), unless another Image object declares the same
// reference, and its data is left to garbage collection.
func (c *Controller) teardown(ctx context.Context, key spec.Key) (Result, error) {
	st, err := c.opts.DB.GetStatus(ctx, key)
	if errdefs.IsNotFound(err) {
		return Result{}, nil
	}
	if err != nil {
		return Result{}, err
	}
	if err := c.sourceBroken(st.Source); err != nil {
		// The file that declared it fails to parse (torn by a power cut,
		// half written): a broken file never tears down running work.
		c.log.Debug("keeping an undeclared object: its source is broken", "object", key.String(), "source", st.Source, "err", err)
		return Result{}, nil
	}
	ns := key.Namespace
	switch key.Kind {
	case spec.KindTask:
		c.stopProber(key)
		// Tasks started after this one (dependsOn) and going too stop
		// first.
		if dep, waiting := c.dependentsStopping(ctx, ns, key.Name); waiting {
			c.log.Debug("teardown waits for a dependent to stop", "object", key.String(), "dependent", dep)
			return Result{RequeueAfter: dependencyTeardownPoll}, nil
		}
		// A Task renamed in place (same container) must not stop what the
		// new name runs.
		if st.Owns != "" && c.taskOf(ns, st.Owns) == "" {
			if err := c.stopTask(ctx, ns, st.Owns, stopTimeout(st.StopTimeout)); err != nil {
				return Result{}, err
			}
		}
	case spec.KindContainer:
		// The Task running it, going too, stops first: it may have to wait
		// for its own dependents (dependsOn), which killing the task here
		// would skip.
		if t, ok := c.taskTearingDown(ctx, ns, st.Owns); ok {
			c.log.Debug("container teardown waits for its Task", "object", key.String(), "task", t)
			return Result{RequeueAfter: dependencyTeardownPoll}, nil
		}
		if st.Owns != "" {
			if err := c.removeContainer(ctx, ns, st.Owns, c.taskStopTimeout(ctx, ns, st.Owns)); err != nil {
				return Result{}, err
			}
		}
	case spec.KindNetwork:
		done, res, err := c.teardownNetwork(ctx, st)
		if !done {
			return res, err
		}
	case spec.KindImage:
		if name := st.Owns; name != "" && !c.imageStillDeclared(ns, name) {
			if err := c.opts.Node.RemoveImage(ctx, ns, name, false); err != nil && !errdefs.IsNotFound(err) {
				return Result{}, err
			}
		}
	}
	if err := c.opts.DB.DeleteStatus(ctx, key); err != nil {
		return Result{}, err
	}
	c.mu.Lock()
	delete(c.restarts, key)
	c.mu.Unlock()
	c.opts.Bus.Publish(ctx, ns, "/reconcile/delete", map[string]any{"kind": key.Kind, "name": key.Name})
	return Result{}, nil
}

// taskOf is the name of the declared Task that runs container id ("" if
// none). Two Tasks naming one container: the first by name runs it.
func (c *Controller) taskOf(ns, id string) string {
	for _, e := range c.opts.Desired.List(desired.Filter{Namespace: ns, Kind: spec.KindTask}) {
		if ts, ok := e.Object.TaskSpec(); ok && ts.Container == id {
			return e.Key.Name // List is sorted by name
		}
	}
	return ""
}

// sourceBroken returns the error of a source that exists but cannot be
// read. A source that is gone (its file removed) is not broken.
func (c *Controller) sourceBroken(name string) error {
	if name == "" {
		return nil
	}
	for _, s := range c.opts.Desired.Sources() {
		if s.Name == name {
			return s.Err
		}
	}
	return nil
}

// defaultStopTimeout applies when no Task says otherwise (or says 0): the
// one default, spec's, that Default writes into every Task.
var defaultStopTimeout, _ = spec.DefaultStopTimeout.Value()

func stopTimeout(s string) time.Duration {
	if d, err := spec.Duration(s).Value(); err == nil && d > 0 {
		return d
	}
	return defaultStopTimeout
}

// taskStopTimeout is the stop timeout of the Task (declared or recently
// torn down) that runs container id.
func (c *Controller) taskStopTimeout(ctx context.Context, ns, id string) time.Duration {
	sts, err := c.opts.DB.ListStatuses(ctx, ns, spec.KindTask)
	if err != nil {
		return defaultStopTimeout
	}
	for _, st := range sts {
		if st.Owns == id {
			return stopTimeout(st.StopTimeout)
		}
	}
	return defaultStopTimeout
}

func (c *Controller) imageStillDeclared(ns, name string) bool {
	for _, e := range c.opts.Desired.List(desired.Filter{Namespace: ns, Kind: spec.KindImage}) {
		if is, ok := e.Object.ImageSpec(); ok {
			if n, err := imageName(is); err == nil && n == name {
				return true
			}
		}
	}
	return false
}
