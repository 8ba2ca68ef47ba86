package controller

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"berth.dev/berth/desired"
	"berth.dev/berth/node/nodetest"
	"berth.dev/berth/observed"
	"berth.dev/berth/spec"
	"github.com/google/go-cmp/cmp"
)

// The reconcilers' rules, each on the real desired.Store and observed.DB
// with nodetest's in-memory node in place of shims and runc: no root, a
// few milliseconds each.

// rig is a controller over in-process stores and a fake node.
type rig struct {
	t     *testing.T
	ctx   context.Context
	store *desired.Store
	db    *observed.DB
	node  *nodetest.Node
	c     *Controller
}

func newRig(t *testing.T) *rig {
	t.Helper()
	db := openDB(t)
	r := &rig{t: t, ctx: context.Background(), store: desired.NewStore(), db: db, node: nodetest.New(db)}
	r.c = r.newController()
	return r
}

// newController is a fresh controller over the same stores and node: a
// restarted berthd, with none of the old one's memory.
func (r *rig) newController() *Controller {
	return New(Options{Desired: r.store, Node: r.node, DB: r.db, Bus: observed.NewBus(),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxBackoff: time.Minute})
}

const (
	testImage = `apiVersion: berth.dev/v1
kind: Image
metadata: {name: busybox}
spec: {ref: "127.0.0.1:5000/busybox:1"}
`
	testContainer = `---
apiVersion: berth.dev/v1
kind: Container
metadata: {name: web}
spec: {image: busybox, command: [httpd, -f]}
`
)

func testTask(name, container, state, policy string) string {
	return `---
apiVersion: berth.dev/v1
kind: Task
metadata: {name: ` + name + `}
spec: {container: ` + container + `, state: ` + state + `, restartPolicy: ` + policy + `}
`
}

// apply makes manifests the whole of what one file declares.
func (r *rig) apply(manifests string) {
	r.t.Helper()
	objs, err := spec.Parse("/etc/berth/manifests/test.yaml", []byte(manifests))
	if err != nil {
		r.t.Fatal(err)
	}
	r.store.ReplaceSource("/etc/berth/manifests/test.yaml", objs, nil)
}

func key(kind spec.Kind, name string) spec.Key {
	return spec.Key{Namespace: spec.DefaultNamespace, Kind: kind, Name: name}
}

// reconcile runs one reconcile of k and returns the node calls it made.
func (r *rig) reconcile(k spec.Key) (Result, []string) {
	r.t.Helper()
	res, err := r.c.Reconcile(r.ctx, k)
	if err != nil {
		r.t.Fatalf("reconcile %s: %v", k, err)
	}
	return res, r.node.Calls()
}

// keys are every declared key and every key with a status, Images first,
// then Containers, then Tasks, as dependents are woken.
func (r *rig) keys() []spec.Key {
	seen := map[spec.Key]bool{}
	for _, e := range r.store.List(desired.Filter{}) {
		seen[e.Key] = true
	}
	sts, _ := r.db.ListStatuses(r.ctx, "", "")
	for _, st := range sts {
		seen[st.Key] = true
	}
	var ks []spec.Key
	for k := range seen {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, func(a, b spec.Key) int {
		if d := slices.Index(spec.Kinds, a.Kind) - slices.Index(spec.Kinds, b.Kind); d != 0 {
			return d
		}
		return compareStrings(a.Name, b.Name)
	})
	return ks
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// converge reconciles every key in order until a round calls the node no
// more, and returns the calls made per key.
func (r *rig) converge() map[spec.Key][]string {
	r.t.Helper()
	calls := map[spec.Key][]string{}
	for round := 0; round < 8; round++ {
		quiet := true
		for _, k := range r.keys() {
			_, cs := r.reconcile(k)
			if len(cs) > 0 {
				quiet = false
				calls[k] = append(calls[k], cs...)
			}
		}
		if quiet {
			return calls
		}
	}
	r.t.Fatalf("no convergence in 8 rounds: %v", calls)
	return nil
}

func (r *rig) taskStatus(name string) (observed.ObjectStatus, spec.TaskStatus) {
	r.t.Helper()
	st, err := r.db.GetStatus(r.ctx, key(spec.KindTask, name))
	if err != nil {
		r.t.Fatalf("status of Task %s: %v", name, err)
	}
	if st.Status.TaskStatus == nil {
		r.t.Fatalf("Task %s has no task status: %+v", name, st)
	}
	return st, *st.Status.TaskStatus
}

func reasonOf(st observed.ObjectStatus, t spec.ConditionType) string {
	c, _ := st.Status.Condition(t)
	return c.Reason
}

func wantCalls(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s: node calls (-want +got):\n%s", what, diff)
	}
}

