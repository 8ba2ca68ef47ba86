// Package nodetest is an in-memory stand-in for node's interfaces (Images,
// Containers, Tasks, Snapshots), for unit tests of the node's callers: the
// reconcilers and berth diff. It keeps its records in the real
// observed.DB it is given, as the node does, so a caller reads what it
// would read on a real node; only the shims, runc, registries and
// snapshotters are imitated. Each call is logged, so a test can compare
// what a caller did with what it meant to do.
//
// It needs no root and runs in microseconds. Operations no caller under
// test uses return errdefs.ErrNotImplemented.
package nodetest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"berth.dev/berth/content/reference"
	"berth.dev/berth/network"
	"berth.dev/berth/node"
	"berth.dev/berth/observed"
	"berth.dev/berth/snapshot"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Node imitates a node over a real observed.DB.
type Node struct {
	DB *observed.DB

	mu sync.Mutex
	// digests are what the imitated registry serves, by normalised name;
	// a name not set serves a digest made from the name.
	digests map[string]digest.Digest
	tasks   map[string]*task // by "<ns>/<id>"
	snaps   map[string]bool  // rw snapshot keys present
	pid     uint32
	calls   []string
	// probe answers ProbeExec (SetProbeExec); nil: not implemented.
	probe func(ns, id string, args []string) (node.ExecResult, error)
}

type task struct {
	phase  spec.TaskPhase
	pid    uint32
	status uint32
}

// New returns a fake node over db.
func New(db *observed.DB) *Node {
	return &Node{DB: db, digests: map[string]digest.Digest{}, tasks: map[string]*task{}, snaps: map[string]bool{}}
}

var (
	_ node.Images     = (*Node)(nil)
	_ node.Containers = (*Node)(nil)
	_ node.Tasks      = (*Node)(nil)
	_ node.Snapshots  = (*Node)(nil)
)

func (n *Node) log(format string, args ...any) {
	n.calls = append(n.calls, fmt.Sprintf(format, args...))
}

// Calls returns the calls made since the last Calls, as "verb ns/id".
func (n *Node) Calls() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.calls
	n.calls = nil
	return c
}

// SetDigest makes the registry serve d for ref (a moved tag).
func (n *Node) SetDigest(ref string, d digest.Digest) {
	name, _ := reference.Name(ref)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.digests[name] = d
}

// Exit ends the task of ns/id by itself with status, recorded on its
// container as the node's task monitor records an exit.
func (n *Node) Exit(ctx context.Context, ns, id string, status uint32) error {
	n.mu.Lock()
	tk := n.tasks[ns+"/"+id]
	if tk == nil || !tk.phase.Live() {
		n.mu.Unlock()
		return fmt.Errorf("task %s/%s: %w", ns, id, errdefs.ErrFailedPrecondition)
	}
	tk.phase, tk.status = spec.TaskPhaseStopped, status
	pid := tk.pid
	n.mu.Unlock()
	_, err := n.DB.UpdateContainer(ctx, ns, id, func(c *observed.Container) error {
		c.LastExit = &observed.Exit{Pid: pid, ExitStatus: status, ExitedAt: time.Now().UTC()}
		return nil
	})
	return err
}

// RemoveSnapshot removes a container's rw snapshot behind the caller's
// back (drift).
func (n *Node) RemoveSnapshot(key string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.snaps, key)
}

// Phase is the task's phase ("" for none).
func (n *Node) Phase(ns, id string) spec.TaskPhase {
	n.mu.Lock()
	defer n.mu.Unlock()
	if tk := n.tasks[ns+"/"+id]; tk != nil {
		return tk.phase
	}
	return ""
}

// Images.

