package node

import (
	"context"
	"io"
	"syscall"
	"time"

	"berth.dev/berth/network"
	"berth.dev/berth/observed"
	"berth.dev/berth/snapshot"
	"berth.dev/berth/snapshot/layer"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The node's operations, cut along the seams its callers use. Node
// implements all of them; a caller names in its Options only the ones it
// needs, so what a front door (api/server, cri) or the controllers can do
// to the node is read from one line of their Options, and a unit test of
// a caller fakes a handful of methods instead of starting a whole node.
// The stores behind them (content, snapshots, shims) are not reachable
// through these: there is no escape hatch to the database or the blobs.

// Images fetches, stores and removes images: pull and push, import and
// export of archives, unpack onto a snapshotter, tags, and the garbage
// collection that removes what no image references.
type Images interface {
	Pull(ctx context.Context, ns, ref string, opts PullOptions) (observed.Image, error)
	Push(ctx context.Context, ns, name, target string, opts PushOptions) (ocispec.Descriptor, map[string]string, error)
	Import(ctx context.Context, ns, path string, opts ImportOptions) ([]observed.Image, error)
	Export(ctx context.Context, ns string, names []string, w io.Writer) error
	Unpack(ctx context.Context, ns, name, snapshotter, platform string, progress func(Progress)) (string, error)
	Tag(ctx context.Context, ns, src, target string) (observed.Image, error)
	// ResolveDigest asks the registry which digest ref names now, fetching
	// nothing (an Image's updatePolicy following its tag).
	ResolveDigest(ctx context.Context, ref, authFile string) (string, error)
	RemoveImage(ctx context.Context, ns, name string, sync bool) error
	ImageConfig(ctx context.Context, img observed.Image, platform string) (ocispec.Manifest, ocispec.Image, error)
	GC(ctx context.Context, dryRun bool) (GCResult, error)
	Prune(ctx context.Context, dryRun bool) (GCResult, error)
}

// Containers makes and removes containers (a record, its rw snapshot and
// its network attachment), checked against the node policy.
type Containers interface {
	CreateContainer(ctx context.Context, ns, id, image, snapshotter string, settings ContainerSettings, labels map[string]string) (observed.Container, error)
	DeleteContainer(ctx context.Context, ns, id string) error
	// CheckPolicy says whether the node policy would refuse settings,
	// without creating anything (a new spec is checked before the
	// container of the old one is torn down).
	CheckPolicy(ns string, s ContainerSettings) error
	ContainerNetwork(ns, id string) (network.Attachment, bool)
}

// Tasks runs containers' processes over their shims: the task's
// lifecycle, execs in it, its output, its figures, and the adoption of
// live shims when berthd starts.
type Tasks interface {
	CreateTask(ctx context.Context, ns, id string, stdio Stdio) (TaskInfo, error)
	StartTask(ctx context.Context, ns, id, execID string) (uint32, error)
	// RunTask is CreateTask and StartTask in one runtime call; the task
	// answered is running.
	RunTask(ctx context.Context, ns, id string, stdio Stdio) (TaskInfo, error)
	KillTask(ctx context.Context, ns, id, execID string, sig syscall.Signal, all bool) error
	WaitTask(ctx context.Context, ns, id, execID string) (observed.Exit, error)
	DeleteTask(ctx context.Context, ns, id string, force bool) (observed.Exit, error)
	GetTask(ctx context.Context, ns, id string) (TaskInfo, error)
	ListTasks(ctx context.Context, ns string) ([]TaskInfo, error)
	PauseTask(ctx context.Context, ns, id string) error
	ResumeTask(ctx context.Context, ns, id string) error
	// StopSignal is the signal that asks the container to stop (its own
	// or its image's, SIGTERM when neither names one).
	StopSignal(ctx context.Context, ns, id string) syscall.Signal
	// ProbeExec runs a probe's command in the task's container through its
	// shim and returns its exit and bounded output (no stdio streams).
	ProbeExec(ctx context.Context, ns, id string, args []string, timeout time.Duration) (ExecResult, error)
	Exec(ctx context.Context, ns, id, execID string, o ExecOptions) error
	DeleteExec(ctx context.Context, ns, id, execID string) (uint32, error)
	ResizePty(ctx context.Context, ns, id, execID string, w, h uint32) error
	CloseIO(ctx context.Context, ns, id, execID string) error
	Logs(ctx context.Context, ns, id string, opts LogOptions, fn func(LogEntry) error) error
	LogPath(ns, id string) (string, error)
	TaskMetrics(ctx context.Context, ns, id string) (Metrics, error)
	TaskPids(ctx context.Context, ns, id string) ([]Process, error)
	NetworkStats(ns, id string) (network.Stats, error)
	RecoverTasks(ctx context.Context) error
}

// Snapshots names the node's snapshotters. A snapshotter is a store
// interface of its own (snapshot.Snapshotter), handed out by name so the
// API's snapshot service and the controllers' drift check use the same
// instances unpack wrote to.
type Snapshots interface {
	Snapshotter(name string) (snapshot.Snapshotter, string, error)
	SnapshotterNames() []string
}

// Layers turns trees into layers and layers into trees: apply a layer
// blob onto mounts, write the difference of two trees into the content
// store, and commit a container into a new image.
type Layers interface {
	ApplyLayer(ctx context.Context, ns string, desc ocispec.Descriptor, mounts []snapshot.Mount) (layer.ApplyResult, error)
	CompareMounts(ctx context.Context, ns string, lower, upper []snapshot.Mount, opts LayerOptions) (LayerResult, error)
	CompareSnapshot(ctx context.Context, ns, snapshotter, key, parent string, opts LayerOptions) (LayerResult, error)
	CommitContainer(ctx context.Context, ns, id, ref string, opts CommitOptions) (CommitResult, error)
}

// Leases keep what a client is writing safe from garbage collection until
// it has recorded its result.
type Leases interface {
	CreateLease(ctx context.Context, ns string, o LeaseOptions) (observed.Lease, error)
	DeleteLease(ctx context.Context, ns, id string, sync bool) error
	ListLeases(ctx context.Context, ns string) ([]observed.Lease, error)
	AddLeaseResources(ctx context.Context, ns, id string, rs ...observed.LeaseResource) error
	RemoveLeaseResources(ctx context.Context, ns, id string, rs ...observed.LeaseResource) error
}

var (
	_ Images     = (*Node)(nil)
	_ Containers = (*Node)(nil)
	_ Tasks      = (*Node)(nil)
	_ Snapshots  = (*Node)(nil)
	_ Layers     = (*Node)(nil)
	_ Leases     = (*Node)(nil)
)
