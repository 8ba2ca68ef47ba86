package controller

import (
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"berth.dev/berth/node"
	"berth.dev/berth/spec"
)

// The probes' rules through the reconciler, on the fake node: its exec
// probes answer from the test. Probes run on their own one-second clock,
// so these take a second or two each.

func probedTask(name, container, probes string) string {
	return `---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: ` + name + `}
spec:
  container: ` + container + `
  stopTimeout: 1s
` + probes
}

// until reconciles k until cond holds (the prober works on its own clock
// and wakes the key, which the rig has no queue for), and returns the
// node calls the reconciles made.
func (r *rig) until(k spec.Key, what string, cond func() bool) []string {
	r.t.Helper()
	var calls []string
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			st, _ := r.db.GetStatus(r.ctx, k)
			r.t.Fatalf("%s: not within 5s; calls %v; status %+v", what, calls, st.Status.Conditions)
		}
		time.Sleep(20 * time.Millisecond)
		_, cs := r.reconcile(k)
		calls = append(calls, cs...)
	}
	return calls
}

func (r *rig) readyReason(name string) (bool, string, string) {
	st, _ := r.db.GetStatus(r.ctx, key(spec.KindTask, name))
	c, _ := st.Status.Condition(spec.ConditionReady)
	return c.Status == spec.ConditionTrue, c.Reason, c.Message
}

// A failing liveness probe stops the task and the restart policy starts
// it again, at once the first time: reason Unhealthy with the probe's
// output, kept in status.unhealthy after the restart.
func TestReconcile_LivenessRestarts(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	defer r.c.stopAllProbers()
	var healthy atomic.Bool
	healthy.Store(true)
	r.node.SetProbeExec(func(_, _ string, _ []string) (node.ExecResult, error) {
		if healthy.Load() {
			return node.ExecResult{}, nil
		}
		return node.ExecResult{ExitStatus: 1, Output: []byte("no pulse")}, nil
	})
	r.apply(testImage + testContainer + probedTask("web", "web", `  livenessProbe: {exec: {command: [check]}, periodSeconds: 1, failureThreshold: 1}
`))
	r.converge()
	tk := key(spec.KindTask, "web")
	if ready, reason, _ := r.readyReason("web"); !ready {
		t.Fatalf("a task whose liveness probe passes is not Ready: %s", reason)
	}
	healthy.Store(false)
	calls := r.until(tk, "the unhealthy task stopped", func() bool {
		_, ts := r.taskStatus("web")
		return ts.Unhealthy != ""
	})
	if !slices.Contains(calls, "kill default/web") || !slices.Contains(calls, "delete-task default/web") {
		t.Errorf("calls %v: want the task killed and deleted for its restart", calls)
	}
	st, ts := r.taskStatus("web")
	if got := reasonOf(st, spec.ConditionReady); got != "Unhealthy" {
		t.Errorf("Ready reason %q, want Unhealthy", got)
	}
	if !strings.Contains(ts.Unhealthy, "liveness probe failed 1 times: exit status 1: no pulse") {
		t.Errorf("status.unhealthy = %q", ts.Unhealthy)
	}
	healthy.Store(true)
	_, calls = r.reconcile(tk)
	wantCalls(t, "restart", calls, "create-task default/web", "start default/web")
	if _, ts := r.taskStatus("web"); ts.RestartCount != 1 || ts.Unhealthy == "" {
		t.Errorf("after the restart: %+v, want one restart and the reason kept", ts)
	}
}

