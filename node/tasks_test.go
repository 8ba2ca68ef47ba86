package node

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
)

// TestNode_DeleteTask_Concurrent is the controller's Container and Task
// reconcilers racing on one task: one deletes it, the other deletes it
// and runs a new one. The task is deleted once (one /tasks/delete per
// pid, a second delete finds nothing), and what the table holds at the end
// runs, with its rootfs mounted and its bundle in place.
func TestNode_DeleteTask_Concurrent(t *testing.T) {
	n, rec := testNode(t)
	ctx := context.Background()
	ns, id := spec.DefaultNamespace, "racer"
	runSleeper(t, n, id)
	totalDeletes := 0
	for i := range 3 {
		old, err := n.GetTask(ctx, ns, id)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var deleted, notFound [2]bool
		errs := make(chan error, 4)
		del := func(who int) {
			_, err := n.DeleteTask(ctx, ns, id, true)
			switch {
			case err == nil:
				deleted[who] = true
			case errdefs.IsNotFound(err):
				notFound[who] = true
			default:
				errs <- fmt.Errorf("delete %d: %w", who, err)
			}
		}
		wg.Add(2)
		go func() { defer wg.Done(); del(0) }() // the Container reconciler
		go func() {                             // the Task reconciler: delete, then run anew
			defer wg.Done()
			del(1)
			if _, err := n.CreateTask(ctx, ns, id, Stdio{}); err != nil {
				errs <- fmt.Errorf("create: %w", err)
				return
			}
			if _, err := n.StartTask(ctx, ns, id, ""); err != nil && !errdefs.IsNotFound(err) {
				errs <- fmt.Errorf("start: %w", err)
			}
		}()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("round %d: %v", i, err)
		}
		if got := rec.count("/tasks/delete", "pid", old.Pid); got != 1 {
			t.Errorf("round %d: /tasks/delete of pid %d published %d times, want 1", i, old.Pid, got)
		}
		wantDeletes := 0
		for who := range 2 {
			if deleted[who] {
				wantDeletes++
			}
			if deleted[who] == notFound[who] {
				t.Errorf("round %d: delete %d: deleted %v, not found %v; want exactly one", i, who, deleted[who], notFound[who])
			}
		}
		totalDeletes += wantDeletes
		if got := rec.count("/tasks/delete", "", nil); got != totalDeletes {
			t.Errorf("round %d: %d /tasks/delete published, want one per successful delete (%d)", i, got, totalDeletes)
		}
		// The delete that lost the race may have come after the new task's
		// create, and deleted it: that is a clean delete too. Either way the
		// table and the world agree.
		tk := n.tasks().get(ns, id)
		rootfs := filepath.Join(n.opts.Tasks.State, ns, id, "rootfs")
		if tk == nil {
			if mounted(t, rootfs) {
				t.Fatalf("round %d: no task in the table, but %s is mounted", i, rootfs)
			}
			startTask(t, n, id)
			continue
		}
		if !mounted(t, rootfs) {
			t.Fatalf("round %d: task pid %d in the table, but its rootfs %s is not mounted", i, tk.pid, rootfs)
		}
		waitFor(t, 5*time.Second, func() (bool, string) {
			info, err := n.GetTask(ctx, ns, id)
			return err == nil && info.Status == "running", fmt.Sprintf("round %d: task %+v, %v; want running", i, info, err)
		})
	}
}

func TestObjectLocks(t *testing.T) {
	n := New(Options{})
	ctx := context.Background()
	unlock, err := n.tt.locks.lock(ctx, "default", "web", true)
	if err != nil {
		t.Fatal(err)
	}
	// A delete of a container being created is refused, not queued behind it.
	if err := n.DeleteContainer(ctx, "default", "web"); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("DeleteContainer during create: got %v, want FailedPrecondition", err)
	}
	// Another operation on the same container waits (here: until ctx ends)…
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := n.tt.locks.lock(cctx, "default", "web", false); err == nil {
		t.Error("second lock of default/web taken while held")
	}
	// …while one on another container does not.
	other, err := n.tt.locks.lock(ctx, "default", "db", false)
	if err != nil {
		t.Fatal(err)
	}
	other()
	unlock()
	if n.tt.locks.creatingContainer("default", "web") {
		t.Error("create still marked in flight after unlock")
	}
	again, err := n.tt.locks.lock(ctx, "default", "web", false)
	if err != nil {
		t.Fatal(err)
	}
	again()
	if len(n.tt.locks.m) != 0 {
		t.Errorf("%d lock entries left, want 0", len(n.tt.locks.m))
	}
}
