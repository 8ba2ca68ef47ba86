package node

import (
	"log/slog"
	"time"

	"berth.dev/berth/content"
	"berth.dev/berth/content/remote"
	"berth.dev/berth/observed"
	"berth.dev/berth/policy"
	"berth.dev/berth/snapshot"
	"berth.dev/berth/snapshot/unpack"
)

// Options configure a Node.
type Options struct {
	Content            content.Store
	Snapshotters       map[string]snapshot.Snapshotter
	DefaultSnapshotter string
	DB                 *observed.DB
	Events             observed.Publisher
	Log                *slog.Logger
	// Registry settings for pulls.
	InsecureRegistries []string
	// RegistryConfigDir is the certs.d directory of registry hosts.
	RegistryConfigDir string
	PullRetry         remote.RetryPolicy
	PullConcurrency   int
	ProgressTimeout   time.Duration
	Tasks             TaskOptions
	// Unpack bounds what layers may hold and cost (devices, size caps, the
	// free-space reserve); its OnApplied is set by the node.
	Unpack unpack.Options
	// OnPull, when set, is told of every Pull when it returns: how long it
	// took, the bytes it downloaded from the registry (blobs already in the
	// store count nothing) and its error (metrics).
	OnPull func(d time.Duration, bytes int64, err error)
	// StaleIngestAge is how long an ingest may go unwritten before a
	// collection removes it (a pull that failed, for lack of space say,
	// would otherwise hold its partial data forever); 0 is
	// DefaultStaleIngestAge.
	StaleIngestAge time.Duration
	// Policy is the node policy every container create is checked
	// against; nil allows everything (unit tests).
	Policy *policy.Policy
	// Network attaches containers to bridge and declared networks; nil
	// leaves only network: host and none.
	Network Networker
}

// DefaultStaleIngestAge leaves a failed pull a day to be resumed.
const DefaultStaleIngestAge = 24 * time.Hour

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