func (n *Node) fetch(ctx context.Context, verb, ns, ref string) (observed.Image, error) {
	name, err := reference.Name(ref)
	if err != nil {
		return observed.Image{}, err
	}
	n.mu.Lock()
	n.log("%s %s/%s", verb, ns, name)
	d := n.digests[name]
	n.mu.Unlock()
	if d == "" {
		d = digest.NewDigestFromBytes(digest.SHA256, sha(name))
	}
	if _, err := n.DB.EnsureNamespace(ctx, ns); err != nil {
		return observed.Image{}, err
	}
	if old, err := n.DB.GetImage(ctx, ns, name); err == nil && old.Target.Digest == d {
		return old, nil // unchanged: still unpacked
	}
	img, _, err := n.DB.PutImage(ctx, ns, observed.Image{Name: name, Target: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: 1}})
	return img, err
}

func sha(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func (n *Node) Pull(ctx context.Context, ns, ref string, _ node.PullOptions) (observed.Image, error) {
	return n.fetch(ctx, "pull", ns, ref)
}

func (n *Node) Import(ctx context.Context, ns, path string, o node.ImportOptions) ([]observed.Image, error) {
	img, err := n.fetch(ctx, "import", ns, o.Name)
	return []observed.Image{img}, err
}

func (n *Node) Unpack(ctx context.Context, ns, name, snapshotter, _ string, _ func(node.Progress)) (string, error) {
	n.mu.Lock()
	n.log("unpack %s/%s", ns, name)
	n.mu.Unlock()
	img, err := n.DB.GetImage(ctx, ns, name)
	if err != nil {
		return "", err
	}
	chain := "sha256:" + img.Target.Digest.Encoded()
	return chain, n.DB.SetImageUnpacked(ctx, ns, name, cmpOr(snapshotter, spec.DefaultSnapshotter), chain)
}

func (n *Node) RemoveImage(ctx context.Context, ns, name string, _ bool) error {
	n.mu.Lock()
	n.log("remove-image %s/%s", ns, name)
	n.mu.Unlock()
	return n.DB.DeleteImage(ctx, ns, name)
}

func (n *Node) Push(context.Context, string, string, string, node.PushOptions) (ocispec.Descriptor, map[string]string, error) {
	return ocispec.Descriptor{}, nil, errdefs.ErrNotImplemented
}
func (n *Node) Export(context.Context, string, []string, io.Writer) error {
	return errdefs.ErrNotImplemented
}
func (n *Node) ResolveDigest(context.Context, string, string) (string, error) {
	return "", errdefs.ErrNotImplemented
}

func (n *Node) Tag(context.Context, string, string, string) (observed.Image, error) {
	return observed.Image{}, errdefs.ErrNotImplemented
}
func (n *Node) ImageConfig(context.Context, observed.Image, string) (ocispec.Manifest, ocispec.Image, error) {
	return ocispec.Manifest{}, ocispec.Image{}, errdefs.ErrNotImplemented
}
func (n *Node) GC(context.Context, bool) (node.GCResult, error) {
	return node.GCResult{}, errdefs.ErrNotImplemented
}
func (n *Node) Prune(context.Context, bool) (node.GCResult, error) {
	return node.GCResult{}, errdefs.ErrNotImplemented
}

// Containers.

func (n *Node) CreateContainer(ctx context.Context, ns, id, image, snapshotter string, _ node.ContainerSettings, labels map[string]string) (observed.Container, error) {
	n.mu.Lock()
	n.log("create-container %s/%s", ns, id)
	n.mu.Unlock()
	img, err := n.DB.GetImage(ctx, ns, image)
	if err != nil {
		return observed.Container{}, err
	}
	key := ns + "/" + id
	c, err := n.DB.CreateContainer(ctx, ns, observed.Container{ID: id, Image: image, ImageDigest: img.Target.Digest.String(),
		Snapshotter: cmpOr(snapshotter, spec.DefaultSnapshotter), SnapshotKey: key, Labels: labels})
	if err == nil {
		n.mu.Lock()
		n.snaps[key] = true
		n.mu.Unlock()
	}
	return c, err
}

func (n *Node) DeleteContainer(ctx context.Context, ns, id string) error {
	n.mu.Lock()
	n.log("delete-container %s/%s", ns, id)
	if tk := n.tasks[ns+"/"+id]; tk != nil {
		n.mu.Unlock()
		return fmt.Errorf("container %s/%s has a task: %w", ns, id, errdefs.ErrFailedPrecondition)
	}
	delete(n.snaps, ns+"/"+id)
	n.mu.Unlock()
	return n.DB.DeleteContainer(ctx, ns, id)
}

func (n *Node) CheckPolicy(string, node.ContainerSettings) error { return nil }

func (n *Node) ContainerNetwork(string, string) (network.Attachment, bool) {
	return network.Attachment{}, false
}

// Tasks.

func (n *Node) CreateTask(ctx context.Context, ns, id string, _ node.Stdio) (node.TaskInfo, error) {
	if _, err := n.DB.GetContainer(ctx, ns, id); err != nil {
		return node.TaskInfo{}, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.log("create-task %s/%s", ns, id)
	k := ns + "/" + id
	if n.tasks[k] != nil {
		return node.TaskInfo{}, fmt.Errorf("task %s: %w", k, errdefs.ErrAlreadyExists)
	}
	n.pid++
	n.tasks[k] = &task{phase: spec.TaskPhaseCreated, pid: n.pid}
	return node.TaskInfo{ID: id, Pid: n.pid, Status: spec.TaskPhaseCreated}, nil
}

func (n *Node) RunTask(ctx context.Context, ns, id string, stdio node.Stdio) (node.TaskInfo, error) {
	info, err := n.CreateTask(ctx, ns, id, stdio)
	if err != nil {
		return info, err
	}
	if _, err := n.StartTask(ctx, ns, id, ""); err != nil {
		return info, err
	}
	info.Status = spec.TaskPhaseRunning
	return info, nil
}

// get returns the task of ns/id with n.mu held; the caller unlocks.
func (n *Node) get(ns, id string) (*task, error) {
	n.mu.Lock()
	tk := n.tasks[ns+"/"+id]
	if tk == nil {
		return nil, fmt.Errorf("task %s/%s: %w", ns, id, errdefs.ErrNotFound)
	}
	return tk, nil
}

func (n *Node) StartTask(_ context.Context, ns, id, _ string) (uint32, error) {
	tk, err := n.get(ns, id)
	defer n.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n.log("start %s/%s", ns, id)
	tk.phase = spec.TaskPhaseRunning
	return tk.pid, nil
}

func (n *Node) KillTask(_ context.Context, ns, id, _ string, sig syscall.Signal, _ bool) error {
	tk, err := n.get(ns, id)
	defer n.mu.Unlock()
	if err != nil {
		return err
	}
	n.log("kill %s/%s", ns, id)
	if tk.phase.Live() {
		tk.phase, tk.status = spec.TaskPhaseStopped, 128+uint32(sig)
	}
	return nil
}

func (n *Node) WaitTask(ctx context.Context, ns, id, _ string) (observed.Exit, error) {
	tk, err := n.get(ns, id)
	if err != nil {
		n.mu.Unlock()
		return observed.Exit{}, err
	}
	stopped, status := tk.phase == spec.TaskPhaseStopped, tk.status
	n.mu.Unlock()
	if !stopped {
		<-ctx.Done() // only a kill ends a fake task
		return observed.Exit{}, ctx.Err()
	}
	return observed.Exit{ExitStatus: status}, nil
}

func (n *Node) DeleteTask(_ context.Context, ns, id string, _ bool) (observed.Exit, error) {
	tk, err := n.get(ns, id)
	defer n.mu.Unlock()
	if err != nil {
		return observed.Exit{}, err
	}
	n.log("delete-task %s/%s", ns, id)
	delete(n.tasks, ns+"/"+id)
	return observed.Exit{ExitStatus: tk.status}, nil
}

func (n *Node) GetTask(_ context.Context, ns, id string) (node.TaskInfo, error) {
	tk, err := n.get(ns, id)
	defer n.mu.Unlock()
	if err != nil {
		return node.TaskInfo{}, err
	}
	return node.TaskInfo{ID: id, Pid: tk.pid, Status: tk.phase, ExitStatus: tk.status}, nil
}

func (n *Node) ListTasks(_ context.Context, ns string) ([]node.TaskInfo, error) {
	return nil, errdefs.ErrNotImplemented
}

func (n *Node) setPhase(verb, ns, id string, from, to spec.TaskPhase) error {
	tk, err := n.get(ns, id)
	defer n.mu.Unlock()
	if err != nil {
		return err
	}
	n.log("%s %s/%s", verb, ns, id)
	if tk.phase != from {
		return fmt.Errorf("%s task %s/%s: it is %s: %w", verb, ns, id, tk.phase, errdefs.ErrFailedPrecondition)
	}
	tk.phase = to
	return nil
}

func (n *Node) PauseTask(_ context.Context, ns, id string) error {
	return n.setPhase("pause", ns, id, spec.TaskPhaseRunning, spec.TaskPhasePaused)
}

func (n *Node) ResumeTask(_ context.Context, ns, id string) error {
	return n.setPhase("resume", ns, id, spec.TaskPhasePaused, spec.TaskPhaseRunning)
}

func (n *Node) StopSignal(context.Context, string, string) syscall.Signal { return syscall.SIGTERM }

func (n *Node) Exec(context.Context, string, string, string, node.ExecOptions) error {
	return errdefs.ErrNotImplemented
}
func (n *Node) ProbeExec(_ context.Context, ns, id string, args []string, _ time.Duration) (node.ExecResult, error) {
	n.mu.Lock()
	probe := n.probe
	_, running := n.tasks[ns+"/"+id]
	n.mu.Unlock()
	if probe == nil {
		return node.ExecResult{}, errdefs.ErrNotImplemented
	}
	if !running {
		return node.ExecResult{}, fmt.Errorf("task %s/%s: %w", ns, id, errdefs.ErrNotFound)
	}
	// Not logged as a call: probes run on their own clock, and a test's
	// call lists are of what the reconciles do.
	return probe(ns, id, args)
}

// SetProbeExec makes fn answer exec probes (called from probe goroutines).
func (n *Node) SetProbeExec(fn func(ns, id string, args []string) (node.ExecResult, error)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.probe = fn
}
func (n *Node) DeleteExec(context.Context, string, string, string) (uint32, error) {
	return 0, errdefs.ErrNotImplemented
}
func (n *Node) ResizePty(context.Context, string, string, string, uint32, uint32) error {
	return errdefs.ErrNotImplemented
}
func (n *Node) CloseIO(context.Context, string, string, string) error {
	return errdefs.ErrNotImplemented
}
func (n *Node) Logs(context.Context, string, string, node.LogOptions, func(node.LogEntry) error) error {
	return errdefs.ErrNotImplemented
}
func (n *Node) LogPath(string, string) (string, error) { return "", errdefs.ErrNotImplemented }
func (n *Node) TaskMetrics(context.Context, string, string) (node.Metrics, error) {
	return node.Metrics{}, errdefs.ErrNotImplemented
}
func (n *Node) TaskPids(context.Context, string, string) ([]node.Process, error) {
	return nil, errdefs.ErrNotImplemented
}
func (n *Node) NetworkStats(string, string) (network.Stats, error) {
	return network.Stats{}, errdefs.ErrNotImplemented
}
func (n *Node) RecoverTasks(context.Context) error { return nil }

// Snapshots: one snapshotter per name, which knows only whether a
// container's rw snapshot is there (Stat); the rest of
// snapshot.Snapshotter is not imitated and panics if called.

func (n *Node) Snapshotter(name string) (snapshot.Snapshotter, string, error) {
	name = cmpOr(name, spec.DefaultSnapshotter)
	return snapshotter{n: n}, name, nil
}

func (n *Node) SnapshotterNames() []string { return []string{spec.DefaultSnapshotter} }

type snapshotter struct {
	snapshot.Snapshotter // nil: only Stat is imitated
	n                    *Node
}

func (s snapshotter) Stat(_ context.Context, key string) (snapshot.Info, error) {
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	if !s.n.snaps[key] {
		return snapshot.Info{}, fmt.Errorf("snapshot %s: %w", key, errdefs.ErrNotFound)
	}
	return snapshot.Info{Name: key}, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
