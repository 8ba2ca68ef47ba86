package observed

import "sync"

// Recent keeps the last events in memory so `berth describe` can show an
// object's recent history. It is bounded; older events fall off.
type Recent struct {
	mu   sync.Mutex
	ring []Event
	next int
	full bool
}

// NewRecent keeps up to n events.
func NewRecent(n int) *Recent { return &Recent{ring: make([]Event, n)} }

// Add records an event (use as, or inside, the bus's OnPublish hook).
func (r *Recent) Add(ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ring[r.next] = ev
	r.next = (r.next + 1) % len(r.ring)
	if r.next == 0 {
		r.full = true
	}
}

// Match returns the recorded events matching f, oldest first.
func (r *Recent) Match(f Filter) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	n := r.next
	if r.full {
		n = len(r.ring)
	}
	for i := 0; i < n; i++ {
		idx := i
		if r.full {
			idx = (r.next + i) % len(r.ring)
		}
		if f.Match(r.ring[idx]) {
			out = append(out, r.ring[idx])
		}
	}
	return out
}
