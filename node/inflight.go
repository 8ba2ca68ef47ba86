package node

import (
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// The in-memory window of operations in flight, apart from the leases in
// the store (leases.go). berthd's own operations (begin) hold both: the
// store lease shows in `berth lease ls` and survives a crash until it
// expires; this window protects all the same if recording the store lease
// failed, and covers operations that take no store lease (a push reading
// blobs). It lives only as long as this berthd.

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
		l.unholdLocked(ds...)
	}
}

// unholdLocked drops one hold of each of ds; l.mu held.
func (l *leases) unholdLocked(ds ...digest.Digest) {
	for _, d := range ds {
		if l.digests[d]--; l.digests[d] <= 0 {
			delete(l.digests, d)
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

// hold protects the blob d alone until release.
func (l *leases) hold(d digest.Digest) (release func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.digests[d]++
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.unholdLocked(d)
	}
}

// blobHolds are the blobs one operation reuses from the store, held from
// collection until it has recorded what references them.
type blobHolds struct {
	n        *Node
	mu       sync.Mutex
	releases []func()
}

// add holds d. It waits for a collection in progress: a collection either
// ended before (and removed d, which the caller then finds absent and
// fetches) or sees it held. Protection by creation time alone does not
// cover a blob that was in the store before the operation began.
func (h *blobHolds) add(d digest.Digest) {
	h.n.gcMu.Lock()
	rel := h.n.leases.hold(d)
	h.n.gcMu.Unlock()
	h.mu.Lock()
	h.releases = append(h.releases, rel)
	h.mu.Unlock()
}

func (h *blobHolds) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.releases {
		r()
	}
	h.releases = nil
}
