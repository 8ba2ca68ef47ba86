package node

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"berth.dev/berth/observed"
	"berth.dev/berth/oci"
	"berth.dev/berth/shim/client"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
)

// TaskOptions say where tasks live and what runs them.
type TaskOptions struct {
	// State holds the bundles, <State>/<namespace>/<id>/, and the runtime's
	// state, <State>/.runc/<namespace>/ (tmpfs: gone after a reboot).
	State string
	// Root holds the output logs, <Root>/logs/<namespace>/<id>/output.log,
	// which outlive a reboot.
	Root string
	// ShimBinary is the berth-shim to start ("" is berth-shim on PATH).
	ShimBinary string
	// InitBinary is berth-init, the PID 1 of containers that ask for an
	// init (an absolute host path; "" refuses such containers).
	InitBinary string
	// DefaultRuntime names the runtime of containers that name none.
	DefaultRuntime string
	// Runtimes maps a runtime name to its binary (a name on PATH or an
	// absolute path); a name not listed is resolved by oci.Runtime.
	Runtimes map[string]string
	// LogMaxSize and LogMaxFiles bound each container's output log.
	LogMaxSize  int64
	LogMaxFiles int
}

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
	n.background.Wait() // nothing may touch the stores once they close
	t := n.tasks()
	t.cancel()
	t.wg.Wait()
	for _, tk := range t.list("") {
		tk.c.Close()
	}
	return nil
}

// bundleDir is the bundle of container id of ns. Both names become path
// elements, so anything but DNS-1123 labels ("..", "a/b") is refused.
func (n *Node) bundleDir(ns, id string) (string, error) {
	if err := validatePathNames(ns, id); err != nil {
		return "", err
	}
	return filepath.Join(n.opts.Tasks.State, ns, id), nil
}

func (n *Node) runtimeRoot(ns string) string {
	return filepath.Join(n.opts.Tasks.State, ".runc", ns)
}

// LogPath is where the output log of container id of ns is written; names
// that are not DNS-1123 labels are refused (InvalidArgument), so no
// namespace or id can lead the path outside the root.
func (n *Node) LogPath(ns, id string) (string, error) {
	if err := validatePathNames(ns, id); err != nil {
		return "", err
	}
	return filepath.Join(n.opts.Tasks.Root, "logs", ns, id, "output.log"), nil
}

func validatePathNames(ns, id string) error {
	if err := spec.ValidateNamespace(ns); err != nil {
		return err
	}
	return spec.ValidateName("container id", id)
}

// runtimeBinary resolves a runtime name to its binary's path.
func (n *Node) runtimeBinary(name string) (string, error) {
	if name == "" {
		name = n.opts.Tasks.DefaultRuntime
	}
	if name == "" {
		name = spec.DefaultRuntime
	}
	if bin, ok := n.opts.Tasks.Runtimes[name]; ok && bin != "" {
		if filepath.IsAbs(bin) {
			return oci.Runtime(bin, nil)
		}
		p, err := exec.LookPath(bin)
		if err != nil {
			return "", fmt.Errorf("runtime %s (%s): not found on PATH: %w", name, bin, errdefs.ErrNotFound)
		}
		return p, nil
	}
	return oci.Runtime(name, nil)
}

// objectLocks serialises the operations that create or remove what one
// container is made of (its record and snapshot, its task, shim, bundle
// and rootfs mount), keyed by "<ns>/<id>". The controller's Container and
// Task reconcilers, and API callers, may act on one container at once;
// without this a slow DeleteTask could unmount and drop a task that a
// faster caller had already recreated. Its zero value is ready to use.
type objectLocks struct {
	mu sync.Mutex
	m  map[string]*objectLock
}

type objectLock struct {
	sem      chan struct{} // holds one token while locked
	refs     int           // holders and waiters; the entry goes at 0
	creating int           // container creates in flight (waiting or holding)
}

// lock takes the lock of ns/id, waiting at most until ctx is done.
// creating marks the caller as a container create for the whole time it
// waits and holds the lock (see creatingContainer).
func (l *objectLocks) lock(ctx context.Context, ns, id string, creating bool) (unlock func(), err error) {
	k := ns + "/" + id
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*objectLock{}
	}
	e := l.m[k]
	if e == nil {
		e = &objectLock{sem: make(chan struct{}, 1)}
		l.m[k] = e
	}
	e.refs++
	if creating {
		e.creating++
	}
	l.mu.Unlock()
	leave := func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if creating {
			e.creating--
		}
		if e.refs--; e.refs == 0 {
			delete(l.m, k)
		}
	}
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		leave()
		return nil, fmt.Errorf("wait for other operations on %s in namespace %s: %w", id, ns, ctx.Err())
	}
	return func() {
		<-e.sem
		leave()
	}, nil
}

// creatingContainer reports whether a create of container ns/id is in
// flight.
func (l *objectLocks) creatingContainer(ns, id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.m[ns+"/"+id]
	return e != nil && e.creating > 0
}