// A task that keeps exiting is restarted at once the first time, then
// after 1 s, 2 s, … capped at MaxBackoff, and not before its backoff ends.
func TestReconcile_RestartBackoff(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.apply(testImage + testContainer + testTask("web", "web", "Running", "Always"))
	r.converge()
	tk := key(spec.KindTask, "web")
	if p := r.node.Phase("default", "web"); p != spec.TaskPhaseRunning {
		t.Fatalf("after converging the task is %q", p)
	}

	exit := func() {
		t.Helper()
		if err := r.node.Exit(r.ctx, "default", "web", 1); err != nil {
			t.Fatal(err)
		}
	}
	exit()
	res, calls := r.reconcile(tk)
	wantCalls(t, "first exit", calls, "delete-task default/web")
	if res.RequeueAfter > 10*time.Millisecond {
		t.Errorf("first restart waits %s, want at once", res.RequeueAfter)
	}
	if st, _ := r.taskStatus("web"); reasonOf(st, spec.ConditionProgressing) != "BackOff" {
		t.Errorf("after an exit: %+v, want Progressing BackOff", st.Status.Conditions)
	}
	_, calls = r.reconcile(tk)
	wantCalls(t, "first restart", calls, "create-task default/web", "start default/web")
	if _, ts := r.taskStatus("web"); ts.RestartCount != 1 || ts.State != spec.TaskPhaseRunning {
		t.Errorf("after a restart: %+v, want running with 1 restart", ts)
	}

	exit()
	res, calls = r.reconcile(tk)
	wantCalls(t, "second exit", calls, "delete-task default/web")
	if res.RequeueAfter < 900*time.Millisecond || res.RequeueAfter > 1100*time.Millisecond {
		t.Errorf("second restart waits %s, want 1 s ± 10%%", res.RequeueAfter)
	}
	res, calls = r.reconcile(tk)
	wantCalls(t, "during the backoff", calls)
	if res.RequeueAfter <= 0 {
		t.Error("a reconcile during the backoff asks for no recheck")
	}
	r.c.restartsOf(tk, spec.TaskStatus{}).nextAt = time.Now() // the backoff ran out
	_, calls = r.reconcile(tk)
	wantCalls(t, "after the backoff", calls, "create-task default/web", "start default/web")

	exit()
	if res, _ = r.reconcile(tk); res.RequeueAfter < 1800*time.Millisecond || res.RequeueAfter > 2200*time.Millisecond {
		t.Errorf("third restart waits %s, want 2 s ± 10%%", res.RequeueAfter)
	}
	// berthd restarts during the backoff: the new controller reads it
	// from the status, so it neither starts the task early nor forgets
	// how many times it failed.
	r.c = r.newController()
	res, calls = r.reconcile(tk)
	wantCalls(t, "after a berthd restart, during the backoff", calls)
	if res.RequeueAfter < time.Second || res.RequeueAfter > 2200*time.Millisecond {
		t.Errorf("after a berthd restart the backoff has %s left, want most of 2 s", res.RequeueAfter)
	}
	if rs := r.c.restartsOf(tk, spec.TaskStatus{}); rs.failures != 3 {
		t.Errorf("after a berthd restart: %d failures, want 3", rs.failures)
	}
	r.c.restartsOf(tk, spec.TaskStatus{}).nextAt = time.Now()
	r.reconcile(tk)
	r.c.restartsOf(tk, spec.TaskStatus{}).failures = 40
	exit()
	if res, _ = r.reconcile(tk); res.RequeueAfter > time.Minute*11/10 || res.RequeueAfter < time.Minute*9/10 {
		t.Errorf("after 40 restarts the wait is %s, want MaxBackoff (1m)", res.RequeueAfter)
	}
	if _, ts := r.taskStatus("web"); ts.RestartCount != 3 {
		t.Errorf("restart count %d, want 3", ts.RestartCount)
	}
}

