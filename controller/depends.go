package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"berth.dev/berth/desired"
	"berth.dev/berth/spec"
)

// waitForDependencies says whether a Task must wait before its task
// starts: a Task it names in dependsOn is not Ready (Progressing,
// WaitingForDependency), or the Tasks of its namespace depend on each
// other in a cycle through it (Degraded, DependencyCycle, naming it).
func (c *Controller) waitForDependencies(ctx context.Context, e desired.Entry, ts spec.TaskSpec, prev spec.TaskStatus) (observation, bool) {
	if len(ts.DependsOn) == 0 {
		return observation{}, false
	}
	ns, id := e.Key.Namespace, ts.Container
	if cyc := c.dependencyCycle(ns, e.Key.Name); cyc != nil {
		return observation{degraded: true, reason: "DependencyCycle", owns: id, kind: taskKind(prev),
			message: "dependsOn cycle: " + strings.Join(cyc, " → ")}, true
	}
	var waiting []string
	for _, d := range ts.DependsOn {
		k := spec.Key{Namespace: ns, Kind: spec.KindTask, Name: d.Task}
		if _, declared := c.opts.Desired.Get(k); !declared {
			waiting = append(waiting, d.Task+" (not declared)")
		} else if _, ok := c.isReady(ctx, k); !ok {
			waiting = append(waiting, d.Task)
		}
	}
	if len(waiting) == 0 {
		return observation{}, false
	}
	return observation{reason: "WaitingForDependency", owns: id, kind: taskKind(prev),
		message: fmt.Sprintf("waiting for Task %s to be Ready", strings.Join(waiting, ", "))}, true
}

// dependencyCycle is the dependsOn cycle through Task name of namespace
// ns among the declared Tasks, or nil.
func (c *Controller) dependencyCycle(ns, name string) []string {
	deps := map[string][]string{}
	for _, e := range c.opts.Desired.List(desired.Filter{Namespace: ns, Kind: spec.KindTask}) {
		ts, _ := e.Object.TaskSpec()
		for _, d := range ts.DependsOn {
			deps[e.Key.Name] = append(deps[e.Key.Name], d.Task)
		}
		if _, ok := deps[e.Key.Name]; !ok {
			deps[e.Key.Name] = nil
		}
	}
	for {
		cyc := spec.DependencyCycle(deps)
		if cyc == nil || slices.Contains(cyc, name) {
			return cyc
		}
		for _, n := range cyc {
			delete(deps, n)
		}
	}
}

// taskDependents are the declared Tasks whose dependsOn names Task name.
func (c *Controller) taskDependents(ns, name string) []spec.Key {
	var out []spec.Key
	for _, e := range c.opts.Desired.List(desired.Filter{Namespace: ns, Kind: spec.KindTask}) {
		ts, _ := e.Object.TaskSpec()
		if slices.ContainsFunc(ts.DependsOn, func(d spec.Dependency) bool { return d.Task == name }) {
			out = append(out, e.Key)
		}
	}
	return out
}

// dependentsStopping reports whether a Task started after Task name (its
// status says so) is itself being torn down and has not finished: a
// teardown of name waits for it, so dependents stop first.
func (c *Controller) dependentsStopping(ctx context.Context, ns, name string) (string, bool) {
	sts, err := c.opts.DB.ListStatuses(ctx, ns, spec.KindTask)
	if err != nil {
		return "", false
	}
	for _, st := range sts {
		if st.Key.Name == name || st.Status.TaskStatus == nil || !slices.Contains(st.Status.StartedAfter, name) {
			continue
		}
		if _, declared := c.opts.Desired.Get(st.Key); !declared {
			return st.Key.Name, true
		}
	}
	return "", false
}

// dependencyTeardownPoll is how often a teardown waiting for its
// dependents' looks again (their teardown deletes their status).
const dependencyTeardownPoll = 200 * time.Millisecond

// taskTearingDown names an undeclared Task whose status says it runs
// container id and whose teardown can proceed (its source is not broken).
func (c *Controller) taskTearingDown(ctx context.Context, ns, id string) (string, bool) {
	if id == "" {
		return "", false
	}
	sts, err := c.opts.DB.ListStatuses(ctx, ns, spec.KindTask)
	if err != nil {
		return "", false
	}
	for _, st := range sts {
		if st.Owns != id {
			continue
		}
		if _, declared := c.opts.Desired.Get(st.Key); !declared && c.sourceBroken(st.Source) == nil {
			return st.Key.Name, true
		}
	}
	return "", false
}