// Readiness follows an exec readiness probe both ways; the task is not
// restarted for it.
func TestReconcile_ReadinessFlips(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	defer r.c.stopAllProbers()
	var ok atomic.Bool
	r.node.SetProbeExec(func(_, _ string, _ []string) (node.ExecResult, error) {
		if ok.Load() {
			return node.ExecResult{}, nil
		}
		return node.ExecResult{ExitStatus: 3, Output: []byte("warming up")}, nil
	})
	r.apply(testImage + testContainer + probedTask("web", "web", `  readinessProbe: {exec: {command: [check]}, periodSeconds: 1, failureThreshold: 1}
`))
	r.converge()
	tk := key(spec.KindTask, "web")
	r.until(tk, "NotReady with the probe's output", func() bool {
		ready, reason, msg := r.readyReason("web")
		return !ready && reason == "NotReady" && strings.Contains(msg, "exit status 3: warming up")
	})
	ok.Store(true)
	r.until(tk, "Ready", func() bool { ready, _, _ := r.readyReason("web"); return ready })
	ok.Store(false)
	calls := r.until(tk, "NotReady again", func() bool { ready, _, _ := r.readyReason("web"); return !ready })
	if slices.ContainsFunc(calls, func(c string) bool { return strings.HasPrefix(c, "kill") }) {
		t.Errorf("a failing readiness probe stopped the task: %v", calls)
	}
}

// dependsOn: the dependent waits while its dependency is not Ready and
// starts once it is; removing both stops the dependent first.
func TestReconcile_DependsOn(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	defer r.c.stopAllProbers()
	var dbUp atomic.Bool
	r.node.SetProbeExec(func(_, id string, _ []string) (node.ExecResult, error) {
		if id == "db" && !dbUp.Load() {
			return node.ExecResult{ExitStatus: 1}, nil
		}
		return node.ExecResult{}, nil
	})
	ctr := func(name string) string {
		return "---\napiVersion: berth.dev/v1\nkind: Container\nmetadata: {name: " + name + "}\nspec: {image: busybox}\n"
	}
	set := testImage + ctr("db") + ctr("web") +
		probedTask("db", "db", "  readinessProbe: {exec: {command: [check]}, periodSeconds: 1}\n") +
		probedTask("web", "web", "  dependsOn: [{task: db}]\n")
	r.apply(set)
	r.converge()
	web := key(spec.KindTask, "web")
	if _, reason, msg := r.readyReason("web"); reason != "WaitingForDependency" || !strings.Contains(msg, "db") {
		t.Fatalf("web: %s %q, want WaitingForDependency naming db", reason, msg)
	}
	r.apply(strings.Replace(set, "dependsOn: [{task: db}]", "dependsOn: [{task: db}, {task: cache}]", 1))
	r.reconcile(web)
	if _, _, msg := r.readyReason("web"); !strings.Contains(msg, "cache (not declared)") {
		t.Errorf("web waits for an undeclared Task without saying so: %q", msg)
	}
	r.apply(set)
	r.reconcile(web)
	if p := r.node.Phase("default", "web"); p != "" {
		t.Fatalf("web's task is %q before db is Ready", p)
	}
	dbUp.Store(true)
	r.until(key(spec.KindTask, "db"), "db Ready", func() bool { ready, _, _ := r.readyReason("db"); return ready })
	_, calls := r.reconcile(web)
	wantCalls(t, "web once db is Ready", calls, "create-task default/web", "start default/web")
	if _, ts := r.taskStatus("web"); !slices.Equal(ts.StartedAfter, []string{"db"}) {
		t.Errorf("startedAfter = %v, want [db]", ts.StartedAfter)
	}

	// Both go: db's Task and its Container wait for web's Task.
	r.apply(testImage)
	for _, k := range []spec.Key{key(spec.KindContainer, "db"), key(spec.KindTask, "db")} {
		if _, calls := r.reconcile(k); len(calls) > 0 {
			t.Errorf("%s torn down before its dependent: %v", k, calls)
		}
	}
	_, calls = r.reconcile(web)
	if !slices.Contains(calls, "kill default/web") {
		t.Errorf("web's teardown: %v", calls)
	}
	_, calls = r.reconcile(key(spec.KindTask, "db"))
	if !slices.Contains(calls, "kill default/db") {
		t.Errorf("db's teardown after web's: %v", calls)
	}
}
