package node

import (
	"sync"
	"time"
)

// LayerProgress is where one blob of a pull stands.
type LayerProgress struct {
	Digest, MediaType string
	// Status: downloading | done | unpacking | unpacked | retrying
	Status  string
	Message string
	// Offset of Total bytes are in the store.
	Offset, Total int64
	// Rate is the blob's download rate so far, bytes per second.
	Rate float64
}

// PullProgress is a pull's state as a user watches it.
type PullProgress struct {
	Layers  []LayerProgress
	Fetched int64
	Seconds float64
	// Waiting says why a retrying pull waits and for how long.
	Waiting string
}

// PullTracker folds a pull's Progress reports into per-blob state, so
// `berth image pull` and an Image's status show the same figures. It is
// safe for concurrent use.
type PullTracker struct {
	mu      sync.Mutex
	start   time.Time
	order   []string
	layers  map[string]*LayerProgress
	began   map[string]began
	fetched int64
	waiting string
}

type began struct {
	at  time.Time
	off int64
}

// NewPullTracker starts tracking a pull that begins now.
func NewPullTracker() *PullTracker {
	return &PullTracker{start: time.Now(), layers: map[string]*LayerProgress{}, began: map[string]began{}}
}

// Observe takes one report.
func (t *PullTracker) Observe(p Progress) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fetched = max(t.fetched, p.Fetched)
	d := p.Desc.Digest.String()
	lp, ok := t.layers[d]
	if p.Status == "retrying" {
		t.waiting = p.Message
		if ok {
			lp.Status, lp.Message = p.Status, p.Message
		}
		return
	}
	t.waiting = ""
	if !ok {
		lp = &LayerProgress{Digest: d, MediaType: p.Desc.MediaType, Total: p.Desc.Size}
		t.layers[d] = lp
		t.order = append(t.order, d)
	}
	if p.Status == "downloading" || p.Status == "done" {
		b, ok := t.began[d]
		if !ok && p.Status == "downloading" {
			b = began{at: time.Now(), off: p.Offset}
			t.began[d] = b
		}
		if secs := time.Since(b.at).Seconds(); ok && secs > 0 {
			lp.Rate = float64(p.Offset-b.off) / secs
		}
		lp.Offset = p.Offset
	}
	lp.Status, lp.Message = p.Status, ""
}

// Snapshot is the pull's state now.
func (t *PullTracker) Snapshot() PullProgress {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := PullProgress{Fetched: t.fetched, Seconds: time.Since(t.start).Seconds(), Waiting: t.waiting}
	for _, d := range t.order {
		p.Layers = append(p.Layers, *t.layers[d])
	}
	return p
}