// Never and OnFailure leave a task that exited 0 exited, with no restart.
func TestReconcile_RestartPolicyKeepsExit(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"Never", "OnFailure"} {
		r := newRig(t)
		r.apply(testImage + testContainer + testTask("web", "web", "Running", policy))
		r.converge()
		if err := r.node.Exit(r.ctx, "default", "web", 0); err != nil {
			t.Fatal(err)
		}
		if calls := r.converge(); len(calls) > 0 {
			t.Errorf("%s: an exit 0 made calls %v", policy, calls)
		}
		if _, ts := r.taskStatus("web"); ts.State != spec.TaskPhaseExited || ts.RestartCount != 0 {
			t.Errorf("%s: %+v, want exited, no restart", policy, ts)
		}
	}
}

// A changed Container spec recreates the container (its task stopped
// first), and the Task starts afresh in the new one: no restart counted,
// decided from the records even by a controller that did not see the
// recreation (a berthd restarted in between).
func TestReconcile_RecreateOnSpecChange(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.apply(testImage + testContainer + testTask("web", "web", "Running", "Always"))
	r.converge()
	before, err := r.db.GetContainer(r.ctx, "default", "web")
	if err != nil {
		t.Fatal(err)
	}
	r.apply(testImage + `---
apiVersion: berth.dev/v1
kind: Container
metadata: {name: web}
spec: {image: busybox, command: [httpd, -f], env: [{name: A, value: "1"}]}
` + testTask("web", "web", "Running", "Always"))
	_, calls := r.reconcile(key(spec.KindContainer, "web"))
	wantCalls(t, "container", calls, "kill default/web", "delete-task default/web", "delete-container default/web", "create-container default/web")
	after, err := r.db.GetContainer(r.ctx, "default", "web")
	if err != nil {
		t.Fatal(err)
	}
	if after.Labels[spec.LabelSpecHash] == before.Labels[spec.LabelSpecHash] {
		t.Error("the recreated container carries the old spec hash")
	}

	r.c = r.newController() // berthd restarted: no memory of the recreation
	_, calls = r.reconcile(key(spec.KindTask, "web"))
	wantCalls(t, "task", calls, "create-task default/web", "start default/web")
	if _, ts := r.taskStatus("web"); ts.RestartCount != 0 || !ts.ContainerCreatedAt.Equal(after.CreatedAt) {
		t.Errorf("task after its container's recreation: %+v, want no restart counted, the new container's time", ts)
	}
	if calls := r.converge(); len(calls) > 0 {
		t.Errorf("not converged: %v", calls)
	}
}

// A Task renamed in place (same container) takes the running task over:
// nothing is stopped or started, and the old name's teardown leaves it.
func TestReconcile_RenamedTask(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.apply(testImage + testContainer + testTask("old", "web", "Running", "Always"))
	r.converge()
	r.apply(testImage + testContainer + testTask("new", "web", "Running", "Always"))
	_, calls := r.reconcile(key(spec.KindTask, "new"))
	wantCalls(t, "new name", calls)
	_, calls = r.reconcile(key(spec.KindTask, "old"))
	wantCalls(t, "old name's teardown", calls)
	if p := r.node.Phase("default", "web"); p != spec.TaskPhaseRunning {
		t.Errorf("task after the rename: %q, want running", p)
	}
	if st, ts := r.taskStatus("new"); reasonOf(st, spec.ConditionReady) != "Running" || ts.State != spec.TaskPhaseRunning {
		t.Errorf("new name's status: %+v %+v", st.Status.Conditions, ts)
	}
	if _, err := r.db.GetStatus(r.ctx, key(spec.KindTask, "old")); err == nil {
		t.Error("the old name's status is still there")
	}
}

// Two Tasks naming one container: the first by name runs it, the other
// is Degraded (ContainerInUse) and touches nothing.
func TestReconcile_ContainerInUse(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.apply(testImage + testContainer + testTask("b", "web", "Stopped", "Never") + testTask("a", "web", "Running", "Always"))
	calls := r.converge()
	if c := calls[key(spec.KindTask, "b")]; len(c) > 0 {
		t.Errorf("the second Task called the node: %v", c)
	}
	wantCalls(t, "first Task", calls[key(spec.KindTask, "a")], "create-task default/web", "start default/web")
	st, err := r.db.GetStatus(r.ctx, key(spec.KindTask, "b"))
	if err != nil {
		t.Fatal(err)
	}
	if reasonOf(st, spec.ConditionDegraded) != "ContainerInUse" {
		t.Errorf("second Task: %+v, want Degraded ContainerInUse", st.Status.Conditions)
	}
	if p := r.node.Phase("default", "web"); p != spec.TaskPhaseRunning {
		t.Errorf("task %q, want running (the Stopped Task is not its owner)", p)
	}
}
