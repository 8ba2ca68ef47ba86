package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"berth.dev/berth/observed"
	"berth.dev/berth/shim/client"
	"github.com/containerd/errdefs"
)

// task is a container's live task: its shim connection and what the
// monitor learned of its exit.
type task struct {
	ns, id, bundle string
	runtime        string // the runtime binary, for cleanup without a shim
	c              *client.Client
	pid            uint32
	done           chan struct{} // closed once exit is known and reported
	exit           *observed.Exit
	// created is when this run's creation began: every record of the
	// container's earlier runs was written before it, none of this run's
	// (its process starts later). Zero for a task adopted at recovery.
	created time.Time
}

// taskTable holds the node's tasks by "<ns>/<id>". Its zero value is ready
// to use; monitors run under ctx until Close.
type taskTable struct {
	mu       sync.Mutex
	m        map[string]*task
	creating map[string]bool
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	// locks serialise the operations on one container and its task.
	locks objectLocks
}

func (n *Node) tasks() *taskTable {
	t := &n.tt
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m, t.creating = map[string]*task{}, map[string]bool{}
		t.ctx, t.cancel = context.WithCancel(context.Background())
	}
	return t
}

func (t *taskTable) get(ns, id string) *task {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[ns+"/"+id]
}

// reserve claims ns/id for a create in flight; release with done(tk),
// tk nil when the create failed.
func (t *taskTable) reserve(ns, id string) (func(*task), error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := ns + "/" + id
	if t.m[k] != nil || t.creating[k] {
		return nil, fmt.Errorf("task %s in namespace %s: %w", id, ns, errdefs.ErrAlreadyExists)
	}
	t.creating[k] = true
	return func(tk *task) {
		t.mu.Lock()
		defer t.mu.Unlock()
		delete(t.creating, k)
		if tk != nil {
			t.m[k] = tk
		}
	}, nil
}

// remove drops tk from the table if it is still the task of its key: a
// caller holding a task it looked up earlier never drops a newer task
// created since. removed says whether it was this caller that removed it.
func (t *taskTable) remove(tk *task) (removed bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := tk.ns + "/" + tk.id
	if t.m[k] != tk {
		return false
	}
	delete(t.m, k)
	return true
}

func (t *taskTable) list(ns string) []*task {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*task
	for _, tk := range t.m {
		if ns == "" || tk.ns == ns {
			out = append(out, tk)
		}
	}
	return out
}

// CloseTasks stops monitoring and closes the shim connections; the tasks
// and their shims go on running, for the next berthd to adopt.
func (n *Node) CloseTasks() error {
	n.spare.mu.Lock()
	n.spare.closed = true // no new spare from here
	n.spare.mu.Unlock()
	n.background.Wait() // nothing may touch the stores once they close
	n.closeSpare()
	t := n.tasks()
	t.cancel()
	t.wg.Wait()
	for _, tk := range t.list("") {
		tk.c.Close()
	}
	return nil
}
