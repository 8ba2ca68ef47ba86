package desired

import (
	"context"
	"sync"

	"berth.dev/berth/spec"
)

// subscriber coalesces keys for one reader: a key changed many times
// before it is read is delivered once, and the store never waits.
type subscriber struct {
	mu      sync.Mutex
	pending map[spec.Key]bool
	order   []spec.Key
	wake    chan struct{}
}

func (sub *subscriber) push(keys []spec.Key) {
	if len(keys) == 0 {
		return
	}
	sub.mu.Lock()
	for _, k := range keys {
		if !sub.pending[k] {
			sub.pending[k] = true
			sub.order = append(sub.order, k)
		}
	}
	sub.mu.Unlock()
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

func (sub *subscriber) pop() (spec.Key, bool) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if len(sub.order) == 0 {
		return spec.Key{}, false
	}
	k := sub.order[0]
	sub.order = sub.order[1:]
	delete(sub.pending, k)
	return k, true
}

// Subscribe returns a channel of keys whose entry or conflicts changed
// (created, spec or metadata changed, owner changed, deleted). Keys
// pending delivery are coalesced, so a slow reader sees each changed key
// at least once after its last change, and never blocks the store. The
// channel is closed when ctx is done. Subscribe before reading the
// initial state with List so no change is missed.
func (s *Store) Subscribe(ctx context.Context) <-chan spec.Key {
	sub := &subscriber{pending: map[spec.Key]bool{}, wake: make(chan struct{}, 1)}
	s.mu.Lock()
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	out := make(chan spec.Key)
	go func() {
		defer close(out)
		defer func() {
			s.mu.Lock()
			delete(s.subs, sub)
			s.mu.Unlock()
		}()
		for {
			k, ok := sub.pop()
			if !ok {
				select {
				case <-sub.wake:
					continue
				case <-ctx.Done():
					return
				}
			}
			select {
			case out <- k:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// SourcesChanged returns a channel that is signalled, coalesced, whenever
// any source is updated (its set, revision or error), so a reader of
// Sources need not poll. The channel stays open; stop reading when ctx ends.
func (s *Store) SourcesChanged(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.sourceSubs[ch] = struct{}{}
	s.mu.Unlock()
	go func() {
		<-ctx.Done()
		s.mu.Lock()
		delete(s.sourceSubs, ch)
		s.mu.Unlock()
	}()
	return ch
}

// watcher is told the changed keys of each Update, synchronously.
type watcher struct{ fn func([]spec.Key) }

// Watch calls fn with the keys of every change (as Subscribe would deliver
// them) until ctx is done. fn runs on the updating source's goroutine, after
// the store's lock is released, so it may read the store; it must not
// block: a reader with its own coalescing queue (the controller's) adds the
// keys to it, so there is one queue between a change and its reconcile, not
// two in series. Calls for concurrent updates may run concurrently. Watch
// before reading the initial state with List so no change is missed.
func (s *Store) Watch(ctx context.Context, fn func([]spec.Key)) {
	w := &watcher{fn: fn}
	s.mu.Lock()
	s.watchers[w] = struct{}{}
	s.mu.Unlock()
	go func() {
		<-ctx.Done()
		s.mu.Lock()
		delete(s.watchers, w)
		s.mu.Unlock()
	}()
}
