package node

import (
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"berth.dev/berth/snapshot"
	"berth.dev/berth/spec"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
)

// Node performs operations on the node's stores.
type Node struct {
	opts   Options
	log    *slog.Logger
	leases leases
	// gcMu serializes garbage collections.
	gcMu sync.Mutex
	// background counts work started for a caller that did not wait
	// (a collection after an image removal); closing waits for it.
	background sync.WaitGroup
	tt         taskTable
	spare      spareShim
	// expiryWake tells the lease expiry loop that a lease was created.
	expiryWake chan struct{}
}

// New returns a Node over the given stores.
func New(opts Options) *Node {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.DefaultSnapshotter == "" {
		opts.DefaultSnapshotter = spec.DefaultSnapshotter
	}
	return &Node{opts: opts, log: opts.Log, leases: leases{started: map[int64]time.Time{}, digests: map[digest.Digest]int{}}}
}

// Snapshotter returns the named snapshotter ("" is the default).
func (n *Node) Snapshotter(name string) (snapshot.Snapshotter, string, error) {
	if name == "" {
		name = n.opts.DefaultSnapshotter
	}
	sn, ok := n.opts.Snapshotters[name]
	if !ok {
		hint := ""
		if name == "btrfs" {
			hint = "; btrfs is there only when berthd's root is on a btrfs filesystem"
		}
		return nil, name, fmt.Errorf("snapshotter %q (have %v%s): %w", name, n.SnapshotterNames(), hint, errdefs.ErrNotFound)
	}
	return sn, name, nil
}

// SnapshotterNames lists the configured snapshotters.
func (n *Node) SnapshotterNames() []string {
	var names []string
	for k := range n.opts.Snapshotters {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
