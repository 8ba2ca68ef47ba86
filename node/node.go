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

// leases protect what operations in flight are writing from garbage
// collection: every blob created since the oldest operation in flight
// started, and every digest an operation named explicitly.
type leases struct {
	mu      sync.Mutex
	next    int64
	started map[int64]time.Time
	digests map[digest.Digest]int
}

// acquire starts a lease; release it when the operation has recorded its
// result (an image record now references what it wrote).
func (l *leases) acquire(ds ...digest.Digest) (release func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next++
	id := l.next
	l.started[id] = time.Now()
	for _, d := range ds {
		l.digests[d]++
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.started, id)
		for _, d := range ds {
			if l.digests[d]--; l.digests[d] <= 0 {
				delete(l.digests, d)
			}
		}
	}
}

// oldest is when the oldest lease in force started (zero if none).
func (l *leases) oldest() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var t time.Time
	for _, s := range l.started {
		if t.IsZero() || s.Before(t) {
			t = s
		}
	}
	return t
}

// protects reports whether a blob created at created (or named d) is leased.
func (l *leases) protects(d digest.Digest, created time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.digests[d] > 0 {
		return true
	}
	for _, t := range l.started {
		// A second of slack: blob times come from the filesystem clock.
		if !created.Before(t.Add(-time.Second)) {
			return true
		}
	}
	return false
}
